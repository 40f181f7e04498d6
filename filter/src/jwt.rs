//! JWT verification. The order matters: cap the size, parse strictly (no duplicate keys, no
//! `crit`), read `iss` only to choose the provider, refuse what the claims already refuse
//! (`exp` required, `nbf`, `iat`, maximum lifetime, audience, all on the host's clock with a
//! bounded skew) before paying for a signature, as Envoy's jwt_authn does
//! (`authenticator.cc`: time and audience before the key is looked up), choose the key by
//! `kid` (else at most `max_key_trials` keys of the token's algorithm), let the key's own
//! algorithm decide, verify the signature, and only then take the claims, as far as the
//! provider may assert them. `jku`, `x5u` and an embedded `jwk` are never followed or used.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use decision_table::bundle::{Provider, Settings};
use jwt_compact::alg::{Ed25519, Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key};
use jwt_compact::{Algorithm, AlgorithmSignature};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};

use decision_table::request::Trust;
use decision_table::strict_json;

use crate::host_verify;

/// Why a token was refused. The text goes into `error_description`; it names no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    TooLarge,
    Malformed(&'static str),
    CriticalHeader,
    UnsupportedAlgorithm,
    UnknownIssuer,
    UnknownKey,
    AlgorithmMismatch,
    BadSignature,
    NoExpiry,
    Expired,
    NotYetValid,
    IssuedInFuture,
    LifetimeTooLong,
    WrongAudience,
    /// No `kid`, and the provider has more keys of the algorithm than may be tried.
    KeyIdRequired,
    /// The subject is not one the verifying provider may assert (`may_assert.subject`).
    UntrustedSubject,
    /// The provider's keys are published remotely and none has been fetched yet.
    KeysUnavailable,
    /// The token's `jti`, or its subject, is on the provider's revocation list.
    Revoked,
    /// The provider's fetched revocation list is older than its `max_list_age_seconds` (or
    /// was never fetched).
    RevocationsStale,
    /// The authorization server says the token is not active (RFC 7662 `active: false`).
    Inactive,
    /// An endpoint that vouches for credentials (introspection, Basic, tenant mapping) gave
    /// no usable answer (a 503, not a 401).
    Unavailable,
    /// The Basic credentials' endpoint refused them.
    BadCredentials,
}

impl Rejection {
    /// A short name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::TooLarge => "too_large",
            Rejection::Malformed(_) => "malformed",
            Rejection::CriticalHeader => "crit",
            Rejection::UnsupportedAlgorithm => "algorithm",
            Rejection::UnknownIssuer => "issuer",
            Rejection::UnknownKey => "unknown_key",
            Rejection::AlgorithmMismatch => "algorithm_mismatch",
            Rejection::BadSignature => "signature",
            Rejection::NoExpiry => "no_exp",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::IssuedInFuture => "issued_in_future",
            Rejection::LifetimeTooLong => "lifetime",
            Rejection::WrongAudience => "audience",
            Rejection::KeyIdRequired => "kid_required",
            Rejection::UntrustedSubject => "untrusted_subject",
            Rejection::KeysUnavailable => "keys_unavailable",
            Rejection::Revoked => "revoked",
            Rejection::RevocationsStale => "revocations_stale",
            Rejection::Inactive => "inactive",
            Rejection::Unavailable => "unavailable",
            Rejection::BadCredentials => "bad_credentials",
        }
    }

    pub fn description(&self) -> &'static str {
        match self {
            Rejection::TooLarge => "the token is too large",
            Rejection::Malformed(what) => what,
            Rejection::CriticalHeader => "the token has critical header parameters",
            Rejection::UnsupportedAlgorithm => "the token's algorithm is not accepted",
            Rejection::UnknownIssuer => "the token's issuer is not trusted",
            Rejection::UnknownKey => "the token was not signed by a trusted key",
            Rejection::AlgorithmMismatch => "the token's algorithm does not match its key",
            Rejection::BadSignature => "the token's signature is invalid",
            Rejection::NoExpiry => "the token has no expiry",
            Rejection::Expired => "the token has expired",
            Rejection::NotYetValid => "the token is not valid yet",
            Rejection::IssuedInFuture => "the token was issued in the future",
            Rejection::LifetimeTooLong => "the token's lifetime is too long",
            Rejection::WrongAudience => "the token is not meant for this audience",
            Rejection::KeyIdRequired => "the token names no key (kid)",
            Rejection::UntrustedSubject => "the token's issuer may not assert its subject",
            Rejection::KeysUnavailable => "the token's issuer has published no keys yet",
            Rejection::Revoked => "the token has been revoked",
            Rejection::RevocationsStale => "the issuer's revocation list is out of date",
            Rejection::Inactive => "the token is not active",
            Rejection::Unavailable => "the credential's authorization server did not answer",
            Rejection::BadCredentials => "the user name or password is wrong",
        }
    }
}

