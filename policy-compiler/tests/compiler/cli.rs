//! The CLI: output, JSON format and exit codes.

use std::process::{Command, Output};

use crate::{example, scratch};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_policy-compiler")).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn compile_writes_a_bundle_that_inspect_reads() {
    let out = std::env::temp_dir().join(format!("bundle-{}.json", std::process::id()));
    let compiled = run(&["compile", path(&example("config.json")), "-o", path(&out)]);
    assert_eq!(compiled.status.code(), Some(0), "{}", text(&compiled.stderr));
    assert!(text(&compiled.stderr).contains("compiled 9 policies"));

    let inspected = run(&["--format", "json", "inspect", path(&out)]);
    assert_eq!(inspected.status.code(), Some(0));
    let summary: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(summary["policies"], 9);
    assert_eq!(summary["deny"], 2);
    assert_eq!(summary["hash_matches"], true);
    assert_eq!(summary["keys"].as_array().unwrap().len(), 6);

    let again = run(&["compile", path(&example("config.json"))]);
    let first = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text(&again.stdout), first, "same input, same bundle");
}

#[test]
fn inspect_refuses_a_tampered_table() {
    let out = std::env::temp_dir().join(format!("tampered-{}.json", std::process::id()));
    run(&["compile", path(&example("config.json")), "-o", path(&out)]);
    let mut bundle: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let table = bundle["table"].as_str().unwrap().to_string();
    // One character in the middle, so the base64 stays valid and the hash must catch it.
    let middle = table.len() / 2;
    let flipped = if &table[middle..=middle] == "A" { "B" } else { "A" };
    bundle["table"] = serde_json::Value::String(format!("{}{flipped}{}", &table[..middle], &table[middle + 1..]));
    std::fs::write(&out, bundle.to_string()).unwrap();
    let inspected = run(&["inspect", path(&out)]);
    assert_eq!(inspected.status.code(), Some(1));
    assert!(text(&inspected.stderr).contains("corrupt") || text(&inspected.stderr).contains("malformed"), "{}", text(&inspected.stderr));
}

#[test]
fn check_reports_errors_with_file_line_and_column_and_exits_1() {
    let file = scratch(
        "check.yaml",
        "security:\n  acl:\n    policies:\n      - id: no-admins\n        resources: [\"/users/<(?!admin).*>\"]\n        actions: [api:read]\n        effect: allow\n        subjects: [\"<.+>\"]\n",
    );
    let output = run(&["--format", "json", "check", path(&file)]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let problem = &report["problems"][0];
    assert_eq!(problem["code"], "pattern");
    assert_eq!(problem["line"], 5);
    assert_eq!(problem["column"], 22, "the first character of the pattern, inside its quotes");
    assert!(problem["message"].as_str().unwrap().contains("lookahead"));
    assert!(problem["message"].as_str().unwrap().contains("deny policy"));
}

#[test]
fn check_warns_about_shadowed_broad_and_dead_policies() {
    let file = scratch(
        "risky.json",
        r#"[{"id": "everyone-everywhere", "resources": ["<.*>"], "actions": ["api:read"], "effect": "allow", "subjects": ["<.+>"]},
            {"id": "read-reports", "resources": ["/reports"], "actions": ["api:read"], "effect": "allow", "subjects": ["ana"],
             "conditions": {"roles": {"type": "RolesCondition", "options": {"values": ["user"]}}}},
            {"id": "no-reports", "resources": ["/reports<.*>"], "actions": ["api:<.*>"], "effect": "deny", "subjects": ["<.*>"]},
            {"id": "deletes", "resources": ["/x"], "actions": ["api:delete"], "effect": "allow", "subjects": ["ana"]}]"#,
    );
    let output = run(&["--format", "json", "check", path(&file)]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let codes: Vec<&str> = report["problems"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"broad-allow"), "{codes:?}");
    assert!(codes.contains(&"shadowed"), "{codes:?}");
    assert!(codes.contains(&"never-applies"), "{codes:?}");
    assert!(codes.contains(&"no-keys"), "{codes:?}");
    let strict = run(&["check", "--strict", path(&file)]);
    assert_eq!(strict.status.code(), Some(1));
}

#[test]
fn check_refuses_a_weak_rsa_key() {
    let keys = example("keys");
    let file = scratch(
        "weak.json",
        &format!(
            r#"{{"policies": [{{"id": "p", "resources": ["/a"], "actions": ["api:read"], "effect": "allow", "subjects": ["ana"]}}],
                "filter": {{"providers": [{{"name": "weak", "keys": [{{"pem": "{}/weak-rsa-1024.pem.txt", "alg": "RS256"}}]}}]}}}}"#,
            keys.display()
        ),
    );
    let output = run(&["check", path(&file)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("too weak"), "{}", text(&output.stderr));
}

