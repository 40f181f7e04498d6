//! A JWKS document fetched from an identity provider, turned into keys. Each key is bound to
//! one algorithm, as the bundle's keys are: the JWK's `alg` when it has one, else its curve
//! (EC, OKP) or the provider's configured RSA algorithms (`RS256` when none). What could not
//! be trusted is skipped and said why (never used): encryption keys (`use: enc`, `key_ops`
//! without `verify`), symmetric keys (a secret served over HTTP is no secret), keys with
//! private members, unknown key types and curves, algorithms the provider does not accept,
//! RSA moduli outside 2048..=8192 bits, and duplicates. `x5c`, `x5t` and `x5u` are ignored:
//! the key is its public members.

use decision_table::bundle::RemoteJwks;
use serde_json::{Map, Value};

use crate::jwt::{Key, key_from_jwk};

/// The keys of a JWKS document, and one line per key skipped.
pub struct FetchedKeys {
    pub keys: Vec<Key>,
    pub skipped: Vec<String>,
}

/// Members that only a private key has (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Parses a JWKS document. An error (the last good set stays) when it is not a JWKS; one
/// with no usable key gives none.
pub fn parse(body: &[u8], config: &RemoteJwks) -> Result<FetchedKeys, String> {
    let document = decision_table::strict_json::object(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let Some(Value::Array(entries)) = document.get("keys") else {
        return Err("not a JWKS document: no `keys` list".into());
    };
    let mut fetched = FetchedKeys { keys: Vec::new(), skipped: Vec::new() };
    // Each entry may cost a key's setup (RSA's Montgomery constants, an EC point check): a
    // document is read only up to max_keys usable keys, and a bounded number of entries.
    let examined = config.max_keys.saturating_mul(2).saturating_add(16);
    if entries.len() > examined {
        fetched.skipped.push(format!("{} entries beyond the first {examined} (max_keys {})", entries.len() - examined, config.max_keys));
    }
    for (at, entry) in entries.iter().enumerate().take(examined) {
        if fetched.keys.len() >= config.max_keys {
            fetched.skipped.push(format!("keys[{at}..]: beyond max_keys ({})", config.max_keys));
            break;
        }
        let Some(jwk) = entry.as_object() else {
            fetched.skipped.push(format!("keys[{at}]: not an object"));
            continue;
        };
        let kid = jwk.get("kid").and_then(Value::as_str).unwrap_or_default();
        let name = if kid.is_empty() { format!("keys[{at}]") } else { format!("key {kid:?}") };
        match bound_keys(jwk, kid, config) {
            Ok(keys) => {
                for key in keys {
                    if fetched.keys.len() >= config.max_keys {
                        fetched.skipped.push(format!("{name}: beyond max_keys ({})", config.max_keys));
                        break;
                    } else if fetched.keys.iter().any(|k| k.kid == key.kid && k.alg == key.alg) {
                        fetched.skipped.push(format!("{name}: a second key with this kid and alg"));
                    } else {
                        fetched.keys.push(key);
                    }
                }
            }
            Err(why) => fetched.skipped.push(format!("{name}: {why}")),
        }
    }
    // A JWKS with no usable key is still the provider's word: every fetched key is withdrawn
    // (the caller logs it). Only a document that is not a JWKS keeps the last good set.
    Ok(fetched)
}

/// The keys one JWK stands for: one per algorithm it is bound to.
fn bound_keys(jwk: &Map<String, Value>, kid: &str, config: &RemoteJwks) -> Result<Vec<Key>, String> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    if let Some(usage) = jwk.get("use")
        && usage.as_str() != Some("sig")
    {
        return Err(format!("`use` is {usage}, not \"sig\""));
    }
    if let Some(operations) = jwk.get("key_ops")
        && !operations.as_array().is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")))
    {
        return Err("`key_ops` does not allow verify".into());
    }
    if let Some(private) = PRIVATE_MEMBERS.iter().find(|member| jwk.contains_key(**member)) {
        return Err(format!("has the private member `{private}`: never trusted"));
    }
    let kty = text("kty").unwrap_or_default();
    let by_curve = match (kty, text("crv")) {
        ("EC", Some("P-256")) => Some("ES256"),
        ("EC", Some("P-384")) => Some("ES384"),
        ("EC", Some("P-521")) => Some("ES512"),
        ("OKP", Some("Ed25519")) => Some("EdDSA"),
        ("EC" | "OKP", crv) => return Err(format!("the curve {} is not supported", crv.unwrap_or("(none)"))),
        ("RSA", _) => None,
        ("oct", _) => return Err("a symmetric key is never taken from a JWKS endpoint".into()),
        (other, _) => return Err(format!("the key type {other:?} is not supported")),
    };
    let accepted = |alg: &str| config.algorithms.is_empty() || config.algorithms.iter().any(|a| a == alg);
    let algorithms: Vec<String> = match (text("alg"), by_curve) {
        (Some(alg), Some(curve_alg)) if alg != curve_alg => return Err(format!("`alg` {alg} does not match its curve")),
        (Some(alg), _) => vec![alg.to_string()],
        (None, Some(curve_alg)) => vec![curve_alg.to_string()],
        (None, None) => {
            let rsa: Vec<String> = config.algorithms.iter().filter(|a| a.starts_with("RS") || a.starts_with("PS")).cloned().collect();
            if rsa.is_empty() { vec!["RS256".into()] } else { rsa }
        }
    };
    let mut keys = Vec::new();
    for alg in algorithms {
        if !accepted(&alg) {
            return Err(format!("`alg` {alg} is not among the provider's algorithms"));
        }
        let mut bound = jwk.clone();
        bound.insert("kid".into(), Value::String(kid.to_string()));
        bound.insert("alg".into(), Value::String(alg));
        keys.push(key_from_jwk(&Value::Object(bound))?);
    }
    Ok(keys)
}
