//! NGINX with Kong's ngx_wasm_module (read at commit 3bed278, the 0.6 line, with NGINX 1.27),
//! the proxy-wasm host Kong Gateway 3.x embeds. Each rule below names the source it follows.
//!
//! - **Unknown foreign functions trap** (`ngx_proxy_wasm_host.c`,
//!   `ngx_proxy_wasm_hfuncs_call_foreign_function`: anything but `resolve_lua` is
//!   `ngx_proxy_wasm_result_trap(.., "unknown foreign function")`), so `verify_signature` is
//!   not offered and asking for it fails the configuration.
//! - **A removed header still reaches the upstream.** Removal (and every repeat a replace
//!   drops) only zeroes the entry's `hash` (`ngx_http_wasm_headers.c`,
//!   `ngx_http_wasm_set_header_helper`: `h[i].hash = 0`); the module's own view skips such
//!   entries, but `ngx_http_proxy_create_request` (`ngx_http_proxy_module.c`) copies every
//!   `headers_in` entry, and its `ngx_hash_find(&headers->hash, header[i].hash, ..)` looks a
//!   zeroed entry up in the wrong bucket, so not even a `proxy_set_header` of the same name
//!   reliably hides it. A replace updates the first live entry in place.
//! - **`:path` is NGINX's parsed URI**: `r->uri` (percent-decoded, dot segments resolved,
//!   slashes merged by `ngx_http_parse_complex_uri`) plus `?` and `r->args`
//!   (`ngx_proxy_wasm_maps.c`, `ngx_proxy_wasm_maps_get_path`). Setting it sets `r->uri` and
//!   `r->args`; what the upstream then gets depends on `proxy_pass`: without a URI part NGINX
//!   sends `r->unparsed_uri`, the client's raw request target (`ngx_http_proxy_create_request`:
//!   `unparsed_uri = 1` when `r->valid_unparsed_uri`); with variables
//!   (`proxy_pass http://backend$uri$is_args$args`) it sends the module's `:path`.
//! - **NGINX answers some requests before any filter** (`ngx_http_request.c`,
//!   `ngx_http_parse.c`): a repeated unique header such as `Authorization` or `Host` (400,
//!   "client sent duplicate header line"), a NUL, CR or LF in a header value (400), a header
//!   line longer than one `large_client_header_buffers` buffer (16k as rendered, 8k by
//!   default: 400) or such a request line (414), `%00` or a
//!   `..` above the root in the path (400), `TRACE` (405), a body over `client_max_body_size`
//!   (1m: 413).
//! - **Properties**: `source.address` is `$remote_addr`, the bare address, and `source.port`
//!   is text (`ngx_proxy_wasm_properties.c`); `connection.mtls` is the text `true`/`false`;
//!   the peer certificate's subject and SANs, `plugin_vm_id` and `node` are not implemented
//!   (`NotFound`); a dotted property asked for outside a request is an error ("cannot get
//!   scoped properties outside of a request").
//! - **A refused configuration** (`proxy_on_configure` returning false) fails the worker's
//!   start: every worker exits and the server answers nothing, in every server block.
//! - **HTTP dispatches** (`ngx_proxy_wasm_host.c`, `ngx_proxy_wasm_hfuncs_dispatch_http_call`;
//!   `ngx_http_proxy_wasm_dispatch.c`, `ngx_http_proxy_wasm_dispatch`): only from
//!   on_request_headers, on_request_body, on_tick and on_http_call_response, else a trap; the
//!   upstream is an address `host[:port]`, not a cluster; `:method` and `:path` are required,
//!   `:authority` is not; a synchronous refusal traps in a request and is logged (with
//!   InternalFailure) from on_tick; an address nobody serves fails later, with the reason in
//!   the `:dispatch_status` pseudo-header; a dispatch pauses its request until every call is
//!   answered, and the request then goes on by itself.
//! - **Shared data** lives in `shm_kv` zones (`ngx_wa_shm_kv.c`), shared by every worker
//!   process: no zone, a trap; cas 0 only creates; every write adds 1 to the key's cas.
//!
use std::collections::BTreeMap;

use crate::Status;
use crate::host::{KeyValues, Step};
use crate::http::{Headers, PropertyValue, Request, Response};

