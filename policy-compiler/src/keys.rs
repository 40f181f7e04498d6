//! Loading verification keys into JSON Web Keys for the bundle, each bound to exactly one
//! algorithm: JWKS files, PEM public keys (RSA of at least 2048 bits, EC P-256, P-384 and P-521,
//! Ed25519) and HMAC secrets. Private keys, weak keys and keys whose type does not fit their
//! algorithm are refused here, so the filter never sees them.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};

use crate::source::KeySource;

pub const RSA_ALGORITHMS: [&str; 6] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
pub use decision_table::bundle::{MAX_RSA_BITS, MIN_RSA_BITS};

/// The algorithms a key type and curve may be bound to.
fn allowed(kty: &str, crv: Option<&str>) -> &'static [&'static str] {
    match (kty, crv) {
        ("RSA", _) => &RSA_ALGORITHMS,
        ("EC", Some("P-256")) => &["ES256"],
        ("EC", Some("P-384")) => &["ES384"],
        ("EC", Some("P-521")) => &["ES512"],
        ("OKP", Some("Ed25519")) => &["EdDSA"],
        ("oct", _) => &["HS256", "HS384", "HS512"],
        _ => &[],
    }
}

/// Minimum HMAC secret length: the hash size (RFC 7518 §3.2).
fn min_hmac_bytes(alg: &str) -> usize {
    match alg {
        "HS384" => 48,
        "HS512" => 64,
        _ => 32,
    }
}

/// Loads one key entry of a provider; `dir` resolves relative paths.
pub fn load(entry: &KeySource, dir: &Path) -> Result<Vec<Value>, String> {
    let chosen = [entry.jwks.is_some(), entry.pem.is_some(), entry.hmac_secret_file.is_some()];
    if chosen.iter().filter(|c| **c).count() != 1 {
        return Err("a key entry needs exactly one of `jwks`, `pem` or `hmac_secret_file`".into());
    }
    let read = |path: &Path| std::fs::read(dir.join(path)).map_err(|e| format!("cannot read {}: {e}", dir.join(path).display()));
    let keys = if let Some(path) = &entry.jwks {
        let document: Value = serde_json::from_slice(&read(path)?).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        let list = match document.get("keys") {
            Some(Value::Array(keys)) => keys.clone(),
            Some(_) => return Err(format!("{}: `keys` must be a list", path.display())),
            None => vec![document],
        };
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("key");
        list.into_iter()
            .enumerate()
            .map(|(index, key)| finish(key, entry, &format!("{stem}-{index}"), &format!("{} key {index}", path.display())))
            .collect::<Result<Vec<_>, _>>()?
    } else if let Some(path) = &entry.pem {
        let text = String::from_utf8(read(path)?).map_err(|_| format!("{}: not a PEM text file", path.display()))?;
        let key = pem_to_jwk(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("key");
        vec![finish(key, entry, stem, &path.display().to_string())?]
    } else if let Some(path) = &entry.hmac_secret_file {
        let mut secret = read(path)?;
        if secret.last() == Some(&b'\n') {
            secret.pop();
        }
        let key = json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(&secret)});
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("hmac");
        vec![finish(key, entry, stem, &path.display().to_string())?]
    } else {
        Vec::new()
    };
    Ok(keys)
}

/// Binds the key to its algorithm and id, and checks that they fit the key.
fn finish(mut key: Value, entry: &KeySource, default_kid: &str, what: &str) -> Result<Value, String> {
    let object = key.as_object_mut().ok_or(format!("{what}: a JWK must be a JSON object"))?;
    if ["d", "p", "q", "dp", "dq", "qi"].iter().any(|k| object.contains_key(*k)) && object.get("kty") != Some(&json!("oct")) {
        return Err(format!("{what}: this is a private key; give the public key only"));
    }
    let kty = object.get("kty").and_then(Value::as_str).unwrap_or_default().to_string();
    let crv = object.get("crv").and_then(Value::as_str).map(str::to_string);
    let allowed = allowed(&kty, crv.as_deref());
    if allowed.is_empty() {
        return Err(format!("{what}: key type {kty:?} {} is not supported", crv.unwrap_or_default()));
    }
    let alg = match (entry.alg.as_deref(), object.get("alg").and_then(Value::as_str)) {
        (Some(wanted), Some(own)) if wanted != own => {
            return Err(format!("{what}: the key says alg {own:?} but the entry says {wanted:?}"));
        }
        (Some(alg), _) | (None, Some(alg)) => alg.to_string(),
        (None, None) if allowed.len() == 1 => allowed.first().map(|a| (*a).to_string()).unwrap_or_default(),
        (None, None) => {
            return Err(format!(
                "{what}: a {kty} key can verify several algorithms; bind it to one with `alg` ({})",
                allowed.join(", ")
            ));
        }
    };
    if !allowed.contains(&alg.as_str()) {
        return Err(format!("{what}: algorithm {alg} does not fit a {kty} key (it may verify {})", allowed.join(", ")));
    }
    check_strength(object, &kty, &alg, what)?;
    if let Some(usage) = object.get("use").and_then(Value::as_str).filter(|u| *u != "sig") {
        return Err(format!("{what}: the key is for {usage:?}, not signatures"));
    }
    object.insert("alg".into(), json!(alg));
    let kid = entry
        .kid
        .clone()
        .or_else(|| object.get("kid").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| default_kid.to_string());
    object.insert("kid".into(), json!(kid));
    Ok(key)
}

