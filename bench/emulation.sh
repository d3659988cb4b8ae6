#!/usr/bin/env bash
# Emulation benchmark: how much slower a CPU-bound build step runs under QEMU user emulation than
# on the build host's own CPU, for each platform the program emulates by default.
#
# What is measured: one BuildKit RUN step that hashes BENCH_BYTES zeros with Debian 13's static
# busybox of the step's platform, `busybox head -c N /dev/zero | busybox sha256sum`, in a
# FROM-scratch image holding only that busybox: natively for the host's own platform, under QEMU
# (the binfmt_misc registrations the program's qemu-binfmt step made) for every other one. Two
# figures per build: BuildKit's step time (the step's "DONE x.ys", 0.1 s, container start included)
# and the command's time inside the step (/proc/uptime before and after, 0.01 s). The pipeline's two
# commands run in parallel: a figure is mostly the slower one's time.
#
# How: a lab session (tests/hostlab/infra/session.sh: the lab lock, preparation and cleanup, as
# tests/hostlab/run.sh) starts a lab host; bench/emulation-provision.ts runs the program's host steps
# on it; every build is `docker buildx build --no-cache` on the host's shared builder, over SSH as
# the login user. Each platform first gets an untimed 1 MiB warm-up build; the timed rounds are
# interleaved (round 1 of every platform, then round 2, ...) so drift spreads over all platforms;
# every build's hash is checked against the native busybox's, computed on this machine.
#
# Usage: sudo bash bench/emulation.sh > table.md
# Environment (defaults in brackets), besides session.sh's (HOSTLAB_NAME [buildx-host-emulation-bench]):
#   BENCH_PLATFORMS  [host-facts.sh's HOST_FACTS_DEFAULT_PLATFORMS]  the host's own is always measured
#   BENCH_ROUNDS     [5]          timed builds per platform
#   BENCH_BYTES      [268435456]  bytes hashed per build (256 MiB)
#   BENCH_APPLET     [sha256sum]  busybox hash applet; Debian's amd64 busybox computes sha1sum and
#                    sha256sum with the CPU's SHA extensions where it has them, the other platforms'
#                    with generic C code: md5sum or sha512sum compares generic code with generic code
# Output: progress on stderr; on stdout two Markdown tables (step time, command time) with min /
# median / max per platform, native and emulated, and the ratio of the medians. Every build's
# figures: $HOSTLAB_LOG_DIR/timings.tsv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HOSTLAB_NAME="${HOSTLAB_NAME:-buildx-host-emulation-bench}"
# shellcheck source=../tests/hostlab/infra/lib.sh
source "${ROOT}/tests/hostlab/infra/lib.sh"
# shellcheck source=../tests/hostlab/infra/session.sh
source "${ROOT}/tests/hostlab/infra/session.sh"
# The program's platform tables (HOST_FACTS_EMULATOR_OF, HOST_FACTS_DEFAULT_PLATFORMS).
# shellcheck source=../components/scripts/lib/host-facts.sh
source "${ROOT}/components/scripts/lib/host-facts.sh"

BENCH_PLATFORMS="${BENCH_PLATFORMS:-${HOST_FACTS_DEFAULT_PLATFORMS}}"
BENCH_ROUNDS="${BENCH_ROUNDS:-5}"
BENCH_BYTES="${BENCH_BYTES:-268435456}"
BENCH_APPLET="${BENCH_APPLET:-sha256sum}"
readonly WARMUP_BYTES=1048576
TIMINGS="${HOSTLAB_LOG_DIR}/timings.tsv"
# The build context's directory in the login user's home on the host.
readonly CONTEXT=emulation-bench
# The Debian architecture whose busybox-static a platform's build runs.
declare -rA DEBIAN_ARCH_OF=([linux/amd64]=amd64 [linux/arm64]=arm64 [linux/arm/v7]=armhf [linux/ppc64le]=ppc64el
  [linux/s390x]=s390x [linux/riscv64]=riscv64)

log() { echo "bench-emulation: $*" >&2; }

# The context's file for a platform: busybox-$TARGETARCH$TARGETVARIANT.
context_name() {
  local arch="${1#linux/}"
  echo "busybox-${arch//\//}"
}

