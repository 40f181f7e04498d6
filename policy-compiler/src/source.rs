//! Reading a policy file: the Microkubes configuration exactly as users have it (a whole
//! `config.json` with its `security` section, only `acl`, or only the policy list; the Go form
//! with `conditions` and the Python form with top-level `roles`, `organizations`,
//! `namespaces`), in JSON or YAML, plus our `filter` section for everything Microkubes does not
//! say (issuers, audiences, keys, token sources, headers).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use decision_table::strict_json::StrictValue;

use crate::diagnostics::{Problem, Source};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A policy as written, before compilation. Both Microkubes forms end up here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePolicy {
    pub id: String,
    pub description: String,
    pub subjects: Vec<String>,
    pub resources: Vec<String>,
    pub actions: Vec<String>,
    pub effect: Effect,
    /// By attribute key; a key holds one condition, as in Ladon.
    pub conditions: BTreeMap<String, SourceCondition>,
    /// The providers whose callers it is for (`providers`), compiled into a condition on the
    /// `provider` attribute; empty: any provider's.
    pub providers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceCondition {
    /// RolesCondition, ScopesCondition, OrganizationsCondition, NamespacesCondition.
    AnyOf { kind: String, values: Vec<String> },
    /// A required-scopes rule: holds when no value matches (compiled into a deny).
    NoneOf { values: Vec<String> },
    Owner,
    EqualsSubject,
    StringEqual(String),
    StringMatch(String),
    Cidr(Vec<String>),
    Boolean(bool),
}

/// The Compass-style rule: these resources and actions need one of these scopes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredScopes {
    pub resources: Vec<String>,
    #[serde(default = "all_actions")]
    pub actions: Vec<String>,
    pub scopes: Vec<String>,
}

fn all_actions() -> Vec<String> {
    vec!["<.*>".to_string()]
}

/// Where a key comes from (paths are relative to the policy file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySource {
    /// A JWKS document (`{"keys": [...]}`) or a single JWK.
    pub jwks: Option<PathBuf>,
    /// A PEM public key (SPKI `PUBLIC KEY`, or PKCS#1 `RSA PUBLIC KEY`).
    pub pem: Option<PathBuf>,
    /// A file holding an HMAC secret (raw bytes; one trailing newline is dropped).
    pub hmac_secret_file: Option<PathBuf>,
    /// The one algorithm this key may verify (required for RSA and HMAC keys).
    pub alg: Option<String>,
    pub kid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSource {
    pub name: String,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub keys: Vec<KeySource>,
    /// What its tokens may assert; left out, see [`crate::compile::providers`].
    #[serde(default)]
    pub may_assert: Option<MayAssertSource>,
    /// The provider's JWKS document (`https://idp.example/.../certs`), fetched by the module
    /// at run time beside `keys`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// How it is fetched; every field has a default.
    #[serde(default)]
    pub jwks: Option<JwksSource>,
    #[serde(default)]
    pub revocation: Option<RevocationSource>,
    /// OAuth2 token introspection (RFC 7662) for opaque tokens.
    #[serde(default)]
    pub introspection: Option<IntrospectionSource>,
    /// `Authorization: Basic` credentials, checked by an endpoint.
    #[serde(default)]
    pub basic: Option<BasicSource>,
}

/// A provider's `basic`: the endpoint that checks Basic credentials (it is sent the client's
/// `Authorization: Basic` and answers 200 for a known user, 401 or 403 for wrong ones).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicSource {
    pub uri: String,
    #[serde(default)]
    pub cache_seconds: Option<u64>,
    #[serde(default)]
    pub negative_seconds: Option<u64>,
    #[serde(default)]
    pub fetch: FetchSource,
}

/// A provider's `introspection`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionSource {
    /// The introspection endpoint (`https://hydra.example/oauth2/introspect`).
    pub uri: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// `basic` (default) or `post`.
    #[serde(default)]
    pub client_auth: Option<String>,
    #[serde(default)]
    pub cache_seconds: Option<u64>,
    #[serde(default)]
    pub negative_seconds: Option<u64>,
    #[serde(default)]
    pub all_tokens: Option<bool>,
    /// Upstream, timeout and size, as for any fetched document.
    #[serde(default)]
    pub fetch: FetchSource,
}

