//! Every attack on the token the issue names, each refused with 401 (and none reaching the
//! upstream), plus the cases that must still pass. Each attempt runs natively and in the real
//! module under every host profile of the harness, which must answer alike.

use std::cell::RefCell;

use jwt_minter::{encode, mint, mint_raw};
use policy_filter::engine::Flow;
use proxy_wasm_harness::{HostProfile, Plugin, Request};
use serde_json::json;

use crate::mock::{MockHost, NOW, ana_token, claims, example_bundle, load, platform, run, signer};

thread_local! {
    /// The module under each host, started once per test thread (a token cache between
    /// attempts is harmless: a forged token is never the cached one).
    static IN_WASM: RefCell<Vec<(HostProfile, Plugin)>> = RefCell::new(
        [HostProfile::Envoy, HostProfile::NgxWasmModule]
            .into_iter()
            .map(|host| {
                let bundle = serde_json::to_string(&example_bundle()).unwrap();
                (host, crate::wasm::plugin().host(host).plugin_config(bundle).now(NOW).start().unwrap())
            })
            .collect(),
    );
}

/// Sends `token` for ana's profile and returns (status or 200 when forwarded, the challenge),
/// after checking that the module answers the same under every host.
fn attempt(token: &str) -> (u32, String) {
    let loaded = load(&example_bundle());
    let (flow, host) = run(&loaded, MockHost::request("GET", "/users/me").bearer(token));
    let native = match flow {
        Flow::Continue => (200, String::new()),
        Flow::Answered => (host.status().unwrap(), host.response_header("www-authenticate").unwrap_or_default().to_string()),
        Flow::Dispatched(_) => panic!("no provider of the example introspects"),
    };
    IN_WASM.with(|plugins| {
        for (host, plugin) in plugins.borrow_mut().iter_mut() {
            let outcome = plugin.send(&Request::get("/users/me").header("authorization", &format!("Bearer {token}")));
            if outcome.answered_by_proxy {
                // NGINX refused it before the module ran (a NUL in a header): refused either way.
                assert!(native.0 != 200 && !outcome.forwarded(), "{}: {token:?}", host.name());
                continue;
            }
            let status = if outcome.forwarded() { 200 } else { u32::from(outcome.status()) };
            let challenge = if outcome.forwarded() { String::new() } else { outcome.response_header("www-authenticate").unwrap_or_default().to_string() };
            assert_eq!((status, challenge), native, "{}: the module disagrees with the native run on {token:?}", host.name());
        }
    });
    native
}

fn refused(token: &str, description: &str) {
    let (status, challenge) = attempt(token);
    assert_eq!(status, 401, "{description}: expected 401");
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
    assert!(challenge.contains(description), "expected {description:?} in {challenge}");
}

#[test]
fn a_valid_token_passes() {
    assert_eq!(attempt(&ana_token()).0, 200);
}

