//! Remote key sets and revocation lists (#16), natively: the fetcher behind a test host that
//! plays the shared data of several workers (with ngx_wasm_module's strict compare-and-swap)
//! and the identity provider, and requests through the engine on each worker. The same
//! scenarios run in the real module under both host profiles in `wasm.rs`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use decision_table::bundle::Endpoint;
use jwt_minter::Signer;
use policy_filter::cache::TokenCache;
use policy_filter::config::Loaded;
use policy_filter::engine::{self, Flow};
use policy_filter::host::Level;
use policy_filter::remote::{self, Answer, Fetcher, Remote};
use serde_json::{Value, json};

use crate::mock::{MockHost, NOW, example_bundle, load, signer};

const ISSUER: &str = "https://idp.example/realms/acme";

/// The proxy's side: shared data, the clock, the callouts made, logs and metrics.
#[derive(Default)]
struct World {
    shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    now_ms: Cell<u64>,
    next_token: Cell<u32>,
    /// (worker, token, path) of every callout.
    calls: RefCell<Vec<(usize, u32, String)>>,
    logs: RefCell<Vec<String>>,
    counters: RefCell<HashMap<String, u64>>,
    gauges: RefCell<HashMap<String, u64>>,
}

struct WorkerFetcher<'a> {
    world: &'a World,
    worker: usize,
}

impl Fetcher for WorkerFetcher<'_> {
    fn now_ms(&self) -> u64 {
        self.world.now_ms.get()
    }

    fn shared_get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.world.shared.borrow().get(key).cloned()
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> bool {
        // ngx_wasm_module's rule (the stricter): cas must be the current one, 0 when absent.
        let mut shared = self.world.shared.borrow_mut();
        let current = shared.get(key).map_or(0, |(_, cas)| *cas);
        if cas != current {
            return false;
        }
        shared.insert(key.to_string(), (value.to_vec(), current + 1));
        true
    }

    fn dispatch(&mut self, endpoint: &Endpoint) -> Result<u32, String> {
        let token = self.world.next_token.get() + 1;
        self.world.next_token.set(token);
        self.world.calls.borrow_mut().push((self.worker, token, endpoint.path.clone()));
        Ok(token)
    }

    fn log(&mut self, _: Level, message: &str) {
        self.world.logs.borrow_mut().push(message.to_string());
    }

    fn count(&mut self, name: &str) {
        *self.world.counters.borrow_mut().entry(name.to_string()).or_default() += 1;
    }

    fn gauge(&mut self, name: &str, value: u64) {
        self.world.gauges.borrow_mut().insert(name.to_string(), value);
    }
}

struct Worker {
    index: usize,
    loaded: Loaded,
    remote: Remote,
    cache: TokenCache,
}

impl Worker {
    fn new(index: usize) -> Worker {
        Worker::of(index, &example_bundle())
    }

    fn of(index: usize, bundle: &decision_table::bundle::Bundle) -> Worker {
        let loaded = load(bundle);
        let remote = Remote::new(&loaded);
        Worker { index, loaded, remote, cache: TokenCache::with_rejected(64, 64) }
    }

    /// As `on_configure` does: what is in shared data already, installed before any tick.
    fn start(&mut self, world: &World) {
        self.remote.install_shared(&self.loaded, &mut self.cache, &mut WorkerFetcher { world, worker: self.index });
    }

    fn tick(&mut self, world: &World) {
        self.remote.on_tick(&self.loaded, &mut self.cache, &mut WorkerFetcher { world, worker: self.index });
    }

    fn answer(&mut self, world: &World, token: u32, answer: Answer) {
        let handled = self.remote.on_answer(&self.loaded, &mut self.cache, &mut WorkerFetcher { world, worker: self.index }, token, answer);
        assert!(handled, "token {token} is one of this worker's callouts");
    }

    /// `GET /users/me` with `token`, at the world's time: the status and the host.
    fn get(&mut self, world: &World, token: &str) -> (u32, MockHost) {
        let mut host = MockHost::request("GET", "/users/me").bearer(token);
        host.now = world.now_ms.get() / 1000;
        let flow = engine::on_request_headers(&self.loaded, &mut self.cache, &mut host);
        (if flow == Flow::Continue { 200 } else { host.status().unwrap_or(0) }, host)
    }
}

fn ok(body: &Value) -> Answer {
    ok_with(body, None)
}

fn ok_with(body: &Value, cache_control: Option<&str>) -> Answer {
    let body = body.to_string().into_bytes();
    Answer { status: Some(200), cache_control: cache_control.map(str::to_string), body_size: body.len(), body: Some(body) }
}

fn rsa_key() -> Signer {
    signer("RS256", "platform.EXAMPLE-ONLY.key")
}

fn ec_key() -> Signer {
    signer("ES256", "partner-es256.EXAMPLE-ONLY.key")
}