/// How a document is fetched (`jwks`, and the revocation list's settings).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FetchSource {
    /// Envoy: the cluster that reaches the endpoint; NGINX/Kong: its `host:port`. Default:
    /// the URI's `host:port`.
    #[serde(default)]
    pub upstream: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub max_bytes: Option<usize>,
    #[serde(default)]
    pub refresh_seconds: Option<u64>,
    #[serde(default)]
    pub min_refresh_seconds: Option<u64>,
    #[serde(default)]
    pub max_refresh_seconds: Option<u64>,
    #[serde(default)]
    pub retry_seconds: Option<u64>,
}

/// A provider's `jwks` settings: the fetch settings and those of a key set, side by side in
/// one object. Read by hand: serde's `flatten` does not work with `deny_unknown_fields`, and
/// each half still refuses a field it does not know.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JwksSource {
    pub fetch: FetchSource,
    /// Find the JWKS through the issuer's OpenID Connect configuration
    /// (`ISSUER/.well-known/openid-configuration`) instead of a `jwks_uri`.
    pub discovery: Option<bool>,
    /// The algorithms a key without `alg` verifies (RSA keys: `RS256` when none is listed).
    pub algorithms: Vec<String>,
    pub unknown_kid_seconds: Option<u64>,
    pub max_keys: Option<usize>,
}

/// The key-set half of `jwks`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySetSettings {
    #[serde(default)]
    discovery: Option<bool>,
    #[serde(default)]
    algorithms: Vec<String>,
    #[serde(default)]
    unknown_kid_seconds: Option<u64>,
    #[serde(default)]
    max_keys: Option<usize>,
}

const KEY_SET_FIELDS: [&str; 4] = ["discovery", "algorithms", "unknown_kid_seconds", "max_keys"];

impl<'de> Deserialize<'de> for JwksSource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut fetch = Map::<String, Value>::deserialize(deserializer)?;
        let key_set: Map<String, Value> = KEY_SET_FIELDS.iter().filter_map(|name| fetch.remove_entry(*name)).collect();
        let key_set: KeySetSettings = serde_json::from_value(Value::Object(key_set)).map_err(D::Error::custom)?;
        let fetch: FetchSource = serde_json::from_value(Value::Object(fetch))
            .map_err(|e| D::Error::custom(format!("{e} (or {})", KEY_SET_FIELDS.join(", "))))?;
        let KeySetSettings { discovery, algorithms, unknown_kid_seconds, max_keys } = key_set;
        Ok(JwksSource { fetch, discovery, algorithms, unknown_kid_seconds, max_keys })
    }
}

/// A provider's `revocation`: revoked token ids and subjects, and a list fetched at run time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RevocationSource {
    #[serde(default)]
    pub token_ids: Vec<String>,
    /// Subject to `null` (every token) or the Unix time before which its tokens are revoked.
    #[serde(default)]
    pub subjects: BTreeMap<String, Option<u64>>,
    /// A revocation list document (README.md, "Revocation"), fetched at run time.
    #[serde(default)]
    pub list_uri: Option<String>,
    #[serde(default)]
    pub list: Option<FetchSource>,
    /// Refuse the provider's tokens while the fetched list is older than this (or missing).
    #[serde(default)]
    pub max_list_age_seconds: Option<u64>,
}

/// `"any"`, or the attributes a provider may assert with the values (condition regexes, as in
/// `RolesCondition`) each may take: `{"roles": ["partner-.*"], "subject": ["svc-.*"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum MayAssertSource {
    Any(String),
    Only(BTreeMap<String, Vec<String>>),
}

/// The Microkubes `keysDir` provider's settings (`filter.keys_dir`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysDirSource {
    /// The one algorithm every key in the folder verifies.
    #[serde(default = "rs256")]
    pub algorithm: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub may_assert: Option<MayAssertSource>,
}

impl Default for KeysDirSource {
    fn default() -> Self {
        KeysDirSource { algorithm: rs256(), audiences: Vec::new(), may_assert: None }
    }
}

fn rs256() -> String {
    "RS256".into()
}

