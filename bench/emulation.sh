#!/usr/bin/env bash
# Emulation benchmark: how much slower a CPU-bound build step runs under QEMU user emulation than
# on the build host's own CPU, for each platform the program emulates by default.
#
# What is measured: the wall time of one BuildKit RUN step that hashes 256 MiB of zeros with
# Debian 13's static busybox of the step's platform,
#   busybox head -c 268435456 /dev/zero | busybox sha256sum
# (BENCH_APPLET picks another busybox hash applet, BENCH_BYTES another size)
# in a FROM-scratch image holding nothing but that busybox. The host's own platform (linux/amd64
# on this machine) runs it natively; every other platform runs it under QEMU, through the kernel's
# binfmt_misc registrations (flag F) that the program's qemu-binfmt step made. The native figure
# is the same measurement on every row: the same work, done by the host's CPU itself.
#
# How: a lab host (a Debian 13 container with systemd as PID 1, tests/hostlab/infra/start-host.sh)
# is provisioned by the program's own steps, run the way the host lab runs them (tests/hostlab/lab.ts
# runStep, loaded from the TypeScript source): wait-for-host, docker-engine (from the lab's stand-in
# for Docker's apt repository), experimental-mode, qemu-binfmt, buildx-builder (the lab's locally
# built BuildKit image loaded first, as the lab suite does), team-access. Every measurement is then
# a real build on the host's shared buildx builder (docker-container driver), run over SSH as the
# login user:
#   docker buildx build --builder buildx-host --platform P --no-cache --progress plain ...
# The step time is BuildKit's own: the RUN step's "DONE x.ys" line (0.1 s resolution, container
# start included). The step also reads /proc/uptime before and after the pipeline, which gives the
# command's own time (0.01 s resolution) for a second table. Every platform first gets an untimed
# 1 MiB warm-up build; the timed runs are interleaved (run 1 of every platform, then run 2, ...) so
# that drift spreads over all platforms; every run's hash is checked against the native busybox's,
# computed on this machine; the median of BENCH_RUNS runs is reported.
#
# The pipeline's two commands run in parallel, so a figure is mostly the slower one's time. Debian's
# amd64 busybox computes sha1sum and sha256sum with the CPU's SHA extensions (sha_ni) where it has
# them; the other architectures' busyboxes run generic C code. On such a CPU the native figure may
# owe something to them (a note under the tables says so); BENCH_APPLET=md5sum or sha512sum
# compares generic C code with generic C code.
#
# The lab's lock (/var/lock/buildx-host-lab.lock, as tests/hostlab/run.sh) is held for the whole
# run: binfmt_misc is the kernel's, shared with every lab run, and a concurrent lab run would
# distort the timings anyway. binfmt_misc registrations are saved before the host starts and put
# back at exit (tests/hostlab/infra/binfmt-state.sh); the host is removed at exit, also on failure
# or interruption; the stand-in apt repository is stopped if this run started it.
#
# Usage: sudo bash bench/emulation.sh > table.md
# Needs: root, node_modules installed (npm ci), and on a first run what tests/hostlab/run.sh needs
# (deb.debian.org and the Go module proxy, for the host image, apt repo and BuildKit image).
#
# Environment (defaults in brackets):
#   BENCH_PLATFORMS  [linux/amd64 linux/arm64 linux/arm/v7 linux/ppc64le linux/s390x linux/riscv64]
#                    (the host's own platform is always measured, as the native reference)
#   BENCH_RUNS       [3]          timed runs per platform (the median is reported)
#   BENCH_BYTES      [268435456]  bytes hashed per run (256 MiB)
#   BENCH_APPLET     [sha256sum]  busybox applet that hashes them (md5sum, sha1sum, sha512sum, ...)
#   BENCH_HOST_NAME  [buildx-host-bench]  lab host container name
#   BENCH_SSH_PORT   [2223]       the lab host's sshd port on 127.0.0.1
#   BENCH_LOCK_WAIT_SECONDS [3600]  how long to wait for the lab lock
#   APT_REPO_PORT    [8765]       port of the stand-in for Docker's apt repository
#   CACHE_DIR        [/var/cache/buildx-host]
# Output: progress on stderr; on stdout the two Markdown tables (step time, command time), each
# with columns platform | emulator | native median s | emulated median s | ratio (emulated/native),
# and notes. Step logs, build logs and every run's figures (timings.tsv) are kept in
# /var/tmp/buildx-host-lab/run-$BENCH_HOST_NAME/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT/tests/hostlab/infra"
# shellcheck source=../tests/hostlab/infra/lib.sh
source "$INFRA/lib.sh"