/// A verifying key, bound to the one algorithm it may check.
pub enum KeyMaterial {
    /// RS256/384/512 and PS256/384/512, with Montgomery parameters computed at load.
    Rsa(Box<signatures::rsa::PublicKey>),
    /// ES256, ES384 and ES512, with the key's window table computed at load.
    Ecdsa(signatures::ecdsa::PublicKey),
    EdDsa(Box<<Ed25519 as Algorithm>::VerifyingKey>),
    Hs256(Hs256Key),
    Hs384(Hs384Key),
    Hs512(Hs512Key),
}

pub struct Key {
    pub kid: String,
    pub alg: String,
    /// SHA-256 of the algorithm and the public material: which key verified a cached token,
    /// so that a key the identity provider withdrew takes its tokens out of the cache.
    pub fingerprint: [u8; 32],
    material: KeyMaterial,
}

pub struct ProviderKeys {
    pub name: String,
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    /// The keys in the bundle.
    pub keys: Vec<Key>,
    /// What its tokens may assert ([`decision_table::bundle::MayAssert`]), compiled.
    pub trust: Trust,
    /// The keys last fetched from the provider's JWKS endpoint (`None`: none fetched yet, or
    /// the provider has no endpoint); replaced whole by [`crate::remote`].
    pub fetched: RefCell<Option<Vec<Key>>>,
    /// Where it publishes its keys (`jwks` in the bundle), fetched by [`crate::remote`].
    pub jwks: Option<decision_table::bundle::RemoteJwks>,
    /// Its fetched revocation list's endpoint.
    pub revocation_endpoint: Option<decision_table::bundle::Endpoint>,
    /// Its introspection endpoint: its tokens are introspected, and it has no keys
    /// ([`crate::introspection`]).
    pub introspection: Option<decision_table::bundle::Introspection>,
    /// Its Basic-credentials endpoint: it takes `Authorization: Basic`, and no tokens.
    pub basic: Option<decision_table::bundle::BasicAuth>,
    /// Its metric names, made once.
    pub metrics: ProviderMetrics,
    /// Host time (ms) a token last named a `kid` the provider's keys lack; 0: not since the
    /// last fetch. Read by [`crate::remote`] to fetch early.
    pub unknown_kid_at: Cell<u64>,
    /// Its revocation list: the bundle's, and the one last fetched.
    pub revoked: Revoked,
    pub revoked_fetched: RefCell<Revoked>,
    /// Host time (ms) of the fetched revocation list's fetch; 0: none yet.
    pub revocations_fetched_at: Cell<u64>,
    /// Tokens are refused while the fetched list is older than this (ms), or missing.
    pub max_list_age_ms: Option<u64>,
}

/// A provider's metric names (`policy_filter_provider_NAME_...`): credentials it accepted
/// and refused, those its endpoint could not answer for, cache hits, and the latency of its
/// callouts (a histogram, milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMetrics {
    pub authenticated: String,
    pub refused: String,
    pub unavailable: String,
    pub cache_hits: String,
    pub callout_ms: String,
}

