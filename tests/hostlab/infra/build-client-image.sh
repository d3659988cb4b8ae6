#!/usr/bin/env bash
# Build the lab's client image: the same Debian 13 base as the host plus Debian's Docker CLI
# and OpenSSH client, and as the docker CLI plugin /usr/libexec/docker/cli-plugins/docker-buildx
# the current buildx built from Go modules by tools/build-buildx.sh (Debian 13's docker-buildx
# package is 0.13.1, so it is not installed). A container from it plays a teammate's laptop or
# a CI runner that attaches to the build host through the SSH endpoint the program outputs.
#
# Cached: skipped when the tag exists; `docker save` tarball kept under the cache dir so an
# engine reset reloads it without apt. The tag hashes the host image, the packages and the
# buildx binary's sha256, so a new buildx makes a new image.
#
# Environment (defaults in brackets):
#   HOST_IMAGE         [output of build-host-image.sh]
#   CLIENT_BUILDX_BIN  [last line of tools/build-buildx.sh]  the docker-buildx plugin binary
#   CLIENT_IMAGE_REPO  [buildx-host-lab/client]
#   CACHE_DIR          [/var/cache/buildx-host]
# Prints the image reference on stdout.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLIENT_IMAGE_REPO="${CLIENT_IMAGE_REPO:-buildx-host-lab/client}"
CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
CLIENT_PACKAGES="docker-cli openssh-client"
PLUGIN_PATH=/usr/libexec/docker/cli-plugins/docker-buildx

log() { echo "build-client-image: $*" >&2; }

main() {
  local host_image="${HOST_IMAGE:-}" buildx_bin="${CLIENT_BUILDX_BIN:-}" buildx_sha buildx_version ref tarball container
  [[ -n "${host_image}" ]] || host_image="$("${INFRA_DIR}/build-host-image.sh")"
  [[ -n "${buildx_bin}" ]] || buildx_bin="$(bash "${INFRA_DIR}/../../../tools/build-buildx.sh" | tail -n 1)"
  [[ -x "${buildx_bin}" ]] || { log "error: CLIENT_BUILDX_BIN=${buildx_bin} is not an executable file"; exit 1; }
  buildx_sha="$(sha256sum "${buildx_bin}" | cut -d' ' -f1)"
  ref="${CLIENT_IMAGE_REPO}:$(printf '%s\n' "${host_image}" "${CLIENT_PACKAGES}" "${PLUGIN_PATH}" "buildx sha256 ${buildx_sha}" |
    sha256sum | cut -c1-12)"
  tarball="${CACHE_DIR}/client-image-${ref##*:}.tar"
  if docker image inspect "${ref}" >/dev/null 2>&1; then
    log "image ${ref} exists; nothing to build"
  elif [[ -f "${tarball}" ]]; then
    docker load -i "${tarball}" >/dev/null
    log "loaded ${ref} from ${tarball}"
  else
    container="buildx-host-lab-client-build-$$"
    log "installing ${CLIENT_PACKAGES} and ${buildx_bin} (sha256 ${buildx_sha}) as ${PLUGIN_PATH} on ${host_image}"
    docker run --name "${container}" --network host "${host_image}" bash -c \
      "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${CLIENT_PACKAGES} && rm -rf /var/lib/apt/lists/* && mkdir -p ${PLUGIN_PATH%/*}" >&2
    # docker cp keeps the file's mode (0755) and owner (root, who runs the lab).
    docker cp "${buildx_bin}" "${container}:${PLUGIN_PATH}" >&2
    docker commit --change 'CMD ["bash"]' "${container}" "${ref}" >/dev/null
    docker rm "${container}" >/dev/null
    # The docker CLI must find the plugin: otherwise drop the image rather than cache it.
    buildx_version="$(docker run --rm --network none "${ref}" docker buildx version)" ||
      { docker rmi "${ref}" >/dev/null; log "error: docker buildx does not run in ${ref}"; exit 1; }
    log "docker buildx version in ${ref}: ${buildx_version}"
    mkdir -p "${CACHE_DIR}"
    docker save -o "${tarball}.tmp" "${ref}"
    mv "${tarball}.tmp" "${tarball}"
    log "built ${ref} (saved to ${tarball})"
  fi
  echo "${ref}"
}

main "$@"
