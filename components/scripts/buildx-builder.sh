#!/usr/bin/env bash
# buildx-builder.sh — host step 5 of 6: the shared docker-container buildx builder.
#
# create: writes /etc/buildx-host/buildkitd.toml (BuildKit's GC limits) and makes sure the builder
# BUILDER_NAME exists in BUILDER_USER's buildx store with one node, "${BUILDER_NAME}0", running in
# the container buildx_buildkit_${BUILDER_NAME}0 from BUILDKIT_IMAGE, on Docker's default bridge
# (the host network only where the daemon has no bridge). Every member who attaches to that
# container shares its one cache.
# The builder's configuration (image, buildkitd.toml, driver options) has a sha256 fingerprint
# kept in /etc/buildx-host/builder.sha256: the same fingerprint and a running node change nothing
# (a stopped node is started); another fingerprint removes the builder keeping its state volume
# (--keep-state: the build cache survives) and creates it again.
# delete: removes the builder and its state (cache); an absent builder, user or docker is fine.
#
# Runs as root, script on stdin: sudo -n env NAME='value' ... bash -s
#
# Environment (default in brackets):
#   BUILDER_ACTION              create | delete [create]
#   BUILDER_NAME                builder name [buildx-host]
#   BUILDER_USER                login user whose buildx store owns the builder [${SUDO_USER:-root}]
#   BUILDKIT_IMAGE              BuildKit image, pinned [moby/buildkit:v0.34.2]
#   BUILDKIT_GC_RESERVED_SPACE  cache BuildKit never collects below (worker.oci reservedSpace) [10GB]
#   BUILDKIT_GC_MAX_USED_SPACE  cache above this is collected (worker.oci maxUsedSpace) [80GB]
#   BUILDKIT_GC_MIN_FREE_SPACE  GC keeps at least this much disk free (worker.oci minFreeSpace) [20GB]
#   (sizes as BuildKit v0.34 reads them: bytes, "512MB"/"10GB"-style units (1024-based), or "10%")
#
# Output: progress on stderr; the last stdout line is
#   {"step":"buildx-builder","changed":bool,"action":"created|recreated|unchanged|started|deleted|absent",
#    "builder":"…","node":"…","container":"buildx_buildkit_…","network":"bridge"|"host",
#    "platforms":["linux/amd64",…],
#    "buildkitVersion":"…","buildxVersion":"…"}
set -euo pipefail

# The functions all steps share: sent ahead of this script by steps.ts, or sourced from a checkout.
if ! declare -F log >/dev/null; then
  # shellcheck source=lib/common.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
  # shellcheck source=lib/host-facts.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/host-facts.sh"
fi

BUILDER_ACTION="${BUILDER_ACTION:-create}"
BUILDER_NAME="${BUILDER_NAME:-buildx-host}"
BUILDER_USER="${BUILDER_USER:-${SUDO_USER:-root}}"
BUILDKIT_IMAGE="${BUILDKIT_IMAGE:-moby/buildkit:v0.34.2}"
BUILDKIT_GC_RESERVED_SPACE="${BUILDKIT_GC_RESERVED_SPACE:-10GB}"
BUILDKIT_GC_MAX_USED_SPACE="${BUILDKIT_GC_MAX_USED_SPACE:-80GB}"
BUILDKIT_GC_MIN_FREE_SPACE="${BUILDKIT_GC_MIN_FREE_SPACE:-20GB}"

readonly STEP=buildx-builder
readonly CONFIG_DIR=/etc/buildx-host
readonly BUILDKITD_TOML="${CONFIG_DIR}/buildkitd.toml"
readonly FINGERPRINT_FILE="${CONFIG_DIR}/builder.sha256"
DRIVER_OPTS=()
NETWORK=""
# Bump when the way the builder is created changes, so existing builders are recreated.
readonly RECIPE_VERSION=1

NODE="${BUILDER_NAME}0"
CONTAINER="buildx_buildkit_${NODE}"
CHANGED=false
ACTION=""
PLATFORMS=()
BUILDKIT_VERSION=""

validate_disk_space() {
  local name="$1" value="$2"
  [[ "${value}" =~ ${HOST_FACTS_DISK_SIZE_PATTERN} ]] \
    || die "${name} '${value}' is not a size BuildKit understands (e.g. 10GB, 512MiB, 10%)"
}

