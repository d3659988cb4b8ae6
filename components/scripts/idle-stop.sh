#!/usr/bin/env bash
# idle-stop.sh — the last host step, there only when idleStopMinutes is above 0: powers the host
# off after IDLE_STOP_MINUTES with no running build and no open SSH session. On EC2 the instance
# then stops (instanceInitiatedShutdownBehavior "stop"), its volumes and cache kept.
#
# create (IDLE_STOP_MINUTES above 0): the check below, written from this script's own functions, as
# /usr/local/libexec/buildx-host/idle-check; its settings in /etc/buildx-host/idle-stop.env;
# buildx-host-idle-stop.service runs it, buildx-host-idle-stop.timer every
# HOST_FACTS_IDLE_CHECK_SECONDS. Every check logs its decision and the reason to the journal:
# journalctl -u buildx-host-idle-stop.service.
# IDLE_STOP_MINUTES=0 (the step's delete too): removes all of it; absent things are fine.
#
# Busy, each read from its source, never guessed:
# - a running build: BuildKit's own build records (`buildctl debug histories` in the builder's
#   container), where a record without a completion time is still running; the latest completion
#   counts as activity. A builder container that is not running runs no build; a BuildKit or a
#   Docker that does not answer keeps the host on.
# - an open SSH session: an authenticated sshd session process ("sshd: <user>@notty"; since
#   OpenSSH 9.8 "sshd-session: <user>@pts/0"): members' doors and the administrator's alike.
# Idle time counts from the last check that found the host busy (kept under /run, so a boot starts
# the clock again) or the latest build's completion, whichever is later.
# Before the power-off the check closes the door to new logins (/run/nologin, which sshd's
# pam_nologin honours for every user but root, and systemd removes at boot), then looks again: a
# session or build that began after the first look keeps the host on, and the door opens again.
#
# Runs as root, script on stdin: sudo -n env NAME='value' ... bash -s
#
# Environment (default in brackets; [host facts]: HOST_FACTS_DEFAULT in lib/host-facts.sh):
#   IDLE_STOP_MINUTES  whole minutes of idleness before the power-off; 0 removes it [0]
#   BUILDER_NAME       the shared builder whose BuildKit runs the builds [host facts]
#
# Output: progress on stderr; the last stdout line is
#   its JSON report, whose keys components/step-reports.ts declares.
set -euo pipefail

# The functions all steps share: sent ahead of this script by steps.ts, or sourced from a checkout.
if ! declare -F log >/dev/null; then
  # shellcheck source=lib/common.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
  # shellcheck source=lib/host-facts.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/host-facts.sh"
fi

IDLE_STOP_MINUTES="${IDLE_STOP_MINUTES:-0}"
BUILDER_NAME="${BUILDER_NAME:-${HOST_FACTS_DEFAULT[BUILDER_NAME]}}"

readonly STEP=idle-stop
readonly CHECKER=/usr/local/libexec/buildx-host/idle-check
readonly SETTINGS_FILE=/etc/buildx-host/idle-stop.env
readonly SERVICE=buildx-host-idle-stop.service
readonly TIMER=buildx-host-idle-stop.timer
readonly SERVICE_FILE="/etc/systemd/system/${SERVICE}"
readonly TIMER_FILE="/etc/systemd/system/${TIMER}"
readonly IDLE_STATE_FILE=/run/buildx-host/idle-stop.last-busy
readonly NOLOGIN_FILE=/run/nologin

CHANGED=false
ACTION=""

# --- The check, installed as CHECKER (settings: IDLE_STOP_SECONDS, BUILDKIT_CONTAINER) ---

# The user of each open, authenticated SSH session, one line per session.
open_session_users() {
  ps -eo args= | sed -nE 's/^sshd(-session)?: ([^ @]+)@.*/\2/p'
}

# BuildKit's build records, one JSON event a line; fails when BuildKit does not answer.
build_records() {
  timeout 30 docker exec "${BUILDKIT_CONTAINER}" buildctl debug histories --format '{{json .}}' </dev/null
}

