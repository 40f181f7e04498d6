#!/usr/bin/env bash
# Runs every test of the workspace. The tests build the wasm modules they need themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test "$@"