validate_input() {
  case "${BUILDER_ACTION}" in
    create | delete) ;;
    *) die "BUILDER_ACTION must be create or delete, not '${BUILDER_ACTION}'" ;;
  esac
  [[ "${BUILDER_NAME}" =~ ${HOST_FACTS_BUILDER_NAME_PATTERN} ]] \
    || die "BUILDER_NAME '${BUILDER_NAME}' is not a valid builder name (a lowercase letter, then up to 62 of a-z 0-9 _ -)"
  [[ "${BUILDKIT_IMAGE}" =~ ^[a-zA-Z0-9][a-zA-Z0-9._/:@-]*$ ]] \
    || die "BUILDKIT_IMAGE '${BUILDKIT_IMAGE}' is not an image reference"
  validate_disk_space BUILDKIT_GC_RESERVED_SPACE "${BUILDKIT_GC_RESERVED_SPACE}"
  validate_disk_space BUILDKIT_GC_MAX_USED_SPACE "${BUILDKIT_GC_MAX_USED_SPACE}"
  validate_disk_space BUILDKIT_GC_MIN_FREE_SPACE "${BUILDKIT_GC_MIN_FREE_SPACE}"
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
  local tmp
  install -d -m 0755 "${CONFIG_DIR}"
  tmp="$(mktemp "${BUILDKITD_TOML}.XXXXXX")"
  render_buildkitd_toml >"${tmp}"
  if cmp -s "${tmp}" "${BUILDKITD_TOML}"; then
    rm -f "${tmp}"
    return
  fi
  chmod 0644 "${tmp}"
  mv -f "${tmp}" "${BUILDKITD_TOML}"
  CHANGED=true
  log "wrote ${BUILDKITD_TOML}"
}

fingerprint() {
  {
    echo "recipe ${RECIPE_VERSION}"
    echo "builder ${BUILDER_NAME} user ${BUILDER_USER}"
    printf 'driver-opt %s\n' "${DRIVER_OPTS[@]}"
    cat "${BUILDKITD_TOML}"
  } | sha256sum | cut -d' ' -f1
}

# BuildKit's RUN steps share the builder container's network. On Docker's bridge they are one hop
# from the host, so an IMDSv2 hop limit of 1 keeps the instance's credentials and user data out of
# builds; on the host network they would not be. The host network only where there is no bridge.
choose_driver_opts() {
  DRIVER_OPTS=("image=${BUILDKIT_IMAGE}")
  if docker network inspect bridge >/dev/null 2>&1 </dev/null; then
    NETWORK=bridge
  else
    NETWORK=host
    DRIVER_OPTS+=("network=host")
    log "the docker daemon has no bridge network: the builder uses the host's network"
  fi
}

builder_exists() { as_builder_user buildx inspect "${BUILDER_NAME}" >/dev/null 2>&1; }

container_state() { docker inspect -f '{{.State.Status}}' "${CONTAINER}" 2>/dev/null || true; }

# buildx's --buildkitd-config (0.13+) was called --config before.
config_flag() {
  if as_builder_user buildx create --help 2>/dev/null | grep -q -- '--buildkitd-config'; then
    echo --buildkitd-config
  else
    echo --config
  fi
}

create_builder() {
  local args=(buildx create --name "${BUILDER_NAME}" --node "${NODE}" --driver docker-container) opt
  for opt in "${DRIVER_OPTS[@]}"; do
    args+=(--driver-opt "${opt}")
  done
  args+=("$(config_flag)" "${BUILDKITD_TOML}" --bootstrap)
  # A container left by a builder missing from this store would be reused as it is: start clean.
  if [[ -n "$(container_state)" ]]; then
    log "removing the leftover container ${CONTAINER} (its state volume stays)"
    docker rm -f "${CONTAINER}" >/dev/null
  fi
  log "creating builder ${BUILDER_NAME} (node ${NODE}, image ${BUILDKIT_IMAGE}) for ${BUILDER_USER}"
  if ! as_builder_user "${args[@]}" >&2; then
    # buildx records the builder before booting it: drop the record, keep any cache.
    as_builder_user buildx rm --keep-state "${BUILDER_NAME}" >/dev/null 2>&1 || true
    die "docker buildx create failed; is ${BUILDKIT_IMAGE} pullable or loaded on this host ('docker image inspect ${BUILDKIT_IMAGE}')?"
  fi
}

