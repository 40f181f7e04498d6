//! The plugin configuration: what `policy-compiler compile` writes and the filter reads in
//! `on_configure`. Every field has a default, so a policy file states only what differs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The bundle format this crate reads and writes.
pub const BUNDLE_FORMAT: u32 = 1;

/// The RSA modulus sizes, in bits, that the compiler writes and the filter verifies.
pub const MIN_RSA_BITS: usize = 2048;
pub const MAX_RSA_BITS: usize = 8192;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    /// The `iss` a token must carry; `None` accepts any issuer (Microkubes tokens).
    pub issuer: Option<String>,
    /// A token's `aud` must name one of these; empty means no audience check.
    pub audiences: Vec<String>,
    /// JSON Web Keys, each with `kid` and `alg` (the one algorithm it may verify).
    pub keys: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Denied requests are answered 401/403.
    #[default]
    Enforce,
    /// Decisions are logged and counted, and every request goes through.
    Shadow,
}

/// Where a token may come from. The first source that has one is used; two sources (or two
/// `Authorization` headers) carrying credentials is a 401.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenSource {
    /// A header; with a scheme (`Bearer`), the value must start with it (case-insensitive).
    Header { name: String, scheme: Option<String> },
    Query { name: String },
    Cookie { name: String },
}

/// Claim names, for tokens that spell them differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
        }
    }
}

/// Which part of a verified client certificate names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MtlsIdentity {
    UriSan,
    SubjectCn,
}

/// The mTLS credential: used when a request has no token and the proxy verified a client
/// certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mtls {
    pub identity: MtlsIdentity,
    /// Roles for each identity (the subject), e.g. a SPIFFE id to `["service"]`.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The realm in `WWW-Authenticate`.
    pub realm: String,
    pub mode: Mode,
    /// Anchored regexes on the normalised path; matching requests skip authentication and
    /// authorisation (Microkubes `ignorePatterns`, anchored).
    pub ignore_patterns: Vec<String>,
    /// Let CORS preflights (OPTIONS with `Origin` and `Access-Control-Request-Method`) through.
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
            bypass_cors_preflight: true,
            actions: actions.iter().map(|(m, a)| ((*m).to_string(), (*a).to_string())).collect(),
            token_sources: vec![TokenSource::Header { name: "authorization".into(), scheme: Some("Bearer".into()) }],
            clock_skew_seconds: 60,
            max_lifetime_seconds: 24 * 3600,
            max_token_bytes: 8 * 1024,
            claims: ClaimNames::default(),
            forward: Forward::default(),
            mtls: None,
            cache_entries: 256,
        }
    }
}
