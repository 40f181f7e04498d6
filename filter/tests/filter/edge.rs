//! Credential exchange at the edge (#17): browsers sent to the login page, tenant mapping,
//! and the minted internal token; natively behind the mock host, and in the module.

use decision_table::bundle::{Bundle, Login, TokenSource};
use policy_filter::engine::Flow;

use crate::mock::{MockHost, ana_token, example_bundle, load, run};

fn with_login() -> Bundle {
    let mut bundle = example_bundle();
    bundle.settings.login = Some(Login {
        url: "https://login.example/sso?realm=acme".into(),
        return_parameter: "return_to".into(),
        paths: vec!["^(?:/users/.*)$".into()],
        return_origins: vec!["https://api.example".into()],
    });
    bundle.settings.token_sources.push(TokenSource::Query { name: "access_token".into() });
    bundle
}

fn browser(path: &str) -> MockHost {
    MockHost::request("GET", path).header("accept", "text/html,application/xhtml+xml;q=0.9").header(":scheme", "https")
}

#[test]
fn issue17_a_browser_without_a_credential_is_sent_to_the_login_page_and_a_machine_gets_401() {
    let loaded = load(&with_login());
    let (flow, host) = run(&loaded, browser("/users/me?tab=profile&access_token=expired.x.y"));
    assert_eq!((flow, host.status()), (Flow::Answered, Some(302)), "a browser with an invalid token logs in again");
    let location = host.response_header("location").unwrap();
    assert!(location.ends_with("return_to=https%3A%2F%2Fapi.example%2Fusers%2Fme%3Ftab%3Dprofile"), "the token never goes to the login page: {location}");

    let (flow, host) = run(&loaded, browser("/users/./me?tab=profile"));
    assert_eq!((flow, host.status()), (Flow::Answered, Some(302)));
    assert_eq!(
        host.response_header("location"),
        Some("https://login.example/sso?realm=acme&return_to=https%3A%2F%2Fapi.example%2Fusers%2Fme%3Ftab%3Dprofile"),
        "the decided path comes back, the login URL's own query kept"
    );
    assert_eq!(host.response_header("cache-control"), Some("no-store"));
    assert_eq!(host.count("policy_filter_login_redirects"), 1);

    // A navigation without Accept (Sec-Fetch-Mode), an expired token in a browser.
    let navigation = MockHost::request("GET", "/users/me").header("sec-fetch-mode", "navigate").header(":scheme", "https");
    assert_eq!(run(&loaded, navigation).1.status(), Some(302));
    let expired = jwt_minter::mint(&crate::mock::platform(), "RS256", Some("platform"), &serde_json::json!({"username": "ana", "iat": 1, "exp": 2}));
    assert_eq!(run(&loaded, browser("/users/me").bearer(&expired)).1.status(), Some(302), "a browser whose token expired logs in again");

    for (what, request) in [
        ("a machine", MockHost::request("GET", "/users/me").header("accept", "application/json")),
        ("a POST", MockHost::request("POST", "/users/me").header("accept", "text/html")),
        ("a path without login", browser("/billing/inv-1")),
        ("a forged Host (open redirect)", browser("/users/me").header(":authority", "evil.example")),
        ("plain http to an https origin", MockHost::request("GET", "/users/me").header("accept", "text/html").header(":scheme", "http")),
    ] {
        let mut request = request;
        if what == "a forged Host (open redirect)" {
            request.headers.retain(|(k, v)| k != ":authority" || v == "evil.example");
        }
        let (_, host) = run(&loaded, request);
        assert_eq!(host.status(), Some(401), "{what}");
        assert!(host.response_header("www-authenticate").is_some(), "{what}: the RFC 6750 challenge");
    }

    // Authenticated browsers are decided as ever.
    let (flow, _) = run(&loaded, browser("/users/me").bearer(&ana_token()));
    assert_eq!(flow, Flow::Continue);
}

fn with_tenants(required: bool) -> Bundle {
    let mut bundle = example_bundle();
    bundle.settings.tenants = Some(decision_table::bundle::TenantMapping {
        id_claims: vec!["client_id".into(), "email".into()],
        entries: [
            ("ana".to_string(), decision_table::bundle::TenantEntry { tenant: "t-ana".into(), scopes: vec!["billing:read".into()] }),
            ("ana@example.com".to_string(), decision_table::bundle::TenantEntry { tenant: "t-mail".into(), scopes: vec![] }),
        ]
        .into(),
        required,
        endpoint: None,
        cache_seconds: 300,
        negative_seconds: 30,
    });
    bundle
}

