//! RSA signature verification for RS256/384/512 (PKCS#1 v1.5) and PS256/384/512 (PSS, salt as
//! long as the hash, RFC 7518 §3.5), written for the module's one job: checking public
//! signatures inside wasm.
//!
//! Why not a crate: jwt-compact's `rsa` path cost 1.4 ms per RS256 check inside wasm and
//! crypto-bigint's constant-time Montgomery code about 0.26 ms; both also make the module much
//! larger. Verification handles public data only (modulus, exponent, signature), so nothing
//! here needs to be constant-time. The arithmetic is [`crate::montgomery`] (short limbs,
//! lazy carries, SIMD128 inside wasm): per key, at load, the limbs, `-n⁻¹` and `R^e mod n`;
//! per check, 18 Montgomery products for e = 65537. Wycheproof's PKCS#1 and PSS suites run
//! against this file natively and inside wasm (the filter's `tests/filter/vectors.rs`,
//! `wasm.rs`), and `tests/referee.rs` holds it to ring.

use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::montgomery::Modulus;

/// The modulus sizes, in bits, a key may have. Below 2,048 is weak (NIST SP 800-131A); above
/// 8,192 a check costs more than a request should. (ring verifies moduli from 2,041 bits:
/// those few sizes are refused here all the same.)
pub const MIN_BITS: usize = 2048;
pub const MAX_BITS: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut hasher = D::new();
            for part in parts {
                hasher.update(part);
            }
            hasher.finalize().to_vec()
        }
        match self {
            Hash::Sha256 => run::<Sha256>(parts),
            Hash::Sha384 => run::<Sha384>(parts),
            Hash::Sha512 => run::<Sha512>(parts),
        }
    }

    fn length(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// The DER DigestInfo prefix (RFC 8017 §9.2, note 1).
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20],
            Hash::Sha384 => &[0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30],
            Hash::Sha512 => &[0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Pkcs1v15,
    Pss,
}

/// A public key bound to one padding and one hash, with its Montgomery parameters.
pub struct PublicKey {
    modulus: Modulus,
    bits: usize,
    padding: Padding,
    hash: Hash,
    /// The DER SubjectPublicKeyInfo for the host's `verify_signature` (PKCS#1 v1.5 keys only).
    host_form: Option<Vec<u8>>,
}