impl ProviderMetrics {
    pub fn new(provider: &str) -> ProviderMetrics {
        // Provider names are letters, digits, `.`, `_` and `-`, at most 64 (checked in the
        // bundle); metric names keep to `_`. The longest, prefixed `pw:FILTER:` by
        // ngx_wasm_module, stays well inside its default max_metric_name_length of 256
        // (NGX_WA_METRICS_DEFAULT_MAX_NAME_LEN, src/ngx_wasmx.h), past which defining traps.
        let name: String = provider.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let metric = |what: &str| format!("policy_filter_provider_{name}_{what}");
        ProviderMetrics {
            authenticated: metric("authenticated"),
            refused: metric("refused"),
            unavailable: metric("unavailable"),
            cache_hits: metric("cache_hits"),
            callout_ms: metric("callout_ms"),
        }
    }
}

/// A revocation list, ready for lookups.
#[derive(Debug, Default, Clone)]
pub struct Revoked {
    token_ids: rustc_hash::FxHashSet<String>,
    subjects: rustc_hash::FxHashMap<String, Option<u64>>,
}

impl Revoked {
    pub fn new(list: &decision_table::bundle::Revocation) -> Revoked {
        Revoked { token_ids: list.token_ids.iter().cloned().collect(), subjects: list.subjects.clone().into_iter().collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.token_ids.is_empty() && self.subjects.is_empty()
    }

    /// Whether a token with these claims is revoked: its `jti` is listed, or its subject is
    /// (the caller's subject, or the token's `sub` when that differs: a list keyed by `sub`
    /// holds whatever claim names the caller), for tokens issued (`iat`) before the listed
    /// time (a token without `iat` is revoked then too: nothing says it is newer).
    pub fn revokes(&self, verified: &Verified) -> bool {
        if self.is_empty() {
            return false;
        }
        if verified.claims.get("jti").and_then(Value::as_str).is_some_and(|jti| self.token_ids.contains(jti)) {
            return true;
        }
        let sub = verified.claims.get("sub").and_then(Value::as_str);
        let revoked_before = |subject: &str| match self.subjects.get(subject) {
            None => false,
            Some(None) => true,
            Some(Some(before)) => verified.claims.get("iat").and_then(Value::as_u64).is_none_or(|iat| iat < *before),
        };
        revoked_before(&verified.subject) || sub.is_some_and(revoked_before)
    }
}

/// A token that passed every check, with the caller's identity prepared once (a cached
/// token reuses it).
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Map<String, Value>,
    pub expires_at: u64,
    pub provider: String,
    /// The verifying provider's place in the bundle, and the key's fingerprint (none for mTLS).
    pub provider_index: usize,
    pub key_fingerprint: [u8; 32],
    pub subject: String,
    pub attributes: decision_table::Attributes,
    /// The identity header values (user id, subject, roles, organizations, namespaces,
    /// provider, tenant), built on the first forward and reused while the token is cached.
    pub forwarded: std::cell::OnceCell<[String; 7]>,
    /// The tenant-mapping endpoint was asked about this caller (`tenants.endpoint`).
    pub tenant_mapped: bool,
}

fn decode_field(key: &Value, field: &str) -> Result<Vec<u8>, String> {
    let text = key.get(field).and_then(Value::as_str).ok_or(format!("`{field}` is missing"))?;
    URL_SAFE_NO_PAD.decode(text).map_err(|_| format!("`{field}` is not base64url"))
}

