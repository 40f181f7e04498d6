//! Per-provider trust and the credential chain (issue 14, items 1, 10 and 11): what the
//! compiler writes, refuses and warns about, and how `explain` and `test` apply it.

use std::process::{Command, Output};

use decision_table::bundle::MayAssert;
use policy_compiler::{compile, source};
use serde_json::{Value, json};

use crate::{example, scratch};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_policy-compiler")).args(args).output().unwrap()
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// A policy file beside the example keys, with these policies and this `filter` section.
fn file_with(name: &str, policies: Value, filter: Value) -> std::path::PathBuf {
    let keys = example("keys");
    let text = json!({"security": {"keysDir": keys, "acl": {"policies": policies}}, "filter": filter}).to_string();
    scratch(name, &text)
}

fn partner(may_assert: Option<Value>) -> Value {
    let mut provider = json!({"name": "partner", "issuer": "https://partner.example", "keys": [{"pem": example("keys/partner-es256.pem"), "kid": "partner-es256"}]});
    if let Some(may_assert) = may_assert {
        provider["may_assert"] = may_assert;
    }
    provider
}

fn admin_policy() -> Value {
    json!({"id": "admins", "resources": ["<.+>"], "actions": ["api:read"], "effect": "allow", "subjects": ["<.+>"],
           "conditions": {"roles": {"type": "RolesCondition", "options": {"values": ["admin"]}}}})
}

