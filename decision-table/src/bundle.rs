//! The plugin configuration: what `policy-compiler compile` writes and the filter reads in
//! `on_configure`. Every settings field has a default, so a policy file states only what
//! differs.
//!
//! Written with serde's derived `Serialize`; read by hand from a `serde_json::Value`
//! ([`Bundle::parse`], [`Settings::from_json`]). The derived `Deserialize` cost the module
//! 30 KB more than this reader after wasm-opt (scripts/size.sh); the reader is one small
//! function per type, and the compiler and the filter share it, so they cannot disagree on
//! what a bundle means.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// The bundle format this crate reads and writes.
/// 2: providers say what their tokens may assert (`may_assert`); a format-1 bundle trusted
/// every provider with every claim, so it is refused rather than read with a new meaning.
pub const BUNDLE_FORMAT: u32 = 2;

/// The RSA modulus sizes, in bits, that the compiler writes and the filter verifies.
pub use signatures::rsa::{MAX_BITS as MAX_RSA_BITS, MIN_BITS as MIN_RSA_BITS};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bundle {
    pub format: u32,
    /// The decision table, base64 of [`crate::Table::encode`].
    pub table: String,
    /// The table's content hash (hex), for logs and `inspect`.
    pub table_hash: String,
    pub settings: Settings,
    pub providers: Vec<Provider>,
}

/// A token issuer and the keys its tokens must be signed with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provider {
    pub name: String,
    /// The `iss` a token must carry; `None` accepts any issuer (Microkubes tokens).
    pub issuer: Option<String>,
    /// A token's `aud` must name one of these; empty means no audience check.
    pub audiences: Vec<String>,
    /// JSON Web Keys, each with `kid` and `alg` (the one algorithm it may verify).
    pub keys: Vec<serde_json::Value>,
    /// What this provider's tokens may assert about their caller.
    pub may_assert: MayAssert,
    /// Where the provider publishes its keys (a JWKS document), fetched at run time beside
    /// `keys`; `None`: the embedded keys only.
    pub jwks: Option<RemoteJwks>,
    /// The tokens and subjects of this provider no longer accepted.
    pub revocation: Revocation,
    /// Tokens this provider's authorization server vouches for by introspection (RFC 7662)
    /// instead of a signature: opaque tokens (not a JWS), or every token.
    pub introspection: Option<Introspection>,
    /// `Authorization: Basic` credentials this provider's endpoint checks (CADI's Basic
    /// protocol, Compass's Basic flow); such a provider takes no tokens.
    pub basic: Option<BasicAuth>,
}

impl Provider {
    /// Whether an endpoint vouches for this provider's credentials (introspection, Basic)
    /// rather than a signature: it has no keys, and a JWS never goes to it.
    pub fn checks_remotely(&self) -> bool {
        self.introspection.is_some() || self.basic.is_some()
    }
}

/// Basic credentials checked by an endpoint: `GET` with the client's `Authorization: Basic`
/// header, while the request waits. A 200 vouches for the user (a JSON object in the answer
/// adds its members as claims: `sub`, `roles`, `scope`...), a 401 or 403 refuses the
/// credentials (401), anything else is a 503. Answers are cached by SHA-256 of the
/// credentials; the credentials are never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BasicAuth {
    pub endpoint: Endpoint,
    /// A vouched-for user is reused this long.
    pub cache_seconds: u64,
    /// Refused credentials are remembered this long.
    pub negative_seconds: u64,
}

impl BasicAuth {
    fn from_json(value: &Value, path: &str) -> Result<BasicAuth, String> {
        let object = Object::new(value, path, &["endpoint", "cache_seconds", "negative_seconds"])?;
        let mut basic = BasicAuth {
            endpoint: object.required("endpoint", |o, name| Endpoint::from_json(o.value(name)?, &o.at(name)))?,
            cache_seconds: 300,
            negative_seconds: 10,
        };
        object.set(&mut basic.cache_seconds, "cache_seconds", Object::unsigned)?;
        object.set(&mut basic.negative_seconds, "negative_seconds", Object::unsigned)?;
        Ok(basic)
    }
}

/// An OAuth2 token introspection endpoint (RFC 7662): the token is POSTed with the
/// gateway's client credentials while the request waits; `active: false` is a 401, an
/// endpoint that does not answer properly a 503 (never a pass).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Introspection {
    pub endpoint: Endpoint,
    pub client_id: String,
    /// The client secret (the bundle is therefore a secret).
    pub client_secret: String,
    /// `basic` (RFC 6749 client_secret_basic) or `post` (in the form).
    pub client_auth: ClientAuth,
    /// An active answer is reused until the token's `exp`, or this many seconds.
    pub cache_seconds: u64,
    /// An inactive answer is remembered this long.
    pub negative_seconds: u64,
    /// Every token, JWS or not, is introspected (no other provider then takes tokens).
    pub all_tokens: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    Basic,
    Post,
}

impl Introspection {
    fn from_json(value: &Value, path: &str) -> Result<Introspection, String> {
        let known = ["endpoint", "client_id", "client_secret", "client_auth", "cache_seconds", "negative_seconds", "all_tokens"];
        let object = Object::new(value, path, &known)?;
        let mut introspection = Introspection {
            endpoint: object.required("endpoint", |o, name| Endpoint::from_json(o.value(name)?, &o.at(name)))?,
            client_id: object.required("client_id", Object::string)?,
            client_secret: object.required("client_secret", Object::string)?,
            client_auth: ClientAuth::Basic,
            cache_seconds: 300,
            negative_seconds: 10,
            all_tokens: false,
        };
        object.set(&mut introspection.client_auth, "client_auth", |o, name| o.choice(name, &[("basic", ClientAuth::Basic), ("post", ClientAuth::Post)]))?;
        object.set(&mut introspection.cache_seconds, "cache_seconds", Object::unsigned)?;
        object.set(&mut introspection.negative_seconds, "negative_seconds", Object::unsigned)?;
        object.set(&mut introspection.all_tokens, "all_tokens", Object::boolean)?;
        if introspection.client_id.is_empty() {
            return Err(format!("{path}.client_id: the gateway's client id at the authorization server"));
        }
        Ok(introspection)
    }
}

/// An HTTP endpoint the module fetches from with `proxy_http_call`, off the request path
/// (from `on_tick`), keeping what it last fetched when a fetch fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Envoy: the name of the cluster that reaches the endpoint. ngx_wasm_module (NGINX,
    /// Kong): its address, `host:port` (docs/PROXY_WASM.md, "HTTP Dispatches").
    pub upstream: String,
    /// The `:authority` (Host) of the request.
    pub authority: String,
    /// The `:path`, with the query.
    pub path: String,
    /// `https` or `http`, sent as `:scheme` (ngx_wasm_module opens TLS for `https`; in Envoy
    /// the cluster decides).
    pub scheme: String,
    pub timeout_ms: u64,
    /// A larger answer is refused and the last good one kept.
    pub max_bytes: usize,
    /// How long a fetched document is used before it is fetched again, when its answer has no
    /// `Cache-Control: max-age`.
    pub refresh_seconds: u64,
    /// The bounds a `max-age` is held to.
    pub min_refresh_seconds: u64,
    pub max_refresh_seconds: u64,
    /// After a failed fetch, the wait before the next attempt.
    pub retry_seconds: u64,
}

/// The shortest interval between early fetches for unknown `kid`s: a flood of made-up kids
/// costs the identity provider at most one fetch per this many seconds.
pub const MIN_UNKNOWN_KID_SECONDS: u64 = 5;

/// A provider's remote key set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteJwks {
    /// The JWKS endpoint; with `discovery`, the issuer's OpenID Connect configuration
    /// (`/.well-known/openid-configuration`), whose `jwks_uri` names the JWKS on the same
    /// upstream.
    pub endpoint: Endpoint,
    pub discovery: bool,
    /// The algorithms a key without `alg` is bound to, by its key type (an EC key's curve
    /// names its one algorithm; an RSA key verifies `RS256` unless RSA algorithms are listed).
    pub algorithms: Vec<String>,
    /// A token naming a `kid` the set lacks makes the set be fetched early, at most once in
    /// this many seconds (across every worker).
    pub unknown_kid_seconds: u64,
    /// Keys beyond this many in a document are ignored (and logged).
    pub max_keys: usize,
}

/// Tokens a provider issued that are no longer accepted: by `jti`, or by subject (every token
/// of the subject, or those issued before a time, so that tokens issued after the subject was
/// re-enabled work).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Revocation {
    pub token_ids: Vec<String>,
    /// Subject to the time (Unix seconds) before which its tokens (`iat`) are revoked; `None`:
    /// all of them.
    pub subjects: BTreeMap<String, Option<u64>>,
    /// A revocation list fetched at run time, added to the ones above (see README.md,
    /// "Revocation").
    pub endpoint: Option<Endpoint>,
    /// With `endpoint`: the provider's tokens are refused while the fetched list is older
    /// than this, or before it was first fetched (fail closed); `None`: the last good list
    /// serves however old it is.
    pub max_list_age_seconds: Option<u64>,
}

