#!/usr/bin/env bash
# Host lab and engine layer, one entry point: prepare everything once (cached under $CACHE_DIR),
# then for each suite start a fresh lab host, run the suite against it over SSH and remove the
# host. Finally put this machine's binfmt_misc registrations back as they were. One host at a time
# (and one run at a time: a lock): binfmt_misc is the kernel's, and a host's systemd registers and
# unregisters emulators for the whole machine.
#
# Usage: run.sh [SUITE...]   default: every suite, in this order
#   debian13    tests/hostlab/hostlab.test.ts    the whole program's steps on Debian 13
#   debian12    tests/hostlab/bookworm.test.ts   the steps after the engine, on Docker 20.10
#   cloud-init  tests/hostlab/cloud-init.test.ts ec2 mode's cloud-init user data, booted for real
#   engine      tests/engine/engine.test.ts      the real Pulumi CLI and plugins: up, no-op up,
#                                                changes, destroy, the GitHub Actions snippet
#   fleet       tests/engine/fleet.test.ts       two lab hosts at once (the second on the next
#                                                sshd port) joined into one builder by `pulumi up`;
#                                                a single-host stack of the previous program upgraded
#
# Needs: root, node_modules installed (npm ci), and network access to deb.debian.org, the Go
# module proxy and PyPI on a first run. Everything lab traffic touches is on 127.0.0.1.
#
# Environment (defaults in brackets):
#   HOSTLAB_NAME      [buildx-host-lab]  host container name (other suites' hosts get a suffix)
#   HOSTLAB_SSH_PORT  [2222]             sshd port of the lab hosts on 127.0.0.1
#   APT_REPO_PORT     [8765]             port of the stand-in for Docker's apt repository
#   LAB_REGISTRY_PORT [5000]             port of the stand-in registry (engine suite)
#   CACHE_DIR         [/var/cache/buildx-host]
#   HOSTLAB_KEEP      [0]  1 leaves the first suite's host running after it (for debugging) and
#                          skips the other suites
#   JEST_ARGS         []   extra jest arguments (e.g. -t 'first run')
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
INFRA="$ROOT/tests/hostlab/infra"
# shellcheck source=infra/lib.sh
source "$INFRA/lib.sh"
export HOSTLAB_NAME="${HOSTLAB_NAME:-buildx-host-lab}"
export HOSTLAB_SSH_PORT="${HOSTLAB_SSH_PORT:-2222}"
export APT_REPO_PORT="${APT_REPO_PORT:-8765}"
export CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
export LAB_REGISTRY_PORT="${LAB_REGISTRY_PORT:-5000}"
ALL_SUITES=(debian13 debian12 cloud-init engine fleet)
HOSTLAB_KEEP="${HOSTLAB_KEEP:-0}"
JEST_ARGS="${JEST_ARGS:-}"
RUN_DIR="/var/tmp/buildx-host-lab/run-$HOSTLAB_NAME"
BINFMT_STATE="$RUN_DIR/binfmt.saved"
# Step and build logs and the timing summary; kept after the host is removed.
export HOSTLAB_LOG_DIR="$RUN_DIR/logs"

log() { echo "hostlab: $*" >&2; }

# Runs one preparation phase and says how long it took.
phase() {
  local name="$1" start=$SECONDS
  shift
  log "== $name"
  "$@"
  log "== $name done in $((SECONDS - start))s"
}

# The lab hosts running now, removed on exit.
CURRENT_HOSTS=()

cleanup() {
  local rc=$?
  if [[ "$HOSTLAB_KEEP" == 1 ]]; then
    log "HOSTLAB_KEEP=1: leaving ${CURRENT_HOSTS[*]} and the binfmt registrations in place; afterwards run:"
    log "  for h in ${CURRENT_HOSTS[*]}; do $INFRA/stop-host.sh \$h; done; $INFRA/serve-apt-repo.sh stop; $INFRA/binfmt-state.sh restore $BINFMT_STATE"
  else
    stop_hosts || rc=1
    "$INFRA/serve-apt-repo.sh" stop || rc=1
    "$INFRA/serve-registry.sh" stop || rc=1
    # The lab host registered emulators in the kernel's binfmt_misc; put back what was here.
    "$INFRA/binfmt-state.sh" restore "$BINFMT_STATE" || rc=1
  fi
  log "step and build logs, timing summary: $HOSTLAB_LOG_DIR"
  exit "$rc"
}

