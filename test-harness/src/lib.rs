//! A proxy-wasm ABI v0.2.1 host on wasmtime, for running proxy-wasm modules offline: in a
//! user's own `cargo test`, from the `pw-harness` CLI, and in benchmarks.
//!
//! It runs a `wasm32-wasip1` module built with the Rust SDK (`proxy-wasm` 0.2.x) the way a
//! chosen proxy does ([`HostProfile`]: Envoy by default, or NGINX/Kong's ngx_wasm_module):
//! WASI preview 1 from `wasmtime-wasi`, every `env` import the module names, one root context
//! per plugin with `proxy_on_vm_start` and `proxy_on_configure` (a `false` is a refused
//! configuration), one HTTP context per request, callouts answered by stub clusters when due
//! on a host clock that only the test moves, and shared data that several plugins (worker
//! processes, [`PluginBuilder::shared_with`]) can share.
//!
//! ```no_run
//! use proxy_wasm_harness::{ProxyWasmModule, Request};
//!
//! let module = ProxyWasmModule::from_file("filter.wasm")?;
//! let mut plugin = module.plugin().plugin_config(r#"{"header": "x-hello"}"#).start()?;
//! let outcome = plugin.send(&Request::get("/users/me").header("authorization", "Bearer ..."));
//! assert_eq!(outcome.status(), 200);
//! assert_eq!(outcome.upstream_header("x-hello"), Some("world"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A guest that traps, runs out of fuel or exhausts its memory fails that request closed
//! (503, as Envoy's failed VM) and every later one; the harness never hangs or panics.

mod abi;
pub mod bench;
pub mod cases;
pub mod envoy_functions;
mod guest;
mod host;
pub mod hosts;
mod http;
mod plugin;
mod status;
pub mod workspace;

pub use host::{Clock, LogEntry, LogLevel, Metric, MetricKind, property_path};
pub use http::{
    CallReply, Headers, HttpCallRequest, LocalReply, Outcome, PropertyValue, Request, Response, UpstreamRequest,
};
pub use hosts::HostProfile;
pub use plugin::{Limits, LoadError, Plugin, PluginBuilder, ProxyWasmModule, Upstream};
pub use status::Status;
