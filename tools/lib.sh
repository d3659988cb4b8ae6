# shellcheck shell=bash
# Shared by tools/build-pulumi.sh and tools/build-plugins.sh (sourced, never run on its own): logging,
# the Go environment under this project's cache directory, the toolchain check, and the fingerprint
# stamps that let a second run with the same pins rebuild nothing.
#
# The sourcing script sets LOG_PREFIX (its own name, e.g. build-pulumi) first.
#
# Inputs (environment variables, with defaults):
#   CACHE_DIR   /var/cache/buildx-host              root of this project's machine-local caches
#   GOMODCACHE  $CACHE_DIR/gopath/pkg/mod           Go module download cache
#   GOCACHE     $CACHE_DIR/go-build                 Go build cache

: "${LOG_PREFIX:?set LOG_PREFIX before sourcing tools/lib.sh}"

CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
export GOMODCACHE="${GOMODCACHE:-${CACHE_DIR}/gopath/pkg/mod}"
export GOCACHE="${GOCACHE:-${CACHE_DIR}/go-build}"
# The go.sum files are the pins: never let a build rewrite them.
export GOFLAGS="-mod=readonly -buildvcs=false"

log() { printf '%s: %s\n' "${LOG_PREFIX}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Fails unless `go` is on PATH and at least as new as the 'go' line of the given go.mod.
require_go() {
  local gomod="$1"
  command -v go >/dev/null || die "go is not on PATH; install Go >= the 'go' line of ${gomod}"
  local wanted
  wanted="$(awk '$1 == "go" { print $2; exit }' "${gomod}")"
  # The go command itself refuses a module that needs a newer toolchain; say why before it does.
  if [[ "$(printf '%s\n%s\n' "${wanted}" "$(go env GOVERSION | sed 's/^go//')" | sort -V | head -n1)" != "${wanted}" ]]; then
    die "$(go env GOVERSION) is older than go ${wanted} required by ${gomod}"
  fi
}

# Everything that changes a binary: the given pin files (go.mod, go.sum, source archive), the
# toolchain and the linker flags.
build_fingerprint() {
  local ldflags="$1"
  shift
  {
    cat "$@"
    go env GOVERSION GOOS GOARCH
    printf '%s\n' "${ldflags}"
  } | sha256sum | cut -d' ' -f1
}

# Succeeds when <binary> exists and <stamp> records <fingerprint>, i.e. it was built from these pins.
is_up_to_date() {
  local binary="$1" stamp="$2" fingerprint="$3"
  [[ -x "${binary}" && -f "${stamp}" && "$(cat "${stamp}")" == "${fingerprint}" ]]
}

# Builds <go build args> in <src_dir> into <out>, through a temporary file beside it so that a failed
# or concurrent build never leaves a partial binary at <out>.
go_build() {
  local src_dir="$1" out="$2" ldflags="$3" what="$4"
  shift 4
  local tmp
  tmp="$(dirname "${out}")/.$(basename "${out}").$$"
  (cd "${src_dir}" && nice go build -trimpath -ldflags "${ldflags}" -o "${tmp}" "$@") \
    || { rm -f "${tmp}"; die "go build of ${what} failed"; }
  mv -f "${tmp}" "${out}"
}

# Builds <what> into <out> with `go build <args>` in the directory <source-command> prints (run only
# when a build is needed: it may unpack an archive), unless the stamp beside <out> records the same
# fingerprint of <pin files>, toolchain and linker flags. Prints "true" when it built, "false" when
# <out> was already up to date.
# Usage: build_if_changed WHAT OUT LDFLAGS SOURCE-COMMAND PIN-FILE... -- GO-BUILD-ARG...
build_if_changed() {
  local what="$1" out="$2" ldflags="$3" source_command="$4" pins=()
  shift 4
  while [[ "$1" != -- ]]; do
    pins+=("$1")
    shift
  done
  shift
  local stamp fingerprint src started
  stamp="$(dirname "${out}")/.$(basename "${out}").fingerprint"
  fingerprint="$(build_fingerprint "${ldflags}" "${pins[@]}")"
  if is_up_to_date "${out}" "${stamp}" "${fingerprint}"; then
    log "${what} already built in $(dirname "${out}") (pins and toolchain unchanged); not rebuilding"
    echo false
    return
  fi
  src="$(${source_command})"
  log "building ${what} with $(go env GOVERSION) (2-core machine: takes minutes cold)"
  started="$(date +%s)"
  go_build "${src}" "${out}" "${ldflags}" "${what}" "$@"
  printf '%s\n' "${fingerprint}" >"${stamp}"
  log "built ${what} in $(($(date +%s) - started))s"
  echo true
}
