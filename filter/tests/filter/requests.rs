//! Request handling: path spellings, bypass, spoofed headers, token sources, identity
//! headers, shadow mode, the cache, mTLS, metrics and the denial log line.

use decision_table::bundle::{Mode, Mtls, MtlsIdentity, TokenSource};
use policy_filter::cache::TokenCache;
use policy_filter::engine::{self, Flow, metrics};
use serde_json::json;

use policy_filter::host::Proxy;

use crate::mock::{MockHost, NOW, ana_token, claims, example_bundle, load, load_on, platform, run};

fn contractor() -> String {
    jwt_minter::mint(&platform(), "RS256", Some("platform"), &claims(json!({"username": "eve", "roles": "admin,contractor"})))
}

#[test]
fn no_spelling_of_a_path_reaches_a_denied_resource() {
    let loaded = load(&example_bundle());
    for path in [
        "/admin/settings",
        "//admin/settings",
        "/admin//settings",
        "/./admin/settings",
        "/public/../admin/settings",
        "/%61dmin/settings",
        "/admin/%2e%2e/admin/settings",
        "/admin/settings?x=/users/me",
        "/ADMIN/../admin/settings",
    ] {
        let (flow, host) = run(&loaded, MockHost::request("GET", path).bearer(&contractor()));
        assert_eq!((flow, host.status()), (Flow::Answered, Some(403)), "{path}");
    }
    for path in ["/admin%2Fsettings", "/admin%5csettings", "/admin\\settings", "/admin%00", "/a%zz", "admin/settings", "/admin/settings#/users/me"] {
        let (flow, host) = run(&loaded, MockHost::request("GET", path).bearer(&contractor()));
        assert_eq!((flow, host.status()), (Flow::Answered, Some(400)), "{path}");
        assert_eq!(host.count(metrics::MALFORMED), 1);
    }
}

#[test]
fn ignore_patterns_are_anchored_on_the_normalised_path() {
    let loaded = load(&example_bundle());
    assert_eq!(run(&loaded, MockHost::request("GET", "/health")).0, Flow::Continue);
    assert_eq!(run(&loaded, MockHost::request("GET", "/health?verbose=1")).0, Flow::Continue);
    // Microkubes searched unanchored: /x/health or /healthz would have skipped authentication.
    for path in ["/x/health", "/healthz", "/health/../users/me"] {
        let (flow, host) = run(&loaded, MockHost::request("GET", path));
        assert_eq!((flow, host.status()), (Flow::Answered, Some(401)), "{path}");
    }
}

#[test]
fn cors_preflights_need_credentials_unless_the_bypass_is_turned_on() {
    let preflight = || MockHost::request("OPTIONS", "/users/me").header("origin", "https://app.example").header("access-control-request-method", "PUT");
    // Off by default: an unauthenticated OPTIONS to any path would reach the upstream.
    let loaded = load(&example_bundle());
    assert_eq!(run(&loaded, preflight()).1.status(), Some(401));
    let mut bundle = example_bundle();
    bundle.settings.bypass_cors_preflight = true;
    let loaded = load(&bundle);
    assert_eq!(run(&loaded, preflight()).0, Flow::Continue);
    assert_eq!(run(&loaded, MockHost::request("OPTIONS", "/users/me")).1.status(), Some(401));
}

#[test]
fn spoofed_identity_headers_never_reach_the_upstream() {
    let loaded = load(&example_bundle());
    let spoof = |host: MockHost| host.header("x-auth-username", "root").header("x-auth-roles", "admin").header("x-auth-policy", "forged");
    let (flow, host) = run(&loaded, spoof(MockHost::request("GET", "/users/me")).bearer(&ana_token()));
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.get("x-auth-username"), Some("ana"));
    assert_eq!(host.get("x-auth-user-id"), Some("u-100"));
    assert_eq!(host.get("x-auth-roles"), Some("user"));
    assert_eq!(host.get("x-auth-policy"), Some("users-allow-read-access"));
    assert_eq!(host.get("authorization"), None, "the token is stripped by default");
    // Even on a bypassed path, forged identity is removed.
    let (flow, host) = run(&loaded, spoof(MockHost::request("GET", "/health")));
    assert_eq!(flow, Flow::Continue);
    assert_eq!((host.get("x-auth-username"), host.get("x-auth-roles"), host.get("x-auth-policy")), (None, None, None));
}

