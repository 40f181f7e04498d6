//! The real module, built for wasm32-wasip1, in the harness: the example walkthrough, refused
//! configurations, metrics and logs through proxy-wasm, and the known-answer vectors inside
//! wasm.

use std::sync::OnceLock;

use base64::Engine as _;
use proxy_wasm_harness::cases::{CaseFile, Replay};
use proxy_wasm_harness::{LoadError, ProxyWasmModule, Request, workspace};
use serde_json::json;

use crate::mock::{NOW, ana_token, example, example_bundle};
use crate::vectors::{DELIBERATE, check_jws, check_signature, contradicted, jws_vectors, signature_vectors};

pub(crate) fn filter() -> &'static ProxyWasmModule {
    static MODULE: OnceLock<ProxyWasmModule> = OnceLock::new();
    MODULE.get_or_init(|| ProxyWasmModule::from_file(workspace::package("policy-filter").unwrap()).unwrap())
}

/// A plugin of the module with the example's `shm_kv` zone declared, as the rendered
/// nginx.conf declares it (the example bundle names it; without it ngx_wasm_module traps on
/// shared data). Envoy has no zones and ignores it.
pub(crate) fn plugin() -> proxy_wasm_harness::PluginBuilder<'static> {
    filter().plugin().ngx_shm_kv("policy_filter")
}

fn bundle_json() -> String {
    serde_json::to_string(&example_bundle()).unwrap()
}

#[test]
fn the_example_walkthrough_passes_inside_the_module() {
    let file: CaseFile = serde_json::from_value(jwt_minter::example_cases(&example("keys")).unwrap()).unwrap();
    let mut replay = Replay::start(&file, plugin().plugin_config(bundle_json()).now(file.now.unwrap())).unwrap();
    let failures: Vec<String> =
        file.cases.iter().map(|case| replay.run(case)).filter(|r| !r.passed).map(|r| format!("{}: {:?}", r.name, r.reason)).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(file.cases.len(), 34);
}

