#!/usr/bin/env bash
# Fetch Debian 13's static busybox for amd64 and arm64: the foreign-architecture binary the
# lab runs under QEMU and the per-platform content of its multi-platform test build. Other
# Debian architectures on request (BUSYBOX_ARCHES), for bench/emulation.sh.
#
# Foreign packages are downloaded inside a throwaway Debian 13 container that adds their
# architectures, so this machine's dpkg configuration is never touched. Only the architectures
# not cached yet are downloaded; cached binaries are kept as they are. When architectures other
# than amd64 and arm64 are fetched, a package index that fails to download is skipped with a
# warning instead of failing the run (a mirror may lack the updates or security suite of some
# architecture: busybox-static then comes from trixie's main suite); apt-get download still fails
# when a package is not found at all.
#
# Environment (defaults in brackets):
#   HOST_IMAGE      [output of build-host-image.sh]
#   CACHE_DIR       [/var/cache/buildx-host]
#   BUSYBOX_ARCHES  [amd64 arm64]  Debian architectures to fetch, space-separated
#                                  (e.g. amd64 arm64 armhf ppc64el s390x riscv64)
# Prints the directory holding busybox-<arch> for each of them (busybox-amd64, busybox-arm64).
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
OUT="${CACHE_DIR}/busybox-trixie"
DEFAULT_ARCHES="amd64 arm64"
read -r -a ARCHES <<<"${BUSYBOX_ARCHES:-${DEFAULT_ARCHES}}"

log() { echo "fetch-busybox: $*" >&2; }

# The requested architectures without a cached binary.
missing_arches() {
  local arch
  for arch in "${ARCHES[@]}"; do
    [[ -x "${OUT}/busybox-${arch}" ]] || echo "${arch}"
  done
}

main() {
  local arch missing=()
  ((${#ARCHES[@]} > 0)) || { log "BUSYBOX_ARCHES is empty"; return 2; }
  for arch in "${ARCHES[@]}"; do
    [[ "${arch}" =~ ^[a-z0-9]+$ ]] || { log "'${arch}' is not a Debian architecture name"; return 2; }
  done
  mapfile -t missing < <(missing_arches)
  if ((${#missing[@]} == 0)); then
    log "cached in ${OUT}"
  else
    local host_image="${HOST_IMAGE:-}" work packages=() update="apt-get update -q"
    [[ -n "${host_image}" ]] || host_image="$("${INFRA_DIR}/build-host-image.sh")"
    for arch in "${missing[@]}"; do
      packages+=("busybox-static:${arch}")
      [[ " ${DEFAULT_ARCHES} " == *" ${arch} "* ]] ||
        update="{ apt-get update -q || echo 'fetch-busybox: warning: some package indexes failed to download; using the ones that did' >&2; }"
    done
    work="$(mktemp -d)"
    log "downloading busybox-static for ${missing[*]}"
    # Only foreign architectures are added to the throwaway container's dpkg.
    docker run --rm --network host -v "${work}:/out" "${host_image}" bash -c \
      "for a in ${missing[*]}; do [ \"\$a\" = \"\$(dpkg --print-architecture)\" ] || dpkg --add-architecture \"\$a\"; done &&
       ${update} && cd /out && apt-get download -q ${packages[*]}" >&2
    mkdir -p "${OUT}"
    for arch in "${missing[@]}"; do
      dpkg-deb -x "${work}"/busybox-static_*_"${arch}".deb "${work}/${arch}"
      log "busybox-static:${arch} $(dpkg-deb -f "${work}"/busybox-static_*_"${arch}".deb Version)"
      install -m 0755 "${work}/${arch}/usr/bin/busybox" "${OUT}/busybox-${arch}.tmp"
      mv "${OUT}/busybox-${arch}.tmp" "${OUT}/busybox-${arch}"
    done
    rm -rf "${work}"
    log "static busybox for ${missing[*]} in ${OUT}"
  fi
  echo "${OUT}"
}

main "$@"
