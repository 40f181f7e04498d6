//! Microkubes inputs as users have them, in each shape and form.


use policy_compiler::commands::{self, Answer};
use policy_compiler::source::{self, Effect, SourceCondition};
use serde_json::{Map, Value, json};

use crate::{example, scratch};

fn claims(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn decide(path: &std::path::Path, method: &str, resource: &str, who: Value) -> String {
    let file = source::read(path).unwrap();
    let prepared = commands::prepare(&file).unwrap();
    let answer = commands::decide(&prepared, method, resource, &claims(who), None, None).ok().unwrap();
    match answer {
        Answer::Decided { allowed, policy, .. } => format!("{}:{}", if allowed { "allow" } else { "deny" }, policy.unwrap_or_default()),
        other => other.label().to_string(),
    }
}

/// The Python library's README example, with its `descrition` typo and empty `subjects`.
const PYTHON_FORM: &str = r#"{"policies": [{
    "id": "user-ana-allow-access",
    "description": "Allow the user ana to read todos",
    "resources": ["/todos"],
    "actions": ["api:read"],
    "subjects": ["ana"],
    "roles": ["user"],
    "organizations": ["test-organization"],
    "namespaces": ["test-namespace"]
  }, {
    "id": "admin-allow-full-access",
    "descrition": "Allow the admin to have full access.",
    "resources": ["/todos"],
    "actions": ["api:read", "api:write"],
    "subjects": [],
    "roles": ["admin"],
    "organizations": ["test-organization", "test-organization-1"],
    "namespaces": ["test-namespace", "test-namespace-1"]
  }]}"#;

#[test]
fn the_microkubes_go_form_compiles_with_its_keys_dir() {
    let file = source::read(&example("config.json")).unwrap();
    let admin = file.policies.iter().find(|p| p.id == "users-allow-admin-access").unwrap();
    assert_eq!(admin.effect, Effect::Allow);
    assert_eq!(
        admin.conditions["roles"],
        SourceCondition::AnyOf { kind: "RolesCondition".into(), values: vec!["admin".into(), "system".into()] }
    );
    assert_eq!(file.ignore_patterns, ["/users/verify", "/health"]);
    let (bundle, table) = policy_compiler::compile::bundle(&file).unwrap();
    assert_eq!(table.policies.len(), 9, "8 policies and one required-scopes deny");
    let keys_dir = bundle.providers.iter().find(|p| p.name == "keysDir").unwrap();
    assert_eq!(keys_dir.keys[0]["kid"], "platform", "a keysDir key is named by its file, like <kid>.pub");
    assert_eq!(keys_dir.keys[0]["alg"], "RS256");
}

#[test]
fn the_python_form_reads_empty_subjects_as_anyone_and_ignores_unknown_fields_with_a_warning() {
    let path = scratch("python.json", PYTHON_FORM);
    let file = source::read(&path).unwrap();
    assert_eq!(file.warnings.len(), 1);
    assert!(file.warnings[0].message.contains("unknown field `descrition`"));
    let admin = json!({"username": "zoe", "roles": ["admin"], "organizations": ["test-organization-1"], "namespaces": "test-namespace-1"});
    assert_eq!(decide(&path, "POST", "/todos", admin), "allow:admin-allow-full-access");
    let ana = json!({"username": "ana", "roles": "user", "organizations": "test-organization", "namespaces": "test-namespace"});
    assert_eq!(decide(&path, "GET", "/todos", ana.clone()), "allow:user-ana-allow-access");
    assert_eq!(decide(&path, "POST", "/todos", ana), "deny:");
    let wrong_org = json!({"username": "ana", "roles": "user", "organizations": "other", "namespaces": "test-namespace"});
    assert_eq!(decide(&path, "GET", "/todos", wrong_org), "deny:");
}

