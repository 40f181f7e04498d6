//! RSA signature verification for RS256/384/512 (PKCS#1 v1.5) and PS256/384/512 (PSS, salt as
//! long as the hash, RFC 7518 §3.5), written for the module's one job: checking public
//! signatures inside wasm.
//!
//! Why not a crate: jwt-compact's `rsa` path cost 1.4 ms per RS256 check inside wasm and
//! crypto-bigint's constant-time Montgomery code about 0.26 ms; both also make the module much
//! larger. Verification handles public data only (modulus, exponent, signature), so nothing
//! here needs to be constant-time, and 32-bit limbs with 64-bit products are what wasm32
//! multiplies natively. Per key, at load: the limbs, `-n⁻¹ mod 2³²` and `R² mod n`. Per
//! check: 17 Montgomery products for e = 65537. Wycheproof's PKCS#1 and PSS suites run against
//! this file natively and inside wasm (`tests/filter/vectors.rs`, `wasm.rs`).

use sha2::{Digest, Sha256, Sha384, Sha512};

use decision_table::bundle::{MAX_RSA_BITS as MAX_BITS, MIN_RSA_BITS as MIN_BITS};

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
    /// The modulus, little-endian 32-bit limbs, no leading zero limb.
    n: Vec<u32>,
    /// `-n⁻¹ mod 2³²`.
    n0_inverse: u32,
    /// `R² mod n` with `R = 2^(32·limbs)`: multiplying by it enters Montgomery form.
    r_squared: Vec<u32>,
    exponent: u32,
    bits: usize,
    /// The modulus length in bytes: every signature has exactly this length.
    length: usize,
    padding: Padding,
    hash: Hash,
}

/// Big-endian bytes to `limbs` little-endian limbs; `None` when they do not fit.
fn to_limbs(big_endian: &[u8], limbs: usize) -> Option<Vec<u32>> {
    let mut out = vec![0u32; limbs];
    let mut slots = out.iter_mut();
    for chunk in big_endian.rchunks(4) {
        let limb = chunk.iter().fold(0u32, |acc, byte| acc << 8 | u32::from(*byte));
        match slots.next() {
            Some(slot) => *slot = limb,
            None if limb == 0 => {}
            None => return None,
        }
    }
    Some(out)
}

fn to_big_endian(limbs: &[u32], length: usize) -> Vec<u8> {
    let bytes: Vec<u8> = limbs.iter().rev().flat_map(|limb| limb.to_be_bytes()).collect();
    let skip = bytes.len().saturating_sub(length);
    let mut out = vec![0u8; length.saturating_sub(bytes.len())];
    out.extend(bytes.into_iter().skip(skip));
    out
}

