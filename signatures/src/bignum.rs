//! Unsigned multi-precision arithmetic on little-endian 32-bit limbs, shared by [`crate::rsa`]
//! and [`crate::ecdsa`]. 32-bit limbs with 64-bit products are what wasm32 multiplies natively.
//! Signature verification handles public values only, so nothing here is constant-time.

/// Big-endian bytes into `out` (little-endian limbs, zero-filled); `false` when they do not fit.
pub fn read_big_endian(big_endian: &[u8], out: &mut [u32]) -> bool {
    out.fill(0);
    let mut slots = out.iter_mut();
    for chunk in big_endian.rchunks(4) {
        let limb = chunk.iter().fold(0u32, |acc, byte| acc << 8 | u32::from(*byte));
        match slots.next() {
            Some(slot) => *slot = limb,
            None if limb == 0 => {}
            None => return false,
        }
    }
    true
}

/// The last `length` bytes of the big-endian form of `limbs`, zero-padded on the left.
pub fn to_big_endian(limbs: &[u32], length: usize) -> Vec<u8> {
    let bytes: Vec<u8> = limbs.iter().rev().flat_map(|limb| limb.to_be_bytes()).collect();
    let skip = bytes.len().saturating_sub(length);
    let mut out = vec![0u8; length.saturating_sub(bytes.len())];
    out.extend(bytes.into_iter().skip(skip));
    out
}

