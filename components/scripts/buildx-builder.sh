#!/usr/bin/env bash
# buildx-builder.sh — host step 6 of 7: the shared builder's one BuildKit.
#
# create: checks that the GC limits fit the filesystem of Docker's data root, then runs the BuildKit container buildx_buildkit_${BUILDER_NAME}0 from BUILDKIT_IMAGE itself,
# because buildx's docker-container driver grants network.host whenever no entitlement is given:
# privileged, restarted on boot, GC limits in /etc/buildx-host/buildkitd.toml, its cache in a
# volume, on Docker's bridge (the host network where the daemon has none), with exactly the
# entitlements BUILDKIT_INSECURE_ENTITLEMENTS lists. BUILDER_USER's buildx store gets the builder
# BUILDER_NAME, a remote-driver node on that container. Another configuration (its sha256 is kept
# in /etc/buildx-host/builder.sha256) replaces the container and keeps the cache volume.
# delete: removes the builder and its cache (BUILDER_KEEP_CACHE=true: not the cache, which a
# retained cache volume carries to the next host); an absent builder, user or docker is fine.
#
# Runs as root, script on stdin: sudo -n env NAME='value' ... bash -s
#
# Environment (default in brackets; [host facts]: HOST_FACTS_DEFAULT in lib/host-facts.sh):
#   BUILDER_ACTION                  create | delete [create]
#   BUILDER_NAME                    builder name [host facts]
#   BUILDER_USER                    login user whose buildx store gets the builder [${SUDO_USER:-root}]
#   BUILDKIT_IMAGE                  by tag, digest or both [host facts]
#   BUILDER_KEEP_CACHE              delete: true keeps the cache volume [false]
#   BUILDKIT_INSECURE_ENTITLEMENTS  space-separated: network.host, security.insecure [""]
#   BUILDKIT_GC_RESERVED_SPACE      cache never collected [host facts]
#   BUILDKIT_GC_MAX_USED_SPACE      cache above it is collected [host facts]
#   BUILDKIT_GC_MIN_FREE_SPACE      disk kept free [host facts]
#   (sizes: bytes, "512MB"/"10GB"-style units (1024-based), or "10%")
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

BUILDER_ACTION="${BUILDER_ACTION:-create}"
BUILDER_NAME="${BUILDER_NAME:-${HOST_FACTS_DEFAULT[BUILDER_NAME]}}"
BUILDER_USER="${BUILDER_USER:-${SUDO_USER:-root}}"
BUILDKIT_IMAGE="${BUILDKIT_IMAGE:-${HOST_FACTS_DEFAULT[BUILDKIT_IMAGE]}}"
BUILDER_KEEP_CACHE="${BUILDER_KEEP_CACHE:-false}"
BUILDKIT_INSECURE_ENTITLEMENTS="${BUILDKIT_INSECURE_ENTITLEMENTS:-}"
BUILDKIT_GC_RESERVED_SPACE="${BUILDKIT_GC_RESERVED_SPACE:-${HOST_FACTS_DEFAULT[BUILDKIT_GC_RESERVED_SPACE]}}"
BUILDKIT_GC_MAX_USED_SPACE="${BUILDKIT_GC_MAX_USED_SPACE:-${HOST_FACTS_DEFAULT[BUILDKIT_GC_MAX_USED_SPACE]}}"
BUILDKIT_GC_MIN_FREE_SPACE="${BUILDKIT_GC_MIN_FREE_SPACE:-${HOST_FACTS_DEFAULT[BUILDKIT_GC_MIN_FREE_SPACE]}}"

readonly STEP=buildx-builder
readonly CONFIG_DIR=/etc/buildx-host
readonly BUILDKITD_TOML="${CONFIG_DIR}/buildkitd.toml"
readonly FINGERPRINT_FILE="${CONFIG_DIR}/builder.sha256"
readonly KNOWN_ENTITLEMENTS=(network.host security.insecure)
readonly BUILDKIT_READY_SECONDS=60
NETWORK=""
ENTITLEMENTS=()
# Bump when the way the builder is created changes, so existing builders are recreated.
readonly RECIPE_VERSION=2

NODE="${BUILDER_NAME}0"
CONTAINER="buildx_buildkit_${NODE}"
STATE_VOLUME="${CONTAINER}_state"
CHANGED=false
ACTION=""
PLATFORMS=()
RUNNING_ENTITLEMENTS=()
IMAGE_DIGEST=""
BUILDKIT_VERSION=""