/// `large_client_header_buffers 4 16k`, as `policy-compiler render` writes it (NGINX's
/// default is `4 8k`): a request line or one header line must fit a buffer.
pub const HEADER_BUFFER_BYTES: usize = 16 * 1024;
/// `client_max_body_size 1m`.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Headers NGINX keeps one of (`ngx_http_headers_in`, handler
/// `ngx_http_process_unique_header_line`, or `ngx_http_process_host` for Host).
const UNIQUE_HEADERS: &[&str] = &[
    "host",
    "if-modified-since",
    "if-unmodified-since",
    "if-match",
    "if-none-match",
    "content-length",
    "content-range",
    "if-range",
    "transfer-encoding",
    "expect",
    "authorization",
    "proxy-authorization",
];

pub(crate) fn default_properties() -> Vec<(&'static str, PropertyValue)> {
    vec![
        ("plugin_name", "".into()),
        ("plugin_root_id", "".into()),
        ("source.address", "127.0.0.1".into()),
        ("source.port", "40000".into()),
        ("connection.mtls", "false".into()),
    ]
}

pub(crate) fn request_properties(request: &Request) -> Vec<(&'static str, PropertyValue)> {
    let (url_path, query) = split_target(&request.path);
    let query = query.unwrap_or_default();
    vec![
        // `request.path` is `$request_uri`, the raw target; `request.url_path` is `$uri`.
        ("request.path", request.path.clone().into()),
        ("request.url_path", parse_uri(url_path).unwrap_or_default().into()),
        ("request.query", query.into()),
        ("request.method", request.method.clone().into()),
        ("request.host", request.authority.clone().into()),
        ("request.scheme", request.scheme.clone().into()),
        ("request.protocol", "HTTP/1.1".into()),
    ]
}

/// `source.address` as `$remote_addr` (no port; the port is `source.port`, as text).
pub(crate) fn reported_property(path: &str, value: &PropertyValue) -> Vec<(String, PropertyValue)> {
    if path == "source.address"
        && let PropertyValue::Bytes(bytes) = value
        && let Ok(address) = std::str::from_utf8(bytes)
        && let Ok(socket) = address.parse::<std::net::SocketAddr>()
    {
        return vec![
            ("source.address".to_string(), socket.ip().to_string().into()),
            ("source.port".to_string(), socket.port().to_string().into()),
        ];
    }
    vec![(path.to_string(), value.clone())]
}

/// Properties ngx_wasm_module does not implement: asked for, they answer `NotFound`.
pub(crate) fn lacks_property(path: &[String]) -> bool {
    let dotted = path.join(".");
    matches!(
        dotted.as_str(),
        "node"
            | "plugin_vm_id"
            | "connection.subject_peer_certificate"
            | "connection.uri_san_peer_certificate"
            | "connection.dns_san_peer_certificate"
            | "connection.sha256_peer_certificate_digest"
    )
}

/// The request target split as NGINX does: the path, and `r->args` when a `?` comes before
/// any raw `#`. `ngx_http_parse_request_line` starts the args at the first `?` (they then run
/// to the end of the target, a `#` included) but, once a `#` was seen, no longer looks for
/// one; `ngx_http_parse_complex_uri` ends the URI at a raw `#` (`case '#': goto done`).
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    match (target.find('?'), target.find('#')) {
        (Some(question), hash) if hash.is_none_or(|hash| question < hash) => (target.get(..question).unwrap_or_default(), target.get(question + 1..)),
        _ => (target, None),
    }
}

/// `r->uri` from a raw path (no query): percent-decoded, dot segments resolved, slashes
/// merged, ended at a raw `#` (a decoded `%23` stays in it), as `ngx_http_parse_complex_uri`
/// does; `None` where NGINX answers 400.
pub fn parse_uri(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'#' {
            break;
        }
        if byte == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            let value = u8::from_str_radix(hex, 16).ok()?;
            if value == 0 {
                return None;
            }
            decoded.push(value);
            at += 3;
        } else {
            decoded.push(byte);
            at += 1;
        }
    }
    if decoded.first() != Some(&b'/') {
        return None;
    }
    let text = String::from_utf8_lossy(&decoded).into_owned();
    let mut segments: Vec<&str> = Vec::new();
    for segment in text.split('/').skip(1) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            other => segments.push(other),
        }
    }
    let trailing = text.ends_with('/') || text.ends_with("/.") || text.ends_with("/..");
    let mut uri = String::new();
    for segment in &segments {
        uri.push('/');
        uri.push_str(segment);
    }
    if uri.is_empty() || trailing {
        uri.push('/');
    }
    Some(uri)
}