/// A token of the identity provider for `sub`, signed by `key` (`alg`, `kid`), over `extra`.
fn idp_token(key: &Signer, alg: &str, kid: &str, sub: &str, extra: Value) -> String {
    let mut claims = json!({"iss": ISSUER, "aud": "api.example", "sub": sub, "roles": "user", "iat": NOW - 60, "exp": NOW + 3600});
    claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    jwt_minter::mint(key, alg, Some(kid), &claims)
}

fn world() -> World {
    let world = World::default();
    world.now_ms.set(NOW * 1000);
    world
}

fn advance(world: &World, seconds: u64) {
    world.now_ms.set(world.now_ms.get() + seconds * 1000);
}

/// The callouts made so far to `path` (the JWKS's or the revocation list's).
fn calls_to(world: &World, path: &str) -> Vec<(usize, u32)> {
    world.calls.borrow().iter().filter(|(_, _, p)| p == path).map(|(w, t, _)| (*w, *t)).collect()
}

const CERTS: &str = "/realms/acme/protocol/openid-connect/certs";
const REVOCATIONS: &str = "/realms/acme/revocations";

fn last_call(world: &World, path: &str) -> (usize, u32) {
    *calls_to(world, path).last().expect("a callout was made")
}

#[test]
fn issue16_a_remote_key_set_is_fetched_at_start_and_shared_by_every_worker() {
    let world = world();
    let (mut first, mut second) = (Worker::new(0), Worker::new(1));
    let (rsa, ec) = (rsa_key(), ec_key());
    let token = idp_token(&rsa, "RS256", "rsa-1", "ana", json!({}));

    // Before the first fetch: a 401 saying why, and no callout from the request path.
    let (status, host) = first.get(&world, &token);
    assert_eq!(status, 401);
    assert!(host.response_header("www-authenticate").unwrap().contains("has published no keys yet"), "{:?}", host.response);
    assert!(world.calls.borrow().is_empty(), "requests never fetch");

    // The first tick of each worker: one fetch between them.
    first.tick(&world);
    second.tick(&world);
    assert_eq!(calls_to(&world, CERTS).len(), 1, "one worker holds the lease, the other waits");
    let (worker, call) = last_call(&world, CERTS);
    assert_eq!(worker, 0);
    let document = jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256"), (&ec, "ec-1", "ES256")], true);
    first.answer(&world, call, ok(&document));
    assert_eq!(first.get(&world, &token).0, 200, "the fetching worker installs at once");

    // The other worker installs the shared set on its next tick, without fetching.
    second.tick(&world);
    assert_eq!(calls_to(&world, CERTS).len(), 1);
    assert_eq!(second.get(&world, &token).0, 200);
    assert_eq!(second.get(&world, &idp_token(&ec, "ES256", "ec-1", "ana", json!({}))).0, 200);

    // What a real document holds beside the signing keys is skipped, each with its reason.
    let logs = world.logs.borrow().join("\n");
    for expected in ["\"enc-1\": `use` is \"enc\"", "\"pq-1\": the key type \"AKP\" is not supported", "\"k1-1\": the curve secp256k1 is not supported", "2 keys installed (rsa-1, ec-1)"] {
        assert!(logs.contains(expected), "{expected:?} in\n{logs}");
    }
    assert_eq!(world.gauges.borrow().get("policy_filter_jwks_age_seconds_idp"), Some(&0));
}

