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
