//! Source policies and settings to a decision table and a bundle.

use std::collections::{BTreeMap, HashMap};

use decision_table::bundle::{self as bundle_format, BUNDLE_FORMAT, Bundle, Endpoint, MTLS_PROVIDER, MayAssert, Provider, RemoteJwks, Revocation, Settings, TokenSource};
use decision_table::format::{self, Condition, Network, Pattern, StrId, Table, Test};
use decision_table::pattern::{self, CompiledPattern};

use crate::diagnostics::{Problem, Source};
use crate::keys;
use crate::source::{Effect, FetchSource, MayAssertSource, PolicyFile, SourceCondition, SourcePolicy};

/// Prefix of the deny policies that required-scope rules become.
pub const REQUIRED_SCOPES_PREFIX: &str = "required-scopes#";

/// Policies, including the denies that required-scope rules become, sorted by id.
pub fn all_policies(file: &PolicyFile) -> Vec<SourcePolicy> {
    let mut policies = file.policies.clone();
    for (index, rule) in file.required_scopes.iter().enumerate() {
        let mut conditions = BTreeMap::new();
        conditions.insert("scopes".to_string(), SourceCondition::NoneOf { values: rule.scopes.clone() });
        policies.push(SourcePolicy {
            id: format!("{REQUIRED_SCOPES_PREFIX}{}", index + 1),
            description: format!("requires one of the scopes {:?}", rule.scopes),
            subjects: vec!["<.*>".into()],
            resources: rule.resources.clone(),
            actions: rule.actions.clone(),
            effect: Effect::Deny,
            conditions,
            providers: Vec::new(),
        });
    }
    policies.sort_by(|a, b| a.id.cmp(&b.id));
    policies
}

/// The settings a file states, over the defaults; ignore patterns become anchored regexes.
pub fn settings(file: &PolicyFile) -> Result<Settings, Vec<Problem>> {
    let mut settings = Settings::from_json(&file.settings, "filter").map_err(|e| {
        // The error names its field (`filter.forward.usr: ...`, or `unknown field `usr``):
        // point at it inside the `filter` section.
        let field = e.split_once("unknown field `").and_then(|(_, rest)| rest.split_once('`')).map(|(name, _)| name).or_else(|| {
            e.split_once(':').and_then(|(path, _)| path.rsplit('.').next()).filter(|name| !name.is_empty() && *name != "filter")
        });
        let problem = Problem::error("settings", e.clone()).help("see the configuration reference in README.md");
        vec![match field.and_then(|name| file.source.locate("\"filter\"", name).or_else(|| file.source.locate("filter", name))) {
            Some((offset, len)) => problem.at(&file.source, offset, len, "here"),
            None => problem.in_file(&file.source),
        }]
    })?;
    if let Some(login) = &mut settings.login {
        // Anchored, as ignore patterns are: `/app` is that path only.
        for pattern in &mut login.paths {
            let anchored = format!("^(?:{pattern})$");
            regex_lite::Regex::new(&anchored).map_err(|e| {
                vec![Problem::error("login", format!("login path {pattern:?} is not a valid regular expression: {e}")).in_file(&file.source)]
            })?;
            *pattern = anchored;
        }
    }
    for pattern in &file.ignore_patterns {
        let source = format!("^(?:{pattern})$");
        regex_lite::Regex::new(&source).map_err(|e| {
            vec![Problem::error("ignore-pattern", format!("ignore pattern {pattern:?} is not a valid regular expression: {e}"))
                .in_file(&file.source)]
        })?;
        settings.ignore_patterns.push(source);
    }
    if settings.case_insensitive_paths {
        let upper_case = |pattern: &str| {
            let mut escaped = false;
            pattern.chars().any(|ch| {
                let upper = !escaped && ch.is_uppercase();
                escaped = !escaped && ch == '\\';
                upper
            })
        };
        let problems: Vec<Problem> = file
            .ignore_patterns
            .iter()
            .map(|p| ("ignore pattern", p))
            .chain(file.policies.iter().flat_map(|policy| policy.resources.iter().map(|r| ("resource", r))))
            .filter(|(_, pattern)| upper_case(pattern))
            .map(|(what, pattern)| {
                let problem = Problem::error("case-insensitive-paths", format!("{what} {pattern:?} has an upper-case letter, and with case_insensitive_paths every path is matched in lower case"))
                    .help("write it in lower case");
                match file.source.locate(pattern, pattern) {
                    Some((offset, len)) => problem.at(&file.source, offset, len, "here"),
                    None => problem.in_file(&file.source),
                }
            })
            .collect();
        if !problems.is_empty() {
            return Err(problems);
        }
    }
    Ok(settings)
}

