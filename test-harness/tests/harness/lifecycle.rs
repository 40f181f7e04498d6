//! Start-up variants a host must handle, with tiny hand-written modules: ABI 0.2.0, `malloc`
//! instead of `proxy_on_memory_allocate`, `_start` instead of `_initialize`, imports the module
//! never calls, and modules that are not proxy-wasm at all.

use proxy_wasm_harness::{Limits, LoadError, ProxyWasmModule, Request};

/// An ABI 0.2.0 module that answers every request with 418 and the `:path` it read, using
/// `malloc` for the value the host hands back.
const TEAPOT: &str = r#"
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_frobnicate" (func $never_called (param i32) (result i32)))
  (import "env" "proxy_never_either" (func $never_either))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 0) ":path")
  (data (i32.const 16) "teapot")
  (func (export "malloc") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $at))
  (func (export "proxy_abi_version_0_2_0"))
  (global $started (mut i32) (i32.const 0))
  (func (export "_start") (global.set $started (i32.const 1)))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (global.get $started))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; read :path into (ptr at 32, size at 36), then answer 418 with the path as body
    (drop (call $get (i32.const 0) (i32.const 0) (i32.const 5) (i32.const 32) (i32.const 36)))
    (drop (call $reply (i32.const 418) (i32.const 16) (i32.const 6)
      (i32.load (i32.const 32)) (i32.load (i32.const 36)) (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1))
)
"#;

fn wat_module(text: &str) -> Result<ProxyWasmModule, LoadError> {
    ProxyWasmModule::from_bytes(text.as_bytes(), Limits::default())
}

#[test]
fn abi_0_2_0_module_with_malloc_and_start_runs() {
    let module = wat_module(TEAPOT).unwrap();
    let mut plugin = module.plugin().start().unwrap();
    let outcome = plugin.send(&Request::get("/brew"));
    assert_eq!(outcome.status(), 418);
    assert_eq!(outcome.body_text(), "/brew", "the host handed the value over through malloc");
    assert_eq!(outcome.local_reply.unwrap().details, "teapot");
}

#[test]
fn a_module_without_a_proxy_wasm_abi_export_is_refused() {
    let error = wat_module(r#"(module (memory (export "memory") 1))"#).err().unwrap();
    assert!(matches!(error, LoadError::UnsupportedAbi), "{error}");
}

#[test]
fn garbage_is_a_compile_error() {
    let error = ProxyWasmModule::from_bytes(b"\0asm\x01\0\0\0garbage", Limits::default()).err().unwrap();
    assert!(matches!(error, LoadError::Compile(_)), "{error}");
}

#[test]
fn vm_start_returning_false_is_a_refusal() {
    let refusing = TEAPOT.replace("(func (export \"_start\") (global.set $started (i32.const 1)))", "");
    let module = wat_module(&refusing).unwrap();
    let error = module.plugin().start().err().unwrap();
    assert!(matches!(error, LoadError::Refused { phase: "proxy_on_vm_start", .. }), "{error}");
}

#[test]
fn plugins_from_one_module_are_independent() {
    let module = crate::fixture("tick-metrics");
    let mut one = module.plugin().start().unwrap();
    let mut two = module.plugin().start().unwrap();
    one.send(&Request::get("/1"));
    one.send(&Request::get("/2"));
    let outcome = two.send(&Request::get("/3"));
    assert_eq!(outcome.upstream_header("x-request-count"), Some("1"), "no state shared between stores");
}
