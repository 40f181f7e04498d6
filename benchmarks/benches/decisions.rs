//! Decisions per second at 10, 100, 1,000 and 10,000 policies: the compiled table against the
//! reference evaluator (Ladon's loop, with compiled regexes cached as Ladon does), on the same
//! requests, in the same run. Also the bundle table's size and decode time at 10,000.
//!
//!     cargo bench -p benchmarks --bench decisions

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use decision_table::{AccessRequest, Evaluator, Table};
use policy_compiler::{compile, reference};

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    for count in [10usize, 100, 1_000, 10_000] {
        let policies = benchmarks::policies(count);
        let table = compile::table(&policies, &["api:read".into(), "api:write".into()], None).unwrap_or_else(|_| std::process::abort());
        let evaluator = Evaluator::new(&table).unwrap_or_else(|_| std::process::abort());
        let requests = benchmarks::requests(64, count);
        group.bench_with_input(BenchmarkId::new("table", count), &count, |b, _| {
            b.iter(|| {
                for (subject, action, resource, attributes) in &requests {
                    black_box(evaluator.evaluate(&AccessRequest { subject, action, resource, attributes }));
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
