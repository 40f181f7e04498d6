//! The compiled ACL decision table: the contract between `policy-compiler`, which writes it,
//! and the filter module, which reads it.
//!
//! - [`pattern`]: Ladon patterns (`/swagger<.+>`) turned into exact strings or anchored
//!   regexes, validated against the engine the module runs (regex-lite).
//! - [`format`]: the versioned, hashed, deterministic binary form ([`Table`]).
//! - [`bundle`]: the plugin configuration the compiler writes and the module loads: the
//!   table, the JWT providers with their keys, and the filter's settings.
//! - [`strict_json`]: JSON that refuses duplicate keys (bundles and tokens).
//! - [`matcher`]: regexes of the common shapes matched without the regex engine.
//! - [`eval`]: the [`Evaluator`] built from a table at load time, answering each request.
//!
//! This crate knows nothing of proxy-wasm, wasmtime or I/O, and never panics on its input.

pub mod bundle;
pub mod eval;
pub mod format;
pub mod matcher;
pub mod pattern;
pub mod request;
pub mod strict_json;

pub use bundle::{Bundle, Settings};
pub use eval::{AccessRequest, Attributes, ClientAddress, Decision, Evaluator, Verdict};
pub use format::{Condition, DecodeError, Effect, Network, Pattern, Policy, StrId, Table, Test};
