# shellcheck shell=bash
# A lab session, shared by tests/hostlab/run.sh and the benchmarks in bench/: one run at a time on
# this machine (a lock: binfmt_misc is the kernel's, and a lab host's systemd registers and
# unregisters emulators for the whole machine), the lab prepared once (cached under $CACHE_DIR),
# and at exit the hosts it started removed, its loopback servers stopped and this machine's
# binfmt_misc registrations put back as they were.
#
# Source it after infra/lib.sh, with ROOT (the checkout) set and log() defined; then call
# `lab_begin`, `lab_prepare_engine` where `pulumi up` runs, and start hosts with `lab_start_host`.
#
# Environment (defaults in brackets):
#   HOSTLAB_NAME      [buildx-host-lab]  host container name; also names the run's log directory
#   HOSTLAB_SSH_PORT  [2222]             sshd port of the lab hosts on 127.0.0.1
#   APT_REPO_PORT     [8765]             port of the stand-in for Docker's apt repository
#   LAB_REGISTRY_PORT [5000]             port of the stand-in registry (engine)
#   LAB_LOGIN_REGISTRY_PORT [5001]       port of the stand-in registry that needs a login (engine)
#   CACHE_DIR         [/var/cache/buildx-host]
#   HOSTLAB_KEEP      [0]  1 leaves the hosts, servers and binfmt registrations in place at exit
#   HOSTLAB_LOCK_WAIT_SECONDS [3600]  how long to queue behind another lab run

INFRA="${ROOT}/tests/hostlab/infra"
export HOSTLAB_NAME="${HOSTLAB_NAME:-buildx-host-lab}"
export HOSTLAB_SSH_PORT="${HOSTLAB_SSH_PORT:-2222}"
export APT_REPO_PORT="${APT_REPO_PORT:-8765}"
export CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
export LAB_REGISTRY_PORT="${LAB_REGISTRY_PORT:-5000}"
export LAB_LOGIN_REGISTRY_PORT="${LAB_LOGIN_REGISTRY_PORT:-5001}"
HOSTLAB_KEEP="${HOSTLAB_KEEP:-0}"
HOSTLAB_LOCK_WAIT_SECONDS="${HOSTLAB_LOCK_WAIT_SECONDS:-3600}"
readonly LAB_LOCK_FILE=/var/lock/buildx-host-lab.lock
RUN_DIR="/var/tmp/buildx-host-lab/run-${HOSTLAB_NAME}"
BINFMT_STATE="${RUN_DIR}/binfmt.saved"
# Step and build logs and timings; kept after the hosts are removed.
export HOSTLAB_LOG_DIR="${RUN_DIR}/logs"

# The lab hosts running now, removed at exit.
LAB_HOSTS=()
# Loop devices the run attached (lab_block_device), detached at exit.
LAB_BLOCK_DEVICES=()

# Runs one preparation phase and says how long it took.
lab_phase() {
  local name="$1" start=${SECONDS}
  shift
  log "== ${name}"
  "$@"
  log "== ${name} done in $((SECONDS - start))s"
}

# Client tools the lab itself uses on this machine (the Debian 12 CI image may lack some).
lab_ensure_tools() {
  local missing=()
  command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
  command -v gpg >/dev/null 2>&1 || missing+=(gpg)
  # The metadata guard's proof (infra/metadata-standin.sh) and the stop of a guarded host.
  command -v nft >/dev/null 2>&1 || missing+=(nftables)
  command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  install_packages "${missing[@]}"
}