BENCH_PLATFORMS="${BENCH_PLATFORMS:-linux/amd64 linux/arm64 linux/arm/v7 linux/ppc64le linux/s390x linux/riscv64}"
BENCH_RUNS="${BENCH_RUNS:-3}"
BENCH_BYTES="${BENCH_BYTES:-268435456}"
BENCH_APPLET="${BENCH_APPLET:-sha256sum}"
BENCH_HOST_NAME="${BENCH_HOST_NAME:-buildx-host-bench}"
BENCH_SSH_PORT="${BENCH_SSH_PORT:-2223}"
BENCH_LOCK_WAIT_SECONDS="${BENCH_LOCK_WAIT_SECONDS:-3600}"
export APT_REPO_PORT="${APT_REPO_PORT:-8765}"
export CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
readonly LOCK_FILE=/var/lock/buildx-host-lab.lock
readonly WARMUP_BYTES=1048576
RUN_DIR="/var/tmp/buildx-host-lab/run-$BENCH_HOST_NAME"
LOG_DIR="$RUN_DIR/logs"
BINFMT_STATE="$RUN_DIR/binfmt.saved"
TIMINGS="$RUN_DIR/timings.tsv"
# The build context's directory in the login user's home on the host.
readonly CONTEXT=emulation-bench

log() { echo "bench-emulation: $*" >&2; }

# Set as the run goes, read by cleanup.
HOST_STARTED=0
STARTED_APT_REPO=0
SAVED_BINFMT=0
HOST_ENV_FILE=""

cleanup() {
  local rc=$?
  if [[ "$HOST_STARTED" == 1 ]]; then
    "$INFRA/stop-host.sh" "$BENCH_HOST_NAME" || rc=1
  fi
  if [[ "$STARTED_APT_REPO" == 1 ]]; then
    "$INFRA/serve-apt-repo.sh" stop || rc=1
  fi
  # The host's systemd registered (and on stop unregistered) emulators in the kernel's binfmt_misc.
  if [[ "$SAVED_BINFMT" == 1 ]]; then
    "$INFRA/binfmt-state.sh" restore "$BINFMT_STATE" || rc=1
  fi
  log "logs and raw timings: $RUN_DIR"
  exit "$rc"
}

# Debian architecture of a platform's busybox; the context file name (busybox-$TARGETARCH$TARGETVARIANT)
# and the QEMU emulator for it, as components/host-facts.ts names them.
debian_arch() {
  case "$1" in
    linux/amd64) echo amd64 ;;
    linux/arm64) echo arm64 ;;
    linux/arm/v7) echo armhf ;;
    linux/ppc64le) echo ppc64el ;;
    linux/s390x) echo s390x ;;
    linux/riscv64) echo riscv64 ;;
    *) return 1 ;;
  esac
}

context_name() {
  local arch="${1#linux/}"
  echo "busybox-${arch//\//}"
}

emulator_of() {
  case "$1" in
    linux/amd64) echo qemu-x86_64 ;;
    linux/arm64) echo qemu-aarch64 ;;
    linux/arm/v7) echo qemu-arm ;;
    linux/ppc64le) echo qemu-ppc64le ;;
    linux/s390x) echo qemu-s390x ;;
    linux/riscv64) echo qemu-riscv64 ;;
  esac
}

native_platform() {
  case "$(uname -m)" in
    x86_64) echo linux/amd64 ;;
    aarch64) echo linux/arm64 ;;
    *)
      log "unsupported machine $(uname -m)"
      return 1
      ;;
  esac
}

