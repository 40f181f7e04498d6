//! ECDSA verification for ES256 (P-256 with SHA-256), ES384 (P-384 with SHA-384) and ES512
//! (P-521 with SHA-512), JWS signatures being `r ‖ s` of fixed length (RFC 7518 §3.4).
//!
//! Why not the `p256`/`p384` crates: their fiat-crypto field code was 140 KB of the module
//! (p384 alone 118 KB) and took 1.7 ms per ES256 check inside wasm, where their 64-bit limbs
//! need 128-bit products that wasm32 does not have. Here the curves share one generic
//! implementation over the Montgomery arithmetic of [`crate::bignum`]. Verification handles
//! public values only, so nothing needs to be constant-time.
//!
//! Method: Jacobian coordinates with `a = -3`, `u₁·G + u₂·Q` with interleaved 4-bit windows
//! over tables of `1·P … 15·P` in affine form (the key's table is built at load), mixed
//! additions, and the final `x(R) ≡ r (mod n)` tested as `X = r·Z²` (and `(r+n)·Z²` when
//! `r + n < p`), so no field inversion per check. Wycheproof's P-256 and P-384 suites run
//! against this file natively and inside wasm (the filter's `tests/filter/vectors.rs`, `wasm.rs`),
//! and `tests/referee.rs` holds it to ring.

use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::{bignum, der};

/// A curve `y² = x³ - 3x + b` over `p` with a generator of prime order `n` (SEC 2 §2.4.2,
/// §2.5.1), as big-endian hex.
struct CurveSpec {
    p: &'static str,
    n: &'static str,
    b: &'static str,
    gx: &'static str,
    gy: &'static str,
}

const P256: CurveSpec = CurveSpec {
    p: "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
    n: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
    b: "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
    gx: "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
    gy: "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
};

const P384: CurveSpec = CurveSpec {
    p: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
    n: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    b: "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
    gx: "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
    gy: "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
};

const P521: CurveSpec = CurveSpec {
    p: "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    n: "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
    b: "0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00",
    gx: "00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66",
    gy: "011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650",
};

/// The largest limb count (P-521: 17 limbs of 32 bits hold 521), which sizes the scratch
/// space of a product.
const MAX_LIMBS: usize = 17;

type Element<const L: usize> = [u32; L];

fn from_hex<const L: usize>(hex: &str) -> Element<L> {
    let mut out = [0u32; L];
    let digits = hex.as_bytes();
    for (slot, chunk) in out.iter_mut().zip(digits.rchunks(8)) {
        *slot = std::str::from_utf8(chunk).ok().and_then(|text| u32::from_str_radix(text, 16).ok()).unwrap_or(0);
    }
    out
}

fn from_limbs<const L: usize>(limbs: &[u32]) -> Element<L> {
    std::array::from_fn(|i| limbs.get(i).copied().unwrap_or(0))
}

fn plain_one<const L: usize>() -> Element<L> {
    std::array::from_fn(|i| u32::from(i == 0))
}

/// Arithmetic modulo an odd `m`, in Montgomery form where noted; every result is below `m`.
#[derive(Clone)]
struct Modulus<const L: usize> {
    m: Element<L>,
    m0_inverse: u32,
    r_squared: Element<L>,
}

impl<const L: usize> Modulus<L> {
    fn new(m: Element<L>) -> Modulus<L> {
        const { assert!(L <= MAX_LIMBS) };
        let mut r_squared = [0u32; L];
        bignum::power_of_two_mod(&m, 2 * 32 * L, &mut r_squared);
        Modulus { m0_inverse: bignum::negated_inverse(m.first().copied().unwrap_or(1)), m, r_squared }
    }

    fn mul(&self, a: &Element<L>, b: &Element<L>) -> Element<L> {
        let mut scratch = [0u32; MAX_LIMBS + 1];
        let t = scratch.get_mut(..=L).unwrap_or_default();
        bignum::montgomery_product(a, b, &self.m, self.m0_inverse, t);
        from_limbs(t)
    }

    fn square(&self, a: &Element<L>) -> Element<L> {
        self.mul(a, a)
    }