# The platforms to measure: the native one first, then BENCH_PLATFORMS' others, in their order.
PLATFORMS=()
NATIVE=""
read_platforms() {
  local p requested=() arch
  arch="$(dpkg --print-architecture)"
  for p in "${!DEBIAN_ARCH_OF[@]}"; do
    [[ "${DEBIAN_ARCH_OF[${p}]}" != "${arch}" ]] || NATIVE="${p}"
  done
  [[ -n "${NATIVE}" ]] || { log "no busybox platform for this machine's architecture ${arch}"; return 2; }
  read -r -a requested <<<"${BENCH_PLATFORMS//,/ }"
  PLATFORMS=("${NATIVE}")
  for p in "${requested[@]}"; do
    [[ -v "DEBIAN_ARCH_OF[${p}]" && -v "HOST_FACTS_EMULATOR_OF[${p}]" ]] ||
      { log "platform '${p}' is not one the bench builds (known: ${!DEBIAN_ARCH_OF[*]})"; return 2; }
    [[ " ${PLATFORMS[*]} " == *" ${p} "* ]] || PLATFORMS+=("${p}")
  done
  [[ "${BENCH_ROUNDS}" =~ ^[1-9][0-9]*$ ]] || { log "BENCH_ROUNDS must be a positive number"; return 2; }
  [[ "${BENCH_BYTES}" =~ ^[1-9][0-9]*$ ]] || { log "BENCH_BYTES must be a positive number of bytes"; return 2; }
  [[ "${BENCH_APPLET}" =~ ^[a-z0-9]+sum$ ]] || { log "BENCH_APPLET must be a busybox hash applet (md5sum, sha256sum, ...)"; return 2; }
}

# Busybox for every measured platform (cached), and the lab host provisioned by the program's steps;
# sources the steps' facts (BUILDER_NAME, QEMU_VERSION, ...).
start_host() {
  local arches=() p
  for p in "${PLATFORMS[@]}"; do arches+=("${DEBIAN_ARCH_OF[${p}]}"); done
  BUSYBOX_DIR="$(BUSYBOX_ARCHES="${arches[*]}" "${INFRA}/fetch-busybox.sh")"
  lab_start_host HOSTLAB_ENV_FILE "${HOSTLAB_NAME}" "${HOSTLAB_SSH_PORT}"
  # shellcheck source=/dev/null # KEY=value lines written by start-host.sh
  source "${HOSTLAB_ENV_FILE}"
  SSH_TO_HOST=(ssh -F "${HOSTLAB_STATE_DIR}/ssh_config" "${HOSTLAB_USER}@127.0.0.1")
  (cd "${ROOT}" && node tools/run-ts.js bench/emulation-provision.ts "${PLATFORMS[@]}") >"${RUN_DIR}/provision.env"
  # shellcheck source=/dev/null # KEY=value lines written above
  source "${RUN_DIR}/provision.env"
  for p in "${PLATFORMS[@]}"; do
    [[ " ${BUILDER_PLATFORMS} " == *" ${p} "* ]] || { log "builder ${BUILDER_NAME} does not offer ${p} (it offers: ${BUILDER_PLATFORMS})"; return 1; }
  done
}

# The Dockerfile: busybox of the target platform, then the timed step. The built-in Dockerfile
# frontend (no syntax line: no registry is reachable). RUN's variables are the shell's; APPLET and
# BYTES are ARGs, so they are in the step's environment.
dockerfile() {
  cat <<'DOCKERFILE'
FROM scratch
ARG TARGETARCH
ARG TARGETVARIANT
COPY busybox-${TARGETARCH}${TARGETVARIANT} /bin/busybox
SHELL ["/bin/busybox", "sh", "-c"]
ARG APPLET
ARG BYTES
RUN --network=none read t0 rest </proc/uptime; /bin/busybox head -c "$BYTES" /dev/zero | /bin/busybox "$APPLET"; read t1 rest </proc/uptime; echo "emulation-bench $t0 $t1"
DOCKERFILE
}