# The platforms to measure: the native one first, then BENCH_PLATFORMS' others, in their order.
PLATFORMS=()
NATIVE=""
read_platforms() {
  local p requested=()
  NATIVE="$(native_platform)"
  read -r -a requested <<<"${BENCH_PLATFORMS//,/ }"
  PLATFORMS=("$NATIVE")
  for p in "${requested[@]}"; do
    debian_arch "$p" >/dev/null || { log "platform '$p' has no busybox mapping here (known: linux/amd64 linux/arm64 linux/arm/v7 linux/ppc64le linux/s390x linux/riscv64)"; return 2; }
    [[ " ${PLATFORMS[*]} " == *" $p "* ]] || PLATFORMS+=("$p")
  done
  [[ "$BENCH_RUNS" =~ ^[1-9][0-9]*$ ]] || { log "BENCH_RUNS must be a positive number"; return 2; }
  [[ "$BENCH_BYTES" =~ ^[1-9][0-9]*$ ]] || { log "BENCH_BYTES must be a positive number of bytes"; return 2; }
  [[ "$BENCH_APPLET" =~ ^[a-z0-9]+sum$ ]] || { log "BENCH_APPLET must be a busybox hash applet (md5sum, sha256sum, ...)"; return 2; }
}

# Client tools this script and the lab use on this machine.
ensure_tools() {
  local missing=()
  command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
  command -v flock >/dev/null 2>&1 || missing+=(util-linux)
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  install_packages "${missing[@]}"
}

# The lab pieces tests/hostlab/run.sh prepare() makes, minus the client image this bench does not
# use, and with busybox for every measured platform. All cached under $CACHE_DIR. Servers started
# here get the lock's descriptor closed (9>&-): a daemon holding it would hold the lab lock forever.
prepare() {
  local arches=() p
  ensure_tools
  "$INFRA/ensure-dockerd.sh" 9>&-
  HOST_IMAGE="$("$INFRA/build-host-image.sh")"
  export HOST_IMAGE
  "$INFRA/build-apt-repo.sh" >/dev/null
  if ! curl -fsS -o /dev/null "http://127.0.0.1:$APT_REPO_PORT/debian/gpg" 2>/dev/null; then
    STARTED_APT_REPO=1
  fi
  DOCKER_APT_REPO="$("$INFRA/serve-apt-repo.sh" start 9>&-)"
  DOCKER_APT_KEY_FINGERPRINT="$("$INFRA/serve-apt-repo.sh" fingerprint)"
  BUILDKIT_ENV_FILE="$RUN_DIR/buildkit.env"
  BUILDKIT_IMAGE_ENV="$BUILDKIT_ENV_FILE" "$INFRA/build-buildkit-image.sh" >/dev/null
  BUILDKIT_IMAGE_TAR="$(sed -n 's/^BUILDKIT_IMAGE_TAR=//p' "$BUILDKIT_ENV_FILE")"
  for p in "${PLATFORMS[@]}"; do arches+=("$(debian_arch "$p")"); done
  BUSYBOX_DIR="$(BUSYBOX_ARCHES="${arches[*]}" "$INFRA/fetch-busybox.sh")"
}

start_host() {
  HOST_STARTED=1
  HOST_ENV_FILE="$("$INFRA/start-host.sh" "$BENCH_HOST_NAME" "$BENCH_SSH_PORT")"
  # shellcheck source=/dev/null # KEY=value lines written by start-host.sh
  source "$HOST_ENV_FILE"
  SSH_TO_HOST=(ssh -F "$HOSTLAB_STATE_DIR/ssh_config" "$HOSTLAB_USER@127.0.0.1")
}

