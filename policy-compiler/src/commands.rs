//! The subcommands. Each reads its input, reports problems in the chosen format, and returns
//! the documented exit code.

use std::path::Path;

use base64::Engine as _;
use decision_table::bundle::{Bundle, Settings};
use decision_table::bundle::MTLS_PROVIDER;
use decision_table::request::{Trust, attributes_from_claims, certificate_attributes, normalize_path, provider_for_issuer};
use decision_table::{AccessRequest, ClientAddress, Evaluator, Table};
use serde_json::{Map, Value, json};

use crate::diagnostics::{self, Problem};
use crate::source::{Effect, PolicyFile, SourcePolicy};
use crate::{Exit, Format, check as lints, compile as build, reference, source};

fn report(problems: &[Problem], format: Format) {
    match format {
        Format::Human => {
            for problem in problems {
                eprintln!("{}", diagnostics::render(problem));
            }
        }
        Format::Json => {
            let list: Vec<Value> = problems.iter().map(Problem::to_json).collect();
            println!("{}", json!({ "problems": list }));
        }
    }
}

fn load(path: &Path, format: Format) -> Result<PolicyFile, Exit> {
    source::read(path).map_err(|problems| {
        report(&problems, format);
        if problems.iter().any(|p| p.code == "io") { Exit::Io } else { Exit::InvalidInput }
    })
}

pub fn compile(path: &Path, output: Option<&Path>, format: Format) -> Exit {
    let file = match load(path, format) {
        Ok(file) => file,
        Err(exit) => return exit,
    };
    let (bundle, table) = match build::bundle(&file) {
        Ok(built) => built,
        Err(problems) => {
            report(&problems, format);
            return Exit::InvalidInput;
        }
    };
    if format == Format::Human {
        for warning in &file.warnings {
            eprintln!("{}", diagnostics::render(warning));
        }
    }
    let text = match serde_json::to_string_pretty(&bundle) {
        Ok(text) => text + "\n",
        Err(e) => {
            eprintln!("error: cannot serialise the bundle: {e}");
            return Exit::InvalidInput;
        }
    };
    match output {
        Some(out) => {
            if let Err(e) = std::fs::write(out, &text) {
                eprintln!("error: cannot write {}: {e}", out.display());
                return Exit::Io;
            }
            let summary = format!(
                "compiled {} policies into {} ({} bytes, table {} bytes, hash {})",
                table.policies.len(),
                out.display(),
                text.len(),
                table.encode().len(),
                &bundle.table_hash.get(..16).unwrap_or_default()
            );
            match format {
                Format::Human => eprintln!("{summary}"),
                Format::Json => println!("{}", json!({"output": out.display().to_string(), "policies": table.policies.len(), "table_hash": bundle.table_hash})),
            }
        }
        None => print!("{text}"),
    }
    Exit::Success
}

pub fn check(path: &Path, strict: bool, format: Format) -> Exit {
    let file = match load(path, format) {
        Ok(file) => file,
        Err(exit) => return exit,
    };
    let mut problems = file.warnings.clone();
    let providers = match build::bundle(&file) {
        Ok((bundle, _)) => bundle.providers,
        Err(errors) => {
            problems.extend(errors);
            Vec::new()
        }
    };
    if let Ok(settings) = build::settings(&file) {
        problems.extend(lints::lint(&file, &build::all_policies(&file), &settings, &providers));
    }
    let errors = problems.iter().filter(|p| p.is_error()).count();
    let warnings = problems.iter().filter(|p| p.is_warning()).count();
    let notes = problems.len() - errors - warnings;
    match format {
        Format::Human => {
            report(&problems, format);
            eprintln!("{}: {errors} errors, {warnings} warnings, {notes} notes", path.display());
        }
        Format::Json => {
            let list: Vec<Value> = problems.iter().map(Problem::to_json).collect();
            println!("{}", json!({"problems": list, "errors": errors, "warnings": warnings, "notes": notes}));
        }
    }
    if errors > 0 || (strict && warnings > 0) { Exit::InvalidInput } else { Exit::Success }
}

/// The request `explain` asks about.
pub struct Ask {
    pub method: String,
    pub path: String,
    pub claims: Option<String>,
    pub token: Option<String>,
    pub client_ip: Option<String>,
    /// The provider that verified the token; else the one its `iss` chooses.
    pub provider: Option<String>,
}

