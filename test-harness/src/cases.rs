//! Case files: requests to replay through a module and what each must produce.
//!
//! ```json
//! {"now": 1800000000, "host": "ngx_wasm_module", "workers": 2, "shm_kv": ["*"],
//!  "upstreams": {"idp.local:443": [
//!     {"status": 200, "headers": [["cache-control", "max-age=60"]],
//!      "body_json": {"keys": []}, "delay_ms": 20},
//!     {"fail": "timeout"}]},
//!  "cases": [{"name": "user reads own profile",
//!             "worker": 1, "advance_seconds": 2,
//!             "upstreams": {"idp.local:443": [{"status": 503, "body": "down"}]},
//!             "request": {"method": "GET", "path": "/users/me", "authority": "api.local",
//!                         "headers": [["authorization", "Bearer eyJ..."]],
//!                         "body": "", "properties": {"source.address": "10.0.0.7:51234"}},
//!             "expect": {"status": 200, "headers": {"x-auth-user-id": "u-100"},
//!                        "absent_headers": ["x-forged"], "body_contains": "",
//!                        "calls": {"idp.local:443": 1}}}]}
//! ```
//! For a forwarded request, `expect.headers` are the headers the upstream received (every
//! value of the name must be the one expected); for a local reply, the reply's headers.
//! `absent_headers` holds when no non-empty value arrived. `"host"` picks the proxy to play,
//! and a case's `expect_on` (`{"ngx_wasm_module": {...}}`) replaces `expect` on that host.
//!
//! `upstreams` play the services the module calls out to, by Envoy cluster name or
//! ngx_wasm_module address (`"idp.local:443"`), or by that and a `:path`
//! (`"idp.local:443 /revocations"`, which takes that path's calls): each call takes the next
//! answer, the last one repeats. An answer
//! is `status` (200), `headers`, `body` or `body_json` (serialised), `delay_ms` (0: right
//! after the callback that called), or `"fail": "reset"` (fails at once, after any delay) or
//! `"timeout"` (never answers: fails at the call's timeout). A case's `upstreams` replace
//! those upstreams' answers from that case on; an upstream named only by a later case
//! exists from the start and fails (reset) until then. `advance_seconds` moves the host
//! clock before the case's request, delivering ticks and due answers on every worker.
//! `shm_kv` declares ngx_wasm_module's kv zones (`*` is the default; Envoy ignores it).
//! `workers` (1) starts that many plugins sharing shared data and the clock; a case's
//! `worker` (0) picks the one that takes its request. `expect.calls` counts the callouts
//! made to each upstream so far, over every worker.

use std::collections::BTreeMap;
use std::path::Path;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::{CallReply, Headers, Outcome, PropertyValue, Request, Response};
use crate::plugin::{Plugin, PluginBuilder};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The host clock at start-up, in Unix seconds.
    pub now: Option<u64>,
    /// The proxy to play (`envoy`, `ngx_wasm_module`, `ngx_wasm_module_plain_proxy_pass`);
    /// the CLI's `--host` overrides it.
    #[serde(default)]
    pub host: Option<crate::hosts::HostProfile>,
    /// Stub services for `proxy_http_call`, by cluster name or address.
    #[serde(default)]
    pub upstreams: BTreeMap<String, Vec<UpstreamAnswer>>,
    /// ngx_wasm_module `shm_kv` zones (`*`: the default zone).
    #[serde(default)]
    pub shm_kv: Vec<String>,
    /// Worker processes sharing shared data and the clock (default 1).
    #[serde(default)]
    pub workers: Option<usize>,
    pub cases: Vec<Case>,
}

/// One answer of a stub upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamAnswer {
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub body_json: Option<serde_json::Value>,
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default)]
    pub fail: Option<CallFailure>,
}

