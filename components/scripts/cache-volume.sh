#!/usr/bin/env bash
# cache-volume.sh — optional host step, before docker-engine: an EBS volume as Docker's data root,
# so BuildKit's cache (a Docker volume) outlives the instance.
#
# create: waits (bounded) for the volume's device, found by its id (the NVMe serial udev names it
# by, /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…); makes an ext4 filesystem only when
# blkid finds none on it (never over one: cloud-init's fs_setup wiped such disks,
# canonical/cloud-init#3902); mounts it by UUID through /etc/fstab (nofail: a missing volume never
# blocks the boot) at Docker's data root; makes docker.service require that mount, so Docker never
# starts on the empty directory underneath. A grown volume's filesystem is grown by hand (README).
# Data already in the data root and not on the volume: moved onto the volume when that holds no
# data root yet (Docker stopped for the move, started again after); when both hold one, the step
# fails before it changes anything, naming both.
# delete: removes the fstab line and the docker.service drop-in; the mount stays until the volume
# is detached (with the instance stopped).
#
# Runs as root, script on stdin: sudo -n env NAME='value' ... bash -s
#
# Environment (default in brackets):
#   CACHE_VOLUME_ACTION        create | delete [create]
#   CACHE_VOLUME_ID            the EBS volume's id, vol-… (create: required)
#   CACHE_VOLUME_WAIT_SECONDS  how long to wait for its device [120]
#
# Output: progress on stderr; the last stdout line is
#   its JSON report, whose keys components/step-reports.ts declares.
set -euo pipefail

# The functions all steps share: sent ahead of this script by steps.ts, or sourced from a checkout.
if ! declare -F log >/dev/null; then
  # shellcheck source=lib/common.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
  # shellcheck source=lib/host-facts.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/host-facts.sh"
fi

CACHE_VOLUME_ACTION="${CACHE_VOLUME_ACTION:-create}"
CACHE_VOLUME_ID="${CACHE_VOLUME_ID:-}"
CACHE_VOLUME_WAIT_SECONDS="${CACHE_VOLUME_WAIT_SECONDS:-120}"

readonly STEP=cache-volume
readonly DATA_ROOT=/var/lib/docker
readonly FSTAB=/etc/fstab
readonly FSTAB_MARK="# buildx-host: Docker's data root on the cache volume"
readonly DOCKER_DROP_IN=/etc/systemd/system/docker.service.d/10-buildx-host-cache-volume.conf
readonly FS_LABEL=buildx-cache
readonly STAGING=/run/buildx-host/cache-volume

CHANGED=false
ACTION=""
DEVICE=""
UUID=""
FS_TYPE=""
FORMATTED=false
MOVED_BYTES=0
DOCKER_STOPPED=false

validate_input() {
  case "${CACHE_VOLUME_ACTION}" in
    create) [[ "${CACHE_VOLUME_ID}" =~ ^vol-[0-9a-f]{8,17}$ ]] \
      || die "CACHE_VOLUME_ID must be an EBS volume id (vol-0123456789abcdef0), not '${CACHE_VOLUME_ID}'" ;;
    delete) ;;
    *) die "CACHE_VOLUME_ACTION must be create or delete, not '${CACHE_VOLUME_ACTION}'" ;;
  esac
  require_seconds CACHE_VOLUME_WAIT_SECONDS
}

# EBS volumes on Nitro instances are NVMe devices whose serial is the volume id without its dash.
wait_for_device() {
  local link="${HOST_FACTS_EBS_DEVICE_LINK_PREFIX}${CACHE_VOLUME_ID/-/}"
  local deadline=$((SECONDS + CACHE_VOLUME_WAIT_SECONDS))
  until [[ -b "${link}" ]]; do
    ((SECONDS < deadline)) || die "no device ${link} after ${CACHE_VOLUME_WAIT_SECONDS}s: is ${CACHE_VOLUME_ID} attached" \
      "to this instance ('aws ec2 describe-volumes --volume-ids ${CACHE_VOLUME_ID}'), and is the instance a Nitro type (EBS as NVMe)?"
    sleep 1
  done
  DEVICE="$(readlink -f "${link}")"
  log "volume ${CACHE_VOLUME_ID} is ${DEVICE}"
}

