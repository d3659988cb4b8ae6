#!/usr/bin/env bash
# docker-engine.sh — host step 3 of 7: Docker Engine from Docker's apt repository.
#
# Installs docker-ce, docker-ce-cli, containerd.io, docker-buildx-plugin and docker-compose-plugin
# from "$DOCKER_APT_REPO/<os id>", optionally pinned to one version and held; starts containerd and
# docker; adds users to the docker group. An unpinned host keeps the version it got first.
# Conflicting packages (docker.io, podman-docker, the distro's containerd and runc, …) are removed
# unless the target packages depend on them, as a mirror's docker-ce may.
#
# Runs as root, script on stdin: sudo -n env NAME='value' ... bash -s
#
# Environment (default in brackets; [host facts]: HOST_FACTS_DEFAULT in lib/host-facts.sh):
#   DOCKER_APT_REPO           repo root; https, or http on a loopback address only [host facts]
#   DOCKER_APT_KEY_FINGERPRINT  the fingerprint the repository's key must have (40 hex digits,
#                             spaces allowed); another key fails the step before anything changes
#                             [host facts: Docker's]
#   DOCKER_CE_VERSION         exact apt version of docker-ce and docker-ce-cli, then held; empty:
#                             the newest, and a hold this step placed is released [""]
#   DOCKER_GROUP_USERS        space-separated existing users to add to the docker group [""]
#   APT_LOCK_TIMEOUT_SECONDS  how long apt waits for the dpkg lock [300]
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

DOCKER_APT_REPO="${DOCKER_APT_REPO:-${HOST_FACTS_DEFAULT[DOCKER_APT_REPO]}}"
DOCKER_CE_VERSION="${DOCKER_CE_VERSION:-}"
DOCKER_APT_KEY_FINGERPRINT="${DOCKER_APT_KEY_FINGERPRINT:-${HOST_FACTS_DEFAULT[DOCKER_APT_KEY_FINGERPRINT]}}"
DOCKER_GROUP_USERS="${DOCKER_GROUP_USERS:-}"
APT_LOCK_TIMEOUT_SECONDS="${APT_LOCK_TIMEOUT_SECONDS:-300}"

readonly STEP=docker-engine
readonly KEYRING=/etc/apt/keyrings/docker.asc
readonly SOURCE_FILE=/etc/apt/sources.list.d/docker.sources
# The file Docker's older install instructions wrote; left active it clashes with ours on Signed-By.
readonly LEGACY_SOURCE_FILE=/etc/apt/sources.list.d/docker.list
# The packages this script held (one a line), so an unpinned run releases only its own holds.
readonly HOLD_MARKER=/var/lib/buildx-host/docker-engine.held
readonly TARGET_PACKAGES=(docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin)
readonly PINNED_PACKAGES=(docker-ce docker-ce-cli)
readonly CONFLICTING_PACKAGES=(docker.io docker-doc docker-compose docker-compose-v2 podman-docker containerd runc)
readonly PREREQUISITE_PACKAGES=(ca-certificates curl gnupg)
readonly DOCKER_READY_SECONDS=60

CHANGED=false
APT_UPDATED=false
REMOVED=()
GROUP_ADDED=()

apt_update() {
  apt_get update
  APT_UPDATED=true
}

