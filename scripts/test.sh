#!/usr/bin/env bash
# Runs every check and test of the workspace. The tests build the wasm modules they need
# themselves. Clippy enforces the workspace lints (no unwrap/expect/panic/indexing outside
# tests), natively and for the module's wasm-only code. The fuzz targets are built too.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo clippy --quiet --workspace --all-targets
cargo clippy --quiet -p policy-filter -p vector-probe --target wasm32-wasip1
# The cargo-fuzz targets (a workspace of their own) must keep building against the API;
# running them takes nightly (README, Fuzzing).
cargo check --quiet --manifest-path fuzz/Cargo.toml --target-dir target/fuzz --bins
cargo test "$@"
