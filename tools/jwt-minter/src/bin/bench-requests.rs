//! Writes one harness case file per benchmark scenario into OUT_DIR, with tokens signed by
//! the example keys (used by scripts/bench.sh):
//!
//!     cargo run -p jwt-minter --bin bench-requests -- envoy-examples/policy/keys OUT_DIR
//!
//! Scenarios: bypass (an ignored path), rs256, es256, eddsa, hs256 (an allowed request
//! carrying a token of that algorithm); forged-es256 (a partner token whose signature is
//! another token's: refused after a signature check) and expired-es256 (the same forgery,
//! expired: refused on its claims); remote-rs256 (an allowed request with a token of the
//! `idp` provider, whose keys come from its JWKS endpoint: a stub answers the fetch, made
//! on the tick before timing starts); introspected (an opaque token, introspected once by a
//! stub, then cached).

use std::path::PathBuf;
use std::process::ExitCode;

use jwt_minter::{NOW, Signer, mint};
use serde_json::{Value, json};

fn case_file(path: &str, token: Option<&str>, address: &str) -> Value {
    answered(path, token, address, 200)
}

fn answered(path: &str, token: Option<&str>, address: &str, status: u16) -> Value {
    let headers: Vec<Value> = token.map(|t| vec![json!(["authorization", format!("Bearer {t}")])]).unwrap_or_default();
    json!({"now": NOW, "cases": [{"name": path, "request": {"method": "GET", "path": path, "headers": headers,
        "properties": {"source.address": address}}, "expect": {"status": status}}]})
}

/// `token` with the signature of `other`: well formed, claims valid, signature wrong.
fn forged(token: &str, other: &str) -> String {
    let head = token.rsplit_once('.').map_or(token, |(head, _)| head);
    let signature = other.rsplit_once('.').map_or("", |(_, signature)| signature);
    format!("{head}.{signature}")
}

fn run(keys: &std::path::Path, out: &std::path::Path) -> Result<(), String> {
    let claims = |extra: Value| {
        let mut claims = json!({"iat": NOW - 60, "exp": NOW + 3600});
        if let (Some(target), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            target.extend(extra);
        }
        claims
    };
    let partner = json!({"iss": "https://partner.example", "aud": "api.example", "username": "partner-billing", "scope": "billing:read"});
    let rs256 = mint(&Signer::from_file("RS256", &keys.join("platform.EXAMPLE-ONLY.key"))?, "RS256", Some("platform"), &claims(json!({"username": "ana", "roles": "user"})));
    let es256 = mint(&Signer::from_file("ES256", &keys.join("partner-es256.EXAMPLE-ONLY.key"))?, "ES256", Some("partner-es256"), &claims(partner.clone()));
    let es256_key = Signer::from_file("ES256", &keys.join("partner-es256.EXAMPLE-ONLY.key"))?;
    let another = mint(&es256_key, "ES256", Some("partner-es256"), &claims(json!({"iss": "https://partner.example", "aud": "api.example", "username": "partner-billing", "scope": "billing:write"})));
    let expired = mint(&es256_key, "ES256", Some("partner-es256"), &json!({"iss": "https://partner.example", "aud": "api.example", "username": "partner-billing", "iat": NOW - 7200, "exp": NOW - 3600}));
    let eddsa = mint(&Signer::from_file("EdDSA", &keys.join("partner-eddsa.EXAMPLE-ONLY.key"))?, "EdDSA", Some("partner-eddsa"), &claims(partner));
    let hs256 = mint(&Signer::from_file("HS256", &keys.join("internal-hs256.secret"))?, "HS256", Some("internal-1"), &claims(json!({"iss": "internal", "username": "scraper", "roles": ["service"]})));
    let idp_key = Signer::from_file("RS256", &keys.join("idp-rsa.EXAMPLE-ONLY.key"))?;
    let idp_claims = json!({"iss": "https://idp.example/realms/acme", "aud": "api.example", "sub": "lena", "username": "lena", "roles": "user"});
    let remote = mint(&idp_key, "RS256", Some("idp-rsa-1"), &claims(idp_claims));
    let jwks = jwt_minter::idp_jwks(&[(&idp_key, "idp-rsa-1", "RS256")], true);
    let answer = json!([{"headers": [["cache-control", "max-age=300"]], "body_json": jwks}]);
    let remote_file = json!({"now": NOW, "shm_kv": ["policy_filter"],
        "upstreams": {"idp.example:443 /realms/acme/protocol/openid-connect/certs": answer, "idp.example:443 /realms/acme/revocations": [{"body_json": {}}]},
        "cases": [{"name": "/users/me", "advance_seconds": 1,
                   "request": {"method": "GET", "path": "/users/me", "headers": [["authorization", format!("Bearer {remote}")]], "properties": {"source.address": "10.1.2.3:5000"}},
                   "expect": {"status": 200}}]});
    // An opaque token of a provider that introspects it (bench.sh makes the bundle): the
    // stub answers the first request's callout, the rest come from the token cache.
    let active = json!({"active": true, "iss": "https://hydra.example/", "aud": "api.example", "username": "lena", "roles": "user", "scope": "profile", "exp": NOW + 3600});
    let introspected = json!({"now": NOW,
        "upstreams": {"hydra.example:443 /oauth2/introspect": [{"headers": [["content-type", "application/json"]], "body_json": active}]},
        "cases": [{"name": "/users/me", "request": {"method": "GET", "path": "/users/me", "headers": [["authorization", "Bearer ory_at_opaque-bench-1"]],
                   "properties": {"source.address": "10.1.2.3:5000"}}, "expect": {"status": 200}}]});
    let files = [
        ("introspected", introspected),
        ("remote-rs256", remote_file),
        ("bypass", case_file("/health", None, "10.1.2.3:5000")),
        ("rs256", case_file("/users/me", Some(&rs256), "10.1.2.3:5000")),
        ("es256", case_file("/billing/inv-1", Some(&es256), "10.1.2.3:5000")),
        ("eddsa", case_file("/billing/inv-1", Some(&eddsa), "10.1.2.3:5000")),
        ("hs256", case_file("/internal/metrics", Some(&hs256), "10.1.2.3:5000")),
        ("forged-es256", answered("/billing/inv-1", Some(&forged(&es256, &another)), "10.1.2.3:5000", 401)),
        ("expired-es256", answered("/billing/inv-1", Some(&forged(&expired, &another)), "10.1.2.3:5000", 401)),
    ];
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    for (name, file) in files {
        let path = out.join(format!("{name}.json"));
        std::fs::write(&path, file.to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(keys), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: bench-requests KEYS_DIR OUT_DIR");
        return ExitCode::from(2);
    };
    match run(&PathBuf::from(keys), &PathBuf::from(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
