//! A fetched key set's cost, natively, off the request path: parsing a 10-key JWKS document
//! (five RSA 2048 and five EC P-256 keys, with `x5c` and the entries a real document holds
//! beside them), and a whole refresh (take the lease, dispatch, parse, share, install and
//! sweep the token cache), beside loading the same 10 keys from the bundle (what
//! `on_configure` does for embedded keys) in the same run; and a refreshing tick in the real
//! module beside a tick that finds the set fresh.
//!
//!     cargo bench -p benchmarks --bench remote

use std::cell::RefCell;
use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use decision_table::bundle::Endpoint;
use policy_filter::cache::TokenCache;
use policy_filter::host::Level;
use policy_filter::remote::{Answer, Fetcher, Remote};

fn example(file: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../envoy-examples/policy").join(file)
}

/// Shared data and a clock; callouts get tokens and are answered by the benchmark.
struct Bench {
    shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    now_ms: u64,
    token: u32,
}

impl Fetcher for Bench {
    fn now_ms(&self) -> u64 {
        self.now_ms
    }
    fn shared_get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared.borrow().get(key).cloned()
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> bool {
        let mut shared = self.shared.borrow_mut();
        let current = shared.get(key).map_or(0, |(_, cas)| *cas);
        if cas != current {
            return false;
        }
        shared.insert(key.to_string(), (value.to_vec(), current + 1));
        true
    }
    fn dispatch(&mut self, _: &Endpoint) -> Result<u32, String> {
        self.token += 1;
        Ok(self.token)
    }
    fn log(&mut self, _: Level, _: &str) {}
    fn count(&mut self, _: &str) {}
    fn gauge(&mut self, _: &str, _: u64) {}
}