impl Revocation {
    /// A revocation list as an endpoint serves it (README.md, "Revocation"):
    /// `{"token_ids": ["..."], "subjects": {"alice": null, "bob": 1800000000}}`, both optional.
    pub fn parse_list(text: &[u8]) -> Result<Revocation, String> {
        let list = Revocation::from_json(&Value::Object(crate::strict_json::object(text)?), "revocation list")?;
        if list.endpoint.is_some() || list.max_list_age_seconds.is_some() {
            return Err("revocation list: only `token_ids` and `subjects` may be listed".into());
        }
        Ok(list)
    }

    pub fn is_empty(&self) -> bool {
        self.token_ids.is_empty() && self.subjects.is_empty() && self.endpoint.is_none()
    }
}

/// Where an OpenID Connect configuration says the JWKS is, when it is on the same upstream as
/// the configuration (`scheme://authority/path`, the same scheme and authority, ASCII case
/// aside): the path. The module fetches only from the upstream the bundle names.
pub fn same_origin_path(configuration: &Endpoint, jwks_uri: &str) -> Result<String, String> {
    let (scheme, rest) = jwks_uri.split_once("://").ok_or("jwks_uri is not an absolute URI")?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
    let default_port = if configuration.scheme == "https" { ":443" } else { ":80" };
    let bare = |authority: &str| authority.strip_suffix(default_port).unwrap_or(authority).to_ascii_lowercase();
    let same_authority = bare(authority) == bare(&configuration.authority);
    if !scheme.eq_ignore_ascii_case(&configuration.scheme) || !same_authority {
        return Err(format!("jwks_uri {jwks_uri:?} is not on {}://{} (the upstream the bundle names)", configuration.scheme, configuration.authority));
    }
    if path.contains('#') || path.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
        return Err(format!("jwks_uri {jwks_uri:?} has a fragment or a character a path may not hold"));
    }
    Ok(path.to_string())
}

impl Endpoint {
    /// The defaults of a fetched document's timing and size; the compiler fills in where it is.
    pub fn new(upstream: &str, authority: &str, path: &str, scheme: &str) -> Endpoint {
        Endpoint {
            upstream: upstream.into(),
            authority: authority.into(),
            path: path.into(),
            scheme: scheme.into(),
            timeout_ms: 5_000,
            max_bytes: 128 * 1024,
            refresh_seconds: 300,
            min_refresh_seconds: 30,
            max_refresh_seconds: 24 * 3600,
            retry_seconds: 10,
        }
    }

    /// How long a document fetched with this `Cache-Control` is fresh, in seconds.
    pub fn freshness(&self, cache_control: Option<&str>) -> u64 {
        let max_age = cache_control.and_then(|value| {
            value.split(',').find_map(|directive| {
                let (name, seconds) = directive.trim().split_once('=')?;
                if name.trim().eq_ignore_ascii_case("max-age") { seconds.trim().trim_matches('"').parse::<u64>().ok() } else { None }
            })
        });
        max_age.unwrap_or(self.refresh_seconds).clamp(self.min_refresh_seconds.min(self.max_refresh_seconds), self.max_refresh_seconds)
    }
}

/// What a provider's verified tokens may assert. A partner's identity provider signs tokens
/// about the partner's callers, not about the platform's admins: a role, scope or claim it may
/// not assert is dropped before any policy sees it, and a subject it may not name is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MayAssert {
    /// Every claim, as it comes: the platform's own identity provider.
    Any,
    /// Only the attributes named here (`roles`, `scopes`, `userId`, any claim), each value
    /// only when one of its regexes matches the whole of it. The key `subject` lists the
    /// subjects the provider may name; without it, none (every token is refused). `username`
    /// is the subject, and `provider` and `clientIP` are set by the filter.
    Only(BTreeMap<String, Vec<String>>),
}

/// What an introspecting provider answers to when a JWS's `iss` chooses a provider: no token
/// carries it, so a JWS never goes to a provider that has no keys to check it with.
pub const NOT_AN_ISSUER: &str = "\u{0}introspection";

/// The attribute naming the provider that verified the caller's credential (`mtls` for a
/// client certificate). Set by the filter, never taken from a claim.
pub const PROVIDER_ATTRIBUTE: &str = "provider";

/// The provider name of a caller authenticated by a client certificate.
pub const MTLS_PROVIDER: &str = "mtls";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Denied requests are answered 401/403.
    #[default]
    Enforce,
    /// Decisions are logged and counted, and every request goes through.
    Shadow,
}

/// The proxy the module runs in. What the module may ask of it, and what a removed header
/// means, differ (see the README's host table): the compiler's `render` names it, and `auto`
/// asks the proxy at start (a non-empty `node` property is Envoy; anything else is treated as
/// a host whose removals may not reach the upstream, and that is never sent a foreign call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProxyHost {
    #[default]
    Auto,
    /// Envoy or Istio.
    Envoy,
    /// NGINX with ngx_wasm_module, or Kong Gateway.
    NgxWasmModule,
}

/// Where a token may come from. The first source that has one is used; two sources (or two
/// `Authorization` headers) carrying credentials is a 401.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// A header; with a scheme (`Bearer`), the value must start with it (case-insensitive).
    Header { name: String, scheme: Option<String> },
    Query { name: String },
    Cookie { name: String },
}

/// Claim names, for tokens that spell them differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimNames {
    /// The policy subject (Microkubes: `username`).
    pub subject: String,
    pub user_id: String,
    pub roles: String,
    pub organizations: String,
    pub namespaces: String,
    pub scopes: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            subject: "username".into(),
            user_id: "userId".into(),
            roles: "roles".into(),
            organizations: "organizations".into(),
            namespaces: "namespaces".into(),
            scopes: "scope".into(),
        }
    }
}

/// Headers the upstream receives about the caller. Whatever the client sent under these
/// names is removed first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forward {
    /// Remove the credential before the request goes upstream.
    pub strip_token: bool,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub roles: Option<String>,
    pub organizations: Option<String>,
    pub namespaces: Option<String>,
    /// The id of the policy that allowed the request.
    pub policy: Option<String>,
    /// The provider that verified the credential (`mtls` for a client certificate); a
    /// client's `x-auth-provider` is taken out even while this is off.
    pub provider: Option<String>,
    /// The caller's tenant (`tenants`, or a `tenant` claim its provider may assert).
    pub tenant: Option<String>,
}

impl Default for Forward {
    fn default() -> Self {
        Forward {
            strip_token: true,
            user_id: Some("x-auth-user-id".into()),
            username: Some("x-auth-username".into()),
            roles: Some("x-auth-roles".into()),
            organizations: Some("x-auth-organizations".into()),
            namespaces: Some("x-auth-namespaces".into()),
            policy: None,
            // Off by default: each header costs a hostcall on every allowed request.
            provider: None,
            // Sent only when there is a tenant: no cost without one.
            tenant: Some("x-auth-tenant".into()),
        }
    }
}

/// Which part of a verified client certificate names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MtlsIdentity {
    UriSan,
    /// The subject's CN, parsed as RFC 4514 (a subject with none, or two, authenticates no one).
    SubjectCn,
    /// `connection.dns_san_peer_certificate`: the certificate's first DNS SAN.
    DnsSan,
}

/// The mTLS credential: used when a request has no token and the proxy verified a client
/// certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mtls {
    pub identity: MtlsIdentity,
    /// Roles for each identity (the subject), e.g. a SPIFFE id to `["service"]`.
    pub roles: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// The realm in `WWW-Authenticate`.
    pub realm: String,
    pub mode: Mode,
    /// Anchored regexes on the normalised path; matching requests skip authentication and
    /// authorisation (Microkubes `ignorePatterns`, anchored).
    pub ignore_patterns: Vec<String>,
    /// Let CORS preflights (OPTIONS with `Origin` and `Access-Control-Request-Method`) through
    /// unauthenticated. Off by default: such a request reaches the upstream on any path.
    pub bypass_cors_preflight: bool,
    /// Method to action; a method not listed is denied.
    pub actions: BTreeMap<String, String>,
    pub token_sources: Vec<TokenSource>,
    pub clock_skew_seconds: u64,
    /// The longest `exp - iat` (or `exp - now` without `iat`) accepted.
    pub max_lifetime_seconds: u64,
    pub max_token_bytes: usize,
    pub claims: ClaimNames,
    pub forward: Forward,
    pub mtls: Option<Mtls>,
    /// Verified tokens remembered (by the whole token) until they expire.
    pub cache_entries: usize,
    /// The proxy the module runs in.
    pub host: ProxyHost,
    /// What a `;` in the path means (Tomcat and Spring read `/a/..;/b` as `/b`).
    pub path_parameters: PathParameters,
    /// The upstream resolves paths without regard to case: paths are matched and forwarded
    /// in lower case, and a character whose case folds to ASCII (`ſ`, the Kelvin sign) is
    /// refused.
    pub case_insensitive_paths: bool,
    /// A token without `kid` is tried against at most this many keys of its algorithm; a
    /// provider with more such keys refuses it (every trial is a signature check).
    pub max_key_trials: usize,
    /// Tokens whose signature failed, remembered (by SHA-256) for a minute, so a replayed
    /// forgery costs a hash rather than a signature check.
    pub rejected_cache_entries: usize,
    /// Log one allowed request in this many (at `info`, per worker); 0: none. Refusals are
    /// always logged.
    pub log_allowed_every: u64,
    /// ngx_wasm_module (NGINX, Kong): the `shm_kv` zone in which the workers share fetched key
    /// sets and revocation lists (`shm_kv policy_filter 1m;` in `wasm {}`); `None`: each
    /// worker fetches its own (get and set trap where no zone resolves). Envoy's workers
    /// always share them.
    pub shm_kv_zone: Option<String>,
    /// Browsers without a (valid) credential are sent to a login page instead of a 401.
    pub login: Option<Login>,
    /// The caller's tenant and scopes, from its authorization id (Compass's tenant mapping).
    pub tenants: Option<TenantMapping>,
    /// An internal token the filter signs for each allowed caller and forwards (Oathkeeper's
    /// `id_token` mutator, ONAP Auth*'s JWT).
    pub mint: Option<Mint>,
    /// How a request with several credentials is decided.
    pub chain: Chain,
}