#[test]
fn explain_exits_0_when_allowed_and_3_when_denied() {
    let config = example("config.json");
    let allowed = run(&["explain", path(&config), "--path", "/users/me", "--claims", r#"{"username":"ana","roles":"user"}"#]);
    assert_eq!(allowed.status.code(), Some(0));
    assert!(text(&allowed.stdout).contains("allowed by policy users-allow-read-access"));
    assert!(text(&allowed.stdout).contains("- allow read-swagger: resource does not match"));

    let denied = run(&["--format", "json", "explain", path(&config), "--method", "DELETE", "--path", "/users/me", "--claims", r#"{"username":"ana","roles":"user"}"#]);
    assert_eq!(denied.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&denied.stdout).unwrap();
    assert_eq!(report["decision"], "deny");
    assert!(report["policies"].as_array().unwrap().iter().any(|p| p["id"] == "users-allow-read-access" && p["why"] == "action does not match"));
}

#[test]
fn explain_reads_claims_from_an_unverified_token() {
    // {"alg":"none"}.{"username":"root","roles":"admin"}.
    let token = "eyJhbGciOiJub25lIn0.eyJ1c2VybmFtZSI6InJvb3QiLCJyb2xlcyI6ImFkbWluIn0.";
    let output = run(&["explain", path(&example("config.json")), "--path", "/users/7", "--token", token]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("users-allow-admin-access"));
}

#[test]
fn test_runs_the_example_suite_and_reports_failures() {
    let passing = run(&["test", path(&example("config.json")), path(&example("policy-tests.yaml"))]);
    assert_eq!(passing.status.code(), Some(0), "{}", text(&passing.stdout));
    assert_eq!(text(&passing.stdout).lines().last(), Some("28 passed, 0 failed"));

    let suite = scratch(
        "failing.yaml",
        "tests:\n  - name: wrong on purpose\n    request: {path: /users/me, claims: {username: ana, roles: user}}\n    expect: deny\n",
    );
    let failing = run(&["test", path(&example("config.json")), path(&suite)]);
    assert_eq!(failing.status.code(), Some(3));
    assert!(text(&failing.stdout).contains("expected deny, got allow"));
}

#[test]
fn check_warns_about_dead_denies_relative_paths_catch_all_values_and_conditional_shadows() {
    let file = scratch(
        "more-risks.json",
        r#"{"security": {"ignorePatterns": ["/health.*"], "acl": {"policies": [
            {"id": "deny-health", "resources": ["/health/deep"], "actions": ["api:read"], "effect": "deny", "subjects": ["<.+>"]},
            {"id": "relative", "resources": ["users/me"], "actions": ["api:read"], "effect": "allow", "subjects": ["<.+>"]},
            {"id": "any-role", "resources": ["/reports"], "actions": ["api:read"], "effect": "allow", "subjects": ["<.+>"],
             "conditions": {"roles": {"type": "RolesCondition", "options": {"values": [".*"]}}}},
            {"id": "clerks-read", "resources": ["/ledger"], "actions": ["api:read"], "effect": "allow", "subjects": ["<.+>"],
             "conditions": {"roles": {"type": "RolesCondition", "options": {"values": ["clerk"]}}}},
            {"id": "no-clerks", "resources": ["/ledger<.*>"], "actions": ["api:<.*>"], "effect": "deny", "subjects": ["<.+>"],
             "conditions": {"roles": {"type": "RolesCondition", "options": {"values": ["clerk"]}}}}]}}}"#,
    );
    let output = run(&["--format", "json", "check", path(&file)]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let found: Vec<(String, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["code"].as_str().unwrap().to_string(), p["message"].as_str().unwrap().to_string()))
        .collect();
    let has = |code: &str, policy: &str| found.iter().any(|(c, m)| c == code && m.contains(&format!("\"{policy}\"")));
    assert!(has("never-applies", "deny-health"), "{found:?}");
    assert!(has("never-applies", "relative"), "{found:?}");
    assert!(has("broad-condition", "any-role"), "{found:?}");
    assert!(has("shadowed", "clerks-read"), "{found:?}");
}

#[test]
fn a_duplicate_id_and_a_mistake_in_the_filter_section_point_at_their_line() {
    let duplicate = scratch(
        "dup-id.json",
        "{\"policies\": [{\"id\": \"p\", \"resources\": [\"/a\"], \"actions\": [\"api:read\"], \"subjects\": [\"ana\"]},\n {\"id\": \"p\", \"resources\": [\"/b\"], \"actions\": [\"api:read\"], \"subjects\": [\"ana\"]}]}",
    );
    let report: serde_json::Value = serde_json::from_slice(&run(&["--format", "json", "check", path(&duplicate)]).stdout).unwrap();
    let problem = report["problems"].as_array().unwrap().iter().find(|p| p["code"] == "duplicate-id").unwrap();
    assert_eq!(problem["line"], 2, "the second use of the id");
    let settings = scratch("bad-filter.json", "{\"policies\": [],\n \"filter\": {\"realm\": \"x\",\n   \"forward\": {\"usr\": \"x\"}}}");
    let report: serde_json::Value = serde_json::from_slice(&run(&["--format", "json", "check", path(&settings)]).stdout).unwrap();
    let problem = report["problems"].as_array().unwrap().iter().find(|p| p["code"] == "settings").unwrap();
    assert_eq!(problem["line"], 3, "{problem}");
}
