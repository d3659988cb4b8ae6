#!/usr/bin/env bash
# Serve a container registry on loopback that stands in for Docker Hub (or a company mirror):
# no registry is reachable here, and `pulumi up` must pull the pinned BuildKit image on the host
# like it does in the field. The program's `buildkitImage` setting, made for mirrors, points at it.
#
# The server is Debian's docker-registry (distribution 2.8), unpacked from its .deb without
# installing the package: the package would start a system service on every interface.
#
# A second instance, on another port, needs a login (htpasswd, bcrypt): a CI workflow's registry
# login must really be needed there, and really travel from the client to BuildKit. Its password
# is made on first start and kept in a root-only file; the bcrypt hash comes from PyPI's bcrypt
# (pinned), installed under $CACHE_DIR.
#
# Usage:
#   serve-registry.sh start          prints the registry's address (127.0.0.1:<port>)
#   serve-registry.sh push IMAGE     copies a local image of this machine's engine into the
#                                    registry; prints the reference to pull (<address>/IMAGE)
#   serve-registry.sh start-login    starts the instance that needs a login; prints
#                                    LAB_LOGIN_REGISTRY=<address>, LAB_LOGIN_REGISTRY_USER=… and
#                                    LAB_LOGIN_REGISTRY_PASSWORD=…
#   serve-registry.sh stop           stops both
# Environment (defaults in brackets):
# (Not REGISTRY_*: the registry reads variables of that prefix as settings of its own.)
#   LAB_REGISTRY_PORT     [5000]
#   LAB_LOGIN_REGISTRY_PORT [5001]
#   CACHE_DIR         [/var/cache/buildx-host]   the binary and the stored images live under it
#   LAB_REGISTRY_PIDFILE  [/var/run/buildx-host-registry.pid]  (the login instance: …-login.pid)
#   LAB_REGISTRY_LOG      [/var/log/buildx-host-registry.log]  (the login instance: …-login.log)
#   BCRYPT_VERSION        [5.0.0]
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LAB_REGISTRY_PORT="${LAB_REGISTRY_PORT:-5000}"
CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
LAB_REGISTRY_PIDFILE="${LAB_REGISTRY_PIDFILE:-/var/run/buildx-host-registry.pid}"
LAB_REGISTRY_LOG="${LAB_REGISTRY_LOG:-/var/log/buildx-host-registry.log}"
LOGIN_PIDFILE="${LAB_REGISTRY_PIDFILE%.pid}-login.pid"
LAB_LOGIN_REGISTRY_PORT="${LAB_LOGIN_REGISTRY_PORT:-5001}"
BCRYPT_VERSION="${BCRYPT_VERSION:-5.0.0}"
ADDRESS="127.0.0.1:${LAB_REGISTRY_PORT}"
LOGIN_ADDRESS="127.0.0.1:${LAB_LOGIN_REGISTRY_PORT}"
REGISTRY_DIR="${CACHE_DIR}/registry"
LOGIN_DIR="${REGISTRY_DIR}/login"
LOGIN_USER=lab-ci
BINARY="${REGISTRY_DIR}/root/usr/bin/docker-registry"
BCRYPT_DIR="${CACHE_DIR}/python-bcrypt-${BCRYPT_VERSION}"

log() { echo "serve-registry: $*" >&2; }

answers() { curl -fsS -o /dev/null "http://${ADDRESS}/v2/" 2>/dev/null; }

# The login instance answers the user with the password, and nobody without it.
login_answers() {
  curl -fsS -o /dev/null -K - "http://${LOGIN_ADDRESS}/v2/" 2>/dev/null <<<"user = \"${LOGIN_USER}:$(cat "${LOGIN_DIR}/password")\"" &&
    [[ "$(curl -sS -o /dev/null -w '%{http_code}' "http://${LOGIN_ADDRESS}/v2/")" == 401 ]]
}

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

# write_config DIR ADDRESS [HTPASSWD]: the instance's config in DIR, its images in DIR/data.
write_config() {
  local dir="$1" address="$2" htpasswd="${3:-}"
  mkdir -p "${dir}/data"
  cat >"${dir}/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${dir}/data
  delete:
    enabled: true
http:
  addr: ${address}
CONFIG
  [[ -z "${htpasswd}" ]] || printf 'auth:\n  htpasswd:\n    realm: buildx-host-lab\n    path: %s\n' "${htpasswd}" >>"${dir}/config.yml"
}

ensure_bcrypt() {
  [[ -f "${BCRYPT_DIR}/bcrypt/__init__.py" ]] && return 0
  log "installing bcrypt==${BCRYPT_VERSION} from PyPI"
  rm -rf "${BCRYPT_DIR}.tmp"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "${BCRYPT_DIR}.tmp" \
    "bcrypt==${BCRYPT_VERSION}" >&2
  mv "${BCRYPT_DIR}.tmp" "${BCRYPT_DIR}"
}

# The login's password (made once, root only) and its htpasswd line, the password read from stdin.
write_login() {
  ensure_bcrypt
  mkdir -p "${LOGIN_DIR}"
  if [[ ! -s "${LOGIN_DIR}/password" ]]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"${LOGIN_DIR}/password.tmp")
    mv "${LOGIN_DIR}/password.tmp" "${LOGIN_DIR}/password"
  fi
  PYTHONPATH="${BCRYPT_DIR}" python3 -c 'import sys, bcrypt
print(sys.argv[1] + ":" + bcrypt.hashpw(sys.stdin.read().encode(), bcrypt.gensalt()).decode())' "${LOGIN_USER}" \
    <"${LOGIN_DIR}/password" >"${LOGIN_DIR}/htpasswd"
}

start() {
  ensure_binary
  write_config "${REGISTRY_DIR}" "${ADDRESS}"
  start_server "${LAB_REGISTRY_PIDFILE}" "${LAB_REGISTRY_LOG}" answers -- "${BINARY}" serve "${REGISTRY_DIR}/config.yml"
  echo "${ADDRESS}"
}

start_login() {
  ensure_binary
  # A running instance keeps the htpasswd it read at start: write a new one only to start one.
  if ! { live_pid "${LOGIN_PIDFILE}" >/dev/null && login_answers; }; then
    write_login
  fi
  write_config "${LOGIN_DIR}" "${LOGIN_ADDRESS}" "${LOGIN_DIR}/htpasswd"
  start_server "${LOGIN_PIDFILE}" "${LAB_REGISTRY_LOG%.log}-login.log" login_answers -- "${BINARY}" serve "${LOGIN_DIR}/config.yml"
  printf 'LAB_LOGIN_REGISTRY=%s\nLAB_LOGIN_REGISTRY_USER=%s\nLAB_LOGIN_REGISTRY_PASSWORD=%s\n' \
    "${LOGIN_ADDRESS}" "${LOGIN_USER}" "$(cat "${LOGIN_DIR}/password")"
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

stop() {
  stop_server "${LAB_REGISTRY_PIDFILE}"
  stop_server "${LOGIN_PIDFILE}"
}

main() {
  case "${1:-}" in
    start) start ;;
    push) push "${2:?usage: $0 push IMAGE}" ;;
    start-login) start_login ;;
    stop) stop ;;
    *)
      echo "usage: $0 start|push IMAGE|start-login|stop" >&2
      return 2
      ;;
  esac
}

main "$@"