# Client tools the lab itself uses on this machine (the Debian 12 CI image may lack some).
ensure_tools() {
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

prepare() {
  mkdir -p "$RUN_DIR"
  ensure_tools
  # Servers started here outlive the run: none may inherit the lab lock (fd 9).
  phase "docker engine" "$INFRA/ensure-dockerd.sh" 9>&-
  HOST_IMAGE="$("$INFRA/build-host-image.sh")"
  phase "stand-in for Docker's apt repository" "$INFRA/build-apt-repo.sh" >/dev/null
  HOSTLAB_DOCKER_APT_REPO="$("$INFRA/serve-apt-repo.sh" start 9>&-)"
  HOSTLAB_DOCKER_APT_KEY_FINGERPRINT="$("$INFRA/serve-apt-repo.sh" fingerprint)"
  export HOSTLAB_DOCKER_APT_REPO HOSTLAB_DOCKER_APT_KEY_FINGERPRINT
  phase "BuildKit image from Go modules" env BUILDKIT_IMAGE_ENV="$RUN_DIR/buildkit.env" "$INFRA/build-buildkit-image.sh" >/dev/null
  HOSTLAB_BUILDKIT_IMAGE_TAR="$(sed -n 's/^BUILDKIT_IMAGE_TAR=//p' "$RUN_DIR/buildkit.env")"
  export HOSTLAB_BUILDKIT_IMAGE_TAR
  # The clients' buildx plugin, built once from Go modules (cached like the Pulumi CLI).
  CLIENT_BUILDX_BIN="$(bash "$ROOT/tools/build-buildx.sh" | tail -n 1)"
  HOSTLAB_CLIENT_IMAGE="$(CLIENT_BUILDX_BIN="$CLIENT_BUILDX_BIN" "$INFRA/build-client-image.sh")"
  export HOSTLAB_CLIENT_IMAGE
  HOSTLAB_BUSYBOX_DIR="$("$INFRA/fetch-busybox.sh")"
  export HOSTLAB_BUSYBOX_DIR
}

# What only the engine suite needs: the Pulumi CLI and its plugins, built once from source; the
# BuildKit image in a loopback registry (`pulumi up` pulls it on the host as in the field); the
# real setup-buildx-action and its node24.
prepare_engine() {
  local cli
  cli="$(bash "$ROOT/tools/build-pulumi.sh" | tail -n 1)"
  PULUMI_TOOLS_DIR="$(dirname "$(jq -r .bin <<<"$cli")")"
  export PULUMI_TOOLS_DIR
  phase "Pulumi plugins from ../shared/vendor" bash "$ROOT/tools/build-plugins.sh" >/dev/null
  "$INFRA/serve-registry.sh" start >/dev/null 9>&-
  HOSTLAB_BUILDKIT_IMAGE_REF="$("$INFRA/serve-registry.sh" push "$(sed -n 's/^BUILDKIT_IMAGE=//p' "$RUN_DIR/buildkit.env")")"
  export HOSTLAB_BUILDKIT_IMAGE_REF
  local runner
  runner="$(bash "$ROOT/tests/engine/infra/prepare-runner.sh")"
  set -a
  # shellcheck source=/dev/null # KEY=value lines written by the script
  source <(printf '%s\n' "$runner")
  set +a
}

stop_hosts() {
  local name rc=0
  for name in "${CURRENT_HOSTS[@]}"; do
    "$INFRA/stop-host.sh" "$name" || rc=1
  done
  CURRENT_HOSTS=()
  return "$rc"
}

# Starts HOSTS hosts from an image (the first on HOSTLAB_SSH_PORT, each further one on the next
# port), runs one test file against them, removes them. The tests find the first host's env file
# in HOSTLAB_ENV_FILE and the second's in HOSTLAB_ENV_FILE_2. HOST_VARIANT in the environment picks
# how the hosts are set up (start-host.sh).
run_suite() {
  local name="$1" image="$2" test_file="$3" hosts="${4:-1}" index host
  for ((index = 1; index <= hosts; index++)); do
    host="$name"
    ((hosts == 1)) || host="$name-$index"
    CURRENT_HOSTS+=("$host")
    if ((index == 1)); then
      HOSTLAB_ENV_FILE="$(HOST_IMAGE="$image" "$INFRA/start-host.sh" "$host" "$HOSTLAB_SSH_PORT")"
      export HOSTLAB_ENV_FILE
    else
      HOSTLAB_ENV_FILE_2="$(HOST_IMAGE="$image" "$INFRA/start-host.sh" "$host" "$((HOSTLAB_SSH_PORT + index - 1))")"
      export HOSTLAB_ENV_FILE_2
    fi
  done
  log "hosts ${CURRENT_HOSTS[*]} ready; running $test_file"
  # shellcheck disable=SC2086 # JEST_ARGS is a list of words by design
  npx jest --config tests/hostlab/jest.config.js --runInBand --runTestsByPath "$test_file" $JEST_ARGS
  [[ "$HOSTLAB_KEEP" == 1 ]] && return
  stop_hosts
}

suite() {
  case "$1" in
    debian13) run_suite "$HOSTLAB_NAME" "$HOST_IMAGE" tests/hostlab/hostlab.test.ts ;;
    debian12) run_suite "$HOSTLAB_NAME-bookworm" "$(HOST_SUITE=bookworm "$INFRA/build-host-image.sh")" tests/hostlab/bookworm.test.ts ;;
    cloud-init)
      HOST_VARIANT=cloud-init run_suite "$HOSTLAB_NAME-cloud-init" "$(HOST_VARIANT=cloud-init "$INFRA/build-host-image.sh")" \
        tests/hostlab/cloud-init.test.ts
      ;;
    engine) run_suite "$HOSTLAB_NAME-engine" "$HOST_IMAGE" tests/engine/engine.test.ts ;;
    fleet) run_suite "$HOSTLAB_NAME-fleet" "$HOST_IMAGE" tests/engine/fleet.test.ts 2 ;;
  esac
}