validate_disk_space() {
  local name="$1" value="$2"
  [[ "${value}" =~ ${HOST_FACTS_DISK_SIZE_PATTERN} ]] \
    || die "${name} '${value}' is not a size BuildKit understands (e.g. 10GB, 512MiB, 10%)"
}

validate_input() {
  local entitlement
  case "${BUILDER_ACTION}" in
    create | delete) ;;
    *) die "BUILDER_ACTION must be create or delete, not '${BUILDER_ACTION}'" ;;
  esac
  [[ "${BUILDER_KEEP_CACHE}" == true || "${BUILDER_KEEP_CACHE}" == false ]] \
    || die "BUILDER_KEEP_CACHE must be true or false, not '${BUILDER_KEEP_CACHE}'"
  [[ "${BUILDER_NAME}" =~ ${HOST_FACTS_BUILDER_NAME_PATTERN} ]] \
    || die "BUILDER_NAME '${BUILDER_NAME}' is not a valid builder name (a lowercase letter, then up to 62 of a-z 0-9 _ -)"
  [[ "${BUILDKIT_IMAGE}" =~ ^[a-zA-Z0-9][a-zA-Z0-9._/:@-]*$ ]] \
    || die "BUILDKIT_IMAGE '${BUILDKIT_IMAGE}' is not an image reference"
  read -r -a ENTITLEMENTS <<<"${BUILDKIT_INSECURE_ENTITLEMENTS}"
  for entitlement in "${ENTITLEMENTS[@]}"; do
    [[ " ${KNOWN_ENTITLEMENTS[*]} " == *" ${entitlement} "* ]] \
      || die "BUILDKIT_INSECURE_ENTITLEMENTS: '${entitlement}' is not one of ${KNOWN_ENTITLEMENTS[*]}"
  done
  validate_disk_space BUILDKIT_GC_RESERVED_SPACE "${BUILDKIT_GC_RESERVED_SPACE}"
  validate_disk_space BUILDKIT_GC_MAX_USED_SPACE "${BUILDKIT_GC_MAX_USED_SPACE}"
  validate_disk_space BUILDKIT_GC_MIN_FREE_SPACE "${BUILDKIT_GC_MIN_FREE_SPACE}"
}

# Bytes BuildKit takes a GC limit for on a filesystem of $2 bytes (cmd/buildkitd/config/gcpolicy.go):
# a size 1024-based ("10GB" is 10 GiB), a percentage rounded up to whole GiB and counted in 10^9 bytes.
gc_limit_bytes() {
  local limit="$1" filesystem_bytes="$2"
  if [[ "${limit}" =~ ^([0-9]+)%$ ]]; then
    echo $(((filesystem_bytes * BASH_REMATCH[1] / 100 / 1073741824 + 1) * 1000000000))
  else
    awk -v limit="${limit}" 'BEGIN { match(limit, /^[0-9.]+/); unit = substr(limit, RLENGTH + 1, 1)
      printf "%.0f\n", substr(limit, 1, RLENGTH) * 1024 ^ index("KMGT", unit) }'
  fi
}

