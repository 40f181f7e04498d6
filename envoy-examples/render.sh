#!/usr/bin/env bash
# Renders every proxy example from the shared example policy set into target/envoy-examples/,
# with the module beside them. Nothing rendered is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=target/envoy-examples
mkdir -p "$out/envoy/ecds" "$out/istio" "$out/kong" "$out/nginx"
cargo run --quiet -p policy-compiler -- compile envoy-examples/policy/config.json -o "$out/plugin-config.json"
cargo build --quiet --target wasm32-wasip1 --profile wasm -p policy-filter
cp target/wasm32-wasip1/wasm/policy_filter.wasm "$out/"
for template in envoy/envoy.yaml envoy/ecds/envoy.yaml envoy/ecds/policy-filter.yaml istio/wasmplugin.yaml \
                istio/bundle-configmap.yaml kong/kong.yaml nginx/nginx.conf; do
  cargo run --quiet -p policy-compiler -- render "envoy-examples/$template.tmpl" --bundle "$out/plugin-config.json" -o "$out/$template"
done
cp envoy-examples/kong/kong.conf envoy-examples/kong/policy_filter.meta.json "$out/kong/"
echo "rendered into $out"