/// `a >= b` for equal-length little-endian numbers.
fn at_least(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// `a -= b` (equal lengths); returns the borrow.
fn subtract(a: &mut [u32], b: &[u32]) -> bool {
    let mut borrow = false;
    for (x, y) in a.iter_mut().zip(b) {
        let (d1, b1) = x.overflowing_sub(*y);
        let (d2, b2) = d1.overflowing_sub(u32::from(borrow));
        *x = d2;
        borrow = b1 || b2;
    }
    borrow
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
        let limbs = to_limbs(n, n.len().div_ceil(4)).ok_or("the RSA modulus does not fit")?;
        let n0 = limbs.first().copied().unwrap_or(0);
        if n0 % 2 == 0 {
            return Err("the RSA modulus is even".into());
        }
        Ok(PublicKey::prepare(limbs, exponent, bits, n.len(), padding, hash))
    }

    /// The Montgomery parameters of an odd modulus already checked by `new`.
    fn prepare(n: Vec<u32>, exponent: u32, bits: usize, length: usize, padding: Padding, hash: Hash) -> PublicKey {
        let n0 = n.first().copied().unwrap_or(1);
        // Newton's iteration doubles the correct low bits: 3 → 6 → 12 → 24 → 48.
        let mut inverse = n0;
        for _ in 0..4 {
            inverse = inverse.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inverse)));
        }
        let limb_count = n.len();
        let mut key = PublicKey { n, n0_inverse: inverse.wrapping_neg(), r_squared: Vec::new(), exponent, bits, length, padding, hash };
        key.r_squared = key.power_of_two_mod_n(2 * 32 * limb_count);
        key
    }

    /// The number 1 in this key's limb count.
    fn one(&self) -> Vec<u32> {
        let mut one = vec![0u32; self.n.len()];
        if let Some(low) = one.first_mut() {
            *low = 1;
        }
        one
    }

    pub fn bits(&self) -> usize {
        self.bits
    }

    /// `2^power mod n` by doubling (at load only).
    fn power_of_two_mod_n(&self, power: usize) -> Vec<u32> {
        let mut x = self.one();
        for _ in 0..power {
            let mut carry = 0u32;
            for limb in x.iter_mut() {
                let next = *limb >> 31;
                *limb = *limb << 1 | carry;
                carry = next;
            }
            if carry == 1 || at_least(&x, &self.n) {
                subtract(&mut x, &self.n);
            }
        }
        x
    }

    /// Montgomery product `a·b·R⁻¹ mod n` (both below n), interleaving the multiplication and
    /// the reduction limb by limb (FIOS), with two independent carry chains.
    fn multiply(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let mut t = vec![0u32; self.n.len() + 1];
        let (Some(&a0), Some(&n0)) = (a.first(), self.n.first()) else { return t };
        for &limb in b {
            let bi = u64::from(limb);
            let first = u64::from(t.first().copied().unwrap_or(0)) + u64::from(a0) * bi;
            let m = u64::from((first as u32).wrapping_mul(self.n0_inverse));
            let mut carry_product = first >> 32;
            let mut carry_reduction = (u64::from(first as u32) + m * u64::from(n0)) >> 32;
            let mut cells = t.iter_mut();
            let Some(mut previous) = cells.next() else { return Vec::new() };
            // The limb iterators come first in the zip: it must not take the top cell.
            for ((&aj, &nj), cell) in a.iter().skip(1).zip(self.n.iter().skip(1)).zip(cells.by_ref()) {
                let product = u64::from(*cell) + u64::from(aj) * bi + carry_product;
                carry_product = product >> 32;
                let reduced = u64::from(product as u32) + m * u64::from(nj) + carry_reduction;
                carry_reduction = reduced >> 32;
                *previous = reduced as u32;
                previous = cell;
            }
            let Some(top) = cells.next() else { return Vec::new() };
            let sum = u64::from(*top) + carry_product + carry_reduction;
            *previous = sum as u32;
            *top = (sum >> 32) as u32;
        }
        // t < 2n: one conditional subtraction.
        let high = t.pop().unwrap_or(0);
        if high != 0 || at_least(&t, &self.n) {
            subtract(&mut t, &self.n);
        }
        t
    }

    /// `signature^e mod n` as `length` big-endian bytes, or `None` when the signature is not
    /// a number below n of exactly the modulus length.
    fn public_operation(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.length {
            return None;
        }
        let s = to_limbs(signature, self.n.len())?;
        if at_least(&s, &self.n) {
            return None;
        }
        // Left-to-right square-and-multiply in Montgomery form (e = 65537: 16 squarings, one
        // multiplication), then one product by 1 to leave it.
        let base = self.multiply(&s, &self.r_squared);
        let mut result = base.clone();
        for bit in (0..u32::BITS - 1 - self.exponent.leading_zeros()).rev() {
            result = self.multiply(&result, &result);
            if self.exponent >> bit & 1 == 1 {
                result = self.multiply(&result, &base);
            }
        }
        Some(to_big_endian(&self.multiply(&result, &self.one()), self.length))
    }

    /// Whether `signature` is this key's signature of `message` under its padding and hash.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Some(encoded) = self.public_operation(signature) else { return false };
        match self.padding {
            Padding::Pkcs1v15 => self.pkcs1v15_matches(&encoded, message),
            Padding::Pss => self.pss_matches(&encoded, message),
        }
    }

    /// EMSA-PKCS1-v1_5: `00 01 FF..FF 00 DigestInfo(hash(message))`, byte for byte.
    fn pkcs1v15_matches(&self, encoded: &[u8], message: &[u8]) -> bool {
        let prefix = self.hash.digest_info_prefix();
        let digest = self.hash.digest(&[message]);
        let Some(padding) = self.length.checked_sub(prefix.len() + digest.len() + 3).filter(|p| *p >= 8) else { return false };
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

    /// A small modulus checked against plain u128 arithmetic (the code does not care about
    /// the size; `new` does).
    #[test]
    fn montgomery_products_agree_with_plain_arithmetic() {
        let n: u128 = 0xf123_4567_89ab_cdef_0123_4567;
        let limbs = to_limbs(&n.to_be_bytes(), 3).unwrap();
        let key = PublicKey::prepare(limbs.clone(), 65537, 96, 12, Padding::Pkcs1v15, Hash::Sha256);
        assert_eq!(limbs[0].wrapping_mul(key.n0_inverse), u32::MAX, "n0_inverse is -n⁻¹ mod 2³²");
        let mul_mod = |a: u128, b: u128| -> u128 {
            // Double-and-add: every intermediate stays below 2n < 2^97.
            let (mut result, mut a) = (0u128, a % n);
            let mut b = b;
            while b > 0 {
                if b & 1 == 1 {
                    result = (result + a) % n;
                }
                a = (a + a) % n;
                b >>= 1;
            }
            result
        };
        for (a, b) in [(3u128, 5u128), (n - 1, n - 1), (0x1234_5678_9abc_def0_1111, n / 3), (n / 2, 2), (1, 1)] {
            let montgomery_a = key.multiply(&to_limbs(&a.to_be_bytes(), 3).unwrap(), &key.r_squared);
            let montgomery_b = key.multiply(&to_limbs(&b.to_be_bytes(), 3).unwrap(), &key.r_squared);
            let product = key.multiply(&montgomery_a, &montgomery_b);
            let plain = key.multiply(&product, &[1, 0, 0]);
            let got = u128::from_be_bytes([[0u8; 4].as_slice(), &to_big_endian(&plain, 12)].concat().try_into().unwrap());
            assert_eq!(got, mul_mod(a, b), "{a:x} * {b:x}");
        }
    }

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
