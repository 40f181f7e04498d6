#!/usr/bin/env bash
# The main job on the bundled example: build the module, load it in the harness, replay the
# example requests and show each decision.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --quiet --target wasm32-wasip1 --profile wasm -p harness-fixtures --example http-headers
cargo run --quiet -p test-harness --bin pw-harness -- run \
  --wasm target/wasm32-wasip1/wasm/examples/http_headers.wasm \
  --plugin-config test-harness/demo/plugin-config.txt \
  --cases test-harness/demo/cases.json "$@"