main() {
  local start=$SECONDS suites=("$@") name
  ((${#suites[@]} > 0)) || suites=("${ALL_SUITES[@]}")
  for name in "${suites[@]}"; do
    [[ " ${ALL_SUITES[*]} " == *" $name "* ]] || { log "unknown suite '$name'; suites: ${ALL_SUITES[*]}"; return 2; }
  done
  if [[ "$EUID" -ne 0 ]]; then
    log "run as root: the lab starts dockerd, mounts binfmt_misc and installs packages"
    return 1
  fi
  exec 9>/var/lock/buildx-host-lab.lock
  flock -w 3600 9 || { log "another lab run holds /var/lock/buildx-host-lab.lock"; return 1; }
  prepare
  [[ " ${suites[*]} " != *" engine "* && " ${suites[*]} " != *" fleet "* ]] || prepare_engine
  rm -rf "$HOSTLAB_LOG_DIR"
  "$INFRA/binfmt-state.sh" save "$BINFMT_STATE"
  trap cleanup EXIT
  log "lab prepared after $((SECONDS - start))s"
  cd "$ROOT"
  for name in "${suites[@]}"; do
    log "== suite $name"
    suite "$name"
    [[ "$HOSTLAB_KEEP" == 1 ]] && return
  done
  log "suites ${suites[*]} finished in $((SECONDS - start))s; logs in $HOSTLAB_LOG_DIR"
}

main "$@"