#[test]
fn where_removal_does_not_reach_the_upstream_the_filter_blanks_and_refuses_repeats() {
    // ngx_wasm_module (or a proxy that did not say): a removed header would still be sent.
    for proxy in [Proxy::NgxWasmModule, Proxy::Unknown] {
        let loaded = load_on(&example_bundle(), proxy);
        let (flow, host) = run(&loaded, MockHost::request("GET", "/users/me").bearer(&ana_token()).header("x-auth-roles", "admin"));
        assert_eq!(flow, Flow::Continue);
        assert_eq!(host.get("authorization"), Some(""), "{proxy:?}: overwritten, not removed");
        assert_eq!(host.get("x-auth-roles"), Some("user"));
        let (flow, host) = run(&loaded, MockHost::request("GET", "/health").header("x-auth-username", "root"));
        assert_eq!((flow, host.get("x-auth-username")), (Flow::Continue, Some("")));
        let twice = MockHost::request("GET", "/health").header("x-auth-username", "root").header("X-Auth-Username", "root");
        let (flow, host) = run(&loaded, twice);
        assert_eq!((flow, host.status()), (Flow::Answered, Some(400)), "{proxy:?}");
        assert!(host.response.unwrap().2.contains("repeats a header"));
    }
    // On Envoy the repeat is simply removed.
    let twice = MockHost::request("GET", "/health").header("x-auth-username", "root").header("x-auth-username", "root");
    let (flow, host) = run(&load(&example_bundle()), twice);
    assert_eq!((flow, host.get("x-auth-username")), (Flow::Continue, None));
}

#[test]
fn a_default_identity_header_the_bundle_does_not_use_is_still_taken_out() {
    // forward.policy unset and the roles header renamed: the usual names still never carry
    // a client's claim to the upstream.
    let mut bundle = example_bundle();
    bundle.settings.forward.policy = None;
    bundle.settings.forward.roles = Some("x-roles".into());
    let loaded = load(&bundle);
    let request = MockHost::request("GET", "/users/me").bearer(&ana_token()).header("x-auth-policy", "forged").header("x-auth-roles", "admin");
    let (flow, host) = run(&loaded, request);
    assert_eq!(flow, Flow::Continue);
    assert_eq!((host.get("x-auth-policy"), host.get("x-auth-roles"), host.get("x-roles")), (None, None, Some("user")));
}

#[test]
fn claim_values_cannot_inject_headers_or_list_items() {
    let claims = claims(json!({"username": "ana", "userId": "u-1\r\nx-injected: yes", "roles": ["user", "x,admin", "50%"]}));
    let token = jwt_minter::mint(&platform(), "RS256", Some("platform"), &claims);
    let (flow, host) = run(&load(&example_bundle()), MockHost::request("GET", "/users/me").bearer(&token));
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.get("x-auth-user-id"), Some("u-1%0D%0Ax-injected: yes"));
    assert_eq!(host.get("x-auth-roles"), Some("user,x%2Cadmin,50%25"));
    assert_eq!(host.get("x-injected"), None);
}

#[test]
fn the_path_decided_on_is_the_path_forwarded() {
    let loaded = load(&example_bundle());
    let (flow, host) = run(&loaded, MockHost::request("GET", "/health/../users/./me?a=1").bearer(&ana_token()));
    assert_eq!((flow, host.get(":path")), (Flow::Continue, Some("/users/me?a=1")));
    // A path already normal costs no hostcall and stays as sent.
    let (_, host) = run(&loaded, MockHost::request("GET", "/health?x=%2F"));
    assert_eq!(host.get(":path"), Some("/health?x=%2F"));
}

