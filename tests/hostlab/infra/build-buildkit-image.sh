#!/usr/bin/env bash
# Build the BuildKit image the docker-container driver runs, locally: no registry is
# reachable in the lab, so `moby/buildkit:<version>` cannot be pulled.
#
# buildkitd and buildctl are built from the Go module github.com/moby/buildkit at the pinned
# version, the way upstream's Dockerfile builds them: static (CGO_ENABLED=0), tags
# "osusergo netgo static_build seccomp", version stamped by -ldflags. `go install mod@ver`
# refuses the module (its go.mod has exclude directives), so the build runs in a writable
# copy of the module's own source from the module cache: upstream's go.mod and go.sum,
# exactly as released, decide every dependency.
#
# Upstream's image takes runc from its own build; this one takes Debian trixie's `runc`
# package, which is linked against libc6 and libseccomp2, so those two packages go into the
# image too (a tiny usr-merged rootfs, no shell). The rootfs is imported with
# ENTRYPOINT ["buildkitd"], like upstream's image: buildx's docker-container driver passes
# only buildkitd's arguments and runs `buildctl ...`/`buildkitd --version` with docker exec.
#
# Cached under $CACHE_DIR/buildkit/<version>/: the two binaries, the .deb files and the
# `docker save` tarball (its name carries a hash of the image recipe). A second run finds the
# image (or loads the tarball into a reset engine) and rebuilds nothing.
#
# Environment (defaults in brackets):
#   BUILDKIT_VERSION  [HOST_FACTS_BUILDKIT_VERSION]   module version and image tag
#   BUILDKIT_IMAGE    [HOST_FACTS_BUILDKIT_REPOSITORY:$BUILDKIT_VERSION], the program's default image
#   CACHE_DIR         [/var/cache/buildx-host]
#   DEBIAN_MIRROR     [http://deb.debian.org/debian]
#   RUNC_SUITE        [trixie]                        Debian suite runc and its libraries come from
#   BUILDKIT_IMAGE_ENV [unset]  when set, BUILDKIT_IMAGE=<ref> and BUILDKIT_IMAGE_TAR=<path>
#                      are written to this file
# Prints the image reference on stdout.
set -euo pipefail

# The BuildKit version and image the program and its steps use (components/host-facts.ts).
# shellcheck source=../../../components/scripts/lib/host-facts.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../../components/scripts/lib/host-facts.sh"

BUILDKIT_VERSION="${BUILDKIT_VERSION:-${HOST_FACTS_BUILDKIT_VERSION}}"
BUILDKIT_IMAGE="${BUILDKIT_IMAGE:-${HOST_FACTS_BUILDKIT_REPOSITORY}:${BUILDKIT_VERSION}}"
CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
RUNC_SUITE="${RUNC_SUITE:-trixie}"
BUILDKIT_IMAGE_ENV="${BUILDKIT_IMAGE_ENV:-}"

BUILDKIT_MODULE=github.com/moby/buildkit
BUILDKIT_CACHE="${CACHE_DIR}/buildkit/${BUILDKIT_VERSION}"
# Packages whose files make up the image besides the two Go binaries.
RUNTIME_PACKAGES=(runc libseccomp2 libc6)

log() { echo "build-buildkit-image: $*" >&2; }

# The image recipe: anything that changes it must change the tarball's name.
recipe_hash() {
  printf '%s\n' "${BUILDKIT_VERSION}" "${RUNC_SUITE}" "${RUNTIME_PACKAGES[*]}" \
    "$(sed -n '/^assemble_rootfs()/,/^}/p;/^import_image()/,/^}/p' "${BASH_SOURCE[0]}")" |
    sha256sum | cut -c1-12
}

image_tar() { echo "${BUILDKIT_CACHE}/image-$(recipe_hash).tar"; }

# docker save/load keeps the image's creation time, so it names one build across engines
# (with the containerd image store a loaded image gets another ID).
created_of_tar() { tar -xOf "$1" manifest.json | jq -r '.[0].Config' | xargs tar -xOf "$1" | jq -r .created; }

image_created() { docker image inspect -f '{{.Created}}' "${BUILDKIT_IMAGE}" 2>/dev/null; }

same_time() {
  [[ -n "$1" && -n "$2" ]] && [[ "$(date -u -d "$1" +%s.%N)" == "$(date -u -d "$2" +%s.%N)" ]]
}

