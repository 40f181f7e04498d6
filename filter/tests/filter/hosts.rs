//! The real module under each host profile of the harness (Envoy, and NGINX or Kong through
//! ngx_wasm_module): it starts, takes the client's identity headers and the token out of
//! what the upstream receives, forwards the path it decided on, and fails closed without
//! taking the proxy down. Every expectation is about what the upstream receives, as the
//! profile forwards it, not about what the module believes it did.

use decision_table::bundle::{Bundle, ProxyHost};
use proxy_wasm_harness::cases::{CaseFile, Replay, run_case};
use proxy_wasm_harness::{HostProfile, LoadError, Outcome, Plugin, Request};

use serde_json::json;

use crate::mock::{NOW, ana_token, claims, example, example_bundle, platform};

const NGX: HostProfile = HostProfile::NgxWasmModule;

fn bundle_for(host: ProxyHost) -> String {
    let mut bundle: Bundle = example_bundle();
    bundle.settings.host = host;
    serde_json::to_string(&bundle).unwrap()
}

/// The example bundle as `render` writes it for `host` (Envoy's, or ngx_wasm_module's).
fn rendered_for(host: HostProfile) -> String {
    bundle_for(if host == HostProfile::Envoy { ProxyHost::Envoy } else { ProxyHost::NgxWasmModule })
}

fn start(host: HostProfile, configuration: String) -> Result<Plugin, LoadError> {
    crate::wasm::plugin().host(host).plugin_config(configuration).now(NOW).start()
}

fn plugin(host: HostProfile) -> Plugin {
    start(host, rendered_for(host)).unwrap_or_else(|e| panic!("{}: {e}", host.name()))
}

fn ana() -> Request {
    Request::get("/users/me").header("authorization", &format!("Bearer {}", ana_token()))
}

/// Every non-empty value of `name` the upstream received.
fn upstream_values(outcome: &Outcome, name: &str) -> Vec<String> {
    outcome.upstream_header_values(name).into_iter().filter(|v| !v.is_empty()).map(str::to_string).collect()
}

#[test]
fn the_example_walkthrough_passes_under_every_host_with_rendered_and_auto_bundles() {
    let file: CaseFile = serde_json::from_value(jwt_minter::example_cases(&example("keys")).unwrap()).unwrap();
    // The rendered configurations; a plain proxy_pass is the path test's subject.
    for host in [HostProfile::Envoy, NGX] {
        for configuration in [rendered_for(host), bundle_for(ProxyHost::Auto)] {
            let builder = crate::wasm::plugin().host(host).plugin_config(configuration).now(NOW);
            let mut replay = Replay::start(&file, builder).unwrap_or_else(|e| panic!("{}: {e}", host.name()));
            for case in &file.cases {
                let result = replay.run(case);
                assert!(result.passed, "{}: {}: {:?}", host.name(), case.name, result.reason);
            }
        }
    }
}

#[test]
fn the_module_starts_in_ngx_wasm_module_with_rsa_and_ec_keys_and_never_asks_for_a_foreign_function() {
    // The example bundle has RSA (platform) and EC (partner) keys: on Envoy both self-tests
    // call verify_signature; ngx_wasm_module would trap on the first call.
    for configuration in [rendered_for(NGX), bundle_for(ProxyHost::Auto)] {
        let mut plugin = start(NGX, configuration).unwrap();
        let logs: Vec<String> = plugin.logs().iter().map(|l| l.message.clone()).collect();
        assert!(logs.iter().any(|l| l == "RS256/384/512 signatures are checked in wasm"), "{logs:#?}");
        assert!(logs.iter().any(|l| l == "ES256/384 signatures are checked in wasm"), "{logs:#?}");
        let outcome = plugin.send(&ana());
        assert!(outcome.forwarded(), "{:?}", outcome.guest_failure);
        assert!(plugin.failure().is_none());
    }
}