# Looks at the host now. Sets BUSY (what keeps it busy: running builds and open sessions; empty
# when nothing does), BUSY_UNKNOWN (why it cannot tell, which keeps the host on too) and COMPLETED
# (the latest build's completion, epoch seconds).
look() {
  local records="" running="" sessions
  BUSY=""
  BUSY_UNKNOWN=""
  COMPLETED=0
  sessions="$(open_session_users | sort | uniq -c | awk '{ printf "%s%s%s", sep, $2, ($1 > 1 ? " (" $1 ")" : ""); sep = ", " }')"
  if ! docker info >/dev/null 2>&1 </dev/null; then
    BUSY_UNKNOWN="Docker does not answer, so whether a build runs is unknown"
    return 0
  fi
  if [[ "$(docker inspect -f '{{.State.Running}}' "${BUILDKIT_CONTAINER}" 2>/dev/null </dev/null)" == true ]]; then
    if ! records="$(build_records 2>&1)"; then
      BUSY_UNKNOWN="BuildKit in ${BUILDKIT_CONTAINER} does not answer, so whether a build runs is unknown: ${records##*$'\n'}"
      return 0
    fi
    running="$(jq -rs '[.[].record | select(.CompletedAt == null) | .Ref] | join(", ")' <<<"${records}")"
    COMPLETED="$(jq -s '[.[].record.CompletedAt.seconds // 0] | max // 0' <<<"${records}")"
  fi
  BUSY="${running:+running builds: ${running}}"
  BUSY+="${sessions:+${BUSY:+; }open SSH sessions: ${sessions}}"
}

# One check: prints its decision and the reason (the journal keeps it), and powers off when the
# host has been idle for IDLE_STOP_SECONDS and still is with new logins refused.
idle_check() {
  local now last_active idle
  now="$(date +%s)"
  mkdir -p "${IDLE_STATE_FILE%/*}"
  last_active="$(cat "${IDLE_STATE_FILE}" 2>/dev/null || true)"
  if [[ ! "${last_active}" =~ ^[0-9]+$ ]]; then
    last_active="${now}"
    echo "${now}" >"${IDLE_STATE_FILE}"
  fi
  look
  if [[ -n "${BUSY_UNKNOWN}${BUSY}" ]]; then
    echo "stay on: ${BUSY_UNKNOWN:-busy: ${BUSY}}"
    echo "${now}" >"${IDLE_STATE_FILE}"
    return 0
  fi
  ((COMPLETED < last_active)) || last_active="${COMPLETED}"
  idle=$((now - last_active))
  if ((idle < IDLE_STOP_SECONDS)); then
    echo "stay on: idle ${idle}s of ${IDLE_STOP_SECONDS}s: no running build, no open SSH session"
    return 0
  fi
  # Whatever ends this check but the power-off opens the door again.
  trap 'rm -f "${NOLOGIN_FILE}"' EXIT
  echo "powering off: idle for ${IDLE_STOP_SECONDS}s, so it refuses new logins and looks again" >"${NOLOGIN_FILE}"
  look
  if [[ -n "${BUSY_UNKNOWN}${BUSY}" ]]; then
    echo "stay on: ${BUSY_UNKNOWN:-busy: ${BUSY}} (seen at the second look, with logins refused; allowed again)"
    echo "${now}" >"${IDLE_STATE_FILE}"
    return 0
  fi
  trap - EXIT
  echo "power off: idle ${idle}s of ${IDLE_STOP_SECONDS}s: no running build, no open SSH session since $(date -u -d "@${last_active}" +%FT%TZ)"
  systemctl --no-block poweroff
}

# --- The step ---