    fn add(&self, a: &Element<L>, b: &Element<L>) -> Element<L> {
        let mut sum = *a;
        if bignum::add(&mut sum, b) || bignum::at_least(&sum, &self.m) {
            bignum::subtract(&mut sum, &self.m);
        }
        sum
    }

    fn sub(&self, a: &Element<L>, b: &Element<L>) -> Element<L> {
        let mut difference = *a;
        if bignum::subtract(&mut difference, b) {
            bignum::add(&mut difference, &self.m);
        }
        difference
    }

    /// A plain number below `m` into Montgomery form.
    fn enter(&self, a: &Element<L>) -> Element<L> {
        self.mul(a, &self.r_squared)
    }

    /// `a⁻¹` in Montgomery form (Fermat: `a^(m-2)`, `m` prime); 0 for 0.
    fn invert(&self, a: &Element<L>) -> Element<L> {
        let mut exponent = self.m;
        let mut two = [0u32; L];
        if let Some(low) = two.first_mut() {
            *low = 2;
        }
        bignum::subtract(&mut exponent, &two);
        let mut result = self.enter(&plain_one());
        for bit in (0..32 * L).rev() {
            result = self.square(&result);
            if exponent.get(bit / 32).is_some_and(|limb| limb >> (bit % 32) & 1 == 1) {
                result = self.mul(&result, a);
            }
        }
        result
    }

    /// A big-endian number of exactly `bytes` bytes and below `m`, else `None`.
    fn read(&self, big_endian: &[u8], bytes: usize) -> Option<Element<L>> {
        let mut out = [0u32; L];
        (big_endian.len() == bytes && bignum::read_big_endian(big_endian, &mut out) && !bignum::at_least(&out, &self.m)).then_some(out)
    }
}

/// A point in Jacobian coordinates (`x = X/Z²`, `y = Y/Z³`), Montgomery form; `Z = 0` is the
/// point at infinity.
#[derive(Clone, Copy)]
struct Jacobian<const L: usize> {
    x: Element<L>,
    y: Element<L>,
    z: Element<L>,
}

/// A finite point in affine coordinates, Montgomery form.
#[derive(Clone, Copy)]
struct Affine<const L: usize> {
    x: Element<L>,
    y: Element<L>,
}

/// `1·P … 15·P`, for 4-bit windows.
type Table<const L: usize> = [Affine<L>; 15];

struct Curve<const L: usize> {
    field: Modulus<L>,
    order: Modulus<L>,
    /// The coordinate length in bytes.
    bytes: usize,
    /// `b` in Montgomery form.
    b: Element<L>,
    /// `1` in Montgomery form.
    one: Element<L>,
    generator: Table<L>,
}

impl<const L: usize> Curve<L> {
    fn new(spec: &CurveSpec, bytes: usize) -> Curve<L> {
        let field = Modulus::new(from_hex(spec.p));
        let one = field.enter(&plain_one());
        let generator = Affine { x: field.enter(&from_hex(spec.gx)), y: field.enter(&from_hex(spec.gy)) };
        let mut curve = Curve {
            b: field.enter(&from_hex(spec.b)),
            order: Modulus::new(from_hex(spec.n)),
            field,
            bytes,
            one,
            generator: [generator; 15],
        };
        curve.generator = curve.table(&generator);
        curve
    }

    /// Whether `y² = x³ - 3x + b`.
    fn contains(&self, point: &Affine<L>) -> bool {
        let f = &self.field;
        let x_cubed = f.mul(&f.square(&point.x), &point.x);
        let three_x = f.add(&f.add(&point.x, &point.x), &point.x);
        f.square(&point.y) == f.add(&f.sub(&x_cubed, &three_x), &self.b)
    }

