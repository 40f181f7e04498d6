//! The compiled table must agree with the reference evaluator (Ladon's loop over the source
//! policies) on every decision and on the deciding policy, and obey the laws: deny wins,
//! policy order never matters, no applicable allow means deny.

use std::collections::BTreeMap;

use decision_table::{AccessRequest, Attributes, ClientAddress, Evaluator};
use policy_compiler::compile;
use policy_compiler::reference;
use policy_compiler::source::{Effect, SourceCondition, SourcePolicy};
use proptest::prelude::*;

const ACTIONS: [&str; 2] = ["api:read", "api:write"];

fn pattern(choices: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(choices).prop_map(str::to_string)
}

fn subjects() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(pattern(&["ana", "bob", "<.+>", "<.*>", "<ana|eve>", "svc-<[a-z]+>", "<[a-c].*>"]), 0..3)
}

fn resources() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        pattern(&["/a", "/a/b", "/b", "/a<.*>", "/a/<[^/]+>", "<.+>", "/b/<[0-9]+>", "/<a|b>/c", "/a/b<.*>", "<.*>/c"]),
        0..3,
    )
}

fn actions() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(pattern(&["api:read", "api:write", "api:<.*>", "api:<read>", "api:admin"]), 0..3)
}

fn condition() -> impl Strategy<Value = (String, SourceCondition)> {
    prop_oneof![
        proptest::collection::vec(pattern(&["user", "admin", "ad.*", "svc|bot"]), 0..3)
            .prop_map(|values| ("roles".to_string(), SourceCondition::AnyOf { kind: "RolesCondition".into(), values })),
        proptest::collection::vec(pattern(&["read", "write"]), 1..3)
            .prop_map(|values| ("scopes".to_string(), SourceCondition::NoneOf { values })),
        Just(("owner".to_string(), SourceCondition::Owner)),
        Just(("who".to_string(), SourceCondition::EqualsSubject)),
        Just(("tier".to_string(), SourceCondition::StringEqual("gold".into()))),
        Just(("tier".to_string(), SourceCondition::StringMatch("gol.|silver".into()))),
        Just(("clientIP".to_string(), SourceCondition::Cidr(vec!["10.0.0.0/8".into(), "2001:db8::/32".into()]))),
        Just(("flag".to_string(), SourceCondition::Boolean(true))),
    ]
}

fn policy_set() -> impl Strategy<Value = Vec<SourcePolicy>> {
    let policy = (subjects(), resources(), actions(), any::<bool>(), proptest::collection::vec(condition(), 0..3));
    proptest::collection::vec(policy, 0..8).prop_map(|policies| {
        policies
            .into_iter()
            .enumerate()
            .map(|(index, (subjects, resources, actions, deny, conditions))| SourcePolicy {
                id: format!("p{index:02}"),
                description: String::new(),
                subjects,
                resources,
                actions,
                effect: if deny { Effect::Deny } else { Effect::Allow },
                conditions: conditions.into_iter().collect::<BTreeMap<_, _>>(),
                providers: Vec::new(),
            })
            .collect()
    })
}

#[derive(Debug, Clone)]
struct Ask {
    subject: String,
    action: String,
    resource: String,
    attributes: Attributes,
}