/// Builds a key from a JWK the compiler wrote (it has `kid` and `alg`).
pub fn key_from_jwk(jwk: &Value) -> Result<Key, String> {
    let kid = jwk.get("kid").and_then(Value::as_str).ok_or("a key has no kid")?.to_string();
    let alg = jwk.get("alg").and_then(Value::as_str).ok_or(format!("key {kid} has no alg"))?.to_string();
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
    let fail = |e: String| format!("key {kid}: {e}");
    let mut fingerprint = Sha256::new();
    fingerprint.update(alg.as_bytes());
    for member in ["n", "e", "x", "y", "k"] {
        if let Some(value) = jwk.get(member).and_then(Value::as_str) {
            fingerprint.update([0]);
            fingerprint.update(member.as_bytes());
            fingerprint.update(value.as_bytes());
        }
    }
    let material = match (kty, alg.as_str()) {
        ("RSA", "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512") => {
            use signatures::rsa::{Hash, Padding};
            let padding = if alg.starts_with("PS") { Padding::Pss } else { Padding::Pkcs1v15 };
            let hash = match alg.get(2..) {
                Some("384") => Hash::Sha384,
                Some("512") => Hash::Sha512,
                _ => Hash::Sha256,
            };
            let (n, e) = (decode_field(jwk, "n").map_err(fail)?, decode_field(jwk, "e").map_err(fail)?);
            KeyMaterial::Rsa(Box::new(signatures::rsa::PublicKey::new(&n, &e, padding, hash).map_err(fail)?))
        }
        ("EC", "ES256" | "ES384" | "ES512") => {
            let (x, y) = (decode_field(jwk, "x").map_err(fail)?, decode_field(jwk, "y").map_err(fail)?);
            KeyMaterial::Ecdsa(signatures::ecdsa::PublicKey::new(&alg, &x, &y).map_err(fail)?)
        }
        ("OKP", "EdDSA") => {
            let x: [u8; 32] = decode_field(jwk, "x").map_err(fail)?.try_into().map_err(|_| fail("`x` must be 32 bytes".into()))?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|e| fail(e.to_string()))?;
            KeyMaterial::EdDsa(Box::new(key))
        }
        ("oct", "HS256") => KeyMaterial::Hs256(Hs256Key::new(decode_field(jwk, "k").map_err(fail)?)),
        ("oct", "HS384") => KeyMaterial::Hs384(Hs384Key::new(decode_field(jwk, "k").map_err(fail)?)),
        ("oct", "HS512") => KeyMaterial::Hs512(Hs512Key::new(decode_field(jwk, "k").map_err(fail)?)),
        _ => return Err(fail(format!("a {kty} key cannot verify {alg}"))),
    };
    Ok(Key { kid, alg, fingerprint: fingerprint.finalize().into(), material })
}

impl ProviderKeys {
    /// Whether the provider publishes its keys remotely.
    pub fn has_remote_keys(&self) -> bool {
        self.jwks.is_some()
    }

    /// Whether its tokens are introspected.
    pub fn introspects(&self) -> bool {
        self.introspection.is_some()
    }

    /// Whether an endpoint vouches for its credentials (introspection, Basic): it has no keys.
    pub fn checks_remotely(&self) -> bool {
        self.introspection.is_some() || self.basic.is_some()
    }

    /// The key families that would ask the host's `verify_signature`.
    pub fn host_families(&self) -> host_verify::Families {
        // Keys fetched later may be of the algorithms the provider accepts (any, when it
        // lists none): their families are self-tested at start too.
        let remote = |prefixes: &[&str]| {
            self.jwks.as_ref().is_some_and(|jwks| {
                jwks.algorithms.is_empty() || jwks.algorithms.iter().any(|a| prefixes.iter().any(|p| a.starts_with(p)) && a != "ES512")
            })
        };
        host_verify::Families {
            rsa: remote(&["RS"]) || self.keys.iter().any(|key| matches!(&key.material, KeyMaterial::Rsa(rsa) if rsa.host_form().is_some())),
            ecdsa: remote(&["ES"]) || self.keys.iter().any(|key| matches!(&key.material, KeyMaterial::Ecdsa(ec) if ec.host_form().is_some())),
        }
    }
}