#[test]
fn issue17_tenant_mapping_gives_the_caller_a_tenant_and_scopes_and_a_required_tenant_refuses_the_rest() {
    let loaded = load(&with_tenants(true));
    let platform = crate::mock::platform();
    let token = |claims: serde_json::Value| jwt_minter::mint(&platform, "RS256", Some("platform"), &crate::mock::claims(claims));

    // By subject; a client's own x-auth-tenant never reaches the upstream.
    let (flow, host) = run(&loaded, MockHost::request("GET", "/users/me").bearer(&ana_token()).header("x-auth-tenant", "t-root"));
    assert_eq!((flow, host.get("x-auth-tenant")), (Flow::Continue, Some("t-ana")));
    // By the first id claim the token has (Compass: email for the identity service's JWT).
    let mail = token(serde_json::json!({"username": "ana", "email": "ana@example.com", "roles": "user"}));
    assert_eq!(run(&loaded, MockHost::request("GET", "/users/me").bearer(&mail)).1.get("x-auth-tenant"), Some("t-mail"));
    // A `tenant` claim counts where no entry maps the caller (its provider may assert it).
    let claimed = token(serde_json::json!({"username": "bob", "tenant": "t-bob", "roles": "user"}));
    assert_eq!(run(&loaded, MockHost::request("GET", "/users/me").bearer(&claimed)).1.get("x-auth-tenant"), Some("t-bob"));

    // Nobody maps root and its token names no tenant: authenticated, refused.
    let root = token(serde_json::json!({"username": "root", "roles": "admin"}));
    let (flow, host) = run(&loaded, MockHost::request("GET", "/users/42").bearer(&root));
    assert_eq!((flow, host.status()), (Flow::Answered, Some(403)));
    assert!(host.logs.iter().any(|l| l.contains(r#""reason":"no_tenant""#)), "{:?}", host.logs);
    // Not required: root goes through, with no tenant header.
    let (flow, host) = run(&load(&with_tenants(false)), MockHost::request("GET", "/users/42").bearer(&root));
    assert_eq!((flow, host.get("x-auth-tenant")), (Flow::Continue, None));
}

fn with_mint(header: &str) -> Bundle {
    use base64::Engine as _;
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    let pem = std::fs::read_to_string(crate::mock::example("keys/mint-ed25519.EXAMPLE-ONLY.key")).unwrap();
    let seed = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap().to_bytes();
    let mut bundle = with_tenants(false);
    bundle.settings.mint = Some(decision_table::bundle::Mint {
        kid: "gateway-1".into(),
        alg: decision_table::bundle::MintAlgorithm::EdDSA,
        private_key: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(seed),
        issuer: "https://gateway.internal".into(),
        audiences: vec!["director".into()],
        ttl_seconds: 60,
        header: header.into(),
    });
    bundle
}

/// Checks a minted token with ring (not the module's verifier) against the key
/// `policy-compiler jwks` publishes; its claims.
fn verified_by_ring(token: &str, bundle: &Bundle) -> serde_json::Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwks = policy_compiler::compile::mint_jwks(&bundle.settings).unwrap();
    let x = b64.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
    let (message, signature) = token.rsplit_once('.').unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, x).verify(message.as_bytes(), &b64.decode(signature).unwrap()).expect("ring verifies the minted token");
    let header: serde_json::Value = serde_json::from_slice(&b64.decode(message.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header, serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "gateway-1"}));
    serde_json::from_slice(&b64.decode(message.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[test]
fn issue17_the_minted_token_carries_exactly_the_decided_identity_and_is_reused_until_near_expiry() {
    let bundle = with_mint("authorization");
    let loaded = load(&bundle);
    let mut cache = policy_filter::cache::TokenCache::new(16);
    let send = |cache: &mut policy_filter::cache::TokenCache, now: u64| {
        let mut host = MockHost::request("GET", "/users/me").bearer(&ana_token()).header("x-auth-tenant", "forged");
        host.now = now;
        assert_eq!(policy_filter::engine::on_request_headers(&loaded, cache, &mut host), Flow::Continue);
        host.get("authorization").unwrap().strip_prefix("Bearer ").unwrap().to_string()
    };
    let now = crate::mock::NOW;
    let minted = send(&mut cache, now);
    assert_ne!(minted, ana_token(), "the caller's own token does not go upstream");
    let claims = verified_by_ring(&minted, &bundle);
    let jti = claims["jti"].clone();
    assert_eq!(
        claims,
        serde_json::json!({"iss": "https://gateway.internal", "aud": "director", "sub": "ana", "iat": now, "exp": now + 60, "jti": jti,
                           "provider": "keysDir", "scopes": ["billing:read"], "roles": ["user"], "tenant": "t-ana"}),
        "the decided identity: the mapped tenant and scopes, never the client's header"
    );
    assert_eq!(send(&mut cache, now + 49), minted, "reused while more than ten seconds are left");
    let renewed = send(&mut cache, now + 51);
    assert_ne!(renewed, minted);
    assert_eq!(verified_by_ring(&renewed, &bundle)["iat"], now + 51);

    // In another header, as the bare token; a client's copy of that header never arrives.
    let loaded = load(&with_mint("x-id-token"));
    let (_, host) = run(&loaded, MockHost::request("GET", "/users/me").bearer(&ana_token()).header("x-id-token", "forged"));
    let token = host.get("x-id-token").unwrap();
    assert_eq!(verified_by_ring(token, &with_mint("x-id-token"))["sub"], "ana");
    let (_, bypassed) = run(&loaded, MockHost::request("GET", "/health").header("x-id-token", "forged"));
    assert_eq!(bypassed.get("x-id-token"), None, "stripped on a bypassed path too");
}

/// The same in the real module, under each host profile: the login redirect, the tenant
/// header and the minted token, as the upstream receives them.
#[test]
fn issue17_in_the_module_under_both_hosts() {
    use proxy_wasm_harness::{HostProfile, Request};
    let mut bundle = with_mint("authorization");
    bundle.settings.login = with_login().settings.login;
    for host in [HostProfile::Envoy, HostProfile::NgxWasmModule] {
        let mut configured = bundle.clone();
        configured.settings.host =
            if host == HostProfile::Envoy { decision_table::bundle::ProxyHost::Envoy } else { decision_table::bundle::ProxyHost::NgxWasmModule };
        let mut plugin = crate::wasm::plugin().host(host).plugin_config(serde_json::to_string(&configured).unwrap()).now(crate::mock::NOW).start().unwrap();
        let name = host.name();

        let browser = plugin.send(&Request::get("/users/me").authority("api.example").header("accept", "text/html"));
        assert_eq!(browser.status(), 302, "{name}");
        assert!(browser.response_header("location").unwrap().starts_with("https://login.example/sso?realm=acme&return_to=https%3A%2F%2Fapi.example%2Fusers%2Fme"), "{name}");
        let machine = plugin.send(&Request::get("/users/me").authority("api.example"));
        assert_eq!(machine.status(), 401, "{name}");

        let allowed = plugin.send(&Request::get("/users/me").authority("api.example").header("authorization", &format!("Bearer {}", ana_token())).header("x-auth-tenant", "forged"));
        assert!(allowed.forwarded(), "{name}");
        let values: Vec<&str> = allowed.upstream_header_values("x-auth-tenant").into_iter().filter(|v| !v.is_empty()).collect();
        assert_eq!(values, ["t-ana"], "{name}");
        let authorization: Vec<&str> = allowed.upstream_header_values("authorization").into_iter().filter(|v| !v.is_empty()).collect();
        assert_eq!(authorization.len(), 1, "{name}: one credential upstream, the minted one");
        let claims = verified_by_ring(authorization[0].strip_prefix("Bearer ").unwrap(), &bundle);
        assert_eq!((claims["sub"].as_str(), claims["tenant"].as_str()), (Some("ana"), Some("t-ana")), "{name}");
    }
}

const HYDRA: &str = "hydra.example:443";

fn with_introspection() -> Bundle {
    let mut bundle = with_tenants(false);
    bundle.settings.tenants.as_mut().unwrap().entries.insert(
        "billing-client".into(),
        decision_table::bundle::TenantEntry { tenant: "t-billing".into(), scopes: vec!["billing:read".into()] },
    );
    // The example's idp provider, authenticating by introspection instead (the policies that
    // name `idp` apply to its callers).
    bundle.providers.retain(|p| p.name != "idp");
    bundle.providers.push(decision_table::bundle::Provider {
        name: "idp".into(),
        issuer: Some("https://hydra.example/".into()),
        audiences: vec!["api.example".into()],
        keys: vec![],
        may_assert: decision_table::bundle::MayAssert::Any,
        jwks: None,
        revocation: Default::default(),
        introspection: Some(decision_table::bundle::Introspection {
            endpoint: decision_table::bundle::Endpoint::new(HYDRA, "hydra.example", "/oauth2/introspect", "https"),
            client_id: "gateway".into(),
            client_secret: "s3cret:&=".into(),
            client_auth: decision_table::bundle::ClientAuth::Basic,
            cache_seconds: 300,
            negative_seconds: 10,
            all_tokens: false,
        }),
        basic: None,
    });
    bundle
}

fn active(extra: serde_json::Value) -> Vec<u8> {
    let mut answer = serde_json::json!({"active": true, "iss": "https://hydra.example/", "aud": ["api.example"], "username": "ana",
        "scope": "billing:read offline", "client_id": "web", "roles": "user", "exp": crate::mock::NOW + 600});
    answer.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    answer.to_string().into_bytes()
}

/// One request with `token`, answered by the introspection endpoint with (status, body)
/// when it asks: the host after it, and how many callouts it made.
fn introspected(loaded: &policy_filter::config::Loaded, cache: &mut policy_filter::cache::TokenCache, token: &str, now: u64, answer: (Option<u16>, Option<Vec<u8>>)) -> (Flow, MockHost) {
    let mut host = MockHost::request("GET", "/users/me").bearer(token);
    host.now = now;
    let mut flow = policy_filter::engine::on_request_headers(loaded, cache, &mut host);
    if let Flow::Dispatched(callout) = flow {
        flow = policy_filter::engine::on_callout_answer(loaded, cache, &mut host, callout, answer.0, answer.1.as_deref());
    }
    (flow, host)
}

#[test]
fn issue17_an_opaque_token_is_introspected_once_and_its_answer_decides() {
    let loaded = load(&with_introspection());
    let mut cache = policy_filter::cache::TokenCache::with_rejected(16, 16);
    let now = crate::mock::NOW;
    let opaque = "ory_at_4kd8fJ2-opaque";
    let (flow, host) = introspected(&loaded, &mut cache, opaque, now, (Some(200), Some(active(serde_json::json!({})))));
    assert_eq!(flow, Flow::Continue);
    assert_eq!((host.get("x-auth-username"), host.get("x-auth-roles")), (Some("ana"), Some("user")));
    let (upstream, headers, body) = &host.dispatched[0];
    assert_eq!(upstream, HYDRA);
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!((header(":method"), header(":path"), header("content-type")), (Some("POST"), Some("/oauth2/introspect"), Some("application/x-www-form-urlencoded")));
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("gateway:s3cret%3A%26%3D");
    assert_eq!(header("authorization"), Some(format!("Basic {basic}").as_str()), "RFC 6749 2.3.1: form-encoded, then base64");
    assert_eq!(String::from_utf8_lossy(body), "token=ory_at_4kd8fJ2-opaque&token_type_hint=access_token");

    // Cached: the next request costs no callout, until min(exp, cache_seconds).
    let (flow, host) = introspected(&loaded, &mut cache, opaque, now + 299, (None, None));
    assert_eq!((flow, host.dispatched.len()), (Flow::Continue, 0));
    let (_, host) = introspected(&loaded, &mut cache, opaque, now + 301, (Some(200), Some(active(serde_json::json!({})))));
    assert_eq!(host.dispatched.len(), 1, "asked again after cache_seconds");

    // A JWS still goes to its issuer's keys.
    let (flow, host) = introspected(&loaded, &mut cache, &ana_token(), now, (None, None));
    assert_eq!((flow, host.dispatched.len()), (Flow::Continue, 0));

    // A client-credentials token: the client is the subject, mapped to its tenant.
    let client = serde_json::json!({"active": true, "aud": "api.example", "client_id": "billing-client", "scope": "billing:read"});
    let (flow, host) = introspected(&loaded, &mut cache, "client-token-1", now, (Some(200), Some(client.to_string().into_bytes())));
    assert_eq!((flow, host.get("x-auth-username"), host.get("x-auth-tenant")), (Flow::Answered, None, None), "no policy lets a client read /users/me");
    assert!(host.logs.iter().any(|l| l.contains(r#""subject":"billing-client""#)), "{:?}", host.logs);
}

#[test]
fn issue17_inactive_expired_or_misaddressed_is_401_and_an_endpoint_that_cannot_say_is_503() {
    let loaded = load(&with_introspection());
    let now = crate::mock::NOW;
    let refusals = [
        ("inactive", (Some(200), Some(br#"{"active": false}"#.to_vec())), "the token is not active"),
        ("expired", (Some(200), Some(active(serde_json::json!({"exp": now - 120})))), "the token has expired"),
        ("another audience", (Some(200), Some(active(serde_json::json!({"aud": "other.example"})))), "not meant for this audience"),
        ("another issuer", (Some(200), Some(active(serde_json::json!({"iss": "https://evil.example/"})))), "issuer is not trusted"),
    ];
    for (what, answer, description) in refusals {
        let mut cache = policy_filter::cache::TokenCache::with_rejected(16, 16);
        let (flow, host) = introspected(&loaded, &mut cache, "opaque-1", now, answer);
        assert_eq!((flow, host.status()), (Flow::Answered, Some(401)), "{what}");
        assert!(host.response_header("www-authenticate").unwrap().contains(description), "{what}: {:?}", host.response);
        if what == "inactive" {
            let (_, again) = introspected(&loaded, &mut cache, "opaque-1", now + 9, (None, None));
            assert_eq!((again.status(), again.dispatched.len()), (Some(401), 0), "remembered for negative_seconds");
            let (_, later) = introspected(&loaded, &mut cache, "opaque-1", now + 10, (Some(200), Some(active(serde_json::json!({})))));
            assert_eq!((later.status(), later.dispatched.len()), (None, 1), "then asked again");
        }
    }
    let unavailable = [
        ("a timeout or reset", (None, None)),
        ("a 500", (Some(500), Some(b"oops".to_vec()))),
        ("a 401 (the gateway's own credentials)", (Some(401), Some(Vec::new()))),
        ("not JSON", (Some(200), Some(b"<html>".to_vec()))),
        ("no active member", (Some(200), Some(br#"{"sub": "ana"}"#.to_vec()))),
        ("active as a string", (Some(200), Some(br#"{"active": "true", "sub": "ana"}"#.to_vec()))),
        ("over max_bytes", (Some(200), None)),
    ];
    for (what, answer) in unavailable {
        let mut cache = policy_filter::cache::TokenCache::with_rejected(16, 16);
        let (flow, host) = introspected(&loaded, &mut cache, "opaque-2", now, answer);
        assert_eq!((flow, host.status()), (Flow::Answered, Some(503)), "{what}: never a pass, and not the caller's fault");
        assert_eq!(host.response_header("retry-after"), Some("1"), "{what}");
        let (_, again) = introspected(&loaded, &mut cache, "opaque-2", now, (Some(200), Some(active(serde_json::json!({})))));
        assert_eq!((again.status(), again.dispatched.len()), (None, 1), "{what}: not remembered");
    }
}

/// Introspection in the real module: the request waits for the callout (paused), then goes
/// upstream with the identity the answer gave, under each host's rules for a dispatch from a
/// request (ngx_wasm_module pauses it itself and allows the dispatch in on_request_headers).
#[test]
fn issue17_introspection_in_the_module_under_both_hosts() {
    use proxy_wasm_harness::{CallReply, HostProfile, Request, Response};
    for host in [HostProfile::Envoy, HostProfile::NgxWasmModule] {
        let mut bundle = with_introspection();
        bundle.settings.host =
            if host == HostProfile::Envoy { decision_table::bundle::ProxyHost::Envoy } else { decision_table::bundle::ProxyHost::NgxWasmModule };
        let name = host.name();
        for (reply, status) in [
            (CallReply::Respond(Response::new(200).body(active(serde_json::json!({})))), 200),
            (CallReply::Respond(Response::new(200).body(r#"{"active":false}"#)), 401),
            (CallReply::Fail, 503),
            (CallReply::Timeout, 503),
        ] {
            let answer = reply.clone();
            let mut plugin = crate::wasm::plugin()
                .host(host)
                .plugin_config(serde_json::to_string(&bundle).unwrap())
                .now(crate::mock::NOW)
                .cluster(HYDRA, move |_| answer.clone())
                .start()
                .unwrap();
            let request = Request::get("/users/me").header("authorization", "Bearer ory_at_opaque-7").header("x-auth-username", "root");
            let outcome = plugin.send(&request);
            assert_eq!((outcome.status(), outcome.forwarded()), (status, status == 200), "{name}: {reply:?}");
            assert_eq!(plugin.http_calls().len(), 1, "{name}");
            assert!(plugin.failure().is_none(), "{name}: {:?}", plugin.failure());
            if status == 200 {
                let users: Vec<&str> = outcome.upstream_header_values("x-auth-username").into_iter().filter(|v| !v.is_empty()).collect();
                assert_eq!(users, ["ana"], "{name}: the answer's identity, never the client's");
                let again = plugin.send(&request);
                assert!(again.forwarded(), "{name}");
                assert_eq!(plugin.http_calls().len(), 1, "{name}: the second request is answered from the cache");
            }
        }
    }
}
