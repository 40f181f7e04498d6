//! The reference evaluator: Ladon's `DoPoliciesAllow` applied literally to the source
//! policies, one by one, with its own pattern matching. It shares no matching code with the
//! decision table, so property tests comparing the two catch a mistake in either. `explain`
//! uses it to say why each policy applied or not.

use decision_table::Attributes;

use crate::compile::parse_network;
use crate::source::{Effect, SourceCondition, SourcePolicy};

pub struct Request<'a> {
    pub subject: &'a str,
    pub action: &'a str,
    pub resource: &'a str,
    pub attributes: &'a Attributes,
}

/// Why a policy did or did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Applies,
    ActionMismatch,
    SubjectMismatch,
    ResourceMismatch,
    ConditionFails(String),
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub allowed: bool,
    pub deciding: Option<String>,
    pub trace: Vec<(String, Effect, Verdict)>,
}

pub fn decide(policies: &[SourcePolicy], request: &Request<'_>) -> Outcome {
    let mut trace = Vec::new();
    let mut allowed_by: Option<String> = None;
    let mut denied_by: Option<String> = None;
    for policy in policies {
        let verdict = judge(policy, request);
        if verdict == Verdict::Applies {
            match policy.effect {
                Effect::Deny => {
                    denied_by.get_or_insert(policy.id.clone());
                }
                Effect::Allow => {
                    allowed_by.get_or_insert(policy.id.clone());
                }
            }
        }
        trace.push((policy.id.clone(), policy.effect, verdict));
    }
    match (denied_by, allowed_by) {
        (Some(deny), _) => Outcome { allowed: false, deciding: Some(deny), trace },
        (None, Some(allow)) => Outcome { allowed: true, deciding: Some(allow), trace },
        (None, None) => Outcome { allowed: false, deciding: None, trace },
    }
}

fn judge(policy: &SourcePolicy, request: &Request<'_>) -> Verdict {
    if !policy.actions.iter().any(|p| ladon_match(p, request.action)) {
        return Verdict::ActionMismatch;
    }
    if !policy.subjects.iter().any(|p| ladon_match(p, request.subject)) {
        return Verdict::SubjectMismatch;
    }
    if !policy.resources.iter().any(|p| ladon_match(p, request.resource)) {
        return Verdict::ResourceMismatch;
    }
    for (key, condition) in &policy.conditions {
        if !holds(condition, request.attributes.get(key), request.subject) {
            return Verdict::ConditionFails(key.clone());
        }
    }
    Verdict::Applies
}

/// Ladon's matcher: no `<` means equality; otherwise literal text and `<regex>` parts.
pub fn ladon_match(pattern: &str, value: &str) -> bool {
    if !pattern.contains('<') {
        return pattern == value;
    }
    let mut regex = String::from("^");
    let mut depth = 0usize;
    let mut part = String::new();
    for ch in pattern.chars() {
        match (ch, depth) {
            ('<', 0) => {
                regex.push_str(&regex_lite::escape(&std::mem::take(&mut part)));
                depth = 1;
            }
            ('>', 1) => {
                regex.push('(');
                regex.push_str(&std::mem::take(&mut part));
                regex.push(')');
                depth = 0;
            }
            ('<', _) => {
                depth += 1;
                part.push(ch);
            }
            ('>', 0) => return false,
            ('>', _) => {
                depth -= 1;
                part.push(ch);
            }
            _ => part.push(ch),
        }
    }
    if depth != 0 {
        return false;
    }
    regex.push_str(&regex_lite::escape(&part));
    regex.push('$');
    cached_match(&regex, value)
}

fn value_matches(pattern: &str, value: &str) -> bool {
    cached_match(&format!("^(?:{pattern})$"), value)
}

/// Matches with a compiled regex kept per thread, as Ladon keeps compiled patterns; an
/// invalid regex matches nothing.
fn cached_match(source: &str, value: &str) -> bool {
    thread_local! {
        static COMPILED: std::cell::RefCell<std::collections::HashMap<String, Option<regex_lite::Regex>>> = Default::default();
    }
    COMPILED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache
            .entry(source.to_string())
            .or_insert_with(|| regex_lite::Regex::new(source).ok())
            .as_ref()
            .is_some_and(|re| re.is_match(value))
    })
}

fn holds(condition: &SourceCondition, values: &[String], subject: &str) -> bool {
    let single = match values {
        [one] => Some(one.as_str()),
        _ => None,
    };
    match condition {
        SourceCondition::AnyOf { values: patterns, .. } => {
            values.iter().any(|v| patterns.iter().any(|p| value_matches(p, v)))
        }
        SourceCondition::NoneOf { values: patterns } => {
            !values.iter().any(|v| patterns.iter().any(|p| value_matches(p, v)))
        }
        SourceCondition::Owner => values.is_empty() || single == Some(subject),
        SourceCondition::EqualsSubject => single == Some(subject),
        SourceCondition::StringEqual(expected) => single == Some(expected.as_str()),
        SourceCondition::StringMatch(pattern) => single.is_some_and(|v| value_matches(pattern, v)),
        SourceCondition::Cidr(networks) => single.is_some_and(|v| {
            networks
                .iter()
                .filter_map(|n| parse_network(n).ok())
                .any(|n| decision_table::eval::in_networks(v, std::slice::from_ref(&n)))
        }),
        SourceCondition::Boolean(expected) => single == Some(if *expected { "true" } else { "false" }),
    }
}
