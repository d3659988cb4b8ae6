#!/usr/bin/env bash
# Builds the two Pulumi plugins that no registry here serves, from upstream source archives, and puts
# them where the CLI built by tools/build-pulumi.sh finds them: the command resource provider
# (`pulumi-resource-command`, used by every remote.Command) and the Node.js language host
# (`pulumi-language-nodejs`, which runs this TypeScript program for `pulumi up`).
#
# `pulumi up` normally downloads both from GitHub releases, which this project's machines cannot reach,
# and the Go module proxy refuses both modules (tools/build-pulumi.sh says which). Their source,
# unchanged from the release tags, is in ../shared/vendor beside the project root; its README.md says
# where each archive comes from and how it builds. Where that directory does not exist (a machine that
# downloads plugins normally), this builds nothing and says so.
#
# Pins, each in one place:
#   plugin versions      package.json: dependencies "@pulumi/command" (provider), "@pulumi/pulumi" (language host)
#   source archives      $PULUMI_VENDOR_DIR/SHA256SUMS, checked before anything is unpacked; the archive
#                        names are derived from the versions above
#   provider modules     the archive's own provider/go.mod and go.sum, used as they are
#   language host modules  tools/pulumi-language-nodejs/go.mod and go.sum: upstream's go.mod without the
#                        monorepo's local replaces of pulumi/pkg/v3 and sdk/v3, both required at the
#                        pinned version. After bumping @pulumi/pulumi, regenerate them (needs the vendored
#                        archive for the new version) with: bash tools/build-plugins.sh --update-pins
# Builds use -mod=readonly: a build never rewrites a pin.
#
# Layout (bin and home are tools/build-pulumi.sh's, which runs first and builds the CLI if needed):
#   $PULUMI_TOOLS_DIR/bin/pulumi-language-nodejs       next to `pulumi`, where the CLI looks for it
#   $PULUMI_TOOLS_DIR/home/plugins/resource-command-v<version>/
#                                                      the provider, via `pulumi plugin install --file`
#   $CACHE_DIR/plugins/pulumi-resource-command-<version>/  the built provider and its fingerprint
#   $CACHE_DIR/plugins/work.*/                         archives unpacked for a build, removed afterwards
#
# Inputs (environment variables, with defaults):
#   PULUMI_VENDOR_DIR  <project root>/../shared/vendor   the source archives and SHA256SUMS
#   CACHE_DIR, PULUMI_TOOLS_DIR, GOMODCACHE, GOCACHE     as for tools/build-pulumi.sh
#
# Prints, as its last line, one JSON object:
#   {"tool":"pulumi-plugins","vendored":…,"commandProvider":…,"languageHost":…,"bin":…,"home":…,"changed":…}
# ("bin" and "home" are null when nothing is vendored; --update-pins prints nothing). A second run
# with the same pins and Go toolchain rebuilds and reinstalls nothing and says so.

set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly TOOLS_DIR
readonly LOG_PREFIX="build-plugins"
# shellcheck source=lib.sh
source "${TOOLS_DIR}/lib.sh"

PROJECT_ROOT="$(dirname "${TOOLS_DIR}")"
readonly PROJECT_ROOT
VENDOR_DIR="${PULUMI_VENDOR_DIR:-$(dirname "${PROJECT_ROOT}")/shared/vendor}"
readonly VENDOR_DIR
readonly LANGUAGE_HOST_PINS="${TOOLS_DIR}/pulumi-language-nodejs"
readonly PROVIDER_VERSION_SYMBOL="github.com/pulumi/pulumi-command/provider/pkg/version.Version"
readonly SDK_VERSION_SYMBOL="github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"
readonly PULUMI_PKG_MODULE="github.com/pulumi/pulumi/pkg/v3"
readonly PULUMI_SDK_MODULE="github.com/pulumi/pulumi/sdk/v3"

# Archive names and the directory inside each that holds the module to build.
provider_archive() { printf 'pulumi-command-v%s-provider.tar.gz' "$1"; }
provider_subdir() { printf 'pulumi-command-v%s/provider' "$1"; }
language_host_archive() { printf 'pulumi-v%s-language-nodejs.tar.gz' "$1"; }
language_host_subdir() { printf 'pulumi-v%s/sdk/nodejs/cmd/pulumi-language-nodejs' "$1"; }

