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
#   HOST_VARIANT      []  cloud-init: the machine of the EC2 boot path (cloud-init.test.ts): Debian's
#                         cloud-init is installed and the SSH host keys openssh-server's postinst
#                         generated are KEPT, so cloud-init's ssh_deletekeys has keys to delete; the
#                         tag is <suite>-cloud-init-<hash>
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
VARIANT="${HOST_VARIANT:-}"

log() { echo "build-host-image: $*" >&2; }

case "${VARIANT}" in
  "") ;;
  # debootstrap does not resolve virtual packages: python3-cryptography (cloud-init, through
  # python3-oauthlib) depends on python3-cffi-backend-api-min, which python3-cffi-backend provides.
  cloud-init) INCLUDE="${INCLUDE},cloud-init,python3-cffi-backend" ;;
  *)
    log "unknown HOST_VARIANT '${VARIANT}' (known: cloud-init)"
    exit 1
    ;;
esac

# The text of a function of this script (what the image tag hashes).
function_text() { sed -n "/^$1()/,/^}/p" "${BASH_SOURCE[0]}"; }

image_tag() {
  local hash inputs=("${SUITE}" "${INCLUDE}" "$(function_text customize_rootfs)")
  [[ "${VARIANT}" != cloud-init ]] || inputs+=("$(function_text customize_cloud_init_rootfs)")
  hash="$(printf '%s\n' "${inputs[@]}" | sha256sum | cut -c1-12)"
  echo "${HOST_IMAGE_REPO}:${SUITE}${VARIANT:+-${VARIANT}}-${hash}"
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
  rm -f "${dir}/etc/hostname" "${dir}"/etc/ssh/ssh_host_*
  : >"${dir}/etc/machine-id"
  rm -f "${dir}/var/lib/dbus/machine-id"
  rm -f "${dir}/etc/apt/sources.list"
  cat >"${dir}/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: ${DEBIAN_MIRROR}
Suites: ${SUITE} ${SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: ${SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  rm -rf "${dir}"/var/lib/apt/lists/* "${dir}"/var/cache/apt/archives/*.deb
}

# The cloud-init variant: the same customisation, except that the host keys openssh-server's
# postinst generated stay, as they are on a cloud image before its first boot (cloud-init's
# ssh_deletekeys must remove them). Plus one setting a real image has when something else owns
# its network: this "machine" shares the lab VM's network namespace (--network host), so
# cloud-init must not render or apply network configuration (its fallback is DHCP on the
# first NIC, which here is the VM's). The datasource is left to ds-identify, as on a cloud image.
customize_cloud_init_rootfs() {
  local dir="$1" keys
  compgen -G "${dir}/etc/ssh/ssh_host_*_key" >/dev/null || {
    log "openssh-server generated no host keys in ${dir}/etc/ssh"
    return 1
  }
  keys="$(mktemp -d)"
  cp -a "${dir}"/etc/ssh/ssh_host_* "${keys}/"
  customize_rootfs "${dir}"
  cp -a "${keys}"/. "${dir}/etc/ssh/"
  rm -rf "${keys}"
  cat >"${dir}/etc/cloud/cloud.cfg.d/99-buildx-host-lab.cfg" <<'CONFIG'
# Host lab: this machine's network belongs to the machine it runs on; cloud-init leaves it alone.
network: {config: disabled}
CONFIG
}

build_tarball() {
  local tarball="$1" dir
  ensure_debootstrap
  dir="$(mktemp -d /var/tmp/buildx-host-rootfs.XXXXXX)"
  log "debootstrap ${SUITE} (minbase) into ${dir}"
  local start=${SECONDS}
  debootstrap --variant=minbase --include="${INCLUDE}" "${SUITE}" "${dir}" "${DEBIAN_MIRROR}" >&2
  log "debootstrap took $((SECONDS - start))s"
  if [[ "${VARIANT}" == cloud-init ]]; then
    customize_cloud_init_rootfs "${dir}"
  else
    customize_rootfs "${dir}"
  fi
  tar -C "${dir}" --numeric-owner -cf "${tarball}.tmp" .
  mv "${tarball}.tmp" "${tarball}"
  rm -rf "${dir}"
}

main() {
  local ref tarball
  ref="$(image_tag)"
  if image_exists "${ref}"; then
    log "image ${ref} exists; nothing to build"
  else
    mkdir -p "${CACHE_DIR}"
    tarball="${CACHE_DIR}/host-rootfs-${ref##*:}.tar"
    if [[ -f "${tarball}" ]]; then
      log "rootfs tarball cached at ${tarball}; importing it"
    else
      build_tarball "${tarball}"
    fi
    docker import --change 'CMD ["/sbin/init"]' "${tarball}" "${ref}" >/dev/null
    log "imported ${ref}"
  fi
  echo "${ref}"
}

main "$@"
