//! Decisions per second at 10, 100, 1,000 and 10,000 policies: the compiled table against the
//! reference evaluator (Ladon's loop, with compiled regexes cached as Ladon does) and against
//! the `casbin` crate on an equivalent model (regexMatch on resources, roles through `g`,
//! deny overrides), on the same requests, in the same run. Also the bundle table's size and
//! decode time at 10,000.
//!
//!     cargo bench -p benchmarks --bench decisions

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use decision_table::{AccessRequest, ClientAddress, Evaluator, Table};
use casbin::prelude::*;
use decision_table::pattern::{self, CompiledPattern};
use policy_compiler::source::{Effect, SourceCondition, SourcePolicy};
use policy_compiler::{compile, reference};

const CASBIN_MODEL: &str = "
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = (p.sub == \"*\" || g(r.sub, p.sub)) && regexMatch(r.obj, p.obj) && r.act == p.act
";

/// The same policies as casbin rows: a role condition becomes the role as subject, a literal
/// resource an anchored regex; users get roles through `g`.
fn casbin_enforcer(policies: &[SourcePolicy]) -> Enforcer {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|_| std::process::abort());
    runtime.block_on(async {
        let model = DefaultModel::from_str(CASBIN_MODEL).await.unwrap_or_else(|_| std::process::abort());
        let mut enforcer = Enforcer::new(model, MemoryAdapter::default()).await.unwrap_or_else(|_| std::process::abort());
        let mut rows = Vec::new();
        for policy in policies {
            let subject = match policy.conditions.get("roles") {
                Some(SourceCondition::AnyOf { values, .. }) => values.first().cloned().unwrap_or_default(),
                _ if policy.subjects.iter().any(|s| s.contains('<')) => "*".to_string(),
                _ => policy.subjects.first().cloned().unwrap_or_default(),
            };
            for resource in &policy.resources {
                let object = match pattern::ladon(resource) {
                    Ok(CompiledPattern::Regex { source, .. }) => source,
                    _ => format!("^{}$", regex_lite::escape(resource)),
                };
                let effect = if policy.effect == Effect::Allow { "allow" } else { "deny" };
                for action in &policy.actions {
                    rows.push(vec![subject.clone(), object.clone(), action.clone(), effect.to_string()]);
                }
            }
        }
        enforcer.add_policies(rows).await.unwrap_or_else(|_| std::process::abort());
        let grouping = (0..50).map(|u| vec![format!("user{u}"), format!("role{}", u % 7)]).collect();
        enforcer.add_grouping_policies(grouping).await.unwrap_or_else(|_| std::process::abort());
        enforcer
    })
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    for count in [10usize, 100, 1_000, 10_000] {
        let policies = benchmarks::policies(count);
        let table = compile::table(&policies, &["api:read".into(), "api:write".into()], None).unwrap_or_else(|_| std::process::abort());
        let evaluator = Evaluator::new(&table).unwrap_or_else(|_| std::process::abort());
        let requests = benchmarks::requests(64, count);
        // Criterion's time is for the 64 requests of one iteration; it also reports decisions
        // per second. The mix the requests get:
        let (mut allowed, mut denied_by_policy, mut default_deny) = (0, 0, 0);
        for (subject, action, resource, attributes) in &requests {
            let decision = evaluator.evaluate(&AccessRequest { subject, action, resource, attributes, client_address: ClientAddress::Known(attributes.get("clientIP")) });
            match (decision.allowed(), decision.policy) {
                (true, _) => allowed += 1,
                (false, Some(_)) => denied_by_policy += 1,
                (false, None) => default_deny += 1,
            }
        }
        println!("{count} policies: of 64 requests {allowed} allowed, {denied_by_policy} denied by a deny policy, {default_deny} by default");
        group.throughput(criterion::Throughput::Elements(requests.len() as u64));
        group.bench_with_input(BenchmarkId::new("table", count), &count, |b, _| {
            b.iter(|| {
                for (subject, action, resource, attributes) in &requests {
                    black_box(evaluator.evaluate(&AccessRequest { subject, action, resource, attributes, client_address: ClientAddress::Known(attributes.get("clientIP")) }));
                }
            })
        });
        let enforcer = casbin_enforcer(&policies);
        group.bench_with_input(BenchmarkId::new("casbin", count), &count, |b, _| {
            b.iter(|| {
                for (subject, action, resource, _) in &requests {
                    black_box(enforcer.enforce((subject.as_str(), resource.as_str(), action.as_str())).unwrap_or(false));
                }
            })
        });
        if count <= 1_000 || std::env::var_os("BENCH_REFERENCE_10K").is_some() {
            group.bench_with_input(BenchmarkId::new("reference", count), &count, |b, _| {
                b.iter(|| {
                    for (subject, action, resource, attributes) in &requests {
                        black_box(reference::decide(&policies, &reference::Request { subject, action, resource, attributes }));
                    }
                })
            });
        }
    }
    group.finish();

    let table = compile::table(&benchmarks::policies(10_000), &["api:read".into(), "api:write".into()], None).unwrap_or_else(|_| std::process::abort());
    let bytes = table.encode();
    println!("table bytes at 10,000 policies: {}", bytes.len());
    c.bench_function("decode+prepare 10000", |b| b.iter(|| black_box(Evaluator::new(&Table::decode(&bytes).unwrap_or_else(|_| std::process::abort())))));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = decisions
}
criterion_main!(benches);