# The exact version package.json pins for an npm dependency. node, not jq: it is what a user's
# machine is sure to have, and this runs there too.
pinned_version() {
  local package="$1" version
  version="$(cd "${PROJECT_ROOT}" && node -p "require('./package.json').dependencies['${package}'] ?? ''")"
  [[ "${version}" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] \
    || die "package.json dependencies[\"${package}\"] is '${version}'; the plugin build needs an exact version"
  printf '%s\n' "${version}"
}

# Fails unless the vendor directory has the archive for the version package.json pins.
require_archive() {
  local archive="$1" package="$2" version="$3"
  [[ -f "${VENDOR_DIR}/${archive}" ]] \
    || die "${VENDOR_DIR} has no ${archive} for ${package} ${version} (pinned in ${PROJECT_ROOT}/package.json); add that release's source archive and its SHA256SUMS line, or pin a vendored version"
}

# Checks the archive against SHA256SUMS; run before it is unpacked.
check_archive_sum() {
  local archive="$1" line
  [[ -f "${VENDOR_DIR}/SHA256SUMS" ]] || die "${VENDOR_DIR}/SHA256SUMS is missing; cannot check ${archive}"
  line="$(awk -v f="${archive}" '$2 == f || $2 == "*" f' "${VENDOR_DIR}/SHA256SUMS")"
  [[ -n "${line}" ]] || die "${VENDOR_DIR}/SHA256SUMS has no line for ${archive}"
  (cd "${VENDOR_DIR}" && sha256sum --check --strict --status <<<"${line}") \
    || die "checksum mismatch: ${VENDOR_DIR}/${archive} does not match its line in ${VENDOR_DIR}/SHA256SUMS"
}

# Unpacks an archive into a fresh directory under <work_dir> and prints that directory.
unpack() {
  local archive="$1" work_dir="$2" dest
  dest="$(mktemp -d "${work_dir}/src.XXXXXX")"
  tar -xzf "${VENDOR_DIR}/${archive}" -C "${dest}" || die "cannot unpack ${VENDOR_DIR}/${archive}"
  printf '%s\n' "${dest}"
}

# Builds the pinned CLI (or finds it built) and prints build-pulumi.sh's JSON line: bin, home, changed.
cli_tools() {
  bash "${TOOLS_DIR}/build-pulumi.sh" | tail -n 1
}

# Fails unless the committed language host go.mod requires pulumi pkg/v3 and sdk/v3 at <version>.
check_language_host_pins() {
  local version="$1" module required
  for module in "${PULUMI_PKG_MODULE}" "${PULUMI_SDK_MODULE}"; do
    required="$(go mod edit -json "${LANGUAGE_HOST_PINS}/go.mod" \
      | jq -r --arg m "${module}" '.Require[] | select(.Path == $m) | .Version')"
    [[ "${required}" == "v${version}" ]] \
      || die "${LANGUAGE_HOST_PINS}/go.mod requires ${module} '${required}' but package.json pins @pulumi/pulumi ${version}; run: bash tools/build-plugins.sh --update-pins"
  done
}

# Rewrites tools/pulumi-language-nodejs/go.mod and go.sum from the vendored archive for <version>:
# upstream's go.mod with the local replaces of pkg/v3 and sdk/v3 dropped and both required at the
# version, then `go mod tidy`. The only step here that writes pins; builds never do.
update_language_host_pins() {
  local version="$1" work_dir="$2" src
  src="$(unpack "$(language_host_archive "${version}")" "${work_dir}")/$(language_host_subdir "${version}")"
  require_go "${src}/go.mod"
  (cd "${src}" \
    && go mod edit -dropreplace="${PULUMI_PKG_MODULE}" -dropreplace="${PULUMI_SDK_MODULE}" \
      -require="${PULUMI_PKG_MODULE}@v${version}" -require="${PULUMI_SDK_MODULE}@v${version}" \
    && GOFLAGS=-mod=mod go mod tidy) || die "go mod tidy of the language host ${version} failed"
  mkdir -p "${LANGUAGE_HOST_PINS}"
  {
    printf '%s\n' \
      '// Pins the Node.js language host build (tools/build-plugins.sh passes this file as -modfile):' \
      "// upstream's sdk/nodejs/cmd/pulumi-language-nodejs/go.mod without the monorepo's local replaces of" \
      '// pulumi/pkg/v3 and sdk/v3, both required at the release version, then go mod tidy.' \
      '// Generated by: bash tools/build-plugins.sh --update-pins' \
      ''
    cat "${src}/go.mod"
  } > "${LANGUAGE_HOST_PINS}/go.mod"
  cp "${src}/go.sum" "${LANGUAGE_HOST_PINS}/go.sum"
  log "wrote ${LANGUAGE_HOST_PINS}/go.mod and go.sum for the language host ${version}"
}

# Builds the language host next to `pulumi` from the vendored archive and the committed pins.
build_language_host() {
  local version="$1" bin_dir="$2" archive
  archive="$(language_host_archive "${version}")"
  # shellcheck disable=SC2317 # called by build_if_changed, only when a build is needed
  language_host_source() { printf '%s/%s\n' "$(unpack "${archive}" "${WORK_DIR}")" "$(language_host_subdir "${version}")"; }
  build_if_changed "pulumi-language-nodejs ${version}" "${bin_dir}/pulumi-language-nodejs" "-s -w -X ${SDK_VERSION_SYMBOL}=v${version}" \
    language_host_source "${VENDOR_DIR}/${archive}" "${LANGUAGE_HOST_PINS}/go.mod" "${LANGUAGE_HOST_PINS}/go.sum" -- \
    -modfile="${LANGUAGE_HOST_PINS}/go.mod" .
}

# Builds the provider into <out_dir> from the vendored archive, with the archive's own go.mod and go.sum.
build_provider() {
  local version="$1" out_dir="$2" archive
  archive="$(provider_archive "${version}")"
  # shellcheck disable=SC2317 # called by build_if_changed, only when a build is needed
  provider_source() {
    local src
    src="$(unpack "${archive}" "${WORK_DIR}")/$(provider_subdir "${version}")"
    require_go "${src}/go.mod"
    echo "${src}"
  }
  build_if_changed "pulumi-resource-command ${version}" "${out_dir}/pulumi-resource-command" "-s -w -X ${PROVIDER_VERSION_SYMBOL}=${version}" \
    provider_source "${VENDOR_DIR}/${archive}" -- ./cmd/pulumi-resource-command
}

# Runs the CLI from <bin_dir> against the plugin cache in <home>, never asking about updates.
pulumi_cli() {
  local bin_dir="$1" home="$2"
  shift 2
  PULUMI_HOME="${home}" PULUMI_SKIP_UPDATE_CHECK=true "${bin_dir}/pulumi" "$@"
}

# Succeeds when `pulumi plugin ls` lists resource plugin <name> at <version>.
plugin_listed() {
  local bin_dir="$1" home="$2" name="$3" version="$4"
  pulumi_cli "${bin_dir}" "${home}" plugin ls --json \
    | jq -e --arg n "${name}" --arg v "${version}" \
      'any(.[]; .kind == "resource" and .name == $n and .version == $v)' >/dev/null
}

# Installs the built provider into PULUMI_HOME. Prints "true" when it installed, "false" when that
# version is already listed and its binary is the one just built.
install_provider() {
  local version="$1" binary="$2" bin_dir="$3" home="$4"
  local installed="${home}/plugins/resource-command-v${version}/pulumi-resource-command"
  if plugin_listed "${bin_dir}" "${home}" command "${version}" && cmp -s "${binary}" "${installed}"; then
    log "command ${version} already installed in ${home} from the same binary; not reinstalling"
    echo false
    return
  fi
  log "installing command ${version} into ${home}"
  pulumi_cli "${bin_dir}" "${home}" plugin install resource command "${version}" --file "${binary}" --reinstall >&2 \
    || die "pulumi plugin install resource command ${version} --file ${binary} failed"
  echo true
}

# The CLI lists the version it was told at install time; the schema's version is the one the
# provider binary itself reports (its linker-set version, "0.7.1" in the source without it).
verify_provider() {
  local version="$1" bin_dir="$2" home="$3" work_dir="$4" reported
  plugin_listed "${bin_dir}" "${home}" command "${version}" \
    || die "pulumi plugin ls (PULUMI_HOME=${home}) does not list resource command ${version}"
  reported="$(cd "${work_dir}" && pulumi_cli "${bin_dir}" "${home}" package get-schema "command@${version}" | jq -r .version)"
  [[ "${reported}" == "${version}" ]] \
    || die "the installed command provider reports version '${reported}' in its schema, expected '${version}' (package.json @pulumi/command)"
}

verify_language_host() {
  local version="$1" bin_dir="$2" reported
  reported="$("${bin_dir}/pulumi-language-nodejs" -version)"
  [[ "${reported}" == "v${version}" ]] \
    || die "${bin_dir}/pulumi-language-nodejs -version reports '${reported}', expected 'v${version}' (package.json @pulumi/pulumi)"
}

main() {
  local mode="${1:-build}"
  [[ $# -eq 0 || ( $# -eq 1 && "$1" == --update-pins ) ]] || die "usage: $0 [--update-pins]"
  local command_version nodejs_version
  command_version="$(pinned_version @pulumi/command)"
  nodejs_version="$(pinned_version @pulumi/pulumi)"

  if [[ ! -d "${VENDOR_DIR}" ]]; then
    [[ "${mode}" == build ]] || die "--update-pins needs the vendored archives; ${VENDOR_DIR} does not exist"
    log "no vendored plugin sources at ${VENDOR_DIR}; nothing built (pulumi downloads the command provider and the language host itself)"
    printf '{"tool":"pulumi-plugins","vendored":false,"commandProvider":"%s","languageHost":"%s","bin":null,"home":null,"changed":false}\n' \
      "${command_version}" "${nodejs_version}"
    return
  fi

  command -v jq >/dev/null || die "jq is not on PATH (apt-get install jq)"
  local provider_tar nodejs_tar
  provider_tar="$(provider_archive "${command_version}")"
  nodejs_tar="$(language_host_archive "${nodejs_version}")"
  require_archive "${provider_tar}" @pulumi/command "${command_version}"
  require_archive "${nodejs_tar}" @pulumi/pulumi "${nodejs_version}"
  check_archive_sum "${provider_tar}"
  check_archive_sum "${nodejs_tar}"

  local work_dir
  mkdir -p "${CACHE_DIR}/plugins"
  work_dir="$(mktemp -d "${CACHE_DIR}/plugins/work.XXXXXX")"
  # Where the build functions unpack sources (they run in subshells, as build_if_changed's callbacks).
  WORK_DIR="${work_dir}"
  # shellcheck disable=SC2064 # expand now: work_dir is local to main
  trap "rm -rf '${work_dir}'" EXIT

  if [[ "${mode}" == --update-pins ]]; then
    update_language_host_pins "${nodejs_version}" "${work_dir}"
    return
  fi
  require_go "${LANGUAGE_HOST_PINS}/go.mod"
  check_language_host_pins "${nodejs_version}"

  local tools bin_dir home cli_changed
  tools="$(cli_tools)"
  bin_dir="$(jq -r .bin <<<"${tools}")"
  home="$(jq -r .home <<<"${tools}")"
  cli_changed="$(jq -r .changed <<<"${tools}")"

  local provider_dir="${CACHE_DIR}/plugins/pulumi-resource-command-${command_version}"
  mkdir -p "${provider_dir}"
  local nodejs_changed provider_changed installed_changed
  nodejs_changed="$(build_language_host "${nodejs_version}" "${bin_dir}")"
  provider_changed="$(build_provider "${command_version}" "${provider_dir}")"
  installed_changed="$(install_provider "${command_version}" "${provider_dir}/pulumi-resource-command" "${bin_dir}" "${home}")"
  verify_language_host "${nodejs_version}" "${bin_dir}"
  verify_provider "${command_version}" "${bin_dir}" "${home}" "${work_dir}"

  local changed=false
  if [[ "${cli_changed}${nodejs_changed}${provider_changed}${installed_changed}" == *true* ]]; then
    changed=true
  fi
  [[ "${changed}" == true ]] || log "nothing to do: the language host and the command provider are up to date"
  log "use: export PATH=\"${bin_dir}:\$PATH\" PULUMI_HOME=\"${home}\" PULUMI_SKIP_UPDATE_CHECK=true"

  printf '{"tool":"pulumi-plugins","vendored":true,"commandProvider":"%s","languageHost":"%s","bin":"%s","home":"%s","changed":%s}\n' \
    "${command_version}" "${nodejs_version}" "${bin_dir}" "${home}" "${changed}"
}

main "$@"
