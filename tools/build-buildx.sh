#!/usr/bin/env bash
# Builds the pinned buildx (the `docker buildx` CLI plugin) from Go modules into a cache directory
# outside the repository.
#
# The lab's clients need a current buildx: Debian's docker-buildx package is far behind, and buildx's
# release binaries come from GitHub, which this project's machines cannot reach; the Go module proxy
# can. The version is pinned by tools/buildx/go.mod, a wrapper module whose `tool` directive is
# github.com/docker/buildx/cmd/buildx (go get -tool …@<version>, then go mod tidy), so the go.sum
# beside it fixes every dependency. Built as upstream's Dockerfile builds it: CGO_ENABLED=0,
# -trimpath, -ldflags "-s -w" and the version package stamped, so `docker buildx version` prints
# "github.com/docker/buildx <version> <version>" (the Go module proxy gives no commit, so the
# revision is the module version too).
#
# Layout:
#   $BUILDX_TOOLS_DIR/docker-buildx   the plugin, to copy to /usr/libexec/docker/cli-plugins/ (or
#                                     ~/.docker/cli-plugins/)
#
# Inputs (environment variables, with defaults):
#   CACHE_DIR         /var/cache/buildx-host              root of this project's machine-local caches
#   BUILDX_TOOLS_DIR  $CACHE_DIR/tools/buildx-<version from tools/buildx/go.mod>
#   GOMODCACHE        $CACHE_DIR/gopath/pkg/mod           Go module download cache
#   GOCACHE           $CACHE_DIR/go-build                 Go build cache
# (CACHE_DIR, GOMODCACHE, GOCACHE, logging, the toolchain check and the fingerprint: tools/lib.sh.)
#
# Prints, as its last line, the absolute path of the plugin binary. A second run with the same pins
# and Go toolchain rebuilds nothing and says so.

set -euo pipefail

WRAPPER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/buildx" && pwd)"
readonly WRAPPER_DIR
readonly BUILDX_MODULE="github.com/docker/buildx"
readonly CLI_PACKAGE="${BUILDX_MODULE}/cmd/buildx"
readonly LOG_PREFIX="build-buildx"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# A static binary, as upstream's: it runs in any client image whatever its libc.
export CGO_ENABLED=0

# The pinned buildx version is the one tools/buildx/go.mod requires; nothing else repeats it.
pinned_version() {
  (cd "${WRAPPER_DIR}" && go list -m -f '{{.Version}}' "${BUILDX_MODULE}")
}

# Prints "true" when it built the plugin, "false" when the cached one already matches the pins.
build_plugin() {
  local version="$1" bin="$2" ldflags
  ldflags="-s -w -X ${BUILDX_MODULE}/version.Version=${version} -X ${BUILDX_MODULE}/version.Revision=${version}"
  ldflags+=" -X ${BUILDX_MODULE}/version.Package=${BUILDX_MODULE}"
  # CGO_ENABLED is part of what makes the binary: fingerprint it with the pins.
  build_if_changed "buildx ${version}" "${bin}" "${ldflags}" "echo ${WRAPPER_DIR}" \
    "${WRAPPER_DIR}/go.mod" "${WRAPPER_DIR}/go.sum" <(printf 'CGO_ENABLED=%s\n' "${CGO_ENABLED}") -- "${CLI_PACKAGE}"
}

verify_plugin() {
  local version="$1" bin="$2" reported expected
  # Run outside the docker CLI, the plugin runs standalone; it needs no daemon for `version`.
  reported="$("${bin}" version)"
  expected="${BUILDX_MODULE} ${version} ${version}"
  [[ "${reported}" == "${expected}" ]] || die "${bin} version reports '${reported}', expected '${expected}'"
}

main() {
  require_go "${WRAPPER_DIR}/go.mod"
  local version tools_dir bin changed
  version="$(pinned_version)"
  tools_dir="${BUILDX_TOOLS_DIR:-${CACHE_DIR}/tools/buildx-${version}}"
  mkdir -p "${tools_dir}"
  tools_dir="$(cd "${tools_dir}" && pwd)"
  bin="${tools_dir}/docker-buildx"

  changed="$(build_plugin "${version}" "${bin}")"
  verify_plugin "${version}" "${bin}"
  [[ "${changed}" == true ]] || log "nothing to do: ${bin} is up to date"
  printf '%s\n' "${bin}"
}

main "$@"