/// A provider as `explain` and `test` apply it: what its tokens may assert.
pub struct ProviderTrust {
    pub name: String,
    pub issuer: Option<String>,
    pub trust: Trust,
    /// The bundle's revocation list (a fetched one is not known here).
    pub revocation: decision_table::bundle::Revocation,
    /// Where its keys are fetched at run time, described (none: embedded only).
    pub jwks: Option<String>,
    /// Its tokens are introspected: a JWS's `iss` never chooses it (name it with `--provider`).
    pub introspects: bool,
}

impl ProviderTrust {
    /// The issuer a JWS's `iss` must be to choose it, as in the module.
    pub fn chosen_by(&self) -> Option<&str> {
        if self.introspects { Some(decision_table::bundle::NOT_AN_ISSUER) } else { self.issuer.as_deref() }
    }
}

/// A policy file ready to answer requests two ways: the compiled table and the reference.
pub struct Prepared {
    pub settings: Settings,
    pub policies: Vec<SourcePolicy>,
    pub evaluator: Evaluator,
    pub providers: Vec<ProviderTrust>,
    ignore: Vec<regex_lite::Regex>,
}

pub fn prepare(file: &PolicyFile) -> Result<Prepared, Vec<Problem>> {
    let settings = build::settings(file)?;
    let policies = build::all_policies(file);
    let mapped: Vec<String> = settings.actions.values().cloned().collect();
    let table = build::table(&policies, &mapped, Some(&file.source))?;
    let evaluator = Evaluator::new(&table).map_err(|e| vec![Problem::error("table", e.to_string())])?;
    let ignore = settings.ignore_patterns.iter().filter_map(|p| regex_lite::Regex::new(p).ok()).collect();
    // A file of policies alone (no keys) still answers: its claims are taken as they are.
    let declared = if file.providers.is_empty() && file.keys_dir.is_none() { Vec::new() } else { build::providers(file, settings.mtls.is_some())? };
    let providers = declared
        .iter()
        .map(|p| {
            let trust = Trust::new(&p.may_assert).map_err(|e| vec![Problem::error("may-assert", format!("provider {:?}: {e}", p.name))])?;
            let jwks = p.jwks.as_ref().map(|j| format!("{}://{}{}", j.endpoint.scheme, j.endpoint.authority, j.endpoint.path));
            Ok(ProviderTrust { name: p.name.clone(), issuer: p.issuer.clone(), trust, revocation: p.revocation.clone(), jwks, introspects: p.introspection.is_some() })
        })
        .collect::<Result<_, Vec<Problem>>>()?;
    Ok(Prepared { settings, policies, evaluator, providers, ignore })
}

/// Reads and prepares a policy file, reporting any problem.
fn load_prepared(path: &Path, format: Format) -> Result<Prepared, Exit> {
    let file = load(path, format)?;
    prepare(&file).map_err(|problems| {
        report(&problems, format);
        Exit::InvalidInput
    })
}

/// What the filter would do with a request, by the compiled table; with the reference
/// evaluator's trace.
pub enum Answer {
    Malformed(String),
    /// The module would answer 401: no provider for the token, or one that may not assert
    /// its subject.
    Unauthenticated(String),
    Bypassed(String),
    UnmappedMethod,
    /// The module would answer 403: the caller has no tenant where one is required.
    NoTenant,
    Decided { allowed: bool, policy: Option<String>, trace: reference::Outcome },
}

impl Answer {
    pub fn label(&self) -> &'static str {
        match self {
            Answer::Malformed(_) => "malformed",
            Answer::Unauthenticated(_) => "unauthenticated",
            Answer::Bypassed(_) => "bypass",
            Answer::UnmappedMethod | Answer::NoTenant => "deny",
            Answer::Decided { allowed: true, .. } => "allow",
            Answer::Decided { allowed: false, .. } => "deny",
        }
    }
}

/// The table and the reference disagreed: a bug in one of them.
pub struct Disagreement(pub String);

