#!/usr/bin/env bash
# Build the lab's client image: the same Debian 13 base as the host plus Debian's Docker CLI,
# buildx plugin and OpenSSH client. A container from it plays a teammate's laptop or a CI
# runner that attaches to the build host through the SSH endpoint the program outputs.
#
# Cached: skipped when the tag exists; `docker save` tarball kept under the cache dir so an
# engine reset reloads it without apt.
#
# Environment (defaults in brackets):
#   HOST_IMAGE         [output of build-host-image.sh]
#   CLIENT_IMAGE_REPO  [buildx-host-lab/client]
#   CACHE_DIR          [/var/cache/buildx-host]
# Prints the image reference on stdout.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLIENT_IMAGE_REPO="${CLIENT_IMAGE_REPO:-buildx-host-lab/client}"
CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
CLIENT_PACKAGES="docker-cli docker-buildx openssh-client"

log() { echo "build-client-image: $*" >&2; }

main() {
  local host_image="${HOST_IMAGE:-}" ref tarball container
  [[ -n "$host_image" ]] || host_image="$("$INFRA_DIR/build-host-image.sh")"
  ref="$CLIENT_IMAGE_REPO:$(printf '%s\n' "$host_image" "$CLIENT_PACKAGES" | sha256sum | cut -c1-12)"
  tarball="$CACHE_DIR/client-image-${ref##*:}.tar"
  if docker image inspect "$ref" >/dev/null 2>&1; then
    log "image $ref exists; nothing to build"
  elif [[ -f "$tarball" ]]; then
    docker load -i "$tarball" >/dev/null
    log "loaded $ref from $tarball"
  else
    container="buildx-host-lab-client-build-$$"
    log "installing $CLIENT_PACKAGES on $host_image"
    docker run --name "$container" --network host "$host_image" bash -c \
      "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $CLIENT_PACKAGES && rm -rf /var/lib/apt/lists/*" >&2
    docker commit --change 'CMD ["bash"]' "$container" "$ref" >/dev/null
    docker rm "$container" >/dev/null
    mkdir -p "$CACHE_DIR"
    docker save -o "$tarball.tmp" "$ref"
    mv "$tarball.tmp" "$tarball"
    log "built $ref (saved to $tarball)"
  fi
  echo "$ref"
}

main "$@"
