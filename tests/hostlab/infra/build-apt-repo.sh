#!/usr/bin/env bash
# Build a signed local apt repository that STANDS IN FOR DOCKER'S (download.docker.com),
# which the lab cannot reach. It has Docker's layout, so the program's docker-engine step
# runs its real code path against it with only DOCKER_APT_REPO changed:
#   $DOCKER_APT_REPO/debian/gpg                      armored public signing key
#   $DOCKER_APT_REPO/debian dists/trixie/stable      the suite and component
# Its packages have Docker's names, version shapes and relations (docker-ce
# 5:26.1.5-1~debian.13~trixie depends on containerd.io and docker-ce-cli; containerd.io
# conflicts with and provides containerd and runc) and Debian 13's software inside: each is
# Debian's package repacked under Docker's name (docker.io -> docker-ce, docker-cli ->
# docker-ce-cli, containerd + runc -> containerd.io, docker-buildx -> docker-buildx-plugin,
# docker-compose -> docker-compose-plugin). Thin packages that merely depend on Debian's
# cannot work: Debian's docker.io conflicts with docker-ce and docker-cli with docker-ce-cli.
# The Release file is signed (InRelease and Release.gpg) with a key generated for the lab.
#
# Cached: the repository dir is reused when it exists (its name carries a hash of this
# script's repack rules).
#
# Environment (defaults in brackets):
#   CACHE_DIR       [/var/cache/buildx-host]
#   APT_REPO_ARCH   [output of dpkg --print-architecture]
#   HOST_IMAGE      [output of build-host-image.sh]  Debian 13 image used to download the debs
# Prints the repository's root directory on stdout (serve it with serve-apt-repo.sh).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
APT_REPO_ARCH="${APT_REPO_ARCH:-$(dpkg --print-architecture)}"
CODENAME=trixie
COMPONENT=stable
KEY_UID="buildx-host lab stand-in for Docker's apt repository <hostlab@localhost>"

log() { echo "build-apt-repo: $*" >&2; }

SOURCE_PACKAGES=(docker.io docker-cli containerd runc docker-buildx docker-compose)

# Docker's version shape from Debian's upstream version: 26.1.5+dfsg1-9+deb13u1 -> 26.1.5.
upstream_version() {
  local v="${1#*:}"
  v="${v%%-*}"
  echo "${v%%[+~]*}"
}

deb_field() { dpkg-deb -f "$1" "$2"; }

# Set (or with an empty value remove) one field of a control file, continuation lines included.
set_field() {
  local file="$1" field="$2" value="$3"
  awk -v f="${field}" -v v="${value}" '
    BEGIN { done = 0 }
    index($0, f ":") == 1 { skip = 1; if (v != "") print f ": " v; done = 1; next }
    skip && /^[ \t]/ { next }
    { skip = 0; print }
    END { if (!done && v != "") print f ": " v }
  ' "${file}" >"${file}.new"
  mv "${file}.new" "${file}"
}

# One function per Docker package: which Debian debs go in and how the control changes.
repack_rules() {
  local name="$1" control="$2" cli_version="$3"
  case "${name}" in
    docker-ce)
      set_field "${control}" Depends "containerd.io (>= 1.7), docker-ce-cli (= ${cli_version}), $(deb_field "${SRC}/docker.io.deb" Depends | sed -E 's/(^|, )(containerd|runc) \([^)]*\)//g; s/^, //')"
      set_field "${control}" Recommends "apparmor, ca-certificates, git, xz-utils"
      set_field "${control}" Conflicts "docker.io, docker-engine"
      set_field "${control}" Replaces "docker.io, docker-engine"
      ;;
    docker-ce-cli)
      set_field "${control}" Recommends "docker-buildx-plugin"
      set_field "${control}" Conflicts "docker-cli, podman-docker"
      set_field "${control}" Replaces "docker-cli, docker.io (<< 26.1.4+dfsg1-7~)"
      ;;
    containerd.io)
      set_field "${control}" Depends "$(deb_field "${SRC}/runc.deb" Depends)"
      set_field "${control}" Breaks ""
      set_field "${control}" Provides "containerd (= $(deb_field "${SRC}/containerd.deb" Version)), runc (= $(deb_field "${SRC}/runc.deb" Version))"
      set_field "${control}" Conflicts "containerd, runc"
      set_field "${control}" Replaces "containerd, runc"
      ;;
    docker-buildx-plugin | docker-compose-plugin)
      local debian_name="docker-${name#docker-}"
      debian_name="${debian_name%-plugin}"
      set_field "${control}" Recommends "docker-ce-cli"
      set_field "${control}" Conflicts "${debian_name}"
      set_field "${control}" Replaces "${debian_name}"
      ;;
  esac
}