struct Interner {
    strings: Vec<String>,
    ids: HashMap<String, StrId>,
}

impl Interner {
    fn id(&mut self, text: &str) -> StrId {
        if let Some(id) = self.ids.get(text) {
            return *id;
        }
        let id = self.strings.len() as StrId;
        self.strings.push(text.to_string());
        self.ids.insert(text.to_string(), id);
        id
    }

    fn pattern(&mut self, compiled: &CompiledPattern) -> Pattern {
        match compiled {
            CompiledPattern::Exact(text) => Pattern::Exact(self.id(text)),
            CompiledPattern::Regex { source, prefix } => Pattern::Regex { source: self.id(source), prefix: self.id(prefix) },
        }
    }
}

fn problem(source: Option<&Source>, policy: &SourcePolicy, field: &str, needle: &str, error: impl std::fmt::Display) -> Problem {
    let problem = Problem::error("pattern", format!("policy {:?}, {field}: {error}", policy.id))
        .help("Ladon patterns: text outside <...> is literal, each <...> is a regular expression");
    match source {
        Some(source) => match source.locate(&policy.id, needle) {
            Some((offset, len)) => problem.at(source, offset, len, "this pattern"),
            None => problem.in_file(source),
        },
        None => problem,
    }
}

/// Compiles the policies; `mapped_actions` are the actions the method mapping can produce.
/// Problems point into `source` when it is given.
pub fn table(policies: &[SourcePolicy], mapped_actions: &[String], source: Option<&Source>) -> Result<Table, Vec<Problem>> {
    let mut problems = Vec::new();
    for pair in policies.windows(2) {
        if let [a, b] = pair
            && a.id == b.id
        {
            let duplicate = Problem::error("duplicate-id", format!("two policies have the id {:?}", a.id))
                .help("policy ids must be unique; rename one");
            problems.push(match source.map(|source| (source, source.locate_nth(&b.id, 1))) {
                Some((source, Some((offset, len)))) => duplicate.at(source, offset, len, "the second"),
                Some((source, None)) => duplicate.in_file(source),
                None => duplicate,
            });
        }
    }
    let mut interner = Interner { strings: Vec::new(), ids: HashMap::new() };
    let mut universe: Vec<String> = mapped_actions.to_vec();
    for policy in policies {
        universe.extend(policy.actions.iter().filter(|a| !a.contains('<')).cloned());
    }
    universe.sort();
    universe.dedup();
    if universe.len() > format::MAX_ACTIONS {
        problems.push(Problem::error("actions", format!("{} distinct actions; at most {}", universe.len(), format::MAX_ACTIONS)));
    }

    let mut compiled = Vec::with_capacity(policies.len());
    for policy in policies {
        let compile_all = |field: &str, patterns: &[String], problems: &mut Vec<Problem>| -> Vec<CompiledPattern> {
            patterns
                .iter()
                .filter_map(|p| pattern::ladon(p).map_err(|e| problems.push(problem(source, policy, field, p, e))).ok())
                .collect()
        };
        let actions = compile_all("actions", &policy.actions, &mut problems);
        let subjects = compile_all("subjects", &policy.subjects, &mut problems);
        let resources = compile_all("resources", &policy.resources, &mut problems);
        let mut action_bits = 0u64;
        for (bit, action) in universe.iter().enumerate().take(format::MAX_ACTIONS) {
            if actions.iter().any(|p| compiled_matches(p, action)) {
                action_bits |= 1 << bit;
            }
        }
        let conditions = policy
            .conditions
            .iter()
            .filter_map(|(key, condition)| match compile_condition(&mut interner, condition) {
                Ok(test) => Some(Condition { key: interner.id(key), test }),
                Err(e) => {
                    problems.push(problem(source, policy, &format!("condition {key:?}"), key, e));
                    None
                }
            })
            .collect();
        compiled.push(format::Policy {
            id: interner.id(&policy.id),
            effect: match policy.effect {
                Effect::Allow => format::Effect::Allow,
                Effect::Deny => format::Effect::Deny,
            },
            action_bits,
            actions: actions.iter().map(|p| interner.pattern(p)).collect(),
            subjects: subjects.iter().map(|p| interner.pattern(p)).collect(),
            resources: resources.iter().map(|p| interner.pattern(p)).collect(),
            conditions,
        });
    }
    let actions = universe.iter().take(format::MAX_ACTIONS).map(|a| interner.id(a)).collect();
    if problems.is_empty() { Ok(Table { strings: interner.strings, actions, policies: compiled }) } else { Err(problems) }
}

