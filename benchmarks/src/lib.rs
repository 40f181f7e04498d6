//! A realistic policy generator for the decision benchmarks: mostly literal and prefix
//! resources, some regexes, role and organisation conditions.

use std::collections::BTreeMap;

use decision_table::Attributes;
use policy_compiler::source::{Effect, SourceCondition, SourcePolicy};

/// `count` policies over `count / 4` services; deterministic.
pub fn policies(count: usize) -> Vec<SourcePolicy> {
    (0..count)
        .map(|i| {
            let service = i / 4;
            let (resources, subjects) = match i % 20 {
                0..=11 => (vec![format!("/svc{service}/items/{i}")], vec!["<.+>".to_string()]),
                12..=16 => (vec![format!("/svc{service}/items/<[^/]+>/detail{i}")], vec!["<.+>".to_string()]),
                17 | 18 => (vec![format!("/svc{service}/<(a|b)>/x{i}")], vec![format!("user{}", i % 50)]),
                _ => (vec![format!("/svc{service}/<.*>")], vec!["<.+>".to_string()]),
            };
            let mut conditions = BTreeMap::new();
            if i % 2 == 0 {
                conditions.insert("roles".into(), SourceCondition::AnyOf { kind: "RolesCondition".into(), values: vec![format!("role{}", i % 7), "admin".into()] });
            }
            if i % 5 == 0 {
                conditions.insert("organizations".into(), SourceCondition::AnyOf { kind: "OrganizationsCondition".into(), values: vec![format!("org{}", i % 3)] });
            }
            SourcePolicy {
                id: format!("p{i:06}"),
                description: String::new(),
                subjects,
                resources,
                actions: vec![if i % 3 == 0 { "api:write" } else { "api:read" }.to_string()],
                effect: if i % 19 == 0 { Effect::Deny } else { Effect::Allow },
                conditions,
                providers: Vec::new(),
            }
        })
        .collect()
}

/// A request for the benchmark: (subject, action, resource, attributes). Each aims at one
/// policy (spread over the set) and is built to satisfy it: six in ten as it is (allowed, or
/// denied when a deny policy of its service also applies), three in ten with the wrong role
/// (a default deny where the policy needs one), one in ten at a path no policy names.
pub fn requests(count: usize, policies: usize) -> Vec<(String, String, String, Attributes)> {
    (0..count)
        .map(|n| {
            let i = (n * 7919) % policies.max(1);
            let service = i / 4;
            let mut subject = format!("user{}", n % 50);
            let resource = match (n % 10, i % 20) {
                (9, _) => format!("/svc{service}/unknown/{n}"),
                (_, 0..=11) => format!("/svc{service}/items/{i}"),
                (_, 12..=16) => format!("/svc{service}/items/abc/detail{i}"),
                (_, 17 | 18) => {
                    subject = format!("user{}", i % 50);
                    format!("/svc{service}/a/x{i}")
                }
                _ => format!("/svc{service}/any/{n}"),
            };
            let role = if (6..=8).contains(&(n % 10)) { "no-such-role".to_string() } else { format!("role{}", i % 7) };
            let attributes = Attributes::new().with("roles", &[&role]).with("organizations", &[&format!("org{}", i % 3)]);
            (subject, if i.is_multiple_of(3) { "api:write" } else { "api:read" }.to_string(), resource, attributes)
        })
        .collect()
}