# repack NAME VERSION POOL DEB... : the first deb gives the control data and maintainer
# scripts; the files of all of them go in.
repack() {
  local name="$1" version="$2" pool="$3" cli_version="$4"
  shift 4
  local work first="$1" deb size
  work="$(mktemp -d)"
  dpkg-deb -R "${first}" "${work}"
  for deb in "${@:2}"; do
    dpkg-deb -x "${deb}" "${work}"
    dpkg-deb --ctrl-tarfile "${deb}" | tar -xO ./md5sums >>"${work}/DEBIAN/md5sums" 2>/dev/null || true
  done
  local control="${work}/DEBIAN/control"
  set_field "${control}" Package "${name}"
  set_field "${control}" Version "${version}"
  set_field "${control}" Source ""
  set_field "${control}" Built-Using ""
  set_field "${control}" Static-Built-Using ""
  set_field "${control}" Maintainer "buildx-host lab <hostlab@localhost>"
  size="$(du -sk --exclude=DEBIAN "${work}" | cut -f1)"
  set_field "${control}" Installed-Size "${size}"
  repack_rules "${name}" "${control}" "${cli_version}"
  set_field "${control}" Description "${name} stand-in for the buildx-host lab (Debian 13's $(deb_field "${first}" Package) repacked)"
  dpkg-deb --root-owner-group -Zgzip -z1 --build "${work}" "${pool}/${name}_${version#*:}_${APT_REPO_ARCH}.deb" >/dev/null
  rm -rf "${work}"
}

download_debian_debs() {
  local out="$1" image="${HOST_IMAGE:-}"
  [[ -n "${image}" ]] || image="$("$(dirname "${BASH_SOURCE[0]}")/build-host-image.sh")"
  log "downloading Debian 13 packages ${SOURCE_PACKAGES[*]}"
  docker run --rm --network host -v "${out}:/out" "${image}" bash -c \
    "apt-get update -qq && cd /out && apt-get download -q ${SOURCE_PACKAGES[*]}" >&2
  local p
  for p in "${SOURCE_PACKAGES[@]}"; do
    mv "${out}/${p}"_*.deb "${out}/${p}.deb"
  done
}

build_packages() {
  local pool="$1" docker_v containerd_v buildx_v compose_v suffix="debian.13~${CODENAME}"
  docker_v="5:$(upstream_version "$(deb_field "${SRC}/docker.io.deb" Version)")-1~${suffix}"
  containerd_v="$(upstream_version "$(deb_field "${SRC}/containerd.deb" Version)")-1"
  buildx_v="$(upstream_version "$(deb_field "${SRC}/docker-buildx.deb" Version)")-1~${suffix}"
  compose_v="$(upstream_version "$(deb_field "${SRC}/docker-compose.deb" Version)")-1~${suffix}"
  repack docker-ce "${docker_v}" "${pool}" "${docker_v}" "${SRC}/docker.io.deb"
  repack docker-ce-cli "${docker_v}" "${pool}" "${docker_v}" "${SRC}/docker-cli.deb"
  repack containerd.io "${containerd_v}" "${pool}" "${docker_v}" "${SRC}/containerd.deb" "${SRC}/runc.deb"
  repack docker-buildx-plugin "${buildx_v}" "${pool}" "${docker_v}" "${SRC}/docker-buildx.deb"
  repack docker-compose-plugin "${compose_v}" "${pool}" "${docker_v}" "${SRC}/docker-compose.deb"
}