fn ok_status() -> u16 {
    200
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallFailure {
    Reset,
    Timeout,
}

impl UpstreamAnswer {
    pub fn to_reply(&self) -> Result<CallReply, String> {
        let reply = match self.fail {
            Some(CallFailure::Reset) => CallReply::Fail,
            Some(CallFailure::Timeout) => CallReply::Timeout,
            None => {
                let body = match (&self.body, &self.body_json) {
                    (Some(_), Some(_)) => return Err("an upstream answer has both body and body_json".into()),
                    (Some(text), None) => text.clone().into_bytes(),
                    (None, Some(json)) => serde_json::to_vec(json).map_err(|e| format!("body_json: {e}"))?,
                    (None, None) => Vec::new(),
                };
                let mut response = Response::new(self.status).body(body);
                for (name, value) in &self.headers {
                    response = response.header(name, value);
                }
                CallReply::Respond(response)
            }
        };
        Ok(if self.delay_ms > 0 { reply.after(Duration::from_millis(self.delay_ms)) } else { reply })
    }
}

/// The stub upstreams' scripted answers, shared by every worker (one IdP serves them all).
#[derive(Clone, Default)]
pub struct Upstreams(Arc<Mutex<HashMap<String, Script>>>);

/// An upstream's answers and the index of the next one.
type Script = (Vec<CallReply>, usize);

impl Upstreams {
    /// Replaces `name`'s answers; the next call takes the first.
    pub fn set(&self, name: &str, answers: &[UpstreamAnswer]) -> Result<(), String> {
        let replies = answers.iter().map(UpstreamAnswer::to_reply).collect::<Result<Vec<_>, _>>()?;
        let mut scripts = self.0.lock().map_err(|_| "upstream scripts poisoned".to_string())?;
        scripts.insert(name.to_string(), (replies, 0));
        Ok(())
    }

    fn has(&self, name: &str) -> bool {
        self.0.lock().is_ok_and(|scripts| scripts.contains_key(name))
    }

    /// The next answer of `name`; the last repeats, and none is a reset.
    pub fn answer(&self, name: &str) -> CallReply {
        let Ok(mut scripts) = self.0.lock() else { return CallReply::Fail };
        let Some((replies, next)) = scripts.get_mut(name) else { return CallReply::Fail };
        let index = (*next).min(replies.len().saturating_sub(1));
        *next = next.saturating_add(1);
        replies.get(index).cloned().unwrap_or(CallReply::Fail)
    }
}

/// Adds the file's upstreams (every name any case uses) and `shm_kv` zones to `builder`.
pub fn prepare<'m>(file: &CaseFile, mut builder: PluginBuilder<'m>) -> Result<(PluginBuilder<'m>, Upstreams), String> {
    let upstreams = Upstreams::default();
    for (name, answers) in &file.upstreams {
        upstreams.set(name, answers)?;
    }
    // A name is a cluster (or address), or `CLUSTER PATH` for the calls to that `:path` alone
    // (one IdP serves its key set and its revocation list).
    let mut clusters: Vec<String> =
        file.upstreams.keys().chain(file.cases.iter().flat_map(|c| c.upstreams.keys())).map(|name| cluster_of(name).to_string()).collect();
    clusters.sort();
    clusters.dedup();
    for cluster in clusters {
        let (script, label) = (upstreams.clone(), cluster.clone());
        builder = builder.cluster(&cluster, move |request| {
            let path = request.headers.iter().find(|(k, _)| k == ":path").map_or("", |(_, v)| v.as_str());
            let by_path = format!("{label} {path}");
            if script.has(&by_path) { script.answer(&by_path) } else { script.answer(&label) }
        });
    }
    for zone in &file.shm_kv {
        builder = builder.ngx_shm_kv(zone);
    }
    Ok((builder, upstreams))
}

/// A case file's workers and upstreams, replaying its cases in order.
pub struct Replay {
    workers: Vec<Plugin>,
    upstreams: Upstreams,
}

impl Replay {
    /// Starts `file.workers` plugins from `builder` (host, configuration and clock set),
    /// sharing shared data and the clock.
    pub fn start(file: &CaseFile, builder: PluginBuilder<'_>) -> Result<Replay, String> {
        let (builder, upstreams) = prepare(file, builder)?;
        let count = file.workers.unwrap_or(1);
        if count == 0 {
            return Err("workers must be at least 1".into());
        }
        let first = builder.clone().start().map_err(|e| e.to_string())?;
        let mut workers = vec![];
        for index in 1..count {
            let worker = builder.clone().shared_with(&first).start().map_err(|e| format!("worker {index}: {e}"))?;
            workers.push(worker);
        }
        workers.insert(0, first);
        Ok(Replay { workers, upstreams })
    }

    pub fn workers(&self) -> &[Plugin] {
        &self.workers
    }

    pub fn workers_mut(&mut self) -> &mut [Plugin] {
        &mut self.workers
    }

