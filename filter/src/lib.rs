//! The policy filter: a proxy-wasm module that authenticates requests with JWTs (or mTLS
//! client certificates) and authorises them with a compiled decision table, failing closed.
//!
//! Only [`proxy`] (built for wasm32 only) knows proxy-wasm; everything else works behind the
//! [`host::Host`] trait and is tested natively.
//!
//! - [`config`]: the plugin configuration (bundle) loaded once, in `on_configure`.
//! - [`engine`]: one request, start to end.
//! - [`credentials`], [`jwt`], [`cache`]: finding, verifying and remembering tokens.
//! - [`remote`], [`jwks`]: key sets and revocation lists fetched from the identity provider,
//!   off the request path, shared by the workers.
//! - [`subject`]: the CN of a client certificate's RFC 4514 subject.

pub mod basic;
pub mod cache;
pub mod config;
pub mod credentials;
pub mod engine;
pub mod host;
pub mod host_verify;
pub mod jwks;
pub mod introspection;
pub mod jwt;
pub mod mint;
pub mod remote;
pub mod subject;
pub mod tenants;

#[cfg(all(target_arch = "wasm32", feature = "proxy-module"))]
mod proxy;