# What blkid finds on the device itself (not its cache): sets FS_TYPE and UUID; a partition table
# or an unknown signature is no filesystem to mount, and no device to format either.
probe_device() {
  local found status=0
  found="$(blkid -p -o export "${DEVICE}")" || status=$?
  FS_TYPE="$(sed -n 's/^TYPE=//p' <<<"${found}")"
  UUID="$(sed -n 's/^UUID=//p' <<<"${found}")"
  case "${status}" in
    0) [[ -n "${FS_TYPE}" && -n "${UUID}" ]] \
      || die "${DEVICE} (${CACHE_VOLUME_ID}) holds something that is not a filesystem ($(tr '\n' ' ' <<<"${found}")); nothing was changed. Give the step an empty volume, or one with a filesystem" ;;
    2) ;;
    *) die "blkid could not read ${DEVICE} (exit ${status})" ;;
  esac
}

ensure_filesystem() {
  probe_device
  if [[ -n "${FS_TYPE}" ]]; then
    log "${DEVICE} holds a filesystem (${FS_TYPE}, UUID ${UUID}): using it as it is"
    return
  fi
  command -v mkfs.ext4 >/dev/null 2>&1 || apt_install e2fsprogs
  mkfs.ext4 -q -L "${FS_LABEL}" "${DEVICE}" >&2
  FORMATTED=true
  probe_device
  changed "made an ext4 filesystem on ${DEVICE} (blkid found none): UUID ${UUID}"
}

# Our entry: the marker line, then the mount (fstab has no comments at the end of a line).
fstab_entry() {
  printf '%s %s (cache-volume.sh)\nUUID=%s %s %s defaults,nofail 0 2' "${FSTAB_MARK}" "${CACHE_VOLUME_ID}" \
    "${UUID}" "${DATA_ROOT}" "${FS_TYPE}"
}

# /etc/fstab without our entry.
fstab_without_ours() {
  awk -v mark="${FSTAB_MARK}" 'index($0, mark) == 1 { skip = 2 } skip { skip--; next } { print }' "${FSTAB}" 2>/dev/null || true
}

# Writes FILE with CONTENT when it differs (place_file); reloads systemd's view of it.
place_and_reload() {
  if place_file "$@"; then
    systemctl daemon-reload
    changed "wrote $1"
  fi
}

# Fails on another entry for the data root (the administrator's) before anything changes.
check_fstab() {
  local others
  others="$(fstab_without_ours | awk -v root="${DATA_ROOT}" '$1 !~ /^#/ && $2 == root')"
  [[ -z "${others}" ]] || die "${FSTAB} already mounts something at ${DATA_ROOT}: '${others}'; nothing was changed. Remove that line to use the cache volume"
}

write_fstab() {
  local content
  content="$(fstab_without_ours)"
  place_and_reload "${FSTAB}" 644 "${content:+${content}$'\n'}$(fstab_entry)"
}

# Docker never starts on the directory under the mount: without the volume it fails, saying so.
write_docker_drop_in() {
  place_and_reload "${DOCKER_DROP_IN}" 644 "$(printf '%s\n' \
    "# Written by buildx-host (cache-volume.sh): Docker's data root is the cache volume ${CACHE_VOLUME_ID}." \
    "[Unit]" "RequiresMountsFor=${DATA_ROOT}")"
}

mounted_source() { findmnt -rn -o SOURCE --mountpoint "${DATA_ROOT}" 2>/dev/null | tail -n 1 || true; }

is_mounted_here() { [[ "$(mounted_source)" == "${DEVICE}" ]]; }

stop_docker() {
  local unit
  for unit in docker.socket docker.service; do
    if systemctl is-active --quiet "${unit}"; then
      systemctl stop "${unit}"
      DOCKER_STOPPED=true
    fi
  done
  [[ "${DOCKER_STOPPED}" == false ]] || log "stopped docker to move its data root"
}

# Entries of directory $1, lost+found aside (mkfs makes it), one a line.
entries_of() { find "$1" -mindepth 1 -maxdepth 1 ! -name lost+found; }

