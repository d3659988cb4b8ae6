# shellcheck shell=bash
# Functions the host-lab scripts share; each script defines its own log().

# Installs Debian packages on this machine, refreshing the package lists when apt cannot get them.
install_packages() {
  local install=(apt-get install -y -q -o DPkg::Lock::Timeout=600 "$@")
  DEBIAN_FRONTEND=noninteractive "${install[@]}" </dev/null >&2 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2 &&
      DEBIAN_FRONTEND=noninteractive "${install[@]}" </dev/null >&2; }
}

# Prints the pid recorded in the pid file $1 while that process lives; fails otherwise.
live_pid() {
  local pid
  [[ -f "$1" ]] || return 1
  pid="$(cat "$1")"
  [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null && echo "${pid}"
}

# Starts a loopback server in its own session unless the one in pid file $1 already answers the
# check command $3; logs to $2. Usage: start_server PIDFILE LOG CHECK -- COMMAND...
start_server() {
  local pidfile="$1" logfile="$2" check="$3" tries=0
  shift 4
  if live_pid "${pidfile}" >/dev/null && ${check}; then
    log "already serving (pid $(live_pid "${pidfile}"))"
    return 0
  fi
  stop_server "${pidfile}"
  setsid "$@" </dev/null >>"${logfile}" 2>&1 &
  echo $! >"${pidfile}"
  until ${check}; do
    ((tries += 1))
    if ((tries > 100)) || ! live_pid "${pidfile}" >/dev/null; then
      log "$1 did not start; its log:"
      tail -n 10 "${logfile}" >&2 || true
      return 1
    fi
    sleep 0.2
  done
  log "started $1 (pid $(live_pid "${pidfile}"))"
}

# Stops the server recorded in pid file $1, if it runs.
stop_server() {
  local pid
  if pid="$(live_pid "$1")"; then
    kill "${pid}"
    log "stopped pid ${pid}"
  fi
  rm -f "$1"
}
