//! Modular exponentiation for RSA's public operation, `x^e mod n`, in Montgomery form with
//! short limbs and lazy carries.
//!
//! Why not [`crate::bignum`]'s full 32-bit limbs: there every limb step carries, so each step
//! waits on the one before. Here a limb holds `w` bits (28, or 27 above 3072-bit moduli) in a
//! 64-bit cell, and a Montgomery product adds whole rows of 64-bit partial products into the
//! cells without carrying: `w` is picked so that no cell can overflow (see [`radix_bits`]).
//! Carries run once per row and once at the end. A row is then independent multiply-adds,
//! which wasm's SIMD128 does two at a time (`i64x2.mul`, `i64x2.add`): the module is built
//! with `+simd128` (`.cargo/config.toml`); elsewhere the same row runs on plain arrays. Rows
//! go two to a pass over the cells, reading their four factors from one interleaved table, so
//! each cell is loaded and stored once per two rows: the loop is bound by loads and stores.
//!
//! `R = 2^(w·s)` is at least `4n`, so a product of two numbers below `2n` is below `2n` again
//! and no product needs a conditional subtraction; only the final value is made canonical.
//! The base is never converted into Montgomery form: a per-key `R^e mod n` corrects the result
//! with one product (see [`Modulus::power`]).
//! Public values only: nothing here is constant-time.

use crate::bignum;

/// Limbs are held two to a 128-bit pair of 64-bit lanes, so the limb count is even.
const LANES: usize = 2;

/// `n` prepared for products: limbs of `radix_bits` bits, little-endian, two to a [`Pair`],
/// with `2^(radix_bits · limb count) ≥ 4n`.
pub struct Modulus {
    radix_bits: u32,
    limbs: Vec<Pair>,
    /// `n` and `n` one limb up, in the `N` and `N_UP` slots of a product's factor table.
    factors: Vec<Factors>,
    /// `-n⁻¹ mod 2^radix_bits`.
    inverse: u32,
    /// The public exponent.
    exponent: u32,
    /// `R^e mod n`: one product with it turns what square-and-multiply leaves into `x^e`.
    correction: Vec<Pair>,
    /// `n` big-endian, without leading zeros: its length is every result's length.
    big_endian: Vec<u8>,
}

/// The widest limb (at most 28 bits) for which a cell of a product cannot overflow: a cell
/// takes at most `s` rows of two products below `2^(2w)` each, plus one carry below
/// `2^(64-w)`, so `s · 2^(2w+1) < 2^64 - 2^(64-w)`, which `s ≤ 2^(63-2w) - 1` guarantees.
fn radix_bits(bits: usize) -> Option<(u32, usize)> {
    (20..=28u32).rev().find_map(|w| {
        let limbs = (bits + 2).div_ceil(w as usize).next_multiple_of(LANES);
        let most = (1usize << (63 - 2 * w)) - 1;
        (limbs <= most).then_some((w, limbs))
    })
}

/// Big-endian bytes into `limbs` limbs of `w` bits; `None` when the value does not fit.
fn unpack(big_endian: &[u8], w: u32, limbs: usize) -> Option<Vec<u32>> {
    let mask = (1u64 << w) - 1;
    let mut out = Vec::with_capacity(limbs);
    let (mut buffer, mut held) = (0u64, 0u32);
    for byte in big_endian.iter().rev() {
        buffer |= u64::from(*byte) << held;
        held += 8;
        if held >= w {
            out.push((buffer & mask) as u32);
            buffer >>= w;
            held -= w;
        }
    }
    if held > 0 {
        out.push(buffer as u32);
    }
    while out.last() == Some(&0) && out.len() > limbs {
        out.pop();
    }
    (out.len() <= limbs).then(|| {
        out.resize(limbs, 0);
        out
    })
}

/// `length` big-endian bytes of a number in limbs of `w` bits (the high bits must be zero).
fn pack(limbs: &[u32], w: u32, length: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(length + 4);
    let (mut buffer, mut held) = (0u64, 0u32);
    for limb in limbs {
        buffer |= u64::from(*limb) << held;
        held += w;
        while held >= 8 {
            out.push(buffer as u8);
            buffer >>= 8;
            held -= 8;
        }
    }
    out.push(buffer as u8);
    out.resize(length, 0);
    out.reverse();
    out
}

