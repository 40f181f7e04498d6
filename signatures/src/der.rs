//! The DER forms a host verifier takes (Envoy's `verify_signature`, BoringSSL's
//! `EVP_DigestVerify`): SubjectPublicKeyInfo for RSA and EC keys, and the ECDSA signature
//! structure a JWS's `r ‖ s` becomes.

/// A DER element: tag, definite length, content.
pub fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let length = content.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes: Vec<u8> = length.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn der_unsigned_integer(big_endian: &[u8]) -> Vec<u8> {
    let trimmed = big_endian.get(big_endian.iter().position(|b| *b != 0).unwrap_or(big_endian.len())..).unwrap_or_default();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|top| top & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    der(0x02, &content)
}

/// The curves of ES256, ES384 and ES512.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcCurve {
    P256,
    P384,
    P521,
}

/// The DER SubjectPublicKeyInfo of an EC key (RFC 5480 §2): `id-ecPublicKey`, the named curve,
/// and the uncompressed point `04 ‖ x ‖ y`.
pub fn ec_public_key_der(curve: EcCurve, x: &[u8], y: &[u8]) -> Vec<u8> {
    const EC_PUBLIC_KEY: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let named_curve: &[u8] = match curve {
        EcCurve::P256 => &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
        EcCurve::P384 => &[0x2b, 0x81, 0x04, 0x00, 0x22],
        EcCurve::P521 => &[0x2b, 0x81, 0x04, 0x00, 0x23],
    };
    let algorithm = der(0x30, &[der(0x06, &EC_PUBLIC_KEY), der(0x06, named_curve)].concat());
    let bit_string = der(0x03, &[&[0u8, 0x04][..], x, y].concat());
    der(0x30, &[algorithm, bit_string].concat())
}

/// A JWS ECDSA signature `r ‖ s` (two halves of equal length) as the DER
/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3), minimally encoded.
pub fn ecdsa_signature_der(raw: &[u8]) -> Vec<u8> {
    let (r, s) = raw.split_at(raw.len() / 2);
    der(0x30, &[der_unsigned_integer(r), der_unsigned_integer(s)].concat())
}

/// The DER SubjectPublicKeyInfo of an RSA key (RFC 8017 A.1.1 inside RFC 5280 §4.1), the form
/// Envoy's `public_key` field takes.
pub fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    const RSA_ENCRYPTION: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let algorithm = der(0x30, &[der(0x06, &RSA_ENCRYPTION), vec![0x05, 0x00]].concat());
    let key = der(0x30, &[der_unsigned_integer(n), der_unsigned_integer(e)].concat());
    let bit_string = der(0x03, &[&[0u8][..], &key].concat());
    der(0x30, &[algorithm, bit_string].concat())
}