/// The credential chain. Either way the credentials are taken in `token_sources` order, the
/// client certificate last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Chain {
    /// One credential decides: a request with two is refused (which would count?), and an
    /// invalid token never falls back to the certificate.
    #[default]
    OneCredential,
    /// CADI's and ONAP Auth*'s chain: each credential is tried in turn and the first that
    /// authenticates decides; a refused one passes to the next. When none does, the first
    /// refusal is answered (a 503 if an endpoint could not say).
    FirstSuccess,
}

/// The minted internal token: an EdDSA JWT `{iss, aud, sub, iat, exp, jti, provider,
/// tenant, scopes, roles}` for the decided identity, short-lived, reused per identity until
/// ten seconds before it expires. The private key is in the bundle (so the bundle is a
/// secret); `policy-compiler jwks` publishes the public key for the upstreams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mint {
    pub kid: String,
    /// `EdDSA` (Ed25519) or `ES256` (ECDSA P-256, deterministic nonces: RFC 6979).
    pub alg: MintAlgorithm,
    /// The private key, base64url: the 32-byte Ed25519 seed, or the 32-byte P-256 scalar.
    pub private_key: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub ttl_seconds: u64,
    /// `authorization` (as `Bearer TOKEN`, replacing the caller's credential), or another
    /// header, which then carries the bare token.
    pub header: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MintAlgorithm {
    EdDSA,
    ES256,
}

impl MintAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            MintAlgorithm::EdDSA => "EdDSA",
            MintAlgorithm::ES256 => "ES256",
        }
    }
}

impl Mint {
    fn from_json(value: &Value, path: &str) -> Result<Mint, String> {
        let object = Object::new(value, path, &["kid", "alg", "private_key", "issuer", "audiences", "ttl_seconds", "header"])?;
        let mut mint = Mint {
            kid: object.required("kid", Object::string)?,
            alg: MintAlgorithm::EdDSA,
            private_key: object.required("private_key", Object::string)?,
            issuer: object.required("issuer", Object::string)?,
            audiences: object.required("audiences", Object::strings)?,
            ttl_seconds: 60,
            header: "authorization".into(),
        };
        object.set(&mut mint.alg, "alg", |o, name| o.choice(name, &[("EdDSA", MintAlgorithm::EdDSA), ("ES256", MintAlgorithm::ES256)]))?;
        object.set(&mut mint.ttl_seconds, "ttl_seconds", Object::unsigned)?;
        object.set(&mut mint.header, "header", Object::string)?;
        mint.header = mint.header.to_ascii_lowercase();
        if !(20..=3600).contains(&mint.ttl_seconds) {
            return Err(format!("{path}.ttl_seconds: 20 to 3600 (the token is reused until ten seconds before it expires)"));
        }
        if mint.kid.is_empty() || mint.issuer.is_empty() || mint.audiences.is_empty() || mint.header.is_empty() {
            return Err(format!("{path}: needs a kid, an issuer, audiences and a header"));
        }
        Ok(mint)
    }
}

/// Compass's tenant mapping, static: the credential's authorization id (the first of
/// `id_claims` the token has, else the subject: a client certificate's identity, a token's
/// `username`) to a tenant and scopes. The tenant becomes the `tenant` attribute (over a
/// `tenant` claim, which counts only where no entry maps the caller) and the forwarded
/// `forward.tenant` header; the scopes are added to `scopes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantMapping {
    pub id_claims: Vec<String>,
    pub entries: BTreeMap<String, TenantEntry>,
    /// A caller with no tenant (no entry and no `tenant` claim) is refused (403).
    pub required: bool,
    /// Compass's tenant-mapping handler: for an authorization id no entry maps, the module
    /// POSTs Oathkeeper's hydrator session (`{"subject": ID, "extra": {...}, "header": {}}`)
    /// while the request waits, and reads `extra.tenant` and `extra.scope` (or top-level
    /// `tenant` and `scopes`) from the answer. A 200 without a tenant or a 404 maps nobody;
    /// anything else is a 503. Answers are cached by provider and id.
    pub endpoint: Option<Endpoint>,
    /// A mapping found is reused this long, one that found nothing `negative_seconds`.
    pub cache_seconds: u64,
    pub negative_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantEntry {
    pub tenant: String,
    pub scopes: Vec<String>,
}

impl TenantMapping {
    fn from_json(value: &Value, path: &str) -> Result<TenantMapping, String> {
        let object = Object::new(value, path, &["id_claims", "entries", "required", "endpoint", "cache_seconds", "negative_seconds"])?;
        let mut mapping = TenantMapping {
            id_claims: vec!["client_id".into(), "email".into()],
            entries: BTreeMap::new(),
            required: false,
            endpoint: None,
            cache_seconds: 300,
            negative_seconds: 30,
        };
        object.set(&mut mapping.endpoint, "endpoint", |o, name| o.nullable(name, |o, name| Endpoint::from_json(o.value(name)?, &o.at(name))))?;
        object.set(&mut mapping.cache_seconds, "cache_seconds", Object::unsigned)?;
        object.set(&mut mapping.negative_seconds, "negative_seconds", Object::unsigned)?;
        object.set(&mut mapping.id_claims, "id_claims", Object::strings)?;
        object.set(&mut mapping.required, "required", Object::boolean)?;
        object.set(&mut mapping.entries, "entries", |o, name| {
            let at = o.at(name);
            o.map(name)?
                .iter()
                .map(|(id, entry)| {
                    let entry_path = format!("{at}.{id}");
                    let fields = Object::new(entry, &entry_path, &["tenant", "scopes"])?;
                    let scopes = fields.nullable("scopes", Object::strings)?.unwrap_or_default();
                    Ok((id.clone(), TenantEntry { tenant: fields.required("tenant", Object::string)?, scopes }))
                })
                .collect()
        })?;
        if mapping.entries.values().any(|e| e.tenant.is_empty()) {
            return Err(format!("{path}.entries: an empty tenant"));
        }
        // An answer kept for no time would be asked again by the very pass it is for.
        if mapping.endpoint.is_some() && (mapping.cache_seconds == 0 || mapping.negative_seconds == 0) {
            return Err(format!("{path}: cache_seconds and negative_seconds must be at least 1 with an endpoint"));
        }
        Ok(mapping)
    }
}

/// Where an unauthenticated browser is sent: a `GET`/`HEAD` that asks for HTML (`Accept:
/// text/html`, or `Sec-Fetch-Mode: navigate`) on one of `paths` gets a 302 to `url`, with the
/// original URL in `return_parameter`, when that URL's origin is one of `return_origins` (no
/// open redirect through a forged Host). Anything else gets the RFC 6750 401.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Login {
    pub url: String,
    pub return_parameter: String,
    /// Anchored regexes on the normalised path.
    pub paths: Vec<String>,
    /// `scheme://authority`, lower case, exactly.
    pub return_origins: Vec<String>,
}

/// What a path parameter (`;` in the path) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PathParameters {
    /// Refused (400): an upstream may strip it (Tomcat, Spring), and then resolve `..;` as `..`.
    #[default]
    Refuse,
    /// An ordinary path character, matched and forwarded as it is: for upstreams that give
    /// `;` no meaning.
    Keep,
}

