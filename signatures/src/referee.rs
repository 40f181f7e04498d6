//! The differential referee: signatures made and judged by ring, then mutated and crafted, each
//! with ring's verdict, so that this crate's answer can be held to ring's. Deterministic for
//! a seed (ring signs PSS and ECDSA with its own randomness; what is judged is recorded in
//! each case, so a failing case can be replayed as it is).
//!
//! Used by `tests/referee.rs` (natively), the filter's tests (inside wasm, through the vector
//! probe) and the fuzz target `signatures_vs_ring` (for longer runs). Test code: it may panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "test support: a broken fixture should stop the test")]

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};

use crate::{ecdsa, rsa};

/// A public key as a JWK would carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { x: Vec<u8>, y: Vec<u8> },
}

/// One signature check and ring's verdict on it.
#[derive(Debug, Clone)]
pub struct Case {
    /// What was done to it: `valid`, `signature bit 17 flipped`, `s = 0`, ...
    pub name: String,
    /// The JWS algorithm (`RS256`, `PS384`, `ES256`, ...).
    pub alg: &'static str,
    pub key: Key,
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
    pub ring_accepts: bool,
}

/// SplitMix64: the cases' only source of choices.
pub struct Seeded(u64);

impl Seeded {
    pub fn new(seed: u64) -> Seeded {
        Seeded(seed)
    }

    pub fn number(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.number() % n.max(1) as u64) as usize
    }

    pub fn bytes(&mut self, length: usize) -> Vec<u8> {
        (0..length).map(|_| self.number() as u8).collect()
    }
}

const RSA_KEYS: [&[u8]; 4] = [
    include_bytes!("../referee-keys/rsa-2048.pk8"),
    include_bytes!("../referee-keys/rsa-2049.pk8"),
    include_bytes!("../referee-keys/rsa-3072.pk8"),
    include_bytes!("../referee-keys/rsa-4096.pk8"),
];

struct RsaAlgorithm {
    name: &'static str,
    sign: &'static dyn signature::RsaEncoding,
    verify: &'static signature::RsaParameters,
}

fn rsa_algorithms() -> [RsaAlgorithm; 6] {
    [
        RsaAlgorithm { name: "RS256", sign: &signature::RSA_PKCS1_SHA256, verify: &signature::RSA_PKCS1_2048_8192_SHA256 },
        RsaAlgorithm { name: "RS384", sign: &signature::RSA_PKCS1_SHA384, verify: &signature::RSA_PKCS1_2048_8192_SHA384 },
        RsaAlgorithm { name: "RS512", sign: &signature::RSA_PKCS1_SHA512, verify: &signature::RSA_PKCS1_2048_8192_SHA512 },
        RsaAlgorithm { name: "PS256", sign: &signature::RSA_PSS_SHA256, verify: &signature::RSA_PSS_2048_8192_SHA256 },
        RsaAlgorithm { name: "PS384", sign: &signature::RSA_PSS_SHA384, verify: &signature::RSA_PSS_2048_8192_SHA384 },
        RsaAlgorithm { name: "PS512", sign: &signature::RSA_PSS_SHA512, verify: &signature::RSA_PSS_2048_8192_SHA512 },
    ]
}

fn rsa_key(pkcs8: &[u8]) -> RsaKeyPair {
    RsaKeyPair::from_pkcs8(pkcs8).unwrap_or_else(|e| panic!("a referee RSA key of {} bytes: {e}", pkcs8.len()))
}

fn rsa_parts(pair: &RsaKeyPair) -> Key {
    let parts = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Key::Rsa { n: parts.n, e: parts.e }
}

/// ring's verdict on an RSA case.
fn ring_rsa(algorithm: &'static signature::RsaParameters, key: &Key, message: &[u8], signature: &[u8]) -> bool {
    let Key::Rsa { n, e } = key else { return false };
    signature::RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.verify(algorithm, message, signature).is_ok()
}

fn ec_algorithms() -> [(&'static str, &'static signature::EcdsaSigningAlgorithm, &'static signature::EcdsaVerificationAlgorithm, &'static [u8], usize); 2] {
    [
        ("ES256", &signature::ECDSA_P256_SHA256_FIXED_SIGNING, &signature::ECDSA_P256_SHA256_FIXED, include_bytes!("../referee-keys/p256.pk8"), 32),
        ("ES384", &signature::ECDSA_P384_SHA384_FIXED_SIGNING, &signature::ECDSA_P384_SHA384_FIXED, include_bytes!("../referee-keys/p384.pk8"), 48),
    ]
}

