#!/usr/bin/env bash
# Runs every check and test of the workspace. The tests build the wasm modules they need
# themselves. Clippy enforces the workspace lints (no unwrap/expect/panic/indexing outside
# tests), natively and for the module's wasm-only code.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo clippy --quiet --workspace --all-targets
cargo clippy --quiet -p policy-filter -p vector-probe --target wasm32-wasip1
cargo test "$@"