impl Default for Settings {
    fn default() -> Self {
        let actions = [
            ("GET", "api:read"),
            ("HEAD", "api:read"),
            ("OPTIONS", "api:read"),
            ("POST", "api:write"),
            ("PUT", "api:write"),
            ("PATCH", "api:write"),
            ("DELETE", "api:write"),
        ];
        Settings {
            realm: "api".into(),
            mode: Mode::Enforce,
            ignore_patterns: Vec::new(),
            bypass_cors_preflight: false,
            actions: actions.iter().map(|(m, a)| ((*m).to_string(), (*a).to_string())).collect(),
            token_sources: vec![TokenSource::Header { name: "authorization".into(), scheme: Some("Bearer".into()) }],
            clock_skew_seconds: 60,
            max_lifetime_seconds: 24 * 3600,
            max_token_bytes: 8 * 1024,
            claims: ClaimNames::default(),
            forward: Forward::default(),
            mtls: None,
            cache_entries: 256,
            host: ProxyHost::Auto,
            path_parameters: PathParameters::Refuse,
            case_insensitive_paths: false,
            max_key_trials: 4,
            rejected_cache_entries: 1024,
            log_allowed_every: 0,
            shm_kv_zone: None,
            login: None,
            tenants: None,
            mint: None,
            chain: Chain::OneCredential,
        }
    }
}

/// Removes the members of `object` that equal `defaults`' (what the reader fills in when a
/// member is left out).
fn strip_defaults(object: &mut Value, defaults: &Value) {
    if let (Some(object), Some(defaults)) = (object.as_object_mut(), defaults.as_object()) {
        object.retain(|name, value| defaults.get(name) != Some(value));
    }
}

impl Bundle {
    /// The bundle with every member the reader would fill in left out (the settings at their
    /// defaults, absent remote parts, an endpoint's default timing): the same bundle to
    /// [`Bundle::from_json`], in fewer bytes. NGINX refuses a configuration parameter of
    /// 4096 bytes or more (`NGX_CONF_BUFFER`, src/core/ngx_conf_file.c).
    pub fn to_compact_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(settings) = value.get_mut("settings") {
            strip_defaults(settings, &serde_json::to_value(Settings::default()).unwrap_or(Value::Null));
        }
        let endpoint_defaults = serde_json::to_value(Endpoint::new("", "", "", "")).unwrap_or(Value::Null);
        let jwks_defaults = serde_json::json!({"discovery": false, "algorithms": [], "unknown_kid_seconds": 30, "max_keys": 32});
        let revocation_defaults = serde_json::json!({"token_ids": [], "subjects": {}, "endpoint": null, "max_list_age_seconds": null});
        let introspection_defaults = serde_json::json!({"client_auth": "basic", "cache_seconds": 300, "negative_seconds": 10, "all_tokens": false});
        let basic_defaults = serde_json::json!({"cache_seconds": 300, "negative_seconds": 10});
        let parts = [("jwks", &jwks_defaults), ("revocation", &revocation_defaults), ("introspection", &introspection_defaults), ("basic", &basic_defaults)];
        for provider in value.get_mut("providers").and_then(Value::as_array_mut).into_iter().flatten() {
            for (name, defaults) in parts {
                if let Some(part) = provider.get_mut(name) {
                    strip_defaults(part, defaults);
                    if let Some(endpoint) = part.get_mut("endpoint") {
                        strip_defaults(endpoint, &endpoint_defaults);
                    }
                }
            }
            strip_defaults(provider, &serde_json::json!({"jwks": null, "revocation": {}, "introspection": null, "basic": null}));
        }
        value
    }

    /// Parses a bundle's JSON text, refusing duplicate keys anywhere (the module and the
    /// compiler's `inspect` and `render` read bundles only through this).
    pub fn parse(text: &[u8]) -> Result<Bundle, String> {
        Bundle::from_json(&Value::Object(crate::strict_json::object(text)?))
    }

    /// Reads a bundle (the JSON `policy-compiler compile` writes). Every field is required;
    /// an unknown field, a wrong type or a missing field is an error naming where it is.
    pub fn from_json(value: &Value) -> Result<Bundle, String> {
        let object = Object::new(value, "bundle", &["format", "table", "table_hash", "settings", "providers"])?;
        let format = object.required("format", Object::unsigned)?;
        let providers = object.required("providers", Object::array)?;
        let bundle = Bundle {
            format: u32::try_from(format).map_err(|_| object.wrong("format", "a format number"))?,
            table: object.required("table", Object::string)?,
            table_hash: object.required("table_hash", Object::string)?,
            settings: Settings::from_json(object.required("settings", Object::value)?, "settings")?,
            providers: providers
                .iter()
                .enumerate()
                .map(|(i, provider)| Provider::from_json(provider, &format!("providers[{i}]")))
                .collect::<Result<_, _>>()
                .and_then(|providers: Vec<Provider>| check_provider_chain(&providers).map(|()| providers))?,
        };
        check_basic_sources(&bundle.settings.token_sources, &bundle.providers)?;
        Ok(bundle)
    }
}

impl Provider {
    fn from_json(value: &Value, path: &str) -> Result<Provider, String> {
        let object = Object::new(value, path, &["name", "issuer", "audiences", "keys", "may_assert", "jwks", "revocation", "introspection", "basic"])?;
        Ok(Provider {
            basic: object.nullable("basic", |o, name| BasicAuth::from_json(o.value(name)?, &o.at(name)))?,
            introspection: object.nullable("introspection", |o, name| Introspection::from_json(o.value(name)?, &o.at(name)))?,
            jwks: object.nullable("jwks", |o, name| RemoteJwks::from_json(o.value(name)?, &o.at(name)))?,
            revocation: object.nullable("revocation", |o, name| Revocation::from_json(o.value(name)?, &o.at(name)))?.unwrap_or_default(),
            name: object.required("name", Object::string)?,
            issuer: object.nullable("issuer", Object::string)?,
            audiences: object.required("audiences", Object::strings)?,
            keys: object.required("keys", Object::array)?.clone(),
            may_assert: object.required("may_assert", |o, name| match o.value(name)? {
                Value::String(any) if any == "any" => Ok(MayAssert::Any),
                Value::Object(_) => {
                    let at = o.at(name);
                    let only = Object::new(o.value(name)?, &at, &["only"])?;
                    let expected = "lists of regexes";
                    let lists = |list: &Value| only.texts(list.as_array().ok_or_else(|| only.wrong("only", expected))?, "only", expected);
                    only.required("only", Object::map)?.iter().map(|(attribute, list)| Ok((attribute.clone(), lists(list)?))).collect::<Result<_, String>>().map(MayAssert::Only)
                }
                _ => Err(o.wrong(name, "`any` or `{\"only\": {ATTRIBUTE: [regexes]}}`")),
            })?,
        })
    }
}

impl Login {
    fn from_json(value: &Value, path: &str) -> Result<Login, String> {
        let object = Object::new(value, path, &["url", "return_parameter", "paths", "return_origins"])?;
        let mut login = Login {
            url: object.required("url", Object::string)?,
            return_parameter: "return_to".into(),
            paths: object.required("paths", Object::strings)?,
            return_origins: object.required("return_origins", Object::strings)?,
        };
        object.set(&mut login.return_parameter, "return_parameter", Object::string)?;
        if !(login.url.starts_with("https://") || login.url.starts_with("http://")) || login.url.contains('#') {
            return Err(format!("{path}.url: an absolute http(s) URL without a fragment"));
        }
        if login.return_parameter.is_empty() || !login.return_parameter.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
            return Err(format!("{path}.return_parameter: letters, digits, `_`, `-` or `.`"));
        }
        if login.paths.is_empty() || login.return_origins.is_empty() {
            return Err(format!("{path}: needs paths and return_origins"));
        }
        for origin in &mut login.return_origins {
            *origin = origin.trim_end_matches('/').to_ascii_lowercase();
            let bare = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            if bare.is_none_or(|authority| authority.is_empty() || authority.contains(['/', '?', '#', '@'])) {
                return Err(format!("{path}.return_origins: {origin:?} is not scheme://authority"));
            }
        }
        Ok(login)
    }
}

impl Endpoint {
    fn from_json(value: &Value, path: &str) -> Result<Endpoint, String> {
        let known = [
            "upstream",
            "authority",
            "path",
            "scheme",
            "timeout_ms",
            "max_bytes",
            "refresh_seconds",
            "min_refresh_seconds",
            "max_refresh_seconds",
            "retry_seconds",
        ];
        let object = Object::new(value, path, &known)?;
        let mut endpoint = Endpoint::new(
            &object.required("upstream", Object::string)?,
            &object.required("authority", Object::string)?,
            &object.required("path", Object::string)?,
            object.required("scheme", |o, name| o.choice(name, &[("https", "https"), ("http", "http")]))?,
        );
        object.set(&mut endpoint.timeout_ms, "timeout_ms", Object::unsigned)?;
        object.set(&mut endpoint.max_bytes, "max_bytes", Object::size)?;
        object.set(&mut endpoint.refresh_seconds, "refresh_seconds", Object::unsigned)?;
        object.set(&mut endpoint.min_refresh_seconds, "min_refresh_seconds", Object::unsigned)?;
        object.set(&mut endpoint.max_refresh_seconds, "max_refresh_seconds", Object::unsigned)?;
        object.set(&mut endpoint.retry_seconds, "retry_seconds", Object::unsigned)?;
        if endpoint.upstream.is_empty() || !endpoint.path.starts_with('/') {
            return Err(format!("{path}: needs an upstream and a path starting with `/`"));
        }
        if endpoint.timeout_ms == 0 || endpoint.timeout_ms > u64::from(u32::MAX) || endpoint.max_bytes == 0 {
            return Err(format!("{path}: timeout_ms and max_bytes must be above 0"));
        }
        // Floors against fetching every tick (a `max-age=0` answer, or a hand-written bundle).
        if endpoint.min_refresh_seconds == 0 || endpoint.retry_seconds == 0 || endpoint.min_refresh_seconds > endpoint.max_refresh_seconds {
            return Err(format!("{path}: min_refresh_seconds and retry_seconds must be at least 1, and min_refresh_seconds at most max_refresh_seconds"));
        }
        Ok(endpoint)
    }
}