validate_input() {
  local user
  require_seconds APT_LOCK_TIMEOUT_SECONDS
  [[ "${DOCKER_APT_REPO}" =~ ^https://[^[:space:]]+$ || "${DOCKER_APT_REPO}" =~ ^http://(127\.[0-9.]+|localhost|\[::1\])(:[0-9]+)?(/[^[:space:]]*)?$ ]] \
    || die "DOCKER_APT_REPO must be an https URL (http only on a loopback address), not '${DOCKER_APT_REPO}'"
  DOCKER_APT_REPO="${DOCKER_APT_REPO%/}"
  DOCKER_APT_KEY_FINGERPRINT="${DOCKER_APT_KEY_FINGERPRINT// /}"
  DOCKER_APT_KEY_FINGERPRINT="${DOCKER_APT_KEY_FINGERPRINT^^}"
  [[ "${DOCKER_APT_KEY_FINGERPRINT}" =~ ^[0-9A-F]{40}$ ]] \
    || die "DOCKER_APT_KEY_FINGERPRINT must be 40 hex digits (an OpenPGP v4 fingerprint), not '${DOCKER_APT_KEY_FINGERPRINT}'"
  [[ -z "${DOCKER_CE_VERSION}" || "${DOCKER_CE_VERSION}" =~ ^[A-Za-z0-9.+~:-]+$ ]] \
    || die "DOCKER_CE_VERSION '${DOCKER_CE_VERSION}' is not an apt version string (like 5:27.5.1-1~ubuntu.24.04~noble)"
  for user in ${DOCKER_GROUP_USERS}; do
    id -u "${user}" >/dev/null 2>&1 \
      || die "DOCKER_GROUP_USERS names '${user}', which is not a user on this host; create it first or drop it"
  done
}

read_platform() {
  OS_ID="$(os_release_field ID)"
  OS_CODENAME="$(os_release_field VERSION_CODENAME)"
  ARCH="$(dpkg --print-architecture)"
  local release supported=false
  for release in "${HOST_FACTS_SUPPORTED_RELEASES[@]}"; do
    [[ "${release%% *}" != "${OS_ID}" ]] || supported=true
  done
  [[ "${supported}" == true ]] \
    || die "Docker's apt repository has no '${OS_ID}' tree here; this step supports: ${HOST_FACTS_SUPPORTED_RELEASES[*]}"
  [[ -n "${OS_CODENAME}" ]] || die "/etc/os-release has no VERSION_CODENAME; cannot pick the Docker apt suite"
  REPO_URL="${DOCKER_APT_REPO}/${OS_ID}"
}

ensure_prerequisites() {
  local missing=() pkg
  for pkg in "${PREREQUISITE_PACKAGES[@]}"; do
    is_installed "${pkg}" || missing+=("${pkg}")
  done
  ((${#missing[@]})) || return 0
  log "installing prerequisites: ${missing[*]}"
  apt_update
  apt_get install "${missing[@]}"
  CHANGED=true
}

# Fetches the repository key, checks that it is the pinned one (its primary key's fingerprint), and
# installs it when its bytes differ; sets KEY_CHANGED. A key with another fingerprint fails the step
# before anything is written.
install_repo_key() {
  local tmp gnupg_home fingerprints
  KEY_CHANGED=false
  tmp="$(mktemp)"
  gnupg_home="$(mktemp -d)"
  if ! curl -fsSL --retry 3 --connect-timeout 20 -o "${tmp}" "${REPO_URL}/gpg"; then
    rm -rf "${tmp}" "${gnupg_home}"
    die "could not download ${REPO_URL}/gpg; check DOCKER_APT_REPO and that the host reaches it"
  fi
  if ! fingerprints="$(GNUPGHOME="${gnupg_home}" gpg --batch --quiet --with-colons --show-keys "${tmp}" 2>/dev/null |
    awk -F: '$1 == "pub" { primary = 1; next } $1 == "fpr" && primary { print $10; primary = 0 }')" || [[ -z "${fingerprints}" ]]; then
    rm -rf "${tmp}" "${gnupg_home}"
    die "${REPO_URL}/gpg is not an OpenPGP public key; check DOCKER_APT_REPO"
  fi
  rm -rf "${gnupg_home}"
  if [[ "${fingerprints}" != "${DOCKER_APT_KEY_FINGERPRINT}" ]]; then
    rm -f "${tmp}"
    die "${REPO_URL}/gpg has the key $(tr '\n' ' ' <<<"${fingerprints}")but DOCKER_APT_KEY_FINGERPRINT pins ${DOCKER_APT_KEY_FINGERPRINT}; nothing was installed. For a mirror with its own key, set the pin to that key's fingerprint"
  fi
  install -d -m 0755 /etc/apt/keyrings
  if cmp -s "${tmp}" "${KEYRING}" && [[ "$(stat -c %a "${KEYRING}")" == 644 ]]; then
    rm -f "${tmp}"
    log "repository key ${KEYRING} is current"
    return
  fi
  chmod 0644 "${tmp}"
  mv -f "${tmp}" "${KEYRING}"
  KEY_CHANGED=true
  changed "installed repository key ${KEYRING} from ${REPO_URL}/gpg"
}

render_source() {
  cat <<SOURCE
# Docker's apt repository, written by buildx-host (docker-engine.sh); changes here are overwritten.
Types: deb
URIs: ${REPO_URL}
Suites: ${OS_CODENAME}
Components: stable
Architectures: ${ARCH}
Signed-By: ${KEYRING}
SOURCE
}

# Writes the deb822 source when it differs; sets SOURCE_CHANGED.
write_source() {
  SOURCE_CHANGED=false
  if [[ -f "${LEGACY_SOURCE_FILE}" ]]; then
    mv -f "${LEGACY_SOURCE_FILE}" "${LEGACY_SOURCE_FILE}.disabled-by-buildx-host"
    changed "disabled ${LEGACY_SOURCE_FILE} (now ${LEGACY_SOURCE_FILE}.disabled-by-buildx-host): ${SOURCE_FILE} replaces it"
  fi
  if ! place_file "${SOURCE_FILE}" 644 "$(render_source)"; then
    log "apt source ${SOURCE_FILE} is current"
    return
  fi
  SOURCE_CHANGED=true
  changed "wrote apt source ${SOURCE_FILE} (${REPO_URL} ${OS_CODENAME} stable, ${ARCH})"
}

# True when every target package is installed (at the pinned version where one is set).
targets_satisfied() {
  local pkg version
  for pkg in "${TARGET_PACKAGES[@]}"; do
    version="$(installed_version "${pkg}")"
    [[ -n "${version}" ]] || return 1
    if [[ -n "${DOCKER_CE_VERSION}" && " ${PINNED_PACKAGES[*]} " == *" ${pkg} "* ]]; then
      [[ "${version}" == "${DOCKER_CE_VERSION}" ]] || return 1
    fi
  done
}

# True when apt's lists know the target packages from the configured repo.
lists_know_targets() {
  local pkg
  for pkg in "${TARGET_PACKAGES[@]}"; do
    apt-cache policy "${pkg}" 2>/dev/null | grep -qF "${REPO_URL}" || return 1
  done
}

refresh_lists() {
  if [[ "${KEY_CHANGED}" == true || "${SOURCE_CHANGED}" == true ]] || ! lists_know_targets \
    || { ! targets_satisfied && [[ "${APT_UPDATED}" == false ]]; }; then
    apt_update
    lists_know_targets || die "after apt-get update, ${REPO_URL} (${OS_CODENAME}, stable, ${ARCH}) still offers not all of: ${TARGET_PACKAGES[*]}; check DOCKER_APT_REPO and that Docker publishes this release"
  else
    log "apt lists are current; no apt-get update"
  fi
}

check_pinned_version() {
  local pkg
  [[ -n "${DOCKER_CE_VERSION}" ]] || return 0
  for pkg in "${PINNED_PACKAGES[@]}"; do
    apt-cache madison "${pkg}" | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' | grep -qxF "${DOCKER_CE_VERSION}" \
      || die "${pkg} version '${DOCKER_CE_VERSION}' is not in ${REPO_URL}; available: $(apt-cache madison "${pkg}" | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' | head -n 5 | paste -sd' ') …"
  done
}

# Names of the packages the targets need, recursively, as apt's candidates say (every
# alternative included, so it errs on the side of keeping a package).
dependency_closure() {
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "${TARGET_PACKAGES[@]}" 2>/dev/null \
    | awk '/^[^ ]/ { gsub(/[<>]/, ""); print }' | sort -u
}

remove_conflicting_packages() {
  local installed=() pkg closure remove=()
  for pkg in "${CONFLICTING_PACKAGES[@]}"; do
    is_installed "${pkg}" && installed+=("${pkg}")
  done
  ((${#installed[@]})) || return 0
  closure="$(dependency_closure)"
  for pkg in "${installed[@]}"; do
    if grep -qxF "${pkg}" <<<"${closure}"; then
      log "keeping ${pkg}: the packages from ${REPO_URL} depend on it"
    else
      remove+=("${pkg}")
    fi
  done
  ((${#remove[@]})) || return 0
  log "removing conflicting distro packages: ${remove[*]}"
  apt_get remove "${remove[@]}"
  REMOVED=("${remove[@]}")
  changed "removed ${remove[*]}"
}

install_packages() {
  local args=() pkg
  if targets_satisfied; then
    log "packages installed: $(for pkg in "${TARGET_PACKAGES[@]}"; do printf '%s=%s ' "${pkg}" "$(installed_version "${pkg}")"; done)"
    return
  fi
  for pkg in "${TARGET_PACKAGES[@]}"; do
    if [[ -n "${DOCKER_CE_VERSION}" && " ${PINNED_PACKAGES[*]} " == *" ${pkg} "* ]]; then
      args+=("${pkg}=${DOCKER_CE_VERSION}")
    else
      args+=("${pkg}")
    fi
  done
  log "installing ${args[*]}"
  # A pin may move down or across a hold this script placed.
  apt_get install --allow-downgrades --allow-change-held-packages "${args[@]}"
  targets_satisfied || die "apt-get finished but not all of ${TARGET_PACKAGES[*]} are installed as asked"
  changed "installed ${args[*]}"
}

is_held() { apt-mark showhold "$1" 2>/dev/null | grep -qxF "$1"; }

# Holds the pinned packages; the marker lists only the holds this script placed, so an unpinned
# run releases those and never a hold the admin placed.
apply_hold() {
  local pkg
  if [[ -n "${DOCKER_CE_VERSION}" ]]; then
    for pkg in "${PINNED_PACKAGES[@]}"; do
      is_held "${pkg}" && continue
      apt-mark hold "${pkg}" >&2
      install -d -m 0755 "$(dirname "${HOLD_MARKER}")"
      printf '%s\n' "${pkg}" >>"${HOLD_MARKER}"
      changed "held ${pkg} at ${DOCKER_CE_VERSION}"
    done
  elif [[ -f "${HOLD_MARKER}" ]]; then
    while read -r pkg; do
      is_held "${pkg}" || continue
      apt-mark unhold "${pkg}" >&2
      changed "released the hold on ${pkg} (no version pinned any more)"
    done <"${HOLD_MARKER}"
    rm -f "${HOLD_MARKER}"
  fi
}

ensure_services() {
  local unit
  for unit in containerd.service docker.service; do
    if ! systemctl is-enabled --quiet "${unit}" 2>/dev/null; then
      systemctl enable "${unit}" >&2 2>&1
      changed "enabled ${unit}"
    fi
    if ! systemctl is-active --quiet "${unit}"; then
      systemctl start "${unit}" >&2 2>&1 || die "could not start ${unit}; see 'journalctl -u ${unit}'"
      changed "started ${unit}"
    fi
  done
}

add_group_users() {
  local user
  [[ -n "${DOCKER_GROUP_USERS// /}" ]] || return 0
  getent group docker >/dev/null || die "the docker group does not exist although docker-ce is installed; reinstall docker-ce"
  for user in ${DOCKER_GROUP_USERS}; do
    in_group "${user}" docker && continue
    usermod -aG docker "${user}"
    GROUP_ADDED+=("${user}")
    changed "added ${user} to the docker group"
  done
}

# shellcheck disable=SC2016 # $name in the jq program is jq's
print_report() {
  local pkg versions=() held=false buildx
  for pkg in "${TARGET_PACKAGES[@]}"; do
    versions+=("$(installed_version "${pkg}")")
  done
  is_held docker-ce && held=true
  buildx="$(docker buildx version </dev/null 2>/dev/null | awk '{ print $2; exit }' || true)"
  report '{repo: $repo, packages: ([$names, $versions] | transpose | map({(.[0]): .[1]}) | add),
    dockerVersion: $dockerVersion, buildxVersion: $buildxVersion, held: $held, removed: $removed, groupAdded: $groupAdded}' \
    --arg repo "${REPO_URL}" --argjson names "$(json_strings "${TARGET_PACKAGES[@]}")" \
    --argjson versions "$(json_strings "${versions[@]}")" --arg dockerVersion "$(docker version -f '{{.Server.Version}}' </dev/null)" \
    --arg buildxVersion "${buildx}" --argjson held "${held}" --argjson removed "$(json_strings "${REMOVED[@]}")" \
    --argjson groupAdded "$(json_strings "${GROUP_ADDED[@]}")"
}

main() {
  begin_step
  validate_input
  read_platform
  log "host: ${OS_ID} ${OS_CODENAME} ${ARCH}; repository ${REPO_URL}"
  ensure_prerequisites
  install_repo_key
  write_source
  refresh_lists
  check_pinned_version
  remove_conflicting_packages
  install_packages
  apply_hold
  ensure_services
  wait_for_docker "${DOCKER_READY_SECONDS}" || die "dockerd does not answer after ${DOCKER_READY_SECONDS}s; see 'journalctl -u docker'"
  add_group_users
  print_report
}

main "$@"