pub fn decide(
    prepared: &Prepared,
    method: &str,
    path: &str,
    claims: &Map<String, Value>,
    client_ip: Option<&str>,
    provider: Option<&str>,
) -> Result<Answer, Disagreement> {
    let resource = match normalize_path(path, prepared.settings.path_rules()) {
        Ok(resource) => resource,
        Err(e) => return Ok(Answer::Malformed(e.to_string())),
    };
    if let Some(pattern) = prepared.ignore.iter().find(|re| re.is_match(&resource)) {
        return Ok(Answer::Bypassed(pattern.as_str().to_string()));
    }
    // Methods are case-sensitive (RFC 9110), as in the module: `get` is not `GET`.
    let Some(action) = prepared.settings.actions.get(method) else {
        return Ok(Answer::UnmappedMethod);
    };
    // The provider as the module chooses it (by `iss`), unless the caller names it; `mtls`
    // stands for a client certificate, whose identity is the claims' `username` (else `sub`)
    // and whose roles the bundle gives, as in the module.
    let (subject, mut attributes) = if provider == Some(MTLS_PROVIDER) {
        let Some(mtls) = &prepared.settings.mtls else {
            return Ok(Answer::Unauthenticated("401: the bundle has no mtls: a client certificate authenticates no one".into()));
        };
        let subject = ["username", "sub"].iter().find_map(|claim| claims.get(*claim).and_then(Value::as_str)).unwrap_or_default().to_string();
        let attributes = certificate_attributes(&subject, mtls);
        (subject, attributes)
    } else {
        let chosen = match provider {
            None if prepared.providers.is_empty() => Ok(None),
            Some(name) => prepared.providers.iter().find(|p| p.name == name).map(Some).ok_or(format!("the bundle has no provider {name:?}")),
            None => provider_for_issuer(&prepared.providers, ProviderTrust::chosen_by, claims.get("iss").and_then(Value::as_str))
                .map(Some)
                .ok_or("401: no provider takes the token's issuer".to_string()),
        };
        let chosen = match chosen {
            Ok(chosen) => chosen,
            Err(why) => return Ok(Answer::Unauthenticated(why)),
        };
        let (provider, trust) = chosen.map_or(("", &Trust::Any), |p| (p.name.as_str(), &p.trust));
        let found = match attributes_from_claims(claims, &prepared.settings.claims, provider, trust) {
            Ok(found) => found,
            Err(_) => return Ok(Answer::Unauthenticated(format!("401: provider {provider:?} may not assert the subject"))),
        };
        if let Some(chosen) = chosen
            && revoked(&chosen.revocation, claims, &found.0)
        {
            return Ok(Answer::Unauthenticated(format!("401: the token has been revoked (provider {provider:?}'s revocation list in the bundle)")));
        }
        found
    };
    if let Some(mapping) = &prepared.settings.tenants {
        decision_table::request::map_tenant(mapping, &subject, &mut attributes);
        if mapping.required && decision_table::request::tenant_of(&attributes).is_none() {
            return Ok(Answer::NoTenant);
        }
    }
    if let Some(ip) = client_ip {
        attributes.insert("clientIP", vec![ip.to_string()]);
    }
    let decision = prepared.evaluator.evaluate(&AccessRequest { subject: &subject, action, resource: &resource, attributes: &attributes, client_address: ClientAddress::Known(attributes.get("clientIP")) });
    let request = reference::Request { subject: &subject, action, resource: &resource, attributes: &attributes };
    let trace = reference::decide(&prepared.policies, &request);
    if trace.allowed != decision.allowed() || trace.deciding.as_deref() != decision.policy {
        return Err(Disagreement(format!(
            "compiled table says {:?} by {:?}, reference says allowed={} by {:?}",
            decision.verdict, decision.policy, trace.allowed, trace.deciding
        )));
    }
    Ok(Answer::Decided { allowed: decision.allowed(), policy: decision.policy.map(str::to_string), trace })
}

/// Whether the bundle's revocation list names the token, as the module reads it: its `jti`, or
/// its subject or `sub` (every token, or those issued before the listed time; without `iat`,
/// revoked).
fn revoked(list: &decision_table::bundle::Revocation, claims: &Map<String, Value>, subject: &str) -> bool {
    let jti = claims.get("jti").and_then(Value::as_str);
    if jti.is_some_and(|jti| list.token_ids.iter().any(|id| id == jti)) {
        return true;
    }
    let revoked_before = |subject: &str| match list.subjects.get(subject) {
        None => false,
        Some(None) => true,
        Some(Some(before)) => claims.get("iat").and_then(Value::as_u64).is_none_or(|iat| iat < *before),
    };
    revoked_before(subject) || claims.get("sub").and_then(Value::as_str).is_some_and(revoked_before)
}

