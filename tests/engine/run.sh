#!/usr/bin/env bash
# Engine layer, one entry point: build the pinned Pulumi CLI from Go modules (cached), compile the
# program, and run the suite with the real engine on a local file backend.
#
# What this layer can prove here is limited: the Go module proxy serves neither the Node.js language
# host nor the command provider (tools/build-pulumi.sh says which modules and versions), so the
# program runs in-process through Automation API and no remote.Command can run. It proves what the
# CLI itself does with the project: Pulumi.yaml's typed config and defaults, and a bad configuration
# failing the preview with our message before any resource is registered.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

main() {
  cd "$ROOT"
  local tools
  tools="$(bash tools/build-pulumi.sh | tail -n 1)"
  PULUMI_TOOLS_DIR="$(dirname "$(sed -n 's/.*"bin":"\([^"]*\)".*/\1/p' <<<"$tools")")"
  export PULUMI_TOOLS_DIR
  # The language host would compile index.ts; Automation API's inline program needs JavaScript.
  npx tsc --noEmit false --outDir bin
  node bin/tests/engine/engine.test.js
}

main "$@"
