//! The signature crate against ring, coverage-guided: the fuzzer's bytes become a signature
//! (raw, or XOR-ed into a valid one) and a message for one of the referee's keys; the crate
//! must give ring's verdict. `tests/referee.rs` in `signatures/` runs the fixed-seed cases.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signatures::referee::{Key, ring_accepts, signed, verdict};

/// The referee's keys with one valid signature each, of this message.
const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmdXp6In0";

fn valid() -> &'static [(&'static str, Key, Vec<u8>)] {
    static VALID: OnceLock<Vec<(&'static str, Key, Vec<u8>)>> = OnceLock::new();
    VALID.get_or_init(|| signed(MESSAGE))
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let (alg, key, good) = &valid()[usize::from(choice >> 1) % valid().len()];
    let (message, signature) = if choice & 1 == 0 {
        // Raw bytes as the signature, of the fixed message.
        (MESSAGE.to_vec(), rest.to_vec())
    } else {
        // The valid signature with the bytes XOR-ed in (a short input changes its start).
        let mut signature = good.clone();
        for (byte, flip) in signature.iter_mut().zip(rest) {
            *byte ^= flip;
        }
        (MESSAGE.to_vec(), signature)
    };
    assert_eq!(verdict(alg, key, &message, &signature), ring_accepts(alg, key, &message, &signature), "{alg}: {signature:02x?}");
});
