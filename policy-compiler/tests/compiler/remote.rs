//! Remote key sets and revocation lists (issue 16): what the compiler writes from `jwks_uri`
//! and `revocation`, what it refuses and warns about, and what `inspect` and `explain` say.

use std::process::{Command, Output};

use decision_table::bundle::Endpoint;
use policy_compiler::{compile, source};
use serde_json::{Value, json};

use crate::{example, scratch};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_policy-compiler")).args(args).output().unwrap()
}

fn idp(extra: Value) -> Value {
    let mut provider = json!({"name": "idp", "issuer": "https://idp.example", "may_assert": "any"});
    provider.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    provider
}

fn file_with(name: &str, provider: Value) -> std::path::PathBuf {
    let policy = json!({"id": "users", "resources": ["/users/me"], "actions": ["api:read"], "effect": "allow", "subjects": ["<.+>"]});
    scratch(name, &json!({"security": {"acl": {"policies": [policy]}}, "filter": {"providers": [provider]}}).to_string())
}

fn compiled(name: &str, provider: Value) -> Result<decision_table::bundle::Provider, Vec<String>> {
    let file = source::read(&file_with(name, provider)).map_err(|e| vec![format!("{e:?}")])?;
    compile::bundle(&file).map(|(bundle, _)| bundle.providers[0].clone()).map_err(|problems| problems.into_iter().map(|p| p.message).collect())
}

#[test]
fn a_jwks_uri_becomes_an_endpoint_with_defaults_and_settings() {
    let provider = compiled("jwks.json", idp(json!({"jwks_uri": "https://idp.example/realms/acme/certs?v=2"}))).unwrap();
    let jwks = provider.jwks.unwrap();
    assert_eq!(jwks.endpoint, Endpoint::new("idp.example:443", "idp.example", "/realms/acme/certs?v=2", "https"));
    assert_eq!((jwks.unknown_kid_seconds, jwks.max_keys, provider.keys.len()), (30, 32, 0), "a remote set alone is enough");

    let tuned = idp(json!({
        "jwks_uri": "http://10.0.0.5:8080/certs",
        "jwks": {"upstream": "outbound|8080||keycloak.auth.svc", "timeout_ms": 800, "refresh_seconds": 120, "min_refresh_seconds": 60,
                 "max_refresh_seconds": 3600, "retry_seconds": 5, "max_bytes": 65536, "algorithms": ["PS256"], "unknown_kid_seconds": 10, "max_keys": 8}
    }));
    let jwks = compiled("tuned.json", tuned).unwrap().jwks.unwrap();
    let expected = Endpoint {
        timeout_ms: 800,
        max_bytes: 65536,
        refresh_seconds: 120,
        min_refresh_seconds: 60,
        max_refresh_seconds: 3600,
        retry_seconds: 5,
        ..Endpoint::new("outbound|8080||keycloak.auth.svc", "10.0.0.5:8080", "/certs", "http")
    };
    assert_eq!((jwks.endpoint, jwks.algorithms, jwks.unknown_kid_seconds, jwks.max_keys), (expected, vec!["PS256".to_string()], 10, 8));
}

#[test]
fn discovery_reads_the_issuers_openid_configuration() {
    let provider = compiled("discovery.json", idp(json!({"issuer": "https://idp.example/realms/acme/", "jwks": {"discovery": true}}))).unwrap();
    let jwks = provider.jwks.unwrap();
    assert!(jwks.discovery);
    assert_eq!(jwks.endpoint, Endpoint::new("idp.example:443", "idp.example", "/realms/acme/.well-known/openid-configuration", "https"));
    let both = compiled("both.json", idp(json!({"jwks_uri": "https://idp.example/c", "jwks": {"discovery": true}}))).unwrap_err();
    assert!(both.iter().any(|e| e.contains("give jwks_uri or discovery, not both")), "{both:?}");
    let no_url = compiled("no-url.json", idp(json!({"issuer": "internal", "jwks": {"discovery": true}}))).unwrap_err();
    assert!(no_url.iter().any(|e| e.contains("discovery needs an issuer that is an http(s) URL")), "{no_url:?}");
}

