//! Risks `check` reports beyond hard errors: policies that can never apply, allows fully
//! shadowed by an unconditional deny, suspiciously broad allows, allows any of several
//! providers' tokens can satisfy, and providers no allow can ever admit.

use std::collections::BTreeMap;

use decision_table::bundle::{MTLS_PROVIDER, MayAssert, PROVIDER_ATTRIBUTE, Provider, Settings};
use decision_table::pattern::{self, CompiledPattern};

use crate::diagnostics::Problem;
use crate::reference::ladon_match;
use crate::source::{Effect, PolicyFile, SourceCondition, SourcePolicy};

/// Patterns that match every value (`<.*>`), or every non-empty one (`<.+>`).
fn catch_all(pattern: &str) -> bool {
    matches!(pattern, "<.*>" | "<.+>" | "<.*?>" | "<.+?>")
}

pub fn lint(file: &PolicyFile, policies: &[SourcePolicy], settings: &Settings, providers: &[Provider]) -> Vec<Problem> {
    let mut found = Vec::new();
    let warn = |policy: &SourcePolicy, code: &str, message: String, help: &str| {
        let problem = Problem::warning(code, format!("policy {:?}: {message}", policy.id)).help(help);
        match file.source.locate(&policy.id, &policy.id) {
            Some((offset, len)) => problem.at(&file.source, offset, len, "this policy"),
            None => problem.in_file(&file.source),
        }
    };
    // A key set or revocation list fetched over plain HTTP can be replaced by anyone on the
    // way, and with it every key.
    // Likewise an endpoint that vouches for credentials or grants tenants, and one that is
    // sent passwords or the gateway's client secret.
    for provider in providers {
        let fetched = provider
            .jwks
            .iter()
            .map(|j| ("jwks", &j.endpoint))
            .chain(provider.revocation.endpoint.iter().map(|e| ("revocation list", e)))
            .chain(provider.introspection.iter().map(|i| ("introspection endpoint", &i.endpoint)))
            .chain(provider.basic.iter().map(|b| ("Basic check endpoint", &b.endpoint)));
        for (what, endpoint) in fetched {
            if endpoint.scheme == "http" {
                let message = format!("provider {:?}: its {what} is fetched over plain http ({}{})", provider.name, endpoint.authority, endpoint.path);
                found.push(Problem::warning("plain-http-fetch", message).in_file(&file.source).help("use an https URI (on Envoy, a cluster with TLS)"));
            }
        }
    }
    if let Some(endpoint) = settings.tenants.as_ref().and_then(|t| t.endpoint.as_ref())
        && endpoint.scheme == "http"
    {
        let message = format!("the tenant-mapping endpoint is called over plain http ({}{}): anyone on the way could grant any tenant and scopes", endpoint.authority, endpoint.path);
        found.push(Problem::warning("plain-http-fetch", message).in_file(&file.source).help("use an https URI (on Envoy, a cluster with TLS)"));
    }
    let mapped: Vec<&String> = settings.actions.values().collect();
    for policy in policies {
        let empty = [("subjects", &policy.subjects), ("resources", &policy.resources), ("actions", &policy.actions)]
            .into_iter()
            .find(|(_, list)| list.is_empty());
        if let Some((field, _)) = empty {
            found.push(warn(policy, "never-applies", format!("no {field}, so it can never apply"), "Ladon needs a match in subjects, resources and actions"));
            continue;
        }
        if !policy.actions.iter().any(|a| mapped.iter().any(|m| ladon_match(a, m))) {
            found.push(warn(
                policy,
                "never-applies",
                format!("its actions {:?} match no mapped method's action", policy.actions),
                "methods map to api:read and api:write unless `filter.actions` says otherwise",
            ));
            continue;
        }
        if let Some(resource) = policy.resources.iter().find(|r| !r.starts_with('/') && !r.starts_with('<')) {
            found.push(warn(
                policy,
                "never-applies",
                format!("resource {resource:?} does not start with `/`, and every request path does"),
                "write the path as the request has it: `/users/me`",
            ));
            continue;
        }
        for (key, condition) in &policy.conditions {
            if let SourceCondition::AnyOf { values, .. } = condition
                && let Some(value) = values.iter().find(|v| matches!(v.as_str(), ".*" | ".+" | ".*?" | ".+?"))
            {
                found.push(warn(
                    policy,
                    "broad-condition",
                    format!("its condition on {key:?} has the value {value:?}, which any caller with any {key} satisfies"),
                    "name the values, or drop the condition if any caller is meant",
                ));
            }
        }
        if policy.effect == Effect::Deny
            && !settings.ignore_patterns.is_empty()
            && policy.resources.iter().all(|r| !r.contains('<') && settings.ignore_patterns.iter().any(|re| regex_lite::Regex::new(re).is_ok_and(|re| re.is_match(r))))
        {
            found.push(warn(
                policy,
                "never-applies",
                "every resource it denies is under an ignore pattern, and a bypassed request is never authorised".into(),
                "take the paths out of ignorePatterns, or drop the deny",
            ));
        }
        if policy.effect == Effect::Allow {
            // A deny shadows an allow when it covers every request of it and its conditions
            // hold whenever the allow's do (here: each is one of the allow's own).
            let implied = |deny: &SourcePolicy| deny.conditions.iter().all(|(key, condition)| policy.conditions.get(key) == Some(condition));
            if let Some(deny) = policies.iter().find(|d| d.effect == Effect::Deny && implied(d) && shadows(d, policy)) {
                let which = if deny.conditions.is_empty() { "which has no condition" } else { "whose conditions are the allow's own" };
                found.push(warn(
                    policy,
                    "shadowed",
                    format!("every request it allows is denied by {:?}, {which}", deny.id),
                    "deny overrides allow: remove one of the two, or narrow the deny",
                ));
            }
            let anyone = policy.subjects.iter().any(|s| catch_all(s));
            let anywhere = policy.resources.iter().any(|r| catch_all(r));
            if anyone && anywhere && policy.conditions.is_empty() {
                found.push(warn(
                    policy,
                    "broad-allow",
                    "allows any subject on any resource with no condition".into(),
                    "add a condition (roles, scopes, ...) or narrow the subjects or resources",
                ));
            }
        }
    }
    found.extend(provider_lints(file, policies, settings, providers));
    found
}