impl Modulus {
    /// An odd modulus of at least two bits, big-endian, with the exponent `e` every power
    /// will use; `None` for any other modulus or a zero exponent.
    pub fn new(big_endian: &[u8], exponent: u32) -> Option<Modulus> {
        if exponent == 0 {
            return None;
        }
        let big_endian = big_endian.get(big_endian.iter().position(|b| *b != 0)?..)?;
        let bits = big_endian.len() * 8 - big_endian.first()?.leading_zeros() as usize;
        if big_endian.last()? % 2 == 0 || bits < 2 {
            return None;
        }
        let (radix_bits, count) = radix_bits(bits)?;
        let limbs = unpack(big_endian, radix_bits, count)?;
        let mask = (1u32 << radix_bits) - 1;
        let inverse = bignum::negated_inverse(*limbs.first()?) & mask;
        // R² mod n, computed once with the plain 32-bit helpers.
        let mut plain = vec![0u32; big_endian.len().div_ceil(4)];
        if !bignum::read_big_endian(big_endian, &mut plain) {
            return None;
        }
        let mut r_squared = vec![0u32; plain.len()];
        bignum::power_of_two_mod(&plain, 2 * radix_bits as usize * count, &mut r_squared);
        let r_squared = unpack(&bignum::to_big_endian(&r_squared, big_endian.len()), radix_bits, count)?;
        let limbs = to_pairs(&limbs);
        let mut factors = vec![[lanes::pair([0, 0]); 4]; limbs.len() + 1];
        write_slots(&limbs, &mut factors, N, N_UP);
        let mut modulus = Modulus { radix_bits, limbs, factors, inverse, exponent, correction: Vec::new(), big_endian: big_endian.to_vec() };
        // R² mod n is R in Montgomery form, so its power is R^e in Montgomery form, and a
        // product with 1 leaves that form: R^e mod n, below n (R is prime to n).
        let mut scratch = modulus.scratch();
        let r_to_the_e = modulus.square_and_multiply(&to_pairs(&r_squared), &mut scratch);
        let mut correction = r_to_the_e.clone();
        modulus.product(&r_to_the_e, &to_pairs(&one(count)), &mut scratch, &mut correction);
        modulus.correction = correction;
        Some(modulus)
    }

    /// `base^e mod n` as big-endian bytes as long as `n`, for a `base` of exactly that length
    /// and below `n`; `None` for any other base.
    ///
    /// The base goes in as it is, not in Montgomery form: read as the Montgomery form of
    /// `x·R⁻¹`, square-and-multiply leaves `(x·R⁻¹)^e·R`, and one product with `R^e` gives `x^e`.
    /// That is one product fewer than entering and leaving Montgomery form (18 for e = 65537).
    pub fn power(&self, base: &[u8]) -> Option<Vec<u8>> {
        if base.len() != self.big_endian.len() || base >= self.big_endian.as_slice() {
            return None;
        }
        let count = LANES * self.limbs.len();
        let mut scratch = self.scratch();
        let base = to_pairs(&unpack(base, self.radix_bits, count)?);
        let raised = self.square_and_multiply(&base, &mut scratch);
        let mut result = raised.clone();
        self.product(&raised, &self.correction, &mut scratch, &mut result);
        // The product is below 2n: one subtraction at most makes it canonical.
        let mut limbs = from_pairs(&result);
        let n = from_pairs(&self.limbs);
        if limbs.iter().rev().cmp(n.iter().rev()) != std::cmp::Ordering::Less {
            let mut borrow = 0u32;
            for (limb, nk) in limbs.iter_mut().zip(&n) {
                let (difference, below) = limb.overflowing_sub(nk + borrow);
                *limb = difference & ((1u32 << self.radix_bits) - 1);
                borrow = u32::from(below);
            }
        }
        Some(pack(&limbs, self.radix_bits, self.big_endian.len()))
    }

    /// `x^e` in Montgomery arithmetic, left to right (e = 65537: 16 squarings, one
    /// multiplication): below `2n` and equal to `x^e·R^(1-e)` modulo `n`.
    fn square_and_multiply(&self, x: &[Pair], scratch: &mut Scratch) -> Vec<Pair> {
        let mut result = x.to_vec();
        let mut next = x.to_vec();
        for bit in (0..u32::BITS - 1 - self.exponent.leading_zeros()).rev() {
            self.product(&result, &result, scratch, &mut next);
            std::mem::swap(&mut result, &mut next);
            if self.exponent >> bit & 1 == 1 {
                self.product(&result, x, scratch, &mut next);
                std::mem::swap(&mut result, &mut next);
            }
        }
        result
    }

