//! Risks `check` reports beyond hard errors: policies that can never apply, allows fully
//! shadowed by an unconditional deny, and suspiciously broad allows.

use decision_table::bundle::Settings;

use crate::diagnostics::Problem;
use crate::reference::ladon_match;
use crate::source::{Effect, PolicyFile, SourcePolicy};

/// Patterns that match every value (`<.*>`), or every non-empty one (`<.+>`).
fn catch_all(pattern: &str) -> bool {
    matches!(pattern, "<.*>" | "<.+>" | "<.*?>" | "<.+?>")
}

pub fn lint(file: &PolicyFile, policies: &[SourcePolicy], settings: &Settings) -> Vec<Problem> {
    let mut found = Vec::new();
    let warn = |policy: &SourcePolicy, code: &str, message: String, help: &str| {
        let problem = Problem::warning(code, format!("policy {:?}: {message}", policy.id)).help(help);
        match file.source.locate(&policy.id, &policy.id) {
            Some((offset, len)) => problem.at(&file.source, offset, len, "this policy"),
            None => problem.in_file(&file.source),
        }
    };
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
        if policy.effect == Effect::Allow {
            if let Some(deny) = policies.iter().find(|d| d.effect == Effect::Deny && d.conditions.is_empty() && shadows(d, policy)) {
                found.push(warn(
                    policy,
                    "shadowed",
                    format!("every request it allows is denied by {:?}, which has no condition", deny.id),
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
    found
}

/// Does unconditional deny `deny` cover every (action, subject, resource) of `allow`?
fn shadows(deny: &SourcePolicy, allow: &SourcePolicy) -> bool {
    let covers = |deny: &[String], allow: &[String]| {
        allow.iter().all(|a| deny.iter().any(|d| catch_all(d) || d == a || (!a.contains('<') && ladon_match(d, a))))
    };
    covers(&deny.actions, &allow.actions) && covers(&deny.subjects, &allow.subjects) && covers(&deny.resources, &allow.resources)
}
