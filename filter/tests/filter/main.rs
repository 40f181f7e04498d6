#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "test code: a failed expectation should panic")]
//! Filter tests: the request logic natively behind a mock host (attacks, paths, credentials,
//! shadow mode, cache, mTLS), the known-answer vectors natively, and the real `.wasm` in the
//! harness.

mod attacks;
mod edge;
mod exchange;
mod examples;
mod hosts;
mod mock;
mod remote;
mod requests;
mod trust;
mod vectors;
mod wasm;
