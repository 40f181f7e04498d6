//! Signing test tokens: any header and payload JSON (so tests can build attacks such as
//! duplicate keys, `crit`, `alg: none`), signed with a private key for one algorithm.
//! Test tooling only: it never runs in the filter.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key, Rsa};
use jwt_compact::{Algorithm, AlgorithmSignature};
use rsa::pkcs8::DecodePrivateKey;

/// A private key able to sign for exactly one algorithm.
pub enum Signer {
    Rsa(Rsa, Box<rsa::RsaPrivateKey>),
    Es256(Box<p256::ecdsa::SigningKey>),
    Es384(Box<p384::ecdsa::SigningKey>),
    Es512(Box<p521::ecdsa::SigningKey>),
    EdDsa(Box<ed25519_dalek::SigningKey>),
    Hs256(Hs256Key),
    Hs384(Hs384Key),
    Hs512(Hs512Key),
}

impl Signer {
    /// Reads a PKCS#8 PEM private key (or, for `HS*`, a raw secret file) for `alg`.
    pub fn from_file(alg: &str, path: &Path) -> Result<Signer, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Signer::from_bytes(alg, &bytes)
    }

    pub fn from_bytes(alg: &str, bytes: &[u8]) -> Result<Signer, String> {
        let pem = || String::from_utf8(bytes.to_vec()).map_err(|_| "not PEM text".to_string());
        Ok(match alg {
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
                let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem()?).map_err(|e| e.to_string())?;
                Signer::Rsa(Rsa::with_name(alg), Box::new(key))
            }
            "ES256" => Signer::Es256(Box::new(p256::ecdsa::SigningKey::from_pkcs8_pem(&pem()?).map_err(|e| e.to_string())?)),
            "ES384" => Signer::Es384(Box::new(p384::ecdsa::SigningKey::from_pkcs8_pem(&pem()?).map_err(|e| e.to_string())?)),
            "ES512" => {
                use p521::pkcs8::DecodePrivateKey as _;
                let secret = p521::SecretKey::from_pkcs8_pem(&pem()?).map_err(|e| e.to_string())?;
                Signer::Es512(Box::new(p521::ecdsa::SigningKey::from_bytes(&secret.to_bytes()).map_err(|e| e.to_string())?))
            }
            "EdDSA" => Signer::EdDsa(Box::new(ed25519_dalek::SigningKey::from_pkcs8_pem(&pem()?).map_err(|e| e.to_string())?)),
            "HS256" => Signer::Hs256(Hs256Key::new(bytes)),
            "HS384" => Signer::Hs384(Hs384Key::new(bytes)),
            "HS512" => Signer::Hs512(Hs512Key::new(bytes)),
            other => return Err(format!("cannot sign {other}")),
        })
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Signer::Rsa(alg, key) => alg.sign(key, message).as_bytes().into_owned(),
            Signer::Es256(key) => Es256.sign(key, message).as_bytes().into_owned(),
            Signer::EdDsa(key) => Ed25519.sign(key, message).as_bytes().into_owned(),
            Signer::Hs256(key) => Hs256.sign(key, message).as_bytes().into_owned(),
            Signer::Hs384(key) => Hs384.sign(key, message).as_bytes().into_owned(),
            Signer::Hs512(key) => Hs512.sign(key, message).as_bytes().into_owned(),
            Signer::Es384(key) => {
                use p384::ecdsa::signature::Signer as _;
                let signature: p384::ecdsa::Signature = key.sign(message);
                signature.to_bytes().to_vec()
            }
            Signer::Es512(key) => {
                // p521 0.13 signs with a random nonce (the other curves use RFC 6979's): an
                // ES512 token differs from one minting to the next, and verifies the same.
                use p521::ecdsa::signature::Signer as _;
                let signature: p521::ecdsa::Signature = key.as_ref().sign(message);
                signature.to_bytes().to_vec()
            }
        }
    }
}