#[test]
fn the_profile_traps_an_unknown_foreign_function_as_ngx_wasm_module_does() {
    // A bundle that claims Envoy makes the module ask for verify_signature: the profile traps
    // it, and the configuration fails, as in the real host (the issue's first finding).
    match start(NGX, bundle_for(ProxyHost::Envoy)) {
        Err(LoadError::Failed { phase, reason, .. }) => {
            assert_eq!(phase, "proxy_on_configure");
            assert!(reason.contains("unknown foreign function"), "{reason}");
        }
        Err(other) => panic!("expected a trap, got {other}"),
        Ok(_) => panic!("expected a trap"),
    }
}

#[test]
fn spoofed_identity_headers_never_reach_the_upstream() {
    for host in HostProfile::ALL {
        let mut plugin = plugin(host);
        // An allowed request: the filter's values, and only those.
        let spoofed = ana().header("x-auth-username", "root").header("X-Auth-Roles", "admin").header("x-auth-policy", "forged");
        let outcome = plugin.send(&spoofed);
        assert!(outcome.forwarded(), "{}", host.name());
        assert_eq!(upstream_values(&outcome, "x-auth-username"), ["ana"], "{}", host.name());
        assert_eq!(upstream_values(&outcome, "x-auth-roles"), ["user"], "{}", host.name());
        assert_eq!(upstream_values(&outcome, "x-auth-policy"), ["users-allow-read-access"], "{}", host.name());
        // A bypassed path: nothing the client claimed.
        let outcome = plugin.send(&Request::get("/health").header("x-auth-username", "root").header("x-auth-user-id", "u-1"));
        assert!(outcome.forwarded(), "{}", host.name());
        assert!(upstream_values(&outcome, "x-auth-username").is_empty(), "{}: {:?}", host.name(), outcome.upstream);
        assert!(upstream_values(&outcome, "x-auth-user-id").is_empty(), "{}", host.name());
        // Twice: Envoy removes both; ngx_wasm_module could only overwrite one, so it is refused.
        let outcome = plugin.send(&ana().header("x-auth-roles", "admin").header("x-auth-roles", "admin"));
        match host {
            HostProfile::Envoy => assert_eq!(upstream_values(&outcome, "x-auth-roles"), ["user"]),
            _ => assert_eq!((outcome.status(), outcome.forwarded()), (400, false), "{}", host.name()),
        }
    }
}

#[test]
fn the_token_never_reaches_the_upstream() {
    for host in HostProfile::ALL {
        let mut plugin = plugin(host);
        for _ in 0..2 {
            // Uncached, then cached.
            let outcome = plugin.send(&ana());
            assert!(outcome.forwarded(), "{}", host.name());
            assert!(upstream_values(&outcome, "authorization").is_empty(), "{}: {:?}", host.name(), outcome.upstream);
        }
    }
}

#[test]
fn the_removal_the_harness_models_is_what_ngx_wasm_module_does() {
    // Without the filter's care, a removed header reaches an NGINX upstream: the profile's own
    // behaviour, checked with the workspace's header fixture, which removes `x-forged`.
    let module = proxy_wasm_harness::ProxyWasmModule::from_file(proxy_wasm_harness::workspace::fixture("http-headers").unwrap()).unwrap();
    for (host, reaches) in [(HostProfile::Envoy, false), (NGX, true)] {
        let mut plugin = module.plugin().ngx_shm_kv("policy_filter").host(host).start().unwrap();
        let outcome = plugin.send(&Request::get("/").header("x-forged", "secret"));
        assert_eq!(outcome.upstream_header_values("x-forged") == ["secret"], reaches, "{}: {:?}", host.name(), outcome.upstream);
    }
}

