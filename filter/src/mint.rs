//! The internal token the filter signs for an allowed caller (`settings.mint`): EdDSA or
//! ES256 over the decided identity, so the upstream verifies one issuer whatever credential
//! the caller came with. Signing costs one signature, paid once per identity and
//! `ttl_seconds` ([`crate::cache::TokenCache::minted`] keeps the token until ten seconds
//! before it expires).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use decision_table::bundle::{Mint, MintAlgorithm};
use ed25519_dalek::Signer as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::jwt::Verified;

/// The signing key, of the token's algorithm.
enum SigningKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

pub struct Minter {
    key: SigningKey,
    /// `base64url({"alg":...,"typ":"JWT","kid":...})`, encoded once.
    header: String,
    issuer: String,
    audiences: Vec<String>,
    pub ttl_seconds: u64,
    /// The request header that carries it, and whether as `Bearer TOKEN`.
    pub header_name: String,
    pub bearer: bool,
}

impl Minter {
    pub fn new(mint: &Mint) -> Result<Minter, String> {
        let secret: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&mint.private_key)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or("mint.private_key: expected 32 bytes (the Ed25519 seed or the P-256 scalar), base64url")?;
        let key = match mint.alg {
            MintAlgorithm::EdDSA => SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&secret)),
            MintAlgorithm::ES256 => SigningKey::P256(
                p256::ecdsa::SigningKey::from_bytes(&secret.into()).map_err(|_| "mint.private_key: not a P-256 private scalar (zero, or not below the order)")?,
            ),
        };
        let header = json!({"alg": mint.alg.name(), "typ": "JWT", "kid": mint.kid}).to_string();
        Ok(Minter {
            key,
            header: URL_SAFE_NO_PAD.encode(header),
            issuer: mint.issuer.clone(),
            audiences: mint.audiences.clone(),
            ttl_seconds: mint.ttl_seconds,
            bearer: mint.header == "authorization",
            header_name: mint.header.clone(),
        })
    }

    /// Who the token speaks for: the cache key of a minted token.
    pub fn identity(caller: &Verified) -> String {
        let attributes = &caller.attributes;
        let tenant = decision_table::request::tenant_of(attributes).unwrap_or_default();
        format!("{}\0{}\0{tenant}\0{}\0{}", caller.provider, caller.subject, attributes.get("scopes").join(" "), attributes.get("roles").join(" "))
    }

    /// A token for `caller` (whose [`Minter::identity`] is `identity`), issued at `now` (host
    /// seconds); and its expiry.
    pub fn mint(&self, caller: &Verified, identity: &str, now: u64) -> (String, u64) {
        let expires = now.saturating_add(self.ttl_seconds);
        let attributes = &caller.attributes;
        let jti: String = Sha256::digest(format!("{identity}\0{now}")).iter().take(16).map(|b| format!("{b:02x}")).collect();
        let audience = match self.audiences.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        let mut claims = json!({
            "iss": self.issuer, "aud": audience, "sub": caller.subject, "iat": now, "exp": expires, "jti": jti,
            "provider": caller.provider, "scopes": attributes.get("scopes"), "roles": attributes.get("roles"),
        });
        if let (Some(tenant), Some(object)) = (decision_table::request::tenant_of(attributes), claims.as_object_mut()) {
            object.insert("tenant".into(), json!(tenant));
        }
        let message = format!("{}.{}", self.header, URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = match &self.key {
            SigningKey::Ed25519(key) => key.sign(message.as_bytes()).to_bytes().to_vec(),
            // JWS (RFC 7518 §3.4): R and S, 32 bytes each, not DER.
            SigningKey::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message.as_bytes());
                signature.to_bytes().to_vec()
            }
        };
        (format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)), expires)
    }
}
