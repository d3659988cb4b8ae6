# shellcheck shell=bash
# Functions every host step uses. steps.ts sends this file ahead of the step's script in the same
# stdin stream; a step run from a checkout sources it itself. The step sets STEP (its name) and,
# where it reports changes, CHANGED.

log() { printf '%s: %s\n' "${STEP}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# shellcheck disable=SC2034 # CHANGED belongs to the step that sources this
changed() { CHANGED=true; log "$*"; }

# The run log: one line per run of a step, appended on exit, for operators and for tests that
# count what ran: "<UTC time> <step> changed=true|changed=false|failed(exit=N) seconds=<s.d> <report JSON>".
readonly RUN_LOG="${BUILDX_HOST_RUN_LOG:-/var/log/buildx-host/steps.log}"

# Every step's main starts here: the script arrives on stdin, and nothing below may read (and so
# swallow) the rest of it; from now on the run is timed and logged however it ends.
begin_step() {
  exec </dev/null
  RUN_STARTED_NS="$(date +%s%N)"
  REPORT=""
  trap 'append_run_log $?' EXIT
}

# Prints the step's JSON report, its last stdout line, and keeps it for the run log. jq builds it:
# FILTER is an object expression over the jq options that follow it (--arg NAME VALUE, --argjson
# NAME JSON); "step", "changed" (CHANGED) and "scriptSha256" (which version of the step ran:
# SCRIPT_SHA256, given by the program; null when the script was run by hand) are added. Its keys
# are the step's contract in components/step-reports.ts.
# Usage: report FILTER [jq options…]
report() {
  command -v jq >/dev/null 2>&1 || die "jq, which writes the step reports, is missing: install it (apt-get install jq) or run the wait-for-host step"
  REPORT="$(json "{step: \$step, changed: \$changed} + $1 + {scriptSha256: (\$scriptSha256 | or_null)}" \
    --arg step "${STEP}" --argjson changed "${CHANGED}" --arg scriptSha256 "${SCRIPT_SHA256:-}" "${@:2}")"
  printf '%s\n' "${REPORT}"
}

# jq writes every report: wait-for-host installs it once the package locks are free.
ensure_jq() { command -v jq >/dev/null 2>&1 || apt_install jq; }

# jq -n, compact, with one function of ours: or_null turns an empty string into null.
# Usage: json FILTER [jq options…]
json() { jq -cn "def or_null: if . == \"\" then null else . end; $1" "${@:2}"; }

# Prints its arguments as a JSON array of strings (each passed with a leading _, so that none reads as a jq option).
json_strings() { jq -cn '$ARGS.positional | map(.[1:])' --args "${@/#/_}"; }

append_run_log() {
  local status="$1" outcome elapsed_ms line
  if ((status != 0)); then
    outcome="failed(exit=${status})"
  elif [[ "${REPORT}" == *'"changed":true'* ]]; then
    outcome=changed=true
  else
    outcome=changed=false
  fi
  elapsed_ms=$((($(date +%s%N) - RUN_STARTED_NS) / 1000000))
  printf -v line '%s %s %s seconds=%d.%d %s' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${STEP:-unknown}" "${outcome}" \
    $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "${REPORT}"
  { mkdir -p "${RUN_LOG%/*}" && printf '%s\n' "${line% }" >>"${RUN_LOG}"; } 2>/dev/null ||
    log "could not append to the run log ${RUN_LOG}"
}

# apt-get without questions, waiting up to APT_LOCK_TIMEOUT_SECONDS [300] for the dpkg lock, three
# tries; keeps changed config files of the admin's. Its output goes to stderr: stdout is the report's.
apt_get() {
  local try
  for try in 1 2 3; do
    if DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout="${APT_LOCK_TIMEOUT_SECONDS:-300}" \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null >&2; then
      return 0
    fi
    log "apt-get $* failed (try ${try} of 3)"
    ((try == 3)) || sleep $((try * 10))
  done
  die "apt-get $* failed 3 times; see the apt output above (network, repository or dpkg state)"
}

# Installs packages, refreshing the package lists first when apt does not know them yet.
apt_install() {
  apt-cache show "$@" >/dev/null 2>&1 || apt_get update
  apt_get install "$@"
  changed "installed $*"
}

# Prints the installed version of a package, or nothing when it is not installed.
installed_version() {
  dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null | awk '$1 ~ /^[hi]i/ { print $2 }'
}

is_installed() { [[ -n "$(installed_version "$1")" ]]; }

# Fails unless the variable named $1 holds a whole number of seconds.
require_seconds() {
  [[ "${!1}" =~ ^[0-9]+$ ]] || die "$1 must be a whole number of seconds, not '${!1}'"
}

# Prints one field (ID, VERSION_ID, VERSION_CODENAME, …) of /etc/os-release, or nothing.
os_release_field() {
  # shellcheck disable=SC1091 # the host's file, not ours
  (. /etc/os-release && printf '%s' "${!1:-}")
}

in_group() { id -nG "$1" | tr ' ' '\n' | grep -qxF "$2"; }

# Puts CONTENT (a trailing newline added) at FILE, root's with MODE (octal, as stat prints it: 644),
# through a temporary file beside it, when the content, mode or owner differ; succeeds when it wrote.
# A CHECK command, if given, gets the temporary file's path appended and must accept it first; when
# it refuses, nothing is written and the step fails.
# Usage: place_file FILE MODE CONTENT [CHECK…]
place_file() {
  local file="$1" mode="$2" content="$3" tmp
  shift 3
  install -d -m 0755 "$(dirname "${file}")"
  tmp="$(mktemp "$(dirname "${file}")/.buildx-host.XXXXXX")"
  printf '%s\n' "${content}" >"${tmp}"
  if cmp -s "${tmp}" "${file}" && [[ "$(stat -c '%a %U' "${file}")" == "${mode} root" ]]; then
    rm -f "${tmp}"
    return 1
  fi
  if (($# > 0)) && ! "$@" "${tmp}" >&2; then
    rm -f "${tmp}"
    die "$* rejects the new ${file} (its words above); nothing was written"
  fi
  chown root:root "${tmp}"
  chmod "${mode}" "${tmp}"
  mv -f "${tmp}" "${file}"
}

require_docker() {
  command -v docker >/dev/null 2>&1 || die "docker is not installed; run the docker-engine step (docker-engine.sh) first"
}

docker_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 </dev/null; }

# Waits up to $1 seconds for dockerd to answer; returns 1 when it does not.
wait_for_docker() {
  local deadline=$((SECONDS + $1))
  until docker_answers; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}