/// `a >= b` for equal-length numbers.
pub fn at_least(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

pub fn is_zero(a: &[u32]) -> bool {
    a.iter().all(|limb| *limb == 0)
}

/// `a -= b` (equal lengths); returns the borrow.
pub fn subtract(a: &mut [u32], b: &[u32]) -> bool {
    let mut borrow = 0u64;
    for (x, y) in a.iter_mut().zip(b) {
        let difference = u64::from(*x).wrapping_sub(u64::from(*y)).wrapping_sub(borrow);
        *x = difference as u32;
        borrow = difference >> 63;
    }
    borrow == 1
}

/// `a += b` (equal lengths); returns the carry.
pub fn add(a: &mut [u32], b: &[u32]) -> bool {
    let mut carry = 0u64;
    for (x, y) in a.iter_mut().zip(b) {
        let sum = u64::from(*x) + u64::from(*y) + carry;
        *x = sum as u32;
        carry = sum >> 32;
    }
    carry == 1
}

/// `-m⁻¹ mod 2³²` for an odd `m0` (the low limb of a modulus).
pub fn negated_inverse(m0: u32) -> u32 {
    // Newton's iteration doubles the correct low bits: 3 → 6 → 12 → 24 → 48.
    let mut inverse = m0;
    for _ in 0..4 {
        inverse = inverse.wrapping_mul(2u32.wrapping_sub(m0.wrapping_mul(inverse)));
    }
    inverse.wrapping_neg()
}

/// `2^power mod m` into `out` (as long as `m`), by doubling: for set-up only.
pub fn power_of_two_mod(m: &[u32], power: usize, out: &mut [u32]) {
    out.fill(0);
    if let Some(low) = out.first_mut() {
        *low = 1;
    }
    for _ in 0..power {
        let mut carry = 0u32;
        for limb in out.iter_mut() {
            let next = *limb >> 31;
            *limb = *limb << 1 | carry;
            carry = next;
        }
        if carry == 1 || at_least(out, m) {
            subtract(out, m);
        }
    }
}

/// Montgomery product `a·b·R⁻¹ mod m` with `R = 2^(32·limbs)`, for `a, b < m` and odd `m`,
/// interleaving multiplication and reduction limb by limb (FIOS) with two independent carry
/// chains. `t` must be one limb longer than `m`; the result, below `m`, is its low limbs.
pub fn montgomery_product(a: &[u32], b: &[u32], m: &[u32], m0_inverse: u32, t: &mut [u32]) {
    t.fill(0);
    let (Some(&a0), Some(&m0)) = (a.first(), m.first()) else { return };
    for &limb in b {
        let bi = u64::from(limb);
        let first = u64::from(t.first().copied().unwrap_or(0)) + u64::from(a0) * bi;
        let q = u64::from((first as u32).wrapping_mul(m0_inverse));
        let mut carry_product = first >> 32;
        let mut carry_reduction = (u64::from(first as u32) + q * u64::from(m0)) >> 32;
        let mut cells = t.iter_mut();
        let Some(mut previous) = cells.next() else { return };
        // The limb iterators come first in the zip: it must not take the top cell.
        for ((&aj, &mj), cell) in a.iter().skip(1).zip(m.iter().skip(1)).zip(cells.by_ref()) {
            let product = u64::from(*cell) + u64::from(aj) * bi + carry_product;
            carry_product = product >> 32;
            let reduced = u64::from(product as u32) + q * u64::from(mj) + carry_reduction;
            carry_reduction = reduced >> 32;
            *previous = reduced as u32;
            previous = cell;
        }
        let Some(top) = cells.next() else { return };
        let sum = u64::from(*top) + carry_product + carry_reduction;
        *previous = sum as u32;
        *top = (sum >> 32) as u32;
    }
    // t < 2m: one conditional subtraction.
    if let Some((high, low)) = t.split_last_mut()
        && (*high != 0 || at_least(low, m))
    {
        subtract(low, m);
        *high = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limbs(value: u128) -> Vec<u32> {
        let mut out = vec![0u32; 4];
        assert!(read_big_endian(&value.to_be_bytes(), &mut out));
        out
    }

    fn value(limbs: &[u32]) -> u128 {
        limbs.iter().rev().fold(0u128, |acc, limb| acc << 32 | u128::from(*limb))
    }

    /// A 96-bit modulus checked against plain u128 arithmetic.
    #[test]
    fn montgomery_products_agree_with_plain_arithmetic() {
        let n: u128 = 0xf123_4567_89ab_cdef_0123_4567;
        let m = &limbs(n)[..3];
        let inverse = negated_inverse(m[0]);
        assert_eq!(m[0].wrapping_mul(inverse), u32::MAX, "-m⁻¹ mod 2³²");
        let mut r_squared = [0u32; 3];
        power_of_two_mod(m, 2 * 96, &mut r_squared);
        let mul_mod = |a: u128, b: u128| -> u128 {
            // Double-and-add: every intermediate stays below 2n < 2^97.
            let (mut result, mut a, mut b) = (0u128, a % n, b);
            while b > 0 {
                if b & 1 == 1 {
                    result = (result + a) % n;
                }
                a = (a + a) % n;
                b >>= 1;
            }
            result
        };
        let product = |a: &[u32], b: &[u32]| {
            let mut t = [0u32; 4];
            montgomery_product(a, b, m, inverse, &mut t);
            assert_eq!(t[3], 0);
            t[..3].to_vec()
        };
        for (a, b) in [(3u128, 5u128), (n - 1, n - 1), (0x1234_5678_9abc_def0_1111, n / 3), (n / 2, 2), (1, 1), (0, n - 1)] {
            let montgomery_a = product(&limbs(a)[..3], &r_squared);
            let montgomery_b = product(&limbs(b)[..3], &r_squared);
            let plain = product(&product(&montgomery_a, &montgomery_b), &[1, 0, 0]);
            assert_eq!(value(&plain), mul_mod(a, b), "{a:x} * {b:x}");
        }
    }

    #[test]
    fn addition_and_subtraction_carry_across_limbs() {
        let mut a = limbs(u128::from(u64::MAX));
        assert!(!add(&mut a, &limbs(1)));
        assert_eq!(value(&a), 1u128 << 64);
        assert!(!subtract(&mut a, &limbs(1)));
        assert_eq!(value(&a), u128::from(u64::MAX));
        let mut zero = limbs(0);
        assert!(subtract(&mut zero, &limbs(1)), "borrow out of the top");
        assert_eq!(value(&zero), u128::MAX);
        assert!(add(&mut zero, &limbs(1)), "carry out of the top");
        assert!(is_zero(&zero));
        assert!(!read_big_endian(&[1, 0, 0, 0, 0], &mut [0u32; 1]), "does not fit");
        assert_eq!(to_big_endian(&limbs(0x0102), 3), vec![0, 1, 2]);
    }
}
