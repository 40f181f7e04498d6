//! Envoy's own foreign functions (`source/extensions/common/wasm/foreign.cc`), which every
//! plugin on the Envoy profile gets unless a test withdraws them
//! (`PluginBuilder::without_foreign_function`, the CLI's `--without-foreign-function`). The
//! ngx_wasm_module profile has none (`hosts::ngx_wasm_module`).
//!
//! Only `verify_signature` so far: its arguments and result are the protobuf messages of
//! Envoy's `verify_signature.proto`, and it answers as Envoy's does: a message that does not
//! parse, or no key, is `BadArgument`; a key or hash it cannot use, or a signature that does
//! not verify, is `result: false` with the reason in `error`. Envoy verifies with BoringSSL's
//! `EVP_DigestVerify`; here ring does the same checks (PKCS#1 v1.5 for RSA keys, ASN.1 DER
//! ECDSA signatures for P-256 and P-384 keys).

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use spki::der::{Decode, DecodePem};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned};

use crate::Status;

/// A foreign function as Envoy registers it: encoded arguments in, encoded result out.
pub type EnvoyFunction = fn(&[u8]) -> Result<Vec<u8>, Status>;

/// The names and functions every plugin gets by default.
pub fn defaults() -> Vec<(&'static str, EnvoyFunction)> {
    vec![("verify_signature", verify_signature)]
}

#[derive(Default)]
struct Arguments {
    hash_function: String,
    public_key: Vec<u8>,
    public_key_pem: String,
    signature: Vec<u8>,
    text: Vec<u8>,
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Parses `VerifySignatureArguments`, skipping unknown fields as protobuf does.
fn parse(mut bytes: &[u8]) -> Option<Arguments> {
    let mut arguments = Arguments::default();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        match key & 7 {
            0 => {
                varint(&mut bytes)?;
            }
            1 => bytes = bytes.get(8..)?,
            5 => bytes = bytes.get(4..)?,
            2 => {
                let length = usize::try_from(varint(&mut bytes)?).ok()?;
                let (value, rest) = (bytes.get(..length)?, bytes.get(length..)?);
                bytes = rest;
                match key >> 3 {
                    1 => arguments.hash_function = String::from_utf8(value.to_vec()).ok()?,
                    2 => arguments.public_key = value.to_vec(),
                    3 => arguments.signature = value.to_vec(),
                    4 => arguments.text = value.to_vec(),
                    5 => arguments.public_key_pem = String::from_utf8(value.to_vec()).ok()?,
                    _ => {}
                }
            }
            _ => return None,
        }
    }
    Some(arguments)
}

/// `VerifySignatureResult { result, error }`, default values omitted as proto3 does.
fn answer(result: bool, error: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if result {
        out.extend_from_slice(&[0x08, 0x01]);
    }
    if !error.is_empty() {
        out.push(0x12);
        let mut length = error.len();
        while length >= 0x80 {
            out.push((length as u8) | 0x80);
            length >>= 7;
        }
        out.push(length as u8);
        out.extend_from_slice(error.as_bytes());
    }
    out
}

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

fn algorithm(key: &SubjectPublicKeyInfoOwned, hash: &str) -> Result<&'static dyn VerificationAlgorithm, String> {
    let curve = key.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let found: Option<&'static dyn VerificationAlgorithm> = match (key.algorithm.oid, curve, hash) {
        (RSA_ENCRYPTION, _, "sha256") => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
        (RSA_ENCRYPTION, _, "sha384") => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
        (RSA_ENCRYPTION, _, "sha512") => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
        (EC_PUBLIC_KEY, Some(P256), "sha256") => Some(&signature::ECDSA_P256_SHA256_ASN1),
        (EC_PUBLIC_KEY, Some(P256), "sha384") => Some(&signature::ECDSA_P256_SHA384_ASN1),
        (EC_PUBLIC_KEY, Some(P384), "sha256") => Some(&signature::ECDSA_P384_SHA256_ASN1),
        (EC_PUBLIC_KEY, Some(P384), "sha384") => Some(&signature::ECDSA_P384_SHA384_ASN1),
        _ => None,
    };
    found.ok_or_else(|| format!("{hash} is not supported."))
}

/// Envoy's `verify_signature`.
pub fn verify_signature(encoded: &[u8]) -> Result<Vec<u8>, Status> {
    let arguments = parse(encoded).ok_or(Status::BadArgument)?;
    let key = match (arguments.public_key.is_empty(), arguments.public_key_pem.is_empty()) {
        (false, true) => SubjectPublicKeyInfoOwned::from_der(&arguments.public_key),
        (true, false) => SubjectPublicKeyInfoOwned::from_pem(arguments.public_key_pem.as_bytes()),
        _ => return Err(Status::BadArgument),
    };
    let Ok(key) = key else { return Ok(answer(false, "Failed to import public key.")) };
    let algorithm = match algorithm(&key, &arguments.hash_function) {
        Ok(algorithm) => algorithm,
        Err(error) => return Ok(answer(false, &error)),
    };
    let verified = UnparsedPublicKey::new(algorithm, key.subject_public_key.raw_bytes()).verify(&arguments.text, &arguments.signature);
    Ok(match verified {
        Ok(()) => answer(true, ""),
        Err(_) => answer(false, "Failed to verify digest. Error code: 0"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_missing_keys_are_bad_arguments() {
        assert_eq!(verify_signature(&[0x0a, 0x09, b's']).unwrap_err(), Status::BadArgument, "truncated field");
        assert_eq!(verify_signature(&[0x0a, 0x06, b's', b'h', b'a', b'2', b'5', b'6']).unwrap_err(), Status::BadArgument, "no key");
    }

    #[test]
    fn an_unreadable_key_is_a_false_result_with_a_reason() {
        let encoded = [&[0x0a, 0x06][..], b"sha256", &[0x12, 0x02, 0x30, 0x00]].concat();
        assert_eq!(verify_signature(&encoded).unwrap(), answer(false, "Failed to import public key."));
    }
}
