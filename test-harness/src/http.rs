//! The HTTP side of the harness API: what a test sends and what it gets back.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Header list as Envoy hands it to a filter: lower-case names, in order, repeats allowed.
pub type Headers = Vec<(String, String)>;

/// A downstream request, as a client would send it to the proxy.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub authority: String,
    pub scheme: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub trailers: Headers,
    /// Per-request properties (`source.address`, `connection.mtls`, ...), over the plugin's.
    pub properties: BTreeMap<String, PropertyValue>,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            authority: "example.local".to_string(),
            scheme: "https".to_string(),
            ..Request::default()
        }
    }

    pub fn get(path: &str) -> Self {
        Request::new("GET", path)
    }

    pub fn post(path: &str) -> Self {
        Request::new("POST", path)
    }

    /// A header as the client spells it (Envoy hands the module lower-case names; NGINX keeps
    /// the client's spelling).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    pub fn authority(mut self, authority: &str) -> Self {
        self.authority = authority.to_string();
        self
    }

    pub fn property(mut self, path: &str, value: impl Into<PropertyValue>) -> Self {
        self.properties.insert(path.to_string(), value.into());
        self
    }

}

/// A property value, encoded as Envoy encodes it: strings as bytes, integers as 8-byte
/// little-endian, booleans as one byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyValue {
    Bytes(Vec<u8>),
    Int(i64),
    Bool(bool),
}

impl PropertyValue {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            PropertyValue::Bytes(bytes) => bytes.clone(),
            PropertyValue::Int(value) => value.to_le_bytes().to_vec(),
            PropertyValue::Bool(value) => vec![u8::from(*value)],
        }
    }
}

impl From<&str> for PropertyValue {
    fn from(value: &str) -> Self {
        PropertyValue::Bytes(value.as_bytes().to_vec())
    }
}

impl From<String> for PropertyValue {
    fn from(value: String) -> Self {
        PropertyValue::Bytes(value.into_bytes())
    }
}

impl From<i64> for PropertyValue {
    fn from(value: i64) -> Self {
        PropertyValue::Int(value)
    }
}

impl From<bool> for PropertyValue {
    fn from(value: bool) -> Self {
        PropertyValue::Bool(value)
    }
}

/// An HTTP response: from the stub upstream, or a local reply the module sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    #[serde(serialize_with = "lossy_text")]
    pub body: Vec<u8>,
    pub trailers: Headers,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: vec![(":status".to_string(), status.to_string())],
            ..Response::default()
        }
    }

    /// A header as the client spells it (Envoy hands the module lower-case names; NGINX keeps
    /// the client's spelling).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

fn lossy_text<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&String::from_utf8_lossy(bytes))
}

/// What reached the upstream when the module let a request through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpstreamRequest {
    pub headers: Headers,
    #[serde(serialize_with = "lossy_text")]
    pub body: Vec<u8>,
    pub trailers: Headers,
}

/// A local reply sent by the module with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalReply {
    pub status: u16,
    pub details: String,
    pub grpc_status: i32,
}

/// How one request ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The response the client received (status 0 when the stream was reset).
    pub response: Response,
    /// Set when the request reached the upstream; what the upstream received.
    pub upstream: Option<UpstreamRequest>,
    /// Set when the module answered locally, or the proxy did (`answered_by_proxy`).
    pub local_reply: Option<LocalReply>,
    /// The proxy answered before the module ran (ngx_wasm_module: a request NGINX refuses).
    pub answered_by_proxy: bool,
    /// The module reset the stream (`proxy_close_stream`).
    pub reset: bool,
    /// The module paused the stream and never resumed it (answered 408, as Envoy's stream
    /// idle timeout would).
    pub stalled: bool,
    /// The guest trapped or ran out of fuel or memory; the request failed closed (503).
    pub guest_failure: Option<String>,
    /// Fuel the guest burnt on this request, over every callback.
    pub fuel: u64,
    /// The proxy-wasm hostcalls the guest made for this request, in order, over every
    /// callback.
    pub hostcalls: Vec<&'static str>,
}

impl Outcome {
    pub fn status(&self) -> u16 {
        self.response.status
    }

    pub fn forwarded(&self) -> bool {
        self.upstream.is_some() && self.local_reply.is_none() && self.guest_failure.is_none()
    }

    /// The first value of a header the upstream received.
    pub fn upstream_header(&self, name: &str) -> Option<&str> {
        self.upstream.as_ref().and_then(|up| find_header(&up.headers, name))
    }

    /// Every value of a header the upstream received, in order (a host may forward a header
    /// twice, or one the module removed).
    pub fn upstream_header_values(&self, name: &str) -> Vec<&str> {
        self.upstream
            .iter()
            .flat_map(|up| up.headers.iter())
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The first value of a header in the response the client received.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        find_header(&self.response.headers, name)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.response.body).into_owned()
    }
}

pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// A callout the module made with `proxy_http_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCallRequest {
    pub cluster: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub trailers: Headers,
    pub timeout_ms: u32,
}

/// What a stub upstream cluster answers to a callout. The answer is due on the host clock:
/// at once (right after the callback that made the call), or later with [`CallReply::after`].
/// A call still unanswered at its `timeout_ms` fails then (ngx_wasm_module: a timeout of 0 is
/// its 60 s default; Envoy: 0 is no timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallReply {
    Respond(Response),
    /// A reset: delivered at once as a response with no headers, as both hosts do.
    Fail,
    /// Never answered: delivered as a failure at the call's timeout.
    Timeout,
    /// The inner reply, this much later on the host clock.
    Delayed(Duration, Box<CallReply>),
}

impl CallReply {
    /// This reply, `delay` later (delays add up).
    pub fn after(self, delay: Duration) -> CallReply {
        CallReply::Delayed(delay, Box::new(self))
    }
}