fn ask() -> impl Strategy<Value = Ask> {
    let values = |choices: &'static [&'static str]| proptest::collection::vec(pattern(choices), 0..3);
    (
        pattern(&["ana", "bob", "eve", "svc-x", "carl", ""]),
        pattern(&["api:read", "api:write", "api:admin", "other"]),
        pattern(&["/a", "/a/b", "/a/bc", "/b", "/b/12", "/b/c", "/a/c", "/c", "/a/b/c", "/"]),
        values(&["user", "admin", "superuser", "admin2", "bot"]),
        values(&["read", "write"]),
        values(&["ana", "bob"]),
        values(&["gold", "golf", "silver", "iron"]),
        values(&["10.1.2.3", "10.1.2.3:80", "192.168.0.1", "[2001:db8::1]:443", "::ffff:10.0.0.1", "nonsense"]),
        values(&["true", "false"]),
    )
        .prop_map(|(subject, action, resource, roles, scopes, people, tier, ip, flag)| {
            let mut attributes = Attributes::new();
            attributes.insert("roles", roles);
            attributes.insert("scopes", scopes);
            attributes.insert("owner", people.clone());
            attributes.insert("who", people);
            attributes.insert("tier", tier);
            attributes.insert("clientIP", ip);
            attributes.insert("flag", flag);
            Ask { subject, action, resource, attributes }
        })
}

fn evaluator(policies: &[SourcePolicy]) -> Evaluator {
    let mut sorted = policies.to_vec();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let table = compile::table(&sorted, &ACTIONS.map(str::to_string), None).unwrap();
    // Through the bytes, as the filter gets it.
    Evaluator::from_bytes(&table.encode()).unwrap()
}

fn table_decision(evaluator: &Evaluator, ask: &Ask) -> (bool, Option<String>) {
    let request = AccessRequest { subject: &ask.subject, action: &ask.action, resource: &ask.resource, attributes: &ask.attributes, client_address: ClientAddress::Known(ask.attributes.get("clientIP")) };
    let decision = evaluator.evaluate(&request);
    (decision.allowed(), decision.policy.map(str::to_string))
}

fn reference_decision(policies: &[SourcePolicy], ask: &Ask) -> (bool, Option<String>) {
    let mut sorted = policies.to_vec();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let request = reference::Request { subject: &ask.subject, action: &ask.action, resource: &ask.resource, attributes: &ask.attributes };
    let outcome = reference::decide(&sorted, &request);
    (outcome.allowed, outcome.deciding)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn compiled_table_agrees_with_the_reference(policies in policy_set(), asks in proptest::collection::vec(ask(), 1..12)) {
        let evaluator = evaluator(&policies);
        for ask in &asks {
            prop_assert_eq!(table_decision(&evaluator, ask), reference_decision(&policies, ask), "request {:?}", ask);
        }
    }

    #[test]
    fn policy_order_never_matters(policies in policy_set(), asks in proptest::collection::vec(ask(), 1..8)) {
        let mut reversed = policies.clone();
        reversed.reverse();
        let mut sorted = policies.clone();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        let mut resorted = reversed.clone();
        resorted.sort_by(|a, b| a.id.cmp(&b.id));
        let forward = compile::table(&sorted, &ACTIONS.map(str::to_string), None).unwrap();
        let backward = compile::table(&resorted, &ACTIONS.map(str::to_string), None).unwrap();
        prop_assert_eq!(forward.encode(), backward.encode(), "same input, same bytes");
        let (one, two) = (evaluator(&policies), evaluator(&reversed));
        for ask in &asks {
            prop_assert_eq!(table_decision(&one, ask), table_decision(&two, ask));
        }
    }

    #[test]
    fn an_unconditional_deny_wins(policies in policy_set(), asks in proptest::collection::vec(ask(), 1..8)) {
        let mut with_deny = policies.clone();
        with_deny.push(SourcePolicy {
            id: "zz-deny-all".into(),
            description: String::new(),
            subjects: vec!["<.*>".into()],
            resources: vec!["<.*>".into()],
            actions: vec!["<.*>".into()],
            effect: Effect::Deny,
            conditions: BTreeMap::new(),
            providers: Vec::new(),
        });
        let evaluator = evaluator(&with_deny);
        for ask in &asks {
            let (allowed, _) = table_decision(&evaluator, ask);
            prop_assert!(!allowed);
        }
    }

    #[test]
    fn without_policies_everything_is_denied(ask in ask()) {
        prop_assert_eq!(table_decision(&evaluator(&[]), &ask), (false, None));
    }
}