# BuildKit keeps its cache under maxUsedSpace, lower while less than minFreeSpace is free, never below
# reservedSpace (cache/manager.go): limits that do not fit the filesystem of its cache volume would
# never hold. Checked before anything is changed; the program checks EC2 hosts at preview.
check_gc_fits_data_root() {
  local volumes filesystem_bytes reserved max_used min_free fitting
  volumes="$(docker info -f '{{.DockerRootDir}}' </dev/null)/volumes"
  [[ -d "${volumes}" ]] || volumes="${volumes%/volumes}"
  filesystem_bytes="$(df -B1 --output=size "${volumes}" | tail -n 1 | tr -d ' ')"
  reserved="$(gc_limit_bytes "${BUILDKIT_GC_RESERVED_SPACE}" "${filesystem_bytes}")"
  max_used="$(gc_limit_bytes "${BUILDKIT_GC_MAX_USED_SPACE}" "${filesystem_bytes}")"
  min_free="$(gc_limit_bytes "${BUILDKIT_GC_MIN_FREE_SPACE}" "${filesystem_bytes}")"
  ((reserved <= max_used)) || die "buildkitGcReservedSpace (BUILDKIT_GC_RESERVED_SPACE=${BUILDKIT_GC_RESERVED_SPACE}) is above" \
    "buildkitGcMaxUsedSpace (BUILDKIT_GC_MAX_USED_SPACE=${BUILDKIT_GC_MAX_USED_SPACE}): BuildKit never collects the cache below" \
    "reservedSpace, so it would grow past maxUsedSpace; keep reservedSpace below it. Nothing was changed"
  if ((max_used + min_free > filesystem_bytes)); then
    fitting=$(((filesystem_bytes - min_free) / 1048576))
    if ((fitting >= 10240)); then fitting="$((fitting / 1024))GB"; elif ((fitting > 0)); then fitting="${fitting}MB"; fi
    die "buildkitGcMaxUsedSpace (BUILDKIT_GC_MAX_USED_SPACE=${BUILDKIT_GC_MAX_USED_SPACE}) and buildkitGcMinFreeSpace" \
      "(BUILDKIT_GC_MIN_FREE_SPACE=${BUILDKIT_GC_MIN_FREE_SPACE}) do not fit together on the filesystem of ${volumes}" \
      "($((filesystem_bytes / 1048576)) MiB): BuildKit would collect the cache below maxUsedSpace to keep minFreeSpace free." \
      "Lower them (example: pulumi config set $([[ "${fitting}" == *B ]] && echo "buildkitGcMaxUsedSpace ${fitting}" ||
        echo "buildkitGcMinFreeSpace 10%")) or give Docker's data root a larger disk. Nothing was changed"
  fi
  log "GC limits fit the filesystem of ${volumes} ($((filesystem_bytes / 1048576)) MiB)"
}

user_home() { getent passwd "${BUILDER_USER}" | cut -d: -f6; }

# docker as BUILDER_USER, with a clean environment, so the builder lands in that user's store.
as_builder_user() {
  runuser -u "${BUILDER_USER}" -- env -i HOME="$(user_home)" USER="${BUILDER_USER}" LOGNAME="${BUILDER_USER}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin docker "$@"
}

require_builder_user() {
  id -u "${BUILDER_USER}" >/dev/null 2>&1 || die "BUILDER_USER '${BUILDER_USER}' does not exist on this host"
  [[ -d "$(user_home)" ]] || die "BUILDER_USER '${BUILDER_USER}' has no home directory ($(user_home)) for its buildx store"
  as_builder_user info >/dev/null 2>&1 \
    || die "'${BUILDER_USER}' cannot reach the docker daemon; add it to the docker group (docker-engine step, DOCKER_GROUP_USERS)"
}

render_buildkitd_toml() {
  cat <<TOML
# BuildKit daemon configuration of the shared builder "${BUILDER_NAME}", written by buildx-host
# (buildx-builder.sh); changes here are overwritten. Keys as in BuildKit v0.34's buildkitd.toml.
[worker.oci]
  gc = true
  # Cache kept in any case.
  reservedSpace = "${BUILDKIT_GC_RESERVED_SPACE}"
  # Cache above this size is collected.
  maxUsedSpace = "${BUILDKIT_GC_MAX_USED_SPACE}"
  # Collect until at least this much disk is free (never below reservedSpace).
  minFreeSpace = "${BUILDKIT_GC_MIN_FREE_SPACE}"
TOML
}

write_buildkitd_toml() {
  if place_file "${BUILDKITD_TOML}" 644 "$(render_buildkitd_toml)"; then
    CHANGED=true
    log "wrote ${BUILDKITD_TOML}"
  fi
}

# buildkitd's arguments: its configuration, then one flag per insecure entitlement granted.
buildkitd_args() {
  local entitlement
  printf '%s\n' --config /etc/buildkit/buildkitd.toml
  for entitlement in "${ENTITLEMENTS[@]}"; do
    printf '%s\n' "--allow-insecure-entitlement=${entitlement}"
  done
}

fingerprint() {
  {
    echo "recipe ${RECIPE_VERSION}"
    echo "builder ${BUILDER_NAME} user ${BUILDER_USER} image ${BUILDKIT_IMAGE} network ${NETWORK}"
    buildkitd_args
    cat "${BUILDKITD_TOML}"
  } | sha256sum | cut -d' ' -f1
}

# BuildKit's RUN steps share the builder container's network. On Docker's bridge they are one hop
# from the host, so an IMDSv2 hop limit of 1 and the metadata guard's forward rule keep the
# instance's credentials and user data out of builds. The host network only where there is no bridge.
choose_network() {
  if docker network inspect bridge >/dev/null 2>&1 </dev/null; then
    NETWORK=bridge
  else
    NETWORK=host
    log "the docker daemon has no bridge network: the builder uses the host's network"
  fi
}