#[test]
fn answers_follow_rfc_6750_and_leak_nothing() {
    let loaded = load(&example_bundle());
    let (_, missing) = run(&loaded, MockHost::request("GET", "/users/me"));
    assert_eq!(missing.response_header("www-authenticate"), Some(r#"Bearer realm="users-service""#));
    let (_, bad) = run(&loaded, MockHost::request("GET", "/users/me").bearer("abc.def.ghi"));
    let challenge = bad.response_header("www-authenticate").unwrap();
    assert!(challenge.starts_with(r#"Bearer realm="users-service", error="invalid_token", error_description=""#), "{challenge}");
    let (_, denied) = run(&loaded, MockHost::request("DELETE", "/users/me").bearer(&ana_token()));
    assert_eq!(denied.status(), Some(403));
    let body = &denied.response.as_ref().unwrap().2;
    assert_eq!(serde_json::from_str::<serde_json::Value>(body).unwrap()["error"], "forbidden");
    assert!(!body.contains("users-allow") && !body.contains("platform"), "no policy or key names in bodies: {body}");
}

#[test]
fn a_denial_is_logged_once_with_request_id_and_policy() {
    let loaded = load(&example_bundle());
    let (_, host) = run(&loaded, MockHost::request("GET", "/admin/x").bearer(&contractor()).header("x-request-id", "req-42"));
    assert_eq!(host.logs.len(), 1);
    let line: serde_json::Value = serde_json::from_str(&host.logs[0]).unwrap();
    assert_eq!(line["request_id"], "req-42");
    assert_eq!(line["policy"], "deny-admin-api-to-contractors");
    assert_eq!(line["subject"], "eve");
    assert_eq!(line["status"], 403);
    assert_eq!((line["reason"].as_str(), line["provider"].as_str()), (Some("policy"), Some("keysDir")));
    assert_eq!(host.count(metrics::DENIED), 1);
    // No policy allows ana to read another user: the default deny is named.
    let (_, host) = run(&loaded, MockHost::request("GET", "/users/42").bearer(&ana_token()));
    let line: serde_json::Value = serde_json::from_str(&host.logs[0]).unwrap();
    assert_eq!((line["policy"].clone(), line["reason"].as_str()), (serde_json::Value::Null, Some("default_deny")));
}

#[test]
fn allowed_requests_are_logged_when_sampled_and_never_by_default() {
    let (_, host) = run(&load(&example_bundle()), MockHost::request("GET", "/users/me").bearer(&ana_token()));
    assert!(host.logs.is_empty());
    let mut bundle = example_bundle();
    bundle.settings.log_allowed_every = 3;
    let loaded = load(&bundle);
    let logged: Vec<String> = (0..6).flat_map(|_| run(&loaded, MockHost::request("GET", "/users/me").bearer(&ana_token())).1.logs).collect();
    assert_eq!(logged.len(), 2, "one in three of six");
    let line: serde_json::Value = serde_json::from_str(&logged[0]).unwrap();
    assert_eq!((line["event"].as_str(), line["policy"].as_str(), line["subject"].as_str()), (Some("allowed"), Some("users-allow-read-access"), Some("ana")));
}

#[test]
fn a_method_without_an_action_is_denied_after_authentication() {
    let loaded = load(&example_bundle());
    assert_eq!(run(&loaded, MockHost::request("TRACE", "/swagger.json").bearer(&ana_token())).1.status(), Some(403));
    assert_eq!(run(&loaded, MockHost::request("TRACE", "/swagger.json")).1.status(), Some(401));
}

#[test]
fn tokens_come_from_the_configured_query_parameter_or_cookie_and_are_stripped() {
    let mut bundle = example_bundle();
    bundle.settings.token_sources = vec![
        TokenSource::Header { name: "authorization".into(), scheme: Some("Bearer".into()) },
        TokenSource::Query { name: "access_token".into() },
        TokenSource::Cookie { name: "session".into() },
    ];
    let loaded = load(&bundle);
    let token = ana_token();
    let (flow, host) = run(&loaded, MockHost::request("GET", &format!("/users/me?a=1&access_token={token}")));
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.get(":path"), Some("/users/me?a=1"));
    let (flow, host) = run(&loaded, MockHost::request("GET", "/users/me").header("cookie", &format!("theme=dark; session={token}")));
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.get("cookie"), Some("theme=dark"));
    let both = MockHost::request("GET", &format!("/users/me?access_token={token}")).bearer(&token);
    let (_, host) = run(&loaded, both);
    assert_eq!(host.status(), Some(401));
    assert!(host.response_header("www-authenticate").unwrap().contains(r#"error="invalid_request""#));
}

#[test]
fn shadow_mode_records_the_decision_and_lets_the_request_through() {
    let mut bundle = example_bundle();
    bundle.settings.mode = Mode::Shadow;
    let loaded = load(&bundle);
    let (flow, host) = run(&loaded, MockHost::request("GET", "/admin/x").bearer(&contractor()));
    assert_eq!(flow, Flow::Continue);
    assert!(host.response.is_none());
    assert_eq!(host.count(metrics::SHADOW_DENIED), 1);
    assert_eq!(host.count(metrics::DENIED), 1);
    assert!(host.logs[0].contains(r#""event":"shadow_denied""#));
    assert_eq!(host.get("x-auth-username"), Some("eve"), "the upstream still learns who called");
    let (flow, host) = run(&loaded, MockHost::request("GET", "/users/me"));
    assert_eq!((flow, host.count(metrics::SHADOW_DENIED)), (Flow::Continue, 1));
    // A rejected token goes through in shadow mode, but not to the upstream (issue 14, item 8).
    let (flow, host) = run(&loaded, MockHost::request("GET", "/users/me").bearer("not.a.token"));
    assert_eq!((flow, host.get("authorization")), (Flow::Continue, None));
    let expired = jwt_minter::mint(&platform(), "RS256", Some("platform"), &json!({"username": "ana", "iat": NOW - 7200, "exp": NOW - 3600}));
    let (flow, host) = run(&loaded, MockHost::request("GET", "/users/me").bearer(&expired));
    assert_eq!((flow, host.get("authorization"), host.count(metrics::UNAUTHENTICATED)), (Flow::Continue, None, 1));
}

#[test]
fn a_repeated_token_is_served_from_the_cache_until_it_expires() {
    let loaded = load(&example_bundle());
    let mut cache = TokenCache::new(8);
    let token = jwt_minter::mint(&platform(), "RS256", Some("platform"), &json!({"username": "ana", "roles": "user", "iat": NOW, "exp": NOW + 100}));
    let mut first = MockHost::request("GET", "/users/me").bearer(&token);
    assert_eq!(engine::on_request_headers(&loaded, &mut cache, &mut first), Flow::Continue);
    assert_eq!((first.count(metrics::CACHE_MISSES), first.count(metrics::CACHE_HITS)), (1, 0));
    let mut second = MockHost::request("GET", "/users/me").bearer(&token);
    assert_eq!(engine::on_request_headers(&loaded, &mut cache, &mut second), Flow::Continue);
    assert_eq!(second.count(metrics::CACHE_HITS), 1);
    let mut later = MockHost::request("GET", "/users/me").bearer(&token);
    later.now = NOW + 100 + 61;
    assert_eq!(engine::on_request_headers(&loaded, &mut cache, &mut later), Flow::Answered);
    assert_eq!(later.count(metrics::CACHE_HITS), 0, "an expired entry is no hit");
    assert!(later.response_header("www-authenticate").unwrap().contains("expired"));
}

#[test]
fn an_mtls_client_certificate_authenticates_when_there_is_no_token() {
    let mut bundle = example_bundle();
    let spiffe = "spiffe://cluster.local/ns/ops/sa/scraper";
    bundle.settings.mtls = Some(Mtls { identity: MtlsIdentity::UriSan, roles: [(spiffe.to_string(), vec!["service".to_string()])].into() });
    let loaded = load(&bundle);
    let with_cert = |mtls: bool| {
        MockHost::request("GET", "/internal/metrics")
            .property("connection.mtls", &[u8::from(mtls)])
            .property("connection.uri_san_peer_certificate", spiffe.as_bytes())
            .property("source.address", b"10.2.3.4:6000")
    };
    let (flow, host) = run(&loaded, with_cert(true));
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.get("x-auth-username"), Some(spiffe));
    assert_eq!(run(&loaded, with_cert(false)).1.status(), Some(401), "no verified certificate, no identity");
    let (_, outside) = run(&loaded, with_cert(true).property("source.address", b"203.0.113.1:6000"));
    assert_eq!(outside.status(), Some(403), "the CIDR condition still applies");
    let (_, ana) = run(&loaded, with_cert(true).bearer(&ana_token()));
    assert_eq!(ana.status(), Some(403), "a token, when present, decides: ana is no service");
}

#[test]
fn a_spoofed_subject_cn_does_not_authenticate_and_the_dns_san_can() {
    // admin-svc may read the admin API; the attacker's certificates only spell it inside
    // another attribute (RFC 4514 escapes), or beside their own CN.
    let mut bundle = example_bundle();
    let roles: std::collections::BTreeMap<String, Vec<String>> = [("admin-svc".to_string(), vec!["admin".to_string()])].into();
    bundle.settings.mtls = Some(Mtls { identity: MtlsIdentity::SubjectCn, roles: roles.clone() });
    let loaded = load(&bundle);
    let with_subject = |subject: &str| {
        MockHost::request("GET", "/admin/settings").property("connection.mtls", &[1]).property("connection.subject_peer_certificate", subject.as_bytes())
    };
    assert_eq!(run(&loaded, with_subject("CN=admin-svc,O=Example")).0, Flow::Continue);
    assert_eq!(run(&loaded, with_subject("O=Evil\\,CN=admin-svc,C=US")).1.status(), Some(401), "no CN at all");
    // The escaped `CN=admin-svc` is part of the OU: the caller is the real CN, with no roles.
    for subject in ["OU=x\\,CN=admin-svc,CN=attacker", "OU=x\\,CN=admin-svc+CN=z"] {
        let (flow, host) = run(&loaded, with_subject(subject));
        assert_eq!((flow, host.status()), (Flow::Answered, Some(403)), "{subject}");
    }
    assert_eq!(run(&loaded, with_subject("CN=admin-svc,CN=attacker")).1.status(), Some(401), "two CNs: no one");
    // The DNS SAN as the identity.
    bundle.settings.mtls = Some(Mtls { identity: MtlsIdentity::DnsSan, roles });
    let loaded = load(&bundle);
    let request = MockHost::request("GET", "/admin/settings").property("connection.mtls", &[1]).property("connection.dns_san_peer_certificate", b"admin-svc");
    let (flow, host) = run(&loaded, request);
    assert_eq!((flow, host.get("x-auth-username")), (Flow::Continue, Some("admin-svc")));
}

#[test]
fn a_bad_configuration_is_refused_with_a_reason() {
    let bundle = example_bundle();
    let bad = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut value = serde_json::to_value(&bundle).unwrap();
        edit(&mut value);
        policy_filter::config::load(value.to_string().as_bytes()).err().unwrap()
    };
    assert!(bad(&|v| v["format"] = json!(99)).contains("format 99 is not supported"));
    assert!(bad(&|v| v["table"] = json!("AAAA")).contains("not a decision table"));
    assert!(bad(&|v| v["table_hash"] = json!("00")).contains("table_hash does not match"));
    assert!(bad(&|v| v["providers"][0]["keys"][0]["x"] = json!("AAAA")).contains("key partner-es256"));
    assert!(bad(&|v| v["settings"]["ignore_patterns"] = json!(["^(unclosed$"])).contains("ignore pattern"));
    assert!(bad(&|v| v["surprise"] = json!(1)).contains("unknown field"));
    assert!(policy_filter::config::load(b"not json").err().unwrap().contains("not a policy bundle"));
    assert!(policy_filter::config::load(b"").err().unwrap().contains("no plugin configuration"));
}

#[test]
fn the_client_address_is_asked_for_only_when_a_condition_reads_it() {
    // ana's GET /users/me never reaches the one CIDR condition (internal-network-metrics), so
    // the filter spares the proxy the property call.
    let loaded = load(&example_bundle());
    let (flow, host) = run(&loaded, MockHost::request("GET", "/users/me").bearer(&ana_token()).property("source.address", b"10.9.8.7:4000"));
    assert_eq!((flow, host.status()), (Flow::Continue, None));
    assert!(host.properties_asked.borrow().is_empty(), "asked: {:?}", host.properties_asked.borrow());
}
