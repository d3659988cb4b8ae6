#!/usr/bin/env bash
# A stand-in for a cloud's instance metadata service, inside network namespaces of its own, to
# prove what the metadata guard's ruleset (components/scripts/metadata-guard.sh) lets through.
# Nothing leaves the namespaces: no packet goes to a real 169.254.169.254 or to this machine's
# network, and the machine's own ruleset is never touched.
#
#   bxh-md-client  10.254.1.2/30, default via the router  — a build container on Docker's bridge
#   bxh-md-router  10.254.1.1/30 | 10.254.2.1/30, ip_forward=1 — the host
#   bxh-md-imds    10.254.2.2/30 and 169.254.169.254/32 on its veth, HTTP on port 80 — the IMDS
#
# Usage:
#   metadata-standin.sh start               builds the namespaces and starts the HTTP server
#   metadata-standin.sh check RULESET_FILE  measures without the ruleset (client and a non-root
#                                           process of the router must reach the service), loads
#                                           RULESET_FILE into the router namespace only, then
#                                           prints one line per case:
#                                             forwarded=refused|reached  (client, routed)
#                                             nonroot=refused|reached    (router, uid 65534)
#                                             root=refused|reached       (router, uid 0)
#                                           and fails unless forwarded=refused, nonroot=refused,
#                                           root=reached; the router's ruleset is emptied again
#   metadata-standin.sh stop                removes everything start made (idempotent)
# Environment (defaults in brackets):
#   STANDIN_DIR  [/run/bxh-md-standin]   pid file, server log and served directory
# Needs: ip (iproute2), nft, curl, setpriv, python3; runs as root.
set -euo pipefail

readonly CLIENT_NS=bxh-md-client
readonly ROUTER_NS=bxh-md-router
readonly IMDS_NS=bxh-md-imds
readonly IMDS_ADDRESS=169.254.169.254
readonly URL="http://${IMDS_ADDRESS}/"
readonly BODY="bxh-md-standin-ok"
STANDIN_DIR="${STANDIN_DIR:-/run/bxh-md-standin}"
PIDFILE="${STANDIN_DIR}/http.pid"
SERVER_LOG="${STANDIN_DIR}/http.log"
WWW_DIR="${STANDIN_DIR}/www"