#[test]
fn the_upstream_gets_the_path_that_was_decided_on() {
    let cases = [
        ("//users/./me", "/users/me"),
        ("/users/%6De?x=1", "/users/me?x=1"),
        ("/users/xx/../me?access=1", "/users/me?access=1"),
    ];
    for host in [HostProfile::Envoy, NGX] {
        let mut plugin = plugin(host);
        for (sent, forwarded) in cases {
            let request = Request::get(sent).header("authorization", &format!("Bearer {}", ana_token()));
            let outcome = plugin.send(&request);
            assert!(outcome.forwarded(), "{}: {sent}", host.name());
            assert_eq!(outcome.upstream_header(":path"), Some(forwarded), "{}: {sent}", host.name());
        }
        // NGINX hands the module `/users/a b` (decoded): it goes upstream encoded, as on Envoy.
        let root = jwt_minter::mint(&platform(), "RS256", Some("platform"), &claims(json!({"username": "root", "roles": "admin"})));
        let outcome = plugin.send(&Request::get("/users/a%20b").header("authorization", &format!("Bearer {root}")));
        assert_eq!(outcome.upstream_header(":path"), Some("/users/a%20b"), "{}", host.name());
    }
    // With a plain `proxy_pass`, NGINX forwards the raw request line whatever the module
    // says: the rendered configuration's `$uri$is_args$args` is what makes it hold.
    let mut plain = plugin(HostProfile::NgxWasmModulePlainProxyPass);
    let outcome = plain.send(&Request::get("//users/./me").header("authorization", &format!("Bearer {}", ana_token())));
    assert_eq!(outcome.upstream_header(":path"), Some("//users/./me"));
}

#[test]
fn nginx_answers_some_requests_before_the_filter_runs() {
    let mut plugin = plugin(NGX);
    let token = format!("Bearer {}", ana_token());
    let twice = Request::get("/users/me").header("authorization", &token).header("Authorization", &token);
    assert_eq!(plugin.send(&twice).status(), 400);
    assert_eq!(plugin.send(&Request::new("TRACE", "/users/me")).status(), 405);
    assert_eq!(plugin.send(&Request::get("/users/%00")).status(), 400);
    assert_eq!(plugin.send(&Request::get("/../users/me")).status(), 400);
    let huge = format!("Bearer {}", "a".repeat(17_000));
    assert_eq!(plugin.send(&Request::get("/users/me").header("authorization", &huge)).status(), 400);
    assert_eq!(plugin.send(&Request::post("/users/me").body(vec![b'x'; (1 << 20) + 1])).status(), 413);
    let outcome = plugin.send(&twice);
    assert!(outcome.answered_by_proxy, "answered by NGINX, not the module: {:?}", outcome.local_reply);
    assert!(outcome.local_reply.unwrap().details.contains("duplicate header line"));
}

#[test]
fn a_refused_configuration_fails_closed_without_stopping_ngx_wasm_module() {
    // Envoy rejects it and keeps the previous configuration.
    assert!(matches!(start(HostProfile::Envoy, "{}".into()), Err(LoadError::Refused { .. })));
    // ngx_wasm_module would stop every worker: the module accepts and answers 503 instead.
    let mut plugin = start(NGX, "{}".into()).unwrap();
    for request in [ana(), Request::get("/health")] {
        let outcome = plugin.send(&request);
        assert_eq!((outcome.status(), outcome.forwarded()), (503, false));
    }
    let logs: Vec<String> = plugin.logs().iter().map(|l| l.message.clone()).collect();
    assert!(logs.iter().any(|l| l.contains("refused its configuration")), "{logs:#?}");
    assert!(logs.iter().any(|l| l.contains("answered 503")), "{logs:#?}");
}

