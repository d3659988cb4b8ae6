#!/usr/bin/env bash
# wait-for-host.sh — host step 1 of 7: wait until the host is ready to be provisioned.
#
# Refuses an unsupported OS, waits for cloud-init to finish (when it is installed) and for the
# dpkg/apt locks to be free, all within one deadline. Then installs jq when it is missing: it writes
# every step's report.
#
# Runs as root, script on stdin: sudo -n env NAME='value' ... bash -s
#
# Environment (default in brackets; [host facts]: HOST_FACTS_DEFAULT in lib/host-facts.sh):
#   WAIT_TIMEOUT_SECONDS   how long cloud-init and the package locks may take, together
#                          [host facts' HOST_READY_TIMEOUT_MINUTES × 60]
#
# Output: progress on stderr; the last stdout line is the report (components/step-reports.ts).
set -euo pipefail

# The functions all steps share: sent ahead of this script by steps.ts, or sourced from a checkout.
if ! declare -F log >/dev/null; then
  # shellcheck source=lib/common.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
  # shellcheck source=lib/host-facts.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/host-facts.sh"
fi

WAIT_TIMEOUT_SECONDS="${WAIT_TIMEOUT_SECONDS:-$((HOST_FACTS_DEFAULT[HOST_READY_TIMEOUT_MINUTES] * 60))}"

readonly STEP=wait-for-host
CHANGED=false
# apt and dpkg take these with fcntl(F_SETLK); a process holding one shows up in /proc/locks.
readonly PACKAGE_LOCKS=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock)

validate_input() {
  require_seconds WAIT_TIMEOUT_SECONDS
}

seconds_left() {
  local left=$((DEADLINE - SECONDS))
  ((left > 0)) || left=0
  echo "${left}"
}

# Sets OS_ID, OS_VERSION, OS_CODENAME from /etc/os-release and fails on a release we do not support.
read_os_release() {
  [[ -r /etc/os-release ]] || die "/etc/os-release is missing: cannot tell which distribution this is"
  OS_ID="$(os_release_field ID)"
  OS_VERSION="$(os_release_field VERSION_ID)"
  OS_CODENAME="$(os_release_field VERSION_CODENAME)"
  local release supported=false
  for release in "${HOST_FACTS_SUPPORTED_RELEASES[@]}"; do
    [[ "${release% *}" != "${OS_ID} ${OS_VERSION}" ]] || supported=true
  done
  [[ "${supported}" == true ]] || die "unsupported OS '${OS_ID} ${OS_VERSION}' (${OS_CODENAME:-no codename}): supported are $(printf '%s, ' "${HOST_FACTS_SUPPORTED_RELEASES[@]% *}" | sed 's/, $//'); use one of those images"
  [[ -n "${OS_CODENAME}" ]] || die "/etc/os-release has no VERSION_CODENAME; the Docker apt source needs it"
}

# Sets CLOUD_INIT to done, disabled or absent; fails on error or when the deadline passes.
wait_for_cloud_init() {
  local rc=0 status
  if ! command -v cloud-init >/dev/null 2>&1; then
    CLOUD_INIT=absent
    log "cloud-init is not installed"
    return
  fi
  log "waiting for cloud-init to finish (at most $(seconds_left)s)"
  timeout "$(seconds_left)" cloud-init status --wait >/dev/null </dev/null || rc=$?
  if ((rc == 124)); then
    die "cloud-init did not finish within ${WAIT_TIMEOUT_SECONDS}s; see /var/log/cloud-init-output.log on the host, or raise the timeout"
  fi
  status="$(cloud-init status </dev/null 2>/dev/null | sed -n 's/^status: *//p' || true)"
  case "${status}" in
    done)
      # rc 2 is cloud-init's "done, with recoverable errors" (23.4+): the host is usable.
      ((rc != 2)) || log "warning: cloud-init finished with recoverable errors: $(cloud-init status --long </dev/null 2>&1 | tr '\n' ' ')"
      CLOUD_INIT="done"
      ;;
    disabled)
      CLOUD_INIT=disabled
      log "cloud-init is installed but disabled on this host"
      ;;
    error)
      die "cloud-init failed: $(cloud-init status --long </dev/null 2>&1 | tr '\n' ' '); see /var/log/cloud-init.log and /var/log/cloud-init-output.log, fix the user data and recreate the host"
      ;;
    *) die "cloud-init reports status '${status:-unknown}' (exit ${rc}); run 'cloud-init status --long' on the host" ;;
  esac
  log "cloud-init: ${CLOUD_INIT}"
}

# Prints the PIDs holding a package lock, one per line; nothing when all are free. A lock counts
# when /proc/locks lists its inode and the holder has that very path open (fuser may be missing).
package_lock_holders() {
  local lock pid inode fd target inodes=" "
  for lock in "${PACKAGE_LOCKS[@]}"; do
    [[ -e "${lock}" ]] && inodes+="$(stat -c %i "${lock}") "
  done
  while read -r pid inode; do
    [[ "${inodes}" == *" ${inode} "* ]] || continue
    # An open-file-description lock shows no PID (-1): count it, its holder cannot be named.
    [[ "${pid}" != -1 ]] || { echo "unknown"; continue; }
    for fd in /proc/"${pid}"/fd/*; do
      target="$(readlink "${fd}" 2>/dev/null)" || continue
      for lock in "${PACKAGE_LOCKS[@]}"; do
        [[ "${target}" != "${lock}" ]] || { echo "${pid}"; continue 3; }
      done
    done
  done < <(awk '$2 != "->" { split($6, id, ":"); print $5, id[3] }' /proc/locks | sort -u)
}

# "PID (command), ..." for the PIDs given.
describe_pids() {
  local pid described=()
  for pid in "$@"; do
    described+=("${pid} ($(ps -o comm= -p "${pid}" 2>/dev/null || echo '?'))")
  done
  local IFS=,
  echo "${described[*]}"
}

wait_for_package_locks() {
  local holders announced=0
  while holders="$(package_lock_holders | sort -u | paste -sd' ')" && [[ -n "${holders}" ]]; do
    # shellcheck disable=SC2086 # one word per PID
    if ((SECONDS >= DEADLINE)); then
      die "the dpkg/apt locks are still held after ${WAIT_TIMEOUT_SECONDS}s by $(describe_pids ${holders}); wait for that package run to end or stop it, then retry"
    fi
    if ((!announced)); then
      # shellcheck disable=SC2086
      log "dpkg/apt locks held by $(describe_pids ${holders}); waiting (at most $(seconds_left)s)"
      announced=1
    fi
    sleep 3
  done
  log "dpkg/apt locks are free"
}

# shellcheck disable=SC2016 # $name in the jq program is jq's
print_report() {
  report '{os: $os, osVersion: $osVersion, codename: $codename, arch: $arch, kernel: $kernel, cloudInit: $cloudInit,
    waitedSeconds: $waitedSeconds}' \
    --arg os "${OS_ID}" --arg osVersion "${OS_VERSION}" --arg codename "${OS_CODENAME}" --arg arch "$(dpkg --print-architecture)" \
    --arg kernel "$(uname -r)" --arg cloudInit "${CLOUD_INIT}" --argjson waitedSeconds "${SECONDS}"
}

main() {
  begin_step
  validate_input
  DEADLINE=$((SECONDS + WAIT_TIMEOUT_SECONDS))
  read_os_release
  log "host: ${OS_ID} ${OS_VERSION} (${OS_CODENAME}), $(dpkg --print-architecture), kernel $(uname -r)"
  wait_for_cloud_init
  wait_for_package_locks
  ensure_jq
  print_report
}

main "$@"
