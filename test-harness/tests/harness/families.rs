//! One test per ABI family, each through a module written the way the SDK's examples are.

use std::time::Duration;

use proxy_wasm_harness::{CallReply, MetricKind, Request, Response, Status};

use crate::{fixture, logged};

#[test]
fn passthrough_forwards_the_request_untouched() {
    let mut plugin = fixture("passthrough").plugin().start().unwrap();
    let outcome = plugin.send(&Request::post("/orders?id=7").header("X-Custom", "1").body("payload"));
    assert!(outcome.forwarded());
    assert_eq!(outcome.status(), 200);
    let upstream = outcome.upstream.unwrap();
    assert_eq!(upstream.body, b"payload");
    assert!(upstream.headers.contains(&(":path".into(), "/orders?id=7".into())));
    assert!(upstream.headers.contains(&("x-custom".into(), "1".into())), "names arrive lower-cased");
    assert!(outcome.fuel > 0);
}

#[test]
fn headers_are_read_edited_and_answered_locally() {
    let mut plugin = fixture("http-headers").plugin().start().unwrap();

    let outcome = plugin.send(&Request::get("/users/me").header("x-forged", "admin").header("accept", "*/*"));
    assert!(outcome.forwarded());
    assert_eq!(outcome.upstream_header("x-echo-path"), Some("/users/me"));
    assert_eq!(outcome.upstream_header("x-forged"), None, "removed before the upstream");
    // 4 pseudo-headers + accept + x-echo-path, counted after the removal.
    assert_eq!(outcome.upstream_header("x-echo-count"), Some("6"));
    assert_eq!(outcome.response_header("powered-by"), Some("proxy-wasm"));
    assert!(logged(&plugin, "#2 -> :path: /users/me"));
    assert!(logged(&plugin, "#2 completed."));

    let hello = plugin.send(&Request::get("/hello"));
    assert!(!hello.forwarded());
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.body_text(), "Hello, World!\n");
    assert_eq!(hello.response_header("hello"), Some("World"));
    assert_eq!(hello.local_reply.unwrap().status, 200);
    assert!(logged(&plugin, "#3 completed."), "every request gets a new context");
}

#[test]
fn configuration_reaches_the_module_and_a_refusal_fails_the_load() {
    let mut plugin = fixture("http-config").plugin().plugin_config("team-a").start().unwrap();
    let outcome = plugin.send(&Request::get("/"));
    assert_eq!(outcome.response_header("custom-header"), Some("team-a"));

    let refused = fixture("http-config").plugin().plugin_config("  ").start().err().unwrap();
    let message = refused.to_string();
    assert!(message.contains("proxy_on_configure returned false"), "{message}");
    assert!(message.contains("the configuration must be a non-empty UTF-8 header value"), "{message}");
}

fn even_or_odd(byte: u8) -> impl Fn(&proxy_wasm_harness::HttpCallRequest) -> CallReply + Send + Sync {
    move |_| CallReply::Respond(Response::new(200).body(vec![byte]))
}

#[test]
fn callouts_pause_the_request_until_the_answer_arrives() {
    let mut allowed = fixture("http-callout").plugin().cluster("httpbin", even_or_odd(4)).start().unwrap();
    let outcome = allowed.send(&Request::get("/anything"));
    assert!(outcome.forwarded(), "{outcome:?}");
    assert_eq!(outcome.response_header("powered-by"), Some("proxy-wasm"));
    let call = &allowed.http_calls()[0];
    assert_eq!(call.cluster, "httpbin");
    assert!(call.headers.contains(&(":path".into(), "/bytes/1".into())));
    assert_eq!(call.timeout_ms, 1000);

    let mut denied = fixture("http-callout").plugin().cluster("httpbin", even_or_odd(3)).start().unwrap();
    let outcome = denied.send(&Request::get("/anything"));
    assert_eq!(outcome.status(), 403);
    assert_eq!(outcome.body_text(), "Access forbidden.\n");
    assert!(outcome.upstream.is_none());

    let mut failing = fixture("http-callout").plugin().cluster("httpbin", |_| CallReply::Fail).start().unwrap();
    assert_eq!(failing.send(&Request::get("/")).status(), 403, "a failed callout has no body");

    let mut no_cluster = fixture("http-callout").plugin().start().unwrap();
    let outcome = no_cluster.send(&Request::get("/"));
    assert_eq!(outcome.status(), 503);
    assert!(logged(&no_cluster, "unknown cluster \"httpbin\""));
}

