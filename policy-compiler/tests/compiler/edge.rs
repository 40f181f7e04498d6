//! Credential exchange at the edge (issue 17): the tenant mapping in Compass's ConfigMap form
//! and the login redirect, as the compiler reads them and `explain` applies them.

use std::process::Command;

use policy_compiler::{compile, source};
use serde_json::json;

use crate::scratch;

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: compass-tenant-mapping
data:
  users.yaml: |
    admin@kyma.cx:
        tenant: edf2e0c0-58b1-45c6-b345-fabc9774600c
        scopes:
            - application:admin
            - runtime:admin
    foo@bar.com:
        tenant: c862d791-2735-4ffb-ae2d-3ace408d6cff
        scopes:
            - application:view
            - runtime:view
";

fn file() -> std::path::PathBuf {
    scratch("tenants-configmap.yaml", CONFIGMAP);
    let admin = json!({"id": "admins", "resources": ["/applications<.*>"], "actions": ["api:write"], "effect": "allow", "subjects": ["<.+>"],
                       "conditions": {"scopes": {"type": "ScopesCondition", "options": {"values": ["application:admin"]}}}});
    let view = json!({"id": "viewers", "resources": ["/applications<.*>"], "actions": ["api:read"], "effect": "allow", "subjects": ["<.+>"]});
    let filter = json!({
        "providers": [{"name": "dex", "issuer": "https://dex.example", "jwks_uri": "https://dex.example/keys"}],
        "tenants": {"file": "tenants-configmap.yaml", "id_claims": ["email"], "required": true},
        "login": {"url": "https://dex.example/auth", "paths": ["/console(/.*)?"], "return_origins": ["https://console.example"]}
    });
    scratch("compass.json", &json!({"security": {"acl": {"policies": [admin, view]}}, "filter": filter}).to_string())
}