fn compiled_matches(pattern: &CompiledPattern, value: &str) -> bool {
    match pattern {
        CompiledPattern::Exact(text) => text == value,
        CompiledPattern::Regex { source, .. } => regex_lite::Regex::new(source).is_ok_and(|re| re.is_match(value)),
    }
}

fn compile_condition(interner: &mut Interner, condition: &SourceCondition) -> Result<Test, String> {
    let values = |interner: &mut Interner, values: &[String]| -> Result<Vec<Pattern>, String> {
        values
            .iter()
            .map(|v| pattern::condition_value(v).map(|p| interner.pattern(&p)).map_err(|e| e.to_string()))
            .collect()
    };
    Ok(match condition {
        SourceCondition::AnyOf { values: v, .. } => Test::AnyMatches(values(interner, v)?),
        SourceCondition::NoneOf { values: v } => Test::Lacks(values(interner, v)?),
        SourceCondition::Owner => Test::Owner,
        SourceCondition::EqualsSubject => Test::EqualsSubject,
        SourceCondition::StringEqual(text) => Test::StringEqual(interner.id(text)),
        SourceCondition::StringMatch(regex) => {
            let compiled = pattern::condition_value(regex).map_err(|e| e.to_string())?;
            Test::StringMatch(interner.pattern(&compiled))
        }
        SourceCondition::Cidr(networks) => Test::Cidr(networks.iter().map(|n| parse_network(n)).collect::<Result<_, _>>()?),
        SourceCondition::Boolean(value) => Test::Boolean(*value),
    })
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
pub fn parse_network(text: &str) -> Result<Network, String> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let ip: std::net::IpAddr = address.trim().parse().map_err(|_| format!("{text:?} is not a network (CIDR)"))?;
    let (v4, width, octets) = match ip {
        std::net::IpAddr::V4(v4) => (true, 32u8, v4.octets().to_vec()),
        std::net::IpAddr::V6(v6) => (false, 128u8, v6.octets().to_vec()),
    };
    let prefix_len = match prefix {
        Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= width).ok_or(format!("{text:?}: bad prefix length"))?,
        None => width,
    };
    let mut address = [0u8; 16];
    for (slot, byte) in address.iter_mut().zip(octets) {
        *slot = byte;
    }
    Ok(Network { v4, address, prefix_len })
}