/// Who can authenticate, and what each may assert: the token providers, and `mtls` with the
/// roles the bundle gives certificates.
fn sources(settings: &Settings, providers: &[Provider]) -> Vec<(String, MayAssert)> {
    let mut sources: Vec<(String, MayAssert)> = providers.iter().map(|p| (p.name.clone(), p.may_assert.clone())).collect();
    if let Some(mtls) = &settings.mtls {
        // Any identity the proxy's TLS layer accepted authenticates, with the roles the map
        // gives it.
        let mut roles: Vec<String> = mtls.roles.values().flatten().map(|role| regex_lite::escape(role)).collect();
        roles.sort();
        roles.dedup();
        sources.push((MTLS_PROVIDER.into(), MayAssert::Only(BTreeMap::from([("roles".to_string(), roles), ("subject".to_string(), vec![".+".to_string()])]))));
    }
    sources
}

fn provider_lints(file: &PolicyFile, policies: &[SourcePolicy], settings: &Settings, providers: &[Provider]) -> Vec<Problem> {
    let mut found = Vec::new();
    let sources = sources(settings, providers);
    let at_policy = |problem: Problem, policy: &SourcePolicy| match file.source.locate(&policy.id, &policy.id) {
        Some((offset, len)) => problem.at(&file.source, offset, len, "this policy"),
        None => problem.in_file(&file.source),
    };
    let allows: Vec<&SourcePolicy> = policies.iter().filter(|p| p.effect == Effect::Allow).collect();
    if sources.len() > 1 {
        for policy in allows.iter().filter(|p| p.providers.is_empty()) {
            let satisfied_by: Vec<&str> = sources.iter().filter(|(name, may)| can_satisfy(policy, name, may)).map(|(name, _)| name.as_str()).collect();
            if satisfied_by.len() > 1 {
                found.push(at_policy(
                    Problem::warning(
                        "any-provider",
                        format!("policy {:?} can be satisfied by the callers of several providers ({})", policy.id, satisfied_by.join(", ")),
                    )
                    .help("bind it to the providers it is meant for with `providers: [...]`, or narrow what they may assert (`may_assert`)"),
                    policy,
                ));
            }
        }
    }
    for (name, may) in &sources {
        if !allows.iter().any(|policy| can_satisfy(policy, name, may)) {
            found.push(
                Problem::warning("unreachable-provider", format!("no allow policy can be satisfied by a caller of provider {name:?}: its tokens authenticate but are always denied"))
                    .in_file(&file.source)
                    .help("bind a policy to it (`providers`), let it assert what a policy needs, or remove it"),
            );
        }
    }
    if settings.token_sources.is_empty() {
        for provider in providers {
            found.push(
                Problem::warning("unreachable-provider", format!("provider {:?} can never be reached: `token_sources` is empty", provider.name)).in_file(&file.source),
            );
        }
    }
    found
}