impl RemoteJwks {
    fn from_json(value: &Value, path: &str) -> Result<RemoteJwks, String> {
        let object = Object::new(value, path, &["endpoint", "discovery", "algorithms", "unknown_kid_seconds", "max_keys"])?;
        let mut jwks = RemoteJwks {
            endpoint: object.required("endpoint", |o, name| Endpoint::from_json(o.value(name)?, &o.at(name)))?,
            discovery: false,
            algorithms: Vec::new(),
            unknown_kid_seconds: 30,
            max_keys: 32,
        };
        object.set(&mut jwks.discovery, "discovery", Object::boolean)?;
        object.set(&mut jwks.algorithms, "algorithms", Object::strings)?;
        object.set(&mut jwks.unknown_kid_seconds, "unknown_kid_seconds", Object::unsigned)?;
        object.set(&mut jwks.max_keys, "max_keys", Object::size)?;
        if jwks.unknown_kid_seconds < MIN_UNKNOWN_KID_SECONDS || jwks.max_keys == 0 {
            return Err(format!("{path}: unknown_kid_seconds must be at least {MIN_UNKNOWN_KID_SECONDS} and max_keys at least 1"));
        }
        Ok(jwks)
    }
}

impl Revocation {
    fn from_json(value: &Value, path: &str) -> Result<Revocation, String> {
        let object = Object::new(value, path, &["token_ids", "subjects", "endpoint", "max_list_age_seconds"])?;
        let mut revocation = Revocation::default();
        object.set(&mut revocation.token_ids, "token_ids", Object::strings)?;
        object.set(&mut revocation.subjects, "subjects", |o, name| {
            o.map(name)?
                .iter()
                .map(|(subject, before)| match before {
                    Value::Null => Ok((subject.clone(), None)),
                    other => other.as_u64().map(|at| (subject.clone(), Some(at))).ok_or_else(|| o.wrong(name, "null or Unix seconds per subject")),
                })
                .collect()
        })?;
        revocation.endpoint = object.nullable("endpoint", |o, name| Endpoint::from_json(o.value(name)?, &o.at(name)))?;
        revocation.max_list_age_seconds = object.nullable("max_list_age_seconds", Object::unsigned)?;
        if revocation.max_list_age_seconds.is_some() && revocation.endpoint.is_none() {
            return Err(format!("{path}: max_list_age_seconds needs an endpoint"));
        }
        Ok(revocation)
    }
}

/// The credential chain must be unambiguous: a token's `iss` names at most one provider, and
/// at most one provider (without an `issuer`) takes the tokens whose `iss` names none. A
/// second provider for the same issuer could never be reached.
/// A Basic token source needs a provider with `basic` to check what it finds, and such a
/// provider a source to take its credentials from.
pub fn check_basic_sources(sources: &[TokenSource], providers: &[Provider]) -> Result<(), String> {
    let source = sources.iter().any(TokenSource::is_basic);
    match (source, providers.iter().any(|p| p.basic.is_some())) {
        (true, false) => Err("a token source takes `Authorization: Basic`, but no provider has `basic` to check it".into()),
        (false, true) => Err("a provider has `basic`, but no token source takes `Authorization: Basic`".into()),
        _ => Ok(()),
    }
}

pub fn check_provider_chain(providers: &[Provider]) -> Result<(), String> {
    for provider in providers {
        // Names go into logs and metric names (ngx_wasm_module traps on a metric name past
        // its max_metric_name_length).
        let name = &provider.name;
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return Err(format!("provider name {name:?}: 1 to 64 letters, digits, `.`, `_` or `-`"));
        }
        if provider.jwks.as_ref().is_some_and(|j| j.discovery) && provider.issuer.is_none() {
            return Err(format!("provider {name:?}: discovery needs an issuer (the configuration's issuer must equal it)"));
        }
        if provider.checks_remotely() && (!provider.keys.is_empty() || provider.jwks.is_some()) {
            return Err(format!("provider {name:?}: a provider whose endpoint vouches for credentials (introspection, basic) has no keys"));
        }
        if provider.introspection.is_some() && provider.basic.is_some() {
            return Err(format!("provider {name:?}: introspection and basic are two providers"));
        }
    }
    // Which provider an opaque token goes to must be unambiguous, and a provider that
    // introspects every token leaves none to the others.
    let introspecting: Vec<&Provider> = providers.iter().filter(|p| p.introspection.is_some()).collect();
    if introspecting.len() > 1 {
        return Err("two providers introspect tokens: which one would an opaque token go to? Keep one".into());
    }
    if providers.iter().filter(|p| p.basic.is_some()).count() > 1 {
        return Err("two providers check Basic credentials: which one would a Basic credential go to? Keep one".into());
    }
    let token_providers = providers.iter().filter(|p| p.basic.is_none()).count();
    if introspecting.iter().any(|p| p.introspection.as_ref().is_some_and(|i| i.all_tokens)) && token_providers > 1 {
        return Err("a provider introspects every token (all_tokens): no other provider could ever take one".into());
    }
    for (at, provider) in providers.iter().enumerate() {
        if provider.name == MTLS_PROVIDER {
            return Err(format!("provider name {MTLS_PROVIDER:?} is reserved for client certificates"));
        }
        if let Some(same) = providers.iter().take(at).find(|p| p.name == provider.name) {
            return Err(format!("two providers are named {:?}", same.name));
        }
    }
    // The issuer chooses among the providers that verify signatures.
    let verifying: Vec<&Provider> = providers.iter().filter(|p| !p.checks_remotely()).collect();
    for (at, provider) in verifying.iter().enumerate() {
        let earlier = verifying.iter().take(at);
        if let Some(same) = earlier.clone().find(|p| p.issuer == provider.issuer) {
            return Err(match &provider.issuer {
                Some(issuer) => format!("providers {:?} and {:?} both have issuer {issuer:?}: the second could never be reached", same.name, provider.name),
                None => format!(
                    "providers {:?} and {:?} both have no issuer (both would take every token whose `iss` names no provider): give one an issuer",
                    same.name, provider.name
                ),
            });
        }
    }
    Ok(())
}