log() { printf 'metadata-standin: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

require_tools() {
  local tool
  ((EUID == 0)) || die "run as root (network namespaces)"
  for tool in ip nft curl setpriv python3; do
    command -v "${tool}" >/dev/null 2>&1 || die "${tool} is missing"
  done
}

ns_exists() { ip netns list | awk '{ print $1 }' | grep -qxF "$1"; }
in_ns() {
  local ns="$1"
  shift
  ip netns exec "${ns}" "$@"
}

# The pid of our HTTP server while it runs (checked by its command line, not just the number).
server_pid() {
  local pid
  [[ -f "${PIDFILE}" ]] || return 1
  pid="$(cat "${PIDFILE}")"
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
  kill -0 "${pid}" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -q "http.server.*--bind ${IMDS_ADDRESS}" || return 1
  echo "${pid}"
}

# 0 when curl, run as "$@" (a command prefix), fetches the stand-in's body; no proxy, 3 seconds.
fetches() {
  local body
  body="$("$@" curl --noproxy '*' -fsS --max-time 3 "${URL}" 2>/dev/null)" || return 1
  [[ "${body}" == "${BODY}" ]]
}

outcome() { if fetches "$@"; then echo reached; else echo refused; fi; }

from_client() { in_ns "${CLIENT_NS}" "$@"; }
from_router_root() { in_ns "${ROUTER_NS}" "$@"; }
from_router_nonroot() { in_ns "${ROUTER_NS}" setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

build_namespaces() {
  local ns
  for ns in "${CLIENT_NS}" "${ROUTER_NS}" "${IMDS_NS}"; do
    ip netns add "${ns}"
    ip -n "${ns}" link set lo up
  done
  # Both veth pairs are made inside the namespaces: nothing appears in this machine's namespace.
  ip -n "${ROUTER_NS}" link add bxh-md-c1 type veth peer name bxh-md-c0 netns "${CLIENT_NS}"
  ip -n "${ROUTER_NS}" link add bxh-md-i1 type veth peer name bxh-md-i0 netns "${IMDS_NS}"

  ip -n "${CLIENT_NS}" addr add 10.254.1.2/30 dev bxh-md-c0
  ip -n "${CLIENT_NS}" link set bxh-md-c0 up
  ip -n "${CLIENT_NS}" route add default via 10.254.1.1

  ip -n "${ROUTER_NS}" addr add 10.254.1.1/30 dev bxh-md-c1
  ip -n "${ROUTER_NS}" addr add 10.254.2.1/30 dev bxh-md-i1
  ip -n "${ROUTER_NS}" link set bxh-md-c1 up
  ip -n "${ROUTER_NS}" link set bxh-md-i1 up
  ip -n "${ROUTER_NS}" route add "${IMDS_ADDRESS}/32" via 10.254.2.2
  in_ns "${ROUTER_NS}" sysctl -q -w net.ipv4.ip_forward=1

  ip -n "${IMDS_NS}" addr add 10.254.2.2/30 dev bxh-md-i0
  ip -n "${IMDS_NS}" addr add "${IMDS_ADDRESS}/32" dev bxh-md-i0
  ip -n "${IMDS_NS}" link set bxh-md-i0 up
  ip -n "${IMDS_NS}" route add default via 10.254.2.1
}

start_server() {
  local tries=0
  mkdir -p "${WWW_DIR}"
  printf '%s' "${BODY}" >"${WWW_DIR}/index.html"
  ip netns exec "${IMDS_NS}" python3 -u -m http.server --bind "${IMDS_ADDRESS}" \
    --directory "${WWW_DIR}" 80 </dev/null >>"${SERVER_LOG}" 2>&1 &
  echo $! >"${PIDFILE}"
  until fetches in_ns "${IMDS_NS}"; do
    ((tries += 1))
    if ((tries > 150)); then
      tail -n 10 "${SERVER_LOG}" >&2 || true
      die "the HTTP server in ${IMDS_NS} did not start"
    fi
    sleep 0.2
  done
  log "serving ${URL} in ${IMDS_NS} (pid $(server_pid))"
}

cmd_stop() {
  local pid ns
  if pid="$(server_pid)"; then
    kill "${pid}"
    log "stopped the HTTP server (pid ${pid})"
  fi
  rm -f "${PIDFILE}"
  for ns in "${CLIENT_NS}" "${ROUTER_NS}" "${IMDS_NS}"; do
    if ns_exists "${ns}"; then
      ip netns delete "${ns}"
      log "deleted namespace ${ns}"
    fi
  done
  rm -rf "${STANDIN_DIR}"
}

cmd_start() {
  require_tools
  cmd_stop
  mkdir -p "${STANDIN_DIR}"
  trap 'log "start failed; cleaning up"; cmd_stop' EXIT
  build_namespaces
  start_server
  trap - EXIT
  log "namespaces ${CLIENT_NS} -> ${ROUTER_NS} -> ${IMDS_NS} ready"
}

cmd_check() {
  local file="${1:-}" forwarded nonroot root
  [[ -n "${file}" && -r "${file}" ]] || die "usage: $0 check RULESET_FILE (a readable nftables file)"
  require_tools
  if ! server_pid >/dev/null || ! ns_exists "${CLIENT_NS}" || ! ns_exists "${ROUTER_NS}"; then
    die "the stand-in is not running; run '$0 start' first"
  fi

  # Controls: with the router's ruleset empty, both ways must reach the service.
  in_ns "${ROUTER_NS}" nft flush ruleset
  fetches from_client || die "control failed: the client does not reach ${URL} without the ruleset"
  fetches from_router_nonroot || die "control failed: uid 65534 in the router does not reach ${URL} without the ruleset"
  log "controls without the ruleset: forwarded=reached nonroot=reached"

  in_ns "${ROUTER_NS}" nft -f "${file}"
  # Loading twice must work (the file is meant to be idempotent) and leave one copy of each rule.
  in_ns "${ROUTER_NS}" nft -f "${file}"
  forwarded="$(outcome from_client)"
  nonroot="$(outcome from_router_nonroot)"
  root="$(outcome from_router_root)"
  printf 'forwarded=%s\nnonroot=%s\nroot=%s\n' "${forwarded}" "${nonroot}" "${root}"
  log "the router's ruleset after the cases:"
  in_ns "${ROUTER_NS}" nft list ruleset >&2
  in_ns "${ROUTER_NS}" nft flush ruleset

  [[ "${forwarded}" == refused && "${nonroot}" == refused && "${root}" == reached ]] \
    || die "expected forwarded=refused nonroot=refused root=reached"
}

main() {
  case "${1:-}" in
    start) cmd_start ;;
    check) cmd_check "${2:-}" ;;
    stop) cmd_stop ;;
    *) die "usage: $0 start | check RULESET_FILE | stop" ;;
  esac
}

main "$@"
