#!/usr/bin/env bash
# The main job on the bundled example (envoy-examples/policy): compile the example policies
# into a bundle, build the filter module, sign the example requests' tokens with the example
# keys, load the module in the harness with the bundle, replay the requests as Envoy and as
# NGINX with ngx_wasm_module (Kong) would run it, show each decision. Output lands in
# target/example/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=target/example
mkdir -p "$out"
cargo run --quiet -p policy-compiler -- compile envoy-examples/policy/config.json -o "$out/plugin-config.json"
cargo run --quiet -p policy-compiler -- test envoy-examples/policy/config.json envoy-examples/policy/policy-tests.yaml > "$out/policy-tests.txt" \
  || { cat "$out/policy-tests.txt"; exit 1; }
echo "policy tests: $(tail -n 1 "$out/policy-tests.txt")"
cargo build --quiet --target wasm32-wasip1 --profile wasm -p policy-filter
cargo run --quiet -p jwt-minter --bin example-requests -- envoy-examples/policy/keys > "$out/requests.json"
cargo build --quiet -p test-harness --bin pw-harness
for host in envoy ngx_wasm_module; do
  echo "== as $host"
  target/debug/pw-harness run --host "$host" \
    --wasm target/wasm32-wasip1/wasm/policy_filter.wasm \
    --plugin-config "$out/plugin-config.json" \
    --cases "$out/requests.json" "$@"
done