# Runs the program's host steps on the lab host as tests/hostlab/hostlab.test.ts's first run does
# (lab.ts runStep with the configuration labConfig derives, the BuildKit image loaded before the
# builder step), and writes KEY=value facts from their reports to $RUN_DIR/provision.env.
provision() {
  local platforms_json p
  platforms_json="[$(printf '"%s",' "${PLATFORMS[@]}")"
  platforms_json="${platforms_json%,}]"
  (cd "$ROOT" && HOSTLAB_ENV_FILE="$HOST_ENV_FILE" HOSTLAB_LOG_DIR="$LOG_DIR" BENCH_DOCKER_APT_REPO="$DOCKER_APT_REPO" \
    BENCH_DOCKER_APT_KEY_FINGERPRINT="$DOCKER_APT_KEY_FINGERPRINT" BENCH_PLATFORMS_JSON="$platforms_json" \
    BENCH_BUILDKIT_IMAGE_TAR="$BUILDKIT_IMAGE_TAR" node - >"$RUN_DIR/provision.env" <<'JS'
const fs = require("fs");
const path = require("path");
const ts = require("typescript");
// Transpiled on the fly with the project's typescript, as ts-jest does (no type check).
require.extensions[".ts"] = (module, file) => module._compile(ts.transpileModule(fs.readFileSync(file, "utf8"), {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
}).outputText, file);
const lab = require(path.resolve("tests/hostlab/lab"));
const { hostStepDefinitions } = require(path.resolve("components/steps"));
const { shellQuote } = require(path.resolve("components/shell"));

const host = lab.readLabHost(process.env.HOSTLAB_ENV_FILE);
const config = lab.labConfig(host, {
    dockerAptRepo: process.env.BENCH_DOCKER_APT_REPO,
    dockerAptKeyFingerprint: process.env.BENCH_DOCKER_APT_KEY_FINGERPRINT,
    platforms: process.env.BENCH_PLATFORMS_JSON,
});
const reports = {};
for (const step of hostStepDefinitions(config, host.user)) {
    if (step.name === "buildx-builder") {
        // Stand-in for the registry pull, as hostlab.test.ts does: no registry is reachable in the lab.
        lab.localOk(`ssh ${lab.sshArgs(host, host.user, host.key).map(shellQuote).join(" ")} 'sudo -n docker load' ` +
            `< ${shellQuote(process.env.BENCH_BUILDKIT_IMAGE_TAR)}`);
    }
    const run = lab.runStep(host, step, "bench");
    reports[step.name] = lab.expectStepOk(run);
    process.stderr.write(`bench-emulation: step ${step.name} done in ${run.seconds.toFixed(1)}s\n`);
}
const builder = reports["buildx-builder"];
const facts = {
    BUILDER_NAME: config.builderName,
    QEMU_VERSION: reports["qemu-binfmt"].qemuVersion ?? "unknown",
    BUILDKIT_VERSION: builder.buildkitVersion ?? "unknown",
    BUILDX_VERSION: builder.buildxVersion ?? "unknown",
    BUILDER_PLATFORMS: (builder.platforms ?? []).join(" "),
};
for (const [name, value] of Object.entries(facts)) {
    console.log(`${name}=${shellQuote(String(value))}`);
}
JS
  )
  # shellcheck source=/dev/null # KEY=value lines written above
  source "$RUN_DIR/provision.env"
  for p in "${PLATFORMS[@]}"; do
    [[ " $BUILDER_PLATFORMS " == *" $p "* ]] || { log "builder $BUILDER_NAME does not offer $p (it offers: $BUILDER_PLATFORMS)"; return 1; }
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
  dockerfile >"$stage/Dockerfile"
  for p in "${PLATFORMS[@]}"; do
    install -m 0755 "$BUSYBOX_DIR/busybox-$(debian_arch "$p")" "$stage/$(context_name "$p")"
  done
  tar -C "$stage" -c . | "${SSH_TO_HOST[@]}" "rm -rf $CONTEXT && mkdir $CONTEXT && tar -x -C $CONTEXT"
  rm -rf "$stage"
}

