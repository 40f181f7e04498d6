//! RSASSA-PKCS1-v1_5 verification (RS256/384/512) with Montgomery parameters computed once,
//! when the key is loaded, using crypto-bigint's modular arithmetic. The `rsa` crate's general
//! bignum code costs about 1.4 ms per RS256 check inside wasm; this path costs a fraction.
//! Keys of 2048, 3072 or 4096 bits with a public exponent below 2^32 take it; any other RSA
//! key, and every PSS algorithm, stays on jwt-compact.

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Integer, U2048, U3072, U4096, Uint, Word};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// A modulus of `LIMBS` limbs, with its precomputed Montgomery parameters.
pub struct Modulus<const LIMBS: usize> {
    params: DynResidueParams<LIMBS>,
    modulus: Uint<LIMBS>,
}

pub enum Prepared {
    B2048(Box<Modulus<{ U2048::LIMBS }>>),
    B3072(Box<Modulus<{ U3072::LIMBS }>>),
    B4096(Box<Modulus<{ U4096::LIMBS }>>),
}

#[derive(Clone, Copy)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// A public key ready for PKCS#1 v1.5 checks.
pub struct PublicKey {
    prepared: Prepared,
    exponent: u32,
    /// The modulus length in bytes: every signature has exactly this length.
    length: usize,
    hash: Hash,
}

const WORD_BYTES: usize = Word::BITS as usize / 8;

fn uint<const LIMBS: usize>(big_endian: &[u8]) -> Option<Uint<LIMBS>> {
    let size = LIMBS * WORD_BYTES;
    let padding = size.checked_sub(big_endian.len())?;
    let mut padded = vec![0u8; padding];
    padded.extend_from_slice(big_endian);
    Some(Uint::from_be_slice(&padded))
}

fn big_endian<const LIMBS: usize>(value: &Uint<LIMBS>, length: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = value.as_words().iter().rev().flat_map(|w| w.to_be_bytes()).collect();
    bytes.split_off(bytes.len().saturating_sub(length))
}

impl<const LIMBS: usize> Modulus<LIMBS> {
    fn new(n: &[u8]) -> Option<Self> {
        let modulus = uint::<LIMBS>(n)?;
        if !bool::from(modulus.is_odd()) {
            return None;
        }
        Some(Modulus { params: DynResidueParams::new(&modulus), modulus })
    }

    /// `signature ^ exponent mod n`, or `None` when the signature is not below the modulus.
    fn public_operation(&self, signature: &[u8], exponent: u32, length: usize) -> Option<Vec<u8>> {
        let s = uint::<LIMBS>(signature)?;
        if s >= self.modulus {
            return None;
        }
        // Left-to-right square-and-multiply over the public exponent (65537: 16 squarings
        // and one multiplication). The exponent is public, so nothing here needs to be
        // constant-time, unlike crypto-bigint's windowed `pow`.
        let base = DynResidue::new(&s, self.params);
        let mut result = base;
        for bit in (0..u32::BITS - 1 - exponent.leading_zeros()).rev() {
            result = result.square();
            if exponent >> bit & 1 == 1 {
                result = result.mul(&base);
            }
        }
        Some(big_endian(&result.retrieve(), length))
    }
}

/// DER DigestInfo prefixes (RFC 8017 §9.2, note 1).
fn digest_info(hash: Hash, message: &[u8]) -> Vec<u8> {
    let (prefix, digest): (&[u8], Vec<u8>) = match hash {
        Hash::Sha256 => (
            &[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20],
            Sha256::digest(message).to_vec(),
        ),
        Hash::Sha384 => (
            &[0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30],
            Sha384::digest(message).to_vec(),
        ),
        Hash::Sha512 => (
            &[0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40],
            Sha512::digest(message).to_vec(),
        ),
    };
    [prefix, &digest].concat()
}

impl PublicKey {
    /// `None` when this key does not fit the fast path (the caller uses the general one).
    pub fn new(n: &[u8], e: &[u8], hash: Hash) -> Option<PublicKey> {
        let n = n.get(n.iter().position(|b| *b != 0)?..)?;
        let e = e.get(e.iter().position(|b| *b != 0)?..)?;
        if e.len() > 4 {
            return None;
        }
        let exponent = e.iter().fold(0u32, |acc, byte| acc << 8 | u32::from(*byte));
        if exponent < 3 || exponent % 2 == 0 {
            return None;
        }
        let prepared = match n.len() {
            256 => Prepared::B2048(Box::new(Modulus::new(n)?)),
            384 => Prepared::B3072(Box::new(Modulus::new(n)?)),
            512 => Prepared::B4096(Box::new(Modulus::new(n)?)),
            _ => return None,
        };
        Some(PublicKey { prepared, exponent, length: n.len(), hash })
    }

    /// RSASSA-PKCS1-v1_5-VERIFY: the encoded message must equal
    /// `00 01 FF..FF 00 DigestInfo(hash(message))` byte for byte.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        if signature.len() != self.length {
            return false;
        }
        let encoded = match &self.prepared {
            Prepared::B2048(m) => m.public_operation(signature, self.exponent, self.length),
            Prepared::B3072(m) => m.public_operation(signature, self.exponent, self.length),
            Prepared::B4096(m) => m.public_operation(signature, self.exponent, self.length),
        };
        let Some(encoded) = encoded else { return false };
        let t = digest_info(self.hash, message);
        let Some(padding) = self.length.checked_sub(t.len() + 3).filter(|p| *p >= 8) else { return false };
        let expected = [&[0x00, 0x01][..], &vec![0xff; padding], &[0x00], &t].concat();
        encoded == expected
    }
}