/// Everything a policy file says.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    pub source: Source,
    pub dir: PathBuf,
    pub policies: Vec<SourcePolicy>,
    pub ignore_patterns: Vec<String>,
    pub keys_dir: Option<PathBuf>,
    /// The `filter` section without `providers`, `required_scopes`, `keys_dir`, `keys_dir_algorithm`.
    pub settings: Value,
    pub providers: Vec<ProviderSource>,
    pub required_scopes: Vec<RequiredScopes>,
    /// `filter.keys_dir` (or the older `filter.keys_dir_algorithm`).
    pub keys_dir_provider: KeysDirSource,
    /// Problems that do not stop compilation (unknown fields, ...).
    pub warnings: Vec<Problem>,
}

pub fn read(path: &Path) -> Result<PolicyFile, Vec<Problem>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Problem::error("io", format!("cannot read {}: {e}", path.display()))])?;
    let source = Source::new(path, text);
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(source, dir)
}

pub fn parse(source: Source, dir: PathBuf) -> Result<PolicyFile, Vec<Problem>> {
    let document = parse_document(&source)?;
    let mut reader = Reader { source: &source, problems: Vec::new(), warnings: Vec::new() };
    let file = reader.file(&document, dir);
    if reader.problems.is_empty() {
        let mut file = file;
        file.warnings = reader.warnings;
        Ok(file)
    } else {
        Err(reader.problems)
    }
}

/// The file as a JSON value: by its extension (`.json` is JSON, `.yaml`/`.yml` YAML, which a
/// JSON-looking flow mapping also is), else JSON when it starts like JSON. A key repeated in
/// any mapping is an error at its line and column (a policy with `effect: allow` then
/// `effect: deny` would otherwise be whichever the parser keeps).
fn parse_document(source: &Source) -> Result<Value, Vec<Problem>> {
    let text = source.text();
    let extension = Path::new(source.name()).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let json = match extension.as_deref() {
        Some("json") => true,
        Some("yaml" | "yml") => false,
        _ => text.trim_start().starts_with('{') || text.trim_start().starts_with('['),
    };
    if json {
        serde_json::from_str::<StrictValue>(text).map(|v| v.0).map_err(|e| {
            let offset = source.offset_of(e.line(), e.column());
            vec![Problem::error("syntax", format!("not valid JSON: {e}")).at(source, offset, 1, "here")]
        })
    } else {
        serde_yaml_ng::from_str::<StrictValue>(text).map(|v| v.0).map_err(|e| {
            let problem = Problem::error("syntax", format!("not valid YAML: {e}"));
            vec![match e.location() {
                Some(at) => problem.at(source, at.index(), 1, "here"),
                None => problem.in_file(source),
            }]
        })
    }
}