    fn scratch(&self) -> Scratch {
        Scratch { cells: vec![lanes::pair([0, 0]); 2 * self.limbs.len() + 2], factors: self.factors.clone() }
    }

    /// `out = a·b·R⁻¹ mod n`, below `2n`, for `a, b` below `2n`. Row `i` adds `a_i·b + q_i·n`
    /// into the cells from cell `i` on, with `q_i` chosen to make cell `i` a multiple of
    /// `2^w`, whose carry then moves to cell `i + 1`. Rows go two at a time, one pass over the
    /// cells per pair of rows: the even row adds `b` and `n` from the pair's first cell, the odd
    /// row adds `b` and `n` one limb up (so both add whole pairs), and both `q`s come first from
    /// the two low cells, worked out in scalar.
    fn product(&self, a: &[Pair], b: &[Pair], scratch: &mut Scratch, out: &mut [Pair]) {
        let w = self.radix_bits;
        let mask = (1u32 << w) - 1;
        let Scratch { cells, factors } = scratch;
        write_slots(b, factors, B, B_UP);
        let [b0, b1] = b.first().map_or([0, 0], |low| lanes::cells(*low));
        let [n0, n1] = self.limbs.first().map_or([0, 0], |low| lanes::cells(*low));
        let fit = |value: u64| (value as u32).wrapping_mul(self.inverse) & mask;
        cells.fill(lanes::pair([0, 0]));
        for (start, pair) in a.iter().enumerate() {
            let Some(row) = cells.get_mut(start..) else { break };
            let [a0, a1] = lanes::cells(*pair);
            let [c0, c1] = row.first().map_or([0, 0], |low| lanes::cells(*low));
            // The even row's q makes cell 0 a multiple of 2^w; its carry joins cell 1, whose
            // sum with the odd row's first products sets the odd row's q.
            let q0 = u64::from(fit(c0 + a0 * b0));
            let carry = (c0 + a0 * b0 + q0 * n0) >> w;
            let q1 = u64::from(fit(c1 + a0 * b1 + q0 * n1 + carry + a1 * b0));
            let multipliers = [lanes::splat(a0), lanes::splat(q0), lanes::splat(a1), lanes::splat(q1)];
            for (cell, factors) in row.iter_mut().zip(factors.iter()) {
                *cell = lanes::two_rows(*cell, factors, &multipliers);
            }
            let low = row.first().map_or(0, |low| lane(*low, 1));
            if let Some(next) = row.get_mut(1) {
                *next = lanes::add_low(*next, (low + carry) >> w);
            }
        }
        // Carry once through the top half: the value is below 2n < R, so nothing is left over.
        let half = out.len();
        let (mut carry, mask) = (0u64, u64::from(mask));
        for (slot, pair) in out.iter_mut().zip(cells.iter().skip(half)) {
            let [low, high] = lanes::cells(*pair);
            let low = low + carry;
            let high = high + (low >> w);
            carry = high >> w;
            *slot = lanes::pair([low & mask, high & mask]);
        }
    }
}

/// One pair of each factor a two-row pass multiplies: `b`, `n`, and both one limb up, side
/// by side so the pass reads them from one pointer. A table has one entry more than `n` has
/// pairs (the shifted factors are one pair longer; the other two are zero there).
type Factors = [Pair; 4];
const B: usize = 0;
const N: usize = 1;
const B_UP: usize = 2;
const N_UP: usize = 3;

/// The working space of one exponentiation, reused by every product.
struct Scratch {
    /// The 64-bit cells of a product, two to a pair.
    cells: Vec<Pair>,
    /// The factor table: `n`'s slots from [`Modulus::factors`], `b`'s written per product.
    factors: Vec<Factors>,
}

/// Writes `x` into slot `plain` and `x · 2^w` (one limb up) into slot `up` of the table.
fn write_slots(x: &[Pair], table: &mut [Factors], plain: usize, up: usize) {
    let mut below = 0;
    for (entry, pair) in table.iter_mut().zip(x.iter().map(Some).chain([None])) {
        let [low, high] = pair.map_or([0, 0], |pair| lanes::cells(*pair));
        if let Some(slot) = entry.get_mut(plain) {
            *slot = lanes::pair([low, high]);
        }
        if let Some(slot) = entry.get_mut(up) {
            *slot = lanes::pair([below, low]);
        }
        below = high;
    }
}

/// Lane 0 or 1 of a pair.
fn lane(pair: Pair, index: usize) -> u64 {
    let [low, high] = lanes::cells(pair);
    if index == 0 { low } else { high }
}