fn check_strength(object: &Map<String, Value>, kty: &str, alg: &str, what: &str) -> Result<(), String> {
    let decoded = |field: &str| {
        object
            .get(field)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).ok())
            .ok_or(format!("{what}: `{field}` is missing or not base64url"))
    };
    match kty {
        "RSA" => {
            let modulus = decoded("n")?;
            let bits = modulus.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!("{what}: an RSA key of about {bits} bits is too weak; at least {MIN_RSA_BITS} are required"));
            }
            // The module's RSA verifier takes 2048 to 8192 bits and an exponent below 2^32;
            // refusing here beats a bundle the proxy refuses at load.
            if bits > MAX_RSA_BITS {
                return Err(format!("{what}: an RSA key of about {bits} bits is larger than the filter accepts ({MAX_RSA_BITS})"));
            }
            let exponent = decoded("e")?;
            if exponent.iter().skip_while(|b| **b == 0).count() > 4 {
                return Err(format!("{what}: the RSA public exponent must be below 2^32"));
            }
        }
        "oct" => {
            let secret = decoded("k")?;
            let needed = min_hmac_bytes(alg);
            if secret.len() < needed {
                return Err(format!("{what}: an {alg} secret of {} bytes is too weak; at least {needed} are required", secret.len()));
            }
        }
        "EC" => {
            decoded("x")?;
            decoded("y")?;
        }
        _ => {
            decoded("x")?;
        }
    }
    Ok(())
}

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_ED25519: &str = "1.3.101.112";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// A PEM public key as a JWK (without `alg` and `kid`).
pub fn pem_to_jwk(text: &str) -> Result<Value, String> {
    if text.contains("PRIVATE KEY") {
        return Err("this is a private key; give the public key only".into());
    }
    if text.contains("-----BEGIN CERTIFICATE") {
        return Err("a certificate was given; extract its public key (`openssl x509 -pubkey -noout`)".into());
    }
    if text.contains("-----BEGIN RSA PUBLIC KEY") {
        let key = rsa::RsaPublicKey::from_pkcs1_pem(text).map_err(|e| format!("not a PKCS#1 RSA public key: {e}"))?;
        return Ok(rsa_jwk(&key));
    }
    let (label, der) = spki::Document::from_pem(text).map_err(|e| format!("not a PEM public key: {e}"))?;
    if label != "PUBLIC KEY" {
        return Err(format!("unexpected PEM label {label:?}; expected PUBLIC KEY"));
    }
    let info = spki::SubjectPublicKeyInfoRef::try_from(der.as_bytes()).map_err(|e| format!("not an SPKI public key: {e}"))?;
    let algorithm = info.algorithm.oid.to_string();
    let key_bytes = info.subject_public_key.raw_bytes();
    match algorithm.as_str() {
        OID_RSA => {
            let key = rsa::RsaPublicKey::from_public_key_der(der.as_bytes()).map_err(|e| format!("bad RSA key: {e}"))?;
            Ok(rsa_jwk(&key))
        }
        OID_EC_PUBLIC_KEY => {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|_| "an EC key without a named curve".to_string())?
                .to_string();
            let (crv, size) = match curve.as_str() {
                OID_P256 => ("P-256", 32),
                OID_P384 => ("P-384", 48),
                OID_P521 => ("P-521", 66),
                other => return Err(format!("EC curve {other} is not supported (P-256, P-384 and P-521 are)")),
            };
            match key_bytes.split_first() {
                Some((4, point)) if point.len() == 2 * size => {
                    let (x, y) = point.split_at(size);
                    Ok(json!({"kty": "EC", "crv": crv, "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}))
                }
                _ => Err("the EC point must be uncompressed (04 || X || Y)".into()),
            }
        }
        OID_ED25519 if key_bytes.len() == 32 => {
            Ok(json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(key_bytes)}))
        }
        other => Err(format!("key algorithm {other} is not supported (RSA, EC P-256/P-384/P-521 and Ed25519 are)")),
    }
}

fn rsa_jwk(key: &rsa::RsaPublicKey) -> Value {
    json!({
        "kty": "RSA",
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa(bytes: usize, exponent: &[u8]) -> Map<String, Value> {
        let modulus = vec![0xffu8; bytes];
        serde_json::json!({"n": URL_SAFE_NO_PAD.encode(modulus), "e": URL_SAFE_NO_PAD.encode(exponent)}).as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn rsa_keys_outside_what_the_filter_verifies_are_refused() {
        assert!(check_strength(&rsa(256, &[1, 0, 1]), "RSA", "RS256", "k").is_ok());
        assert!(check_strength(&rsa(1024, &[1, 0, 1]), "RSA", "RS256", "k").is_ok());
        assert!(check_strength(&rsa(128, &[1, 0, 1]), "RSA", "RS256", "k").unwrap_err().contains("too weak"));
        assert!(check_strength(&rsa(1025, &[1, 0, 1]), "RSA", "RS256", "k").unwrap_err().contains("larger than the filter accepts"));
        assert!(check_strength(&rsa(256, &[1, 0, 0, 0, 1]), "RSA", "RS256", "k").unwrap_err().contains("below 2^32"));
    }
}
