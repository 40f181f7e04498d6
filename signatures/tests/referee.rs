//! The crate against ring, on thousands of cases from a fixed seed: valid signatures of every
//! algorithm and key size, one-bit mutations of signature and message, another key, wrong
//! lengths, and crafted values (0, 1, n - 1, n, n + 1 for RSA; r or s at 0, n, n - 1, r + n,
//! the other s, for ECDSA). Every verdict must be ring's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "test code: a failed expectation should panic")]

use signatures::referee::{cases, ours};

#[test]
fn every_verdict_is_rings() {
    let cases = cases(0x5eed_2026_1202, 20);
    assert!(cases.len() > 5_000, "{} cases", cases.len());
    let accepted = cases.iter().filter(|c| c.ring_accepts).count();
    assert!(accepted > 300, "valid signatures present: {accepted}");
    let disagreements: Vec<String> = cases
        .iter()
        .filter(|case| ours(case) != case.ring_accepts)
        .map(|case| format!("{} (ring: {}; message {:02x?}; signature {:02x?})", case.name, case.ring_accepts, case.message, case.signature))
        .collect();
    assert!(disagreements.is_empty(), "{} of {} disagree with ring:\n{}", disagreements.len(), cases.len(), disagreements.join("\n"));
}
