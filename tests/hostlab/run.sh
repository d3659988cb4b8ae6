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
#                                                changes, destroy, a member's GitHub Actions
#                                                workflow through the real docker actions
#   disk        tests/hostlab/disk-pressure.test.ts  BuildKit's GC under a stream of builds, on a
#                                                host whose Docker data root is a small filesystem
#   cache-volume tests/hostlab/cache-volume.test.ts  a loop device stands in for an EBS cache
#                                                volume: host A builds and is removed, host B gets
#                                                the same device, the same build is cache hits
#   fleet       tests/engine/fleet.test.ts       two lab hosts at once (the second on the next
#                                                sshd port) joined into one builder by `pulumi up`;
#                                                a single-host stack of the previous program upgraded
#
# Needs: root, node_modules installed (npm ci), and network access to deb.debian.org, the Go
# module proxy and PyPI on a first run. Everything lab traffic touches is on 127.0.0.1.
#
# Environment: infra/session.sh's (host name, ports, CACHE_DIR, lock wait; HOSTLAB_KEEP=1 leaves
# the first suite's host running after it, for debugging, and skips the other suites), and
#   JEST_ARGS  []  extra jest arguments (e.g. -t 'first run')
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=infra/lib.sh
source "${ROOT}/tests/hostlab/infra/lib.sh"
# shellcheck source=infra/session.sh
source "${ROOT}/tests/hostlab/infra/session.sh"
ALL_SUITES=(debian13 debian12 cloud-init disk cache-volume engine fleet)
JEST_ARGS="${JEST_ARGS:-}"

log() { echo "hostlab: $*" >&2; }

# Starts HOSTS hosts from an image (the first on HOSTLAB_SSH_PORT, each further one on the next
# port), runs one test file against them, removes them. The tests find the first host's env file
# in HOSTLAB_ENV_FILE and the second's in HOSTLAB_ENV_FILE_2. HOST_VARIANT in the environment picks
# how the hosts are set up (start-host.sh).
run_suite() {
  local name="$1" image="$2" test_file="$3" hosts="${4:-1}" index host env_var
  for ((index = 1; index <= hosts; index++)); do
    host="${name}"
    env_var=HOSTLAB_ENV_FILE
    ((hosts == 1)) || host="${name}-${index}"
    ((index == 1)) || env_var="HOSTLAB_ENV_FILE_${index}"
    lab_start_host "${env_var}" "${host}" "$((HOSTLAB_SSH_PORT + index - 1))" "${image}"
  done
  log "hosts ${LAB_HOSTS[*]} ready; running ${test_file}"
  # shellcheck disable=SC2086 # JEST_ARGS is a list of words by design
  npx jest --config tests/hostlab/jest.config.js --runInBand --runTestsByPath "${test_file}" ${JEST_ARGS}
  [[ "${HOSTLAB_KEEP}" == 1 ]] && return
  lab_stop_hosts
}

suite() {
  case "$1" in
    debian13) run_suite "${HOSTLAB_NAME}" "${HOST_IMAGE}" tests/hostlab/hostlab.test.ts ;;
    debian12) run_suite "${HOSTLAB_NAME}-bookworm" "$(HOST_SUITE=bookworm "${INFRA}/build-host-image.sh")" tests/hostlab/bookworm.test.ts ;;
    cloud-init)
      HOST_VARIANT=cloud-init run_suite "${HOSTLAB_NAME}-cloud-init" "$(HOST_VARIANT=cloud-init "${INFRA}/build-host-image.sh")" \
        tests/hostlab/cloud-init.test.ts
      ;;
    disk)
      HOSTLAB_DOCKER_ROOT_SIZE=1536m run_suite "${HOSTLAB_NAME}-disk" "${HOST_IMAGE}" tests/hostlab/disk-pressure.test.ts
      ;;
    cache-volume)
      lab_block_device 2G
      HOSTLAB_BLOCK_DEVICE="${LAB_BLOCK_DEVICES[-1]}" run_suite "${HOSTLAB_NAME}-cache" "${HOST_IMAGE}" tests/hostlab/cache-volume.test.ts
      ;;
    engine) run_suite "${HOSTLAB_NAME}-engine" "${HOST_IMAGE}" tests/engine/engine.test.ts ;;
    fleet) run_suite "${HOSTLAB_NAME}-fleet" "${HOST_IMAGE}" tests/engine/fleet.test.ts 2 ;;
  esac
}

main() {
  local start=${SECONDS} suites=("$@") name
  ((${#suites[@]} > 0)) || suites=("${ALL_SUITES[@]}")
  for name in "${suites[@]}"; do
    [[ " ${ALL_SUITES[*]} " == *" ${name} "* ]] || { log "unknown suite '${name}'; suites: ${ALL_SUITES[*]}"; return 2; }
  done
  lab_begin
  [[ " ${suites[*]} " != *" engine "* && " ${suites[*]} " != *" fleet "* ]] || lab_prepare_engine
  cd "${ROOT}"
  for name in "${suites[@]}"; do
    log "== suite ${name}"
    suite "${name}"
    [[ "${HOSTLAB_KEEP}" == 1 ]] && return
  done
  log "suites ${suites[*]} finished in $((SECONDS - start))s; logs in ${HOSTLAB_LOG_DIR}"
}

main "$@"