impl PublicKey {
    /// `n` and `e` big-endian, as in a JWK. Errors say what is wrong with the key.
    pub fn new(n: &[u8], e: &[u8], padding: Padding, hash: Hash) -> Result<PublicKey, String> {
        let n = n.get(n.iter().position(|b| *b != 0).unwrap_or(n.len())..).unwrap_or_default();
        let e = e.get(e.iter().position(|b| *b != 0).unwrap_or(e.len())..).unwrap_or_default();
        let bits = n.first().map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(format!("an RSA key must have {MIN_BITS} to {MAX_BITS} bits, this one has {bits}"));
        }
        if e.len() > 4 {
            return Err("the RSA public exponent must be below 2^32".into());
        }
        let exponent = e.iter().fold(0u32, |acc, byte| acc << 8 | u32::from(*byte));
        if exponent < 3 || exponent % 2 == 0 {
            return Err("the RSA public exponent must be odd and at least 3".into());
        }
        if n.last().is_none_or(|low| low % 2 == 0) {
            return Err("the RSA modulus is even".into());
        }
        // The Montgomery parameters, once per key.
        let modulus = Modulus::new(n, exponent).ok_or("the RSA modulus is not usable")?;
        let host_form = (padding == Padding::Pkcs1v15).then(|| crate::der::rsa_public_key_der(n, e));
        Ok(PublicKey { modulus, bits, padding, hash, host_form })
    }

    /// The hash name and DER key Envoy's `verify_signature` takes, for PKCS#1 v1.5 keys.
    pub fn host_form(&self) -> Option<(&'static str, &[u8])> {
        let hash = match self.hash {
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
        };
        self.host_form.as_deref().map(|der| (hash, der))
    }

    /// Whether `signature` is this key's signature of `message` under its padding and hash.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        // `None` unless the signature is a number below n of exactly the modulus length.
        let Some(encoded) = self.modulus.power(signature) else { return false };
        match self.padding {
            Padding::Pkcs1v15 => self.pkcs1v15_matches(&encoded, message),
            Padding::Pss => self.pss_matches(&encoded, message),
        }
    }

    /// EMSA-PKCS1-v1_5: `00 01 FF..FF 00 DigestInfo(hash(message))`, byte for byte.
    fn pkcs1v15_matches(&self, encoded: &[u8], message: &[u8]) -> bool {
        let prefix = self.hash.digest_info_prefix();
        let digest = self.hash.digest(&[message]);
        let Some(padding) = encoded.len().checked_sub(prefix.len() + digest.len() + 3).filter(|p| *p >= 8) else { return false };
        let expected = [&[0x00, 0x01][..], &vec![0xff; padding], &[0x00], prefix, &digest].concat();
        encoded == expected
    }

    /// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with MGF1 over the same hash and a salt as long as
    /// the hash.
    fn pss_matches(&self, encoded: &[u8], message: &[u8]) -> bool {
        let h_len = self.hash.length();
        let salt_len = h_len;
        let em_bits = self.bits - 1;
        let em_len = em_bits.div_ceil(8);
        // The encoded message is the last em_len bytes; anything before them must be zero.
        let Some((leading, em)) = encoded.split_at_checked(encoded.len().saturating_sub(em_len)) else { return false };
        if leading.iter().any(|b| *b != 0) || em_len < h_len + salt_len + 2 || em.last() != Some(&0xbc) {
            return false;
        }
        let db_len = em_len - h_len - 1;
        let (Some(masked_db), Some(h)) = (em.get(..db_len), em.get(db_len..em_len - 1)) else { return false };
        let unused_bits = 8 * em_len - em_bits;
        let top_mask = 0xffu8 >> unused_bits;
        if masked_db.first().is_none_or(|first| first & !top_mask != 0) {
            return false;
        }
        let mut db: Vec<u8> = masked_db.iter().zip(self.mgf1(h, db_len)).map(|(m, k)| m ^ k).collect();
        if let Some(first) = db.first_mut() {
            *first &= top_mask;
        }
        let zeros = db_len - salt_len - 1;
        let (Some(padding), Some(&separator), Some(salt)) = (db.get(..zeros), db.get(zeros), db.get(zeros + 1..)) else { return false };
        if padding.iter().any(|b| *b != 0) || separator != 0x01 {
            return false;
        }
        let digest = self.hash.digest(&[message]);
        self.hash.digest(&[&[0u8; 8], &digest, salt]) == h
    }

    fn mgf1(&self, seed: &[u8], length: usize) -> Vec<u8> {
        let mut mask = Vec::with_capacity(length + self.hash.length());
        let mut counter = 0u32;
        while mask.len() < length {
            mask.extend(self.hash.digest(&[seed, &counter.to_be_bytes()]));
            counter += 1;
        }
        mask.truncate(length);
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_outside_the_limits_are_refused_with_a_reason() {
        let n = [0xffu8; 256];
        assert!(PublicKey::new(&n, &[1, 0, 1], Padding::Pkcs1v15, Hash::Sha256).is_ok());
        assert!(PublicKey::new(&n[..128], &[1, 0, 1], Padding::Pkcs1v15, Hash::Sha256).err().unwrap().contains("1024"));
        assert!(PublicKey::new(&n, &[1, 0, 0], Padding::Pkcs1v15, Hash::Sha256).err().unwrap().contains("odd"));
        assert!(PublicKey::new(&n, &[1, 0, 0, 0, 1], Padding::Pkcs1v15, Hash::Sha256).err().unwrap().contains("2^32"));
        let mut even = n;
        even[255] = 0xfe;
        assert!(PublicKey::new(&even, &[1, 0, 1], Padding::Pkcs1v15, Hash::Sha256).err().unwrap().contains("even"));
    }
}