impl Settings {
    /// Reads settings over the defaults: a field left out keeps its default. `path` names
    /// the settings in errors (`settings` in a bundle, `filter` in a policy file).
    pub fn from_json(value: &Value, path: &str) -> Result<Settings, String> {
        let object = Object::new(
            value,
            path,
            &[
                "realm",
                "mode",
                "ignore_patterns",
                "bypass_cors_preflight",
                "actions",
                "token_sources",
                "clock_skew_seconds",
                "max_lifetime_seconds",
                "max_token_bytes",
                "claims",
                "forward",
                "mtls",
                "cache_entries",
                "host",
                "path_parameters",
                "case_insensitive_paths",
                "max_key_trials",
                "rejected_cache_entries",
                "log_allowed_every",
                "shm_kv_zone",
                "login",
                "tenants",
                "mint",
                "chain",
            ],
        )?;
        let mut settings = Settings::default();
        let Settings {
            realm,
            mode,
            ignore_patterns,
            bypass_cors_preflight,
            actions,
            token_sources,
            clock_skew_seconds,
            max_lifetime_seconds,
            max_token_bytes,
            claims,
            forward,
            mtls,
            cache_entries,
            host,
            path_parameters,
            case_insensitive_paths,
            max_key_trials,
            rejected_cache_entries,
            log_allowed_every,
            shm_kv_zone,
            login,
            tenants,
            mint,
            chain,
        } = &mut settings;
        object.set(realm, "realm", Object::string)?;
        object.set(mode, "mode", |o, name| o.choice(name, &[("enforce", Mode::Enforce), ("shadow", Mode::Shadow)]))?;
        object.set(ignore_patterns, "ignore_patterns", Object::strings)?;
        object.set(bypass_cors_preflight, "bypass_cors_preflight", Object::boolean)?;
        object.set(actions, "actions", |o, name| {
            let map = o.map(name)?;
            map.iter().map(|(method, action)| Ok((method.clone(), Object::text(action).ok_or_else(|| o.wrong(name, "strings"))?))).collect()
        })?;
        object.set(token_sources, "token_sources", |o, name| {
            o.array(name)?
                .iter()
                .enumerate()
                .map(|(i, source)| TokenSource::from_json(source, &format!("{}[{i}]", o.at(name))))
                .collect()
        })?;
        object.set(clock_skew_seconds, "clock_skew_seconds", Object::unsigned)?;
        object.set(max_lifetime_seconds, "max_lifetime_seconds", Object::unsigned)?;
        object.set(max_token_bytes, "max_token_bytes", Object::size)?;
        object.set(cache_entries, "cache_entries", Object::size)?;
        object.set(claims, "claims", |o, name| ClaimNames::from_json(o.value(name)?, &o.at(name)))?;
        object.set(forward, "forward", |o, name| Forward::from_json(o.value(name)?, &o.at(name)))?;
        object.set(mtls, "mtls", |o, name| o.nullable(name, |o, name| Mtls::from_json(o.value(name)?, &o.at(name))))?;
        object.set(host, "host", |o, name| {
            o.choice(name, &[("auto", ProxyHost::Auto), ("envoy", ProxyHost::Envoy), ("ngx_wasm_module", ProxyHost::NgxWasmModule)])
        })?;
        object.set(path_parameters, "path_parameters", |o, name| o.choice(name, &[("refuse", PathParameters::Refuse), ("keep", PathParameters::Keep)]))?;
        object.set(case_insensitive_paths, "case_insensitive_paths", Object::boolean)?;
        object.set(max_key_trials, "max_key_trials", Object::size)?;
        object.set(rejected_cache_entries, "rejected_cache_entries", Object::size)?;
        object.set(log_allowed_every, "log_allowed_every", Object::unsigned)?;
        object.set(shm_kv_zone, "shm_kv_zone", |o, name| o.nullable(name, Object::string))?;
        object.set(login, "login", |o, name| o.nullable(name, |o, name| Login::from_json(o.value(name)?, &o.at(name))))?;
        object.set(tenants, "tenants", |o, name| o.nullable(name, |o, name| TenantMapping::from_json(o.value(name)?, &o.at(name))))?;
        object.set(mint, "mint", |o, name| o.nullable(name, |o, name| Mint::from_json(o.value(name)?, &o.at(name))))?;
        object.set(chain, "chain", |o, name| o.choice(name, &[("one_credential", Chain::OneCredential), ("first_success", Chain::FirstSuccess)]))?;
        if shm_kv_zone.as_deref().is_some_and(|zone| zone.is_empty() || zone.contains('/')) {
            return Err(format!("{path}.shm_kv_zone: expected a zone name (without `/`)"));
        }
        Ok(settings)
    }
}

impl TokenSource {
    /// `Authorization: Basic`: credentials the provider with `basic` checks, never a token.
    pub fn is_basic(&self) -> bool {
        matches!(self, TokenSource::Header { scheme: Some(scheme), .. } if scheme.eq_ignore_ascii_case("basic"))
    }

    fn from_json(value: &Value, path: &str) -> Result<TokenSource, String> {
        let object = Object::new(value, path, &["header", "query", "cookie"])?;
        let (kind, inner) = match object.map.iter().next() {
            Some(entry) if object.map.len() == 1 => entry,
            _ => return Err(format!("{path}: expected one of `header`, `query` or `cookie`")),
        };
        let path = format!("{path}.{kind}");
        if kind == "header" {
            let header = Object::new(inner, &path, &["name", "scheme"])?;
            let name = header.required("name", Object::string)?;
            return Ok(TokenSource::Header { name, scheme: header.nullable("scheme", Object::string)? });
        }
        let name = Object::new(inner, &path, &["name"])?.required("name", Object::string)?;
        Ok(if kind == "query" { TokenSource::Query { name } } else { TokenSource::Cookie { name } })
    }
}

impl ClaimNames {
    fn from_json(value: &Value, path: &str) -> Result<ClaimNames, String> {
        let object = Object::new(value, path, &["subject", "user_id", "roles", "organizations", "namespaces", "scopes"])?;
        let mut names = ClaimNames::default();
        let ClaimNames { subject, user_id, roles, organizations, namespaces, scopes } = &mut names;
        for (field, name) in
            [(subject, "subject"), (user_id, "user_id"), (roles, "roles"), (organizations, "organizations"), (namespaces, "namespaces"), (scopes, "scopes")]
        {
            object.set(field, name, Object::string)?;
        }
        Ok(names)
    }
}

impl Forward {
    fn from_json(value: &Value, path: &str) -> Result<Forward, String> {
        let object = Object::new(value, path, &["strip_token", "user_id", "username", "roles", "organizations", "namespaces", "policy", "provider", "tenant"])?;
        let mut forward = Forward::default();
        let Forward { strip_token, user_id, username, roles, organizations, namespaces, policy, provider, tenant } = &mut forward;
        object.set(strip_token, "strip_token", Object::boolean)?;
        // A header name, or null for "do not send this header".
        for (field, name) in [
            (user_id, "user_id"),
            (username, "username"),
            (roles, "roles"),
            (organizations, "organizations"),
            (namespaces, "namespaces"),
            (policy, "policy"),
            (provider, "provider"),
            (tenant, "tenant"),
        ] {
            object.set(field, name, |o, name| o.nullable(name, Object::string))?;
        }
        Ok(forward)
    }
}

impl Mtls {
    fn from_json(value: &Value, path: &str) -> Result<Mtls, String> {
        let object = Object::new(value, path, &["identity", "roles"])?;
        let identity = object.required("identity", |o, name| {
            o.choice(name, &[("uri_san", MtlsIdentity::UriSan), ("dns_san", MtlsIdentity::DnsSan), ("subject_cn", MtlsIdentity::SubjectCn)])
        })?;
        let mut roles = BTreeMap::new();
        object.set(&mut roles, "roles", |o, name| {
            let expected = "lists of strings";
            let lists = |list: &Value| o.texts(list.as_array().ok_or_else(|| o.wrong(name, expected))?, name, expected);
            o.map(name)?.iter().map(|(identity, list)| Ok((identity.clone(), lists(list)?))).collect()
        })?;
        Ok(Mtls { identity, roles })
    }
}