/// The payload of a JWT, unverified (for `explain --token`).
fn unverified_claims(token: &str) -> Result<Map<String, Value>, String> {
    let payload = token.split('.').nth(1).ok_or("a JWT has three dot-separated parts")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| format!("the payload is not base64url: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("the payload is not a JSON object: {e}"))
}

pub fn explain(path: &Path, ask: &Ask, format: Format) -> Exit {
    let prepared = match load_prepared(path, format) {
        Ok(prepared) => prepared,
        Err(exit) => return exit,
    };
    let claims = match (&ask.claims, &ask.token) {
        (Some(text), _) => serde_json::from_str::<Map<String, Value>>(text).map_err(|e| format!("--claims: {e}")),
        (None, Some(token)) => unverified_claims(token).map_err(|e| format!("--token: {e}")),
        (None, None) => Ok(Map::new()),
    };
    let claims = match claims {
        Ok(claims) => claims,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
    };
    let answer = match decide(&prepared, &ask.method, &ask.path, &claims, ask.client_ip.as_deref(), ask.provider.as_deref()) {
        Ok(answer) => answer,
        Err(Disagreement(message)) => {
            eprintln!("internal error, please report: {message}");
            return Exit::Disagreement;
        }
    };
    print_answer(&answer, ask, format);
    let chosen = match ask.provider.as_deref() {
        Some(name) => prepared.providers.iter().find(|p| p.name == name),
        None => provider_for_issuer(&prepared.providers, ProviderTrust::chosen_by, claims.get("iss").and_then(Value::as_str)),
    };
    if let (Format::Human, Some(provider)) = (format, chosen) {
        if let Some(jwks) = &provider.jwks {
            println!("  note: provider {:?} takes its keys from {jwks} at run time; explain does not check signatures", provider.name);
        }
        if provider.revocation.endpoint.is_some() {
            println!("  note: provider {:?} also fetches a revocation list at run time, which explain does not know", provider.name);
        }
    }
    match answer {
        Answer::Decided { allowed: true, .. } | Answer::Bypassed(_) => Exit::Success,
        _ => Exit::Denied,
    }
}

fn print_answer(answer: &Answer, ask: &Ask, format: Format) {
    let (reason, trace) = match answer {
        Answer::Malformed(why) => (format!("400: malformed path: {why}"), None),
        Answer::Unauthenticated(why) => (why.clone(), None),
        Answer::Bypassed(pattern) => (format!("bypassed: the path matches ignore pattern {pattern}"), None),
        Answer::UnmappedMethod => (format!("denied: method {} is not mapped to an action", ask.method), None),
        Answer::NoTenant => ("403: the caller has no tenant, and tenants.required is set".to_string(), None),
        Answer::Decided { allowed: true, policy, trace } => {
            (format!("allowed by policy {}", policy.as_deref().unwrap_or("?")), Some(trace))
        }
        Answer::Decided { allowed: false, policy: Some(policy), trace } => (format!("denied by policy {policy}"), Some(trace)),
        Answer::Decided { allowed: false, policy: None, trace } => ("denied: no policy allows it (default deny)".to_string(), Some(trace)),
    };
    let describe = |verdict: &reference::Verdict| match verdict {
        reference::Verdict::Applies => "applies".to_string(),
        reference::Verdict::ActionMismatch => "action does not match".to_string(),
        reference::Verdict::SubjectMismatch => "subject does not match".to_string(),
        reference::Verdict::ResourceMismatch => "resource does not match".to_string(),
        reference::Verdict::ConditionFails(key) => format!("condition {key:?} does not hold"),
    };
    match format {
        Format::Json => {
            let policies: Vec<Value> = trace
                .map(|t| {
                    t.trace
                        .iter()
                        .map(|(id, effect, verdict)| {
                            json!({"id": id, "effect": if *effect == Effect::Allow { "allow" } else { "deny" }, "applies": *verdict == reference::Verdict::Applies, "why": describe(verdict)})
                        })
                        .collect()
                })
                .unwrap_or_default();
            println!("{}", json!({"decision": answer.label(), "reason": reason, "policies": policies}));
        }
        Format::Human => {
            println!("{} {} -> {}", ask.method, ask.path, answer.label().to_uppercase());
            println!("  {reason}");
            if let Some(trace) = trace {
                for (id, effect, verdict) in &trace.trace {
                    let mark = if *verdict == reference::Verdict::Applies { "+" } else { "-" };
                    let effect = if *effect == Effect::Allow { "allow" } else { "deny " };
                    println!("  {mark} {effect} {id}: {}", describe(verdict));
                }
            }
        }
    }
}

pub fn test(path: &Path, tests: &Path, format: Format) -> Exit {
    let prepared = match load_prepared(path, format) {
        Ok(prepared) => prepared,
        Err(exit) => return exit,
    };
    let suite = match crate::testfile::read(tests) {
        Ok(suite) => suite,
        Err((exit, message)) => {
            eprintln!("error: {message}");
            return exit;
        }
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    for case in &suite.tests {
        let request = &case.request;
        let answer = decide(&prepared, &request.method, &request.path, &request.claims, request.client_ip.as_deref(), request.provider.as_deref());
        let answer = match answer {
            Ok(answer) => answer,
            Err(Disagreement(message)) => {
                eprintln!("internal error in {:?}, please report: {message}", case.name);
                return Exit::Disagreement;
            }
        };
        let got_policy = match &answer {
            Answer::Decided { policy, .. } => policy.clone(),
            _ => None,
        };
        let mut problems = Vec::new();
        if answer.label() != case.expect.as_str() {
            problems.push(format!("expected {}, got {}", case.expect, answer.label()));
        }
        if let Some(wanted) = &case.policy
            && got_policy.as_ref() != Some(wanted)
        {
            problems.push(format!("expected policy {wanted}, got {}", got_policy.as_deref().unwrap_or("none")));
        }
        let ok = problems.is_empty();
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
        match format {
            Format::Human => {
                println!("{}  {}", if ok { "PASS" } else { "FAIL" }, case.name);
                for problem in &problems {
                    println!("      {problem}");
                }
            }
            Format::Json => println!(
                "{}",
                json!({"name": case.name, "passed": ok, "decision": answer.label(), "policy": got_policy, "problems": problems})
            ),
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 { Exit::Success } else { Exit::Denied }
}

pub fn inspect(path: &Path, format: Format) -> Exit {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return Exit::Io;
        }
    };
    let bundle = match Bundle::parse(text.as_bytes()) {
        Ok(bundle) => bundle,
        Err(e) => {
            eprintln!("error: {} is not a bundle: {e}", path.display());
            return Exit::InvalidInput;
        }
    };
    let table = match Table::decode_base64(&bundle.table) {
        Ok(table) => table,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return Exit::InvalidInput;
        }
    };
    let hash_ok = table.content_hash() == bundle.table_hash;
    let denies = table.policies.iter().filter(|p| p.effect == decision_table::Effect::Deny).count();
    let regexes = table.strings.iter().filter(|s| s.starts_with('^')).count();
    let keys: Vec<Value> = bundle
        .providers
        .iter()
        .flat_map(|p| p.keys.iter().map(move |k| json!({"provider": p.name, "issuer": p.issuer, "kid": k.get("kid"), "alg": k.get("alg"), "kty": k.get("kty")})))
        .collect();
    let providers: Vec<Value> = bundle
        .providers
        .iter()
        .map(|p| json!({"name": p.name, "issuer": p.issuer, "audiences": p.audiences, "may_assert": p.may_assert, "jwks": p.jwks, "revocation": p.revocation}))
        .collect();
    let summary = json!({
        "format": bundle.format,
        "bytes": text.len(),
        "table_bytes": table.encode().len(),
        "table_hash": bundle.table_hash,
        "hash_matches": hash_ok,
        "policies": table.policies.len(),
        "allow": table.policies.len() - denies,
        "deny": denies,
        "strings": table.strings.len(),
        "regexes": regexes,
        "actions": table.actions.iter().map(|a| table.string(*a)).collect::<Vec<_>>(),
        "mode": bundle.settings.mode,
        "ignore_patterns": bundle.settings.ignore_patterns,
        "providers": providers,
        "keys": keys,
    });
    match format {
        Format::Json => println!("{summary}"),
        Format::Human => {
            println!("bundle {} (format {}, {} bytes)", path.display(), bundle.format, text.len());
            println!("  table: {} bytes, hash {}{}", table.encode().len(), bundle.table_hash, if hash_ok { "" } else { " (MISMATCH)" });
            println!("  policies: {} ({} allow, {} deny); {} strings, {} regexes", table.policies.len(), table.policies.len() - denies, denies, table.strings.len(), regexes);
            println!("  actions: {}", table.actions.iter().map(|a| table.string(*a)).collect::<Vec<_>>().join(", "));
            println!("  mode: {:?}; ignore patterns: {}", bundle.settings.mode, bundle.settings.ignore_patterns.len());
            for provider in &bundle.providers {
                let issuer = provider.issuer.as_deref().map_or("any issuer no other provider names".to_string(), |i| format!("issuer {i}"));
                let audiences = if provider.audiences.is_empty() { "no audience check".to_string() } else { format!("audiences {}", provider.audiences.join(", ")) };
                let may_assert = match &provider.may_assert {
                    decision_table::bundle::MayAssert::Any => "may assert any claim".to_string(),
                    decision_table::bundle::MayAssert::Only(limits) if limits.is_empty() => "may assert nothing but its subject".to_string(),
                    decision_table::bundle::MayAssert::Only(limits) => {
                        let limits: Vec<String> = limits.iter().map(|(name, values)| format!("{name} {}", values.join("|"))).collect();
                        format!("may assert only: {}", limits.join("; "))
                    }
                };
                println!("  provider {}: {issuer}; {audiences}; {may_assert}", provider.name);
                if let Some(jwks) = &provider.jwks {
                    let found = if jwks.discovery { " (its openid configuration: the jwks_uri in it)" } else { "" };
                    println!("    jwks: {}{found}", describe_endpoint(&jwks.endpoint));
                }
                let revocation = &provider.revocation;
                if !revocation.is_empty() {
                    println!("    revoked: {} token ids, {} subjects", revocation.token_ids.len(), revocation.subjects.len());
                }
                if let Some(endpoint) = &revocation.endpoint {
                    println!("    revocation list: {}", describe_endpoint(endpoint));
                }
            }
            for key in &keys {
                println!("  key: provider {} kid {} alg {} ({})", key["provider"], key["kid"], key["alg"], key["kty"]);
            }
        }
    }
    if hash_ok { Exit::Success } else { Exit::InvalidInput }
}

pub fn render(template: &Path, bundle: &Path, output: Option<&Path>) -> Exit {
    let read = |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    let (template, bundle_text) = match (read(template), read(bundle)) {
        (Ok(t), Ok(b)) => (t, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Exit::Io;
        }
    };
    let bundle = match Bundle::parse(bundle_text.as_bytes()) {
        Ok(bundle) => bundle,
        Err(e) => {
            eprintln!("error: not a bundle: {e}");
            return Exit::InvalidInput;
        }
    };
    let rendered = match crate::render::render(&template, &bundle) {
        Ok(rendered) => rendered,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
    };
    match output {
        Some(out) => match std::fs::write(out, rendered) {
            Ok(()) => Exit::Success,
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", out.display());
                Exit::Io
            }
        },
        None => {
            print!("{rendered}");
            Exit::Success
        }
    }
}

