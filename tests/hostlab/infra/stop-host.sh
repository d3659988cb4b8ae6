#!/usr/bin/env bash
# Stop and remove a lab host started by start-host.sh, with its engine volumes and state dir.
#
# Environment (defaults in brackets):
#   HOSTLAB_NAME       [buildx-host-lab]  (or the first argument)
#   HOSTLAB_STATE_DIR  [/var/tmp/buildx-host-lab/<name>]
set -euo pipefail

HOSTLAB_NAME="${1:-${HOSTLAB_NAME:-buildx-host-lab}}"
HOSTLAB_STATE_DIR="${HOSTLAB_STATE_DIR:-/var/tmp/buildx-host-lab/${HOSTLAB_NAME}}"

log() { echo "stop-host: $*" >&2; }

main() {
  if docker container inspect "${HOSTLAB_NAME}" >/dev/null 2>&1; then
    # systemd stops its services cleanly on SIGRTMIN+3 (the container's stop signal).
    docker stop "${HOSTLAB_NAME}" >/dev/null || true
    docker rm -f "${HOSTLAB_NAME}" >/dev/null
    log "removed container ${HOSTLAB_NAME}"
  else
    log "no container ${HOSTLAB_NAME}; nothing to stop"
  fi
  docker volume rm -f "${HOSTLAB_NAME}-docker" "${HOSTLAB_NAME}-containerd" >/dev/null
  # Lab hosts share this machine's network namespace, and so one metadata guard table: the last
  # host to go removes it, while another (a kept host, a concurrent run's) still relies on it.
  local others
  others="$(docker ps --filter label=buildx-host-lab=host --format '{{.Names}}')"
  if [[ -n "${others}" ]]; then
    log "the metadata guard table stays: lab hosts still running: ${others//$'\n'/ }"
  elif command -v nft >/dev/null 2>&1 && nft list table inet buildx_host_metadata_guard >/dev/null 2>&1; then
    nft delete table inet buildx_host_metadata_guard
    log "removed the host's metadata guard table from this machine's network namespace"
  fi
  rm -rf "${HOSTLAB_STATE_DIR}"
}

main "$@"
