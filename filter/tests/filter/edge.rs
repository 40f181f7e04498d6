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