/// The number 1 in `count` limbs.
fn one(count: usize) -> Vec<u32> {
    let mut one = vec![0u32; count];
    if let Some(low) = one.first_mut() {
        *low = 1;
    }
    one
}

/// Limbs two to a pair (an even count).
fn to_pairs(limbs: &[u32]) -> Vec<Pair> {
    limbs.chunks_exact(LANES).map(|two| lanes::pair(std::array::from_fn(|k| u64::from(two.get(k).copied().unwrap_or(0))))).collect()
}

fn from_pairs(pairs: &[Pair]) -> Vec<u32> {
    pairs.iter().flat_map(|pair| lanes::cells(*pair)).map(|cell| cell as u32).collect()
}

use lanes::Pair;

/// Two 64-bit lanes: one `v128` inside wasm with SIMD128, a plain array elsewhere (native
/// tests, a wasm build without SIMD).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lanes {
    use core::arch::wasm32::{u64x2, u64x2_add, u64x2_extract_lane, u64x2_mul, u64x2_splat, v128};

    pub type Pair = v128;

    pub fn pair(cells: [u64; 2]) -> Pair {
        u64x2(cells[0], cells[1])
    }

    pub fn cells(pair: Pair) -> [u64; 2] {
        [u64x2_extract_lane::<0>(pair), u64x2_extract_lane::<1>(pair)]
    }

    pub fn splat(value: u64) -> Pair {
        u64x2_splat(value)
    }

    /// `cell + b·a₀ + n·q₀ + b↑·a₁ + n↑·q₁`, lane by lane, for factors `[b, n, b↑, n↑]`
    /// and multipliers `[a₀, q₀, a₁, q₁]` (all below 2^32, so no product wraps).
    pub fn two_rows(cell: Pair, factors: &[Pair; 4], multipliers: &[Pair; 4]) -> Pair {
        let [b, n, b_up, n_up] = *factors;
        let [a0, q0, a1, q1] = *multipliers;
        let even = u64x2_add(u64x2_mul(b, a0), u64x2_mul(n, q0));
        let odd = u64x2_add(u64x2_mul(b_up, a1), u64x2_mul(n_up, q1));
        u64x2_add(cell, u64x2_add(even, odd))
    }

    pub fn add_low(pair: Pair, value: u64) -> Pair {
        u64x2_add(pair, u64x2(value, 0))
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod lanes {
    pub type Pair = [u64; 2];

    pub fn pair(cells: [u64; 2]) -> Pair {
        cells
    }

    pub fn cells(pair: Pair) -> [u64; 2] {
        pair
    }

    pub fn splat(value: u64) -> Pair {
        [value; 2]
    }

    pub fn two_rows(cell: Pair, factors: &[Pair; 4], multipliers: &[Pair; 4]) -> Pair {
        let [b, n, b_up, n_up] = *factors;
        let [a0, q0, a1, q1] = *multipliers;
        let lane = |k: usize| {
            let at = |pair: Pair| pair.get(k).copied().unwrap_or(0);
            at(cell) + at(b) * at(a0) + at(n) * at(q0) + at(b_up) * at(a1) + at(n_up) * at(q1)
        };
        [lane(0), lane(1)]
    }

    pub fn add_low(pair: Pair, value: u64) -> Pair {
        [pair[0] + value, pair[1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `base^exponent mod n` by the plain 32-bit Montgomery code in [`bignum`].
    fn reference_power(n: &[u8], base: &[u8], exponent: u32) -> Vec<u8> {
        let limbs = n.len().div_ceil(4);
        let (mut m, mut x) = (vec![0u32; limbs], vec![0u32; limbs]);
        assert!(bignum::read_big_endian(n, &mut m) && bignum::read_big_endian(base, &mut x));
        let inverse = bignum::negated_inverse(m[0]);
        let mut r_squared = vec![0u32; limbs];
        bignum::power_of_two_mod(&m, 64 * limbs, &mut r_squared);
        let product = |a: &[u32], b: &[u32]| {
            let mut t = vec![0u32; limbs + 1];
            bignum::montgomery_product(a, b, &m, inverse, &mut t);
            t.truncate(limbs);
            t
        };
        let base = product(&x, &r_squared);
        let mut result = base.clone();
        for bit in (0..u32::BITS - 1 - exponent.leading_zeros()).rev() {
            result = product(&result, &result);
            if exponent >> bit & 1 == 1 {
                result = product(&result, &base);
            }
        }
        let mut one = vec![0u32; limbs];
        one[0] = 1;
        bignum::to_big_endian(&product(&result, &one), n.len())
    }

    /// Deterministic filler bytes (xorshift), so failures reproduce.
    fn bytes(seed: u64, length: usize) -> Vec<u8> {
        let mut state = seed | 1;
        (0..length)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    /// Every modulus size the filter accepts, hence both limb widths (28 bits up to 3072-bit
    /// keys, 27 above), against the 32-bit reference, with the edge bases and large limbs.
    #[test]
    fn powers_agree_with_the_plain_reference() {
        for (bits, seed) in [(2048, 1), (2048, 2), (3072, 3), (4096, 4), (8192, 5), (2056, 6)] {
            let mut n = bytes(seed, bits / 8);
            n[0] |= 0x80;
            *n.last_mut().unwrap() |= 1;
            let mut n_minus_one = n.clone();
            *n_minus_one.last_mut().unwrap() -= 1;
            let mut all_ones_below = vec![0xffu8; n.len()];
            all_ones_below[0] = n[0] - 1;
            let mut bases = vec![vec![0u8; n.len()], n_minus_one, all_ones_below, bytes(seed + 100, n.len())];
            bases[3][0] = n[0] >> 1;
            let mut one = vec![0u8; n.len()];
            *one.last_mut().unwrap() = 1;
            bases.push(one);
            for base in &bases {
                for exponent in [3, 65537, 0xffff_ffff] {
                    let modulus = Modulus::new(&n, exponent).unwrap();
                    assert_eq!(modulus.power(base).unwrap(), reference_power(&n, base, exponent), "{bits} bits, e = {exponent}");
                }
            }
            // Not below n, or not of n's length: refused.
            let modulus = Modulus::new(&n, 3).unwrap();
            assert!(modulus.power(&n).is_none());
            assert!(modulus.power(&n[1..]).is_none());
            assert!(Modulus::new(&n, 0).is_none(), "a zero exponent");
        }
    }

    #[test]
    fn limb_widths_keep_every_cell_within_64_bits() {
        for bits in [2, 64, 2048, 3072, 3584, 4096, 8192, 16384] {
            let (w, limbs) = radix_bits(bits).unwrap();
            assert!(limbs % LANES == 0 && w as usize * limbs >= bits + 2, "{bits}: R ≥ 4n");
            // s rows of two products below 2^(2w), plus one carry below 2^(64-w).
            let worst = (limbs as u128) * (2u128 << (2 * w)) + (1u128 << (64 - w));
            assert!(worst < 1u128 << 64, "{bits} bits: {limbs} limbs of {w}");
        }
        assert_eq!(radix_bits(2048), Some((28, 74)));
        assert_eq!(radix_bits(4096), Some((27, 152)));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

        /// Against an independent reference (num-bigint's `modpow`): random odd moduli of
        /// every size a key may have (2,048 to 8,192 bits, any bit length between), random
        /// bases below them, and the exponents keys use or may use (odd, below 2^32). The
        /// debug build keeps overflow checks on, so a cell that overflowed would panic.
        #[test]
        fn powers_agree_with_num_bigint(bits in 2048usize..=8192, seed: u64, any_exponent: u32, pick in 0u8..3) {
            let exponent = [65537, 3, any_exponent | 1][usize::from(pick)];
            let length = bits.div_ceil(8);
            let mut n = bytes(seed, length);
            // Exactly `bits` bits, odd.
            let top = bits - 8 * (length - 1);
            n[0] &= (1u16 << top).wrapping_sub(1) as u8;
            n[0] |= 1 << (top - 1);
            *n.last_mut().unwrap() |= 1;
            let modulus = Modulus::new(&n, exponent).unwrap();
            let big_n = num_bigint::BigUint::from_bytes_be(&n);
            let mut base = bytes(seed ^ 0x5555, length);
            base[0] %= n[0];
            let expected = num_bigint::BigUint::from_bytes_be(&base).modpow(&num_bigint::BigUint::from(exponent), &big_n).to_bytes_be();
            let mut padded = vec![0u8; length - expected.len()];
            padded.extend(expected);
            proptest::prop_assert_eq!(modulus.power(&base).unwrap(), padded);
        }
    }

    #[test]
    fn even_or_zero_moduli_are_refused() {
        assert!(Modulus::new(&[0x0f, 0xfe], 3).is_none());
        assert!(Modulus::new(&[0, 0], 3).is_none());
        assert!(Modulus::new(&[], 3).is_none());
        assert!(Modulus::new(&[1], 3).is_none(), "one bit");
    }
}