#[test]
fn mistakes_in_remote_settings_are_errors_that_say_what_is_wrong() {
    let cases = [
        (json!({"jwks_uri": "ftp://idp.example/certs"}), "the scheme must be https or http"),
        (json!({"jwks_uri": "idp.example/certs"}), "is not an absolute http(s) URI"),
        (json!({"jwks_uri": "https://user:pw@idp.example/certs"}), "no user information"),
        (json!({"jwks_uri": "https://idp.example/certs#keys"}), "a fragment is never sent"),
        (json!({"jwks": {"timeout_ms": 100}}), "is set without a jwks_uri (or discovery: true)"),
        (json!({"jwks_uri": "https://idp.example/c", "jwks": {"algorithms": ["HS256"]}}), "not an asymmetric JWS algorithm"),
        (json!({"jwks_uri": "https://idp.example/c", "jwks": {"min_refresh_seconds": 600, "max_refresh_seconds": 60}}), "min_refresh_seconds must be at least 1 and at most"),
        (json!({"jwks_uri": "https://idp.example/c", "jwks": {"timeout_ms": 0}}), "timeout_ms must be 1..=60000"),
        (json!({"jwks_uri": "https://idp.example/c", "jwks": {"max_keys": 0}}), "max_keys must be 1..=256"),
        (json!({"jwks_uri": "https://idp.example/c", "jwks": {"unknown_kid_seconds": 1}}), "unknown_kid_seconds must be at least 5"),
        (json!({"jwks_uri": "https://idp.example/c", "jwks": {"max_bytes": 2_000_000}}), "max_bytes must be 1..=1048576"),
        (json!({"jwks_uri": "https://idp.example/c", "revocation": {"max_list_age_seconds": 60}}), "max_list_age_seconds needs a list_uri"),
        (json!({"jwks_uri": "https://idp.example/c", "revocation": {"list_uri": "https://idp.example/r", "max_list_age_seconds": 60}}), "must exceed the list's refresh_seconds plus retry_seconds"),
        (json!({}), "has no keys (and no jwks_uri, introspection or basic)"),
        (json!({"jwks_uri": "https://idp.example/c", "revocation": {"list": {"timeout_ms": 5}}}), "list is set without a list_uri"),
        (json!({"jwks_uri": "https://idp.example/c", "revocation": {"token_ids": [""]}}), "an empty token id or subject"),
    ];
    for (at, (extra, expected)) in cases.into_iter().enumerate() {
        let errors = compiled(&format!("mistake-{at}.json"), idp(extra.clone())).unwrap_err();
        assert!(errors.iter().any(|e| e.contains(expected)), "{extra}: {errors:?}");
    }
    let unknown = file_with("unknown-field.json", idp(json!({"jwks_uri": "https://idp.example/c", "jwks": {"refresh": 5}})));
    assert!(source::read(&unknown).is_err(), "an unknown field in jwks is refused");
}

#[test]
fn revocation_lists_compile_and_plain_http_fetches_are_warned_about() {
    let revocation = json!({"token_ids": ["t-1"], "subjects": {"mallory": null, "bob": 1800000000},
                            "list_uri": "http://revocations.internal/list", "list": {"refresh_seconds": 30, "min_refresh_seconds": 10}});
    let file = file_with("revocation.json", idp(json!({"jwks_uri": "https://idp.example/c", "revocation": revocation})));
    let provider = compiled("revocation.json", idp(json!({"jwks_uri": "https://idp.example/c", "revocation": revocation}))).unwrap();
    assert_eq!(provider.revocation.token_ids, ["t-1"]);
    assert_eq!(provider.revocation.subjects, [("bob".to_string(), Some(1_800_000_000)), ("mallory".to_string(), None)].into());
    let list = provider.revocation.endpoint.unwrap();
    assert_eq!((list.upstream.as_str(), list.refresh_seconds, list.min_refresh_seconds), ("revocations.internal:80", 30, 10));

    let output = run(&["--format", "json", "check", file.to_str().unwrap()]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let warned: Vec<&str> = report["problems"].as_array().unwrap().iter().filter(|p| p["code"] == "plain-http-fetch").map(|p| p["message"].as_str().unwrap()).collect();
    assert_eq!(warned, ["provider \"idp\": its revocation list is fetched over plain http (revocations.internal/list)"]);
}

#[test]
fn inspect_shows_the_endpoints_and_explain_applies_the_bundles_revocations() {
    let config = example("config.json");
    let bundle = scratch("example-bundle.json", &String::from_utf8(run(&["compile", config.to_str().unwrap()]).stdout).unwrap());
    let inspected = String::from_utf8(run(&["inspect", bundle.to_str().unwrap()]).stdout).unwrap();
    assert!(inspected.contains("    jwks: https://idp.example/realms/acme/protocol/openid-connect/certs via idp.example:443 (refresh 300 s"), "{inspected}");
    assert!(inspected.contains("    revoked: 1 token ids, 2 subjects"), "{inspected}");
    assert!(inspected.contains("    revocation list: https://idp.example/realms/acme/revocations via idp.example:443 (refresh 30 s"), "{inspected}");

    let explain = |claims: Value| {
        let output = run(&["explain", config.to_str().unwrap(), "--path", "/users/me", "--claims", &claims.to_string()]);
        String::from_utf8(output.stdout).unwrap()
    };
    let issuer = "https://idp.example/realms/acme";
    let allowed = explain(json!({"iss": issuer, "sub": "ana", "roles": "user"}));
    assert!(allowed.contains("ALLOW"), "{allowed}");
    assert!(allowed.contains("note: provider \"idp\" takes its keys from https://idp.example/realms/acme/protocol/openid-connect/certs at run time"), "{allowed}");
    assert!(allowed.contains("also fetches a revocation list at run time"), "{allowed}");
    assert!(explain(json!({"iss": issuer, "sub": "ana", "roles": "user", "jti": "leaked-7f3a"})).contains("401: the token has been revoked"));
    assert!(explain(json!({"iss": issuer, "sub": "mallory", "roles": "user"})).contains("401: the token has been revoked"));
    assert!(explain(json!({"iss": issuer, "sub": "bob", "roles": "user", "iat": 1_799_999_999})).contains("401: the token has been revoked"));
    assert!(explain(json!({"iss": issuer, "sub": "bob", "roles": "user", "iat": 1_800_000_000})).contains("ALLOW"), "issued at the re-enablement");
}