/// Whether a caller of `provider`, asserting no more than `may`, could satisfy every
/// condition of `policy`. Generous where it cannot tell (two regexes are taken to overlap).
fn can_satisfy(policy: &SourcePolicy, provider: &str, may: &MayAssert) -> bool {
    if !policy.providers.is_empty() && !policy.providers.iter().any(|p| p == provider) {
        return false;
    }
    let MayAssert::Only(limits) = may else { return true };
    let subjects = limits.get("subject").map(Vec::as_slice).unwrap_or_default();
    if !policy.subjects.iter().any(|s| subjects.iter().any(|allowed| overlaps(pattern::ladon(s), allowed))) {
        return false;
    }
    policy.conditions.iter().all(|(key, condition)| {
        if [PROVIDER_ATTRIBUTE, decision_table::eval::CLIENT_IP, "subject", "username"].contains(&key.as_str()) {
            return true;
        }
        match (condition, limits.get(key)) {
            (SourceCondition::Owner | SourceCondition::NoneOf { .. }, _) => true,
            (_, None) => false,
            (SourceCondition::AnyOf { values, .. }, Some(allowed)) => values.iter().any(|v| allowed.iter().any(|a| overlaps(pattern::condition_value(v), a))),
            (SourceCondition::StringEqual(text), Some(allowed)) => allowed.iter().any(|a| whole_match(a, text)),
            (_, Some(allowed)) => !allowed.is_empty(),
        }
    })
}

/// Whether regex `re` (as the bundle carries it, unanchored) matches the whole of `text`.
fn whole_match(re: &str, text: &str) -> bool {
    regex_lite::Regex::new(&format!("^(?:{re})$")).is_ok_and(|re| re.is_match(text))
}

/// The literal a regex stands for when it is an escaped exact value (as the compiler writes
/// one).
fn literal_of(re: &str) -> Option<String> {
    let mut literal = String::new();
    let mut chars = re.chars();
    while let Some(ch) = chars.next() {
        literal.push(if ch == '\\' { chars.next()? } else { ch });
    }
    (regex_lite::escape(&literal) == re).then_some(literal)
}

/// Could a value match both `pattern` (a compiled condition value or Ladon pattern) and the
/// regex `allowed`? Two regexes are taken to overlap.
fn overlaps(pattern: Result<CompiledPattern, pattern::PatternError>, allowed: &str) -> bool {
    match (pattern, literal_of(allowed)) {
        (Ok(CompiledPattern::Exact(text)), _) => whole_match(allowed, &text),
        (Ok(CompiledPattern::Regex { source, .. }), Some(literal)) => regex_lite::Regex::new(&source).is_ok_and(|re| re.is_match(&literal)),
        _ => true,
    }
}

/// Does unconditional deny `deny` cover every (action, subject, resource) of `allow`?
fn shadows(deny: &SourcePolicy, allow: &SourcePolicy) -> bool {
    let covers = |deny: &[String], allow: &[String]| {
        allow.iter().all(|a| deny.iter().any(|d| catch_all(d) || d == a || (!a.contains('<') && ladon_match(d, a))))
    };
    covers(&deny.actions, &allow.actions) && covers(&deny.subjects, &allow.subjects) && covers(&deny.resources, &allow.resources)
}
