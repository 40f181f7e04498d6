//! Case files: requests to replay through a module and what each must produce.
//!
//! ```json
//! {"now": 1800000000,
//!  "cases": [{"name": "user reads own profile",
//!             "request": {"method": "GET", "path": "/users/me", "authority": "api.local",
//!                         "headers": [["authorization", "Bearer eyJ..."]],
//!                         "body": "", "properties": {"source.address": "10.0.0.7:51234"}},
//!             "expect": {"status": 200, "headers": {"x-auth-user-id": "u-100"},
//!                        "absent_headers": ["x-forged"], "body_contains": ""}}]}
//! ```
//! For a forwarded request, `expect.headers` are the headers the upstream received (every
//! value of the name must be the one expected); for a local reply, the reply's headers.
//! `absent_headers` holds when no non-empty value arrived. `"host"` picks the proxy to play,
//! and a case's `expect_on` (`{"ngx_wasm_module": {...}}`) replaces `expect` on that host.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::http::{Headers, Outcome, PropertyValue, Request};
use crate::plugin::Plugin;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The host clock at start-up, in Unix seconds.
    pub now: Option<u64>,
    /// The proxy to play (`envoy`, `ngx_wasm_module`, `ngx_wasm_module_plain_proxy_pass`);
    /// the CLI's `--host` overrides it.
    #[serde(default)]
    pub host: Option<crate::hosts::HostProfile>,
    pub cases: Vec<Case>,
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

/// Sends the case's request through `plugin` and checks every expectation.
pub fn run_case(plugin: &mut Plugin, case: &Case) -> CaseResult {
    let outcome = match case.request.to_request() {
        Ok(request) => plugin.send(&request),
        Err(reason) => {
            return CaseResult {
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
            };
        }
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