    /// dbl-2001-b (a = -3): 3M + 5S. Infinity doubles to infinity.
    fn double(&self, p: &Jacobian<L>) -> Jacobian<L> {
        let f = &self.field;
        let delta = f.square(&p.z);
        let gamma = f.square(&p.y);
        let beta = f.mul(&p.x, &gamma);
        let product = f.mul(&f.sub(&p.x, &delta), &f.add(&p.x, &delta));
        let alpha = f.add(&f.add(&product, &product), &product);
        let four_beta = f.add(&f.add(&beta, &beta), &f.add(&beta, &beta));
        let x = f.sub(&f.square(&alpha), &f.add(&four_beta, &four_beta));
        let z = f.sub(&f.sub(&f.square(&f.add(&p.y, &p.z)), &gamma), &delta);
        let gamma_squared = f.square(&gamma);
        let two = f.add(&gamma_squared, &gamma_squared);
        let eight_gamma_squared = f.add(&f.add(&two, &two), &f.add(&two, &two));
        let y = f.sub(&f.mul(&alpha, &f.sub(&four_beta, &x)), &eight_gamma_squared);
        Jacobian { x, y, z }
    }

    /// madd-2007-bl: `p + q` with `q` affine, 7M + 4S, with the cases the formula cannot do
    /// (infinity, `p = q`, `p = -q`) handled first.
    fn add_affine(&self, p: &Jacobian<L>, q: &Affine<L>) -> Jacobian<L> {
        let f = &self.field;
        if bignum::is_zero(&p.z) {
            return Jacobian { x: q.x, y: q.y, z: self.one };
        }
        let z1z1 = f.square(&p.z);
        let u2 = f.mul(&q.x, &z1z1);
        let s2 = f.mul(&f.mul(&q.y, &p.z), &z1z1);
        let h = f.sub(&u2, &p.x);
        let half_r = f.sub(&s2, &p.y);
        if bignum::is_zero(&h) {
            return if bignum::is_zero(&half_r) { self.double(p) } else { Jacobian { x: [0; L], y: self.one, z: [0; L] } };
        }
        let hh = f.square(&h);
        let two_hh = f.add(&hh, &hh);
        let i = f.add(&two_hh, &two_hh);
        let j = f.mul(&h, &i);
        let r = f.add(&half_r, &half_r);
        let v = f.mul(&p.x, &i);
        let x = f.sub(&f.sub(&f.square(&r), &j), &f.add(&v, &v));
        let y1_j = f.mul(&p.y, &j);
        let y = f.sub(&f.mul(&r, &f.sub(&v, &x)), &f.add(&y1_j, &y1_j));
        let z = f.sub(&f.sub(&f.square(&f.add(&p.z, &h)), &z1z1), &hh);
        Jacobian { x, y, z }
    }

    /// `1·P … 15·P` in affine form, with one inversion for all (Montgomery's trick). `P` is a
    /// point of prime order above 15, so none of them is infinity.
    fn table(&self, point: &Affine<L>) -> Table<L> {
        let f = &self.field;
        let first = Jacobian { x: point.x, y: point.y, z: self.one };
        let mut multiples = [first; 15];
        for k in 1..15 {
            let previous = multiples.get(k - 1).copied().unwrap_or(first);
            if let Some(slot) = multiples.get_mut(k) {
                *slot = self.add_affine(&previous, point);
            }
        }
        // prefix[k] = Z₀·…·Z_k; then walk back with the one inverse.
        let mut prefix = [self.one; 15];
        let mut running = self.one;
        for (slot, multiple) in prefix.iter_mut().zip(&multiples) {
            running = f.mul(&running, &multiple.z);
            *slot = running;
        }
        let mut inverse = f.invert(&running);
        let mut table = [*point; 15];
        for k in (0..15).rev() {
            let (Some(multiple), Some(slot)) = (multiples.get(k), table.get_mut(k)) else { continue };
            let before = if k == 0 { self.one } else { prefix.get(k - 1).copied().unwrap_or(self.one) };
            let z_inverse = f.mul(&inverse, &before);
            inverse = f.mul(&inverse, &multiple.z);
            let z_inverse_squared = f.square(&z_inverse);
            *slot = Affine { x: f.mul(&multiple.x, &z_inverse_squared), y: f.mul(&multiple.y, &f.mul(&z_inverse_squared, &z_inverse)) };
        }
        table
    }