builder_exists() { as_builder_user buildx inspect "${BUILDER_NAME}" >/dev/null 2>&1; }

container_state() { docker inspect -f '{{.State.Status}}' "${CONTAINER}" 2>/dev/null || true; }

buildkit_answers() { docker exec "${CONTAINER}" buildctl debug workers >/dev/null 2>&1 </dev/null; }

wait_for_buildkit() {
  local deadline=$((SECONDS + BUILDKIT_READY_SECONDS))
  until buildkit_answers; do
    ((SECONDS < deadline)) || die "BuildKit in ${CONTAINER} did not answer within ${BUILDKIT_READY_SECONDS}s; see 'docker logs ${CONTAINER}'"
    sleep 1
  done
}

# What a builder may have left: its buildx record (buildx rm of a docker-container builder also
# removes its container; --keep-state keeps the cache volume) and its container.
remove_builder_keeping_cache() {
  if builder_exists; then
    as_builder_user buildx rm --keep-state "${BUILDER_NAME}" >&2 || die "docker buildx rm ${BUILDER_NAME} failed"
  fi
  if [[ -n "$(container_state)" ]]; then
    docker rm -f "${CONTAINER}" >/dev/null
  fi
}

create_builder() {
  local args
  mapfile -t args < <(buildkitd_args)
  log "starting ${CONTAINER} (image ${BUILDKIT_IMAGE}, network ${NETWORK}, insecure entitlements: ${ENTITLEMENTS[*]:-none})"
  docker run -d --name "${CONTAINER}" --privileged --restart unless-stopped --network "${NETWORK}" \
    --mount "type=volume,source=${STATE_VOLUME},target=/var/lib/buildkit" \
    --mount "type=bind,source=${BUILDKITD_TOML},target=/etc/buildkit/buildkitd.toml,readonly" \
    --label "buildx-host.builder=${BUILDER_NAME}" "${BUILDKIT_IMAGE}" "${args[@]}" >/dev/null </dev/null \
    || die "docker run of ${BUILDKIT_IMAGE} failed; is it pullable or loaded on this host ('docker image inspect ${BUILDKIT_IMAGE}')?"
  wait_for_buildkit
  as_builder_user buildx create --name "${BUILDER_NAME}" --node "${NODE}" --driver remote "docker-container://${CONTAINER}" >&2 \
    || die "docker buildx create of the remote builder ${BUILDER_NAME} failed"
}

write_fingerprint() {
  local tmp
  tmp="$(mktemp "${FINGERPRINT_FILE}.XXXXXX")"
  echo "$1" >"${tmp}"
  chmod 0644 "${tmp}"
  mv -f "${tmp}" "${FINGERPRINT_FILE}"
}

ensure_builder() {
  local wanted recorded="" state
  wanted="$(fingerprint)"
  [[ -f "${FINGERPRINT_FILE}" ]] && recorded="$(cat "${FINGERPRINT_FILE}")"
  state="$(container_state)"
  if [[ -n "${state}" ]] && builder_exists && [[ "${recorded}" == "${wanted}" ]]; then
    if [[ "${state}" == running ]]; then
      ACTION=unchanged
      log "builder ${BUILDER_NAME} is up to date and running"
    else
      log "builder ${BUILDER_NAME} is up to date but its container is ${state}: starting it"
      docker start "${CONTAINER}" >/dev/null || die "could not start ${CONTAINER}; see 'docker logs ${CONTAINER}'"
      ACTION=started
      CHANGED=true
    fi
    wait_for_buildkit
    return
  fi
  if [[ -n "${state}" ]] || builder_exists; then
    log "builder ${BUILDER_NAME}'s configuration changed: recreating it, keeping its build cache"
    ACTION=recreated
  else
    ACTION=created
  fi
  rm -f "${FINGERPRINT_FILE}"
  remove_builder_keeping_cache
  create_builder
  write_fingerprint "${wanted}"
  CHANGED=true
}

# The registry digest of the image the container runs, for the repository BUILDKIT_IMAGE names; its
# image id when the image came from no registry (docker load).
read_image_digest() {
  local image_id repository digests
  image_id="$(docker inspect -f '{{.Image}}' "${CONTAINER}")"
  repository="${BUILDKIT_IMAGE%@*}"
  [[ "${repository##*/}" != *:* ]] || repository="${repository%:*}"
  digests="$(docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "${image_id}")"
  IMAGE_DIGEST="$(grep -m1 -F "${repository}@" <<<"${digests}" || true)"
  [[ -n "${IMAGE_DIGEST}" ]] || IMAGE_DIGEST="${image_id}"
}

