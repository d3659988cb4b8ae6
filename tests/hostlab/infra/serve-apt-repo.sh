#!/usr/bin/env bash
# Serve the stand-in for Docker's apt repository (build-apt-repo.sh) on loopback only.
#
# Usage: serve-apt-repo.sh start|stop|fingerprint
# Environment (defaults in brackets):
#   APT_REPO_PORT     [8765]
#   APT_REPO_DIR      [output of build-apt-repo.sh]
#   APT_REPO_PIDFILE  [/var/run/buildx-host-apt-repo.pid]
#   APT_REPO_LOG      [/var/log/buildx-host-apt-repo.log]
# "start" prints the DOCKER_APT_REPO value to use (http://127.0.0.1:<port>); "fingerprint" prints
# the fingerprint of the key it serves, which the lab pins as a mirror's user pins theirs
# (DOCKER_APT_KEY_FINGERPRINT, the dockerAptKeyFingerprint setting).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
APT_REPO_PORT="${APT_REPO_PORT:-8765}"
APT_REPO_PIDFILE="${APT_REPO_PIDFILE:-/var/run/buildx-host-apt-repo.pid}"
APT_REPO_LOG="${APT_REPO_LOG:-/var/log/buildx-host-apt-repo.log}"
URL="http://127.0.0.1:${APT_REPO_PORT}"

log() { echo "serve-apt-repo: $*" >&2; }

serves_repo() { curl -fsS -o /dev/null "${URL}/debian/gpg" 2>/dev/null; }

start() {
  local dir="${APT_REPO_DIR:-}"
  [[ -n "${dir}" ]] || dir="$("${INFRA_DIR}/build-apt-repo.sh")"
  start_server "${APT_REPO_PIDFILE}" "${APT_REPO_LOG}" serves_repo -- \
    python3 -m http.server --bind 127.0.0.1 --directory "${dir}" "${APT_REPO_PORT}"
  log "the stand-in for Docker's apt repo (${dir}) is on ${URL}"
  echo "${URL}"
}

stop() { stop_server "${APT_REPO_PIDFILE}"; }

fingerprint() {
  local home value
  home="$(mktemp -d)"
  value="$(curl -fsS "${URL}/debian/gpg" | GNUPGHOME="${home}" gpg --batch --with-colons --show-keys 2>/dev/null |
    awk -F: '$1 == "fpr" { print $10; exit }')"
  rm -rf "${home}"
  [[ -n "${value}" ]] || { log "no key to read at ${URL}/debian/gpg; run: $0 start"; return 1; }
  echo "${value}"
}

main() {
  case "${1:-}" in
    start) start ;;
    stop) stop ;;
    fingerprint) fingerprint ;;
    *)
      echo "usage: $0 start|stop|fingerprint" >&2
      return 2
      ;;
  esac
}

main "$@"
