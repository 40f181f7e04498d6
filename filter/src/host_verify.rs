//! RS256/384/512, ES256 and ES384 checked by the proxy itself, through Envoy's
//! `verify_signature` foreign function (`proxy_call_foreign_function`; arguments and result
//! are the protobuf messages of Envoy's `source/extensions/common/wasm/ext/verify_signature.proto`).
//! Envoy runs it with BoringSSL's `EVP_DigestVerify` natively, several times faster than RSA
//! and ten times faster than ECDSA inside wasm. It takes a DER SubjectPublicKeyInfo (RSA or
//! EC) and, for ECDSA, a DER signature: a JWS's `r ‖ s` is re-encoded here.
//!
//! Trust, but check: at configuration time the host must get a known answer right both ways,
//! per family, for the families the keys use (RSA: RFC 7520 §4.1; ECDSA: a Wycheproof ES256
//! JWS; each verifies, and neither the signature with one bit flipped nor a changed message
//! does). A host without the function (Kong, NGINX: `Unimplemented`), or one that answers
//! wrongly, is never asked: the `signatures` crate checks them in wasm. A failed
//! call at request time also falls back to wasm. PSS keys are always checked in wasm (the
//! function knows only PKCS#1 v1.5 for RSA).
//!
//! The protobuf messages have five and two fields; they are written and read here by hand
//! rather than pulling a protobuf crate into the module.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The foreign function's name in Envoy.
pub const FUNCTION: &str = "verify_signature";

/// Calls the host's `verify_signature` with encoded arguments; `None` when the host has no
/// such function or the call failed.
pub type Call<'a> = &'a dyn Fn(&[u8]) -> Option<Vec<u8>>;

pub use signatures::der::{EcCurve, ec_public_key_der, ecdsa_signature_der, rsa_public_key_der};

fn varint(mut value: usize, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn field(number: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(number << 3 | 2);
    varint(bytes.len(), out);
    out.extend_from_slice(bytes);
}

/// `VerifySignatureArguments { hash_function, public_key, signature, text }`.
pub fn arguments(hash_function: &str, public_key_der: &[u8], signature: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hash_function.len() + public_key_der.len() + signature.len() + text.len() + 16);
    field(1, hash_function.as_bytes(), &mut out);
    field(2, public_key_der, &mut out);
    field(3, signature, &mut out);
    field(4, text, &mut out);
    out
}

fn read_varint(bytes: &mut std::slice::Iter<'_, u8>) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.next()?;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// `VerifySignatureResult.result`; `None` when the bytes are not such a message.
pub fn result(encoded: &[u8]) -> Option<bool> {
    let mut bytes = encoded.iter();
    let mut verified = false;
    while bytes.len() > 0 {
        let key = read_varint(&mut bytes)?;
        match (key >> 3, key & 7) {
            (1, 0) => verified = read_varint(&mut bytes)? != 0,
            (_, 0) => {
                read_varint(&mut bytes)?;
            }
            (_, 2) => {
                let length = usize::try_from(read_varint(&mut bytes)?).ok()?;
                bytes = bytes.as_slice().get(length..)?.iter();
            }
            _ => return None,
        }
    }
    Some(verified)
}

/// A set of key families: those the loaded keys use, and those the host's `verify_signature`
/// is trusted with (each passed its own known-answer self-test at configuration time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Families {
    /// RS256/384/512 (PKCS#1 v1.5).
    pub rsa: bool,
    /// ES256 and ES384.
    pub ecdsa: bool,
}

impl Families {
    /// The families either side names.
    pub fn union(self, other: Families) -> Families {
        Families { rsa: self.rsa || other.rsa, ecdsa: self.ecdsa || other.ecdsa }
    }

    pub fn any(self) -> bool {
        self.rsa || self.ecdsa
    }
}

/// The host's `verify_signature` and the families it passed the self-test for.
#[derive(Clone, Copy)]
pub struct Offload<'a> {
    pub call: Call<'a>,
    pub trusted: Families,
}

/// Runs the self-test of each family in `wanted` (only those: a family no key uses costs no
/// call) and says which passed.
pub fn self_test(call: Call<'_>, wanted: Families) -> Families {
    Families { rsa: wanted.rsa && rsa_passes_self_test(call), ecdsa: wanted.ecdsa && ecdsa_passes_self_test(call) }
}

/// What the host answers for a signature: `None` when it gave no answer.
pub fn verify(call: Call<'_>, hash_function: &str, public_key_der: &[u8], signature: &[u8], text: &[u8]) -> Option<bool> {
    call(&arguments(hash_function, public_key_der, signature, text)).and_then(|answer| result(&answer))
}

/// RFC 7520 §3.3 (public key) and §4.1 (its RS256 signature).
const KNOWN_N: &str = "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw";
const KNOWN_JWS: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg";

/// Wycheproof's `json_web_signature_test.json`, test 18: an ES256 JWS and its P-256 key.
const KNOWN_EC_X: &str = "04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY";
const KNOWN_EC_Y: &str = "UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw";
const KNOWN_ES256_JWS: &str =
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImtpZC1lYy1zaWduIn0.Zm9v.5cA0OHyMP7ezamUd5c9kV-FrGxdx4hbGXOdplQkutrqWrte5P-pAvsE3Ve6xSyU3YDQwUHjVVOtvcrEbbnZ8yA";

