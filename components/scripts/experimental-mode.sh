#!/usr/bin/env bash
# experimental-mode.sh — host step 4 of 7: Docker daemon experimental features on.
#
# Merges "experimental": true into the daemon's config file, keeping every other key; restarts
# docker only when the file changed and checks the daemon then reports Experimental: true. A file
# that is not a JSON object stops the step untouched; a daemon that does not come back gets the old
# file back. (The CLI's own "experimental" setting is ignored since Docker 23: not written.)
#
# Runs as root, script on stdin: sudo -n env NAME='value' ... bash -s
#
# Environment (default in brackets):
#   DAEMON_JSON               the daemon's config file [/etc/docker/daemon.json]
#   APT_LOCK_TIMEOUT_SECONDS  how long apt waits for the dpkg lock when installing jq [300]
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

DAEMON_JSON="${DAEMON_JSON:-/etc/docker/daemon.json}"
APT_LOCK_TIMEOUT_SECONDS="${APT_LOCK_TIMEOUT_SECONDS:-300}"

readonly STEP=experimental-mode
readonly DOCKER_READY_SECONDS=90

CHANGED=false
RESTARTED=false

validate_input() {
  require_seconds APT_LOCK_TIMEOUT_SECONDS
  [[ "${DAEMON_JSON}" == /* ]] || die "DAEMON_JSON must be an absolute path, not '${DAEMON_JSON}'"
  require_docker
}

# Prints the file as one JSON object (missing or empty file: {}); fails naming jq's complaint.
read_daemon_config() {
  local out
  if [[ ! -e "${DAEMON_JSON}" ]]; then
    echo '{}'
    return
  fi
  # dockerd itself accepts an empty file; more than one value or a non-object it rejects.
  if ! out="$(jq -c -s 'if length == 0 then {}
      elif length == 1 and (.[0] | type) == "object" then .[0]
      else error("expected one JSON object, found \(length) value(s) of type \(map(type) | join(", "))") end' \
    "${DAEMON_JSON}" 2>&1)"; then
    die "${DAEMON_JSON} is not valid JSON: ${out//$'\n'/ }; fix or remove it (the file was left as it is)"
  fi
  printf '%s\n' "${out}"
}

# Writes the merged config beside the original (same mode and owner) and moves it in place.
write_daemon_config() {
  local merged="$1" dir tmp
  dir="$(dirname "${DAEMON_JSON}")"
  install -d -m 0755 "${dir}"
  tmp="$(mktemp "${dir}/.daemon.json.XXXXXX")"
  jq . <<<"${merged}" >"${tmp}"
  if [[ -e "${DAEMON_JSON}" ]]; then
    chmod --reference="${DAEMON_JSON}" "${tmp}"
    chown --reference="${DAEMON_JSON}" "${tmp}"
  else
    chmod 0644 "${tmp}"
  fi
  mv -f "${tmp}" "${DAEMON_JSON}"
}

# Restarts docker and waits for it; on failure sets RESTART_ERROR and shows the daemon's last words.
restart_docker() {
  log "restarting docker to apply ${DAEMON_JSON}"
  # An earlier failed start may have used up systemd's start limit; that must not fail this one.
  systemctl reset-failed docker.service >/dev/null 2>&1 || true
  if ! systemctl restart docker.service >&2 2>&1; then
    RESTART_ERROR="'systemctl restart docker' failed"
  elif ! wait_for_docker "${DOCKER_READY_SECONDS}"; then
    RESTART_ERROR="dockerd did not answer within ${DOCKER_READY_SECONDS}s"
  else
    return 0
  fi
  journalctl -u docker.service -n 5 -o cat --no-pager >&2 2>/dev/null || true
  return 1
}

# Enables experimental mode; when the daemon does not come back, puts the old state back.
enable_experimental() {
  local current="$1" backup="" restored
  if [[ -e "${DAEMON_JSON}" ]]; then
    backup="$(mktemp "$(dirname "${DAEMON_JSON}")/.daemon.json.previous.XXXXXX")"
    cp -p "${DAEMON_JSON}" "${backup}"
  fi
  write_daemon_config "$(jq -c '.experimental = true' <<<"${current}")"
  CHANGED=true
  log "set \"experimental\": true in ${DAEMON_JSON}"
  RESTARTED=true
  if restart_docker; then
    [[ -z "${backup}" ]] || rm -f "${backup}"
    return
  fi
  if [[ -n "${backup}" ]]; then
    mv -f "${backup}" "${DAEMON_JSON}"
    restored="the previous ${DAEMON_JSON} was put back"
  else
    rm -f "${DAEMON_JSON}"
    restored="${DAEMON_JSON} was removed again (there was none before)"
  fi
  systemctl reset-failed docker.service >/dev/null 2>&1 || true
  systemctl restart docker.service >&2 2>&1 || restored+=" but docker does not start on it either"
  die "${RESTART_ERROR} after enabling experimental mode; ${restored}; see 'journalctl -u docker'"
}

verify_experimental() {
  local server
  if ! wait_for_docker "${DOCKER_READY_SECONDS}"; then
    die "the docker daemon does not answer; start it ('systemctl start docker') and see 'journalctl -u docker'"
  fi
  server="$(docker version -f '{{.Server.Experimental}}' </dev/null)"
  [[ "${server}" == true ]] \
    || die "the daemon reports Experimental: ${server} although ${DAEMON_JSON} sets it; is dockerd started with another --config-file, or --experimental=false? (see 'systemctl cat docker')"
  log "daemon reports Experimental: true"
}

# shellcheck disable=SC2016 # $name in the jq program is jq's
print_report() {
  report '{restarted: $restarted, experimental: true, daemonJson: $daemonJson}' \
    --argjson restarted "${RESTARTED}" --arg daemonJson "${DAEMON_JSON}"
}

main() {
  begin_step
  local current
  validate_input
  ensure_jq
  current="$(read_daemon_config)"
  if [[ "$(jq -c '.experimental' <<<"${current}")" == true ]]; then
    log "${DAEMON_JSON} already has \"experimental\": true; no change, no restart"
  else
    enable_experimental "${current}"
  fi
  verify_experimental
  print_report
}

main "$@"