pub fn providers(bundle_providers: &[Provider]) -> Result<Vec<ProviderKeys>, String> {
    bundle_providers
        .iter()
        .map(|p| {
            let keys = p.keys.iter().map(key_from_jwk).collect::<Result<Vec<_>, _>>().map_err(|e| format!("provider {}: {e}", p.name))?;
            let trust = Trust::new(&p.may_assert).map_err(|e| format!("provider {}: may_assert: {e}", p.name))?;
            Ok(ProviderKeys {
                name: p.name.clone(),
                issuer: p.issuer.clone(),
                audiences: p.audiences.clone(),
                keys,
                trust,
                fetched: RefCell::new(None),
                jwks: p.jwks.clone(),
                revocation_endpoint: p.revocation.endpoint.clone(),
                introspection: p.introspection.clone(),
                basic: p.basic.clone(),
                metrics: ProviderMetrics::new(&p.name),
                unknown_kid_at: Cell::new(0),
                revoked: Revoked::new(&p.revocation),
                revoked_fetched: RefCell::default(),
                revocations_fetched_at: Cell::new(0),
                max_list_age_ms: p.revocation.max_list_age_seconds.map(|s| s.saturating_mul(1000)),
            })
        })
        .collect()
}

fn check<A: Algorithm>(alg: &A, key: &A::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    if let Some(length) = A::Signature::LENGTH
        && signature.len() != length.get()
    {
        return false;
    }
    match A::Signature::try_from_slice(signature) {
        Ok(signature) => alg.verify_signature(&signature, key, message),
        Err(_) => false,
    }
}

impl Key {
    /// Checks `signature` over `message` with this key's one algorithm; a PKCS#1 v1.5 or ECDSA
    /// key asks the host first when `host` trusts its family (see [`crate::host_verify`]).
    pub fn verifies(&self, message: &[u8], signature: &[u8], host: Option<host_verify::Offload<'_>>) -> bool {
        match &self.material {
            KeyMaterial::Rsa(key) => {
                if let (Some(host), Some((hash, der))) = (host.filter(|h| h.trusted.rsa), key.host_form())
                    && let Some(answer) = host_verify::verify(host.call, hash, der, signature, message)
                {
                    return answer;
                }
                key.verifies(message, signature)
            }
            KeyMaterial::Ecdsa(key) => {
                if let (Some(host), Some((hash, der))) = (host.filter(|h| h.trusted.ecdsa), key.host_form()) {
                    let Some(der_signature) = key.host_signature(signature) else { return false };
                    if let Some(answer) = host_verify::verify(host.call, hash, der, &der_signature, message) {
                        return answer;
                    }
                }
                key.verifies(message, signature)
            }
            KeyMaterial::EdDsa(key) => check(&Ed25519, key, message, signature),
            KeyMaterial::Hs256(key) => check(&Hs256, key, message, signature),
            KeyMaterial::Hs384(key) => check(&Hs384, key, message, signature),
            KeyMaterial::Hs512(key) => check(&Hs512, key, message, signature),
        }
    }
}

const ALGORITHMS: [&str; 13] =
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512"];

fn part(token: &str, index: usize) -> Result<Vec<u8>, Rejection> {
    let text = token.split('.').nth(index).ok_or(Rejection::Malformed("the token is not a JWS"))?;
    URL_SAFE_NO_PAD.decode(text).map_err(|_| Rejection::Malformed("the token is not base64url"))
}

/// A NumericDate claim as whole seconds; `None` when absent, an error when not a number.
fn seconds(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e15).map(|f| f as u64)) {
            Some(value) => Ok(Some(value)),
            None => Err(Rejection::Malformed("a time claim is not a valid NumericDate")),
        },
        Some(_) => Err(Rejection::Malformed("a time claim is not a number")),
    }
}

/// A token's parts after the strict parse, before any signature check. The header is read
/// from the same duplicate-refusing parse as the claims, once; jwt-compact's
/// `UntrustedToken` would parse it a second time, leniently, and its serde header (with
/// flattened extra fields) cost the module 47 KB after wasm-opt.
struct Parsed {
    algorithm: String,
    key_id: Option<String>,
    /// `None` when the payload is not a JSON object: a JWS may still be checked
    /// (`verify_jws`), and `verify` refuses it when it needs the claims.
    claims: Option<Map<String, Value>>,
    signature: Vec<u8>,
}

