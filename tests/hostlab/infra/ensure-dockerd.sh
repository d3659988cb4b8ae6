#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine for the host lab.
#
# The lab machines run no engine and no systemd, so this installs Debian's docker.io
# (when dockerd is missing) and starts dockerd in the background. Docker bridge
# networks would use 172.17.x addresses, which lab traffic must never touch, so the
# daemon runs without a bridge and without iptables rules; every lab container uses
# --network host or --network none.
#
# Environment (defaults in brackets):
#   DOCKER_SOCKET        [/var/run/docker.sock]  socket the engine listens on
#   DOCKERD_LOG          [/var/log/buildx-host-dockerd.log]
#   DOCKERD_PIDFILE      [/var/run/buildx-host-dockerd.pid]
#   DOCKERD_WAIT_SECONDS [120]  how long to wait for the engine to answer
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOCKER_SOCKET="${DOCKER_SOCKET:-/var/run/docker.sock}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/buildx-host-dockerd.log}"
DOCKERD_PIDFILE="${DOCKERD_PIDFILE:-/var/run/buildx-host-dockerd.pid}"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-120}"

log() { echo "ensure-dockerd: $*" >&2; }

engine_answers() {
  [[ -S "${DOCKER_SOCKET}" ]] && docker -H "unix://${DOCKER_SOCKET}" version -f '{{.Server.Version}}' >/dev/null 2>&1
}

install_dockerd() {
  if command -v dockerd >/dev/null 2>&1; then
    return 0
  fi
  log "dockerd missing: installing Debian's docker.io"
  # No init system manages services here: keep the package scripts from trying to start one.
  local policy=/usr/sbin/policy-rc.d had_policy=false
  [[ -e "${policy}" ]] && had_policy=true
  if [[ "${had_policy}" == false ]]; then
    printf '#!/bin/sh\nexit 101\n' >"${policy}"
    chmod 0755 "${policy}"
  fi
  local rc=0
  install_packages docker.io || rc=$?
  [[ "${had_policy}" == false ]] && rm -f "${policy}"
  if [[ "${rc}" -ne 0 ]]; then
    log "apt-get failed (exit ${rc}) installing docker.io; check that deb.debian.org is reachable"
    return "${rc}"
  fi
}

start_dockerd() {
  if live_pid "${DOCKERD_PIDFILE}" >/dev/null; then
    log "dockerd (pid $(live_pid "${DOCKERD_PIDFILE}")) is starting already; waiting"
    return 0
  fi
  log "starting dockerd (no bridge, no iptables), log ${DOCKERD_LOG}"
  # --pidfile is dockerd's own lock file; setsid detaches it from this shell's job control.
  setsid dockerd \
    --host "unix://${DOCKER_SOCKET}" \
    --pidfile "${DOCKERD_PIDFILE}" \
    --bridge=none --iptables=false --ip6tables=false \
    </dev/null >>"${DOCKERD_LOG}" 2>&1 &
}

wait_for_engine() {
  local deadline=$((SECONDS + DOCKERD_WAIT_SECONDS))
  until engine_answers; do
    if ((SECONDS >= deadline)); then
      log "engine did not answer within ${DOCKERD_WAIT_SECONDS}s; last log lines:"
      tail -n 20 "${DOCKERD_LOG}" >&2 || true
      return 1
    fi
    sleep 1
  done
}

main() {
  if engine_answers; then
    log "engine already answers on ${DOCKER_SOCKET} (server $(docker -H "unix://${DOCKER_SOCKET}" version -f '{{.Server.Version}}')); nothing to do"
    return 0
  fi
  install_dockerd
  start_dockerd
  wait_for_engine
  log "engine answers on ${DOCKER_SOCKET} (server $(docker -H "unix://${DOCKER_SOCKET}" version -f '{{.Server.Version}}'))"
}

main "$@"