    /// `u₁·G + u₂·Q` for plain scalars, interleaving 4-bit windows from the top.
    fn combination(&self, u1: &Element<L>, u2: &Element<L>, key: &Table<L>) -> Jacobian<L> {
        let nibble = |scalar: &Element<L>, window: usize| scalar.get(window / 8).map_or(0, |limb| (limb >> (4 * (window % 8)) & 15) as usize);
        let mut sum = Jacobian { x: [0; L], y: self.one, z: [0; L] };
        for window in (0..8 * L).rev() {
            for _ in 0..4 {
                sum = self.double(&sum);
            }
            for (scalar, table) in [(u1, &self.generator), (u2, key)] {
                if let Some(multiple) = nibble(scalar, window).checked_sub(1).and_then(|k| table.get(k)) {
                    sum = self.add_affine(&sum, multiple);
                }
            }
        }
        sum
    }
}

/// A key of one curve, with its window table computed at load.
pub struct CurveKey<const L: usize> {
    curve: Curve<L>,
    table: Table<L>,
}

impl<const L: usize> CurveKey<L> {
    fn new(curve: Curve<L>, x: &[u8], y: &[u8]) -> Result<CurveKey<L>, String> {
        let (Some(x), Some(y)) = (curve.field.read(x, curve.bytes), curve.field.read(y, curve.bytes)) else {
            return Err(format!("an EC coordinate must be {} bytes and below the field prime", curve.bytes));
        };
        let point = Affine { x: curve.field.enter(&x), y: curve.field.enter(&y) };
        if !curve.contains(&point) {
            return Err("the EC point is not on the curve".into());
        }
        // The cofactor is 1: a point on the curve has the prime order n.
        let table = curve.table(&point);
        Ok(CurveKey { curve, table })
    }

    /// `signature` must be `r ‖ s`, each exactly `bytes` long (`read` checks both lengths).
    fn verifies(&self, digest: &[u8], signature: &[u8]) -> bool {
        let (curve, order) = (&self.curve, &self.curve.order);
        let Some((r, s)) = signature.split_at_checked(curve.bytes) else { return false };
        let (Some(r), Some(s)) = (order.read(r, curve.bytes), order.read(s, curve.bytes)) else { return false };
        if bignum::is_zero(&r) || bignum::is_zero(&s) {
            return false;
        }
        // The digest is as long as the order (SHA-256 for P-256, SHA-384 for P-384), so it is
        // below 2n and one subtraction reduces it; SHA-512's 512 bits are shorter than
        // P-521's order, so the digest is e itself (FIPS 186-4 §6.4: the leftmost
        // min(N, 512) bits).
        let mut e = [0u32; L];
        if !bignum::read_big_endian(digest, &mut e) {
            return false;
        }
        if bignum::at_least(&e, &order.m) {
            bignum::subtract(&mut e, &order.m);
        }
        // w = s⁻¹ in Montgomery form, so a plain·w product is plain: u = e·w, r·w mod n.
        let w = order.invert(&order.enter(&s));
        let (u1, u2) = (order.mul(&e, &w), order.mul(&r, &w));
        let sum = curve.combination(&u1, &u2, &self.table);
        if bignum::is_zero(&sum.z) {
            return false;
        }
        let f = &curve.field;
        let z_squared = f.square(&sum.z);
        // r < n < p, so r is a field element; so is r + n when it stays below p.
        if f.mul(&f.enter(&r), &z_squared) == sum.x {
            return true;
        }
        let mut r_plus_n = r;
        !bignum::add(&mut r_plus_n, &order.m) && !bignum::at_least(&r_plus_n, &f.m) && f.mul(&f.enter(&r_plus_n), &z_squared) == sum.x
    }
}

/// An ECDSA public key bound to its curve and hash: ES256, ES384 or ES512.
pub struct PublicKey {
    key: CurveKeys,
    /// The DER SubjectPublicKeyInfo for the host's `verify_signature`.
    host_form: Vec<u8>,
}

enum CurveKeys {
    P256(Box<CurveKey<8>>),
    P384(Box<CurveKey<12>>),
    P521(Box<CurveKey<17>>),
}

