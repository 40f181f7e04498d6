#!/usr/bin/env bash
# Installs what a fresh machine lacks: the toolchain pinned in rust-toolchain.toml with the
# wasm32-wasip1 target (plain cargo does not add a target). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain install
rustup target add wasm32-wasip1