/// An endpoint as `inspect` and `explain` show it.
pub fn describe_endpoint(endpoint: &decision_table::bundle::Endpoint) -> String {
    format!(
        "{}://{}{} via {} (refresh {} s, max-age held to {}..{} s, retry {} s, timeout {} ms, at most {} bytes)",
        endpoint.scheme,
        endpoint.authority,
        endpoint.path,
        endpoint.upstream,
        endpoint.refresh_seconds,
        endpoint.min_refresh_seconds,
        endpoint.max_refresh_seconds,
        endpoint.retry_seconds,
        endpoint.timeout_ms,
        endpoint.max_bytes
    )
}

/// `policy-compiler jwks`: the public key of the minted internal tokens, as a JWKS.
pub fn jwks(path: &Path, format: Format) -> Exit {
    let file = match load(path, format) {
        Ok(file) => file,
        Err(exit) => return exit,
    };
    let settings = match build::settings(&file) {
        Ok(settings) => settings,
        Err(problems) => {
            report(&problems, format);
            return Exit::InvalidInput;
        }
    };
    match build::mint_jwks(&settings) {
        Some(jwks) => {
            println!("{jwks}");
            Exit::Success
        }
        None => {
            eprintln!("error: {}: no filter.mint, so no minted tokens to publish a key for", path.display());
            Exit::InvalidInput
        }
    }
}