#[test]
fn bodies_are_buffered_and_rewritten_both_ways() {
    let mut plugin = fixture("http-body")
        .plugin()
        .upstream(|request| Response::new(200).body(format!("echo {} and a secret", String::from_utf8_lossy(&request.body))))
        .start()
        .unwrap();
    let outcome = plugin.send(&Request::post("/echo").body("quiet words"));
    assert_eq!(outcome.upstream.as_ref().unwrap().body, b"QUIET WORDS");
    assert_eq!(outcome.body_text(), "Original message body (29 bytes) redacted.\n");

    let mut plain = fixture("http-body").plugin().upstream(|_| Response::new(200).body("nothing to hide")).start().unwrap();
    assert_eq!(plain.send(&Request::get("/")).body_text(), "nothing to hide");
}

#[test]
fn ticks_metrics_shared_state_properties_and_foreign_functions() {
    let start = 1_800_000_000;
    let mut plugin = fixture("tick-metrics")
        .plugin()
        .now(start)
        .foreign_function("shout", |args| Ok(String::from_utf8_lossy(args).to_uppercase().into_bytes()))
        .start()
        .unwrap();

    plugin.advance_time(Duration::from_millis(3500)).unwrap();
    assert_eq!(plugin.metric("ticks").unwrap().value, 3);
    assert_eq!(plugin.metric("last_tick_seconds").unwrap().value, start as i64 + 3);
    assert_eq!(plugin.metric("last_tick_seconds").unwrap().kind, MetricKind::Gauge);

    let first = plugin.send(&Request::get("/a").property("source.address", "10.0.0.7:51234").property("connection.mtls", true));
    assert_eq!(first.upstream_header("x-request-count"), Some("1"));
    assert_eq!(first.upstream_header("x-source-address"), Some("10.0.0.7:51234"));
    assert_eq!(first.upstream_header("x-mtls"), Some("true"));
    assert_eq!(first.upstream_header("x-now"), Some("1800000003"));
    assert_eq!(first.upstream_header("x-wasi-now"), Some("1800000003"), "the WASI clock agrees with the host clock");
    assert_eq!(first.upstream_header("x-foreign"), Some("/A"));
    assert_eq!(first.upstream_header("x-cas"), None);

    let second = plugin.send(&Request::get("/bb"));
    assert_eq!(second.upstream_header("x-request-count"), Some("2"));
    assert_eq!(second.upstream_header("x-source-address"), Some("127.0.0.1:40000"), "per-request properties do not leak");
    assert_eq!(second.upstream_header("x-mtls"), Some("false"));
    assert_eq!(second.upstream_header("x-cas"), None, "a stale compare-and-swap is refused");
    assert_eq!(plugin.shared_data("last_path").as_deref(), Some(&b"/bb"[..]));
    assert_eq!(plugin.metric("path_length").unwrap().samples, vec![2, 3]);
    assert_eq!(plugin.metric("queued").unwrap().value, 2, "every enqueue reaches on_queue_ready");
}

#[test]
fn foreign_function_errors_reach_the_guest() {
    let mut plugin = fixture("tick-metrics").plugin().foreign_function("shout", |_| Err(Status::BadArgument)).start().unwrap();
    let outcome = plugin.send(&Request::get("/x"));
    assert!(outcome.forwarded());
    assert_eq!(outcome.upstream_header("x-foreign"), None);
}