# Puts the build context (Dockerfile and one busybox per platform) in the login user's home.
stage_context() {
  local stage p
  stage="$(mktemp -d)"
  dockerfile >"${stage}/Dockerfile"
  for p in "${PLATFORMS[@]}"; do
    install -m 0755 "${BUSYBOX_DIR}/busybox-${DEBIAN_ARCH_OF[${p}]}" "${stage}/$(context_name "${p}")"
  done
  tar -C "${stage}" -c . | "${SSH_TO_HOST[@]}" "rm -rf ${CONTEXT} && mkdir ${CONTEXT} && tar -x -C ${CONTEXT}"
  rm -rf "${stage}"
}

# The hash of N zero bytes by the native busybox, computed here once per size: what every build,
# native or emulated, must print.
declare -A ZEROS_HASH=()
zeros_hash() {
  ZEROS_HASH[$1]="$(head -c "$1" /dev/zero | "${BUSYBOX_DIR}/busybox-${DEBIAN_ARCH_OF[${NATIVE}]}" "${BENCH_APPLET}" | cut -d' ' -f1)"
  [[ "${ZEROS_HASH[$1]}" =~ ^[0-9a-f]+$ ]] || { log "busybox ${BENCH_APPLET} printed no hash here"; return 1; }
}

# build PLATFORM BYTES LOG: one build on the host's builder (zeros_hash BYTES first); prints
# "<step s> <command s>" parsed from the plain progress output in LOG, after checking the step
# printed the expected hash.
build() {
  local platform="$1" bytes="$2" logfile="$3"
  if ! "${SSH_TO_HOST[@]}" "docker buildx build --builder ${BUILDER_NAME} --platform ${platform} --no-cache --progress plain \
      --build-arg APPLET=${BENCH_APPLET} --build-arg BYTES=${bytes} ${CONTEXT}" >"${logfile}" 2>&1 </dev/null; then
    log "build for ${platform} failed; its log (${logfile}):"
    tail -n 30 "${logfile}" >&2
    return 1
  fi
  parse_build "${logfile}" "${ZEROS_HASH[${bytes}]}"
}

# parse_build LOG EXPECTED_HASH: "<step s> <command s>" of the RUN step in a plain progress log.
# Plain progress names the step "#<n> [<stage> <i>/<k>] RUN ...", prefixes its output lines with
# "#<n> <seconds since the step started> " and ends it with "#<n> DONE <seconds>s".
parse_build() {
  local logfile="$1" expected="$2" id done_s times
  id="$(grep -E '^#[0-9]+ \[[^]]*\] RUN ' "${logfile}" | head -n 1 | cut -d' ' -f1)" || true
  [[ -n "${id}" ]] || { log "no RUN step in ${logfile}"; return 1; }
  done_s="$(sed -nE "s/^${id} DONE ([0-9.]+)s$/\\1/p" "${logfile}" | tail -n 1)"
  [[ -n "${done_s}" ]] || { log "the RUN step (${id}) has no DONE line in ${logfile}"; return 1; }
  grep -qE "^${id} ([0-9.]+ )?${expected}  -$" "${logfile}" ||
    { log "the RUN step (${id}) did not print the ${BENCH_APPLET} of the zeros (${expected}); see ${logfile}"; return 1; }
  times="$(sed -nE "s/^${id} ([0-9.]+ )?emulation-bench ([0-9.]+) ([0-9.]+)$/\\2 \\3/p" "${logfile}" | tail -n 1)"
  [[ -n "${times}" ]] || { log "the RUN step (${id}) printed no /proc/uptime figures; see ${logfile}"; return 1; }
  awk -v step="${done_s}" -v t="${times}" 'BEGIN { split(t, a, " "); printf "%s %.2f\n", step, a[2] - a[1] }'
}

measure() {
  local p round figures name
  printf 'platform\tround\tbytes\tstep_s\tcommand_s\n' >"${TIMINGS}"
  zeros_hash "${WARMUP_BYTES}"
  zeros_hash "${BENCH_BYTES}"
  for p in "${PLATFORMS[@]}"; do
    name="$(context_name "${p}")"
    figures="$(build "${p}" "${WARMUP_BYTES}" "${HOSTLAB_LOG_DIR}/build-warmup-${name}.log")"
    log "warm-up ${p}: ok (${figures%% *}s)"
  done
  for ((round = 1; round <= BENCH_ROUNDS; round++)); do
    for p in "${PLATFORMS[@]}"; do
      name="$(context_name "${p}")"
      figures="$(build "${p}" "${BENCH_BYTES}" "${HOSTLAB_LOG_DIR}/build-${round}-${name}.log")"
      printf '%s\t%s\t%s\t%s\t%s\n' "${p}" "${round}" "${BENCH_BYTES}" "${figures%% *}" "${figures##* }" >>"${TIMINGS}"
      log "round ${round}/${BENCH_ROUNDS} ${p}: step ${figures%% *}s, command ${figures##* }s"
    done
  done
}

