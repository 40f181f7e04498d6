//! Envoy as a proxy-wasm host (`source/extensions/common/wasm/context.cc` and
//! proxy-wasm-cpp-host): the module sees the request as the client sent it (`:path` is the raw
//! request target, pseudo-headers first), a removed header is gone, a replaced one loses its
//! repeats, and the upstream receives exactly the module's final header map. Unknown foreign
//! functions answer `NotFound`; `verify_signature` is Envoy's own ([`crate::envoy_functions`]).
//! A refused configuration rejects the listener or ECDS update and the old one keeps serving.
//! Callouts name a configured cluster; shared data is one map per vm_id, shared by every
//! worker thread.

use crate::Status;
use crate::host::SharedStore;
use crate::http::{Headers, PropertyValue, Request};

pub(crate) fn default_properties() -> Vec<(&'static str, PropertyValue)> {
    vec![
        ("plugin_name", "".into()),
        ("plugin_root_id", "".into()),
        ("plugin_vm_id", "".into()),
        // The local node (`envoy.config.core.v3.Node`, serialised): Envoy always fills
        // `user_agent_name` ("envoy", field 6) itself, so it is never empty.
        ("node", PropertyValue::Bytes(b"\x32\x05envoy".to_vec())),
        ("source.address", "127.0.0.1:40000".into()),
        ("source.port", PropertyValue::Int(40000)),
        ("destination.address", "127.0.0.1:10000".into()),
        ("destination.port", PropertyValue::Int(10000)),
        ("connection.mtls", PropertyValue::Bool(false)),
    ]
}

pub(crate) fn request_properties(request: &Request) -> Vec<(&'static str, PropertyValue)> {
    let (url_path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    vec![
        ("request.path", request.path.clone().into()),
        ("request.url_path", url_path.into()),
        ("request.query", query.into()),
        ("request.method", request.method.clone().into()),
        ("request.host", request.authority.clone().into()),
        ("request.scheme", request.scheme.clone().into()),
        ("request.protocol", "HTTP/1.1".into()),
        ("request.total_size", PropertyValue::Int(request.body.len() as i64)),
    ]
}

/// Pseudo-headers first, then the request's own, names lower-cased (`LowerCaseString`).
pub(crate) fn filter_headers(request: &Request) -> Headers {
    let mut headers = vec![
        (":authority".to_string(), request.authority.clone()),
        (":path".to_string(), request.path.clone()),
        (":method".to_string(), request.method.clone()),
        (":scheme".to_string(), request.scheme.clone()),
    ];
    headers.extend(request.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())));
    headers
}

/// `Context::httpCall` (`context.cc`): a callout without `:method`, `:path` or `:authority`
/// answers BadArgument (an unknown cluster too: see `abi::callouts`). Allowed from any
/// context, start-up included.
pub(crate) fn call_refused(headers: &Headers) -> bool {
    let has = |name: &str| headers.iter().any(|(k, v)| k == name && !v.is_empty());
    !has(":method") || !has(":path") || !has(":authority")
}

/// proxy-wasm-cpp-host `SharedData::set` (`src/shared_data.cc`): `if (cas && cas !=
/// entry.cas) return CasMismatch;` for a present key; an absent key is written whatever the
/// cas. Every write takes the next value of one counter (`nextCas`, never 0).
pub(crate) fn set_shared(store: &mut SharedStore, key: String, value: Vec<u8>, cas: u32) -> Result<(), Status> {
    if let Some((_, current)) = store.envoy.get(&key)
        && cas != 0
        && cas != *current
    {
        return Err(Status::CasMismatch);
    }
    let next = store.next_cas;
    store.next_cas = next.wrapping_add(1).max(1);
    store.envoy.insert(key, (value, next));
    Ok(())
}
