//! The filter's signature checks natively, beside `ring` (the floor) in the same run.
//!
//!     cargo bench -p benchmarks --bench signatures

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use policy_filter::jwt::key_from_jwk;

fn keys_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../envoy-examples/policy/keys")
}

fn parts(token: &str) -> (Vec<u8>, Vec<u8>) {
    let (message, signature) = token.rsplit_once('.').unwrap_or_default();
    (message.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(signature).unwrap_or_default())
}

fn signatures(c: &mut Criterion) {
    let file = policy_compiler::source::read(&keys_dir().join("../config.json")).unwrap_or_else(|_| std::process::abort());
    let providers = policy_compiler::compile::providers(&file, false).unwrap_or_else(|_| std::process::abort());
    let jwk = |kid: &str| providers.iter().flat_map(|p| p.keys.iter()).find(|k| k["kid"] == kid).cloned().unwrap_or_default();
    let claims = serde_json::json!({"sub": "bench", "exp": 1_900_000_000u64});
    let cases = [("RS256", "platform", "platform.EXAMPLE-ONLY.key"), ("ES256", "partner-es256", "partner-es256.EXAMPLE-ONLY.key"), ("EdDSA", "partner-eddsa", "partner-eddsa.EXAMPLE-ONLY.key")];
    for (alg, kid, private) in cases {
        let signer = jwt_minter::Signer::from_file(alg, &keys_dir().join(private)).unwrap_or_else(|_| std::process::abort());
        let token = jwt_minter::mint(&signer, alg, Some(kid), &claims);
        let (message, signature) = parts(&token);
        let key = key_from_jwk(&jwk(kid)).unwrap_or_else(|_| std::process::abort());
        assert!(key.verifies(&message, &signature, None));
        c.bench_function(&format!("filter {alg}"), |b| b.iter(|| black_box(key.verifies(&message, &signature, None))));

        let public = public_key_for_ring(alg, &jwk(kid));
        let algorithm: &dyn ring::signature::VerificationAlgorithm = match alg {
            "RS256" => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            "ES256" => &ring::signature::ECDSA_P256_SHA256_FIXED,
            _ => &ring::signature::ED25519,
        };
        let ring_key = ring::signature::UnparsedPublicKey::new(algorithm, public);
        assert!(ring_key.verify(&message, &signature).is_ok());
        c.bench_function(&format!("ring {alg}"), |b| b.iter(|| black_box(ring_key.verify(&message, &signature).is_ok())));
    }
}

/// The key in the form ring reads: PKCS#1 RSAPublicKey DER, an uncompressed EC point, or the
/// raw Ed25519 key.
fn public_key_for_ring(alg: &str, jwk: &serde_json::Value) -> Vec<u8> {
    let field = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap_or_default()).unwrap_or_default();
    match alg {
        "RS256" => rsa_public_key_der(&field("n"), &field("e")),
        "ES256" => [vec![4u8], field("x"), field("y")].concat(),
        _ => field("x"),
    }
}

fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let mut value = bytes.to_vec();
    if value.first().is_some_and(|b| b & 0x80 != 0) {
        value.insert(0, 0);
    }
    [vec![0x02], der_length(value.len()), value].concat()
}

fn der_length(len: usize) -> Vec<u8> {
    match len {
        0..=127 => vec![len as u8],
        128..=255 => vec![0x81, len as u8],
        _ => vec![0x82, (len >> 8) as u8, len as u8],
    }
}

fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let body = [der_integer(n), der_integer(e)].concat();
    [vec![0x30], der_length(body.len()), body].concat()
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = signatures
}
criterion_main!(benches);
