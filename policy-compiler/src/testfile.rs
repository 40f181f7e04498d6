//! The `test` subcommand's file: requests and the decision each must get.
//!
//! ```yaml
//! tests:
//!   - name: ana reads her todos
//!     request: {method: GET, path: /todos, claims: {username: ana, roles: [user]}}
//!     expect: allow              # allow | deny | bypass | malformed | unauthenticated
//!     policy: user-ana-allow-access   # optional: the deciding policy
//! ```

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Exit;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub tests: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub request: CaseRequest,
    pub expect: Expected,
    pub policy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRequest {
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub claims: Map<String, Value>,
    pub client_ip: Option<String>,
    /// The provider that verified the token (`mtls` for a client certificate); else the one
    /// the claims' `iss` chooses, as in the module.
    pub provider: Option<String>,
}

fn get() -> String {
    "GET".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    Allow,
    Deny,
    Bypass,
    Malformed,
    Unauthenticated,
}

impl Expected {
    pub fn as_str(self) -> &'static str {
        match self {
            Expected::Allow => "allow",
            Expected::Deny => "deny",
            Expected::Bypass => "bypass",
            Expected::Malformed => "malformed",
            Expected::Unauthenticated => "unauthenticated",
        }
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn read(path: &Path) -> Result<Suite, (Exit, String)> {
    let text = std::fs::read_to_string(path).map_err(|e| (Exit::Io, format!("cannot read {}: {e}", path.display())))?;
    let parsed = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| (Exit::InvalidInput, format!("{}: {e}", path.display())))
}
