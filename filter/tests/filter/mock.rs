//! A host for native tests, and the example bundle and keys.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use decision_table::bundle::Bundle;
use jwt_minter::Signer;
use policy_filter::cache::TokenCache;
use policy_filter::config::{self, Loaded};
use policy_filter::engine::{self, Flow};
use policy_filter::host::{Host, Level, Proxy};
use serde_json::{Value, json};

pub const NOW: u64 = 1_800_000_000;

pub fn example(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../envoy-examples/policy").join(file)
}

/// The example policy set compiled into a bundle, as `policy-compiler compile` writes it.
pub fn example_bundle() -> Bundle {
    let file = policy_compiler::source::read(&example("config.json")).unwrap();
    policy_compiler::compile::bundle(&file).unwrap().0
}

/// The bundle loaded as on Envoy, whose header semantics the mock host has (a removed header
/// is gone). The harness profiles (`hosts.rs`) cover the other hosts in the real module.
pub fn load(bundle: &Bundle) -> Loaded {
    load_on(bundle, Proxy::Envoy)
}

pub fn load_on(bundle: &Bundle, proxy: Proxy) -> Loaded {
    let mut loaded = config::load(&serde_json::to_vec(bundle).unwrap()).unwrap();
    loaded.proxy = proxy;
    loaded
}

pub fn signer(alg: &str, file: &str) -> Signer {
    Signer::from_file(alg, &example(&format!("keys/{file}"))).unwrap()
}

pub fn platform() -> Signer {
    signer("RS256", "platform.EXAMPLE-ONLY.key")
}

/// Valid claims at NOW, over `extra`.
pub fn claims(extra: Value) -> Value {
    let mut claims = json!({"iat": NOW - 60, "exp": NOW + 3600});
    claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    claims
}

/// ana, a user, signed by the platform key.
pub fn ana_token() -> String {
    jwt_minter::mint(&platform(), "RS256", Some("platform"), &claims(json!({"userId": "u-100", "username": "ana", "roles": "user"})))
}

/// A local reply: status, headers, body.
pub type Reply = (u32, Vec<(String, String)>, String);

/// A callout the filter made: upstream, headers, body.
pub type Callout = (String, Vec<(String, String)>, Vec<u8>);

#[derive(Default)]
pub struct MockHost {
    pub headers: Vec<(String, String)>,
    pub properties: HashMap<String, Vec<u8>>,
    /// Every property the filter asked for, in order.
    pub properties_asked: std::cell::RefCell<Vec<String>>,
    pub now: u64,
    pub response: Option<Reply>,
    pub logs: Vec<String>,
    pub counters: BTreeMap<String, u64>,
    /// Every callout the filter made.
    pub dispatched: Vec<Callout>,
    /// Milliseconds past `now` on the clock (callout latency).
    pub elapsed_ms: u64,
    pub histograms: BTreeMap<String, Vec<u64>>,
}

impl MockHost {
    pub fn request(method: &str, path: &str) -> Self {
        MockHost {
            headers: vec![(":method".into(), method.into()), (":path".into(), path.into()), (":authority".into(), "api.example".into())],
            now: NOW,
            ..MockHost::default()
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn property(mut self, path: &str, value: &[u8]) -> Self {
        self.properties.insert(path.into(), value.to_vec());
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn status(&self) -> Option<u32> {
        self.response.as_ref().map(|r| r.0)
    }

    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response.as_ref().and_then(|r| r.1.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()))
    }

    pub fn count(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

impl Host for MockHost {
    fn request_headers(&self) -> Vec<(String, String)> {
        self.headers.clone()
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        self.headers.retain(|(k, _)| k != name);
        if let Some(value) = value {
            self.headers.push((name.into(), value.into()));
        }
    }

    fn add_request_header(&mut self, name: &str, value: &str) {
        self.headers.push((name.into(), value.into()));
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties_asked.borrow_mut().push(path.join("."));
        self.properties.get(&path.join(".")).cloned()
    }

    fn now(&self) -> u64 {
        self.now
    }

    fn now_ms(&self) -> u64 {
        self.now * 1000 + self.elapsed_ms
    }

    fn record(&mut self, name: &str, value: u64) {
        self.histograms.entry(name.into()).or_default().push(value);
    }

    fn send_response(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        let headers = headers.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
        self.response = Some((status, headers, String::from_utf8_lossy(body).into_owned()));
    }

    fn log(&mut self, _: Level, message: &str) {
        self.logs.push(message.into());
    }

    fn count(&mut self, name: &str) {
        *self.counters.entry(name.into()).or_default() += 1;
    }

    fn dispatch(&mut self, upstream: &str, headers: &[(&str, &str)], body: &[u8], _timeout_ms: u64) -> Result<u32, String> {
        let headers = headers.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
        self.dispatched.push((upstream.to_string(), headers, body.to_vec()));
        Ok(u32::try_from(self.dispatched.len()).unwrap())
    }
}

/// One request through the filter with a fresh cache; returns the host to inspect.
pub fn run(loaded: &Loaded, mut host: MockHost) -> (Flow, MockHost) {
    let mut cache = TokenCache::new(16);
    let flow = engine::on_request_headers(loaded, &mut cache, &mut host);
    (flow, host)
}