lab_prepare() {
  mkdir -p "${RUN_DIR}"
  lab_ensure_tools
  # Servers started here outlive the run: none may inherit the lab lock (fd 9).
  lab_phase "docker engine" "${INFRA}/ensure-dockerd.sh" 9>&-
  HOST_IMAGE="$("${INFRA}/build-host-image.sh")"
  lab_phase "stand-in for Docker's apt repository" "${INFRA}/build-apt-repo.sh" >/dev/null
  HOSTLAB_DOCKER_APT_REPO="$("${INFRA}/serve-apt-repo.sh" start 9>&-)"
  HOSTLAB_DOCKER_APT_KEY_FINGERPRINT="$("${INFRA}/serve-apt-repo.sh" fingerprint)"
  export HOSTLAB_DOCKER_APT_REPO HOSTLAB_DOCKER_APT_KEY_FINGERPRINT
  lab_phase "BuildKit image from Go modules" env BUILDKIT_IMAGE_ENV="${RUN_DIR}/buildkit.env" "${INFRA}/build-buildkit-image.sh" >/dev/null
  HOSTLAB_BUILDKIT_IMAGE_TAR="$(sed -n 's/^BUILDKIT_IMAGE_TAR=//p' "${RUN_DIR}/buildkit.env")"
  export HOSTLAB_BUILDKIT_IMAGE_TAR
  # The clients' buildx plugin, built once from Go modules (cached like the Pulumi CLI).
  CLIENT_BUILDX_BIN="$(bash "${ROOT}/tools/build-buildx.sh" | tail -n 1)"
  HOSTLAB_CLIENT_IMAGE="$(CLIENT_BUILDX_BIN="${CLIENT_BUILDX_BIN}" "${INFRA}/build-client-image.sh")"
  export HOSTLAB_CLIENT_IMAGE
  HOSTLAB_BUSYBOX_DIR="$("${INFRA}/fetch-busybox.sh")"
  export HOSTLAB_BUSYBOX_DIR
}

# What only `pulumi up` needs: the Pulumi CLI and its plugins, built once from source; the
# BuildKit image in a loopback registry (`pulumi up` pulls it on the host as in the field); a
# second one that needs a login, for the workflow's push; the real docker actions and their node24.
lab_prepare_engine() {
  local cli runner login_registry
  cli="$(bash "${ROOT}/tools/build-pulumi.sh" | tail -n 1)"
  PULUMI_TOOLS_DIR="$(dirname "$(jq -r .bin <<<"${cli}")")"
  export PULUMI_TOOLS_DIR
  lab_phase "Pulumi plugins from ../shared/vendor" bash "${ROOT}/tools/build-plugins.sh" >/dev/null
  "${INFRA}/serve-registry.sh" start >/dev/null 9>&-
  HOSTLAB_BUILDKIT_IMAGE_REF="$("${INFRA}/serve-registry.sh" push "$(sed -n 's/^BUILDKIT_IMAGE=//p' "${RUN_DIR}/buildkit.env")")"
  export HOSTLAB_BUILDKIT_IMAGE_REF
  login_registry="$("${INFRA}/serve-registry.sh" start-login 9>&-)"
  runner="$(bash "${ROOT}/tests/engine/infra/prepare-runner.sh")"
  set -a
  # shellcheck source=/dev/null # KEY=value lines written by the scripts
  source <(printf '%s\n' "${runner}" "${login_registry}")
  set +a
}

# lab_start_host VAR NAME PORT [IMAGE]: starts a fresh lab host from IMAGE (default: the Debian 13
# host image) and exports the path of its env file (start-host.sh) in VAR. HOST_VARIANT in the
# environment picks how it is set up.
lab_start_host() {
  local var="$1" name="$2" port="$3" image="${4:-${HOST_IMAGE}}" env_file
  LAB_HOSTS+=("${name}")
  env_file="$(HOST_IMAGE="${image}" "${INFRA}/start-host.sh" "${name}" "${port}")"
  printf -v "${var}" '%s' "${env_file}"
  export "${var?}"
}

# lab_block_device SIZE: attaches a new loop device over a new sparse file of SIZE (truncate's units)
# under the run's directory, last in LAB_BLOCK_DEVICES: a block device for a lab host (start-host.sh's
# HOSTLAB_BLOCK_DEVICE).
lab_block_device() {
  local file
  file="$(mktemp "${RUN_DIR}/block-device.XXXXXX")"
  truncate -s "$1" "${file}"
  LAB_BLOCK_DEVICES+=("$(losetup --find --show "${file}")")
  log "block device ${LAB_BLOCK_DEVICES[-1]}: ${file} ($1, sparse)"
}