inspect_builder() {
  local inspect line
  inspect="$(as_builder_user buildx inspect "${BUILDER_NAME}")" || die "docker buildx inspect ${BUILDER_NAME} failed"
  line="$(sed -n 's/^Platforms: *//p' <<<"${inspect}" | head -n 1)"
  IFS=',' read -r -a PLATFORMS <<<"${line//[* ]/}"
  BUILDKIT_VERSION="$(sed -n 's/^\(BuildKit version\|Buildkit\): *//p' <<<"${inspect}" | head -n 1)"
  [[ "${#PLATFORMS[@]}" -gt 0 ]] || die "builder ${BUILDER_NAME} reports no platforms; see 'docker logs ${CONTAINER}'"
  mapfile -t RUNNING_ENTITLEMENTS < <(docker inspect -f '{{range .Args}}{{println .}}{{end}}' "${CONTAINER}" |
    sed -n 's/^--allow-insecure-entitlement=//p')
  read_image_digest
  log "builder ${BUILDER_NAME}: BuildKit ${BUILDKIT_VERSION:-unknown} from ${IMAGE_DIGEST}, platforms ${PLATFORMS[*]}, insecure entitlements: ${RUNNING_ENTITLEMENTS[*]:-none}"
}

delete_builder() {
  if ! docker_answers; then
    log "docker is not installed or not running: no builder to delete"
    ACTION=absent
    return
  fi
  ACTION=absent
  if id -u "${BUILDER_USER}" >/dev/null 2>&1 && builder_exists; then
    as_builder_user buildx rm "${BUILDER_NAME}" >&2 || die "docker buildx rm ${BUILDER_NAME} failed"
    ACTION=deleted
  fi
  if [[ -n "$(container_state)" ]]; then
    docker rm -f "${CONTAINER}" >/dev/null
    ACTION=deleted
  fi
  if [[ "${BUILDER_KEEP_CACHE}" == true ]]; then
    log "keeping the cache volume ${STATE_VOLUME} (BUILDER_KEEP_CACHE): the next builder on this data root takes it up"
  elif docker volume inspect "${STATE_VOLUME}" >/dev/null 2>&1; then
    docker volume rm "${STATE_VOLUME}" >/dev/null
    ACTION=deleted
  fi
  if [[ -e "${FINGERPRINT_FILE}" || -e "${BUILDKITD_TOML}" ]]; then
    rm -f "${FINGERPRINT_FILE}" "${BUILDKITD_TOML}"
    ACTION=deleted
  fi
  [[ "${ACTION}" == absent ]] || CHANGED=true
  log "builder ${BUILDER_NAME}: ${ACTION}"
}

# shellcheck disable=SC2016 # $name in the jq program is jq's
print_report() {
  local buildx=""
  command -v docker >/dev/null 2>&1 && buildx="$(docker buildx version 2>/dev/null | awk '{ print $2; exit }' || true)"
  report '{action: $action, builder: $builder, node: $node, container: $container, network: ($network | or_null),
    platforms: $platforms, insecureEntitlements: $insecureEntitlements, imageDigest: ($imageDigest | or_null),
    buildkitVersion: ($buildkitVersion | or_null), buildxVersion: ($buildxVersion | or_null)}' \
    --arg action "${ACTION}" --arg builder "${BUILDER_NAME}" --arg node "${NODE}" --arg container "${CONTAINER}" \
    --arg network "${NETWORK}" --argjson platforms "$(json_strings "${PLATFORMS[@]}")" \
    --argjson insecureEntitlements "$(json_strings "${RUNNING_ENTITLEMENTS[@]}")" --arg imageDigest "${IMAGE_DIGEST}" \
    --arg buildkitVersion "${BUILDKIT_VERSION}" --arg buildxVersion "${buildx}"
}

main() {
  begin_step
  validate_input
  if [[ "${BUILDER_ACTION}" == delete ]]; then
    delete_builder
  else
    docker_answers || die "docker does not answer; run the docker-engine step (docker-engine.sh) first"
    require_builder_user
    check_gc_fits_data_root
    choose_network
    write_buildkitd_toml
    ensure_builder
    inspect_builder
  fi
  print_report
}

main "$@"