/// The group orders, big-endian (SEC 2 §2.4.2, §2.5.1), for crafted `r` and `s`.
const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P384_N: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// `value + delta` on a big-endian number of the same length (wrapping).
fn plus(value: &[u8], delta: i64) -> Vec<u8> {
    let mut out = value.to_vec();
    let mut carry = delta;
    for byte in out.iter_mut().rev() {
        let sum = i64::from(*byte) + carry;
        *byte = sum.rem_euclid(256) as u8;
        carry = sum.div_euclid(256);
        if carry == 0 {
            break;
        }
    }
    out
}

/// `a + b` on big-endian numbers of one length, the carry out of the top dropped.
fn sum(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = a.to_vec();
    let mut carry = 0u16;
    for (x, y) in out.iter_mut().zip(b).rev() {
        let total = u16::from(*x) + u16::from(*y) + carry;
        *x = total as u8;
        carry = total >> 8;
    }
    out
}

/// `count` messages for every referee key and algorithm, each signed by ring, then mutated and
/// crafted; every case carries ring's verdict.
pub fn cases(seed: u64, count: usize) -> Vec<Case> {
    let mut choose = Seeded::new(seed);
    let rng = SystemRandom::new();
    let mut out = Vec::new();
    let rsa_pairs: Vec<RsaKeyPair> = RSA_KEYS.iter().map(|k| rsa_key(k)).collect();
    for (index, pair) in rsa_pairs.iter().enumerate() {
        let key = rsa_parts(pair);
        let other = rsa_parts(&rsa_pairs[(index + 1) % rsa_pairs.len()]);
        let Key::Rsa { n, .. } = &key else { unreachable!() };
        let size = pair.public().modulus_len();
        for algorithm in rsa_algorithms() {
            for _ in 0..count {
                let length = choose.below(200);
                let message = choose.bytes(length);
                let mut signed = vec![0u8; size];
                pair.sign(algorithm.sign, &rng, &message, &mut signed).unwrap();
                let mut variants: Vec<(String, Key, Vec<u8>, Vec<u8>)> = vec![("valid".into(), key.clone(), message.clone(), signed.clone())];
                let bit = choose.below(size * 8);
                let mut flipped = signed.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                variants.push((format!("signature bit {bit} flipped"), key.clone(), message.clone(), flipped));
                if !message.is_empty() {
                    let bit = choose.below(message.len() * 8);
                    let mut changed = message.clone();
                    changed[bit / 8] ^= 1 << (bit % 8);
                    variants.push((format!("message bit {bit} flipped"), key.clone(), changed, signed.clone()));
                }
                variants.push(("message extended".into(), key.clone(), [message.as_slice(), b"x"].concat(), signed.clone()));
                variants.push(("another key".into(), other.clone(), message.clone(), signed.clone()));
                variants.push(("signature one byte short".into(), key.clone(), message.clone(), signed[1..].to_vec()));
                variants.push(("signature with a leading zero".into(), key.clone(), message.clone(), [&[0u8][..], &signed].concat()));
                let mut padded_n = vec![0u8; size - n.len()];
                padded_n.extend_from_slice(n);
                for (name, crafted) in [
                    ("signature 0", vec![0u8; size]),
                    ("signature 1", plus(&vec![0u8; size], 1)),
                    ("signature n - 1", plus(&padded_n, -1)),
                    ("signature n", padded_n.clone()),
                    ("signature n + 1", plus(&padded_n, 1)),
                    ("signature all ones", vec![0xff; size]),
                    ("random signature", choose.bytes(size)),
                ] {
                    variants.push((name.into(), key.clone(), message.clone(), crafted));
                }
                for (name, key, message, signature) in variants {
                    let ring_accepts = ring_rsa(algorithm.verify, &key, &message, &signature);
                    out.push(Case { name: format!("{} {}-bit: {name}", algorithm.name, size * 8), alg: algorithm.name, key, message, signature, ring_accepts });
                }
            }
        }
    }
    for (alg, signing, _, pkcs8, length) in ec_algorithms() {
        let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8, &rng).unwrap();
        let point = pair.public_key().as_ref();
        let key = Key::Ec { x: point[1..1 + length].to_vec(), y: point[1 + length..].to_vec() };
        let order = hex(if length == 32 { P256_N } else { P384_N });
        for _ in 0..count {
            let length_of_message = choose.below(200);
            let message = choose.bytes(length_of_message);
            let signed = pair.sign(&rng, &message).unwrap().as_ref().to_vec();
            let (r, s) = signed.split_at(length);
            let mut variants: Vec<(String, Vec<u8>, Vec<u8>)> = vec![("valid".into(), message.clone(), signed.clone())];
            let bit = choose.below(2 * length * 8);
            let mut flipped = signed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            variants.push((format!("signature bit {bit} flipped"), message.clone(), flipped));
            variants.push(("message extended".into(), [message.as_slice(), b"x"].concat(), signed.clone()));
            // The same point, the other s: ECDSA accepts both (no low-s rule in JWS or ring).
            let high_s = {
                let mut negated = order.clone();
                let mut borrow = 0i16;
                for (o, x) in negated.iter_mut().zip(s).rev() {
                    let difference = i16::from(*o) - i16::from(*x) - borrow;
                    *o = difference.rem_euclid(256) as u8;
                    borrow = i16::from(difference < 0);
                }
                negated
            };
            let zero = vec![0u8; length];
            for (name, r, s) in [
                ("s replaced by n - s", r.to_vec(), high_s),
                ("r = 0", zero.clone(), s.to_vec()),
                ("s = 0", r.to_vec(), zero.clone()),
                ("r = n", order.clone(), s.to_vec()),
                ("s = n", r.to_vec(), order.clone()),
                ("r = n - 1", plus(&order, -1), s.to_vec()),
                ("r = r + n", sum(r, &order), s.to_vec()),
                ("r, s all ones", vec![0xff; length], vec![0xff; length]),
            ] {
                variants.push((name.into(), message.clone(), [r, s].concat()));
            }
            variants.push(("signature one byte short".into(), message.clone(), signed[1..].to_vec()));
            variants.push(("random signature".into(), message.clone(), choose.bytes(2 * length)));
            for (name, message, signature) in variants {
                let ring_accepts = ring_accepts(alg, &key, &message, &signature);
                out.push(Case { name: format!("{alg}: {name}"), alg, key: key.clone(), message, signature, ring_accepts });
            }
        }
    }
    out
}