    /// Applies the case's upstreams and `advance_seconds`, then sends its request to its
    /// worker and checks every expectation.
    pub fn run(&mut self, case: &Case) -> CaseResult {
        for (name, answers) in &case.upstreams {
            if let Err(reason) = self.upstreams.set(name, answers) {
                return not_run(case, format!("upstream {name}: {reason}"));
            }
        }
        if let Some(seconds) = case.advance_seconds {
            let by = match Duration::try_from_secs_f64(seconds) {
                Ok(by) => by,
                Err(_) => return not_run(case, format!("advance_seconds {seconds} is not a duration")),
            };
            if let Err(reason) = Plugin::advance_workers(&mut self.workers, by) {
                return not_run(case, format!("advance_seconds: {reason}"));
            }
        }
        let index = case.worker.unwrap_or(0);
        let Some(plugin) = self.workers.get_mut(index) else {
            return not_run(case, format!("no worker {index} (workers: {})", self.workers.len()));
        };
        let mut result = send_case(plugin, case);
        let family = plugin.host().family();
        let expect = case.expect_on.get(family).unwrap_or(&case.expect);
        let problems = check_calls(expect, &self.workers);
        fold_problems(&mut result, problems);
        result
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub request: CaseRequest,
    pub expect: Expect,
    /// Where a host answers differently (NGINX refuses two `Authorization` headers itself,
    /// and decodes `%2F` before the module sees the path), the expectation on that host, by
    /// host family (`envoy`, `ngx_wasm_module`).
    #[serde(default)]
    pub expect_on: BTreeMap<String, Expect>,
    /// Which worker takes the request (default 0).
    #[serde(default)]
    pub worker: Option<usize>,
    /// Host clock advance before the request (ticks and due callouts delivered).
    #[serde(default)]
    pub advance_seconds: Option<f64>,
    /// Replaces these upstreams' answers from this case on.
    #[serde(default)]
    pub upstreams: BTreeMap<String, Vec<UpstreamAnswer>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRequest {
    pub method: String,
    pub path: String,
    pub authority: Option<String>,
    pub scheme: Option<String>,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub trailers: Vec<(String, String)>,
    /// Strings are bytes, integers 8-byte little-endian, booleans one byte (as in Envoy).
    #[serde(default)]
    pub properties: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub absent_headers: Vec<String>,
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Callouts made to each upstream so far (every worker, cumulative).
    #[serde(default)]
    pub calls: BTreeMap<String, usize>,
}

/// The verdict on one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub status: u16,
    pub forwarded: bool,
    /// Who answered: `upstream` (forwarded), `module` (a local reply), or `proxy` (the host
    /// refused the request before the module ran).
    pub answered_by: &'static str,
    /// The headers the expectations were checked against (upstream's, or the local reply's).
    pub headers: Headers,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The body of a reply the module or the proxy sent (none when forwarded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub fuel: u64,
    pub hostcalls: u64,
}

pub fn load(path: &Path) -> Result<CaseFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl CaseRequest {
    pub fn to_request(&self) -> Result<Request, String> {
        let mut request = Request::new(&self.method, &self.path);
        if let Some(authority) = &self.authority {
            request.authority = authority.clone();
        }
        if let Some(scheme) = &self.scheme {
            request.scheme = scheme.clone();
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        for (name, value) in &self.trailers {
            request = request.trailer(name, value);
        }
        request.body = self.body.clone().into_bytes();
        for (path, value) in &self.properties {
            let value = match value {
                serde_json::Value::String(text) => PropertyValue::from(text.as_str()),
                serde_json::Value::Bool(flag) => PropertyValue::Bool(*flag),
                serde_json::Value::Number(n) => {
                    PropertyValue::Int(n.as_i64().ok_or(format!("property {path}: {n} is not an integer"))?)
                }
                other => return Err(format!("property {path}: {other} is not a string, integer or boolean")),
            };
            request.properties.insert(path.clone(), value);
        }
        Ok(request)
    }
}

/// Sends the case's request through `plugin` (after its `advance_seconds`) and checks every
/// expectation. A case with its own `upstreams`, or a `worker` other than 0, needs a
/// [`Replay`].
pub fn run_case(plugin: &mut Plugin, case: &Case) -> CaseResult {
    if !case.upstreams.is_empty() || case.worker.is_some_and(|w| w > 0) {
        return not_run(case, "a case with upstreams or a worker needs cases::Replay".into());
    }
    if let Some(seconds) = case.advance_seconds {
        let advanced = Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string()).and_then(|by| plugin.advance_time(by));
        if let Err(reason) = advanced {
            return not_run(case, format!("advance_seconds: {reason}"));
        }
    }
    let mut result = send_case(plugin, case);
    let expect = case.expect_on.get(plugin.host().family()).unwrap_or(&case.expect);
    let problems = check_calls(expect, std::slice::from_ref(plugin));
    fold_problems(&mut result, problems);
    result
}

fn not_run(case: &Case, reason: String) -> CaseResult {
    CaseResult {
        name: case.name.clone(),
        passed: false,
        status: 0,
        forwarded: false,
        answered_by: "module",
        headers: Vec::new(),
        reason: Some(reason),
        body: None,
        fuel: 0,
        hostcalls: 0,
    }
}

/// The cluster (or address) of an upstream name, `CLUSTER` or `CLUSTER PATH`.
fn cluster_of(name: &str) -> &str {
    name.split_once(' ').map_or(name, |(cluster, _)| cluster)
}

/// Whether a callout is one `name` counts: to its cluster, and to its path when it names one.
fn counts(name: &str, call: &crate::http::HttpCallRequest) -> bool {
    match name.split_once(' ') {
        None => call.cluster == name,
        Some((cluster, path)) => call.cluster == cluster && call.headers.iter().any(|(k, v)| k == ":path" && v == path),
    }
}

fn check_calls(expect: &Expect, workers: &[Plugin]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, wanted) in &expect.calls {
        let made: usize = workers.iter().map(|w| w.http_calls().iter().filter(|call| counts(name, call)).count()).sum();
        if made != *wanted {
            problems.push(format!("calls to {name}: expected {wanted}, got {made}"));
        }
    }
    problems
}

fn fold_problems(result: &mut CaseResult, problems: Vec<String>) {
    if problems.is_empty() {
        return;
    }
    result.passed = false;
    let mut all: Vec<String> = result.reason.take().into_iter().collect();
    all.extend(problems);
    result.reason = Some(all.join("; "));
}

fn send_case(plugin: &mut Plugin, case: &Case) -> CaseResult {
    let outcome = match case.request.to_request() {
        Ok(request) => plugin.send(&request),
        Err(reason) => return not_run(case, reason),
    };
    let forwarded = outcome.forwarded();
    let headers = if forwarded {
        outcome.upstream.as_ref().map(|up| up.headers.clone()).unwrap_or_default()
    } else {
        outcome.response.headers.clone()
    };
    let expect = case.expect_on.get(plugin.host().family()).unwrap_or(&case.expect);
    let problems = check(expect, &outcome, &headers);
    CaseResult {
        name: case.name.clone(),
        passed: problems.is_empty(),
        status: outcome.status(),
        forwarded,
        answered_by: if forwarded {
            "upstream"
        } else if outcome.answered_by_proxy {
            "proxy"
        } else {
            "module"
        },
        headers,
        reason: (!problems.is_empty()).then(|| problems.join("; ")),
        body: (!forwarded && !outcome.response.body.is_empty()).then(|| outcome.body_text()),
        fuel: outcome.fuel,
        hostcalls: outcome.hostcalls.len() as u64,
    }
}

fn check(expect: &Expect, outcome: &Outcome, headers: &Headers) -> Vec<String> {
    let mut problems = Vec::new();
    if outcome.status() != expect.status {
        problems.push(format!("expected status {}, got {}", expect.status, outcome.status()));
    }
    let values = |name: &str| -> Vec<&str> {
        headers.iter().filter(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str()).collect()
    };
    for (name, wanted) in &expect.headers {
        // Every value counts: a host may forward a second, client-sent copy beside the
        // module's own (ngx_wasm_module forwards the headers a module removed).
        match values(name).as_slice() {
            [seen] if seen == wanted => {}
            [] => problems.push(format!("header {name}: expected {wanted:?}, got none")),
            seen => problems.push(format!("header {name}: expected only {wanted:?}, got {seen:?}")),
        }
    }
    for name in &expect.absent_headers {
        // A host that cannot delete a header (ngx_wasm_module) blanks it: an empty value
        // carries nothing and counts as absent.
        let seen: Vec<&str> = values(name).into_iter().filter(|value| !value.is_empty()).collect();
        if !seen.is_empty() {
            problems.push(format!("header {name} should be absent, got {seen:?}"));
        }
    }
    if let Some(needle) = expect.body_contains.as_deref().filter(|n| !n.is_empty()) {
        let body = outcome.body_text();
        if !body.contains(needle) {
            problems.push(format!("body should contain {needle:?}, got {body:?}"));
        }
    }
    if let Some(failure) = &outcome.guest_failure {
        problems.push(format!("guest failure: {failure}"));
    }
    problems
}