/// NGINX's own answer to a request it refuses before the filter runs, and its error log's
/// reason.
pub(crate) fn answers_before_filters(request: &Request) -> Option<(Response, String)> {
    let refuse = |status: u16, reason: &str| Some((Response::new(status), format!("nginx: {reason}")));
    let request_line = request.method.len() + 1 + request.path.len() + " HTTP/1.1".len();
    if request_line > HEADER_BUFFER_BYTES {
        return refuse(414, "client sent too long URI");
    }
    for (name, value) in &request.headers {
        if name.len() + 2 + value.len() > HEADER_BUFFER_BYTES {
            return refuse(400, "client sent too large request (header line over large_client_header_buffers)");
        }
        // ngx_http_parse_header_line: NUL, CR and LF end or break a header line.
        if value.bytes().any(|b| matches!(b, b'\0' | b'\r' | b'\n')) {
            return refuse(400, "client sent invalid header line");
        }
    }
    for unique in UNIQUE_HEADERS {
        if request.headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case(unique)).count() > 1 {
            return refuse(400, &format!("client sent duplicate header line: \"{unique}\""));
        }
    }
    if parse_uri(split_target(&request.path).0).is_none() {
        return refuse(400, "client sent invalid request (the URI does not parse)");
    }
    if request.method == "TRACE" {
        return refuse(405, "client sent TRACE method");
    }
    if request.body.len() > MAX_BODY_BYTES {
        return refuse(413, "client intended to send too large body");
    }
    None
}

/// The module's view: the pseudo-headers ngx_wasm_module derives (`:path` from `r->uri` and
/// `r->args`), then the request's headers as the client spelled them (NGINX keeps the case:
/// `ngx_proxy_wasm_pairs_marshal` copies `elt.key`).
pub(crate) fn filter_headers(request: &Request) -> Headers {
    let (raw_path, args) = split_target(&request.path);
    let mut path = parse_uri(raw_path).unwrap_or_default();
    if let Some(args) = args.filter(|a| !a.is_empty()) {
        path.push('?');
        path.push_str(args);
    }
    let mut headers = vec![
        (":path".to_string(), path),
        (":method".to_string(), request.method.clone()),
        (":scheme".to_string(), request.scheme.clone()),
        (":authority".to_string(), request.authority.clone()),
    ];
    headers.extend(request.headers.iter().cloned());
    headers
}

/// What `ngx_http_proxy_create_request` sends: every entry of `headers_in`, the hidden ones
/// too, and as the path either the module's `:path` (`$uri$is_args$args`) or, with a plain
/// `proxy_pass`, the client's raw request target.
pub(crate) fn upstream_headers(request: &Request, visible: &Headers, hidden: &Headers, plain_proxy_pass: bool) -> Headers {
    let mut headers = visible.clone();
    if plain_proxy_pass && let Some(slot) = headers.iter_mut().find(|(name, _)| name == ":path") {
        slot.1 = request.path.clone();
    }
    headers.extend(hidden.iter().cloned());
    headers
}

/// A module's edit of one request header.
pub(crate) enum HeaderEdit {
    Add(String),
    Replace(String),
    Remove,
}

/// An edit as ngx_wasm_module applies it: `visible` is what the module sees, `hidden` the
/// entries whose hash was zeroed, which NGINX still forwards.
pub(crate) fn edit_request_headers(visible: &mut Headers, hidden: &mut Headers, key: String, edit: HeaderEdit) {
    if key == ":path"
        && let HeaderEdit::Add(value) | HeaderEdit::Replace(value) = edit
    {
        // ngx_proxy_wasm_maps_set_path: `r->args` changes only when the value has a `?`.
        let value = match (value.contains('?'), visible.iter().find(|(k, _)| k == ":path").and_then(|(_, old)| old.split_once('?'))) {
            (false, Some((_, args))) => format!("{value}?{args}"),
            _ => value,
        };
        match visible.iter_mut().find(|(k, _)| k == ":path") {
            Some(slot) => slot.1 = value,
            None => visible.push((key, value)),
        }
        return;
    }
    // ngx_http_wasm_set_header_helper: names compare case-insensitively; a remove zeroes every
    // match's hash; an add appends.
    let matches = |k: &str| k.eq_ignore_ascii_case(&key);
    match edit {
        HeaderEdit::Add(value) => visible.push((key, value)),
        HeaderEdit::Remove => {
            let (gone, kept): (Headers, Headers) = std::mem::take(visible).into_iter().partition(|(k, _)| matches(k));
            hidden.extend(gone);
            *visible = kept;
        }
        HeaderEdit::Replace(value) => match visible.iter().filter(|(k, _)| matches(k)).count() {
            0 => visible.push((key, value)),
            // One copy: updated in place (the module's spelling of the name).
            1 => {
                if let Some(slot) = visible.iter_mut().find(|(k, _)| matches(k)) {
                    *slot = (key, value);
                }
            }
            // Several: the first is updated, then every copy zeroed, the updated one too (the
            // helper's `goto again` with `found` set): the module sees none, the upstream gets
            // them all.
            _ => {
                let (gone, kept): (Headers, Headers) = std::mem::take(visible).into_iter().partition(|(k, _)| matches(k));
                let mut gone = gone.into_iter();
                if gone.next().is_some() {
                    hidden.push((key, value));
                }
                hidden.extend(gone);
                *visible = kept;
            }
        },
    }
}