fn remote(c: &mut Criterion) {
    fn abort<T>(_: String) -> T {
        std::process::abort()
    }
    let signer = |alg: &str, file: &str| jwt_minter::Signer::from_file(alg, &example(&format!("keys/{file}"))).unwrap_or_else(abort);
    let (rsa, ec) = (signer("RS256", "idp-rsa.EXAMPLE-ONLY.key"), signer("ES256", "idp-es256.EXAMPLE-ONLY.key"));
    let kids: Vec<String> = (0..10).map(|i| format!("key-{i}")).collect();
    let entries: Vec<(&jwt_minter::Signer, &str, &str)> =
        kids.iter().enumerate().map(|(i, kid)| if i % 2 == 0 { (&rsa, kid.as_str(), "RS256") } else { (&ec, kid.as_str(), "ES256") }).collect();
    let document = jwt_minter::idp_jwks(&entries, true).to_string().into_bytes();

    let file = policy_compiler::source::read(&example("config.json")).unwrap_or_else(|_| std::process::abort());
    let bundle = policy_compiler::compile::bundle(&file).unwrap_or_else(|_| std::process::abort()).0;
    let Some(jwks) = bundle.providers.iter().find_map(|p| p.jwks.clone()) else { std::process::abort() };
    let parsed = policy_filter::jwks::parse(&document, &jwks).unwrap_or_else(abort);
    assert_eq!(parsed.keys.len(), 10);
    println!("JWKS document: {} bytes, 10 keys (5 RSA 2048, 5 EC P-256) and 3 skipped entries", document.len());

    // The floor: the same keys as the bundle embeds them, loaded as on_configure loads them.
    let embedded: Vec<serde_json::Value> = serde_json::from_slice::<serde_json::Value>(&document).unwrap_or_default()["keys"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .take(10)
        .collect();
    c.bench_function("10 embedded keys loaded (key_from_jwk)", |b| {
        b.iter(|| black_box(embedded.iter().filter_map(|jwk| policy_filter::jwt::key_from_jwk(jwk).ok()).count()))
    });
    c.bench_function("10-key JWKS parsed (jwks::parse)", |b| b.iter(|| black_box(policy_filter::jwks::parse(&document, &jwks).map(|f| f.keys.len()))));

    let loaded = policy_filter::config::load(&serde_json::to_vec(&bundle).unwrap_or_default()).unwrap_or_else(abort);
    let mut remote = Remote::new(&loaded);
    let mut cache = TokenCache::with_rejected(256, 64);
    let mut host = Bench { shared: RefCell::new(HashMap::new()), now_ms: 1_800_000_000_000, token: 0 };
    c.bench_function("10-key JWKS refresh (lease, dispatch, parse, share, install)", |b| {
        b.iter(|| {
            // Due again: past the refresh (max-age 300 s, and the revocation list's 30 s).
            host.now_ms += 301_000;
            let before = host.token;
            remote.on_tick(&loaded, &mut cache, &mut host);
            for token in before + 1..=host.token {
                let body = if remote.max_bytes(token).is_some_and(|_| token == before + 1) { document.clone() } else { b"{}".to_vec() };
                let answer = Answer { status: Some(200), cache_control: Some("max-age=300".into()), body_size: body.len(), body: Some(body) };
                black_box(remote.on_answer(&loaded, &mut cache, &mut host, token, answer));
            }
        })
    });
}

/// Stops the benchmark with the reason (criterion benches have no Result to return).
fn fail<T>(reason: impl std::fmt::Debug) -> T {
    eprintln!("remote bench: {reason:?}");
    std::process::abort()
}

/// The same refresh in the real module (the harness as Envoy, unmetered as proxies run it):
/// one tick that fetches, parses and installs the 10-key set, beside one tick that finds the
/// set fresh (the cost every worker pays once a second), in the same run.
fn in_the_module(c: &mut Criterion) {
    use proxy_wasm_harness::{CallReply, Limits, ProxyWasmModule, Response, workspace};
    let path = workspace::package("policy-filter").unwrap_or_else(fail);
    let bytes = std::fs::read(path).unwrap_or_else(fail);
    let module = ProxyWasmModule::from_bytes(&bytes, Limits { fuel_per_callback: None, ..Limits::default() }).unwrap_or_else(fail);
    let signer = |alg: &str, file: &str| jwt_minter::Signer::from_file(alg, &example(&format!("keys/{file}"))).unwrap_or_else(fail);
    let (rsa, ec) = (signer("RS256", "idp-rsa.EXAMPLE-ONLY.key"), signer("ES256", "idp-es256.EXAMPLE-ONLY.key"));
    let kids: Vec<String> = (0..10).map(|i| format!("key-{i}")).collect();
    let entries: Vec<(&jwt_minter::Signer, &str, &str)> =
        kids.iter().enumerate().map(|(i, kid)| if i % 2 == 0 { (&rsa, kid.as_str(), "RS256") } else { (&ec, kid.as_str(), "ES256") }).collect();
    let document = jwt_minter::idp_jwks(&entries, true).to_string();
    // The same keys under other kids: a document that differs from the one installed.
    let renamed: Vec<String> = (0..10).map(|i| format!("next-{i}")).collect();
    let other: Vec<(&jwt_minter::Signer, &str, &str)> =
        renamed.iter().enumerate().map(|(i, kid)| if i % 2 == 0 { (&rsa, kid.as_str(), "RS256") } else { (&ec, kid.as_str(), "ES256") }).collect();
    let other = jwt_minter::idp_jwks(&other, true).to_string();
    let file = policy_compiler::source::read(&example("config.json")).unwrap_or_else(fail);
    let mut bundle = policy_compiler::compile::bundle(&file).unwrap_or_else(fail).0;
    for provider in &mut bundle.providers {
        provider.revocation.endpoint = None;
        if let Some(jwks) = &mut provider.jwks {
            (jwks.endpoint.refresh_seconds, jwks.endpoint.min_refresh_seconds) = (1, 1);
        }
    }
    let configuration = serde_json::to_string(&bundle).unwrap_or_default();
    let scenarios = [
        ("a tick that refreshes the 10-key set, changed, in the module", "max-age=1", true),
        ("a tick that refreshes the 10-key set, unchanged, in the module", "max-age=1", false),
        ("a tick with the set fresh, in the module", "max-age=86400", false),
    ];
    for (name, max_age, changing) in scenarios {
        let (first, second) = (document.clone(), other.clone());
        let flip = std::sync::atomic::AtomicBool::new(false);
        let max_age = max_age.to_string();
        let answer = move |_: &proxy_wasm_harness::HttpCallRequest| {
            let odd = changing && flip.fetch_xor(true, std::sync::atomic::Ordering::Relaxed);
            CallReply::Respond(Response::new(200).header("cache-control", &max_age).body(if odd { second.clone() } else { first.clone() }))
        };
        let mut plugin = module
            .plugin()
            .plugin_config(configuration.clone())
            .now(1_800_000_000)
            .cluster("idp.example:443", answer)
            .start()
            .unwrap_or_else(fail);
        plugin.advance_time(std::time::Duration::from_secs(1)).unwrap_or_else(fail);
        c.bench_function(name, |b| b.iter(|| black_box(plugin.advance_time(std::time::Duration::from_secs(1)))));
        let installs = plugin.metric("policy_filter_remote_installs").map_or(0, |m| m.value);
        println!("{name}: {} fetches, {installs} installs", plugin.http_calls().len());
    }
}

criterion_group!(benches, remote, in_the_module);
criterion_main!(benches);
