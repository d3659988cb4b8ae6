#!/usr/bin/env bash
# Fetch Debian 13's static busybox for amd64 and arm64: the foreign-architecture binary the
# lab runs under QEMU and the per-platform content of its multi-platform test build.
#
# The arm64 package is downloaded inside a throwaway Debian 13 container that adds the
# arm64 architecture, so this machine's dpkg configuration is never touched.
#
# Environment (defaults in brackets):
#   HOST_IMAGE  [output of build-host-image.sh]
#   CACHE_DIR   [/var/cache/buildx-host]
# Prints the directory holding busybox-amd64 and busybox-arm64.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
OUT="$CACHE_DIR/busybox-trixie"
ARCHES=(amd64 arm64)

log() { echo "fetch-busybox: $*" >&2; }

have_all() {
  local arch
  for arch in "${ARCHES[@]}"; do
    [[ -x "$OUT/busybox-$arch" ]] || return 1
  done
}

main() {
  if have_all; then
    log "cached in $OUT"
  else
    local host_image="${HOST_IMAGE:-}" work arch
    [[ -n "$host_image" ]] || host_image="$("$INFRA_DIR/build-host-image.sh")"
    work="$(mktemp -d)"
    log "downloading busybox-static for ${ARCHES[*]}"
    docker run --rm --network host -v "$work:/out" "$host_image" bash -c \
      "dpkg --add-architecture arm64 && apt-get update -q && cd /out && apt-get download -q busybox-static:amd64 busybox-static:arm64" >&2
    mkdir -p "$OUT"
    for arch in "${ARCHES[@]}"; do
      dpkg-deb -x "$work"/busybox-static_*_"$arch".deb "$work/$arch"
      install -m 0755 "$work/$arch/usr/bin/busybox" "$OUT/busybox-$arch.tmp"
      mv "$OUT/busybox-$arch.tmp" "$OUT/busybox-$arch"
    done
    rm -rf "$work"
    log "static busybox for ${ARCHES[*]} in $OUT"
  fi
  echo "$OUT"
}

main "$@"