# The hash of N zero bytes by the native busybox, computed here once per size: what every run,
# native or emulated, must print.
declare -A ZEROS_HASH=()
zeros_hash() {
  ZEROS_HASH[$1]="$(head -c "$1" /dev/zero | "$BUSYBOX_DIR/busybox-$(debian_arch "$NATIVE")" "$BENCH_APPLET" | cut -d' ' -f1)"
  [[ "${ZEROS_HASH[$1]}" =~ ^[0-9a-f]+$ ]] || { log "busybox $BENCH_APPLET printed no hash here"; return 1; }
}

# build PLATFORM BYTES LOG: one build on the host's builder (zeros_hash BYTES first); prints "<step s> <command s>" parsed
# from the plain progress output in LOG, after checking the step printed the expected hash.
build() {
  local platform="$1" bytes="$2" logfile="$3" expected
  expected="${ZEROS_HASH[$bytes]}"
  if ! "${SSH_TO_HOST[@]}" "docker buildx build --builder $BUILDER_NAME --platform $platform --no-cache --progress plain \
      --build-arg APPLET=$BENCH_APPLET --build-arg BYTES=$bytes $CONTEXT" >"$logfile" 2>&1 </dev/null; then
    log "build for $platform failed; its log ($logfile):"
    tail -n 30 "$logfile" >&2
    return 1
  fi
  parse_build "$logfile" "$expected"
}

# parse_build LOG EXPECTED_HASH: "<step s> <command s>" of the RUN step in a plain progress log.
# Plain progress names the step "#<n> [<stage> <i>/<k>] RUN ...", prefixes its output lines with
# "#<n> <seconds since the step started> " and ends it with "#<n> DONE <seconds>s".
parse_build() {
  local logfile="$1" expected="$2" id done_s times
  id="$(grep -E '^#[0-9]+ \[[^]]*\] RUN ' "$logfile" | head -n 1 | cut -d' ' -f1)" || true
  [[ -n "$id" ]] || { log "no RUN step in $logfile"; return 1; }
  done_s="$(sed -nE "s/^$id DONE ([0-9.]+)s$/\\1/p" "$logfile" | tail -n 1)"
  [[ -n "$done_s" ]] || { log "the RUN step ($id) has no DONE line in $logfile"; return 1; }
  grep -qE "^$id ([0-9.]+ )?$expected  -$" "$logfile" ||
    { log "the RUN step ($id) did not print the $BENCH_APPLET of the zeros ($expected); see $logfile"; return 1; }
  times="$(sed -nE "s/^$id ([0-9.]+ )?emulation-bench ([0-9.]+) ([0-9.]+)$/\\2 \\3/p" "$logfile" | tail -n 1)"
  [[ -n "$times" ]] || { log "the RUN step ($id) printed no /proc/uptime figures; see $logfile"; return 1; }
  awk -v step="$done_s" -v t="$times" 'BEGIN { split(t, a, " "); printf "%s %.2f\n", step, a[2] - a[1] }'
}

# Median of the numbers on stdin.
median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

measure() {
  local p run figures name
  printf 'platform\trun\tbytes\tstep_s\tcommand_s\n' >"$TIMINGS"
  zeros_hash "$WARMUP_BYTES"
  zeros_hash "$BENCH_BYTES"
  for p in "${PLATFORMS[@]}"; do
    name="$(context_name "$p")"
    figures="$(build "$p" "$WARMUP_BYTES" "$LOG_DIR/build-warmup-$name.log")"
    log "warm-up $p: ok (${figures%% *}s)"
  done
  for ((run = 1; run <= BENCH_RUNS; run++)); do
    for p in "${PLATFORMS[@]}"; do
      name="$(context_name "$p")"
      figures="$(build "$p" "$BENCH_BYTES" "$LOG_DIR/build-$run-$name.log")"
      printf '%s\t%s\t%s\t%s\t%s\n' "$p" "$run" "$BENCH_BYTES" "${figures%% *}" "${figures##* }" >>"$TIMINGS"
      log "run $run/$BENCH_RUNS $p: step ${figures%% *}s, command ${figures##* }s"
    done
  done
}