#[test]
fn refusals_are_logged_at_warn_which_nginx_shows_by_default() {
    let mut plugin = plugin(NGX);
    plugin.send(&Request::get("/users/me").header("x-request-id", "r-9"));
    let line = plugin.logs().iter().find(|l| l.message.contains(r#""request_id":"r-9""#)).unwrap();
    assert_eq!(line.level, proxy_wasm_harness::LogLevel::Warn);
}

#[test]
fn the_client_address_from_ngx_wasm_module_has_no_port_and_cidr_conditions_still_hold() {
    let file: CaseFile = serde_json::from_value(jwt_minter::example_cases(&example("keys")).unwrap()).unwrap();
    let mut plugin = plugin(NGX);
    for name in ["metrics from the internal network (HS256)", "metrics from outside"] {
        let case = file.cases.iter().find(|c| c.name == name).unwrap();
        let result = run_case(&mut plugin, case);
        assert!(result.passed, "{name}: {:?}", result.reason);
    }
}

#[test]
fn hostcalls_per_request_stay_few() {
    // The counts the README reports; a change in them shows here first.
    for host in [HostProfile::Envoy, NGX] {
        let mut plugin = plugin(host);
        plugin.send(&Request::get("/health"));
        let bypassed = plugin.send(&Request::get("/health")).hostcalls;
        plugin.send(&ana());
        plugin.send(&ana()); // the first cache hit defines its counter
        let cached = plugin.send(&ana()).hostcalls;
        assert!(bypassed.len() <= 3, "{}: a bypassed path made {bypassed:?}", host.name());
        assert!(cached.len() <= 9, "{}: a cached allow made {cached:?}", host.name());
    }
}

/// The example bundle for `host`, edited.
fn edited(host: HostProfile, edit: impl Fn(&mut Bundle)) -> Plugin {
    let mut bundle: Bundle = example_bundle();
    bundle.settings.host = if host == HostProfile::Envoy { ProxyHost::Envoy } else { ProxyHost::NgxWasmModule };
    edit(&mut bundle);
    start(host, serde_json::to_string(&bundle).unwrap()).unwrap()
}

#[test]
fn a_decoded_crlf_after_a_decoded_question_mark_is_refused_not_forwarded() {
    // NGINX decodes %3F and %0D%0A into r->uri; `$uri` would copy them into the upstream's
    // request line (a header of the client's choosing). Found by the adversarial review.
    for host in [HostProfile::Envoy, NGX] {
        let mut plugin = plugin(host);
        for path in ["/health%3F%20HTTP/1.1%0D%0AX-Auth-User-Id:%20admin%0D%0AX-Pad:%20", "/users/me%3F%0D%0AX-Auth-Roles:%20admin"] {
            let mut request = ana();
            request.path = path.to_string();
            let outcome = plugin.send(&request);
            assert_eq!((outcome.status(), outcome.forwarded()), (400, false), "{}: {path}", host.name());
        }
    }
}

#[test]
fn a_query_token_is_stripped_even_where_setting_the_path_keeps_the_old_query() {
    // ngx_wasm_module keeps r->args when the new :path has no `?`.
    for host in [HostProfile::Envoy, NGX] {
        let mut plugin = edited(host, |b| b.settings.token_sources = vec![decision_table::bundle::TokenSource::Query { name: "access_token".into() }]);
        let outcome = plugin.send(&Request::get(&format!("/users/me?access_token={}", ana_token())));
        assert!(outcome.forwarded(), "{}", host.name());
        let path = outcome.upstream_header(":path").unwrap();
        assert!(!path.contains("access_token"), "{}: {path}", host.name());
    }
}

#[test]
fn shadow_mode_never_forwards_what_the_filter_cannot_take_out() {
    // Shadow mode lets denials through, but not a request whose repeated identity header or
    // unnormalisable path would reach the upstream as the client sent it.
    let mut plugin = edited(NGX, |b| b.settings.mode = decision_table::bundle::Mode::Shadow);
    let repeated = ana().header("x-auth-user-id", "admin").header("x-auth-user-id", "admin");
    assert_eq!(plugin.send(&repeated).status(), 400);
    let outcome = plugin.send(&Request::get("/users%0D%0AX-Auth-User-Id:%20admin"));
    assert_eq!((outcome.status(), outcome.forwarded()), (400, false));
    // A plain denial still goes through in shadow mode.
    assert!(plugin.send(&Request::get("/users/42")).forwarded());
}

#[test]
fn identity_headers_spelled_with_underscores_are_taken_out() {
    for host in [HostProfile::Envoy, NGX] {
        let mut plugin = plugin(host);
        let outcome = plugin.send(&Request::get("/health").header("x_auth_user_id", "admin").header("X_Auth_Roles", "admin"));
        assert!(outcome.forwarded());
        assert!(upstream_values(&outcome, "x_auth_user_id").is_empty(), "{}: {:?}", host.name(), outcome.upstream);
        assert!(upstream_values(&outcome, "x_auth_roles").is_empty(), "{}", host.name());
    }
}