#[test]
fn metrics_and_the_denial_log_go_through_proxy_wasm() {
    let mut plugin = plugin().plugin_config(bundle_json()).now(NOW).start().unwrap();
    let ana = Request::get("/users/me").header("authorization", &format!("Bearer {}", ana_token()));
    assert!(plugin.send(&ana).forwarded());
    assert!(plugin.send(&ana).forwarded());
    let denied = plugin.send(&Request::new("DELETE", "/users/me").header("authorization", &format!("Bearer {}", ana_token())).header("x-request-id", "r-7"));
    assert_eq!(denied.status(), 403);
    assert_eq!(plugin.send(&Request::get("/users/me")).status(), 401);
    // Requests only count; the counts reach the proxy on the next tick (once a second).
    assert_eq!(plugin.metric("policy_filter_allowed").map(|m| m.value), Some(0), "defined, not yet flushed");
    plugin.advance_time(std::time::Duration::from_secs(1)).unwrap();
    let value = |name: &str| plugin.metric(name).map(|m| m.value).unwrap_or(0);
    assert_eq!(value("policy_filter_allowed"), 2);
    assert_eq!(value("policy_filter_denied"), 1);
    assert_eq!(value("policy_filter_unauthenticated"), 1);
    assert_eq!(value("policy_filter_unauthenticated_missing"), 1);
    assert_eq!(value("policy_filter_cache_misses"), 1);
    assert_eq!(value("policy_filter_cache_hits"), 2, "one RSA check served three requests");
    assert!(plugin.logs().iter().any(|l| l.message.contains(r#""request_id":"r-7""#) && l.message.contains(r#""status":403"#)));
}

#[test]
fn a_bad_bundle_is_refused_by_the_module_with_its_reason() {
    let refused = |config: String| match plugin().plugin_config(config).start() {
        Err(LoadError::Refused { phase, logs, .. }) => {
            assert_eq!(phase, "proxy_on_configure");
            logs.iter().map(|l| l.message.clone()).collect::<Vec<_>>().join("\n")
        }
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("a bad bundle was accepted"),
    };
    assert!(refused(String::new()).contains("no plugin configuration"));
    assert!(refused("{}".into()).contains("not a policy bundle"));
    let mut tampered: serde_json::Value = serde_json::from_str(&bundle_json()).unwrap();
    tampered["table_hash"] = json!("deadbeef");
    assert!(refused(tampered.to_string()).contains("table_hash does not match"));
}

#[test]
fn the_module_fails_closed_for_requests_after_a_refused_configuration() {
    // Envoy would not run a refused plugin at all; if a host did, the module answers 500.
    let module = filter();
    let error = module.plugin().ngx_shm_kv("policy_filter").plugin_config("{}").start().err().unwrap();
    assert!(error.to_string().contains("refused"));
}

fn probe() -> ProxyWasmModule {
    ProxyWasmModule::from_file(workspace::package("vector-probe").unwrap()).unwrap()
}

/// Runs vectors (as probe JSON) through the probe module in batches; one bool per vector.
fn inside_wasm(items: Vec<serde_json::Value>) -> Vec<bool> {
    let count = items.len();
    let mut plugin = probe().plugin().plugin_config(serde_json::to_vec(&items).unwrap()).start().unwrap();
    let mut results = Vec::with_capacity(count);
    for start in (0..count).step_by(8) {
        let end = (start + 8).min(count);
        let outcome = plugin.send(&Request::get(&format!("/check/{start}/{end}")));
        assert!(outcome.guest_failure.is_none(), "{:?}", outcome.guest_failure);
        results.extend(outcome.body_text().chars().map(|c| c == '1'));
    }
    assert_eq!(results.len(), count);
    results
}

#[test]
fn wycheproof_signatures_inside_the_module_match_expectations_and_native() {
    let vectors = signature_vectors();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let items = vectors.iter().map(|v| json!({"jwk": v.jwk, "message": b64(&v.message), "signature": b64(&v.signature)})).collect();
    let results = inside_wasm(items);
    let mismatches: Vec<&str> = vectors.iter().zip(&results).filter(|(v, r)| **r != v.valid).map(|(v, _)| v.id.as_str()).collect();
    assert!(mismatches.is_empty(), "{} of {} mismatched inside wasm: {mismatches:?}", mismatches.len(), vectors.len());
    assert!(vectors.iter().zip(&results).all(|(v, r)| check_signature(v) == *r), "wasm and native agree");
}

#[test]
fn jws_suites_inside_the_module_match_expectations_and_native() {
    if !crate::vectors::shared_vectors_present("jws_suites_inside_the_module_match_expectations_and_native") {
        return;
    }
    let vectors = jws_vectors();
    let contradicted = contradicted(&vectors);
    let results = inside_wasm(vectors.iter().map(|v| json!({"jwk": v.jwk, "jws": v.jws})).collect());
    let mismatches: Vec<&str> = vectors
        .iter()
        .zip(&results)
        .filter(|(v, r)| **r != v.valid && !contradicted.contains(&v.id) && !DELIBERATE.iter().any(|(id, _)| *id == v.id))
        .map(|(v, _)| v.id.as_str())
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:?}");
    assert!(vectors.iter().zip(&results).all(|(v, r)| check_jws(v) == *r), "wasm and native agree");
}

/// `token` with one bit of its signature flipped.
fn forged(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 1;
    format!("{signed}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A token of the partner's ES256 key that may fetch `/billing/inv-1`.
fn partner_es256_token() -> String {
    let claims = crate::mock::claims(json!({"iss": "https://partner.example", "aud": "api.example", "username": "partner-billing", "scope": "billing:read"}));
    jwt_minter::mint(&crate::mock::signer("ES256", "partner-es256.EXAMPLE-ONLY.key"), "ES256", Some("partner-es256"), &claims)
}

/// Sends ana's real and forged RS256 tokens; answers (real forwarded, forged status, the
/// module's statement of who checks RSA signatures).
fn real_and_forged(builder: proxy_wasm_harness::PluginBuilder<'_>) -> (bool, u16, String) {
    real_and_forged_of(builder, &ana_token(), "/users/me", "RS256/384/512")
}

/// The same with any token allowed to GET `path`, and the statement about `algorithms`.
fn real_and_forged_of(builder: proxy_wasm_harness::PluginBuilder<'_>, token: &str, path: &str, algorithms: &str) -> (bool, u16, String) {
    let mut plugin = builder.plugin_config(bundle_json()).now(NOW).start().unwrap();
    let send = |plugin: &mut proxy_wasm_harness::Plugin, token: &str| plugin.send(&Request::get(path).header("authorization", &format!("Bearer {token}")));
    let real = send(&mut plugin, token).forwarded();
    let forged = send(&mut plugin, &forged(token)).status();
    let prefix = format!("{algorithms} signatures are checked");
    let statement = plugin.logs().iter().map(|l| l.message.clone()).find(|m| m.starts_with(&prefix)).unwrap_or_default();
    (real, forged, statement)
}

/// A plugin builder with Envoy's `verify_signature`, and the count of calls it gets.
fn counting_envoy_host() -> (proxy_wasm_harness::PluginBuilder<'static>, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let builder = plugin().foreign_function("verify_signature", move |arguments| {
        counted.fetch_add(1, Ordering::SeqCst);
        proxy_wasm_harness::envoy_functions::verify_signature(arguments)
    });
    (builder, calls)
}

#[test]
fn rsa_signatures_are_checked_by_envoys_verify_signature_when_the_host_has_it() {
    let (builder, calls) = counting_envoy_host();
    let (real, forged, statement) = real_and_forged(builder);
    assert_eq!((real, forged), (true, 401));
    assert!(statement.ends_with("by the proxy (verify_signature)"), "{statement}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3 + 3 + 2, "three self-test calls per family (the bundle has RSA and EC keys), one per token");
}

#[test]
fn ecdsa_signatures_are_checked_by_envoys_verify_signature_when_the_host_has_it() {
    let (builder, calls) = counting_envoy_host();
    let (real, forged, statement) = real_and_forged_of(builder, &partner_es256_token(), "/billing/inv-1", "ES256/384");
    assert_eq!((real, forged), (true, 401));
    assert_eq!(statement, "ES256/384 signatures are checked by the proxy (verify_signature)");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3 + 3 + 2, "self-tests, then one call per token");
}

#[test]
fn ecdsa_is_checked_in_wasm_when_the_host_fails_only_the_ecdsa_self_test() {
    // A host whose verify_signature knows RSA keys only: RSA is offloaded, ECDSA stays in wasm.
    let builder = plugin().foreign_function("verify_signature", |arguments| {
        let is_ec_key = arguments.windows(7).any(|w| w == [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);
        if is_ec_key { Ok(vec![0x12, 0x03, b'b', b'a', b'd']) } else { proxy_wasm_harness::envoy_functions::verify_signature(arguments) }
    });
    let (real, forged, statement) = real_and_forged_of(builder, &partner_es256_token(), "/billing/inv-1", "ES256/384");
    assert_eq!((real, forged), (true, 401));
    assert_eq!(statement, "ES256/384 signatures are checked in wasm");
}

#[test]
fn rsa_signatures_are_checked_in_wasm_when_the_host_lacks_verify_signature() {
    let (real, forged, statement) = real_and_forged(plugin().without_foreign_function("verify_signature"));
    assert_eq!((real, forged), (true, 401));
    assert!(statement.ends_with("in wasm"), "{statement}");
    let (real, forged, statement) =
        real_and_forged_of(plugin().without_foreign_function("verify_signature"), &partner_es256_token(), "/billing/inv-1", "ES256/384");
    assert_eq!((real, forged), (true, 401));
    assert_eq!(statement, "ES256/384 signatures are checked in wasm");
}

#[test]
fn a_host_whose_verify_signature_says_yes_to_everything_is_not_trusted() {
    // result: true, whatever the arguments. The self-test catches it; forged tokens still fail.
    let (real, forged, statement) = real_and_forged(plugin().foreign_function("verify_signature", |_| Ok(vec![0x08, 0x01])));
    assert_eq!((real, forged), (true, 401));
    assert!(statement.ends_with("in wasm"), "{statement}");
}

#[test]
fn a_failing_verify_signature_at_request_time_falls_back_to_wasm() {
    // Passes the self-tests (three calls per family), then fails every call: the module
    // checks in wasm.
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = AtomicUsize::new(0);
    let builder = plugin().foreign_function("verify_signature", move |arguments| {
        if calls.fetch_add(1, Ordering::SeqCst) < 6 {
            proxy_wasm_harness::envoy_functions::verify_signature(arguments)
        } else {
            Err(proxy_wasm_harness::Status::InternalFailure)
        }
    });
    let (real, forged, statement) = real_and_forged(builder);
    assert_eq!((real, forged), (true, 401));
    assert!(statement.ends_with("by the proxy (verify_signature)"), "{statement}");
}

/// The signature crate's referee cases (ring's verdicts on valid, mutated and crafted RSA and
/// ECDSA signatures, fixed seed), through the module's JWK keys inside wasm, where the SIMD
/// lanes are other code than the native loops.
#[test]
fn the_referee_cases_inside_the_module_agree_with_ring() {
    use signatures::referee::{Key as Parts, cases};
    let url = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let cases = cases(0x5eed_2026_1203, 6);
    assert!(cases.len() > 2_000, "{}", cases.len());
    let items = cases
        .iter()
        .map(|case| {
            let jwk = match &case.key {
                Parts::Rsa { n, e } => json!({"kty": "RSA", "kid": "r", "alg": case.alg, "n": url(n), "e": url(e)}),
                Parts::Ec { x, y } => json!({"kty": "EC", "kid": "r", "alg": case.alg, "crv": if x.len() == 32 { "P-256" } else { "P-384" }, "x": url(x), "y": url(y)}),
            };
            json!({"jwk": jwk, "message": b64(&case.message), "signature": b64(&case.signature)})
        })
        .collect();
    let results = inside_wasm(items);
    let disagreements: Vec<&str> = cases.iter().zip(&results).filter(|(case, ours)| **ours != case.ring_accepts).map(|(case, _)| case.name.as_str()).collect();
    assert!(disagreements.is_empty(), "{} of {} disagree with ring inside wasm: {disagreements:?}", disagreements.len(), cases.len());
}
