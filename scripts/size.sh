#!/usr/bin/env bash
# The module's size: raw, after `wasm-opt -Oz` (Debian package binaryen; installed here when
# missing and apt-get is usable), and gzip -9 of the optimised file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
if ! command -v wasm-opt >/dev/null; then
  apt-get update -qq && apt-get install -y -qq binaryen >/dev/null
fi
cargo build --quiet --target wasm32-wasip1 --profile wasm -p policy-filter
module=target/wasm32-wasip1/wasm/policy_filter.wasm
optimised=target/wasm32-wasip1/wasm/policy_filter.opt.wasm
# Debian's binaryen 108 needs rustc 1.95's features spelled out (`-all` gives a module
# wasmtime refuses).
wasm-opt -Oz --enable-simd --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types \
  "$module" -o "$optimised"
printf 'raw %d bytes\nwasm-opt -Oz %d bytes\ngzip -9 %d bytes\n' \
  "$(stat -c %s "$module")" "$(stat -c %s "$optimised")" "$(gzip -9 -c "$optimised" | wc -c)"