fn parse(token: &str) -> Result<Parsed, Rejection> {
    if token.split('.').count() != 3 {
        return Err(Rejection::Malformed("the token is not a JWS"));
    }
    let header = strict_json::object(&part(token, 0)?).map_err(|_| Rejection::Malformed("the token header is not valid JSON"))?;
    let claims = match strict_json::object(&part(token, 1)?) {
        Ok(claims) => Some(claims),
        Err(e) if !e.contains("duplicate key") => None,
        Err(_) => return Err(Rejection::Malformed("the token claims are not valid JSON")),
    };
    if header.contains_key("crit") {
        return Err(Rejection::CriticalHeader);
    }
    let text = |name: &str| match header.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(Rejection::Malformed("a token header field has the wrong type")),
    };
    // `typ` and `cty` are not used, but a token that misspells them is not well formed.
    let (algorithm, key_id) = (text("alg")?.ok_or(Rejection::Malformed("the token header has no alg"))?, text("kid")?);
    text("typ")?;
    text("cty")?;
    if !ALGORITHMS.contains(&algorithm.as_str()) {
        return Err(Rejection::UnsupportedAlgorithm);
    }
    // The decoder refuses a signature whose unused trailing bits are not zero (a
    // non-canonical encoding; Wycheproof JWS "invalidBase64Padding").
    let signature = part(token, 2)?;
    Ok(Parsed { algorithm, key_id, claims, signature })
}

/// Chooses the key (by `kid`, else every key of the token's algorithm, when there are at most
/// `max_trials`) and checks the signature over `header.payload`; the key that verified it.
/// A remote key without `alg` may stand once per algorithm its type is bound to, under one
/// `kid`: the token's algorithm picks among them.
fn check_signature<'k>(
    token: &str,
    parsed: &Parsed,
    keys: impl Iterator<Item = &'k Key> + Clone,
    max_trials: usize,
    host: Option<host_verify::Offload<'_>>,
) -> Result<&'k Key, Rejection> {
    let alg = parsed.algorithm.as_str();
    let (message, _) = token.rsplit_once('.').ok_or(Rejection::Malformed("the token is not a JWS"))?;
    let signature = &parsed.signature;
    let verified = match parsed.key_id.as_deref() {
        Some(kid) => {
            let mut named = keys.filter(|k| k.kid == kid).peekable();
            if named.peek().is_none() {
                return Err(Rejection::UnknownKey);
            }
            let key = named.find(|k| k.alg == alg).ok_or(Rejection::AlgorithmMismatch)?;
            key.verifies(message.as_bytes(), signature, host).then_some(key)
        }
        None => {
            // Each trial is a signature check an unauthenticated caller makes us pay for.
            let mut candidates = keys.clone().filter(|k| k.alg == alg).peekable();
            if candidates.peek().is_none() {
                return Err(Rejection::UnknownKey);
            }
            if keys.filter(|k| k.alg == alg).nth(max_trials).is_some() {
                return Err(Rejection::KeyIdRequired);
            }
            candidates.find(|k| k.verifies(message.as_bytes(), signature, host))
        }
    };
    verified.ok_or(Rejection::BadSignature)
}

/// The signature layer alone (strict header, algorithm, key choice, signature), for any JWS
/// payload. Known-answer suites (Wycheproof JWS, RFC 7520, RFC 8037) run through this.
pub fn verify_jws(token: &str, keys: &[Key]) -> Result<(), Rejection> {
    check_signature(token, &parse(token)?, keys.iter(), keys.len(), None).map(|_| ())
}

/// The issuer a JWS must name to go to `provider`: one no token carries for a provider
/// that introspects (it has no keys).
fn issuer_of(provider: &ProviderKeys) -> Option<&str> {
    if provider.checks_remotely() { Some(decision_table::bundle::NOT_AN_ISSUER) } else { provider.issuer.as_deref() }
}