# buildx's docker-container driver splits `buildkitd --version` into exactly four fields:
# "buildkitd <package> <version> <revision>".
version_line_ok() {
  local fields
  read -r -a fields <<<"$1"
  [[ ${#fields[@]} -eq 4 && "${fields[0]}" == buildkitd && "${fields[2]}" == "${BUILDKIT_VERSION}" ]]
}

go_env() {
  env GOPATH="${CACHE_DIR}/gopath" GOCACHE="${CACHE_DIR}/go-build" GOTOOLCHAIN=local \
    GOFLAGS=-buildvcs=false CGO_ENABLED=0 "$@"
}

require_tools() {
  local missing=()
  command -v go >/dev/null || missing+=("go (Go >= the module's go directive)")
  command -v jq >/dev/null || missing+=("jq (apt-get install -y jq)")
  command -v docker >/dev/null || missing+=("docker")
  if ((${#missing[@]})); then
    log "missing tools: ${missing[*]}"
    return 1
  fi
}

build_binaries() {
  local bin="${BUILDKIT_CACHE}/bin"
  if [[ -x "${bin}/buildkitd" && -x "${bin}/buildctl" ]] &&
    version_line_ok "$("${bin}/buildkitd" --version)"; then
    log "buildkitd and buildctl ${BUILDKIT_VERSION} already built in ${bin}"
    return 0
  fi
  local start=${SECONDS} src dir info revision
  info="$(go_env go mod download -json "${BUILDKIT_MODULE}@${BUILDKIT_VERSION}")"
  dir="$(jq -r .Dir <<<"${info}")"
  # The module proxy does not carry the git commit, so the revision field (which buildx needs,
  # see version_line_ok) names the module's checksum instead.
  revision="gomod-$(jq -r .Sum <<<"${info}" | cut -d: -f2 | base64 -d | od -An -tx1 | tr -d ' \n' | cut -c1-12)"
  src="$(mktemp -d)"
  cp -a "${dir}/." "${src}/"
  chmod -R u+w "${src}"
  local ldflags="-s -w -X ${BUILDKIT_MODULE}/version.Version=${BUILDKIT_VERSION} -X ${BUILDKIT_MODULE}/version.Package=${BUILDKIT_MODULE} -X ${BUILDKIT_MODULE}/version.Revision=${revision}"
  log "building buildkitd and buildctl ${BUILDKIT_VERSION} (static, CGO_ENABLED=0); several minutes on 2 cores"
  mkdir -p "${bin}.new"
  (cd "${src}" &&
    go_env nice -n 10 go build -trimpath -ldflags "${ldflags}" \
      -tags "osusergo netgo static_build seccomp" -o "${bin}.new/buildkitd" ./cmd/buildkitd &&
    go_env nice -n 10 go build -trimpath -ldflags "${ldflags}" -o "${bin}.new/buildctl" ./cmd/buildctl)
  rm -rf "${src}" "${bin}"
  mv "${bin}.new" "${bin}"
  log "built in $((SECONDS - start))s: $("${bin}/buildkitd" --version)"
}

# A private apt state for $RUNC_SUITE, so the build machine's own apt setup (any release)
# is neither used nor changed.
fetch_runtime_debs() {
  local debs="${BUILDKIT_CACHE}/debs-${RUNC_SUITE}" apt="${BUILDKIT_CACHE}/apt-${RUNC_SUITE}"
  if [[ -f "${debs}/.complete" ]]; then
    log "runtime packages already in ${debs}"
    return 0
  fi
  mkdir -p "${apt}/lists/partial" "${apt}/archives/partial" "${debs}"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${DEBIAN_MIRROR} ${RUNC_SUITE} main" \
    >"${apt}/sources.list"
  local opts=(-o "Dir::State::Lists=${apt}/lists" -o "Dir::Cache=${apt}" -o "Dir::Cache::archives=${apt}/archives"
    -o "Dir::Etc::SourceList=${apt}/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
    -o "Dir::State::status=/dev/null" -o "APT::Architecture=amd64" -o "Acquire::Languages=none" -o "APT::Sandbox::User=root"
    -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false")
  log "fetching ${RUNTIME_PACKAGES[*]} from Debian ${RUNC_SUITE}"
  apt-get "${opts[@]}" update -q >&2
  (cd "${debs}" && apt-get "${opts[@]}" download "${RUNTIME_PACKAGES[@]}" >&2)
  touch "${debs}/.complete"
}

assemble_rootfs() {
  local root="$1" deb
  for deb in "${BUILDKIT_CACHE}/debs-${RUNC_SUITE}"/*.deb; do
    dpkg-deb -x "${deb}" "${root}"
  done
  # Only the runtime pieces: runc, the dynamic loader, libc and libseccomp.
  rm -rf "${root:?}/usr/share" "${root}/usr/lib/x86_64-linux-gnu/gconv" "${root}/usr/libexec" \
    "${root}/usr/lib/x86_64-linux-gnu/audit" "${root}/etc/ld.so.conf.d" "${root:?}/etc"/*
  install -d -m 0755 "${root}/usr/bin" "${root}/usr/sbin" "${root}/usr/lib64" "${root}/etc/buildkit" \
    "${root}/etc/cdi" "${root}/var/run/cdi" "${root}/var/lib/buildkit" "${root}/run"
  install -d -m 1777 "${root}/tmp"
  # Usr-merged layout: runc's ELF interpreter is /lib64/ld-linux-x86-64.so.2.
  local link
  for link in bin sbin lib lib64; do
    [[ -e "${root}/${link}" || -L "${root}/${link}" ]] || ln -s "usr/${link}" "${root}/${link}"
  done
  install -m 0755 "${BUILDKIT_CACHE}/bin/buildkitd" "${BUILDKIT_CACHE}/bin/buildctl" "${root}/usr/bin/"
  mv "${root}/usr/sbin/runc" "${root}/usr/bin/runc"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\n' >"${root}/etc/passwd"
  printf 'root:x:0:\n' >"${root}/etc/group"
}

import_image() {
  local root="$1"
  tar -C "${root}" --owner=0 --group=0 --numeric-owner -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'VOLUME /var/lib/buildkit' \
      --change 'ENTRYPOINT ["buildkitd"]' \
      --message "buildkit ${BUILDKIT_VERSION} built from Go modules, runc from Debian ${RUNC_SUITE} (buildx-host lab)" \
      - "${BUILDKIT_IMAGE}" >/dev/null
}

# The binaries must run inside the image itself, not only on the build machine.
check_image() {
  local out
  out="$(docker run --rm --network none --entrypoint buildkitd "${BUILDKIT_IMAGE}" --version)"
  version_line_ok "${out}" || { log "unexpected buildkitd --version: ${out}"; return 1; }
  docker run --rm --network none --entrypoint buildctl "${BUILDKIT_IMAGE}" --version >/dev/null
  docker run --rm --network none --entrypoint runc "${BUILDKIT_IMAGE}" --version >&2
}

build_image() {
  local tar="$1" root
  build_binaries
  fetch_runtime_debs
  root="$(mktemp -d)"
  assemble_rootfs "${root}"
  import_image "${root}"
  rm -rf "${root}"
  check_image
  docker save "${BUILDKIT_IMAGE}" >"${tar}.new"
  mv "${tar}.new" "${tar}"
}

write_env_file() {
  [[ -n "${BUILDKIT_IMAGE_ENV}" ]] || return 0
  local tar
  tar="$(image_tar)"
  printf 'BUILDKIT_IMAGE=%s\nBUILDKIT_IMAGE_TAR=%s\n' "${BUILDKIT_IMAGE}" "${tar}" >"${BUILDKIT_IMAGE_ENV}"
}

main() {
  require_tools
  mkdir -p "${BUILDKIT_CACHE}"
  local tar start=${SECONDS}
  tar="$(image_tar)"
  if [[ -f "${tar}" ]] && same_time "$(image_created)" "$(created_of_tar "${tar}")"; then
    log "${BUILDKIT_IMAGE} is in the engine and cached as ${tar}; nothing to do"
  elif [[ -f "${tar}" ]]; then
    log "loading ${BUILDKIT_IMAGE} from ${tar} (no rebuild)"
    docker load -i "${tar}" >&2
  else
    build_image "${tar}"
    log "built ${BUILDKIT_IMAGE} in $((SECONDS - start))s, cached as ${tar} ($(du -h "${tar}" | cut -f1))"
  fi
  write_env_file
  echo "${BUILDKIT_IMAGE}"
}

main "$@"
