//! A test module (built by the filter tests, never deployed): the filter's own signature code (`policy_filter::jwt`) compiled to wasm, so
//! known-answer vectors run inside the module exactly as the filter runs them (32-bit code
//! paths differ from native). Its plugin configuration is a JSON list of vectors; a request to
//! `/check/START/END` is answered with one `1` (verifies) or `0` per vector in that range.

#![allow(clippy::indexing_slicing, reason = "ranges are clamped before slicing")]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use policy_filter::jwt::{Key, key_from_jwk, verify_jws};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde_json::Value;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Probe { vectors: Rc::new(Vec::new()) }) });
}}

/// Keys are built when their vector is checked (key set-up costs fuel, and a configuration
/// callback holding 2,000 keys would exceed its budget).
enum Vector {
    Raw { jwk: Value, message: Vec<u8>, signature: Vec<u8> },
    Jws { jwk: Value, jws: String },
}

impl Vector {
    fn verifies(&self) -> bool {
        let key = |jwk: &Value| -> Option<Key> { key_from_jwk(jwk).ok() };
        match self {
            Vector::Raw { jwk, message, signature } => key(jwk).is_some_and(|k| k.verifies(message, signature, None)),
            Vector::Jws { jwk, jws } => key(jwk).is_some_and(|k| verify_jws(jws, std::slice::from_ref(&k)).is_ok()),
        }
    }
}

struct Probe {
    vectors: Rc<Vec<Vector>>,
}

impl Context for Probe {}

impl RootContext for Probe {
    fn on_configure(&mut self, _: usize) -> bool {
        let Some(config) = self.get_plugin_configuration() else { return false };
        let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&config) else { return false };
        let decode = |v: &Value| STANDARD.decode(v.as_str().unwrap_or_default()).unwrap_or_default();
        let vectors = items
            .iter()
            .map(|item| {
                let jwk = item["jwk"].clone();
                match item.get("jws").and_then(Value::as_str) {
                    Some(jws) => Vector::Jws { jwk, jws: jws.to_string() },
                    None => Vector::Raw { jwk, message: decode(&item["message"]), signature: decode(&item["signature"]) },
                }
            })
            .collect();
        self.vectors = Rc::new(vectors);
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Check { vectors: Rc::clone(&self.vectors) }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Check {
    vectors: Rc<Vec<Vector>>,
}

impl Context for Check {}

impl HttpContext for Check {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let mut bounds = path.trim_start_matches("/check/").split('/').map(|n| n.parse::<usize>().unwrap_or(0));
        let (start, end) = (bounds.next().unwrap_or(0), bounds.next().unwrap_or(0));
        let end = end.min(self.vectors.len());
        let start = start.min(end);
        let answer: String = self.vectors[start..end].iter().map(|v| if v.verifies() { '1' } else { '0' }).collect();
        self.send_http_response(200, vec![], Some(answer.as_bytes()));
        Action::Pause
    }
}