fn codes(file: &std::path::Path) -> Vec<String> {
    let output = run(&["--format", "json", "check", path(file)]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    report["problems"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap().to_string()).collect()
}

fn providers(file: &std::path::Path) -> Vec<decision_table::bundle::Provider> {
    compile::bundle(&source::read(file).unwrap()).unwrap().0.providers
}

#[test]
fn a_lone_provider_may_assert_anything_and_in_a_bundle_of_several_each_must_say() {
    let alone = file_with("alone.json", json!([admin_policy()]), json!({}));
    assert_eq!(providers(&alone)[0].may_assert, MayAssert::Any);
    // A partner that says nothing, or names no subjects, cannot be compiled beside the
    // platform's issuer: it could otherwise name `root`, whom a policy may allow by subject.
    for (name, may_assert) in [("undeclared.json", None), ("nameless.json", Some(json!({"scopes": ["billing:.*"]})))] {
        let file = file_with(name, json!([admin_policy()]), json!({"providers": [partner(may_assert)], "keys_dir": {"may_assert": "any"}}));
        let errors = compile::bundle(&source::read(&file).unwrap()).unwrap_err();
        assert!(errors.iter().any(|e| e.code == "may-assert"), "{name}: {:?}", errors.iter().map(|e| &e.message).collect::<Vec<_>>());
    }
    let declared = file_with(
        "declared.json",
        json!([admin_policy()]),
        json!({"providers": [partner(Some(json!({"roles": ["partner-.*", "clerk"], "subject": ["svc"]})))], "keys_dir": {"may_assert": "any"}}),
    );
    let MayAssert::Only(limits) = &providers(&declared)[0].may_assert else { panic!("declared limits") };
    assert_eq!(limits["roles"], ["partner-.*", "clerk"]);
    assert_eq!(limits["subject"], ["svc"]);
}

#[test]
fn check_warns_where_several_providers_satisfy_an_allow_until_it_is_bound() {
    let filter = json!({"providers": [partner(Some(json!({"subject": [".+"], "roles": ["admin"]})))], "keys_dir": {"may_assert": "any"}});
    let open = file_with("open.json", json!([admin_policy()]), filter.clone());
    assert!(codes(&open).contains(&"any-provider".to_string()), "{:?}", codes(&open));
    let mut bound = admin_policy();
    bound["providers"] = json!(["keysDir"]);
    let bound = file_with("bound.json", json!([bound]), filter);
    let found = codes(&bound);
    assert!(!found.contains(&"any-provider".to_string()), "{found:?}");
    assert!(found.contains(&"unreachable-provider".to_string()), "no allow is left for the partner: {found:?}");
    // A partner that may not assert `admin` cannot satisfy it: no warning either.
    let narrow = file_with("narrow.json", json!([admin_policy()]), json!({"providers": [partner(Some(json!({"subject": [".+"], "roles": ["clerk"]})))], "keys_dir": {"may_assert": "any"}}));
    assert!(!codes(&narrow).contains(&"any-provider".to_string()));
    // A client certificate names any identity the proxy accepted: a subject-bound allow is
    // within its reach, and so is the partner's with any subject.
    let root = json!({"id": "root-all", "resources": ["<.+>"], "actions": ["api:read"], "effect": "allow", "subjects": ["root"]});
    let mtls = file_with(
        "mtls.json",
        json!([root]),
        json!({"providers": [partner(Some(json!({"subject": ["partner-.+"]})))], "keys_dir": {"may_assert": "any"}, "mtls": {"identity": "subject_cn", "roles": {"billing": ["service"]}}}),
    );
    let output = run(&["--format", "json", "check", path(&mtls)]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let messages: Vec<&str> = report["problems"].as_array().unwrap().iter().map(|p| p["message"].as_str().unwrap()).collect();
    assert!(messages.iter().any(|m| m.contains("\"root-all\"") && m.contains("keysDir, mtls")), "{messages:?}");
    assert!(!messages.iter().any(|m| m.contains("provider \"mtls\"")), "mtls is not unreachable: {messages:?}");
    assert!(messages.iter().any(|m| m.contains("provider \"partner\"")), "the partner may not name root: {messages:?}");
    // The example is clean.
    let output = run(&["check", "--strict", path(&example("config.json"))]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn an_ambiguous_chain_or_an_unknown_provider_is_an_error() {
    let refused = |name: &str, policies: Value, filter: Value| {
        let file = file_with(name, policies, filter);
        // JSON, so no line wrapping splits a message.
        let output = run(&["--format", "json", "compile", path(&file)]);
        assert_eq!(output.status.code(), Some(1), "{name}");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        report["problems"].as_array().unwrap().iter().map(|p| p["message"].as_str().unwrap()).collect::<Vec<_>>().join("\n")
    };
    let mut issuerless = partner(None);
    issuerless.as_object_mut().unwrap().remove("issuer");
    assert!(refused("two-issuerless.json", json!([admin_policy()]), json!({"providers": [issuerless]})).contains("both have no issuer"));
    let mut twin = partner(None);
    twin["name"] = json!("twin");
    assert!(refused("same-issuer.json", json!([admin_policy()]), json!({"providers": [partner(None), twin]})).contains("could never be reached"));
    let mut misspelt = admin_policy();
    misspelt["providers"] = json!(["parnter"]);
    assert!(refused("misspelt.json", json!([misspelt]), json!({"providers": [partner(Some(json!("any")))], "keys_dir": {"may_assert": "any"}})).contains("names provider \"parnter\""));
    let username = partner(Some(json!({"subject": ["x"], "username": ["x"]})));
    assert!(refused("username.json", json!([admin_policy()]), json!({"providers": [username]})).contains("limit `subject` instead"));
    let all = partner(Some(json!("all")));
    assert!(refused("all.json", json!([admin_policy()]), json!({"providers": [all]})).contains("\"any\" or an object"));
    let mut empty = admin_policy();
    empty["providers"] = json!([]);
    assert!(refused("empty.json", json!([empty]), json!({})).contains("would match no one"));
    let upper = json!({"id": "x", "resources": ["/Admin<.*>"], "actions": ["api:read"], "effect": "deny", "subjects": ["<.+>"]});
    assert!(refused("upper.json", json!([upper, admin_policy()]), json!({"case_insensitive_paths": true})).contains("upper-case letter"));
    let both = json!({"keys_dir": {"algorithm": "RS256"}, "keys_dir_algorithm": "RS256"});
    assert!(refused("both.json", json!([admin_policy()]), both).contains("cannot stand beside filter.keys_dir"));
    let reserved = json!({"providers": [{"name": "mtls", "issuer": "x", "keys": [{"pem": example("keys/partner-es256.pem")}]}]});
    assert!(refused("reserved.json", json!([admin_policy()]), reserved).contains("reserved"));
}

#[test]
fn explain_and_test_apply_what_the_verifying_provider_may_assert() {
    let config = example("config.json");
    let explain = |claims: Value, provider: Option<&str>| {
        let claims = claims.to_string();
        let mut args = vec!["explain", path(&config), "--path", "/users/42", "--claims", &claims];
        if let Some(provider) = provider {
            args.extend(["--provider", provider]);
        }
        let output = run(&args);
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    // The partner's `iss` chooses the partner, which may not name root.
    let (code, out) = explain(json!({"iss": "https://partner.example", "username": "root", "roles": "admin"}), None);
    assert_eq!(code, Some(3));
    assert!(out.contains("UNAUTHENTICATED") && out.contains("may not assert the subject"), "{out}");
    // The same claims named as the platform's: allowed.
    assert_eq!(explain(json!({"username": "root", "roles": "admin"}), Some("keysDir")).0, Some(0));
    // A partner subject with the admin role: the role is dropped, denied.
    let (code, out) = explain(json!({"username": "partner-billing", "roles": "admin"}), Some("partner"));
    assert_eq!(code, Some(3), "{out}");
    assert_eq!(explain(json!({"username": "root"}), Some("nobody")).0, Some(3));
    // A client certificate: only when the bundle has mtls, and with the roles it gives.
    let (code, out) = explain(json!({"username": "anyone", "roles": ["admin"]}), Some("mtls"));
    assert_eq!(code, Some(3));
    assert!(out.contains("no mtls"), "{out}");
    let mtls = file_with("mtls-explain.json", json!([admin_policy()]), json!({"mtls": {"identity": "uri_san", "roles": {"svc": ["admin"]}}}));
    let ask = |claims: Value| {
        let claims = claims.to_string();
        run(&["explain", path(&mtls), "--path", "/x", "--claims", &claims, "--provider", "mtls"]).status.code()
    };
    assert_eq!(ask(json!({"username": "svc"})), Some(0), "the map gives svc the admin role");
    assert_eq!(ask(json!({"username": "other", "roles": ["admin"]})), Some(3), "the claims' roles are not a certificate's");
    // Methods are case-sensitive, as in the module.
    let lower = run(&["explain", path(&config), "--method", "get", "--path", "/users/42", "--claims", r#"{"username":"root","roles":"admin"}"#]);
    assert_eq!(lower.status.code(), Some(3));
    // The example suite pins both kinds of refusal.
    let suite = run(&["test", path(&config), path(&example("policy-tests.yaml"))]);
    let out = String::from_utf8_lossy(&suite.stdout);
    assert!(out.contains("PASS  a partner token cannot hand its caller the platform's admin role"), "{out}");
    assert!(out.contains("PASS  a partner token cannot name a platform user"), "{out}");
}