/// A JSON object read field by field: its fields are checked against the known names once,
/// and each read names the field's path when the value has the wrong type.
struct Object<'a> {
    path: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Object<'a> {
    fn new(value: &'a Value, path: &'a str, known: &[&str]) -> Result<Object<'a>, String> {
        let map = value.as_object().ok_or_else(|| format!("{path}: expected an object"))?;
        if let Some(unknown) = map.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(format!("{path}: unknown field `{unknown}`, expected one of {}", known.join(", ")));
        }
        Ok(Object { path, map })
    }

    fn at(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    fn wrong(&self, name: &str, expected: &str) -> String {
        format!("{}: expected {expected}", self.at(name))
    }

    /// A required field.
    fn required<T>(&self, name: &str, read: impl Fn(&Self, &str) -> Result<T, String>) -> Result<T, String> {
        match self.map.get(name) {
            None => Err(format!("{}: missing field `{name}`", self.path)),
            Some(_) => read(self, name),
        }
    }

    /// A field that may be left out (the target keeps its default).
    fn set<T>(&self, target: &mut T, name: &str, read: impl Fn(&Self, &str) -> Result<T, String>) -> Result<(), String> {
        if self.map.contains_key(name) {
            *target = read(self, name)?;
        }
        Ok(())
    }

    /// A field that is `None` when null or left out.
    fn nullable<T>(&self, name: &str, read: impl Fn(&Self, &str) -> Result<T, String>) -> Result<Option<T>, String> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => read(self, name).map(Some),
        }
    }

    fn value(&self, name: &str) -> Result<&'a Value, String> {
        self.map.get(name).ok_or_else(|| format!("{}: missing field `{name}`", self.path))
    }

    fn text(value: &Value) -> Option<String> {
        value.as_str().map(str::to_string)
    }

    fn string(&self, name: &str) -> Result<String, String> {
        self.map.get(name).and_then(Object::text).ok_or_else(|| self.wrong(name, "a string"))
    }

    /// One of the named values: `choices` pairs each spelling with its value.
    fn choice<T: Copy>(&self, name: &str, choices: &[(&str, T)]) -> Result<T, String> {
        let text = self.string(name)?;
        choices.iter().find(|(spelling, _)| *spelling == text).map(|(_, value)| *value).ok_or_else(|| {
            let spellings: Vec<String> = choices.iter().map(|(spelling, _)| format!("`{spelling}`")).collect();
            let expected = match spellings.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            };
            self.wrong(name, &expected)
        })
    }

    fn boolean(&self, name: &str) -> Result<bool, String> {
        self.map.get(name).and_then(Value::as_bool).ok_or_else(|| self.wrong(name, "true or false"))
    }

    fn unsigned(&self, name: &str) -> Result<u64, String> {
        self.map.get(name).and_then(Value::as_u64).ok_or_else(|| self.wrong(name, "a whole number, 0 or more"))
    }

    fn size(&self, name: &str) -> Result<usize, String> {
        usize::try_from(self.unsigned(name)?).map_err(|_| self.wrong(name, "a smaller number"))
    }

    fn array(&self, name: &str) -> Result<&'a Vec<Value>, String> {
        self.map.get(name).and_then(Value::as_array).ok_or_else(|| self.wrong(name, "a list"))
    }

    fn map(&self, name: &str) -> Result<&'a Map<String, Value>, String> {
        self.map.get(name).and_then(Value::as_object).ok_or_else(|| self.wrong(name, "an object"))
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, String> {
        self.texts(self.array(name)?, name, "a list of strings")
    }

    /// The items of `list`, found in field `name`, as strings; an error saying `expected`
    /// when one is not.
    fn texts(&self, list: &[Value], name: &str, expected: &str) -> Result<Vec<String>, String> {
        list.iter().map(|item| Object::text(item).ok_or_else(|| self.wrong(name, expected))).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn every_field_changed() -> Bundle {
        Bundle {
            format: BUNDLE_FORMAT,
            table: "UFdEVA==".into(),
            table_hash: "ab".into(),
            settings: Settings {
                realm: "shop".into(),
                mode: Mode::Shadow,
                ignore_patterns: vec!["^/health$".into()],
                bypass_cors_preflight: false,
                actions: [("GET".to_string(), "read".to_string())].into(),
                token_sources: vec![
                    TokenSource::Header { name: "x-token".into(), scheme: None },
                    TokenSource::Query { name: "access_token".into() },
                    TokenSource::Cookie { name: "session".into() },
                    // For the provider with `basic` (check_basic_sources).
                    TokenSource::Header { name: "authorization".into(), scheme: Some("Basic".into()) },
                ],
                clock_skew_seconds: 5,
                max_lifetime_seconds: 600,
                max_token_bytes: 4096,
                claims: ClaimNames {
                    subject: "sub".into(),
                    user_id: "uid".into(),
                    roles: "groups".into(),
                    organizations: "orgs".into(),
                    namespaces: "ns".into(),
                    scopes: "scp".into(),
                },
                forward: Forward {
                    strip_token: false,
                    user_id: None,
                    username: Some("x-user".into()),
                    roles: None,
                    organizations: None,
                    namespaces: None,
                    policy: Some("x-policy".into()),
                    provider: None,
                    tenant: Some("x-tenant".into()),
                },
                mtls: Some(Mtls { identity: MtlsIdentity::SubjectCn, roles: [("billing".to_string(), vec!["service".to_string()])].into() }),
                cache_entries: 7,
                host: ProxyHost::NgxWasmModule,
                path_parameters: PathParameters::Keep,
                case_insensitive_paths: true,
                max_key_trials: 1,
                rejected_cache_entries: 3,
                log_allowed_every: 10,
                shm_kv_zone: Some("policy_filter".into()),
                chain: Chain::FirstSuccess,
                mint: Some(Mint {
                    kid: "internal-1".into(),
                    alg: MintAlgorithm::ES256,
                    private_key: "AAAA".into(),
                    issuer: "https://gateway.internal".into(),
                    audiences: vec!["director".into()],
                    ttl_seconds: 120,
                    header: "x-id-token".into(),
                }),
                tenants: Some(TenantMapping {
                    id_claims: vec!["email".into()],
                    entries: [("admin@kyma.cx".to_string(), TenantEntry { tenant: "edf2e0c0".into(), scopes: vec!["runtime:admin".into()] })].into(),
                    required: true,
                    endpoint: Some(Endpoint::new("10.0.0.7:8080", "tenants.local", "/tenant-mapping", "http")),
                    cache_seconds: 60,
                    negative_seconds: 5,
                }),
                login: Some(Login {
                    url: "https://login.example/sso".into(),
                    return_parameter: "next".into(),
                    paths: vec!["^/app(?:/.*)?$".into()],
                    return_origins: vec!["https://app.example".into()],
                }),
            },
            providers: vec![Provider {
                name: "corp".into(),
                issuer: Some("https://id.example".into()),
                audiences: vec!["api".into()],
                keys: vec![json!({"kty": "oct", "kid": "k", "alg": "HS256", "k": "AAAA"})],
                may_assert: MayAssert::Only([("roles".to_string(), vec!["reader".to_string()])].into()),
                jwks: Some(RemoteJwks {
                    endpoint: Endpoint { timeout_ms: 900, max_bytes: 4096, refresh_seconds: 60, min_refresh_seconds: 5, max_refresh_seconds: 600, retry_seconds: 2, ..Endpoint::new("idp", "id.example", "/certs", "https") },
                    discovery: true,
                    algorithms: vec!["PS256".into()],
                    unknown_kid_seconds: 9,
                    max_keys: 4,
                }),
                revocation: Revocation {
                    token_ids: vec!["t-1".into()],
                    subjects: [("alice".to_string(), Some(1_800_000_000)), ("bob".to_string(), None)].into(),
                    endpoint: Some(Endpoint::new("10.0.0.5:8080", "revocations.local", "/revoked", "http")),
                    max_list_age_seconds: Some(120),
                },
                introspection: None,
                basic: None,
            }, Provider {
                name: "as".into(),
                issuer: Some("https://as.example".into()),
                audiences: vec![],
                keys: vec![],
                may_assert: MayAssert::Any,
                jwks: None,
                revocation: Revocation::default(),
                introspection: Some(Introspection {
                    endpoint: Endpoint::new("hydra", "hydra.example", "/oauth2/introspect", "https"),
                    client_id: "gateway".into(),
                    client_secret: "s3cret".into(),
                    client_auth: ClientAuth::Post,
                    cache_seconds: 120,
                    negative_seconds: 5,
                    all_tokens: false,
                }),
                basic: None,
            }, Provider {
                name: "cadi".into(),
                issuer: None,
                audiences: vec![],
                keys: vec![],
                may_assert: MayAssert::Any,
                jwks: None,
                revocation: Revocation::default(),
                introspection: None,
                basic: Some(BasicAuth { endpoint: Endpoint::new("aaf:8100", "aaf.onap", "/authz/perms/user", "https"), cache_seconds: 60, negative_seconds: 3 }),
            }],
        }
    }

    /// [`every_field_changed`] with the default settings, less the provider with `basic`
    /// (the default token sources take no Basic credentials: check_basic_sources).
    fn with_default_settings() -> Bundle {
        let full = every_field_changed();
        Bundle { settings: Settings::default(), providers: full.providers.into_iter().filter(|p| p.basic.is_none()).collect(), ..every_field_changed() }
    }

    #[test]
    fn a_basic_source_and_a_provider_with_basic_come_together() {
        let full = every_field_changed();
        assert_eq!(check_basic_sources(&full.settings.token_sources, &full.providers), Ok(()));
        let without_source = Bundle { settings: Settings::default(), ..every_field_changed() };
        assert!(read(&serde_json::to_value(&without_source).unwrap()).unwrap_err().contains("no token source takes `Authorization: Basic`"));
        let without_provider = with_default_settings().providers;
        assert!(check_basic_sources(&full.settings.token_sources, &without_provider).unwrap_err().contains("no provider has `basic`"));
    }

    fn read(value: &Value) -> Result<Bundle, String> {
        Bundle::from_json(value)
    }

    #[test]
    fn what_the_compiler_writes_reads_back_the_same() {
        for bundle in [every_field_changed(), with_default_settings()] {
            assert_eq!(read(&serde_json::to_value(&bundle).unwrap()), Ok(bundle));
        }
    }

    #[test]
    fn settings_left_out_keep_their_defaults_and_null_turns_a_header_off() {
        let settings = Settings::from_json(&json!({"realm": "shop", "forward": {"roles": null}}), "filter").unwrap();
        assert_eq!(settings.realm, "shop");
        assert_eq!(settings.forward.roles, None);
        assert_eq!(settings.forward.username, Forward::default().username);
        assert_eq!(Settings { realm: "api".into(), forward: Forward::default(), ..settings }, Settings::default());
        assert_eq!(Settings::from_json(&json!({}), "filter"), Ok(Settings::default()));
    }

    #[test]
    fn mistakes_are_named_by_their_path() {
        let bundle = serde_json::to_value(every_field_changed()).unwrap();
        let error = |edit: &dyn Fn(&mut Value)| {
            let mut value = bundle.clone();
            edit(&mut value);
            read(&value).unwrap_err()
        };
        assert!(error(&|v| v["surprise"] = json!(1)).starts_with("bundle: unknown field `surprise`"));
        assert!(error(&|v| v["settings"]["forward"]["usr"] = json!("x")).starts_with("settings.forward: unknown field `usr`"));
        assert_eq!(error(&|v| v["settings"]["realm"] = Value::Null), "settings.realm: expected a string");
        assert_eq!(error(&|v| v["settings"]["mode"] = json!("audit")), "settings.mode: expected `enforce` or `shadow`");
        assert_eq!(error(&|v| v["settings"]["max_token_bytes"] = json!(-1)), "settings.max_token_bytes: expected a whole number, 0 or more");
        assert_eq!(error(&|v| v["settings"]["clock_skew_seconds"] = json!(1.5)), "settings.clock_skew_seconds: expected a whole number, 0 or more");
        assert_eq!(error(&|v| v["settings"]["actions"]["GET"] = json!(1)), "settings.actions: expected strings");
        assert_eq!(
            error(&|v| v["settings"]["token_sources"][1] = json!({"query": {}})),
            "settings.token_sources[1].query: missing field `name`"
        );
        assert_eq!(
            error(&|v| v["settings"]["token_sources"][0] = json!({"query": {"name": "a"}, "cookie": {"name": "b"}})),
            "settings.token_sources[0]: expected one of `header`, `query` or `cookie`"
        );
        assert_eq!(error(&|v| v["settings"]["mtls"]["roles"]["billing"] = json!("service")), "settings.mtls.roles: expected lists of strings");
        assert_eq!(error(&|v| v["providers"][0]["audiences"] = json!("api")), "providers[0].audiences: expected a list");
        assert_eq!(error(&|v| v["format"] = json!(1u64 << 40)), "bundle.format: expected a format number");
        assert_eq!(
            error(&|v| {
                v.as_object_mut().unwrap().remove("table_hash");
            }),
            "bundle: missing field `table_hash`"
        );
        assert_eq!(read(&json!([])).unwrap_err(), "bundle: expected an object");
    }

    #[test]
    fn the_compact_form_reads_back_as_the_same_bundle_in_fewer_bytes() {
        let mut bare = with_default_settings();
        for provider in &mut bare.providers {
            provider.revocation = Revocation::default();
        }
        for bundle in [every_field_changed(), bare] {
            let compact = bundle.to_compact_json();
            assert_eq!(read(&compact), Ok(bundle.clone()));
            assert!(compact.to_string().len() < serde_json::to_string(&bundle).unwrap().len());
        }
        let defaults = Bundle { settings: Settings::default(), ..every_field_changed() }.to_compact_json();
        assert_eq!(defaults["settings"], json!({}), "nothing but defaults: nothing written");
    }

    #[test]
    fn freshness_follows_max_age_within_the_bounds() {
        let endpoint = Endpoint { refresh_seconds: 300, min_refresh_seconds: 30, max_refresh_seconds: 3600, ..Endpoint::new("idp", "id", "/certs", "https") };
        assert_eq!(endpoint.freshness(None), 300);
        assert_eq!(endpoint.freshness(Some("public, max-age=600, must-revalidate")), 600);
        assert_eq!(endpoint.freshness(Some("max-age=5")), 30, "held to the lower bound");
        assert_eq!(endpoint.freshness(Some("max-age=999999")), 3600, "held to the upper bound");
        assert_eq!(endpoint.freshness(Some("no-cache")), 300);
        assert_eq!(endpoint.freshness(Some("max-age=junk")), 300);
    }

    #[test]
    fn a_discovered_jwks_uri_must_be_on_the_configured_upstream() {
        let configuration = Endpoint::new("idp", "idp.example", "/realms/a/.well-known/openid-configuration", "https");
        assert_eq!(same_origin_path(&configuration, "https://idp.example/realms/a/certs"), Ok("/realms/a/certs".into()));
        assert_eq!(same_origin_path(&configuration, "https://IDP.example:443/certs?v=1"), Ok("/certs?v=1".into()));
        for elsewhere in ["https://evil.example/certs", "http://idp.example/certs", "https://idp.example:8443/certs", "https://idp.example.evil/certs", "/certs"] {
            assert!(same_origin_path(&configuration, elsewhere).is_err(), "{elsewhere}");
        }
        assert!(same_origin_path(&configuration, "https://idp.example/certs#x").is_err());
        let with_port = Endpoint::new("idp", "idp.example:443", "/.well-known/openid-configuration", "https");
        assert_eq!(same_origin_path(&with_port, "https://idp.example/certs"), Ok("/certs".into()), "the default port on either side");
    }

    #[test]
    fn remote_endpoints_and_revocation_lists_are_checked() {
        let mut value = serde_json::to_value(every_field_changed()).unwrap();
        value["providers"][0]["jwks"]["endpoint"]["scheme"] = json!("ftp");
        assert_eq!(read(&value).unwrap_err(), "providers[0].jwks.endpoint.scheme: expected `https` or `http`");
        value["providers"][0]["jwks"]["endpoint"]["scheme"] = json!("https");
        value["providers"][0]["jwks"]["endpoint"]["path"] = json!("certs");
        assert!(read(&value).unwrap_err().contains("a path starting with `/`"));
        value["providers"][0]["jwks"]["endpoint"]["path"] = json!("/certs");
        value["providers"][0]["revocation"]["subjects"]["carol"] = json!("yesterday");
        assert!(read(&value).unwrap_err().starts_with("providers[0].revocation.subjects: expected null or Unix seconds"));
        value["providers"][0].as_object_mut().unwrap().remove("revocation");
        value["providers"][0].as_object_mut().unwrap().remove("jwks");
        let provider = &read(&value).unwrap().providers[0];
        assert_eq!((provider.jwks.is_none(), provider.revocation.is_empty()), (true, true), "both may be left out");

        let list = Revocation::parse_list(br#"{"token_ids": ["a"], "subjects": {"bob": null, "eve": 17}}"#).unwrap();
        assert_eq!(list.subjects, [("bob".to_string(), None), ("eve".to_string(), Some(17))].into());
        assert!(Revocation::parse_list(br#"{"token_ids": ["a"], "token_ids": []}"#).unwrap_err().contains("duplicate"));
        assert!(Revocation::parse_list(br#"{"jti": ["a"]}"#).unwrap_err().contains("unknown field `jti`"));
    }

    #[test]
    fn a_bundle_with_a_duplicate_key_is_refused() {
        let text = serde_json::to_string(&every_field_changed()).unwrap();
        assert_eq!(Bundle::parse(text.as_bytes()), Ok(every_field_changed()));
        let twice = text.replacen(r#""realm":"shop""#, r#""realm":"shop","realm":"api""#, 1);
        assert!(Bundle::parse(twice.as_bytes()).unwrap_err().contains("duplicate key \"realm\""));
    }

    #[test]
    fn may_assert_is_any_or_only_and_never_left_out() {
        let mut value = serde_json::to_value(every_field_changed()).unwrap();
        assert_eq!(value["providers"][0]["may_assert"], json!({"only": {"roles": ["reader"]}}));
        value["providers"][0]["may_assert"] = json!("any");
        assert_eq!(read(&value).unwrap().providers[0].may_assert, MayAssert::Any);
        value["providers"][0]["may_assert"] = json!("all");
        assert!(read(&value).unwrap_err().starts_with("providers[0].may_assert: expected `any`"));
        value["providers"][0].as_object_mut().unwrap().remove("may_assert");
        assert_eq!(read(&value).unwrap_err(), "providers[0]: missing field `may_assert`");
    }

    #[test]
    fn a_chain_with_an_unreachable_provider_is_refused() {
        let one = Provider { jwks: None, ..every_field_changed().providers.remove(0) };
        let named = |name: &str, issuer: Option<&str>| Provider { name: name.into(), issuer: issuer.map(str::to_string), ..one.clone() };
        assert_eq!(check_provider_chain(&[named("a", Some("x")), named("b", Some("y")), named("c", None)]), Ok(()));
        assert!(check_provider_chain(&[named("a", Some("x")), named("b", Some("x"))]).unwrap_err().contains("could never be reached"));
        assert!(check_provider_chain(&[named("a", None), named("b", None)]).unwrap_err().contains("both have no issuer"));
        assert!(check_provider_chain(&[named("a", Some("x")), named("a", Some("y"))]).unwrap_err().contains("two providers are named"));
        assert!(check_provider_chain(&[named("mtls", Some("x"))]).unwrap_err().contains("reserved"));
        for bad in ["", "a b", "p/q", &"x".repeat(65)] {
            assert!(check_provider_chain(&[named(bad, Some("x"))]).unwrap_err().contains("1 to 64 letters"), "{bad:?}");
        }
        let discovering = Provider { issuer: None, ..every_field_changed().providers.remove(0) };
        assert!(check_provider_chain(&[discovering]).unwrap_err().contains("discovery needs an issuer"));
    }

    #[test]
    fn an_issuer_or_mtls_left_out_or_null_is_none() {
        let mut value = serde_json::to_value(every_field_changed()).unwrap();
        value["providers"][0].as_object_mut().unwrap().remove("issuer");
        value["providers"][0]["jwks"]["discovery"] = json!(false);
        value["settings"]["mtls"] = Value::Null;
        let bundle = read(&value).unwrap();
        assert_eq!((bundle.providers[0].issuer.as_deref(), bundle.settings.mtls), (None, None));
    }
}