#[test]
fn issue16_rotation_a_new_kid_is_fetched_early_rate_limited_and_a_withdrawn_key_drops_its_tokens() {
    let world = world();
    let mut worker = Worker::new(0);
    let (rsa, ec) = (rsa_key(), ec_key());
    worker.tick(&world);
    let (_, call) = last_call(&world, CERTS);
    worker.answer(&world, call, ok_with(&jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256")], true), Some("max-age=600")));
    let old = idp_token(&rsa, "RS256", "rsa-1", "ana", json!({}));
    assert_eq!(worker.get(&world, &old).0, 200);
    assert_eq!(worker.get(&world, &old).0, 200, "now cached");

    // The IdP starts signing with a new key before the refresh: the first token is refused,
    // the next tick fetches early, and the token is accepted from then on.
    let new = idp_token(&ec, "ES256", "ec-2", "ana", json!({}));
    assert_eq!(worker.get(&world, &new).0, 401);
    advance(&world, 1);
    worker.tick(&world);
    assert_eq!(calls_to(&world, CERTS).len(), 2, "an unknown kid fetches early");
    let rotated = jwt_minter::idp_jwks(&[(&ec, "ec-2", "ES256")], true);
    let (_, call) = last_call(&world, CERTS);
    worker.answer(&world, call, ok_with(&rotated, Some("max-age=600")));
    assert_eq!(worker.get(&world, &new).0, 200);

    // The old key is gone from the set: its cached token is dropped and refused.
    let (status, host) = worker.get(&world, &old);
    assert_eq!(status, 401, "a withdrawn key stops verifying, cached tokens included");
    assert!(host.response_header("www-authenticate").unwrap().contains("not signed by a trusted key"));

    // A flood of random kids costs at most one early fetch per unknown_kid_seconds (30).
    for second in 0..90 {
        let random = idp_token(&ec, "ES256", &format!("random-{second}"), "ana", json!({}));
        assert_eq!(worker.get(&world, &random).0, 401);
        advance(&world, 1);
        worker.tick(&world);
        if let Some((_, call)) = world.calls.borrow().last().map(|(w, t, _)| (*w, *t)).filter(|(_, t)| worker.remote.max_bytes(*t).is_some()) {
            worker.answer(&world, call, ok_with(&rotated, Some("max-age=600")));
        }
    }
    let early = calls_to(&world, CERTS).len() - 2;
    assert!((3..=4).contains(&early), "{early} early fetches in 90 s of random kids");
}

#[test]
fn issue16_an_outage_keeps_the_last_good_set_and_retries_after_retry_seconds() {
    let world = world();
    let mut worker = Worker::new(0);
    let rsa = rsa_key();
    let token = idp_token(&rsa, "RS256", "rsa-1", "ana", json!({}));
    worker.tick(&world);
    let (_, call) = last_call(&world, CERTS);
    let good = jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256")], true);
    worker.answer(&world, call, ok_with(&good, Some("max-age=60")));

    let oversized = Answer { status: Some(200), cache_control: None, body_size: 200_000, body: None };
    let failures: Vec<(&str, Answer)> = vec![
        ("the endpoint answered 503", Answer { status: Some(503), cache_control: None, body_size: 0, body: Some(Vec::new()) }),
        ("the callout failed (timeout or connection error)", Answer { status: None, cache_control: None, body_size: 0, body: None }),
        ("not a JWKS document", ok(&json!("<html>login</html>"))),
        ("over max_bytes (131072)", oversized),
        ("not a JWKS document: no `keys` list", ok(&json!({"key": []}))),
        ("no answer within the timeout", Answer { status: None, cache_control: None, body_size: 0, body: None }),
    ];
    advance(&world, 60);
    let mut made = calls_to(&world, CERTS).len();
    for (expected, answer) in failures {
        worker.tick(&world);
        assert_eq!(calls_to(&world, CERTS).len(), made + 1, "due: {expected}");
        made += 1;
        let (_, call) = last_call(&world, CERTS);
        if expected == "no answer within the timeout" {
            // The host never answers: given up at timeout + 1 s.
            advance(&world, 5);
            worker.tick(&world);
            assert_eq!(calls_to(&world, CERTS).len(), made, "still in flight");
            advance(&world, 1);
            worker.tick(&world);
        } else {
            worker.answer(&world, call, answer);
        }
        let logs = world.logs.borrow().last().cloned().unwrap_or_default();
        assert!(logs.contains(expected) && logs.contains("keeping the one fetched") && logs.contains("next attempt in 10 s"), "{expected:?}: {logs}");
        assert_eq!(worker.get(&world, &token).0, 200, "the last good set still verifies ({expected})");
        advance(&world, 9);
        worker.tick(&world);
        assert_eq!(calls_to(&world, CERTS).len(), made, "no retry before retry_seconds");
        advance(&world, 1);
    }
    let key_set_failures = world.logs.borrow().iter().filter(|line| line.contains("key set: fetching")).count();
    assert_eq!(key_set_failures, 6);

    // A well-formed JWKS with no usable key is the provider withdrawing every key it had.
    worker.tick(&world);
    let (_, call) = last_call(&world, CERTS);
    let unusable = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hs"}, {"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB", "kid": "private"}]});
    worker.answer(&world, call, ok(&unusable));
    assert!(world.logs.borrow().iter().any(|l| l.contains("the JWKS holds no usable key")), "{:?}", world.logs.borrow());
    assert_eq!(worker.get(&world, &token).0, 401, "a compromised key cannot outlive its withdrawal");
    assert!(world.counters.borrow()[remote::metrics::FETCH_FAILURES] >= 6, "counted (with the unanswered revocation list's)");
    assert!(world.gauges.borrow()["policy_filter_jwks_age_seconds_idp"] >= 100, "the age says how stale the set is");
}

#[test]
fn issue16_keys_are_bound_to_one_algorithm_whatever_the_document_says() {
    let world = world();
    let mut worker = Worker::new(0);
    let (rsa, ec) = (rsa_key(), ec_key());
    worker.tick(&world);
    let (_, call) = last_call(&world, CERTS);
    // Without `alg`: an RSA key verifies the provider's RSA algorithms (RS256 here), an EC
    // key its curve's. A key whose `alg` the provider does not accept is skipped.
    let mut document = jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256"), (&ec, "ec-1", "ES256")], false);
    let mut ps = rsa.public_jwk().unwrap();
    ps.as_object_mut().unwrap().extend(json!({"kid": "ps-1", "alg": "PS256"}).as_object().unwrap().clone());
    document["keys"].as_array_mut().unwrap().push(ps);
    worker.answer(&world, call, ok(&document));
    assert_eq!(worker.get(&world, &idp_token(&rsa, "RS256", "rsa-1", "ana", json!({}))).0, 200);
    assert_eq!(worker.get(&world, &idp_token(&ec, "ES256", "ec-1", "ana", json!({}))).0, 200);
    let ps_token = jwt_minter::mint(&signer("PS256", "platform.EXAMPLE-ONLY.key"), "PS256", Some("rsa-1"), &json!({"iss": ISSUER, "aud": "api.example", "sub": "ana", "roles": "user", "iat": NOW - 60, "exp": NOW + 3600}));
    assert_eq!(worker.get(&world, &ps_token).0, 401, "the RSA key is bound to RS256, not to what a token says");
    assert!(world.logs.borrow().join("\n").contains("\"ps-1\": `alg` PS256 is not among the provider's algorithms"));
}

#[test]
fn issue16_revoked_tokens_and_subjects_are_refused_even_from_the_cache() {
    let world = world();
    let mut worker = Worker::new(0);
    let rsa = rsa_key();
    worker.tick(&world);
    let (_, call) = last_call(&world, CERTS);
    worker.answer(&world, call, ok(&jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256")], true)));

    // The bundle's list: a jti, a subject for good, and one for tokens issued before 1800000000.
    let refused = |worker: &mut Worker, token: &str| {
        let (status, host) = worker.get(&world, token);
        status == 401 && host.response_header("www-authenticate").is_some_and(|h| h.contains("the token has been revoked"))
    };
    assert!(refused(&mut worker, &idp_token(&rsa, "RS256", "rsa-1", "ana", json!({"jti": "leaked-7f3a"}))));
    assert!(refused(&mut worker, &idp_token(&rsa, "RS256", "rsa-1", "mallory", json!({}))));
    assert!(refused(&mut worker, &idp_token(&rsa, "RS256", "rsa-1", "bob", json!({"iat": NOW - 60}))), "issued before re-enablement");
    advance(&world, 10);
    let bob_after = idp_token(&rsa, "RS256", "rsa-1", "bob", json!({"iat": NOW + 5}));
    assert_eq!(worker.get(&world, &bob_after).0, 200, "a token issued after the subject's re-enablement works");

    // The fetched list: a token accepted and cached is refused once its jti is listed.
    let carol = idp_token(&rsa, "RS256", "rsa-1", "carol", json!({"jti": "c-1"}));
    assert_eq!(worker.get(&world, &carol).0, 200);
    assert_eq!(worker.get(&world, &carol).0, 200);
    let (_, call) = last_call(&world, REVOCATIONS);
    worker.answer(&world, call, ok(&json!({"token_ids": ["c-1"], "subjects": {"dave": null}})));
    assert!(refused(&mut worker, &carol), "revoked while in the token cache");
    assert!(refused(&mut worker, &idp_token(&rsa, "RS256", "rsa-1", "dave", json!({}))));
    assert!(refused(&mut worker, &idp_token(&rsa, "RS256", "rsa-1", "mallory", json!({}))), "the bundle's list still applies");

    // A malformed list keeps the last good one.
    advance(&world, 31);
    worker.tick(&world);
    let (_, call) = last_call(&world, REVOCATIONS);
    worker.answer(&world, call, ok(&json!({"jti": ["typo"]})));
    assert!(refused(&mut worker, &carol));
    assert!(world.logs.borrow().last().unwrap().contains("revocation list"));
}

#[test]
fn issue16_a_worker_started_later_uses_the_shared_set_at_once_and_an_evicted_body_is_fetched_again() {
    let world = world();
    let mut first = Worker::new(0);
    let rsa = rsa_key();
    let token = idp_token(&rsa, "RS256", "rsa-1", "ana", json!({}));
    first.tick(&world);
    let (_, call) = last_call(&world, CERTS);
    first.answer(&world, call, ok_with(&jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256")], true), Some("max-age=3600")));
    let (_, call) = last_call(&world, REVOCATIONS);
    first.answer(&world, call, ok(&json!({"token_ids": ["fetched-1"]})));

    // A worker respawned (or reloaded) after the fetch: no 401 and no revocation gap before
    // its first tick.
    let mut later = Worker::new(1);
    later.start(&world);
    assert_eq!(later.get(&world, &token).0, 200);
    assert_eq!(later.get(&world, &idp_token(&rsa, "RS256", "rsa-1", "ana", json!({"jti": "fetched-1"}))).0, 401);

    // The zone evicted the body (ngx_wasm_module's shm_kv is an LRU): meta still says the set
    // is fresh for an hour; after two ticks without it, it is fetched again.
    let body_key = world.shared.borrow().keys().find(|k| k.ends_with(".body") && world.shared.borrow()[*k].0.windows(5).any(|w| w == b"rsa-1")).cloned().unwrap();
    world.shared.borrow_mut().remove(&body_key);
    let mut third = Worker::new(2);
    third.start(&world);
    assert_eq!(third.get(&world, &token).0, 401, "nothing to install");
    let before = calls_to(&world, CERTS).len();
    advance(&world, 1);
    third.tick(&world);
    advance(&world, 1);
    third.tick(&world);
    advance(&world, 1);
    third.tick(&world);
    assert_eq!(calls_to(&world, CERTS).len(), before + 1, "{:?}", world.logs.borrow());
    assert!(world.logs.borrow().iter().any(|l| l.contains("the shared document is missing")));
    let (_, call) = last_call(&world, CERTS);
    third.answer(&world, call, ok(&jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256")], true)));
    assert_eq!(third.get(&world, &token).0, 200);
}

#[test]
fn issue16_a_subject_is_revoked_by_its_sub_too_and_a_stale_list_can_refuse_tokens() {
    let world = world();
    let mut bundle = example_bundle();
    let idp = bundle.providers.iter_mut().find(|p| p.name == "idp").unwrap();
    idp.revocation.max_list_age_seconds = Some(120);
    let mut worker = Worker::of(0, &bundle);
    let rsa = rsa_key();
    worker.tick(&world);
    let (_, call) = last_call(&world, CERTS);
    worker.answer(&world, call, ok(&jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256")], true)));
    let token = idp_token(&rsa, "RS256", "rsa-1", "ana", json!({"username": "ana", "sub": "user-ana-7"}));
    let (status, host) = worker.get(&world, &token);
    assert_eq!(status, 401, "no list fetched yet: refused (max_list_age_seconds set)");
    assert!(host.response_header("www-authenticate").unwrap().contains("revocation list is out of date"));
    let (_, call) = last_call(&world, REVOCATIONS);
    worker.answer(&world, call, ok(&json!({"subjects": {"user-ana-9": null}})));
    assert_eq!(worker.get(&world, &token).0, 200);

    // Listed by `sub`, while the caller's subject comes from `username`.
    advance(&world, 30);
    worker.tick(&world);
    let (_, call) = last_call(&world, REVOCATIONS);
    worker.answer(&world, call, ok(&json!({"subjects": {"user-ana-7": null}})));
    assert!(worker.get(&world, &token).1.response_header("www-authenticate").unwrap().contains("has been revoked"));

    // The list endpoint goes down: after 120 s without a good list, the provider's tokens stop.
    let other = idp_token(&rsa, "RS256", "rsa-1", "bea", json!({}));
    assert_eq!(worker.get(&world, &other).0, 200);
    for _ in 0..13 {
        advance(&world, 10);
        worker.tick(&world);
        if let Some((_, call)) = calls_to(&world, REVOCATIONS).last().copied().filter(|(_, t)| worker.remote.max_bytes(*t).is_some()) {
            worker.answer(&world, call, Answer { status: Some(503), cache_control: None, body_size: 0, body: Some(Vec::new()) });
        }
    }
    assert_eq!(worker.get(&world, &other).0, 401, "fail closed on a stale list, as configured");
}

const CONFIGURATION: &str = "/realms/acme/.well-known/openid-configuration";

/// The example bundle with the idp provider finding its JWKS by OpenID Connect discovery.
fn discovering_bundle() -> decision_table::bundle::Bundle {
    let mut bundle = example_bundle();
    let idp = bundle.providers.iter_mut().find(|p| p.name == "idp").unwrap();
    let jwks = idp.jwks.as_mut().unwrap();
    jwks.discovery = true;
    jwks.endpoint.path = CONFIGURATION.into();
    bundle
}

#[test]
fn issue16_openid_discovery_finds_the_jwks_on_the_same_upstream_and_checks_the_issuer() {
    let rsa = rsa_key();
    let token = idp_token(&rsa, "RS256", "rsa-1", "ana", json!({}));
    let configuration = |issuer: &str, jwks_uri: &str| ok(&json!({"issuer": issuer, "jwks_uri": jwks_uri, "token_endpoint": "https://idp.example/token"}));
    let answers = [
        (configuration("https://evil.example/realms/acme", "https://idp.example/realms/acme/certs"), "its issuer \"https://evil.example/realms/acme\" is not the provider's"),
        (configuration(ISSUER, "https://evil.example/certs"), "is not on https://idp.example"),
        (ok(&json!({"issuer": ISSUER})), "it names no jwks_uri"),
    ];
    for (answer, expected) in answers {
        let world = world();
        let mut worker = Worker::of(0, &discovering_bundle());
        worker.tick(&world);
        assert_eq!(calls_to(&world, CERTS).len(), 0, "the key set's path is not known yet");
        let (_, call) = last_call(&world, CONFIGURATION);
        worker.answer(&world, call, answer);
        assert!(world.logs.borrow().last().unwrap().contains(expected), "{expected}: {:?}", world.logs.borrow());
        advance(&world, 1);
        worker.tick(&world);
        assert!(world.calls.borrow().iter().all(|(_, _, path)| path != "/certs" && path != CERTS), "nothing fetched from elsewhere");
        assert_eq!(worker.get(&world, &token).0, 401);
    }

    let world = world();
    let (mut first, mut second) = (Worker::of(0, &discovering_bundle()), Worker::of(1, &discovering_bundle()));
    first.tick(&world);
    second.tick(&world);
    let (_, call) = last_call(&world, CONFIGURATION);
    first.answer(&world, call, configuration(ISSUER, &format!("https://idp.example{CERTS}")));
    assert_eq!(calls_to(&world, CONFIGURATION).len(), 1, "one worker reads the configuration for all");
    advance(&world, 1);
    first.tick(&world);
    second.tick(&world);
    let (_, call) = last_call(&world, CERTS);
    first.answer(&world, call, ok(&jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256")], true)));
    advance(&world, 1);
    first.tick(&world);
    second.tick(&world);
    assert_eq!((calls_to(&world, CERTS).len(), first.get(&world, &token).0, second.get(&world, &token).0), (1, 200, 200));
}

/// The same scenarios in the real module, under each host profile, with the identity
/// provider as a stub upstream (`idp.example:443`: an Envoy cluster of that name, or the
/// address NGINX dispatches to).
mod in_the_module {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use decision_table::bundle::{Bundle, ProxyHost};
    use proxy_wasm_harness::{CallReply, HostProfile, HttpCallRequest, Plugin, Request, Response};
    use serde_json::{Value, json};

    use super::{CERTS, REVOCATIONS, ec_key, idp_token, rsa_key};
    use crate::mock::{NOW, example_bundle};
    use crate::wasm::filter;

    const UPSTREAM: &str = "idp.example:443";

    /// What the stub IdP answers, and what it was asked.
    #[derive(Default)]
    struct Idp {
        certs: Option<CallReply>,
        revocations: Option<CallReply>,
        asked: Vec<HttpCallRequest>,
    }

    fn json_reply(body: &Value, cache_control: &str) -> CallReply {
        CallReply::Respond(Response::new(200).header("content-type", "application/json").header("cache-control", cache_control).body(body.to_string()))
    }

    fn bundle(host: HostProfile, zone: Option<&str>) -> String {
        let mut bundle: Bundle = example_bundle();
        bundle.settings.host = if host == HostProfile::Envoy { ProxyHost::Envoy } else { ProxyHost::NgxWasmModule };
        bundle.settings.shm_kv_zone = zone.map(str::to_string);
        serde_json::to_string(&bundle).unwrap()
    }

    /// `workers` workers of one proxy, sharing shared data and the clock.
    fn start(host: HostProfile, zone: Option<&str>, workers: usize, idp: &Arc<Mutex<Idp>>) -> Vec<Plugin> {
        let mut started: Vec<Plugin> = Vec::new();
        for _ in 0..workers {
            let stub = Arc::clone(idp);
            let mut builder = filter().plugin().host(host).plugin_config(bundle(host, zone)).now(NOW).cluster(UPSTREAM, move |request| {
                let mut idp = stub.lock().unwrap();
                idp.asked.push(request.clone());
                let path = request.headers.iter().find(|(k, _)| k == ":path").map(|(_, v)| v.clone()).unwrap_or_default();
                let reply = if path == CERTS { idp.certs.clone() } else { idp.revocations.clone() };
                reply.unwrap_or(CallReply::Respond(Response::new(404)))
            });
            if let Some(zone) = zone {
                builder = builder.ngx_shm_kv(zone);
            }
            if let Some(first) = started.first() {
                builder = builder.shared_with(first);
            }
            started.push(builder.start().unwrap_or_else(|e| panic!("{}: {e}", host.name())));
        }
        started
    }

    fn get(plugin: &mut Plugin, token: &str) -> (u16, String) {
        let outcome = plugin.send(&Request::get("/users/me").header("authorization", &format!("Bearer {token}")));
        (outcome.status(), outcome.response_header("www-authenticate").unwrap_or_default().to_string())
    }

    fn asked(idp: &Arc<Mutex<Idp>>, path: &str) -> usize {
        idp.lock().unwrap().asked.iter().filter(|r| r.headers.iter().any(|(k, v)| k == ":path" && v == path)).count()
    }

    fn tick(workers: &mut [Plugin], seconds: u64) {
        Plugin::advance_workers(workers, Duration::from_secs(seconds)).unwrap();
    }

    /// Envoy; NGINX with a `shm_kv` zone the bundle names; NGINX without one.
    const SETUPS: [(HostProfile, Option<&str>); 3] =
        [(HostProfile::Envoy, None), (HostProfile::NgxWasmModule, Some("policy_filter")), (HostProfile::NgxWasmModule, None)];

    #[test]
    fn issue16_one_fetch_at_start_serves_every_worker_and_rotation_needs_no_restart() {
        let (rsa, ec) = (rsa_key(), ec_key());
        for (host, zone) in SETUPS {
            let setup = format!("{} with zone {zone:?}", host.name());
            let idp = Arc::new(Mutex::new(Idp::default()));
            idp.lock().unwrap().certs = Some(json_reply(&jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256")], true), "max-age=300"));
            idp.lock().unwrap().revocations = Some(json_reply(&json!({"token_ids": []}), "max-age=30"));
            let mut workers = start(host, zone, 2, &idp);
            let old = idp_token(&rsa, "RS256", "rsa-1", "ana", json!({}));

            let (status, challenge) = get(&mut workers[0], &old);
            assert_eq!((status, asked(&idp, CERTS)), (401, 0), "{setup}: before the first tick, and no fetch from a request");
            assert!(challenge.contains("has published no keys yet"), "{setup}: {challenge}");

            tick(&mut workers, 1);
            let fetches = asked(&idp, CERTS);
            let shares = zone.is_some() || host == HostProfile::Envoy;
            assert_eq!(fetches, if shares { 1 } else { 2 }, "{setup}: one fetch for every worker that shares data");
            let request = idp.lock().unwrap().asked[0].clone();
            for (name, value) in [(":method", "GET"), (":authority", "idp.example"), (":scheme", "https")] {
                assert!(request.headers.iter().any(|(k, v)| k == name && v == value), "{setup}: {name} in {:?}", request.headers);
            }
            tick(&mut workers, 1);
            for worker in workers.iter_mut() {
                assert_eq!(get(worker, &old).0, 200, "{setup}");
            }

            // The IdP rotates to an EC key: a token naming it is fetched for early, then accepted;
            // the withdrawn RSA key's cached tokens are refused.
            idp.lock().unwrap().certs = Some(json_reply(&jwt_minter::idp_jwks(&[(&ec, "ec-2", "ES256")], true), "max-age=300"));
            let new = idp_token(&ec, "ES256", "ec-2", "ana", json!({}));
            assert_eq!(get(&mut workers[1], &new).0, 401, "{setup}: unknown until fetched");
            tick(&mut workers, 1);
            assert_eq!(asked(&idp, CERTS), fetches + 1, "{setup}: one early fetch");
            if !shares {
                // Each worker keeps its own set: the other learns of the new key the same way.
                assert_eq!(get(&mut workers[0], &new).0, 401, "{setup}: the other worker's set is its own");
                tick(&mut workers, 1);
                assert_eq!(asked(&idp, CERTS), fetches + 2, "{setup}: its own early fetch");
            }
            tick(&mut workers, 1);
            for worker in workers.iter_mut() {
                assert_eq!(get(worker, &new).0, 200, "{setup}");
                let (status, challenge) = get(worker, &old);
                assert_eq!(status, 401, "{setup}: the withdrawn key's cached token");
                assert!(challenge.contains("not signed by a trusted key"), "{setup}: {challenge}");
            }
            assert!(workers.iter().all(|w| w.failure().is_none()), "{setup}: no trap");
        }
    }

    #[test]
    fn issue16_an_outage_slow_malformed_or_oversized_answer_keeps_the_last_good_set() {
        let rsa = rsa_key();
        for (host, zone) in SETUPS {
            let setup = format!("{} with zone {zone:?}", host.name());
            let idp = Arc::new(Mutex::new(Idp::default()));
            idp.lock().unwrap().certs = Some(json_reply(&jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256")], true), "max-age=60"));
            let mut workers = start(host, zone, 1, &idp);
            tick(&mut workers, 1);
            let token = idp_token(&rsa, "RS256", "rsa-1", "ana", json!({}));
            assert_eq!(get(&mut workers[0], &token).0, 200, "{setup}");
            let oversized = json!({"keys": [], "padding": "x".repeat(200_000)});
            let failures = [
                ("answered 503", CallReply::Respond(Response::new(503).body("down"))),
                ("the callout failed", CallReply::Fail),
                ("the callout failed", json_reply(&json!({"keys": []}), "max-age=60").after(Duration::from_secs(6))),
                ("not a JWKS document", CallReply::Respond(Response::new(200).body("<html>maintenance</html>"))),
                ("over max_bytes", json_reply(&oversized, "max-age=60")),
            ];
            for (expected, reply) in failures {
                idp.lock().unwrap().certs = Some(reply);
                workers[0].clear_logs();
                let before = asked(&idp, CERTS);
                tick(&mut workers, 61);
                tick(&mut workers, 7);
                assert!(asked(&idp, CERTS) > before, "{setup}: {expected}: fetched again");
                let logs: Vec<String> = workers[0].logs().iter().map(|l| l.message.clone()).collect();
                assert!(logs.iter().any(|l| l.contains(expected) && l.contains("keeping the one fetched")), "{setup}: {expected}: {logs:#?}");
                assert_eq!(get(&mut workers[0], &token).0, 200, "{setup}: {expected}: the last good set still verifies");
            }
            let age = workers[0].metric("policy_filter_jwks_age_seconds_idp").map(|m| m.value);
            assert!(age.is_some_and(|age| age >= 300), "{setup}: the age gauge says how stale the set is: {age:?}");
            assert!(workers[0].failure().is_none(), "{setup}");
        }
    }

    #[test]
    fn issue16_a_worker_started_after_the_fetch_uses_the_shared_set() {
        let rsa = rsa_key();
        for (host, zone) in [(HostProfile::Envoy, None), (HostProfile::NgxWasmModule, Some("policy_filter"))] {
            let idp = Arc::new(Mutex::new(Idp::default()));
            idp.lock().unwrap().certs = Some(json_reply(&jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256")], true), "max-age=300"));
            let mut first = start(host, zone, 1, &idp);
            tick(&mut first, 1);
            let stub = Arc::clone(&idp);
            let mut builder = filter().plugin().host(host).plugin_config(bundle(host, zone)).cluster(UPSTREAM, move |_| stub.lock().unwrap().certs.clone().unwrap());
            if let Some(zone) = zone {
                builder = builder.ngx_shm_kv(zone);
            }
            let mut respawned = builder.shared_with(&first[0]).start().unwrap();
            let token = idp_token(&rsa, "RS256", "rsa-1", "ana", json!({}));
            if host == HostProfile::Envoy {
                assert_eq!(get(&mut respawned, &token).0, 200, "envoy: installed in on_configure from shared data");
            } else {
                // ngx_wasm_module: shared data is first read on the tick (a read in
                // on_configure that traps would stop every worker); no second fetch.
                assert_eq!(get(&mut respawned, &token).0, 401, "ngx_wasm_module: not before the first tick");
                let calls = asked(&idp, CERTS);
                Plugin::advance_workers(std::slice::from_mut(&mut respawned), Duration::from_secs(1)).unwrap();
                assert_eq!((get(&mut respawned, &token).0, asked(&idp, CERTS)), (200, calls), "ngx_wasm_module: installed from the zone");
            }
        }
    }

    #[test]
    fn issue16_an_undeclared_zone_fails_the_filter_on_its_first_tick_not_the_workers_at_start() {
        let rsa = rsa_key();
        let idp = Arc::new(Mutex::new(Idp::default()));
        idp.lock().unwrap().certs = Some(json_reply(&jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256")], true), "max-age=300"));
        // The bundle names zone `policy_filter`; nginx.conf declares none.
        let stub = Arc::clone(&idp);
        let mut plugin = filter()
            .plugin()
            .host(HostProfile::NgxWasmModule)
            .plugin_config(bundle(HostProfile::NgxWasmModule, Some("policy_filter")))
            .now(NOW)
            .cluster(UPSTREAM, move |_| stub.lock().unwrap().certs.clone().unwrap())
            .start()
            .expect("on_configure reads no shared data on ngx_wasm_module: the workers start");
        assert!(plugin.advance_time(Duration::from_secs(1)).unwrap_err().contains("could not resolve namespace"));
        let outcome = plugin.send(&Request::get("/users/me"));
        assert!(!outcome.forwarded() && outcome.status() >= 500, "fails closed: {}", outcome.status());
    }

    #[test]
    fn issue16_a_fetched_revocation_list_refuses_a_cached_token_within_a_tick() {
        let rsa = rsa_key();
        for (host, zone) in SETUPS {
            let setup = format!("{} with zone {zone:?}", host.name());
            let idp = Arc::new(Mutex::new(Idp::default()));
            idp.lock().unwrap().certs = Some(json_reply(&jwt_minter::idp_jwks(&[(&rsa, "rsa-1", "RS256")], true), "max-age=300"));
            idp.lock().unwrap().revocations = Some(json_reply(&json!({"token_ids": []}), "max-age=10"));
            let mut workers = start(host, zone, 2, &idp);
            tick(&mut workers, 1);
            let carol = idp_token(&rsa, "RS256", "rsa-1", "carol", json!({"jti": "c-1"}));
            assert_eq!(get(&mut workers[1], &carol).0, 200, "{setup}");
            assert_eq!(get(&mut workers[1], &carol).0, 200, "{setup}: cached");
            idp.lock().unwrap().revocations = Some(json_reply(&json!({"token_ids": ["c-1"], "subjects": {}}), "max-age=10"));
            tick(&mut workers, 11);
            for worker in workers.iter_mut() {
                let (status, challenge) = get(worker, &carol);
                assert_eq!(status, 401, "{setup}");
                assert!(challenge.contains("the token has been revoked"), "{setup}: {challenge}");
            }
            assert!(asked(&idp, REVOCATIONS) >= 2, "{setup}");
            let mallory = idp_token(&rsa, "RS256", "rsa-1", "mallory", json!({}));
            assert!(get(&mut workers[0], &mallory).1.contains("revoked"), "{setup}: the bundle's list still applies");
        }
    }
}