#[test]
fn alg_none_is_refused() {
    let token = format!("{}.{}.", encode(br#"{"alg":"none","kid":"platform"}"#), encode(claims(json!({"username": "ana", "roles": "user"})).to_string().as_bytes()));
    refused(&token, "the token's algorithm is not accepted");
    let capitalised = format!("{}.{}.", encode(br#"{"alg":"None"}"#), encode(claims(json!({"username": "ana"})).to_string().as_bytes()));
    assert_eq!(attempt(&capitalised).0, 401);
}

#[test]
fn key_confusion_hs256_with_the_rsa_public_key_is_refused() {
    // The classic attack: sign HS256 with the RSA public key's bytes as the HMAC secret.
    let public_pem = std::fs::read(crate::mock::example("keys/platform.pub")).unwrap();
    let forger = jwt_minter::Signer::from_bytes("HS256", &public_pem).unwrap();
    let payload = claims(json!({"username": "root", "roles": "admin"}));
    refused(&mint(&forger, "HS256", Some("platform"), &payload), "the token's algorithm does not match its key");
    refused(&mint(&forger, "HS256", None, &payload), "the token was not signed by a trusted key");
}

#[test]
fn an_algorithm_other_than_the_keys_is_refused_even_with_a_valid_signature() {
    // PS256 signed by the platform key, whose one algorithm is RS256.
    let ps256 = signer("PS256", "platform.EXAMPLE-ONLY.key");
    refused(&mint(&ps256, "PS256", Some("platform"), &claims(json!({"username": "ana"}))), "does not match its key");
}

#[test]
fn unknown_kids_and_foreign_keys_are_refused() {
    refused(&mint(&platform(), "RS256", Some("../../dev/null"), &claims(json!({"username": "ana"}))), "not signed by a trusted key");
    // A partner key signing a token that claims no issuer: the issuer-less provider (keysDir)
    // has no such key.
    let es256 = signer("ES256", "partner-es256.EXAMPLE-ONLY.key");
    refused(&mint(&es256, "ES256", Some("partner-es256"), &claims(json!({"username": "ana"}))), "not signed by a trusted key");
}

#[test]
fn embedded_jwk_jku_and_x5u_are_never_used() {
    // The attacker signs with their own key and ships its public half in the header.
    let attacker = signer("EdDSA", "partner-eddsa.EXAMPLE-ONLY.key");
    let header = json!({"alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}, "jku": "https://evil.example/jwks", "x5u": "https://evil.example/cert"});
    let token = mint_raw(&attacker, &header.to_string(), &claims(json!({"username": "root", "roles": "admin"})).to_string());
    refused(&token, "not signed by a trusted key");
}

#[test]
fn crit_headers_are_refused() {
    let header = json!({"alg": "RS256", "kid": "platform", "crit": ["exp"]});
    refused(&mint_raw(&platform(), &header.to_string(), &claims(json!({"username": "ana"})).to_string()), "critical header");
}

#[test]
fn header_fields_of_the_wrong_type_or_no_alg_are_refused() {
    let payload = claims(json!({"username": "ana", "roles": "user"})).to_string();
    for header in [
        json!({"alg": "RS256", "kid": 7}),
        json!({"alg": ["RS256"], "kid": "platform"}),
        json!({"alg": "RS256", "kid": "platform", "typ": 1}),
        json!({"alg": "RS256", "kid": "platform", "cty": {}}),
    ] {
        refused(&mint_raw(&platform(), &header.to_string(), &payload), "header field has the wrong type");
    }
    refused(&mint_raw(&platform(), r#"{"kid":"platform"}"#, &payload), "the token header has no alg");
    refused(&mint_raw(&platform(), r#"["RS256"]"#, &payload), "header is not valid JSON");
    // The same token with a well-formed header passes: the refusals above are the header's.
    assert_eq!(attempt(&mint_raw(&platform(), r#"{"alg":"RS256","kid":"platform","typ":"JWT"}"#, &payload)).0, 200);
}

#[test]
fn duplicate_json_keys_are_refused() {
    let payload = format!(r#"{{"username":"ana","roles":"user","roles":"admin","iat":{},"exp":{}}}"#, NOW - 60, NOW + 3600);
    refused(&mint_raw(&platform(), r#"{"alg":"RS256","kid":"platform"}"#, &payload), "claims are not valid JSON");
    let header = r#"{"alg":"RS256","kid":"platform","kid":"other"}"#;
    refused(&mint_raw(&platform(), header, &claims(json!({"username": "ana"})).to_string()), "header is not valid JSON");
}

#[test]
fn tampering_with_the_payload_or_signature_is_caught() {
    let token = ana_token();
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims = encode(claims(json!({"username": "ana", "roles": "admin"})).to_string().as_bytes());
    refused(&format!("{}.{}.{}", parts[0], forged_claims, parts[2]), "signature is invalid");
    let mut signature = parts[2].to_string();
    let last = if signature.ends_with('A') { 'B' } else { 'A' };
    signature.pop();
    signature.push(last);
    refused(&format!("{}.{}.{signature}", parts[0], parts[1]), "signature is invalid");
    refused(&format!("{}.{}.", parts[0], parts[1]), "signature is invalid");
    assert_eq!(attempt(&format!("{}.{}", parts[0], parts[1])).0, 401, "two segments");
    assert_eq!(attempt(&format!("{token}.extra")).0, 401, "four segments");
    assert_eq!(attempt(&format!("{}=", token)).0, 401, "padding");
}

#[test]
fn time_claims_are_checked_on_the_host_clock_with_bounded_skew() {
    let sign = |extra: serde_json::Value| mint(&platform(), "RS256", Some("platform"), &extra);
    refused(&sign(json!({"username": "ana", "iat": NOW - 7200, "exp": NOW - 61})), "expired");
    assert_eq!(attempt(&sign(json!({"username": "ana", "roles": "user", "iat": NOW - 7200, "exp": NOW - 30}))).0, 200, "within the 60 s skew");
    refused(&sign(json!({"username": "ana", "iat": NOW - 60})), "no expiry");
    refused(&sign(json!({"username": "ana", "nbf": NOW + 600, "exp": NOW + 3600})), "not valid yet");
    refused(&sign(json!({"username": "ana", "iat": NOW + 600, "exp": NOW + 3600})), "issued in the future");
    refused(&sign(json!({"username": "ana", "iat": NOW, "exp": NOW + 30 * 86400})), "lifetime is too long");
    refused(&sign(json!({"username": "ana", "exp": "tomorrow"})), "not a number");
    refused(&sign(json!({"username": "ana", "exp": -5})), "not a valid NumericDate");
    assert_eq!(attempt(&sign(json!({"username": "ana", "roles": "user", "exp": (NOW + 600) as f64 + 0.5}))).0, 200, "a fractional exp is a NumericDate");
}

#[test]
fn issuer_and_audience_are_checked() {
    let es256 = signer("ES256", "partner-es256.EXAMPLE-ONLY.key");
    let partner = |iss: &str, aud: serde_json::Value| {
        mint(&es256, "ES256", Some("partner-es256"), &claims(json!({"iss": iss, "aud": aud, "username": "partner-billing", "scope": "billing:read"})))
    };
    let loaded = load(&example_bundle());
    let fetch = |token: String| run(&loaded, MockHost::request("GET", "/billing/inv-1").bearer(&token)).0;
    assert_eq!(fetch(partner("https://partner.example", json!("api.example"))), Flow::Continue, "a string aud");
    assert_eq!(fetch(partner("https://partner.example", json!(["other", "api.example"]))), Flow::Continue, "an array aud");
    assert_eq!(fetch(partner("https://partner.example", json!(["other"]))), Flow::Answered);
    assert_eq!(fetch(partner("https://partner.example", json!(null))), Flow::Answered);
    // Another issuer falls to the issuer-less keysDir provider, which lacks the partner's key.
    assert_eq!(fetch(partner("https://evil.example", json!("api.example"))), Flow::Answered);
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let huge = claims(json!({"username": "ana", "roles": "user", "padding": "x".repeat(9000)}));
    refused(&mint(&platform(), "RS256", Some("platform"), &huge), "too large");
}

#[test]
fn garbage_never_panics() {
    for token in ["", ".", "..", "a.b.c", "eyJ.eyJ.eyJ", "\u{0}", "Bearer", &"A".repeat(5000)] {
        assert_eq!(attempt(token).0, 401, "{token:?}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

    #[test]
    fn arbitrary_tokens_are_refused_without_panicking(token in "[A-Za-z0-9_.=-]{0,300}") {
        let (status, _) = attempt(&token);
        proptest::prop_assert!(status == 401);
    }
}

#[test]
fn a_client_ip_claim_cannot_stand_in_for_the_proxys_client_address() {
    // internal-network-metrics admits services from 10.0.0.0/8. A service token claiming
    // `clientIP: 10.0.0.1` must not pass when the proxy reports an outside address, or none.
    let loaded = load(&example_bundle());
    let secret = signer("HS256", "internal-hs256.secret");
    let token = mint(&secret, "HS256", Some("internal-1"), &claims(json!({"iss": "internal", "username": "scraper", "roles": ["service"], "clientIP": "10.0.0.1"})));
    let request = || MockHost::request("GET", "/internal/metrics").bearer(&token);
    assert_eq!(run(&loaded, request()).1.status(), Some(403), "no address from the proxy: the CIDR condition fails");
    assert_eq!(run(&loaded, request().property("source.address", b"203.0.113.9:4000")).1.status(), Some(403));
    let (flow, inside) = run(&loaded, request().property("source.address", b"10.9.8.7:4000"));
    assert_eq!((flow, inside.status()), (Flow::Continue, None), "the real address still decides");
    assert_eq!(*inside.properties_asked.borrow(), ["source.address"], "asked once, for the CIDR condition");
}