impl Signer {
    /// The public half as a JWK (`kty`, `n`/`e` or `crv`/`x`/`y`), without `kid`, `alg` or
    /// `use`; `None` for an HMAC secret.
    pub fn public_jwk(&self) -> Option<serde_json::Value> {
        use serde_json::json;
        let point = |x: &[u8], y: &[u8], crv: &str| json!({"kty": "EC", "crv": crv, "x": encode(x), "y": encode(y)});
        Some(match self {
            Signer::Rsa(_, key) => {
                use rsa::traits::PublicKeyParts;
                json!({"kty": "RSA", "n": encode(&key.n().to_bytes_be()), "e": encode(&key.e().to_bytes_be())})
            }
            Signer::Es256(key) => {
                let encoded = key.verifying_key().to_encoded_point(false);
                point(encoded.x()?, encoded.y()?, "P-256")
            }
            Signer::Es384(key) => {
                let encoded = key.verifying_key().to_encoded_point(false);
                point(encoded.x()?, encoded.y()?, "P-384")
            }
            Signer::Es512(key) => {
                let encoded = p521::ecdsa::VerifyingKey::from(key.as_ref()).to_encoded_point(false);
                point(encoded.x()?, encoded.y()?, "P-521")
            }
            Signer::EdDsa(key) => json!({"kty": "OKP", "crv": "Ed25519", "x": encode(key.verifying_key().as_bytes())}),
            Signer::Hs256(_) | Signer::Hs384(_) | Signer::Hs512(_) => return None,
        })
    }
}

/// A JWKS document shaped like an identity provider's (Keycloak's, Auth0's): each signing key
/// with `kid`, `use: sig`, `alg` when `with_alg`, and an `x5c`/`x5t` the filter ignores;
/// beside them what a real document also holds and the filter must skip: an encryption key
/// (`use: enc`, RSA-OAEP), a key type it does not know, and a secp256k1 key.
pub fn idp_jwks(keys: &[(&Signer, &str, &str)], with_alg: bool) -> serde_json::Value {
    use serde_json::json;
    let mut entries = Vec::new();
    for (signer, kid, alg) in keys {
        let Some(mut jwk) = signer.public_jwk() else { continue };
        if let Some(object) = jwk.as_object_mut() {
            object.insert("kid".into(), json!(kid));
            object.insert("use".into(), json!("sig"));
            if with_alg {
                object.insert("alg".into(), json!(alg));
            }
            // Not a real certificate: the filter never reads x5c (the key is its members).
            object.insert("x5c".into(), json!([encode(format!("certificate of {kid}").as_bytes())]));
            object.insert("x5t".into(), json!(encode(kid.as_bytes())));
        }
        entries.push(jwk);
    }
    if let Some(Some(mut enc)) = keys.first().map(|(signer, _, _)| signer.public_jwk()) {
        if let Some(object) = enc.as_object_mut() {
            object.insert("kid".into(), json!("enc-1"));
            object.insert("use".into(), json!("enc"));
            object.insert("alg".into(), json!("RSA-OAEP"));
        }
        entries.push(enc);
    }
    entries.push(json!({"kid": "pq-1", "kty": "AKP", "alg": "ML-DSA-44", "pub": encode(b"post-quantum")}));
    entries.push(json!({"kid": "k1-1", "kty": "EC", "crv": "secp256k1", "alg": "ES256K", "x": encode(&[1; 32]), "y": encode(&[2; 32])}));
    json!({"keys": entries})
}

pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.signature`, from raw JSON texts (kept byte for byte).
pub fn mint_raw(signer: &Signer, header_json: &str, payload_json: &str) -> String {
    let message = format!("{}.{}", encode(header_json.as_bytes()), encode(payload_json.as_bytes()));
    let signature = signer.sign(message.as_bytes());
    format!("{message}.{}", encode(&signature))
}

/// A token with header `{"alg": alg, "kid": kid}` (kid optional) and the given claims.
pub fn mint(signer: &Signer, alg: &str, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let mut header = serde_json::Map::new();
    header.insert("alg".into(), alg.into());
    header.insert("typ".into(), "JWT".into());
    if let Some(kid) = kid {
        header.insert("kid".into(), kid.into());
    }
    let header = serde_json::Value::Object(header);
    mint_raw(signer, &header.to_string(), &claims.to_string())
}

mod example;
mod exchange;
pub use example::{NOW, example_cases};
pub use exchange::{compass_cases, onap_cases};

/// The walkthrough of the example set whose keys are in `keys` (`envoy-examples/NAME/keys`).
pub fn cases_for(keys: &std::path::Path) -> Result<serde_json::Value, String> {
    let example = keys.canonicalize().ok().and_then(|k| Some(k.parent()?.file_name()?.to_string_lossy().into_owned())).unwrap_or_default();
    match example.as_str() {
        "compass" => compass_cases(keys),
        "onap" => onap_cases(keys),
        _ => example_cases(keys),
    }
}