# Detaches the run's loop devices and removes their files (lab hosts using them are gone by then).
lab_release_block_devices() {
  local device file rc=0
  for device in "${LAB_BLOCK_DEVICES[@]}"; do
    file="$(losetup --noheadings --output BACK-FILE "${device}" 2>/dev/null || true)"
    losetup --detach "${device}" || rc=1
    [[ -z "${file}" ]] || rm -f "${file}"
  done
  LAB_BLOCK_DEVICES=()
  return "${rc}"
}

lab_stop_hosts() {
  local name rc=0
  for name in "${LAB_HOSTS[@]}"; do
    "${INFRA}/stop-host.sh" "${name}" || rc=1
  done
  LAB_HOSTS=()
  return "${rc}"
}

# Lab hosts (start-host.sh labels them) that run although this run stopped its own: left by a
# run with HOSTLAB_KEEP=1.
lab_kept_hosts() {
  docker ps --filter label=buildx-host-lab=host --format '{{.Names}}' 2>/dev/null | paste -sd' ' || true
}

lab_cleanup() {
  local rc=$? kept
  if [[ "${HOSTLAB_KEEP}" == 1 ]]; then
    log "HOSTLAB_KEEP=1: leaving ${LAB_HOSTS[*]}, the loopback servers and the binfmt registrations in place; afterwards run:"
    log "  for h in ${LAB_HOSTS[*]}; do ${INFRA}/stop-host.sh \$h; done; ${INFRA}/serve-apt-repo.sh stop; ${INFRA}/serve-registry.sh stop; ${INFRA}/binfmt-state.sh restore ${BINFMT_STATE}"
    ((${#LAB_BLOCK_DEVICES[@]} == 0)) || log "  losetup --detach ${LAB_BLOCK_DEVICES[*]}"
  else
    lab_stop_hosts || rc=1
    lab_release_block_devices || rc=1
    kept="$(lab_kept_hosts)"
    if [[ -n "${kept}" ]]; then
      # Their owner removes them, the servers and the registrations with the commands that run printed.
      log "leaving the loopback servers and binfmt registrations to lab hosts an earlier run kept: ${kept}"
      rm -f "${BINFMT_STATE}"
    else
      "${INFRA}/serve-apt-repo.sh" stop || rc=1
      "${INFRA}/serve-registry.sh" stop || rc=1
      # The lab hosts registered emulators in the kernel's binfmt_misc; put back what was here.
      "${INFRA}/binfmt-state.sh" restore "${BINFMT_STATE}" || rc=1
    fi
  fi
  log "step and build logs, timings: ${HOSTLAB_LOG_DIR}"
  exit "${rc}"
}

# Takes the lab lock (queueing behind another run), prepares the lab, saves binfmt_misc and arms
# the cleanup.
lab_begin() {
  local start=${SECONDS}
  if [[ "${EUID}" -ne 0 ]]; then
    log "run as root: the lab starts dockerd, mounts binfmt_misc and installs packages"
    return 1
  fi
  exec 9>"${LAB_LOCK_FILE}"
  log "waiting for the lab lock ${LAB_LOCK_FILE} (at most ${HOSTLAB_LOCK_WAIT_SECONDS}s)"
  flock -w "${HOSTLAB_LOCK_WAIT_SECONDS}" 9 || { log "another lab run holds ${LAB_LOCK_FILE}"; return 1; }
  log "lab lock taken after $((SECONDS - start))s"
  lab_prepare
  rm -rf "${HOSTLAB_LOG_DIR}"
  mkdir -p "${HOSTLAB_LOG_DIR}"
  "${INFRA}/binfmt-state.sh" save "${BINFMT_STATE}"
  trap lab_cleanup EXIT
  trap 'exit 130' INT TERM
  log "lab prepared after $((SECONDS - start))s"
}