# Data in the data root that the volume would hide: moved onto the volume when that holds no data
# root yet; when it does, the step stops before changing anything.
move_existing_data() {
  local on_volume
  [[ -d "${DATA_ROOT}" && -n "$(entries_of "${DATA_ROOT}")" ]] || return 0
  install -d -m 0700 "${STAGING}"
  # A run cut short may have left it mounted there.
  ! mountpoint -q "${STAGING}" || umount "${STAGING}"
  mount "${DEVICE}" "${STAGING}"
  on_volume="$(entries_of "${STAGING}")"
  if [[ -n "${on_volume}" ]]; then
    umount "${STAGING}"
    die "${DATA_ROOT} holds data ($(du -sh "${DATA_ROOT}" | cut -f1)) and the cache volume ${CACHE_VOLUME_ID} holds a data root" \
      "too ($(head -n 3 <<<"${on_volume}" | xargs -n1 basename | paste -sd' ') …); mounting it would hide the first. Nothing" \
      "was changed. Keep one: move ${DATA_ROOT}'s content away (systemctl stop docker.socket docker; mv ${DATA_ROOT} ${DATA_ROOT}.old)" \
      "and run the step again, or give the host an empty volume"
  fi
  stop_docker
  MOVED_BYTES="$(du -sb "${DATA_ROOT}" | cut -f1)"
  # GNU cp -a keeps hard links, owners and every xattr (overlay2's trusted.overlay.* too, as root).
  if ! cp -a "${DATA_ROOT}/." "${STAGING}/"; then
    # The volume was empty: emptied again, it is the same next time; the data root was not touched.
    find "${STAGING}" -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf {} +
    umount "${STAGING}"
    restart_docker
    die "copying ${DATA_ROOT} (${MOVED_BYTES} bytes) onto the cache volume ${CACHE_VOLUME_ID} failed (cp's words above; a volume too small?);" \
      "the volume is empty again, ${DATA_ROOT} is as it was and Docker runs on it. Give the volume room for it (cacheVolumeSizeGb) and run again"
  fi
  sync
  find "${DATA_ROOT}" -mindepth 1 -delete
  umount "${STAGING}"
  changed "moved ${MOVED_BYTES} bytes of ${DATA_ROOT} onto the cache volume ${CACHE_VOLUME_ID}, which will hide that directory"
}

mount_volume() {
  if is_mounted_here; then
    log "${DEVICE} is mounted at ${DATA_ROOT}"
    return
  fi
  install -d -m 0710 "${DATA_ROOT}"
  # Through fstab, as at boot: the UUID resolves to the volume or the mount fails.
  mount "${DATA_ROOT}"
  is_mounted_here || die "after 'mount ${DATA_ROOT}', ${DATA_ROOT} is $(mounted_source) rather than ${DEVICE}"
  changed "mounted ${CACHE_VOLUME_ID} (${DEVICE}, UUID ${UUID}) at ${DATA_ROOT}"
}

restart_docker() {
  [[ "${DOCKER_STOPPED}" == true ]] || return 0
  systemctl start docker.service || die "could not start docker again; see 'journalctl -u docker'"
  log "started docker again"
}

remove_files() {
  local content
  ACTION=absent
  if grep -qF "${FSTAB_MARK}" "${FSTAB}" 2>/dev/null; then
    content="$(fstab_without_ours)"
    place_and_reload "${FSTAB}" 644 "${content}"
    ACTION=released
  fi
  if [[ -e "${DOCKER_DROP_IN}" ]]; then
    rm -f "${DOCKER_DROP_IN}"
    systemctl daemon-reload
    changed "removed ${DOCKER_DROP_IN}"
    ACTION=released
  fi
}

# shellcheck disable=SC2016 # $name in the jq program is jq's
print_report() {
  local size=null
  [[ "${ACTION}" != mounted ]] || size="$(df -B1 --output=size "${DATA_ROOT}" | tail -n 1 | tr -d ' ')"
  report '{action: $action, volumeId: ($volumeId | or_null), device: ($device | or_null), uuid: ($uuid | or_null),
    filesystem: ($filesystem | or_null), formatted: $formatted, movedBytes: $movedBytes, sizeBytes: $size}' \
    --arg action "${ACTION}" --arg volumeId "${CACHE_VOLUME_ID}" --arg device "${DEVICE}" --arg uuid "${UUID}" \
    --arg filesystem "${FS_TYPE}" --argjson formatted "${FORMATTED}" --argjson movedBytes "${MOVED_BYTES}" \
    --argjson size "${size}"
}

main() {
  begin_step
  validate_input
  if [[ "${CACHE_VOLUME_ACTION}" == delete ]]; then
    remove_files
  else
    check_fstab
    wait_for_device
    ensure_filesystem
    is_mounted_here || move_existing_data
    write_fstab
    write_docker_drop_in
    mount_volume
    restart_docker
    ACTION=mounted
  fi
  print_report
}

main "$@"