/// `proxy_set_header_map_pairs` as ngx_proxy_wasm_maps_set_all does it: every entry is cleared
/// (hidden, still forwarded), then each pair set; pseudo-headers are set in place.
pub(crate) fn set_request_header_pairs(visible: &mut Headers, hidden: &mut Headers, pairs: Headers) {
    let (pseudo, regular): (Headers, Headers) = std::mem::take(visible).into_iter().partition(|(k, _)| k.starts_with(':'));
    hidden.extend(regular);
    *visible = pseudo;
    for (key, value) in pairs {
        match visible.iter_mut().find(|(k, _)| *k == key && key.starts_with(':')) {
            Some(slot) => slot.1 = value,
            None => visible.push((key, value)),
        }
    }
}

/// `ngx_proxy_wasm_hfuncs_dispatch_http_call`: the steps a dispatch is allowed in; in any
/// other (`on_configure`, `on_vm_start`, response phases, `on_log`...) the hostcall traps with
/// [`DISPATCH_STEP_TRAP`].
pub(crate) fn dispatch_allowed(step: Step) -> bool {
    matches!(step, Step::RequestHeaders | Step::RequestBody | Step::Tick | Step::CallResponse)
}

pub(crate) const DISPATCH_STEP_TRAP: &str = "can only send HTTP dispatch during \"on_request_headers\", \"on_request_body\", \"on_tick\", \"on_dispatch_response\", \"on_foreign_function\"";

/// The synchronous refusals of `ngx_http_proxy_wasm_dispatch`, in its order: no `:method`,
/// no `:path` (an empty value counts as none; `:authority` is optional and becomes Host),
/// then `ngx_wasm_socket_tcp_init`'s `ngx_parse_url` of the address `host[:port]`. The
/// caller traps from a request and logs from `on_tick` (`ngx_http_proxy_wasm_dispatch_err`).
pub(crate) fn dispatch_error(address: &str, headers: &Headers) -> Option<String> {
    let value = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default();
    if value(":method").is_empty() {
        return Some("dispatch failed: no :method".into());
    }
    if value(":path").is_empty() {
        return Some("dispatch failed: no :path".into());
    }
    let (host, port) = split_address(address);
    if host.is_empty() {
        return Some("dispatch failed: no host".into());
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Some("dispatch failed: invalid port".into());
    }
    None
}

/// `:scheme` other than http or https is only a warning (TLS stays off); the message names
/// the key, not the value, as `ngx_wasm_log_error(.., "unknown scheme \"%V\"", &elt->key)`.
pub(crate) fn unknown_scheme(headers: &Headers) -> Option<String> {
    let scheme = headers.iter().find(|(k, _)| k == ":scheme").map(|(_, v)| v.as_str())?;
    (scheme != "http" && scheme != "https").then(|| format!("unknown scheme \":scheme\" (value {scheme:?})"))
}

/// An address no stub answers fails asynchronously (on_http_call_response with nothing), as
/// a refused connection (`ngx_wasm_socket_tcp_connect`: "broken connection") or, for a name,
/// a failed resolution ("resolver failure"): the `:dispatch_status` the module reads.
pub(crate) fn unreachable(address: &str) -> &'static str {
    if split_address(address).0.parse::<std::net::IpAddr>().is_ok() { "broken connection" } else { "resolver failure" }
}

/// `host[:port]`, `[v6][:port]` as `ngx_wasm_socket_tcp_init` splits it.
fn split_address(address: &str) -> (&str, Option<&str>) {
    if let Some((host, after)) = address.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        return (host, after.strip_prefix(':'));
    }
    match address.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (address, None),
    }
}

/// A timeout of 0 takes `wasm_socket_read_timeout`'s default (`ngx_wasm.h`,
/// `NGX_WASM_DEFAULT_SOCK_RECV_TIMEOUT`; `ngx_wasm_socket_tcp_init`: `if (!sock->read_timeout)`).
pub(crate) const DEFAULT_DISPATCH_TIMEOUT_MS: u32 = 60_000;

