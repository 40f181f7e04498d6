//! Signature verification for JWS: RSA (RS256/384/512 with PKCS#1 v1.5, PS256/384/512 with
//! PSS) and ECDSA (ES256, ES384), written for one job: checking public signatures fast inside
//! wasm, where the crates we tried were slow and large (see `rsa` and `ecdsa`).
//!
//! - [`rsa::PublicKey`]: `new(n, e, padding, hash)` prepares a key once (its Montgomery
//!   parameters), `verifies(message, signature)` checks one signature.
//! - [`ecdsa::PublicKey`]: `new(alg, x, y)` refuses a point off the curve and builds the key's
//!   table once, `verifies(message, r ‖ s)`.
//! - [`der`]: the DER forms of keys and signatures that a host verifier takes.
//!
//! **Public data only, so not constant-time**: a verifier sees a public key, a message and a
//! signature, all of which the caller already has; nothing secret flows through the
//! arithmetic, so timing reveals nothing. Never use this code with a private key.
//!
//! **Refereed**: `tests/referee.rs` compares every answer with ring's on thousands of valid,
//! mutated and crafted cases from a fixed seed (the same generator is the `referee` feature,
//! which the filter's tests run inside wasm and the fuzz target `signatures_vs_ring` drives
//! for longer); Wycheproof's suites run in the filter's tests; the modular exponentiation is
//! property-tested against `num-bigint` over random odd moduli of every accepted size.

mod bignum;
pub mod der;
pub mod ecdsa;
mod montgomery;
pub mod rsa;

#[cfg(feature = "referee")]
pub mod referee;