#[test]
fn yaml_an_acl_section_and_a_bare_list_are_all_accepted() {
    let yaml = scratch(
        "acl.yaml",
        "acl:\n  policies:\n    - id: swagger\n      resources: [\"/swagger<.+>\"]\n      actions: [api:read]\n      effect: allow\n      subjects: [\"<.+>\"]\n",
    );
    assert_eq!(decide(&yaml, "GET", "/swagger.json", json!({"username": "x"})), "allow:swagger");
    assert_eq!(decide(&yaml, "GET", "/swagger", json!({"username": "x"})), "deny:", "<.+> needs at least one character");
    let list = scratch("list.json", r#"[{"id": "p", "resources": ["/a"], "actions": ["api:read"], "effect": "allow", "subjects": ["<.+>"]}]"#);
    assert_eq!(decide(&list, "GET", "/a", json!({"username": "x"})), "allow:p");
}

#[test]
fn conditions_match_whole_values_unlike_microkubes() {
    let path = example("config.json");
    assert_eq!(decide(&path, "GET", "/users/me", json!({"username": "m", "roles": "superuser"})), "deny:");
    assert_eq!(decide(&path, "GET", "/users/me", json!({"username": "m", "roles": "users"})), "deny:");
    assert_eq!(decide(&path, "GET", "/users/me", json!({"username": "m", "roles": "user"})), "allow:users-allow-read-access");
}

#[test]
fn a_syntax_error_points_at_its_line_and_column() {
    let path = scratch("broken.json", "{\"policies\": [\n  {\"id\": \"a\",, }\n]}");
    let problems = source::read(&path).unwrap_err();
    let json = problems[0].to_json();
    assert_eq!(json["line"], 2);
    assert!(json["message"].as_str().unwrap().contains("not valid JSON"));
}

#[test]
fn a_condition_without_effect_is_refused_because_ladon_would_deny() {
    let path = scratch(
        "noeffect.json",
        r#"[{"id": "p", "resources": ["/a"], "actions": ["api:read"], "subjects": ["<.+>"],
            "conditions": {"roles": {"type": "RolesCondition", "options": {"values": ["x"]}}}}]"#,
    );
    let problems = source::read(&path).unwrap_err();
    assert!(problems[0].message.contains("has conditions but no effect"), "{}", problems[0].message);
}

#[test]
fn unsupported_condition_types_are_named() {
    let path = scratch(
        "unknown-condition.json",
        r#"[{"id": "p", "resources": ["/a"], "actions": ["api:read"], "subjects": ["<.+>"], "effect": "allow",
            "conditions": {"x": {"type": "ResourceContainsCondition", "options": {}}}}]"#,
    );
    let problems = source::read(&path).unwrap_err();
    assert!(problems[0].message.contains("\"ResourceContainsCondition\" is not supported"));
    assert!(problems[0].help.as_ref().unwrap().contains("RolesCondition"));
}

#[test]
fn a_yaml_file_is_yaml_even_when_it_reads_like_json() {
    // The Python README's policy dictionary: a YAML flow mapping with bare keys.
    let flow = scratch("flow.yaml", r#"{"policies": [{"id": "p", "resources": ["/a"], actions: ["api:read"], subjects: ["ana"]}]}"#);
    assert_eq!(decide(&flow, "GET", "/a", json!({"username": "ana"})), "allow:p");
}

#[test]
fn a_repeated_key_is_refused_at_its_line_and_column() {
    let json = scratch("twice.json", "{\"policies\": [{\"id\": \"p\", \"resources\": [\"/a\"], \"actions\": [\"api:read\"],\n  \"subjects\": [\"ana\"], \"effect\": \"allow\", \"effect\": \"deny\"}]}");
    let problems = source::read(&json).unwrap_err();
    assert!(problems[0].message.contains("duplicate key \"effect\" at line 2"), "{}", problems[0].message);
    let yaml = scratch("twice.yaml", "policies:\n  - id: p\n    resources: [/a]\n    actions: [api:read]\n    subjects: [ana]\n    effect: allow\n    effect: deny\n");
    let problems = source::read(&yaml).unwrap_err();
    assert!(problems[0].message.contains("duplicate key \"effect\" at line 2"), "{}", problems[0].message);
    assert!(problems[0].span.is_some(), "the problem points into the file");
}

#[test]
fn the_microkubes_security_sections_beside_the_policies_are_accounted_for() {
    let config = scratch(
        "sections.json",
        r#"{"security": {"jwt": {"tokenUrl": "http://kong:8000/jwt"}, "saml": {"certFile": "x"}, "oauth2": {"tokenUrl": "y"}, "sessions": {},
            "acl": {"policies": [{"id": "p", "resources": ["/a"], "actions": ["api:read"], "effect": "allow", "subjects": ["ana"]}]}}}"#,
    );
    let file = source::read(&config).unwrap();
    let said: Vec<(String, String)> = file.warnings.iter().map(|w| (format!("{:?}", w.level), w.code.clone())).collect();
    let expected = [("Note", "microkubes-jwt"), ("Warning", "microkubes-oauth2"), ("Warning", "microkubes-saml"), ("Warning", "unknown-field")];
    for (level, code) in expected {
        assert!(said.contains(&(level.to_string(), code.to_string())), "{said:?}");
    }
    assert!(file.warnings.iter().any(|w| w.message.contains("not introspected")));
}
