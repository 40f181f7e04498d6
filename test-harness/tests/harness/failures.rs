//! A guest that fails must fail its request closed, and never hang or panic the harness.

use proxy_wasm_harness::{Limits, LoadError, Request};

use crate::{fixture, fixture_with, logged};

fn misbehaving(mode: &str) -> proxy_wasm_harness::Plugin {
    fixture("misbehaving").plugin().plugin_config(mode).start().unwrap()
}

#[test]
fn a_refused_configuration_is_a_load_error_with_the_module_log() {
    let error = fixture("misbehaving").plugin().plugin_config("refuse").start().err().unwrap();
    assert!(matches!(error, LoadError::Refused { phase: "proxy_on_configure", .. }), "{error}");
    assert!(error.to_string().contains("refusing this configuration on purpose"), "{error}");
}

#[test]
fn a_panic_during_configuration_is_a_load_error_naming_the_panic() {
    let error = fixture("misbehaving").plugin().plugin_config("trap-on-configure").start().err().unwrap();
    assert!(matches!(error, LoadError::Failed { phase: "proxy_on_configure", .. }), "{error}");
    assert!(error.to_string().contains("panic in on_configure"), "{error}");
}

#[test]
fn a_trap_fails_the_request_closed_and_breaks_the_vm() {
    let mut plugin = misbehaving("trap");
    assert!(plugin.send(&Request::get("/ok")).forwarded());

    let outcome = plugin.send(&Request::get("/fail"));
    assert_eq!(outcome.status(), 503);
    assert!(!outcome.forwarded());
    assert_eq!(outcome.local_reply.as_ref().unwrap().details, "wasm_fail_stream");
    assert!(outcome.guest_failure.as_ref().unwrap().contains("unreachable"), "{outcome:?}");
    assert!(logged(&plugin, "panic in on_http_request_headers"), "the SDK's panic hook logs the panic");

    let after = plugin.send(&Request::get("/ok"));
    assert_eq!(after.status(), 503, "a failed VM fails every later request closed");
    assert!(plugin.failure().is_some());
}

#[test]
fn a_runaway_loop_runs_out_of_fuel() {
    let limits = Limits { fuel_per_callback: Some(20_000_000), ..Limits::default() };
    let mut plugin = fixture_with("misbehaving", limits).plugin().plugin_config("loop").start().unwrap();
    assert!(plugin.send(&Request::get("/ok")).forwarded());
    let outcome = plugin.send(&Request::get("/fail"));
    assert_eq!(outcome.status(), 503);
    assert!(outcome.guest_failure.unwrap().contains("ran out of fuel"));
}

#[test]
fn an_unmetered_module_runs_the_same_requests_and_counts_no_fuel() {
    let unmetered = Limits { fuel_per_callback: None, ..Limits::default() };
    let mut plugin = fixture_with("misbehaving", unmetered).plugin().plugin_config("loop").start().unwrap();
    let outcome = plugin.send(&Request::get("/ok"));
    assert!(outcome.forwarded());
    assert_eq!((outcome.fuel, plugin.fuel_burnt()), (0, 0));
    let mut metered = fixture("misbehaving").plugin().plugin_config("loop").start().unwrap();
    assert!(metered.send(&Request::get("/ok")).fuel > 0, "the metered twin counts");
}

#[test]
fn exhausting_memory_fails_the_request_closed() {
    let limits = Limits { memory_bytes: 32 << 20, ..Limits::default() };
    let mut plugin = fixture_with("misbehaving", limits).plugin().plugin_config("oom").start().unwrap();
    let outcome = plugin.send(&Request::get("/fail"));
    assert_eq!(outcome.status(), 503);
    assert!(outcome.guest_failure.is_some());
    assert!(logged(&plugin, "memory allocation of"), "the allocator's message reaches the log");
}

#[test]
fn a_stream_paused_forever_times_out_with_408() {
    let mut plugin = misbehaving("stall");
    let outcome = plugin.send(&Request::get("/fail"));
    assert!(outcome.stalled);
    assert_eq!(outcome.status(), 408);
    assert!(plugin.send(&Request::get("/ok")).forwarded(), "a stall does not break the VM");
}

#[test]
fn a_reset_stream_gets_no_response() {
    let mut plugin = misbehaving("reset");
    let outcome = plugin.send(&Request::get("/fail"));
    assert!(outcome.reset);
    assert_eq!(outcome.status(), 0);
    assert!(outcome.upstream.is_none());
}

#[test]
fn proc_exit_fails_closed() {
    let mut plugin = misbehaving("exit");
    let outcome = plugin.send(&Request::get("/fail"));
    assert_eq!(outcome.status(), 503);
    assert!(outcome.guest_failure.unwrap().contains("proc_exit(3)"));
}