/// The whole bundle: table, settings and providers with their keys.
pub fn bundle(file: &PolicyFile) -> Result<(Bundle, Table), Vec<Problem>> {
    let mut settings = settings(file)?;
    let mapped: Vec<String> = settings.actions.values().cloned().collect();
    let table = table(&all_policies(file), &mapped, Some(&file.source))?;
    let providers = providers(file, settings.mtls.is_some())?;
    policy_providers_exist(file, &providers)?;
    // Basic credentials come from `Authorization: Basic`, after the configured sources
    // unless the policy file places that source itself.
    if providers.iter().any(|p| p.basic.is_some()) && !settings.token_sources.iter().any(TokenSource::is_basic) {
        settings.token_sources.push(TokenSource::Header { name: "authorization".into(), scheme: Some("Basic".into()) });
    }
    bundle_format::check_basic_sources(&settings.token_sources, &providers).map_err(|e| vec![Problem::error("basic", e).in_file(&file.source)])?;
    let bundle = Bundle {
        format: BUNDLE_FORMAT,
        table: table.encode_base64(),
        table_hash: table.content_hash(),
        settings,
        providers,
    };
    Ok((bundle, table))
}

/// Every provider a policy names exists (a misspelt one would make the policy never apply);
/// `mtls`, the client certificate, always does.
fn policy_providers_exist(file: &PolicyFile, providers: &[Provider]) -> Result<(), Vec<Problem>> {
    let known: Vec<&str> = providers.iter().map(|p| p.name.as_str()).chain([MTLS_PROVIDER]).collect();
    let problems: Vec<Problem> = file
        .policies
        .iter()
        .flat_map(|policy| policy.providers.iter().filter(|name| !known.contains(&name.as_str())).map(move |name| (policy, name)))
        .map(|(policy, name)| {
            let problem = Problem::error("unknown-provider", format!("policy {:?} names provider {name:?}, which the bundle does not have", policy.id))
                .help(&format!("the providers are {}", known.join(", ")));
            match file.source.locate(&policy.id, name) {
                Some((offset, len)) => problem.at(&file.source, offset, len, "this provider"),
                None => problem.in_file(&file.source),
            }
        })
        .collect();
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// A provider's `may_assert` as the bundle carries it: each value a condition regex (as in
/// `RolesCondition`: an exact value escaped, a regex as written), which the module anchors.
/// Left out, a bundle's only provider may assert anything (the platform's own identity
/// provider, as in Microkubes); in a bundle of several, every provider must say, and say
/// which subjects it may name, so adding a partner's identity provider never hands it the
/// platform's roles or users.
fn may_assert(declared: Option<&MayAssertSource>, name: &str, providers: usize) -> Result<MayAssert, String> {
    let limits = match declared {
        None if providers == 1 => return Ok(MayAssert::Any),
        None => {
            return Err(format!(
                "provider {name:?}: in a bundle of several providers, each says what its tokens may assert (`may_assert`): `\"any\"` for the platform's own issuer, else the subjects and claims it may assert"
            ));
        }
        Some(MayAssertSource::Any(any)) if any == "any" => return Ok(MayAssert::Any),
        Some(MayAssertSource::Any(other)) => return Err(format!("provider {name:?}: may_assert is \"any\" or an object, not {other:?}")),
        Some(MayAssertSource::Only(limits)) => limits,
    };
    if !limits.contains_key("subject") {
        return Err(format!("provider {name:?}: may_assert must list the subjects it may name (`\"subject\": [\"svc-.*\"]`, or `[\".+\"]` for any)"));
    }
    let mut only = BTreeMap::new();
    for (attribute, values) in limits {
        if ["username", bundle_format::PROVIDER_ATTRIBUTE, decision_table::eval::CLIENT_IP].contains(&attribute.as_str()) {
            return Err(format!("provider {name:?}: may_assert.{attribute}: the filter sets {attribute} itself (limit `subject` instead of `username`)"));
        }
        let regexes = values
            .iter()
            .map(|value| match pattern::condition_value(value) {
                Ok(CompiledPattern::Exact(text)) => Ok(regex_lite::escape(&text)),
                Ok(CompiledPattern::Regex { .. }) => Ok(value.clone()),
                Err(e) => Err(format!("provider {name:?}: may_assert.{attribute}: {e}")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        only.insert(attribute.clone(), regexes);
    }
    Ok(MayAssert::Only(only))
}

/// The token providers; none is an error unless mTLS can authenticate (`mtls_configured`).
pub fn providers(file: &PolicyFile, mtls_configured: bool) -> Result<Vec<Provider>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut providers = Vec::new();
    let key_problem = |e: String| Problem::error("key", e).in_file(&file.source);
    let count = file.providers.len() + usize::from(file.keys_dir.is_some());
    let trust = |declared: Option<&MayAssertSource>, name: &str, problems: &mut Vec<Problem>| {
        may_assert(declared, name, count).unwrap_or_else(|e| {
            problems.push(Problem::error("may-assert", e).in_file(&file.source));
            MayAssert::Only(BTreeMap::new())
        })
    };
    for source in &file.providers {
        let mut keys = Vec::new();
        for entry in &source.keys {
            match keys::load(entry, &file.dir) {
                Ok(loaded) => keys.extend(loaded),
                Err(e) => problems.push(key_problem(format!("provider {:?}: {e}", source.name))),
            }
        }
        let jwks = match remote_jwks(source) {
            Ok(jwks) => jwks,
            Err(e) => {
                problems.push(Problem::error("jwks", e).in_file(&file.source));
                None
            }
        };
        let introspection = match introspection(source, &file.dir) {
            Ok(introspection) => introspection,
            Err(e) => {
                problems.push(Problem::error("introspection", e).in_file(&file.source));
                None
            }
        };
        let basic = match basic(source) {
            Ok(basic) => basic,
            Err(e) => {
                problems.push(Problem::error("basic", e).in_file(&file.source));
                None
            }
        };
        if keys.is_empty() && jwks.is_none() && introspection.is_none() && basic.is_none() {
            problems.push(key_problem(format!("provider {:?} has no keys (and no jwks_uri, introspection or basic)", source.name)));
        }
        let revocation = match revocation(source) {
            Ok(revocation) => revocation,
            Err(e) => {
                problems.push(Problem::error("revocation", e).in_file(&file.source));
                Revocation::default()
            }
        };
        let may_assert = trust(source.may_assert.as_ref(), &source.name, &mut problems);
        providers.push(Provider {
            name: source.name.clone(),
            issuer: source.issuer.clone(),
            audiences: source.audiences.clone(),
            keys,
            may_assert,
            jwks,
            revocation,
            introspection,
            basic,
        });
    }
    if let Some(dir) = &file.keys_dir {
        // Microkubes keysDir: every *.pub key, named by its file stem (the Python library's
        // `<kid>.pub`), bound to one algorithm.
        let dir = file.dir.join(dir);
        let settings = &file.keys_dir_provider;
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pub")).collect();
                paths.sort();
                let mut keys = Vec::new();
                for path in paths {
                    let entry = crate::source::KeySource {
                        jwks: None,
                        pem: Some(path.clone()),
                        hmac_secret_file: None,
                        alg: Some(settings.algorithm.clone()),
                        kid: None,
                    };
                    match keys::load(&entry, std::path::Path::new("")) {
                        Ok(loaded) => keys.extend(loaded),
                        Err(e) => problems.push(key_problem(format!("keysDir: {e}"))),
                    }
                }
                if keys.is_empty() {
                    problems.push(key_problem(format!("keysDir {} holds no *.pub key", dir.display())));
                }
                let may_assert = trust(settings.may_assert.as_ref(), KEYS_DIR_PROVIDER, &mut problems);
                providers.push(Provider {
                    name: KEYS_DIR_PROVIDER.into(),
                    issuer: None,
                    audiences: settings.audiences.clone(),
                    keys,
                    may_assert,
                    jwks: None,
                    revocation: Revocation::default(),
                    introspection: None,
                    basic: None,
                });
            }
            Err(e) => problems.push(key_problem(format!("keysDir {}: {e}", dir.display()))),
        }
    }
    if let Some(mint) = &file.settings.get("mint") {
        let issuer = mint.get("issuer").and_then(serde_json::Value::as_str);
        let public = mint_public_jwk(mint).and_then(|jwk| jwk.get("x").and_then(serde_json::Value::as_str).map(str::to_string));
        for provider in &providers {
            // A minted token must never verify as a caller's token: that would let an upstream
            // hand it back through the filter as a fresh credential of that provider.
            let same_key = public.as_deref().is_some_and(|x| provider.keys.iter().any(|k| k.get("x").and_then(serde_json::Value::as_str) == Some(x)));
            if issuer.is_some() && provider.issuer.as_deref() == issuer || same_key {
                problems.push(
                    Problem::error("mint", format!("the minted token's issuer or key is provider {:?}'s: a minted token would verify as that provider's", provider.name))
                        .in_file(&file.source),
                );
            }
        }
    }
    if let Err(e) = bundle_format::check_provider_chain(&providers) {
        problems.push(Problem::error("provider-chain", e).in_file(&file.source).help("a token's `iss` chooses one provider; see \"Credential chain\" in README.md"));
    }
    if providers.is_empty() && !mtls_configured {
        problems.push(
            Problem::error("no-keys", "no token provider: nothing could ever authenticate".into())
                .in_file(&file.source)
                .help("add `keysDir` (Microkubes) or `filter.providers` with keys"),
        );
    }
    if problems.is_empty() { Ok(providers) } else { Err(problems) }
}

/// An endpoint from its URI (`https://idp.example:8443/certs?x=1`) and the fetch settings.
pub fn endpoint(uri: &str, fetch: &FetchSource, what: &str) -> Result<Endpoint, String> {
    let (scheme, rest) = uri.split_once("://").ok_or(format!("{what}: {uri:?} is not an absolute http(s) URI"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return Err(format!("{what}: {uri:?}: the scheme must be https or http")),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
    if path.contains('#') {
        return Err(format!("{what}: {uri:?}: a fragment is never sent"));
    }
    if authority.is_empty() || authority.contains('@') || path.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
        return Err(format!("{what}: {uri:?}: needs a host, no user information, and a path of visible ASCII"));
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) && !authority.ends_with(']');
    let upstream = fetch.upstream.clone().unwrap_or_else(|| if has_port { authority.to_string() } else { format!("{authority}:{default_port}") });
    let mut endpoint = Endpoint::new(&upstream, authority, &path, &scheme);
    let set = |target: &mut u64, value: Option<u64>| {
        if let Some(value) = value {
            *target = value;
        }
    };
    set(&mut endpoint.timeout_ms, fetch.timeout_ms);
    set(&mut endpoint.refresh_seconds, fetch.refresh_seconds);
    set(&mut endpoint.min_refresh_seconds, fetch.min_refresh_seconds);
    set(&mut endpoint.max_refresh_seconds, fetch.max_refresh_seconds);
    set(&mut endpoint.retry_seconds, fetch.retry_seconds);
    if let Some(max_bytes) = fetch.max_bytes {
        endpoint.max_bytes = max_bytes;
    }
    if endpoint.timeout_ms == 0 || endpoint.timeout_ms > 60_000 {
        return Err(format!("{what}: timeout_ms must be 1..=60000"));
    }
    // A document is stored in shared data beside its previous version (an ngx_wasm_module
    // shm_kv zone needs room for both): size the zone at least twice the sum of max_bytes.
    if endpoint.max_bytes == 0 || endpoint.max_bytes > 1024 * 1024 {
        return Err(format!("{what}: max_bytes must be 1..=1048576"));
    }
    if endpoint.min_refresh_seconds == 0 || endpoint.min_refresh_seconds > endpoint.max_refresh_seconds {
        return Err(format!("{what}: min_refresh_seconds must be at least 1 and at most max_refresh_seconds"));
    }
    if !(endpoint.min_refresh_seconds..=endpoint.max_refresh_seconds).contains(&endpoint.refresh_seconds) {
        return Err(format!("{what}: refresh_seconds must lie between min_refresh_seconds and max_refresh_seconds"));
    }
    if endpoint.retry_seconds == 0 {
        return Err(format!("{what}: retry_seconds must be at least 1"));
    }
    Ok(endpoint)
}

fn remote_jwks(source: &crate::source::ProviderSource) -> Result<Option<RemoteJwks>, String> {
    let what = format!("provider {:?}: jwks", source.name);
    let settings = source.jwks.clone().unwrap_or_default();
    let discovery = settings.discovery.unwrap_or(false);
    let uri = match (&source.jwks_uri, discovery) {
        (Some(_), true) => return Err(format!("{what}: give jwks_uri or discovery, not both")),
        (Some(uri), false) => uri.clone(),
        // OpenID Connect Discovery 1.0 §4: the configuration is at the issuer's
        // `/.well-known/openid-configuration`.
        (None, true) => match &source.issuer {
            Some(issuer) if issuer.starts_with("https://") || issuer.starts_with("http://") => {
                format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
            }
            _ => return Err(format!("{what}.discovery needs an issuer that is an http(s) URL")),
        },
        (None, false) => {
            return match source.jwks {
                Some(_) => Err(format!("{what} is set without a jwks_uri (or discovery: true)")),
                None => Ok(None),
            };
        }
    };
    for alg in &settings.algorithms {
        let asymmetric = crate::keys::RSA_ALGORITHMS.contains(&alg.as_str()) || ["ES256", "ES384", "ES512", "EdDSA"].contains(&alg.as_str());
        if !asymmetric {
            return Err(format!("{what}.algorithms: {alg:?} is not an asymmetric JWS algorithm this filter verifies"));
        }
    }
    let max_keys = settings.max_keys.unwrap_or(32);
    if max_keys == 0 || max_keys > 256 {
        return Err(format!("{what}.max_keys must be 1..=256"));
    }
    Ok(Some(RemoteJwks {
        endpoint: endpoint(&uri, &settings.fetch, &what)?,
        discovery,
        algorithms: settings.algorithms.clone(),
        unknown_kid_seconds: match settings.unknown_kid_seconds.unwrap_or(30) {
            seconds if seconds < bundle_format::MIN_UNKNOWN_KID_SECONDS => {
                return Err(format!("{what}.unknown_kid_seconds must be at least {} (each early fetch is one the IdP serves)", bundle_format::MIN_UNKNOWN_KID_SECONDS));
            }
            seconds => seconds,
        },
        max_keys,
    }))
}

fn introspection(source: &crate::source::ProviderSource, dir: &std::path::Path) -> Result<Option<bundle_format::Introspection>, String> {
    let Some(declared) = &source.introspection else { return Ok(None) };
    let what = format!("provider {:?}: introspection", source.name);
    let secret = match (&declared.client_secret_file, &declared.client_secret_env) {
        (Some(file), None) => std::fs::read_to_string(dir.join(file)).map_err(|e| format!("{what}.client_secret_file {}: {e}", file.display()))?.trim_end_matches(['\n', '\r']).to_string(),
        (None, Some(variable)) => std::env::var(variable).map_err(|_| format!("{what}.client_secret_env: {variable} is not set"))?,
        _ => return Err(format!("{what}: give client_secret_file or client_secret_env (the secret is never written in the policy file)")),
    };
    if secret.is_empty() {
        return Err(format!("{what}: the client secret is empty"));
    }
    Ok(Some(bundle_format::Introspection {
        endpoint: endpoint(&declared.uri, &declared.fetch, &what)?,
        client_id: declared.client_id.clone(),
        client_secret: secret,
        client_auth: match declared.client_auth.as_deref() {
            None | Some("basic") => bundle_format::ClientAuth::Basic,
            Some("post") => bundle_format::ClientAuth::Post,
            Some(other) => return Err(format!("{what}.client_auth: `basic` or `post`, not {other:?}")),
        },
        cache_seconds: declared.cache_seconds.unwrap_or(300),
        negative_seconds: declared.negative_seconds.unwrap_or(10),
        all_tokens: declared.all_tokens.unwrap_or(false),
    }))
}

fn basic(source: &crate::source::ProviderSource) -> Result<Option<bundle_format::BasicAuth>, String> {
    let Some(declared) = &source.basic else { return Ok(None) };
    let what = format!("provider {:?}: basic", source.name);
    Ok(Some(bundle_format::BasicAuth {
        endpoint: endpoint(&declared.uri, &declared.fetch, &what)?,
        cache_seconds: declared.cache_seconds.unwrap_or(300),
        negative_seconds: declared.negative_seconds.unwrap_or(10),
    }))
}

fn revocation(source: &crate::source::ProviderSource) -> Result<Revocation, String> {
    let Some(declared) = &source.revocation else { return Ok(Revocation::default()) };
    let what = format!("provider {:?}: revocation", source.name);
    let endpoint = match (&declared.list_uri, &declared.list) {
        (Some(uri), fetch) => Some(endpoint(uri, &fetch.clone().unwrap_or_default(), &format!("{what}.list_uri"))?),
        (None, Some(_)) => return Err(format!("{what}.list is set without a list_uri")),
        (None, None) => None,
    };
    if declared.token_ids.iter().any(String::is_empty) || declared.subjects.keys().any(String::is_empty) {
        return Err(format!("{what}: an empty token id or subject"));
    }
    if declared.max_list_age_seconds.is_some() && endpoint.is_none() {
        return Err(format!("{what}.max_list_age_seconds needs a list_uri"));
    }
    if let (Some(age), Some(list)) = (declared.max_list_age_seconds, &endpoint)
        && age < list.refresh_seconds.saturating_add(list.retry_seconds)
    {
        return Err(format!("{what}.max_list_age_seconds ({age}) must exceed the list's refresh_seconds plus retry_seconds, or every refresh would refuse tokens"));
    }
    Ok(Revocation { token_ids: declared.token_ids.clone(), subjects: declared.subjects.clone(), endpoint, max_list_age_seconds: declared.max_list_age_seconds })
}

/// The minted token's public key as a JWK (`kty`, `crv`, `x`, and `y` for P-256), from
/// `filter.mint.private_key` and `alg` (default `EdDSA`).
pub fn mint_public_jwk(mint: &serde_json::Value) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let secret: [u8; 32] = b64.decode(mint.get("private_key")?.as_str()?).ok()?.try_into().ok()?;
    match mint.get("alg").and_then(serde_json::Value::as_str).unwrap_or("EdDSA") {
        "EdDSA" => {
            let x = b64.encode(ed25519_dalek::SigningKey::from_bytes(&secret).verifying_key().as_bytes());
            Some(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x}))
        }
        "ES256" => {
            let key = p256::ecdsa::SigningKey::from_bytes(&secret.into()).ok()?;
            let point = key.verifying_key().to_encoded_point(false);
            Some(serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64.encode(point.x()?), "y": b64.encode(point.y()?)}))
        }
        _ => None,
    }
}

/// The JWKS an upstream verifies the minted tokens with (`policy-compiler jwks`).
pub fn mint_jwks(settings: &Settings) -> Option<serde_json::Value> {
    let mint = settings.mint.as_ref()?;
    let mut jwk = mint_public_jwk(&serde_json::json!({"private_key": mint.private_key, "alg": mint.alg.name()}))?;
    let object = jwk.as_object_mut()?;
    object.insert("kid".into(), mint.kid.clone().into());
    object.insert("alg".into(), mint.alg.name().into());
    object.insert("use".into(), "sig".into());
    Some(serde_json::json!({"keys": [jwk]}))
}

/// The name of the provider Microkubes' `keysDir` becomes.
pub const KEYS_DIR_PROVIDER: &str = "keysDir";
