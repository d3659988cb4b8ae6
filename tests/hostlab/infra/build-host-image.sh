#!/usr/bin/env bash
# Build the host lab's "machine": a Debian root filesystem (13 trixie by default; 12 bookworm
# for the oldest Docker and QEMU) with systemd, sshd and sudo, imported as a Docker image. The host container started from it plays a fresh
# server that the program's host scripts provision over SSH.
#
# Cached twice: the image itself (skipped when the tag exists) and the rootfs tarball under
# the cache dir (an engine reset reloads it with `docker import`, no debootstrap). The tag
# and tarball name carry a hash of the package list, so changing it rebuilds.
#
# Environment (defaults in brackets):
#   HOST_SUITE        [trixie]                Debian release to debootstrap
#   HOST_IMAGE_REPO   [buildx-host-lab/host]  image repository; the tag is <suite>-<hash>
#   CACHE_DIR         [/var/cache/buildx-host]
#   DEBIAN_MIRROR     [http://deb.debian.org/debian]
# Prints the image reference on stdout.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST_IMAGE_REPO="${HOST_IMAGE_REPO:-buildx-host-lab/host}"
CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${HOST_SUITE:-trixie}"
# What a minimal cloud server has, plus kmod.
# Deliberately absent: jq, qemu, docker: the host scripts must install what they use.
INCLUDE=systemd,systemd-sysv,dbus,openssh-server,sudo,ca-certificates,curl,gnupg,iproute2,procps,kmod

log() { echo "build-host-image: $*" >&2; }

image_tag() {
  local hash
  hash="$(printf '%s\n' "$SUITE" "$INCLUDE" "$(sed -n '/^customize_rootfs()/,/^}/p' "${BASH_SOURCE[0]}")" | sha256sum | cut -c1-12)"
  echo "${HOST_IMAGE_REPO}:${SUITE}-${hash}"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

ensure_debootstrap() {
  command -v debootstrap >/dev/null 2>&1 && return 0
  log "installing debootstrap"
  install_packages debootstrap
}

# Make the rootfs boot as a container: no hostname of the build machine, no machine-id
# (systemd makes one per boot), sshd host keys removed (the harness installs its own,
# like cloud-init does on a real server), the release's security and updates suites enabled.
customize_rootfs() {
  local dir="$1"
  rm -f "$dir/etc/hostname" "$dir"/etc/ssh/ssh_host_*
  : >"$dir/etc/machine-id"
  rm -f "$dir/var/lib/dbus/machine-id"
  rm -f "$dir/etc/apt/sources.list"
  cat >"$dir/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb
}

build_tarball() {
  local tarball="$1" dir
  ensure_debootstrap
  dir="$(mktemp -d /var/tmp/buildx-host-rootfs.XXXXXX)"
  log "debootstrap $SUITE (minbase) into $dir"
  local start=$SECONDS
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$dir" "$DEBIAN_MIRROR" >&2
  log "debootstrap took $((SECONDS - start))s"
  customize_rootfs "$dir"
  tar -C "$dir" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$dir"
}

main() {
  local ref tarball
  ref="$(image_tag)"
  if image_exists "$ref"; then
    log "image $ref exists; nothing to build"
  else
    mkdir -p "$CACHE_DIR"
    tarball="$CACHE_DIR/host-rootfs-${ref##*:}.tar"
    if [[ -f "$tarball" ]]; then
      log "rootfs tarball cached at $tarball; importing it"
    else
      build_tarball "$tarball"
    fi
    docker import --change 'CMD ["/sbin/init"]' "$tarball" "$ref" >/dev/null
    log "imported $ref"
  fi
  echo "$ref"
}

main "$@"