/// ring's verdict on any signature, for a key and algorithm of the referee's.
pub fn ring_accepts(alg: &str, key: &Key, message: &[u8], signature: &[u8]) -> bool {
    if let Some(algorithm) = rsa_algorithms().into_iter().find(|a| a.name == alg) {
        return ring_rsa(algorithm.verify, key, message, signature);
    }
    let (Some((_, _, verifying, _, _)), Key::Ec { x, y }) = (ec_algorithms().into_iter().find(|(name, ..)| *name == alg), key) else { return false };
    let point = [&[4u8][..], x, y].concat();
    signature::UnparsedPublicKey::new(verifying, &point).verify(message, signature).is_ok()
}

/// Every (algorithm, public key) the referee signs with, and a signature of `message` by it.
pub fn signed(message: &[u8]) -> Vec<(&'static str, Key, Vec<u8>)> {
    let rng = SystemRandom::new();
    let mut out = Vec::new();
    for pkcs8 in RSA_KEYS {
        let pair = rsa_key(pkcs8);
        for algorithm in rsa_algorithms() {
            let mut signed = vec![0u8; pair.public().modulus_len()];
            pair.sign(algorithm.sign, &rng, message, &mut signed).unwrap();
            out.push((algorithm.name, rsa_parts(&pair), signed));
        }
    }
    for (alg, signing, _, pkcs8, length) in ec_algorithms() {
        let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8, &rng).unwrap();
        let point = pair.public_key().as_ref();
        let key = Key::Ec { x: point[1..1 + length].to_vec(), y: point[1 + length..].to_vec() };
        out.push((alg, key, pair.sign(&rng, message).unwrap().as_ref().to_vec()));
    }
    out
}

/// This crate's verdict on a case, through its public API.
pub fn ours(case: &Case) -> bool {
    verdict(case.alg, &case.key, &case.message, &case.signature)
}

/// This crate's verdict on any signature, for a JWS algorithm and a key.
pub fn verdict(alg: &str, key: &Key, message: &[u8], signature: &[u8]) -> bool {
    match key {
        Key::Rsa { n, e } => {
            let padding = if alg.starts_with("PS") { rsa::Padding::Pss } else { rsa::Padding::Pkcs1v15 };
            let hash = match alg.get(2..) {
                Some("384") => rsa::Hash::Sha384,
                Some("512") => rsa::Hash::Sha512,
                _ => rsa::Hash::Sha256,
            };
            rsa::PublicKey::new(n, e, padding, hash).is_ok_and(|key| key.verifies(message, signature))
        }
        Key::Ec { x, y } => ecdsa::PublicKey::new(alg, x, y).is_ok_and(|key| key.verifies(message, signature)),
    }
}