/// `ngx_wa_shm_kv_resolve_key`: the zone named by the key's prefix before the first `/` if
/// one is declared, else the default zone `*`; neither is `None` (the hostcall then traps:
/// "failed getting value from shm (could not resolve namespace)"). The key keeps its prefix.
pub(crate) fn resolve_zone<'a>(zones: &'a mut BTreeMap<String, KeyValues>, key: &str) -> Option<&'a mut KeyValues> {
    let zone = match key.split_once('/') {
        Some((prefix, _)) if !prefix.is_empty() && zones.contains_key(prefix) => prefix.to_string(),
        _ => "*".to_string(),
    };
    zones.get_mut(&zone)
}

/// `ngx_wa_shm_kv_set_locked`: `if (cas != (n == NULL ? 0 : n->cas))` nothing is written and
/// `ngx_proxy_wasm_hfuncs_set_shared_data` answers CasMismatch, so cas 0 only creates; each
/// write does `n->cas += 1`. A null value pointer deletes (a missing key is not written:
/// CasMismatch too).
pub(crate) fn set_shared(kv: &mut KeyValues, key: String, value: Option<Vec<u8>>, cas: u32) -> Result<(), Status> {
    let current = kv.get(&key).map(|(_, cas)| *cas);
    if cas != current.unwrap_or(0) {
        return Err(Status::CasMismatch);
    }
    match value {
        None => kv.remove(&key).map(|_| ()).ok_or(Status::CasMismatch),
        Some(value) => {
            kv.insert(key, (value, current.unwrap_or(0).wrapping_add(1)));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use super::*;

    fn call(method: &str, path: &str) -> Headers {
        vec![(":method".into(), method.into()), (":path".into(), path.into())]
    }

    #[test]
    fn dispatch_errors_in_ngx_order() {
        assert_eq!(dispatch_error("idp.local", &call("GET", "/jwks")), None);
        assert_eq!(dispatch_error("[::1]:8443", &call("GET", "/")), None);
        assert_eq!(dispatch_error("idp", &call("", "/")).as_deref(), Some("dispatch failed: no :method"));
        assert_eq!(dispatch_error("", &call("GET", "")).as_deref(), Some("dispatch failed: no :path"), ":path before the address");
        assert_eq!(dispatch_error(":80", &call("GET", "/")).as_deref(), Some("dispatch failed: no host"));
        for port in ["0", "65536", "http", ""] {
            assert_eq!(dispatch_error(&format!("idp:{port}"), &call("GET", "/")).as_deref(), Some("dispatch failed: invalid port"), "{port}");
        }
    }

    #[test]
    fn unreachable_names_resolve_and_addresses_refuse() {
        assert_eq!(unreachable("10.0.0.1:80"), "broken connection");
        assert_eq!(unreachable("[::1]:80"), "broken connection");
        assert_eq!(unreachable("idp.local:443"), "resolver failure");
    }

    #[test]
    fn zones_resolve_by_prefix_then_default() {
        let mut zones: BTreeMap<String, KeyValues> = BTreeMap::new();
        assert!(resolve_zone(&mut zones, "k").is_none());
        zones.insert("idp".into(), KeyValues::new());
        assert!(resolve_zone(&mut zones, "idp/k").is_some());
        assert!(resolve_zone(&mut zones, "other/k").is_none());
        zones.insert("*".into(), KeyValues::new());
        resolve_zone(&mut zones, "other/k").unwrap().insert("other/k".into(), (vec![], 1));
        assert!(zones["*"].contains_key("other/k"), "the default zone keeps the whole key");
    }

    #[test]
    fn cas_counts_per_key_and_zero_only_creates() {
        let mut kv = KeyValues::new();
        assert_eq!(set_shared(&mut kv, "k".into(), Some(b"a".to_vec()), 0), Ok(()));
        assert_eq!(kv["k"].1, 1);
        assert_eq!(set_shared(&mut kv, "k".into(), Some(b"b".to_vec()), 0), Err(Status::CasMismatch));
        assert_eq!(set_shared(&mut kv, "k".into(), Some(b"b".to_vec()), 1), Ok(()));
        assert_eq!(kv["k"], (b"b".to_vec(), 2));
        assert_eq!(set_shared(&mut kv, "k".into(), None, 2), Ok(()));
        assert!(kv.is_empty());
    }
}
