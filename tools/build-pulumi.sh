#!/usr/bin/env bash
# Builds the pinned Pulumi CLI from Go modules into a cache directory outside the repository.
#
# npm's `pulumi` package and `pulumi plugin install` download binaries from GitHub at run time, which
# this project's machines cannot reach; the Go module proxy can. The version is pinned by
# tools/pulumi-cli/go.mod (a wrapper module: `go install github.com/pulumi/pulumi/pkg/v3/...@version`
# refuses pkg/v3 because its go.mod has replace directives).
#
# Its two plugins, the Node.js language host and the command provider, are modules the Go module
# proxy refuses ("403 Forbidden: This module version is not available"); tools/build-plugins.sh
# builds them from vendored upstream source, next to this CLI.
#
# Layout, so that Automation API's `PulumiCommand.get({ root: PULUMI_TOOLS_DIR })` finds the CLI:
#   $PULUMI_TOOLS_DIR/bin/pulumi                         the CLI, `pulumi version` prints the pinned version
#   $PULUMI_TOOLS_DIR/home/                              a PULUMI_HOME for plugins and credentials
#
# Inputs (environment variables, with defaults):
#   CACHE_DIR  /var/cache/buildx-host              root of this project's machine-local caches
#   PULUMI_TOOLS_DIR   $CACHE_DIR/tools/pulumi-<version from tools/pulumi-cli/go.mod>
#   GOMODCACHE         $CACHE_DIR/gopath/pkg/mod   Go module download cache
#   GOCACHE            $CACHE_DIR/go-build         Go build cache
# (CACHE_DIR, GOMODCACHE, GOCACHE, logging, the toolchain check and the fingerprint: tools/lib.sh.)
#
# Prints, as its last line, one JSON object: {"tool":"pulumi","version":…,"bin":…,"home":…,"changed":…}.
# A second run with the same pins and Go toolchain rebuilds nothing and says so.

set -euo pipefail

WRAPPER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/pulumi-cli" && pwd)"
readonly WRAPPER_DIR
readonly CLI_PACKAGE="github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
readonly VERSION_SYMBOL="github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"
readonly LOG_PREFIX="build-pulumi"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The pinned CLI version is the one tools/pulumi-cli/go.mod requires; nothing else repeats it.
pinned_version() {
  (cd "${WRAPPER_DIR}" && go list -m -f '{{.Version}}' github.com/pulumi/pulumi/pkg/v3)
}

# Prints "true" when it built the CLI, "false" when the cached one already matches the pins.
build_cli() {
  local version="$1" bin_dir="$2"
  build_if_changed "pulumi ${version}" "${bin_dir}/pulumi" "-s -w -X ${VERSION_SYMBOL}=${version}" "echo ${WRAPPER_DIR}" \
    "${WRAPPER_DIR}/go.mod" "${WRAPPER_DIR}/go.sum" -- "${CLI_PACKAGE}"
}

verify_cli() {
  local version="$1" bin_dir="$2" reported
  reported="$(PULUMI_SKIP_UPDATE_CHECK=true "${bin_dir}/pulumi" version)"
  [[ "${reported}" == "${version}" ]] || die "${bin_dir}/pulumi reports version '${reported}', expected '${version}'"
}

main() {
  require_go "${WRAPPER_DIR}/go.mod"
  local version tools_dir
  version="$(pinned_version)"
  tools_dir="${PULUMI_TOOLS_DIR:-${CACHE_DIR}/tools/pulumi-${version}}"
  mkdir -p "${tools_dir}/bin" "${tools_dir}/home"

  local changed
  changed="$(build_cli "${version}" "${tools_dir}/bin")"
  verify_cli "${version}" "${tools_dir}/bin"
  [[ "${changed}" == true ]] || log "nothing to do: ${tools_dir} is up to date"
  log "use: export PATH=\"${tools_dir}/bin:\$PATH\" PULUMI_HOME=\"${tools_dir}/home\" PULUMI_SKIP_UPDATE_CHECK=true"

  printf '{"tool":"pulumi","version":"%s","bin":"%s","home":"%s","changed":%s}\n' \
    "${version}" "${tools_dir}/bin" "${tools_dir}/home" "${changed}"
}

main "$@"