/// Verifies `token` against the providers at host time `now` (Unix seconds); `host` is the
/// proxy's `verify_signature`, when it passed the self-test. A refusal says which provider's
/// it was, once the issuer chose one.
pub fn verify(token: &str, providers: &[ProviderKeys], settings: &Settings, now: u64, host: Option<host_verify::Offload<'_>>) -> Result<Verified, (Rejection, Option<usize>)> {
    let mut chosen = None;
    verify_for(token, providers, settings, now, host, &mut chosen).map_err(|rejection| (rejection, chosen))
}

fn verify_for(
    token: &str,
    providers: &[ProviderKeys],
    settings: &Settings,
    now: u64,
    host: Option<host_verify::Offload<'_>>,
    chosen: &mut Option<usize>,
) -> Result<Verified, Rejection> {
    if token.len() > settings.max_token_bytes {
        return Err(Rejection::TooLarge);
    }
    let mut parsed = parse(token)?;
    let Some(claims) = parsed.claims.take() else {
        return Err(Rejection::Malformed("the token claims are not valid JSON"));
    };

    // `iss` is read before verification only to choose whose keys to try: the provider of
    // that issuer, else the one provider without an issuer (the bundle allows no other chain).
    let issuer = claims.get("iss").and_then(Value::as_str);
    // A provider that introspects has no keys: a JWS never goes to it.
    let provider = decision_table::request::provider_for_issuer(providers, issuer_of, issuer).ok_or(Rejection::UnknownIssuer)?;
    let provider_index = providers.iter().position(|p| std::ptr::eq(p, provider)).unwrap_or_default();
    *chosen = Some(provider_index);

    // What the claims refuse costs no signature check; nothing is accepted before it.
    let skew = settings.clock_skew_seconds;
    let expires_at = seconds(&claims, "exp")?.ok_or(Rejection::NoExpiry)?;
    if now > expires_at.saturating_add(skew) {
        return Err(Rejection::Expired);
    }
    if seconds(&claims, "nbf")?.is_some_and(|nbf| now.saturating_add(skew) < nbf) {
        return Err(Rejection::NotYetValid);
    }
    let issued_at = seconds(&claims, "iat")?;
    if issued_at.is_some_and(|iat| iat > now.saturating_add(skew)) {
        return Err(Rejection::IssuedInFuture);
    }
    if expires_at.saturating_sub(issued_at.unwrap_or(now)) > settings.max_lifetime_seconds {
        return Err(Rejection::LifetimeTooLong);
    }
    if !provider.audiences.is_empty() {
        let audiences = match claims.get("aud") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.iter().any(|a| provider.audiences.iter().any(|wanted| wanted == a)) {
            return Err(Rejection::WrongAudience);
        }
    }
    let fetched = provider.fetched.borrow();
    let keys = provider.keys.iter().chain(fetched.iter().flatten());
    let key = match check_signature(token, &parsed, keys, settings.max_key_trials, host) {
        Ok(key) => key,
        Err(Rejection::UnknownKey) if provider.has_remote_keys() => {
            // Perhaps a key the provider published since the last fetch: fetch early (the
            // fetcher rate-limits it), and say so when nothing was fetched yet.
            provider.unknown_kid_at.set(now.saturating_mul(1000).max(1));
            return Err(if fetched.is_none() { Rejection::KeysUnavailable } else { Rejection::UnknownKey });
        }
        Err(rejection) => return Err(rejection),
    };
    let key_fingerprint = key.fingerprint;
    drop(fetched);

    let (subject, attributes) = decision_table::request::attributes_from_claims(&claims, &settings.claims, &provider.name, &provider.trust)
        .map_err(|_| Rejection::UntrustedSubject)?;
    Ok(Verified { claims, expires_at, provider: provider.name.clone(), provider_index, key_fingerprint, subject, attributes, forwarded: Default::default(), tenant_mapped: false })
}