write_fingerprint() {
  local tmp
  tmp="$(mktemp "${FINGERPRINT_FILE}.XXXXXX")"
  echo "$1" >"${tmp}"
  chmod 0644 "${tmp}"
  mv -f "${tmp}" "${FINGERPRINT_FILE}"
}

ensure_builder() {
  local wanted recorded=""
  wanted="$(fingerprint)"
  [[ -f "${FINGERPRINT_FILE}" ]] && recorded="$(cat "${FINGERPRINT_FILE}")"
  if builder_exists; then
    if [[ "${recorded}" == "${wanted}" ]]; then
      if [[ "$(container_state)" == running ]]; then
        ACTION=unchanged
        log "builder ${BUILDER_NAME} is up to date and running"
      else
        log "builder ${BUILDER_NAME} is up to date but its node is $(container_state || true): starting it"
        as_builder_user buildx inspect --bootstrap "${BUILDER_NAME}" >/dev/null \
          || die "could not start builder ${BUILDER_NAME}; see 'docker logs ${CONTAINER}'"
        ACTION=started
        CHANGED=true
      fi
      return
    fi
    log "builder ${BUILDER_NAME}'s configuration changed: recreating it, keeping its build cache"
    rm -f "${FINGERPRINT_FILE}"
    as_builder_user buildx rm --keep-state "${BUILDER_NAME}" >&2
    ACTION=recreated
  else
    ACTION=created
    rm -f "${FINGERPRINT_FILE}"
  fi
  create_builder
  write_fingerprint "${wanted}"
  CHANGED=true
}

inspect_builder() {
  local inspect line
  inspect="$(as_builder_user buildx inspect "${BUILDER_NAME}")" || die "docker buildx inspect ${BUILDER_NAME} failed"
  line="$(sed -n 's/^Platforms: *//p' <<<"${inspect}" | head -n 1)"
  IFS=',' read -r -a PLATFORMS <<<"${line//[* ]/}"
  BUILDKIT_VERSION="$(sed -n 's/^\(BuildKit version\|Buildkit\): *//p' <<<"${inspect}" | head -n 1)"
  [[ "${#PLATFORMS[@]}" -gt 0 ]] || die "builder ${BUILDER_NAME} reports no platforms; see 'docker logs ${CONTAINER}'"
  log "builder ${BUILDER_NAME}: BuildKit ${BUILDKIT_VERSION:-unknown}, platforms ${PLATFORMS[*]}"
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
  # What a store that lost the builder would leave behind.
  if [[ -n "$(container_state)" ]]; then
    docker rm -f "${CONTAINER}" >/dev/null
    ACTION=deleted
  fi
  if docker volume inspect "${CONTAINER}_state" >/dev/null 2>&1; then
    docker volume rm "${CONTAINER}_state" >/dev/null
    ACTION=deleted
  fi
  if [[ -e "${FINGERPRINT_FILE}" || -e "${BUILDKITD_TOML}" ]]; then
    rm -f "${FINGERPRINT_FILE}" "${BUILDKITD_TOML}"
    ACTION=deleted
  fi
  [[ "${ACTION}" == absent ]] || CHANGED=true
  log "builder ${BUILDER_NAME}: ${ACTION}"
}

print_result() {
  local buildx=""
  command -v docker >/dev/null 2>&1 && buildx="$(docker buildx version 2>/dev/null | awk '{ print $2; exit }' || true)"
  report "$(printf '{"step":"%s","changed":%s,"action":"%s","builder":%s,"node":%s,"container":%s,"network":%s,"platforms":%s,"buildkitVersion":%s,"buildxVersion":%s}' \
    "${STEP}" "${CHANGED}" "${ACTION}" "$(json_string "${BUILDER_NAME}")" "$(json_string "${NODE}")" \
    "$(json_string "${CONTAINER}")" "$(json_or_null "${NETWORK}")" "$(json_array "${PLATFORMS[@]}")" \
    "$(json_or_null "${BUILDKIT_VERSION}")" "$(json_or_null "${buildx}")")"
}

main() {
  begin_step
  validate_input
  if [[ "${BUILDER_ACTION}" == delete ]]; then
    delete_builder
  else
    docker_answers || die "docker does not answer; run the docker-engine step (docker-engine.sh) first"
    require_builder_user
    choose_driver_opts
    write_buildkitd_toml
    ensure_builder
    inspect_builder
  fi
  print_result
}

main "$@"