# spread PLATFORM COLUMN (4 = step, 5 = command): "<min> <median> <max>" of the platform's rounds.
spread() {
  awk -F'\t' -v p="$1" -v c="$2" '$1 == p { print $c }' "${TIMINGS}" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[1], m, v[NR] }'
}

# table COLUMN DECIMALS: the Markdown table of one measure.
table() {
  local column="$1" decimals="$2" native p
  native="$(spread "${NATIVE}" "${column}")"
  echo "| platform | emulator | native s (min / median / max) | emulated s (min / median / max) | ratio of medians (emulated/native) |"
  echo "|---|---|---:|---:|---:|"
  for p in "${PLATFORMS[@]}"; do
    if [[ "${p}" == "${NATIVE}" ]]; then
      awk -v p="${p}" -v n="${native}" -v d="${decimals}" \
        'BEGIN { split(n, a, " "); printf "| %s | none (native) | %.*f / %.*f / %.*f | — | — |\n", p, d, a[1], d, a[2], d, a[3] }'
    else
      awk -v p="${p}" -v e="qemu-${HOST_FACTS_EMULATOR_OF[${p}]}" -v n="${native}" -v m="$(spread "${p}" "${column}")" -v d="${decimals}" \
        'BEGIN { split(n, a, " "); split(m, b, " ");
                 printf "| %s | %s | %.*f / %.*f / %.*f | %.*f / %.*f / %.*f | %.1f |\n", p, e, d, a[1], d, a[2], d, a[3], d, b[1], d, b[2], d, b[3], b[2] / a[2] }'
    fi
  done
}

# "BusyBox v1.37.0 (Debian 1:1.37.0-6+b9)", from the native busybox's usage text.
busybox_version() {
  { "${BUSYBOX_DIR}/busybox-${DEBIAN_ARCH_OF[${NATIVE}]}" 2>&1 || true; } | head -n 1 | sed 's/ multi-call binary\.$//'
}

report() {
  local cpu mib
  cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
  mib="$(awk -v b="${BENCH_BYTES}" 'BEGIN { printf "%g", b / 1048576 }')"
  echo "### Step time: BuildKit's RUN step, busybox ${BENCH_APPLET} of ${mib} MiB (${BENCH_ROUNDS} rounds)"
  echo
  table 4 1
  echo
  echo "### Command time inside the step (/proc/uptime before and after; ${BENCH_ROUNDS} rounds)"
  echo
  table 5 2
  echo
  echo "Host: ${cpu:-unknown CPU}, $(nproc) cores, kernel $(uname -r). Lab host: Debian 13, qemu-user ${QEMU_VERSION},"
  echo "BuildKit ${BUILDKIT_VERSION} (docker-container driver), buildx ${BUILDX_VERSION};"
  echo "$(busybox_version), Debian 13's busybox-static of each platform."
  echo "The native column is the same measurement on every row: the host's CPU running its own platform's busybox."
  echo "The pipeline's two commands run in parallel: a figure is mostly the slower command's time."
  if [[ "${NATIVE}" == linux/amd64 && "${BENCH_APPLET}" =~ ^sha(1|256)sum$ ]] && grep -qw sha_ni /proc/cpuinfo; then
    echo "Note: this CPU has SHA extensions (sha_ni), which Debian's amd64 busybox uses for ${BENCH_APPLET}; the other"
    echo "platforms' busyboxes hash with generic C code. BENCH_APPLET=md5sum (no such extensions) shows how much"
    echo "the native figure owes to them."
  fi
}

main() {
  local start=${SECONDS}
  read_platforms
  lab_begin
  start_host
  log "host ${HOSTLAB_NAME} provisioned after $((SECONDS - start))s; measuring ${PLATFORMS[*]}"
  stage_context
  measure
  report
  log "done in $((SECONDS - start))s"
}

main "$@"
