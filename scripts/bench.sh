#!/usr/bin/env bash
# Benchmarks of the module in the harness (release build), each beside the passthrough module
# measured in the same run: a bypassed path, a cached-token allow, and uncached RS256, ES256,
# EdDSA and HS256 checks (token cache off), and refused forgeries: a flood of distinct ones
# (rejected-token cache off, so each costs a signature check), a replayed one, an expired one;
# and the cached allow of a provider whose keys the module fetched from its JWKS endpoint.
# Writes target/bench/report.txt.
# Needs python3 (to switch the cache off in a copy of the bundle).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=target/bench
mkdir -p "$out"
iterations="${ITERATIONS:-2000}"
cargo build --quiet --release -p test-harness --bin pw-harness
# Two commands: with `--example`, cargo builds only the example, not the module.
cargo build --quiet --target wasm32-wasip1 --profile wasm -p policy-filter
cargo build --quiet --target wasm32-wasip1 --profile wasm -p harness-fixtures --example passthrough
cargo run --quiet -p policy-compiler -- compile envoy-examples/policy/config.json -o "$out/cached.json"
python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); b["settings"]["cache_entries"]=0; b["settings"]["rejected_cache_entries"]=0; json.dump(b, open(sys.argv[2],"w"))' "$out/cached.json" "$out/uncached.json"
cargo run --quiet -p jwt-minter --bin bench-requests -- envoy-examples/policy/keys "$out"
# The example's idp provider introspecting its tokens instead (at a stub), and the example
# with a minted internal token (the example key's Ed25519 seed: the last 32 bytes of PKCS#8).
python3 - "$out" envoy-examples/policy/keys/mint-ed25519.EXAMPLE-ONLY.key <<'PY'
import base64, json, sys
out, key = sys.argv[1], sys.argv[2]
bundle = json.load(open(f"{out}/cached.json"))
intro = json.loads(json.dumps(bundle))
for p in intro["providers"]:
    if p["name"] == "idp":
        p.update(keys=[], jwks=None, revocation={}, issuer="https://hydra.example/", introspection={
            "endpoint": {"upstream": "hydra.example:443", "authority": "hydra.example", "path": "/oauth2/introspect", "scheme": "https"},
            "client_id": "gateway", "client_secret": "bench-secret"})
json.dump(intro, open(f"{out}/introspecting.json", "w"))
der = base64.b64decode("".join(l for l in open(key) if not l.startswith("-----")))
minted = json.loads(json.dumps(bundle))
minted["settings"]["mint"] = {"kid": "gateway-1", "private_key": base64.urlsafe_b64encode(der[-32:]).decode().rstrip("="),
                              "issuer": "https://gateway.internal", "audiences": ["users"]}
json.dump(minted, open(f"{out}/minted.json", "w"))
PY
harness=target/release/pw-harness
module=target/wasm32-wasip1/wasm/policy_filter.wasm
baseline=target/wasm32-wasip1/wasm/examples/passthrough.wasm
: > "$out/report.txt"
run() { # name, bundle, cases, extra harness arguments...
  echo "== $1 ($iterations iterations)" | tee -a "$out/report.txt"
  "$harness" bench --wasm "$module" --baseline "$baseline" --plugin-config "$2" --cases "$3" --iterations "$iterations" "${@:4}" | tee -a "$out/report.txt"
}
run "bypassed path" "$out/cached.json" "$out/bypass.json"
run "cached RS256 allow" "$out/cached.json" "$out/rs256.json"
# The same allow with a token of the idp provider, whose key set the module fetched (from a
# stub) on the tick before timing: a remote key set costs the request what an embedded one does.
run "cached RS256 allow, remote JWKS provider" "$out/cached.json" "$out/remote-rs256.json"
# A cached introspected token and a cached allow that forwards a minted token (reused per
# identity), beside the cached JWT allow above.
run "cached introspected allow" "$out/introspecting.json" "$out/introspected.json"
run "cached RS256 allow, minted internal token" "$out/minted.json" "$out/rs256.json"
run "bypassed path, ngx_wasm_module" "$out/cached.json" "$out/bypass.json" --host ngx_wasm_module
run "cached RS256 allow, ngx_wasm_module" "$out/cached.json" "$out/rs256.json" --host ngx_wasm_module
# As Envoy, the harness offers verify_signature, so RS256 and ES256 are checked by the host
# (ring here, BoringSSL in Envoy); the last runs play ngx_wasm_module (NGINX, Kong), which
# has no such function: the module checks them in wasm.
for alg in rs256 es256 eddsa hs256; do
  run "uncached $alg allow" "$out/uncached.json" "$out/$alg.json"
done
for alg in rs256 es256; do
  run "uncached $alg allow, in wasm (ngx_wasm_module: no verify_signature)" "$out/uncached.json" "$out/$alg.json" \
    --host ngx_wasm_module
done
# Refused forgeries, in wasm (ngx_wasm_module): what an unauthenticated caller costs.
run "forged es256, a flood of distinct tokens (each checked), in wasm" "$out/uncached.json" "$out/forged-es256.json" --host ngx_wasm_module
run "forged es256, replayed (rejected-token cache), in wasm" "$out/cached.json" "$out/forged-es256.json" --host ngx_wasm_module
run "forged es256, expired (refused on its claims), in wasm" "$out/uncached.json" "$out/expired-es256.json" --host ngx_wasm_module
