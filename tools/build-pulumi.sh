#!/usr/bin/env bash
# Builds the pinned Pulumi CLI from Go modules into a cache directory outside the repository.
#
# npm's `pulumi` package and `pulumi plugin install` download binaries from GitHub at run time, which
# this project's machines cannot reach; the Go module proxy can. The version is pinned by
# tools/pulumi-cli/go.mod (a wrapper module: `go install github.com/pulumi/pulumi/pkg/v3/...@version`
# refuses pkg/v3 because its go.mod has replace directives).
#
# Not built here, because the Go module proxy refuses them ("403 Forbidden: This module version is
# not available", for the module's version list and for the tag commit's pseudo-version alike):
#   - the Node.js language host, github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3
#     (v3.248.0 is commit dc7edd58bc13); Automation API inline programs do not need it;
#   - the command provider, github.com/pulumi/pulumi-command/provider (v1.2.1 is commit 7f3eb6f3b77c),
#     and its framework github.com/pulumi/pulumi-go-provider.
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
#
# Prints, as its last line, one JSON object: {"tool":"pulumi","version":…,"bin":…,"home":…,"changed":…}.
# A second run with the same pins and Go toolchain rebuilds nothing and says so.

set -euo pipefail

WRAPPER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/pulumi-cli" && pwd)"
readonly WRAPPER_DIR
readonly CLI_PACKAGE="github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
readonly VERSION_SYMBOL="github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"

CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
export GOMODCACHE="${GOMODCACHE:-$CACHE_DIR/gopath/pkg/mod}"
export GOCACHE="${GOCACHE:-$CACHE_DIR/go-build}"
# The wrapper's go.sum is the pin: never let a build rewrite it.
export GOFLAGS="-mod=readonly -buildvcs=false"

log() { printf 'build-pulumi: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_go() {
  command -v go >/dev/null || die "go is not on PATH; install Go >= the 'go' line of $WRAPPER_DIR/go.mod"
  local wanted
  wanted="$(awk '$1 == "go" { print $2; exit }' "$WRAPPER_DIR/go.mod")"
  # The go command itself refuses a module that needs a newer toolchain; say why before it does.
  if [[ "$(printf '%s\n%s\n' "$wanted" "$(go env GOVERSION | sed 's/^go//')" | sort -V | head -n1)" != "$wanted" ]]; then
    die "$(go env GOVERSION) is older than go $wanted required by $WRAPPER_DIR/go.mod"
  fi
}

# The pinned CLI version is the one tools/pulumi-cli/go.mod requires; nothing else repeats it.
pinned_version() {
  (cd "$WRAPPER_DIR" && go list -m -f '{{.Version}}' github.com/pulumi/pulumi/pkg/v3)
}

# Everything that changes the binary: the pins, the toolchain and the linker flags.
build_fingerprint() {
  local ldflags="$1"
  {
    cat "$WRAPPER_DIR/go.mod" "$WRAPPER_DIR/go.sum"
    go env GOVERSION GOOS GOARCH
    printf '%s\n' "$ldflags"
  } | sha256sum | cut -d' ' -f1
}

# Prints "true" when it built the CLI, "false" when the cached one already matches the pins.
build_cli() {
  local version="$1" bin_dir="$2"
  local ldflags="-s -w -X $VERSION_SYMBOL=$version"
  local fingerprint stamp="$bin_dir/.pulumi.fingerprint"
  fingerprint="$(build_fingerprint "$ldflags")"
  if [[ -x "$bin_dir/pulumi" && -f "$stamp" && "$(cat "$stamp")" == "$fingerprint" ]]; then
    log "pulumi $version already built in $bin_dir (pins and toolchain unchanged); not rebuilding"
    echo false
    return
  fi
  log "building pulumi $version with $(go env GOVERSION) (2-core machine: takes several minutes cold)"
  local started tmp="$bin_dir/.pulumi.$$"
  started="$(date +%s)"
  (cd "$WRAPPER_DIR" && nice go build -trimpath -ldflags "$ldflags" -o "$tmp" "$CLI_PACKAGE") \
    || { rm -f "$tmp"; die "go build of $CLI_PACKAGE failed"; }
  mv -f "$tmp" "$bin_dir/pulumi"
  printf '%s\n' "$fingerprint" > "$stamp"
  log "built pulumi $version in $(( $(date +%s) - started ))s"
  echo true
}

verify_cli() {
  local version="$1" bin_dir="$2" reported
  reported="$(PULUMI_SKIP_UPDATE_CHECK=true "$bin_dir/pulumi" version)"
  [[ "$reported" == "$version" ]] || die "$bin_dir/pulumi reports version '$reported', expected '$version'"
}

main() {
  require_go
  local version tools_dir
  version="$(pinned_version)"
  tools_dir="${PULUMI_TOOLS_DIR:-$CACHE_DIR/tools/pulumi-$version}"
  mkdir -p "$tools_dir/bin" "$tools_dir/home"

  local changed
  changed="$(build_cli "$version" "$tools_dir/bin")"
  verify_cli "$version" "$tools_dir/bin"
  [[ "$changed" == true ]] || log "nothing to do: $tools_dir is up to date"
  log "use: export PATH=\"$tools_dir/bin:\$PATH\" PULUMI_HOME=\"$tools_dir/home\" PULUMI_SKIP_UPDATE_CHECK=true"

  printf '{"tool":"pulumi","version":"%s","bin":"%s","home":"%s","changed":%s}\n' \
    "$version" "$tools_dir/bin" "$tools_dir/home" "$changed"
}

main "$@"