impl PublicKey {
    /// `alg` is `ES256`, `ES384` or `ES512`; `x` and `y` are the JWK's big-endian coordinates.
    pub fn new(alg: &str, x: &[u8], y: &[u8]) -> Result<PublicKey, String> {
        let (key, curve) = match alg {
            "ES256" => (CurveKeys::P256(Box::new(CurveKey::new(Curve::new(&P256, 32), x, y)?)), der::EcCurve::P256),
            "ES384" => (CurveKeys::P384(Box::new(CurveKey::new(Curve::new(&P384, 48), x, y)?)), der::EcCurve::P384),
            "ES512" => (CurveKeys::P521(Box::new(CurveKey::new(Curve::new(&P521, 66), x, y)?)), der::EcCurve::P521),
            _ => return Err(format!("{alg} is not an ECDSA algorithm")),
        };
        Ok(PublicKey { key, host_form: der::ec_public_key_der(curve, x, y) })
    }

    /// Whether `signature` (`r ‖ s`) signs `message` under this key's curve and hash.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            CurveKeys::P256(key) => key.verifies(&Sha256::digest(message), signature),
            CurveKeys::P384(key) => key.verifies(&Sha384::digest(message), signature),
            CurveKeys::P521(key) => key.verifies(&Sha512::digest(message), signature),
        }
    }

    /// The hash name and DER key Envoy's `verify_signature` takes; `None` for P-521, which
    /// the module checks itself: the host's self-test covers P-256 only, and ring (the
    /// harness's stand-in for BoringSSL) has no P-521.
    pub fn host_form(&self) -> Option<(&'static str, &[u8])> {
        let hash = match self.key {
            CurveKeys::P256(_) => "sha256",
            CurveKeys::P384(_) => "sha384",
            CurveKeys::P521(_) => return None,
        };
        Some((hash, &self.host_form))
    }

    /// The JWS signature `r ‖ s` as the DER `ECDSA-Sig-Value` that `verify_signature` takes;
    /// `None` when it is not exactly two coordinates long (no such signature verifies).
    pub fn host_signature(&self, signature: &[u8]) -> Option<Vec<u8>> {
        let bytes = match &self.key {
            CurveKeys::P256(key) => key.curve.bytes,
            CurveKeys::P384(key) => key.curve.bytes,
            CurveKeys::P521(key) => key.curve.bytes,
        };
        (signature.len() == 2 * bytes).then(|| der::ecdsa_signature_der(signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generators_are_on_their_curves_and_have_the_stated_order() {
        fn check<const L: usize>(spec: &CurveSpec, bytes: usize) {
            let curve = Curve::<L>::new(spec, bytes);
            assert!(curve.contains(&curve.generator[0]));
            // n·G = infinity and (n-1)·G = -G: u₁ = n - 1 with u₂ = 1 on the key G gives
            // infinity, the case ECDSA must refuse.
            let mut n_minus_1 = curve.order.m;
            bignum::subtract(&mut n_minus_1, &plain_one::<L>());
            let sum = curve.combination(&n_minus_1, &plain_one(), &curve.generator);
            assert!(bignum::is_zero(&sum.z), "(n-1)·G + G is infinity");
            let twice = curve.combination(&plain_one(), &plain_one(), &curve.generator);
            let two: Element<L> = std::array::from_fn(|i| u32::from(i == 0) * 2);
            let doubled = curve.combination(&two, &[0; L], &curve.generator);
            let f = &curve.field;
            assert_eq!(f.mul(&twice.x, &f.square(&doubled.z)), f.mul(&doubled.x, &f.square(&twice.z)), "G + G = 2·G");
        }
        check::<8>(&P256, 32);
        check::<12>(&P384, 48);
        check::<17>(&P521, 66);
    }

    #[test]
    fn keys_off_the_curve_or_of_the_wrong_length_are_refused() {
        let x = hex(P256.gx);
        let mut y = hex(P256.gy);
        assert!(PublicKey::new("ES256", &x, &y).is_ok());
        y[31] ^= 1;
        assert!(PublicKey::new("ES256", &x, &y).err().unwrap().contains("not on the curve"));
        assert!(PublicKey::new("ES256", &x[1..], &y).err().unwrap().contains("32 bytes"));
        assert!(PublicKey::new("ES384", &x, &y).is_err());
        assert!(PublicKey::new("ES256", &hex(P256.p), &y).err().unwrap().contains("below the field prime"));
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }
}
