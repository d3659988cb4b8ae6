#!/usr/bin/env bash
# Put the locally built BuildKit image (build-buildkit-image.sh) into a lab host's inner
# Docker engine, where buildx's docker-container driver looks for it: no registry is
# reachable, so `docker buildx create --driver-opt image=moby/buildkit:<version>` only works
# once the image is there.
#
# Usage: load-buildkit-image.sh TARGET
#   TARGET is a host container's name (loads with `docker exec -i NAME docker load`), or the
#   host.env file start-host.sh wrote (loads over SSH with `sudo -n docker load`, the way a
#   real host would get it).
# Loads nothing when the inner engine already has this very build (same creation time).
#
# Environment (defaults in brackets): those of build-buildkit-image.sh (BUILDKIT_VERSION
# [v0.34.2], BUILDKIT_IMAGE, CACHE_DIR), which this script runs first (a cache hit when the
# image is built already).
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { echo "load-buildkit-image: $*" >&2; }

# Runs a docker command against the target's inner engine; stdin passes through.
TARGET_KIND=""
TARGET=""
inner_docker() {
  if [[ "$TARGET_KIND" == ssh ]]; then
    # shellcheck disable=SC1090
    (source "$TARGET" &&
      ssh -F "$HOSTLAB_SSH_CONFIG" "$HOSTLAB_USER@$HOSTLAB_HOST" sudo -n docker "$(printf '%q ' "$@")")
  else
    docker exec -i "$TARGET" docker "$@"
  fi
}

parse_target() {
  if (($# != 1)); then
    log "usage: $0 HOST_CONTAINER_NAME|HOST_ENV_FILE"
    return 2
  fi
  TARGET="$1"
  if [[ -f "$TARGET" ]]; then
    TARGET_KIND="ssh"
  elif docker container inspect "$TARGET" >/dev/null 2>&1; then
    TARGET_KIND="exec"
  else
    log "$TARGET is neither a host.env file nor a container of this engine"
    return 2
  fi
}

same_time() {
  [[ -n "$1" && -n "$2" ]] && [[ "$(date -u -d "$1" +%s.%N)" == "$(date -u -d "$2" +%s.%N)" ]]
}

main() {
  parse_target "$@"
  local env_file inner_created
  env_file="$(mktemp)"
  BUILDKIT_IMAGE_ENV="$env_file" "$INFRA_DIR/build-buildkit-image.sh" >/dev/null
  # shellcheck disable=SC1090
  source "$env_file"
  rm -f "$env_file"
  inner_created="$(inner_docker image inspect -f '{{.Created}}' "$BUILDKIT_IMAGE" 2>/dev/null || true)"
  if same_time "$inner_created" "$BUILDKIT_IMAGE_CREATED"; then
    log "$BUILDKIT_IMAGE already in $TARGET's engine; nothing to do"
    return 0
  fi
  local start=$SECONDS
  inner_docker load <"$BUILDKIT_IMAGE_TAR" >&2
  log "loaded $BUILDKIT_IMAGE into $TARGET's engine in $((SECONDS - start))s"
}

main "$@"
