#!/usr/bin/env bash
# Load benchmark: throughput (builds per minute) of one shared builder at 1, 4 and 8 concurrent
# two-platform builds through the member door, with BuildKit's max-parallelism unset and set to the
# host's CPU count. bench/load.ts says what is built and how it is counted.
#
# How: a lab session (tests/hostlab/infra/session.sh: the lab lock, preparation and cleanup, as
# tests/hostlab/run.sh) starts a lab host; bench/load.ts provisions it with the program's host steps
# and measures.
#
# Usage: sudo bash bench/load.sh > table.md
# Environment: session.sh's (HOSTLAB_NAME [buildx-host-load-bench]) and bench/load.ts's BENCH_*.
# Output: progress on stderr; the Markdown table on stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HOSTLAB_NAME="${HOSTLAB_NAME:-buildx-host-load-bench}"
# shellcheck source=../tests/hostlab/infra/lib.sh
source "${ROOT}/tests/hostlab/infra/lib.sh"
# shellcheck source=../tests/hostlab/infra/session.sh
source "${ROOT}/tests/hostlab/infra/session.sh"

log() { echo "bench-load: $*" >&2; }

main() {
  local start=${SECONDS}
  lab_begin
  lab_start_host HOSTLAB_ENV_FILE "${HOSTLAB_NAME}" "${HOSTLAB_SSH_PORT}"
  (cd "${ROOT}" && node tools/run-ts.js bench/load.ts)
  log "done in $((SECONDS - start))s"
}

main "$@"
