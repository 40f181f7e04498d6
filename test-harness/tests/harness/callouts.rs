//! Callouts on the host clock (delayed, reset, timed-out answers) and each host's dispatch
//! rules, through the `idp-refresh` fixture (an `on_tick` JWKS fetcher).

use std::time::Duration;

use proxy_wasm_harness::{CallReply, HostProfile, HttpCallRequest, LoadError, Plugin, Request, Response};

use crate::{fixture, logged};

const START_MS: u64 = 1_800_000_000_000;
const NGX: HostProfile = HostProfile::NgxWasmModule;
const ENVOY: HostProfile = HostProfile::Envoy;

fn jwks(_: &HttpCallRequest) -> CallReply {
    CallReply::Respond(Response::new(200).body(r#"{"keys":[]}"#))
}

fn idp(host: HostProfile, config: &str, stub: impl Fn(&HttpCallRequest) -> CallReply + Send + Sync + 'static) -> Plugin {
    idp_at(host, config, "idp.local", stub)
}

fn idp_at(host: HostProfile, config: &str, upstream: &str, stub: impl Fn(&HttpCallRequest) -> CallReply + Send + Sync + 'static) -> Plugin {
    fixture("idp-refresh").plugin().host(host).ngx_shm_kv("*").plugin_config(config).cluster(upstream, stub).start().unwrap()
}

fn advance_ms(plugin: &mut Plugin, ms: u64) {
    plugin.advance_time(Duration::from_millis(ms)).unwrap();
}

#[test]
fn ngx_traps_a_dispatch_from_on_configure_where_envoy_sends_it() {
    let config = "dispatch_on_configure=true\ntick_ms=0";
    let envoy = idp(ENVOY, config, jwks);
    assert!(logged(&envoy, "dispatched from on_configure"));
    assert_eq!(envoy.http_calls().len(), 1);
    assert_eq!(envoy.shared_data("jwks").as_deref(), Some(&br#"{"keys":[]}"#[..]), "answered during start-up");

    let error = fixture("idp-refresh").plugin().host(NGX).ngx_shm_kv("*").plugin_config(config).cluster("idp.local", jwks).start().err().unwrap();
    assert!(matches!(error, LoadError::Failed { phase: "proxy_on_configure", .. }), "{error}");
    assert!(error.to_string().contains("can only send HTTP dispatch during"), "{error}");
}

#[test]
fn a_delayed_answer_arrives_only_when_the_clock_reaches_it() {
    for host in [ENVOY, NGX] {
        let mut plugin = idp(host, "", |r| jwks(r).after(Duration::from_millis(300)));
        advance_ms(&mut plugin, 1000);
        assert!(logged(&plugin, &format!("dispatched at {}", START_MS + 1000)), "{host:?}");
        assert_eq!((plugin.pending_http_calls(), plugin.shared_data("jwks")), (1, None), "{host:?}");
        advance_ms(&mut plugin, 299);
        assert_eq!(plugin.shared_data("jwks"), None, "{host:?}: not due yet");
        advance_ms(&mut plugin, 1);
        assert!(plugin.shared_data("jwks").is_some(), "{host:?}");
        assert!(logged(&plugin, &format!("stored jwks at {}", START_MS + 1300)), "{host:?}: delivered at its due time");
        assert_eq!(plugin.pending_http_calls(), 0);
    }
}

#[test]
fn an_answer_later_than_the_timeout_fails_at_the_timeout() {
    for (host, status) in [(ENVOY, "none"), (NGX, "timeout")] {
        for stub in [CallReply::Timeout, CallReply::Respond(Response::new(200)).after(Duration::from_secs(5))] {
            let mut plugin = idp(host, "timeout_ms=500", move |_| stub.clone());
            advance_ms(&mut plugin, 1499);
            assert!(!logged(&plugin, "call failed"), "{host:?}");
            advance_ms(&mut plugin, 1);
            assert!(logged(&plugin, &format!("call failed at {}: status={status}", START_MS + 1500)), "{host:?}: {:?}", plugin.logs());
            assert_eq!(plugin.shared_data("jwks"), None);
        }
    }
}

#[test]
fn a_reset_fails_at_once_and_a_delay_zero_answer_comes_right_after_the_tick() {
    for (host, status) in [(ENVOY, "none"), (NGX, "broken connection")] {
        let mut reset = idp(host, "", |_| CallReply::Fail);
        advance_ms(&mut reset, 1000);
        assert!(logged(&reset, &format!("call failed at {}: status={status}", START_MS + 1000)), "{host:?}: {:?}", reset.logs());
        let mut at_once = idp(host, "", jwks);
        advance_ms(&mut at_once, 1000);
        assert!(logged(&at_once, &format!("stored jwks at {}", START_MS + 1000)), "{host:?}");
    }
}

#[test]
fn a_request_paused_on_a_delayed_callout_waits_for_it() {
    for host in [ENVOY, NGX] {
        let mut plugin = idp(host, "tick_ms=0", |r| jwks(r).after(Duration::from_millis(250)));
        let before = plugin.now_nanos();
        let outcome = plugin.send(&Request::get("/dispatch"));
        assert_eq!(outcome.status(), 200, "{host:?}: {outcome:?}");
        assert_eq!(outcome.body_text(), r#"{"keys":[]}"#);
        assert_eq!(plugin.now_nanos() - before, 250_000_000, "{host:?}: the clock moved to the answer");
    }
}

#[test]
fn ngx_resumes_a_request_once_its_dispatches_are_answered_envoy_waits_for_the_module() {
    let mut ngx = idp(NGX, "tick_ms=0", jwks);
    let outcome = ngx.send(&Request::get("/dispatch?reply=no"));
    assert!(outcome.forwarded(), "ngx_http_proxy_wasm_dispatch_resume_handler continues: {outcome:?}");
    let mut envoy = idp(ENVOY, "tick_ms=0", jwks);
    let outcome = envoy.send(&Request::get("/dispatch?reply=no"));
    assert!(outcome.stalled, "Envoy waits for proxy_continue_stream: {outcome:?}");
}

#[test]
fn a_missing_path_traps_a_ngx_request_is_logged_from_ngx_on_tick_and_is_bad_argument_on_envoy() {
    let mut ngx = idp(NGX, "path=", jwks);
    let outcome = ngx.send(&Request::get("/dispatch"));
    assert_eq!(outcome.status(), 503);
    assert!(outcome.guest_failure.as_deref().unwrap_or_default().contains("dispatch failed: no :path"), "{outcome:?}");

    let mut ngx = idp(NGX, "path=", jwks);
    advance_ms(&mut ngx, 1000);
    assert!(logged(&ngx, "dispatch failed: no :path"));
    assert!(logged(&ngx, "dispatch refused: InternalFailure"), "{:?}", ngx.logs());
    assert!(ngx.failure().is_none(), "on_tick's fake request only logs");

    let mut envoy = idp(ENVOY, "path=", jwks);
    assert_eq!(envoy.send(&Request::get("/dispatch")).body_text(), "dispatch refused: BadArgument");
    advance_ms(&mut envoy, 1000);
    assert!(logged(&envoy, "dispatch refused: BadArgument"));
}

#[test]
fn ngx_takes_an_address_with_an_optional_authority() {
    let mut ngx = idp_at(NGX, "tick_ms=0\nauthority=none\nupstream=10.0.0.5:8443", "10.0.0.5:8443", jwks);
    assert_eq!(ngx.send(&Request::get("/dispatch")).status(), 200);
    assert_eq!(ngx.http_calls()[0].cluster, "10.0.0.5:8443");
    let mut envoy = idp(ENVOY, "tick_ms=0\nauthority=none", jwks);
    assert_eq!(envoy.send(&Request::get("/dispatch")).body_text(), "dispatch refused: BadArgument", ":authority is required");

    let mut bad_port = idp(NGX, "tick_ms=0", jwks);
    let outcome = bad_port.send(&Request::get("/dispatch?to=idp.local:99999"));
    assert!(outcome.guest_failure.as_deref().unwrap_or_default().contains("invalid port"), "{outcome:?}");
}

#[test]
fn an_address_without_a_stub_fails_later_on_ngx_and_is_refused_on_envoy() {
    let mut ngx = idp(NGX, "tick_ms=0", jwks);
    let by_name = ngx.send(&Request::get("/dispatch?to=nowhere.local"));
    assert_eq!((by_name.status(), by_name.response_header("x-dispatch-status")), (502, Some("resolver failure")));
    let by_ip = ngx.send(&Request::get("/dispatch?to=10.9.9.9:80"));
    assert_eq!((by_ip.status(), by_ip.response_header("x-dispatch-status")), (502, Some("broken connection")));
    let answered = ngx.send(&Request::get("/dispatch"));
    assert_eq!(answered.response_header("x-dispatch-status"), Some("ok"));

    let mut envoy = idp(ENVOY, "tick_ms=0", jwks);
    assert_eq!(envoy.send(&Request::get("/dispatch?to=nowhere.local")).body_text(), "dispatch refused: BadArgument");
    assert!(logged(&envoy, "unknown cluster \"nowhere.local\""));
}

#[test]
fn ngx_only_warns_about_an_unknown_scheme() {
    let mut ngx = idp(NGX, "tick_ms=0\nscheme=ftp", jwks);
    assert_eq!(ngx.send(&Request::get("/dispatch")).status(), 200);
    assert!(logged(&ngx, "unknown scheme"));
}
