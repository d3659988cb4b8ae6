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
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}