validate_input() {
  [[ "${IDLE_STOP_MINUTES}" =~ ^[0-9]{1,5}$ ]] || die "IDLE_STOP_MINUTES must be a whole number of minutes (0: never), not '${IDLE_STOP_MINUTES}'"
  IDLE_STOP_MINUTES=$((10#${IDLE_STOP_MINUTES}))
  [[ "${BUILDER_NAME}" =~ ${HOST_FACTS_BUILDER_NAME_PATTERN} ]] || die "BUILDER_NAME '${BUILDER_NAME}' is not a builder name"
}

render_checker() {
  printf '#!/bin/bash\n# Written by buildx-host (idle-stop.sh); changes here are overwritten.\nset -euo pipefail\n'
  declare -p IDLE_STATE_FILE NOLOGIN_FILE
  declare -f open_session_users build_records look idle_check
  printf 'idle_check\n'
}

render_settings() {
  printf '# Written by buildx-host (idle-stop.sh); changes here are overwritten.\n'
  printf 'IDLE_STOP_SECONDS=%d\nBUILDKIT_CONTAINER=buildx_buildkit_%s0\n' $((IDLE_STOP_MINUTES * 60)) "${BUILDER_NAME}"
}

render_service() {
  cat <<UNIT
# Written by buildx-host (idle-stop.sh); changes here are overwritten.
[Unit]
Description=buildx-host: power off after ${IDLE_STOP_MINUTES} min with no running build and no open SSH session
After=docker.service

[Service]
Type=oneshot
EnvironmentFile=${SETTINGS_FILE}
ExecStart=${CHECKER}
UNIT
}

render_timer() {
  cat <<UNIT
# Written by buildx-host (idle-stop.sh); changes here are overwritten.
[Unit]
Description=buildx-host: check every ${HOST_FACTS_IDLE_CHECK_SECONDS}s whether the host is idle

[Timer]
OnActiveSec=${HOST_FACTS_IDLE_CHECK_SECONDS}s
OnBootSec=${HOST_FACTS_IDLE_CHECK_SECONDS}s
OnUnitActiveSec=${HOST_FACTS_IDLE_CHECK_SECONDS}s
AccuracySec=1s

[Install]
WantedBy=timers.target
UNIT
}

install_check() {
  local existed=false units_written=false
  [[ ! -e "${TIMER_FILE}" ]] || existed=true
  command -v jq >/dev/null 2>&1 || die "jq is missing; run the wait-for-host step first"
  require_docker
  if place_file "${CHECKER}" 755 "$(render_checker)" bash -n; then changed "wrote ${CHECKER}"; fi
  if place_file "${SETTINGS_FILE}" 644 "$(render_settings)"; then changed "wrote ${SETTINGS_FILE} (${IDLE_STOP_MINUTES} min)"; fi
  if place_file "${SERVICE_FILE}" 644 "$(render_service)"; then
    changed "wrote ${SERVICE_FILE}"
    units_written=true
  fi
  if place_file "${TIMER_FILE}" 644 "$(render_timer)"; then
    changed "wrote ${TIMER_FILE}"
    units_written=true
  fi
  [[ "${units_written}" == false ]] || systemctl daemon-reload >&2 2>&1
  if ! systemctl is-enabled --quiet "${TIMER}" 2>/dev/null || ! systemctl is-active --quiet "${TIMER}"; then
    systemctl enable --now "${TIMER}" >&2 2>&1 || die "could not start ${TIMER}; see 'journalctl -u ${TIMER}'"
    changed "enabled and started ${TIMER}"
  elif [[ "${units_written}" == true ]]; then
    systemctl restart "${TIMER}" >&2 2>&1
  fi
  if [[ "${CHANGED}" == false ]]; then
    ACTION=unchanged
  elif [[ "${existed}" == true ]]; then
    ACTION=updated
  else
    ACTION=created
  fi
  log "powers off after ${IDLE_STOP_MINUTES} min idle (checked every ${HOST_FACTS_IDLE_CHECK_SECONDS}s; journalctl -u ${SERVICE})"
}

remove_check() {
  if [[ -e "${TIMER_FILE}" ]]; then
    systemctl disable --now "${TIMER}" >&2 2>&1 || true
    changed "stopped and disabled ${TIMER}"
  fi
  local file
  for file in "${TIMER_FILE}" "${SERVICE_FILE}" "${CHECKER}" "${SETTINGS_FILE}" "${IDLE_STATE_FILE}"; do
    if [[ -e "${file}" ]]; then
      rm -f "${file}"
      changed "removed ${file}"
    fi
  done
  [[ "${CHANGED}" == false ]] || systemctl daemon-reload >&2 2>&1
  if [[ "${CHANGED}" == true ]]; then ACTION=deleted; else ACTION=absent; fi
}

# shellcheck disable=SC2016 # $name in the jq program is jq's
print_report() {
  report '{action: $action, idleStopMinutes: $minutes, checkSeconds: $check, timer: $timer}' \
    --arg action "${ACTION}" --argjson minutes "${IDLE_STOP_MINUTES}" --argjson check "${HOST_FACTS_IDLE_CHECK_SECONDS}" \
    --arg timer "${TIMER}"
}

main() {
  begin_step
  validate_input
  if ((IDLE_STOP_MINUTES == 0)); then
    remove_check
  else
    install_check
  fi
  print_report
}

main "$@"
