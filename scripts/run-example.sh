#!/usr/bin/env bash
# The main job on the bundled examples: compile each example set's policies into a bundle,
# build the filter module, sign the walkthrough's tokens with the set's example keys, load
# the module in the harness with the bundle, replay the walkthrough as Envoy and as NGINX
# with ngx_wasm_module (Kong) would run it, show each decision. The sets:
#   envoy-examples/policy   Microkubes-style policies, several issuers, remote JWKS (34 cases)
#   envoy-examples/compass  Kyma Compass: Hydra introspection, certificates, Dex JWTs, tenant
#                           mapping, a minted ES256 token, the console's login
#   envoy-examples/onap     ONAP Auth*/CADI: Basic checked by AAF beside Keycloak JWTs, first
#                           success wins, revocation, a minted EdDSA principal
# Output lands in target/example/. Extra arguments go to `pw-harness run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=target/example
mkdir -p "$out"
cargo build --quiet --target wasm32-wasip1 --profile wasm -p policy-filter
cargo build --quiet -p test-harness --bin pw-harness
cargo build --quiet -p policy-compiler -p jwt-minter
cargo run --quiet -p policy-compiler -- test envoy-examples/policy/config.json envoy-examples/policy/policy-tests.yaml > "$out/policy-tests.txt" \
  || { cat "$out/policy-tests.txt"; exit 1; }
echo "policy tests: $(tail -n 1 "$out/policy-tests.txt")"
for set in policy compass onap; do
  cargo run --quiet -p policy-compiler -- compile "envoy-examples/$set/config.json" -o "$out/$set-plugin-config.json"
  cargo run --quiet -p jwt-minter --bin example-requests -- "envoy-examples/$set/keys" > "$out/$set-requests.json"
  for host in envoy ngx_wasm_module; do
    echo "== $set, as $host"
    target/debug/pw-harness run --host "$host" \
      --wasm target/wasm32-wasip1/wasm/policy_filter.wasm \
      --plugin-config "$out/$set-plugin-config.json" \
      --cases "$out/$set-requests.json" "$@"
  done
done
