#!/usr/bin/env bash
# Engine layer, one entry point: the lab's "engine" suite (tests/hostlab/run.sh prepares the lab, builds
# the Pulumi CLI and its plugins, and runs tests/engine/engine.test.ts against a fresh lab host).
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../hostlab/run.sh" engine "$@"