#[test]
fn a_compass_configmap_maps_users_to_tenants_and_scopes() {
    let bundle = compile::bundle(&source::read(&file()).unwrap()).unwrap().0;
    let tenants = bundle.settings.tenants.unwrap();
    assert_eq!(tenants.entries["admin@kyma.cx"].tenant, "edf2e0c0-58b1-45c6-b345-fabc9774600c");
    assert_eq!(tenants.entries["foo@bar.com"].scopes, ["application:view", "runtime:view"]);
    assert_eq!(bundle.settings.login.unwrap().paths, ["^(?:/console(/.*)?)$"], "anchored");

    let explain = |method: &str, claims: serde_json::Value| {
        let output = Command::new(env!("CARGO_BIN_EXE_policy-compiler"))
            .args(["explain", file().to_str().unwrap(), "--method", method, "--path", "/applications/a1", "--claims", &claims.to_string()])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let iss = "https://dex.example";
    assert!(explain("POST", json!({"iss": iss, "sub": "u1", "email": "admin@kyma.cx"})).contains("allowed by policy admins"), "the mapped scope");
    assert!(explain("POST", json!({"iss": iss, "sub": "u2", "email": "foo@bar.com"})).contains("DENY"));
    assert!(explain("GET", json!({"iss": iss, "sub": "u3", "email": "nobody@example.com"})).contains("403: the caller has no tenant"));
}

#[test]
fn a_tenant_file_that_is_not_a_mapping_is_an_error() {
    scratch("bad-tenants.yaml", "- just\n- a list\n");
    let text = json!({"security": {"acl": {"policies": []}}, "filter": {"tenants": {"file": "bad-tenants.yaml"}}}).to_string();
    let errors = source::read(&scratch("bad-tenants.json", &text)).unwrap_err();
    assert!(errors.iter().any(|e| e.message.contains("expected `ID: {tenant, scopes}` entries")), "{:?}", errors.iter().map(|e| &e.message).collect::<Vec<_>>());
}

fn mint_file(name: &str, mint: serde_json::Value) -> std::path::PathBuf {
    let keys = crate::example("keys");
    let policy = json!({"id": "users", "resources": ["/users/me"], "actions": ["api:read"], "effect": "allow", "subjects": ["<.+>"]});
    let text = json!({"security": {"keysDir": keys, "acl": {"policies": [policy]}}, "filter": {"mint": mint}}).to_string();
    scratch(name, &text)
}

#[test]
fn the_minted_tokens_key_is_read_from_pem_published_as_a_jwks_and_never_a_providers() {
    let key = crate::example("keys/mint-ed25519.EXAMPLE-ONLY.key");
    let mint = json!({"private_key_pem": key, "kid": "gateway-1", "issuer": "https://gateway.internal", "audiences": ["director"]});
    let file = mint_file("mint.json", mint.clone());
    let bundle = compile::bundle(&source::read(&file).unwrap()).unwrap().0;
    let written = bundle.settings.mint.as_ref().unwrap();
    assert_eq!((written.private_key.len(), written.ttl_seconds, written.header.as_str()), (43, 60, "authorization"));

    let output = Command::new(env!("CARGO_BIN_EXE_policy-compiler")).args(["jwks", file.to_str().unwrap()]).output().unwrap();
    let jwks: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!((jwks["keys"][0]["kid"].as_str(), jwks["keys"][0]["alg"].as_str()), (Some("gateway-1"), Some("EdDSA")));
    assert!(jwks["keys"][0].get("d").is_none(), "the public half only");

    // A P-256 key makes an ES256 token; RSA keys and other curves are refused, and so is an
    // `alg` the key does not make.
    let p256 = mint_file("mint-ec.json", json!({"private_key_pem": crate::example("keys/partner-es256.EXAMPLE-ONLY.key"), "kid": "k", "issuer": "i", "audiences": ["a"]}));
    let bundle = compile::bundle(&source::read(&p256).unwrap()).unwrap().0;
    assert_eq!(bundle.settings.mint.as_ref().unwrap().alg, decision_table::bundle::MintAlgorithm::ES256);
    let output = Command::new(env!("CARGO_BIN_EXE_policy-compiler")).args(["jwks", p256.to_str().unwrap()]).output().unwrap();
    let jwks: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((&jwks["keys"][0]["kty"], &jwks["keys"][0]["crv"], &jwks["keys"][0]["alg"]), (&json!("EC"), &json!("P-256"), &json!("ES256")));
    assert!(jwks["keys"][0]["y"].is_string() && jwks["keys"][0].get("d").is_none());
    for (name, key) in [("mint-rsa.json", "keys/platform.EXAMPLE-ONLY.key"), ("mint-p384.json", "keys/partner-es384.EXAMPLE-ONLY.key")] {
        let refused = mint_file(name, json!({"private_key_pem": crate::example(key), "kid": "k", "issuer": "i", "audiences": ["a"]}));
        let errors = source::read(&refused).unwrap_err();
        assert!(errors.iter().any(|e| e.message.contains("not an Ed25519 or P-256 private key")), "{key}: {:?}", errors.iter().map(|e| &e.message).collect::<Vec<_>>());
    }
    let mismatch = mint_file("mint-alg.json", json!({"private_key_pem": key, "alg": "ES256", "kid": "k", "issuer": "i", "audiences": ["a"]}));
    let errors = source::read(&mismatch).unwrap_err();
    assert!(errors.iter().any(|e| e.message.contains("is a key for EdDSA")), "{:?}", errors.iter().map(|e| &e.message).collect::<Vec<_>>());

    // Its issuer may not be a provider's: the minted token would verify as that provider's.
    let mut confusable = mint.clone();
    confusable["issuer"] = json!("https://partner.example");
    let text = json!({"security": {"acl": {"policies": []}}, "filter": {"mint": confusable, "providers": [
        {"name": "partner", "issuer": "https://partner.example", "keys": [{"pem": crate::example("keys/partner-es256.pem"), "kid": "p"}]}]}}).to_string();
    let errors = compile::bundle(&source::read(&scratch("confusable.json", &text)).unwrap()).unwrap_err();
    assert!(errors.iter().any(|e| e.code == "mint"), "{:?}", errors.iter().map(|e| &e.message).collect::<Vec<_>>());
}

#[test]
fn an_introspecting_provider_reads_its_secret_from_a_file_or_the_environment_never_the_policy() {
    scratch("hydra.secret", "s3cret\n");
    let provider = |introspection: serde_json::Value| {
        json!({"name": "hydra", "issuer": "https://hydra.example/", "may_assert": "any", "introspection": introspection})
    };
    let text = |introspection: serde_json::Value| {
        json!({"security": {"acl": {"policies": []}}, "filter": {"providers": [provider(introspection)]}}).to_string()
    };
    let good = json!({"uri": "https://hydra.example/oauth2/introspect", "client_id": "gateway", "client_secret_file": "hydra.secret",
                      "client_auth": "post", "cache_seconds": 120, "fetch": {"upstream": "hydra", "timeout_ms": 800}});
    let bundle = compile::bundle(&source::read(&scratch("hydra.json", &text(good.clone()))).unwrap()).unwrap().0;
    let introspection = bundle.providers[0].introspection.clone().unwrap();
    assert_eq!((introspection.client_secret.as_str(), introspection.cache_seconds, introspection.endpoint.upstream.as_str()), ("s3cret", 120, "hydra"));
    assert_eq!((introspection.endpoint.path.as_str(), introspection.endpoint.timeout_ms), ("/oauth2/introspect", 800));

    let mut inline = good.clone();
    inline.as_object_mut().unwrap().remove("client_secret_file");
    inline["client_secret"] = json!("in-the-policy");
    assert!(source::read(&scratch("inline.json", &text(inline))).is_err(), "an inline secret is an unknown field");
    let mut none = good.clone();
    none.as_object_mut().unwrap().remove("client_secret_file");
    let errors = compile::bundle(&source::read(&scratch("none.json", &text(none))).unwrap()).unwrap_err();
    assert!(errors.iter().any(|e| e.message.contains("give client_secret_file or client_secret_env")), "{:?}", errors.iter().map(|e| &e.message).collect::<Vec<_>>());
    let mut with_keys = provider(good);
    with_keys["keys"] = json!([{"pem": crate::example("keys/partner-es256.pem"), "kid": "k"}]);
    let both = json!({"security": {"acl": {"policies": []}}, "filter": {"providers": [with_keys]}}).to_string();
    let errors = compile::bundle(&source::read(&scratch("both.json", &both)).unwrap()).unwrap_err();
    assert!(errors.iter().any(|e| e.message.contains("(introspection, basic) has no keys")), "{:?}", errors.iter().map(|e| &e.message).collect::<Vec<_>>());
}

#[test]
fn a_provider_with_basic_takes_basic_credentials_and_a_basic_source_needs_one() {
    let policy = json!({"id": "p", "resources": ["/a"], "actions": ["api:read"], "effect": "allow", "subjects": ["<.+>"]});
    let basic = json!({"name": "aaf", "basic": {"uri": "https://aaf.example:8095/authn/basicAuth", "negative_seconds": 3}});
    let text = json!({"security": {"acl": {"policies": [policy.clone()]}}, "filter": {"providers": [basic]}}).to_string();
    let bundle = compile::bundle(&source::read(&scratch("basic.json", &text)).unwrap()).unwrap().0;
    let checked = bundle.providers[0].basic.as_ref().unwrap();
    assert_eq!((checked.endpoint.upstream.as_str(), checked.endpoint.path.as_str(), checked.cache_seconds, checked.negative_seconds), ("aaf.example:8095", "/authn/basicAuth", 300, 3));
    assert!(bundle.settings.token_sources.iter().any(decision_table::bundle::TokenSource::is_basic), "the Basic source is added");
    assert!(bundle.settings.token_sources.first().is_some_and(|s| !s.is_basic()), "after the configured ones");

    let sources = json!([{"header": {"name": "authorization", "scheme": "Basic"}}]);
    let jwt = json!({"name": "idp", "issuer": "https://idp.example", "jwks_uri": "https://idp.example/keys"});
    let text = json!({"security": {"acl": {"policies": [policy]}}, "filter": {"token_sources": sources, "providers": [jwt]}}).to_string();
    let errors = compile::bundle(&source::read(&scratch("basic-alone.json", &text)).unwrap()).unwrap_err();
    assert!(errors.iter().any(|e| e.code == "basic"), "{:?}", errors.iter().map(|e| &e.message).collect::<Vec<_>>());
}

#[test]
fn a_tenant_mapping_endpoint_is_read_from_its_uri() {
    let policy = json!({"id": "p", "resources": ["/a"], "actions": ["api:read"], "effect": "allow", "subjects": ["<.+>"]});
    let provider = json!({"name": "idp", "issuer": "https://idp.example", "jwks_uri": "https://idp.example/keys"});
    let tenants = json!({"uri": "http://director.local:3000/tenant-mapping", "fetch": {"timeout_ms": 250}, "negative_seconds": 5});
    let text = json!({"security": {"acl": {"policies": [policy.clone()]}}, "filter": {"providers": [provider.clone()], "tenants": tenants}}).to_string();
    let bundle = compile::bundle(&source::read(&scratch("tenant-uri.json", &text)).unwrap()).unwrap().0;
    let mapping = bundle.settings.tenants.unwrap();
    let endpoint = mapping.endpoint.unwrap();
    assert_eq!((endpoint.upstream.as_str(), endpoint.path.as_str(), endpoint.scheme.as_str(), endpoint.timeout_ms), ("director.local:3000", "/tenant-mapping", "http", 250));
    assert_eq!((mapping.cache_seconds, mapping.negative_seconds), (300, 5));

    let text = json!({"security": {"acl": {"policies": [policy]}}, "filter": {"providers": [provider], "tenants": {"fetch": {"timeout_ms": 250}}}}).to_string();
    let errors = source::read(&scratch("tenant-fetch.json", &text)).unwrap_err();
    assert!(errors.iter().any(|e| e.message.contains("without a uri")), "{:?}", errors.iter().map(|e| &e.message).collect::<Vec<_>>());
}

#[test]
fn the_compass_and_onap_example_sets_compile_and_check_clean() {
    for set in ["compass", "onap"] {
        let config = crate::example(&format!("../{set}/config.json"));
        let output = Command::new(env!("CARGO_BIN_EXE_policy-compiler")).args(["check", config.to_str().unwrap()]).output().unwrap();
        let report = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && report.contains("0 errors, 0 warnings"), "{set}: {report}");
    }
}
