//! The compiled table and the reference evaluator agree on every decision and deciding
//! policy, for policy sets and requests built from fuzzer bytes (the property tests'
//! counterpart, coverage-guided).
#![no_main]

use std::collections::BTreeMap;

use decision_table::{AccessRequest, Attributes, ClientAddress, Evaluator};
use libfuzzer_sys::fuzz_target;
use policy_compiler::source::{Effect, SourceCondition, SourcePolicy};
use policy_compiler::{compile, reference};

const SUBJECTS: [&str; 6] = ["ana", "bob", "<.+>", "<.*>", "<ana|eve>", "svc-<[a-z]+>"];
const RESOURCES: [&str; 8] = ["/a", "/a/b", "/a<.*>", "/a/<[^/]+>", "<.+>", "/b/<[0-9]+>", "/<a|b>/c", "<.*>/c"];
const ACTIONS: [&str; 4] = ["api:read", "api:write", "api:<.*>", "api:admin"];
const VALUES: [&str; 6] = ["user", "admin", "ad.*", "gold", "10.0.0.0/8", "ana"];
const REQUEST_PATHS: [&str; 8] = ["/a", "/a/b", "/a/bc", "/b/12", "/b/c", "/c", "/a/b/c", "/"];

/// Bytes in, choices out; runs dry as zeros.
struct Picks<'a>(&'a [u8]);

impl Picks<'_> {
    fn next(&mut self, n: usize) -> usize {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        usize::from(first) % n.max(1)
    }

    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[self.next(from.len())]
    }

    fn some<'s>(&mut self, from: &[&'s str], most: usize) -> Vec<String> {
        (0..self.next(most + 1)).map(|_| self.pick(from).to_string()).collect()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut picks = Picks(data);
    let mut policies: Vec<SourcePolicy> = (0..picks.next(6))
        .map(|i| {
            let mut conditions = BTreeMap::new();
            match picks.next(5) {
                0 => drop(conditions.insert("roles".to_string(), SourceCondition::AnyOf { kind: "RolesCondition".into(), values: picks.some(&VALUES, 2) })),
                1 => drop(conditions.insert("scopes".to_string(), SourceCondition::NoneOf { values: picks.some(&VALUES, 2) })),
                2 => drop(conditions.insert("owner".to_string(), SourceCondition::Owner)),
                3 => drop(conditions.insert("clientIP".to_string(), SourceCondition::Cidr(vec!["10.0.0.0/8".into()]))),
                _ => {}
            }
            SourcePolicy {
                id: format!("p{i}"),
                description: String::new(),
                subjects: picks.some(&SUBJECTS, 2),
                resources: picks.some(&RESOURCES, 2),
                actions: picks.some(&ACTIONS, 2),
                effect: if picks.next(2) == 0 { Effect::Allow } else { Effect::Deny },
                conditions,
                providers: Vec::new(),
            }
        })
        .collect();
    policies.sort_by(|a, b| a.id.cmp(&b.id));
    let Ok(table) = compile::table(&policies, &["api:read".into(), "api:write".into()], None) else { return };
    let Ok(evaluator) = Evaluator::from_bytes(&table.encode()) else { panic!("a compiled table must load") };
    for _ in 0..4 {
        let subject = picks.pick(&["ana", "bob", "eve", "svc-x", ""]);
        let action = picks.pick(&["api:read", "api:write", "api:admin"]);
        let resource = picks.pick(&REQUEST_PATHS);
        let mut attributes = Attributes::new();
        attributes.insert("roles", picks.some(&["user", "admin", "superuser"], 2));
        attributes.insert("scopes", picks.some(&["user", "gold"], 2));
        attributes.insert("owner", picks.some(&["ana", "bob"], 2));
        attributes.insert("clientIP", picks.some(&["10.1.2.3", "192.168.0.1:80", "x"], 1));
        let table_decision = evaluator.evaluate(&AccessRequest { subject, action, resource, attributes: &attributes, client_address: ClientAddress::Known(attributes.get("clientIP")) });
        let literal = reference::decide(&policies, &reference::Request { subject, action, resource, attributes: &attributes });
        assert_eq!(table_decision.allowed(), literal.allowed, "{subject} {action} {resource} {attributes:?}");
        assert_eq!(table_decision.policy, literal.deciding.as_deref());
    }
});