repo_dir() {
  local hash
  hash="$(printf '%s\n' "${APT_REPO_ARCH}" "${KEY_UID}" "${SOURCE_PACKAGES[*]}" \
    "$(sed -n '/^repack_rules()/,/^}/p; /^repack()/,/^}/p; /^build_packages()/,/^}/p' "${BASH_SOURCE[0]}")" |
    sha256sum | cut -c1-12)"
  echo "${CACHE_DIR}/apt-repo-${CODENAME}-${hash}"
}

ensure_tools() {
  command -v apt-ftparchive >/dev/null 2>&1 && command -v gpg >/dev/null 2>&1 && return 0
  log "installing apt-utils and gnupg"
  install_packages apt-utils gnupg
}

make_signing_key() {
  local gnupghome="$1"
  install -d -m 0700 "${gnupghome}"
  GNUPGHOME="${gnupghome}" gpg --batch --quiet --passphrase '' \
    --quick-generate-key "${KEY_UID}" ed25519 sign never 2>/dev/null
}

index_and_sign() {
  local root="$1" gnupghome="$2" dist="$1/debian/dists/${CODENAME}"
  local bin="${dist}/${COMPONENT}/binary-${APT_REPO_ARCH}"
  mkdir -p "${bin}"
  (cd "${root}/debian" && apt-ftparchive packages "pool/${COMPONENT}") >"${bin}/Packages"
  gzip -9nk "${bin}/Packages"
  apt-ftparchive \
    -o APT::FTPArchive::Release::Origin="buildx-host lab (stand-in for Docker)" \
    -o APT::FTPArchive::Release::Label="Docker CE stand-in" \
    -o APT::FTPArchive::Release::Suite="${CODENAME}" \
    -o APT::FTPArchive::Release::Codename="${CODENAME}" \
    -o APT::FTPArchive::Release::Architectures="${APT_REPO_ARCH}" \
    -o APT::FTPArchive::Release::Components="${COMPONENT}" \
    release "${dist}" >"${root}/Release.tmp"
  mv "${root}/Release.tmp" "${dist}/Release"
  GNUPGHOME="${gnupghome}" gpg --batch --quiet --yes --armor --detach-sign -o "${dist}/Release.gpg" "${dist}/Release"
  GNUPGHOME="${gnupghome}" gpg --batch --quiet --yes --clearsign -o "${dist}/InRelease" "${dist}/Release"
  GNUPGHOME="${gnupghome}" gpg --batch --quiet --armor --export "${KEY_UID}" >"${root}/debian/gpg"
}

build_repo() {
  local final="$1" root="$1.tmp" gnupghome
  rm -rf "${root}"
  mkdir -p "${root}/debian/pool/${COMPONENT}"
  gnupghome="$(mktemp -d)"
  make_signing_key "${gnupghome}"
  SRC="${root}/debian-debs"
  mkdir -p "${SRC}"
  download_debian_debs "${SRC}"
  build_packages "${root}/debian/pool/${COMPONENT}"
  rm -rf "${SRC}"
  index_and_sign "${root}" "${gnupghome}"
  # Only the public half is kept: the repo never changes after it is built.
  gpgconf --homedir "${gnupghome}" --kill all 2>/dev/null || true
  rm -rf "${gnupghome}"
  mv "${root}" "${final}"
}

main() {
  local dir
  dir="$(repo_dir)"
  if [[ -f "${dir}/debian/dists/${CODENAME}/InRelease" ]]; then
    log "stand-in Docker apt repo cached at ${dir}; nothing to build"
  else
    ensure_tools
    mkdir -p "${CACHE_DIR}"
    build_repo "${dir}"
    log "built stand-in Docker apt repo at ${dir} ($(find "${dir}" -name '*.deb' | wc -l) packages, signed)"
  fi
  echo "${dir}"
}

main "$@"
