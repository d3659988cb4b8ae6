#!/usr/bin/env bash
# Serve a container registry on loopback that stands in for Docker Hub (or a company mirror):
# no registry is reachable here, and `pulumi up` must pull the pinned BuildKit image on the host
# like it does in the field. The program's `buildkitImage` setting, made for mirrors, points at it.
#
# The server is Debian's docker-registry (distribution 2.8), unpacked from its .deb without
# installing the package: the package would start a system service on every interface.
#
# Usage:
#   serve-registry.sh start          prints the registry's address (127.0.0.1:<port>)
#   serve-registry.sh push IMAGE     copies a local image of this machine's engine into the
#                                    registry; prints the reference to pull (<address>/IMAGE)
#   serve-registry.sh stop
# Environment (defaults in brackets):
# (Not REGISTRY_*: the registry reads variables of that prefix as settings of its own.)
#   LAB_REGISTRY_PORT     [5000]
#   CACHE_DIR         [/var/cache/buildx-host]   the binary and the stored images live under it
#   LAB_REGISTRY_PIDFILE  [/var/run/buildx-host-registry.pid]
#   LAB_REGISTRY_LOG      [/var/log/buildx-host-registry.log]
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LAB_REGISTRY_PORT="${LAB_REGISTRY_PORT:-5000}"
CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
LAB_REGISTRY_PIDFILE="${LAB_REGISTRY_PIDFILE:-/var/run/buildx-host-registry.pid}"
LAB_REGISTRY_LOG="${LAB_REGISTRY_LOG:-/var/log/buildx-host-registry.log}"
ADDRESS="127.0.0.1:${LAB_REGISTRY_PORT}"
REGISTRY_DIR="${CACHE_DIR}/registry"
BINARY="${REGISTRY_DIR}/root/usr/bin/docker-registry"

log() { echo "serve-registry: $*" >&2; }

answers() { curl -fsS -o /dev/null "http://${ADDRESS}/v2/" 2>/dev/null; }

ensure_binary() {
  [[ -x "${BINARY}" ]] && return 0
  local download
  download="$(mktemp -d)"
  chmod 0755 "${download}" # apt fetches as the _apt user
  log "fetching Debian's docker-registry package"
  (cd "${download}" && apt-get download docker-registry >&2) ||
    { apt-get update -q >&2 && (cd "${download}" && apt-get download docker-registry >&2); }
  mkdir -p "${REGISTRY_DIR}/root"
  dpkg-deb -x "${download}"/docker-registry_*.deb "${REGISTRY_DIR}/root"
  rm -rf "${download}"
}

write_config() {
  mkdir -p "${REGISTRY_DIR}/data"
  cat >"${REGISTRY_DIR}/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${REGISTRY_DIR}/data
  delete:
    enabled: true
http:
  addr: ${ADDRESS}
CONFIG
}

start() {
  ensure_binary
  write_config
  start_server "${LAB_REGISTRY_PIDFILE}" "${LAB_REGISTRY_LOG}" answers -- "${BINARY}" serve "${REGISTRY_DIR}/config.yml"
  echo "${ADDRESS}"
}

# Docker treats registries on 127.0.0.0/8 as insecure by default, so plain HTTP needs no daemon setting.
push() {
  local image="$1" ref="${ADDRESS}/$1" digest
  answers || { log "no registry on ${ADDRESS}; run: $0 start"; return 1; }
  docker tag "${image}" "${ref}"
  docker push -q "${ref}" >&2
  # Pinned as a user should pin it: tag and digest, the digest the registry now serves.
  digest="$(docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "${ref}" | grep -m1 -F "${ADDRESS}/${image%:*}@")" ||
    { log "the registry gave ${ref} no digest"; return 1; }
  log "pushed ${image} as ${ref} (${digest#*@})"
  echo "${ref}@${digest#*@}"
}

stop() { stop_server "${LAB_REGISTRY_PIDFILE}"; }

main() {
  case "${1:-}" in
    start) start ;;
    push) push "${2:?usage: $0 push IMAGE}" ;;
    stop) stop ;;
    *)
      echo "usage: $0 start|push IMAGE|stop" >&2
      return 2
      ;;
  esac
}

main "$@"
