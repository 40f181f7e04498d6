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
//! For a forwarded request, `expect.headers` are the headers the upstream received; for a
//! local reply, the reply's headers.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::http::{Headers, Outcome, PropertyValue, Request, find_header};
use crate::plugin::Plugin;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The host clock at start-up, in Unix seconds.
    pub now: Option<u64>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub request: CaseRequest,
    pub expect: Expect,
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
    /// The headers the expectations were checked against (upstream's, or the local reply's).
    pub headers: Headers,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub fuel: u64,
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
                headers: Vec::new(),
                reason: Some(reason),
                fuel: 0,
            };
        }
    };
    let forwarded = outcome.forwarded();
    let headers = if forwarded {
        outcome.upstream.as_ref().map(|up| up.headers.clone()).unwrap_or_default()
    } else {
        outcome.response.headers.clone()
    };
    let problems = check(&case.expect, &outcome, &headers);
    CaseResult {
        name: case.name.clone(),
        passed: problems.is_empty(),
        status: outcome.status(),
        forwarded,
        headers,
        reason: (!problems.is_empty()).then(|| problems.join("; ")),
        fuel: outcome.fuel,
    }
}

fn check(expect: &Expect, outcome: &Outcome, headers: &Headers) -> Vec<String> {
    let mut problems = Vec::new();
    if outcome.status() != expect.status {
        problems.push(format!("expected status {}, got {}", expect.status, outcome.status()));
    }
    for (name, wanted) in &expect.headers {
        match find_header(headers, name) {
            Some(seen) if seen == wanted => {}
            Some(seen) => problems.push(format!("header {name}: expected {wanted:?}, got {seen:?}")),
            None => problems.push(format!("header {name}: expected {wanted:?}, got none")),
        }
    }
    for name in &expect.absent_headers {
        if let Some(seen) = find_header(headers, name) {
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