# median_of PLATFORM COLUMN (4 = step, 5 = command) from the timings file.
median_of() { awk -F'\t' -v p="$1" -v c="$2" '$1 == p { print $c }' "$TIMINGS" | median; }

# table COLUMN DECIMALS: the Markdown table of one measure.
table() {
  local column="$1" decimals="$2" native p emulated
  native="$(median_of "$NATIVE" "$column")"
  echo "| platform | emulator | native median s | emulated median s | ratio (emulated/native) |"
  echo "|---|---|---:|---:|---:|"
  for p in "${PLATFORMS[@]}"; do
    if [[ "$p" == "$NATIVE" ]]; then
      awk -v p="$p" -v n="$native" -v d="$decimals" 'BEGIN { printf "| %s | none (native) | %.*f | — | — |\n", p, d, n }'
    else
      emulated="$(median_of "$p" "$column")"
      awk -v p="$p" -v e="$(emulator_of "$p")" -v n="$native" -v m="$emulated" -v d="$decimals" \
        'BEGIN { printf "| %s | %s | %.*f | %.*f | %.1f |\n", p, e, d, n, d, m, m / n }'
    fi
  done
}

# "BusyBox v1.37.0 (Debian 1:1.37.0-6+b9)", from the native busybox's usage text.
busybox_version() {
  { "$BUSYBOX_DIR/busybox-$(debian_arch "$NATIVE")" 2>&1 || true; } | head -n 1 | sed 's/ multi-call binary\.$//'
}

report() {
  local cpu mib
  cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
  mib="$(awk -v b="$BENCH_BYTES" 'BEGIN { printf "%g", b / 1048576 }')"
  echo "### Step time: BuildKit's RUN step, busybox $BENCH_APPLET of $mib MiB (median of $BENCH_RUNS)"
  echo
  table 4 1
  echo
  echo "### Command time inside the step (/proc/uptime before and after; median of $BENCH_RUNS)"
  echo
  table 5 2
  echo
  echo "Host: ${cpu:-unknown CPU}, $(nproc) cores, kernel $(uname -r). Lab host: Debian 13, qemu-user $QEMU_VERSION,"
  echo "BuildKit $BUILDKIT_VERSION (docker-container driver), buildx $BUILDX_VERSION;"
  echo "$(busybox_version), Debian 13's busybox-static of each platform."
  echo "The native column is the same measurement on every row: the host's CPU running its own platform's busybox."
  echo "The pipeline's two commands run in parallel: a figure is mostly the slower command's time."
  if [[ "$NATIVE" == linux/amd64 && "$BENCH_APPLET" =~ ^sha(1|256)sum$ ]] && grep -qw sha_ni /proc/cpuinfo; then
    echo "Note: this CPU has SHA extensions (sha_ni), which Debian's amd64 busybox uses for $BENCH_APPLET; the other"
    echo "platforms' busyboxes hash with generic C code. BENCH_APPLET=md5sum (no such extensions) shows how much"
    echo "the native figure owes to them."
  fi
}

main() {
  local start=$SECONDS
  if [[ "$EUID" -ne 0 ]]; then
    log "run as root: the lab starts dockerd, mounts binfmt_misc and installs packages"
    return 1
  fi
  read_platforms
  exec 9>"$LOCK_FILE"
  log "waiting for the lab lock $LOCK_FILE (at most ${BENCH_LOCK_WAIT_SECONDS}s)"
  flock -w "$BENCH_LOCK_WAIT_SECONDS" 9 || { log "another lab run holds $LOCK_FILE"; return 1; }
  log "lab lock taken after $((SECONDS - start))s"
  rm -rf "$LOG_DIR"
  mkdir -p "$LOG_DIR"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  prepare
  "$INFRA/binfmt-state.sh" save "$BINFMT_STATE"
  SAVED_BINFMT=1
  start_host
  provision
  log "host $BENCH_HOST_NAME provisioned after $((SECONDS - start))s; measuring ${PLATFORMS[*]}"
  stage_context
  measure
  report
  log "done in $((SECONDS - start))s"
}

main "$@"
