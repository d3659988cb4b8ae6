#!/usr/bin/env bash
# `pulumi up` benchmark: the wall time of a first `pulumi up` and of a no-op `pulumi up`, for an
# earlier version of the program (a git revision, HEAD~1 by default) and for this checkout's, side
# by side and interleaved in one run, through the real Pulumi CLI and plugins the engine suite uses
# (tools/build-pulumi.sh, tools/build-plugins.sh) against one lab host in existing mode.
#
# What a figure is: both programs get an untimed warm-up stack first (the first one provisions the
# host for real). Then every round makes a new stack per program (configuration copied from its
# warm-up stack) and times its first `up`: every host step runs, idempotently, against a host that
# is already provisioned, so it measures the engine, the program and the steps' checks, not package
# installs (a fresh host per round would cost minutes a round and measure apt). Then it times the
# same stack's second `up`, a no-op: no host command runs (checked on the host's run log). The
# programs take turns at going first. Every `up` is `pulumi up --yes`, the README's command, preview
# included. Target for the no-op up: ≤ 5 s wall on every run.
#
# How: a lab session (tests/hostlab/infra/session.sh, as tests/hostlab/run.sh) starts the host;
# bench/noop-up.ts drives the CLI through tests/engine/cli.ts.
#
# Usage: sudo bash bench/noop-up.sh [REV] > table.md    REV: the earlier program [HEAD~1]
# Environment (defaults in brackets), besides session.sh's (HOSTLAB_NAME [buildx-host-noop-up-bench]):
#   BENCH_ROUNDS  [5]  rounds (first up and no-op up of each program per round)
# Output: progress on stderr; on stdout a Markdown table with min / median / max per figure and
# program; every run's figures in $HOSTLAB_LOG_DIR/noop-up.tsv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HOSTLAB_NAME="${HOSTLAB_NAME:-buildx-host-noop-up-bench}"
# shellcheck source=../tests/hostlab/infra/lib.sh
source "${ROOT}/tests/hostlab/infra/lib.sh"
# shellcheck source=../tests/hostlab/infra/session.sh
source "${ROOT}/tests/hostlab/infra/session.sh"
export BENCH_ROUNDS="${BENCH_ROUNDS:-5}"

log() { echo "bench-noop-up: $*" >&2; }

main() {
  local rev="${1:-HEAD~1}" start=${SECONDS}
  git -C "${ROOT}" rev-parse --verify --quiet "${rev}^{commit}" >/dev/null || { log "no commit '${rev}' in ${ROOT}"; return 2; }
  [[ "${BENCH_ROUNDS}" =~ ^[1-9][0-9]*$ ]] || { log "BENCH_ROUNDS must be a positive number"; return 2; }
  lab_begin
  lab_prepare_engine
  lab_start_host HOSTLAB_ENV_FILE "${HOSTLAB_NAME}" "${HOSTLAB_SSH_PORT}"
  (cd "${ROOT}" && node tools/run-ts.js bench/noop-up.ts "${rev}")
  log "done in $((SECONDS - start))s"
}

main "$@"