/// Whether the host gets a known answer right both ways: `signature` over `jws`'s signing
/// input verifies, and neither a flipped signature bit nor a changed message does.
fn passes_known_answer(call: Call<'_>, hash: &str, key: &[u8], jws: &str, encode: fn(&[u8]) -> Vec<u8>) -> bool {
    let Some((text, signature)) = jws.rsplit_once('.') else { return false };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else { return false };
    let mut flipped = signature.clone();
    if let Some(last) = flipped.last_mut() {
        *last ^= 1;
    }
    let changed_text = format!("{text}A");
    verify(call, hash, key, &encode(&signature), text.as_bytes()) == Some(true)
        && verify(call, hash, key, &encode(&flipped), text.as_bytes()) == Some(false)
        && verify(call, hash, key, &encode(&signature), changed_text.as_bytes()) == Some(false)
}

/// The RSA known answer: RFC 7520 §4.1's RS256 signature.
pub fn rsa_passes_self_test(call: Call<'_>) -> bool {
    let Ok(n) = URL_SAFE_NO_PAD.decode(KNOWN_N) else { return false };
    passes_known_answer(call, "sha256", &rsa_public_key_der(&n, &[1, 0, 1]), KNOWN_JWS, |signature| signature.to_vec())
}

/// The ECDSA known answer: Wycheproof's ES256 JWS, its signature turned into DER as requests'
/// signatures are.
pub fn ecdsa_passes_self_test(call: Call<'_>) -> bool {
    let (Ok(x), Ok(y)) = (URL_SAFE_NO_PAD.decode(KNOWN_EC_X), URL_SAFE_NO_PAD.decode(KNOWN_EC_Y)) else { return false };
    passes_known_answer(call, "sha256", &ec_public_key_der(EcCurve::P256, &x, &y), KNOWN_ES256_JWS, ecdsa_signature_der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_decode_and_junk_is_no_answer() {
        assert_eq!(result(&[0x08, 0x01]), Some(true));
        assert_eq!(result(&[0x08, 0x01, 0x12, 0x00]), Some(true), "empty error string");
        assert_eq!(result(&[0x12, 0x03, b'b', b'a', b'd']), Some(false), "result absent: false");
        assert_eq!(result(&[]), Some(false));
        assert_eq!(result(&[0x12, 0x05, b'x']), None, "truncated field");
        assert_eq!(result(&[0x0b]), None, "unknown wire type");
    }

    #[test]
    fn arguments_are_length_delimited_fields_in_order() {
        let encoded = arguments("sha256", &[1, 2], &[3; 200], b"t");
        assert_eq!(&encoded[..8], &[0x0a, 6, b's', b'h', b'a', b'2', b'5', b'6']);
        assert_eq!(&encoded[8..12], &[0x12, 2, 1, 2]);
        assert_eq!(&encoded[12..15], &[0x1a, 0xc8, 0x01], "200 as a varint");
        assert_eq!(&encoded[encoded.len() - 3..], &[0x22, 1, b't']);
    }

    #[test]
    fn the_rsa_key_is_a_subject_public_key_info() {
        let der = rsa_public_key_der(&[0x80, 0, 0, 1], &[1, 0, 1]);
        let expected = [
            0x30, 0x20, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00, 0x03, 0x0f, 0x00, 0x30,
            0x0c, 0x02, 0x05, 0x00, 0x80, 0, 0, 1, 0x02, 0x03, 1, 0, 1,
        ];
        assert_eq!(der, expected);
        let long = rsa_public_key_der(&[0x7f; 256], &[1, 0, 1]);
        assert_eq!(&long[..4], &[0x30, 0x82, 0x01, 0x21], "long-form lengths: 289 bytes of content");
    }

    #[test]
    fn a_host_that_says_yes_to_everything_fails_the_self_test() {
        let both = Families { rsa: true, ecdsa: true };
        assert_eq!(self_test(&|_| Some(vec![0x08, 0x01]), both), Families::default());
        assert_eq!(self_test(&|_| Some(vec![]), both), Families::default(), "one that says no to everything");
        assert_eq!(self_test(&|_| None, both), Families::default(), "one without the function");
    }

    #[test]
    fn the_ec_key_is_a_subject_public_key_info() {
        let der = ec_public_key_der(EcCurve::P256, &[1; 32], &[2; 32]);
        let head = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
            0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
        ];
        assert_eq!(&der[..head.len()], &head, "the 91-byte form OpenSSL writes for P-256");
        assert_eq!(der.len(), 91);
        let p384 = ec_public_key_der(EcCurve::P384, &[1; 48], &[2; 48]);
        assert_eq!(&p384[..4], &[0x30, 0x76, 0x30, 0x10], "120 bytes for P-384");
        assert_eq!(p384.len(), 120);
    }

    #[test]
    fn ecdsa_signatures_become_minimal_der_integers() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80; // r: high bit set, so a zero byte keeps it positive
        raw[31] = 1;
        raw[63] = 5; // s = 5: leading zeros dropped
        let der = ecdsa_signature_der(&raw);
        let mut expected = vec![0x30, 0x26, 0x02, 0x21, 0x00, 0x80];
        expected.extend([0u8; 30]);
        expected.extend([1, 0x02, 0x01, 5]);
        assert_eq!(der, expected);
        assert_eq!(ecdsa_signature_der(&[0u8; 64]), [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00], "zero stays an INTEGER 0");
    }
}