struct Reader<'s> {
    source: &'s Source,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Reader<'_> {
    fn error(&mut self, code: &str, message: String, near: Option<(&str, &str)>, help: Option<&str>) {
        let mut problem = Problem::error(code, message);
        if let Some(help) = help {
            problem = problem.help(help);
        }
        self.problems.push(self.place(problem, near));
    }

    fn warn(&mut self, code: &str, message: String, near: Option<(&str, &str)>) {
        let problem = self.place(Problem::warning(code, message), near);
        self.warnings.push(problem);
    }

    fn note(&mut self, code: &str, message: String, near: Option<(&str, &str)>) {
        let problem = self.place(Problem::note(code, message), near);
        self.warnings.push(problem);
    }

    /// What becomes of each part of a Microkubes `security` section beside the policies.
    fn security_section(&mut self, security: &Map<String, Value>) {
        for key in security.keys() {
            let near = Some((key.as_str(), key.as_str()));
            match key.as_str() {
                "acl" | "keysDir" | "ignorePatterns" => {}
                "jwt" => self.note(
                    "microkubes-jwt",
                    "security.jwt: JWTs are verified with the keysDir keys (and filter.providers); its name, description and tokenUrl (where clients get tokens) are not used by the filter".into(),
                    near,
                ),
                "saml" => self.warn(
                    "microkubes-saml",
                    "security.saml is ignored: the filter is no SAML service provider; a browser without a token gets 401, not a redirect to the identity provider".into(),
                    near,
                ),
                "oauth2" => self.warn(
                    "microkubes-oauth2",
                    "security.oauth2 is ignored: opaque OAuth2 access tokens are not introspected; a JWT access token verifies like any other token of its provider".into(),
                    near,
                ),
                other => self.warn("unknown-field", format!("security.{other} is not a Microkubes security setting and is ignored"), near),
            }
        }
    }

    /// `filter.tenants.file`: a static mapping in Compass's ConfigMap form (`ID: {tenant,
    /// scopes}`, as YAML or JSON), or a whole Kubernetes ConfigMap whose `data` values hold
    /// it; read into `tenants.entries` (beside any written inline, which win).
    fn tenant_file(&mut self, filter: &mut Value, dir: &Path) {
        let Some(tenants) = filter.get_mut("tenants").and_then(Value::as_object_mut) else { return };
        // `uri` (and `fetch`): the tenant-mapping endpoint, as the bundle's `endpoint`.
        let fetch = tenants.remove("fetch");
        if let Some(uri) = tenants.remove("uri") {
            let near = Some(("tenants", "uri"));
            let fetch = match fetch.map(serde_json::from_value::<FetchSource>).transpose() {
                Ok(fetch) => fetch.unwrap_or_default(),
                Err(e) => return self.error("tenants", format!("filter.tenants.fetch: {e}"), near, None),
            };
            let endpoint = uri
                .as_str()
                .ok_or_else(|| "filter.tenants.uri must be a URI".to_string())
                .and_then(|uri| crate::compile::endpoint(uri, &fetch, "filter.tenants.uri"))
                .and_then(|endpoint| serde_json::to_value(endpoint).map_err(|e| e.to_string()));
            match endpoint {
                Ok(endpoint) => {
                    tenants.insert("endpoint".into(), endpoint);
                }
                Err(e) => return self.error("tenants", e, near, None),
            }
        } else if fetch.is_some() {
            return self.error("tenants", "filter.tenants.fetch is set without a uri".into(), Some(("tenants", "fetch")), None);
        }
        let Some(file) = tenants.remove("file") else { return };
        let near = Some(("tenants", "file"));
        let Some(path) = file.as_str().map(|p| dir.join(p)) else {
            return self.error("tenants", "filter.tenants.file must be a path".into(), near, None);
        };
        let parse = |text: &str| serde_yaml_ng::from_str::<StrictValue>(text).map(|v| v.0).map_err(|e| e.to_string());
        let document = match std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|text| parse(&text)) {
            Ok(document) => document,
            Err(e) => return self.error("tenants", format!("filter.tenants.file {}: {e}", path.display()), near, None),
        };
        let mut entries = Map::new();
        let mut add = |map: &Map<String, Value>| entries.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
        if document.get("kind").and_then(Value::as_str) == Some("ConfigMap") {
            for value in document.get("data").and_then(Value::as_object).into_iter().flat_map(|data| data.values()) {
                match value.as_str().map(parse) {
                    Some(Ok(Value::Object(map))) => add(&map),
                    _ => return self.error("tenants", format!("filter.tenants.file {}: a ConfigMap data value is not a mapping", path.display()), near, None),
                }
            }
        } else if let Value::Object(map) = &document {
            add(map);
        } else {
            return self.error("tenants", format!("filter.tenants.file {}: expected `ID: {{tenant, scopes}}` entries", path.display()), near, None);
        }
        if let Some(Value::Object(inline)) = tenants.get("entries") {
            entries.extend(inline.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        tenants.insert("entries".into(), Value::Object(entries));
    }

    /// `filter.mint.private_key_pem`: the minted token's key, written into the bundle as its
    /// 32 bytes (`private_key`) with its algorithm (`alg`): an Ed25519 key (PKCS#8) is
    /// EdDSA, a P-256 key (PKCS#8 or SEC1 `EC PRIVATE KEY`) ES256. Anything else (RSA, other
    /// curves) is refused: the filter signs with these two only.
    fn mint_key(&mut self, filter: &mut Value, dir: &Path) {
        let Some(mint) = filter.get_mut("mint").and_then(Value::as_object_mut) else { return };
        let Some(file) = mint.remove("private_key_pem") else { return };
        let near = Some(("mint", "private_key_pem"));
        let Some(path) = file.as_str().map(|p| dir.join(p)) else {
            return self.error("mint", "filter.mint.private_key_pem must be a path".into(), near, None);
        };
        let declared = mint.get("alg").and_then(Value::as_str).map(str::to_string);
        match std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|pem| mint_secret(&pem)) {
            Ok((alg, secret)) if declared.as_deref().is_none_or(|d| d == alg) => {
                use base64::Engine as _;
                mint.insert("private_key".into(), Value::String(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)));
                mint.insert("alg".into(), Value::String(alg.into()));
            }
            Ok((alg, _)) => self.error("mint", format!("filter.mint.alg is {:?}, but {} is a key for {alg}", declared.unwrap_or_default(), path.display()), near, None),
            Err(e) => self.error("mint", format!("filter.mint.private_key_pem {}: {e}", path.display()), near, None),
        }
    }

    fn place(&self, problem: Problem, near: Option<(&str, &str)>) -> Problem {
        match near.and_then(|(anchor, needle)| self.source.locate(anchor, needle)) {
            Some((offset, len)) => problem.at(self.source, offset, len, "here"),
            None => problem.in_file(self.source),
        }
    }

    fn file(&mut self, document: &Value, dir: PathBuf) -> PolicyFile {
        let empty = Map::new();
        let top = document.as_object().unwrap_or(&empty);
        let security = top.get("security").and_then(Value::as_object);
        if let Some(security) = security {
            self.security_section(security);
        }
        let acl = security.and_then(|s| s.get("acl")).or_else(|| top.get("acl"));
        let list = match (document, acl) {
            (Value::Array(list), _) => Some(list),
            (_, Some(acl)) => acl.get("policies").and_then(Value::as_array),
            (_, None) => top.get("policies").and_then(Value::as_array),
        };
        let policies = match list {
            Some(list) => list.iter().filter_map(|p| self.policy(p)).collect(),
            None => {
                self.error(
                    "no-policies",
                    "no policies found".into(),
                    None,
                    Some("give a Microkubes config (`security.acl.policies`), an `acl.policies` list, a `policies` list, or a top-level list"),
                );
                Vec::new()
            }
        };
        let section = |key: &str| security.and_then(|s| s.get(key)).or_else(|| top.get(key));
        let ignore_patterns = self.strings(section("ignorePatterns"), "ignorePatterns", "");
        let keys_dir = section("keysDir").and_then(Value::as_str).map(PathBuf::from);

        let mut filter = top.get("filter").cloned().unwrap_or(Value::Object(Map::new()));
        let take = |filter: &mut Value, key: &str| filter.as_object_mut().and_then(|f| f.remove(key));
        let providers = take(&mut filter, "providers")
            .map(|v| self.typed::<Vec<ProviderSource>>(v, "filter.providers"))
            .unwrap_or_default();
        let required_scopes = take(&mut filter, "required_scopes")
            .map(|v| self.typed::<Vec<RequiredScopes>>(v, "filter.required_scopes"))
            .unwrap_or_default();
        self.tenant_file(&mut filter, &dir);
        self.mint_key(&mut filter, &dir);
        let keys_dir_section = take(&mut filter, "keys_dir");
        let given_both = keys_dir_section.is_some();
        let mut keys_dir_provider = keys_dir_section.map(|v| self.typed::<KeysDirSource>(v, "filter.keys_dir")).unwrap_or_default();
        // The older spelling of `keys_dir.algorithm`.
        if let Some(algorithm) = take(&mut filter, "keys_dir_algorithm") {
            match algorithm.as_str() {
                Some(algorithm) if !given_both => keys_dir_provider.algorithm = algorithm.to_string(),
                _ => self.error(
                    "settings",
                    "filter.keys_dir_algorithm must be a string, and cannot stand beside filter.keys_dir".into(),
                    Some(("keys_dir_algorithm", "keys_dir_algorithm")),
                    Some("write it as keys_dir.algorithm"),
                ),
            }
        }
        PolicyFile {
            source: self.source.clone(),
            dir,
            policies,
            ignore_patterns,
            keys_dir,
            settings: filter,
            providers,
            required_scopes,
            keys_dir_provider,
            warnings: Vec::new(),
        }
    }

    fn typed<T: serde::de::DeserializeOwned + Default>(&mut self, value: Value, what: &str) -> T {
        match serde_json::from_value(value) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.error("settings", format!("{what}: {e}"), Some((what, what.rsplit('.').next().unwrap_or(what))), None);
                T::default()
            }
        }
    }

    fn strings(&mut self, value: Option<&Value>, field: &str, policy: &str) -> Vec<String> {
        match value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| match item {
                    Value::String(text) => Some(text.clone()),
                    other => {
                        self.error("type", format!("{field}: {other} is not a string"), Some((policy, field)), None);
                        None
                    }
                })
                .collect(),
            Some(other) => {
                self.error("type", format!("{field} must be a list of strings, not {other}"), Some((policy, field)), None);
                Vec::new()
            }
        }
    }

    fn policy(&mut self, value: &Value) -> Option<SourcePolicy> {
        let Some(object) = value.as_object() else {
            self.error("type", format!("a policy must be an object, not {value}"), None, None);
            return None;
        };
        let Some(id) = object.get("id").and_then(Value::as_str).map(str::to_string) else {
            let near = object.get("description").and_then(Value::as_str).map(|d| (d, d));
            self.error("missing-id", "a policy has no `id`".into(), near, Some("give every policy a unique string id"));
            return None;
        };
        const KNOWN: [&str; 11] =
            ["id", "description", "subjects", "resources", "actions", "effect", "conditions", "roles", "organizations", "namespaces", "providers"];
        for key in object.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
            self.warn("unknown-field", format!("policy {id:?}: unknown field `{key}` is ignored"), Some((&id, key)));
        }
        let python_form = ["roles", "organizations", "namespaces"].iter().any(|k| object.contains_key(*k));
        let go_form = object.contains_key("conditions") || object.contains_key("effect");
        let effect = match object.get("effect").and_then(Value::as_str) {
            Some("allow") => Effect::Allow,
            Some("deny") => Effect::Deny,
            Some(other) => {
                self.error("effect", format!("policy {id:?}: effect {other:?} is neither \"allow\" nor \"deny\""), Some((&id, other)), None);
                return None;
            }
            None if python_form || !go_form => Effect::Allow,
            None => {
                self.error(
                    "effect",
                    format!("policy {id:?} has conditions but no effect"),
                    Some((&id, "conditions")),
                    Some("Ladon denies when effect is not \"allow\"; say \"allow\" or \"deny\""),
                );
                return None;
            }
        };
        let mut subjects = self.strings(object.get("subjects"), "subjects", &id);
        if python_form && subjects.is_empty() {
            // The Python library reads an empty subject list as "any authenticated user".
            subjects.push("<.*>".to_string());
        }
        let mut conditions = BTreeMap::new();
        for key in ["roles", "organizations", "namespaces"] {
            let values = self.strings(object.get(key), key, &id);
            if !values.is_empty() {
                conditions.insert(key.to_string(), SourceCondition::AnyOf { kind: python_kind(key).into(), values });
            }
        }
        if let Some(raw) = object.get("conditions") {
            self.conditions(&id, raw, &mut conditions);
        }
        let providers = self.strings(object.get("providers"), "providers", &id);
        if object.contains_key("providers") && providers.is_empty() {
            self.error(
                "providers",
                format!("policy {id:?}: an empty `providers` would match no one"),
                Some((&id, "providers")),
                Some("leave `providers` out for the callers of any provider"),
            );
        }
        if !providers.is_empty() {
            let names = providers.iter().map(|name| regex_lite::escape(name)).collect();
            let condition = SourceCondition::AnyOf { kind: "ProviderCondition".into(), values: names };
            if conditions.insert(decision_table::bundle::PROVIDER_ATTRIBUTE.to_string(), condition).is_some() {
                self.error(
                    "condition",
                    format!("policy {id:?} has both `providers` and a condition on `provider`"),
                    Some((&id, "providers")),
                    Some("say it once: `providers` is the condition"),
                );
            }
        }
        Some(SourcePolicy {
            description: object.get("description").and_then(Value::as_str).unwrap_or_default().to_string(),
            resources: self.strings(object.get("resources"), "resources", &id),
            actions: self.strings(object.get("actions"), "actions", &id),
            subjects,
            effect,
            conditions,
            providers,
            id,
        })
    }

    fn conditions(&mut self, id: &str, raw: &Value, into: &mut BTreeMap<String, SourceCondition>) {
        let Some(map) = raw.as_object() else {
            self.error("type", format!("policy {id:?}: conditions must be an object of KEY: {{type, options}}"), Some((id, "conditions")), None);
            return;
        };
        for (key, condition) in map {
            let kind = condition.get("type").and_then(Value::as_str).unwrap_or_default();
            let options = condition.get("options").cloned().unwrap_or(Value::Null);
            let option_strings = |name: &str| -> Vec<String> {
                match options.get(name) {
                    Some(Value::String(one)) => vec![one.clone()],
                    Some(Value::Array(items)) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
                    _ => Vec::new(),
                }
            };
            let parsed = match kind {
                "RolesCondition" | "ScopesCondition" | "OrganizationsCondition" | "NamespacesCondition" => {
                    let values = option_strings("values");
                    if values.is_empty() {
                        self.warn("empty-condition", format!("policy {id:?}: {kind} on {key:?} has no values and can never hold"), Some((id, kind)));
                    }
                    SourceCondition::AnyOf { kind: kind.to_string(), values }
                }
                "OwnerCondition" => SourceCondition::Owner,
                "EqualsSubjectCondition" => SourceCondition::EqualsSubject,
                "StringEqualCondition" => match options.get("equals").and_then(Value::as_str) {
                    Some(text) => SourceCondition::StringEqual(text.to_string()),
                    None => {
                        self.error("condition", format!("policy {id:?}: StringEqualCondition needs options.equals"), Some((id, kind)), None);
                        continue;
                    }
                },
                "StringMatchCondition" => match options.get("matches").and_then(Value::as_str) {
                    Some(text) => SourceCondition::StringMatch(text.to_string()),
                    None => {
                        self.error("condition", format!("policy {id:?}: StringMatchCondition needs options.matches"), Some((id, kind)), None);
                        continue;
                    }
                },
                "CIDRCondition" => {
                    let networks = option_strings("cidr");
                    if networks.is_empty() {
                        self.error("condition", format!("policy {id:?}: CIDRCondition needs options.cidr"), Some((id, kind)), None);
                        continue;
                    }
                    SourceCondition::Cidr(networks)
                }
                "BooleanCondition" => match options.get("value").and_then(Value::as_bool) {
                    Some(flag) => SourceCondition::Boolean(flag),
                    None => {
                        self.error("condition", format!("policy {id:?}: BooleanCondition needs options.value"), Some((id, kind)), None);
                        continue;
                    }
                },
                other => {
                    self.error(
                        "condition",
                        format!("policy {id:?}: condition type {other:?} is not supported"),
                        Some((id, if other.is_empty() { key } else { other })),
                        Some("supported: RolesCondition, ScopesCondition, OrganizationsCondition, NamespacesCondition, OwnerCondition, EqualsSubjectCondition, StringEqualCondition, StringMatchCondition, CIDRCondition, BooleanCondition"),
                    );
                    continue;
                }
            };
            into.insert(key.clone(), parsed);
        }
    }
}

fn python_kind(key: &str) -> &'static str {
    match key {
        "roles" => "RolesCondition",
        "organizations" => "OrganizationsCondition",
        _ => "NamespacesCondition",
    }
}

/// The minted token's algorithm and 32-byte private key, from a PEM private key.
fn mint_secret(pem: &str) -> Result<(&'static str, Vec<u8>), String> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
        return Ok(("EdDSA", key.to_bytes().to_vec()));
    }
    let p256 = p256::SecretKey::from_pkcs8_pem(pem).or_else(|_| p256::SecretKey::from_sec1_pem(pem));
    match p256 {
        Ok(key) => Ok(("ES256", key.to_bytes().to_vec())),
        Err(_) => Err("not an Ed25519 or P-256 private key (PKCS#8, or SEC1 `EC PRIVATE KEY`); the minted token is EdDSA or ES256, and RSA keys and other curves are refused".into()),
    }
}
