//! The proxy-wasm adapter: the root context loads the bundle in `on_configure` (refusing a bad
//! one), each HTTP context runs [`engine::on_request_headers`] through [`ProxyHost`]. The only
//! module that knows proxy-wasm.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use rustc_hash::FxHashMap;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};

use crate::cache::TokenCache;
use crate::remote::{self, Remote};
use crate::config::{self, Loaded};
use crate::engine::{self, Flow};
use crate::host::{Host, Level, Proxy};
use crate::host_verify;

proxy_wasm::main! {{
    // Also installs a panic hook that logs the panic through the host at critical level.
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// State shared by the plugin's HTTP contexts.
struct Shared {
    loaded: Loaded,
    cache: RefCell<TokenCache>,
    /// Counters by name: the proxy's metric id and the count not yet handed to the proxy.
    /// Requests only add here; `on_tick` hands the counts over once a second, so no request
    /// pays a hostcall for a counter (each costs about as much as a header in NGINX).
    metrics: RefCell<FxHashMap<String, (u32, u64)>>,
    /// Key sets and revocation lists fetched from the identity providers.
    remote: RefCell<Remote>,
    /// Where fetched documents are shared between the workers.
    store: Store,
    /// Gauges and histograms by name: the proxy's metric id.
    gauges: RefCell<FxHashMap<String, u32>>,
}

/// Envoy's workers share data through the proxy (per VM id); ngx_wasm_module's through a
/// `shm_kv` zone, which must be declared: without one, `get_shared_data` and
/// `set_shared_data` trap (`ngx_wa_shm_kv_resolve_key`), so each worker keeps its own.
enum Store {
    /// The proxy's shared data; keys are prefixed with the zone (`zone/key`) on NGINX.
    Proxy { zone: Option<String> },
    /// This worker's own map, with the same compare-and-swap.
    Worker(RefCell<FxHashMap<String, (Vec<u8>, u32)>>),
}

/// How often the counters reach the proxy.
const METRICS_FLUSH_MS: u32 = 1000;

#[derive(Default)]
struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _trailers: usize) {
        let Some(shared) = &self.shared else { return };
        let (Ok(mut remote), Ok(mut cache)) = (shared.remote.try_borrow_mut(), shared.cache.try_borrow_mut()) else { return };
        let Some(max_bytes) = remote.max_bytes(token) else { return };
        let answer = call_answer(headers, body_size, max_bytes);
        remote.on_answer(&shared.loaded, &mut cache, &mut Fetcher { shared }, token, answer);
    }
}

/// The answer of the callout being delivered. A failed one (timeout, reset) comes with no
/// headers, and nothing is read then: Envoy has no response at all
/// (`Context::onHttpCallFailure`), and reading its headers is BadArgument, on which the SDK's
/// `get_map_value` panics. Values are read as bytes (a non-UTF-8 value would make
/// `get_map_value` panic too); the body only when it is within `max_bytes`.
fn call_answer(headers: usize, body_size: usize, max_bytes: usize) -> remote::Answer {
    if headers == 0 {
        return remote::Answer { status: None, cache_control: None, body_size: 0, body: None };
    }
    let header = |name: &str| {
        hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name).ok().flatten().map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    let status = header(":status").and_then(|s| s.parse::<u16>().ok());
    let body = (body_size <= max_bytes)
        .then(|| hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpCallResponseBody, 0, body_size).ok().flatten().unwrap_or_default());
    remote::Answer { status, cache_control: header("cache-control"), body_size, body }
}

/// [`remote::Fetcher`] over proxy-wasm hostcalls.
struct Fetcher<'a> {
    shared: &'a Shared,
}

impl remote::Fetcher for Fetcher<'_> {
    fn now_ms(&self) -> u64 {
        host_now_ms()
    }

    fn shared_get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        match &self.shared.store {
            Store::Proxy { zone } => match hostcalls::get_shared_data(&zoned(zone, key)) {
                Ok((Some(value), cas)) => Some((value, cas.unwrap_or(0))),
                _ => None,
            },
            Store::Worker(map) => map.try_borrow().ok()?.get(key).cloned(),
        }
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> bool {
        match &self.shared.store {
            Store::Proxy { zone } => hostcalls::set_shared_data(&zoned(zone, key), Some(value), Some(cas)).is_ok(),
            Store::Worker(map) => {
                let Ok(mut map) = map.try_borrow_mut() else { return false };
                let current = map.get(key).map_or(0, |(_, cas)| *cas);
                if cas != current {
                    return false;
                }
                map.insert(key.to_string(), (value.to_vec(), current.wrapping_add(1).max(1)));
                true
            }
        }
    }

    fn dispatch(&mut self, endpoint: &decision_table::bundle::Endpoint) -> Result<u32, String> {
        let headers = vec![
            (":method", "GET"),
            (":path", endpoint.path.as_str()),
            (":authority", endpoint.authority.as_str()),
            (":scheme", endpoint.scheme.as_str()),
            ("accept", "application/json"),
            ("user-agent", "policy-filter"),
        ];
        let timeout = std::time::Duration::from_millis(endpoint.timeout_ms);
        hostcalls::dispatch_http_call(&endpoint.upstream, headers, None, vec![], timeout).map_err(|status| format!("{status:?}"))
    }

    fn log(&mut self, level: Level, message: &str) {
        log_at(level, message);
    }

    fn count(&mut self, name: &str) {
        count_in(self.shared, name);
    }

    fn gauge(&mut self, name: &str, value: u64) {
        record_in(self.shared, MetricType::Gauge, name, value);
    }
}

/// Sets a gauge or records a histogram sample, defining the metric on first use. Both
/// hosts define and record all three types (Envoy's `proxy_define_metric`;
/// ngx_wasm_module's `ngx_proxy_wasm_hfuncs_define_metric` and `..._record_metric`).
fn record_in(shared: &Shared, kind: MetricType, name: &str, value: u64) {
    let Ok(mut defined) = shared.gauges.try_borrow_mut() else { return };
    let id = match defined.get(name) {
        Some(id) => *id,
        None => match hostcalls::define_metric(kind, name) {
            Ok(id) => *defined.entry(name.to_string()).or_insert(id),
            Err(_) => return,
        },
    };
    let _ = hostcalls::record_metric(id, value);
}

fn host_now_ms() -> u64 {
    hostcalls::get_current_time().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn zoned(zone: &Option<String>, key: &str) -> String {
    match zone {
        Some(zone) => format!("{zone}/{key}"),
        None => key.to_string(),
    }
}

fn log_at(level: Level, message: &str) {
    match level {
        Level::Debug => log::debug!("{message}"),
        Level::Info => log::info!("{message}"),
        Level::Warn => log::warn!("{message}"),
        Level::Error => log::error!("{message}"),
    }
}

/// Adds one to a counter; requests only add here, `on_tick` hands the counts to the proxy.
fn count_in(shared: &Shared, name: &str) {
    let Ok(mut metrics) = shared.metrics.try_borrow_mut() else { return };
    if let Some((_, pending)) = metrics.get_mut(name) {
        *pending = pending.saturating_add(1);
        return;
    }
    // A counter's first use defines it (once per name and worker).
    if let Ok(id) = hostcalls::define_metric(MetricType::Counter, name) {
        metrics.insert(name.to_string(), (id, 1));
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let configuration = self.get_plugin_configuration().unwrap_or_default();
        match config::load(&configuration) {
            Ok(mut loaded) => {
                if loaded.proxy == Proxy::Unknown {
                    loaded.proxy = ask_which_proxy();
                }
                let wanted = loaded.providers.iter().fold(host_verify::Families::default(), |families, p| families.union(p.host_families()));
                // ngx_wasm_module traps on a foreign function it does not know
                // (ngx_proxy_wasm_hfuncs_call_foreign_function), which fails the configuration
                // and stops every worker: only Envoy is asked.
                if loaded.proxy.may_call_foreign_functions() && wanted.any() {
                    loaded.host_verifies = host_verify::self_test(&|arguments: &[u8]| foreign_function(host_verify::FUNCTION, arguments), wanted);
                }
                let checker = |trusted: bool| if trusted { "by the proxy (verify_signature)" } else { "in wasm" };
                if wanted.rsa {
                    log::info!("RS256/384/512 signatures are checked {}", checker(loaded.host_verifies.rsa));
                }
                if wanted.ecdsa {
                    log::info!("ES256/384 signatures are checked {}", checker(loaded.host_verifies.ecdsa));
                }
                log::info!(
                    "policy filter configured for {}: {} policies, table {}, {} providers",
                    loaded.proxy.name(),
                    loaded.evaluator.policy_count(),
                    loaded.table_hash.get(..16).unwrap_or_default(),
                    loaded.providers.len()
                );
                let cache = TokenCache::with_rejected(loaded.settings.cache_entries, loaded.settings.rejected_cache_entries);
                let remote = Remote::new(&loaded);
                let store = match (loaded.proxy, &loaded.settings.shm_kv_zone) {
                    (Proxy::Envoy, _) => Store::Proxy { zone: None },
                    (Proxy::NgxWasmModule, Some(zone)) => Store::Proxy { zone: Some(zone.clone()) },
                    _ => Store::Worker(RefCell::default()),
                };
                if !remote.is_empty() && matches!(store, Store::Worker(_)) {
                    log::warn!("policy filter: no shm_kv_zone is set, so each worker fetches the identity providers' documents itself (set one, and declare it in nginx.conf's wasm block: shm_kv policy_filter 1m;)");
                }
                let shared = Shared { loaded, cache: RefCell::new(cache), metrics: RefCell::default(), remote: RefCell::new(remote), store, gauges: RefCell::default() };
                // What another worker fetched is used from the first request, not from the
                // first tick: on Envoy. On ngx_wasm_module shared data is not read here: with
                // a zone named but not declared, a read traps (ngx_wa_shm_kv_resolve_key), and
                // a trap in on_configure stops every worker for good, where one on a tick
                // fails only this filter's requests; and a reload recreates the zones
                // (`noreuse` in ngx_wasm_directives.c), so there would be nothing to read.
                if shared.loaded.proxy == Proxy::Envoy
                    && let (Ok(mut remote), Ok(mut cache)) = (shared.remote.try_borrow_mut(), shared.cache.try_borrow_mut())
                {
                    remote.install_shared(&shared.loaded, &mut cache, &mut Fetcher { shared: &shared });
                }
                self.shared = Some(Rc::new(shared));
                let _ = hostcalls::set_tick_period(std::time::Duration::from_millis(u64::from(METRICS_FLUSH_MS)));
                true
            }
            Err(reason) => {
                log::error!("policy filter refused its configuration: {reason}");
                self.shared = None;
                let proxy = ask_which_proxy();
                if proxy.refusal_keeps_serving() {
                    // Envoy rejects the update and keeps serving the previous configuration.
                    return false;
                }
                // ngx_wasm_module stops every worker on a refusal, taking down every server
                // block: accept instead, and answer this filter's requests 503 until a good
                // configuration is loaded.
                log::error!("policy filter: on {} a refused configuration would stop the proxy; every request through this filter is answered 503 until a valid configuration is loaded", proxy.name());
                true
            }
        }
    }

    fn on_tick(&mut self) {
        let Some(shared) = &self.shared else { return };
        // Fetching happens here, never on a request: ngx_wasm_module allows a dispatch in
        // on_tick but not in on_configure (ngx_proxy_wasm_hfuncs_dispatch_http_call), and a
        // dispatch from a request would pause it there.
        if let (Ok(mut remote), Ok(mut cache)) = (shared.remote.try_borrow_mut(), shared.cache.try_borrow_mut())
            && !remote.is_empty()
        {
            remote.on_tick(&shared.loaded, &mut cache, &mut Fetcher { shared });
        }
        let Ok(mut metrics) = shared.metrics.try_borrow_mut() else { return };
        for (id, pending) in metrics.values_mut() {
            if *pending > 0 {
                let delta = i64::try_from(*pending).unwrap_or(i64::MAX);
                if hostcalls::increment_metric(*id, delta).is_ok() {
                    *pending = 0;
                }
            }
        }
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request { shared: self.shared.clone(), waits_for: None }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    shared: Option<Rc<Shared>>,
    /// The callout the request waits for, forgotten if the request ends first.
    waits_for: Option<u32>,
}

impl Context for Request {
    fn on_http_call_response(&mut self, callout: u32, headers: usize, body_size: usize, _: usize) {
        self.answered(callout, headers, body_size);
    }

    fn on_done(&mut self) -> bool {
        if let (Some(callout), Some(shared)) = (self.waits_for.take(), &self.shared)
            && let Ok(mut cache) = shared.cache.try_borrow_mut()
        {
            cache.forget(callout);
        }
        true
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            // No valid configuration: fail closed.
            self.send_http_response(503, vec![("content-type", "application/json")], Some(br#"{"error":"unavailable","message":"the policy filter has no valid configuration"}"#));
            return Action::Pause;
        };
        let Ok(mut cache) = shared.cache.try_borrow_mut() else {
            self.send_http_response(500, vec![("content-type", "application/json")], Some(br#"{"error":"internal","message":"internal error"}"#));
            return Action::Pause;
        };
        let mut host = ProxyHost { shared: &shared, context: self };
        let flow = engine::on_request_headers(&shared.loaded, &mut cache, &mut host);
        match flow {
            Flow::Continue => Action::Continue,
            Flow::Answered => Action::Pause,
            // Waits for the answer (on_http_call_response). ngx_wasm_module pauses a request
            // that dispatched whatever it returns (ngx_http_proxy_wasm_dispatch).
            Flow::Dispatched(callout) => {
                self.waits_for = Some(callout);
                Action::Pause
            }
        }
    }
}

impl Request {
    /// The answer of the callout the request waited for (introspection, Basic, tenant
    /// mapping): the request is decided again, and resumes when allowed.
    fn answered(&mut self, callout: u32, headers: usize, body_size: usize) {
        let Some(shared) = self.shared.clone() else { return };
        let Ok(mut cache) = shared.cache.try_borrow_mut() else {
            self.send_http_response(500, vec![("content-type", "application/json")], Some(br#"{"error":"internal","message":"internal error"}"#));
            return;
        };
        let answer = call_answer(headers, body_size, shared.loaded.callout_max_bytes);
        let mut host = ProxyHost { shared: &shared, context: self };
        let flow = engine::on_callout_answer(&shared.loaded, &mut cache, &mut host, callout, answer.status, answer.body.as_deref());
        self.waits_for = match flow {
            Flow::Dispatched(next) => Some(next),
            Flow::Continue | Flow::Answered => None,
        };
        if flow == Flow::Continue {
            self.resume_http_request();
        }
    }
}

/// Which proxy this is, for a bundle that does not say: Envoy's `node` property (the local
/// node, serialised) is never empty; ngx_wasm_module does not implement it (`NotFound`, and an
/// error line in its log: `render` names the host so that rendered bundles never ask).
fn ask_which_proxy() -> Proxy {
    match hostcalls::get_property(vec!["node"]) {
        Ok(Some(node)) if !node.is_empty() => Proxy::Envoy,
        _ => Proxy::Unknown,
    }
}

/// A foreign function's answer; an empty answer is an empty message, a failed call `None`.
fn foreign_function(name: &str, arguments: &[u8]) -> Option<Vec<u8>> {
    hostcalls::call_foreign_function(name, Some(arguments)).ok().map(Option::unwrap_or_default)
}

/// [`Host`] over proxy-wasm hostcalls.
struct ProxyHost<'a> {
    shared: &'a Shared,
    context: &'a Request,
}

impl Host for ProxyHost<'_> {
    fn request_headers(&self) -> Vec<(String, String)> {
        self.context.get_http_request_headers()
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        self.context.set_http_request_header(name, value);
    }

    fn add_request_header(&mut self, name: &str, value: &str) {
        self.context.add_http_request_header(name, value);
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.context.get_property(path.to_vec())
    }

    fn now(&self) -> u64 {
        self.context.get_current_time().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    fn now_ms(&self) -> u64 {
        host_now_ms()
    }

    fn record(&mut self, name: &str, value: u64) {
        record_in(self.shared, MetricType::Histogram, name, value);
    }

    fn send_response(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        self.context.send_http_response(status, headers.to_vec(), Some(body));
    }

    fn log(&mut self, level: Level, message: &str) {
        log_at(level, message);
    }

    fn call_foreign_function(&self, name: &str, arguments: &[u8]) -> Option<Vec<u8>> {
        foreign_function(name, arguments)
    }

    fn dispatch(&mut self, upstream: &str, headers: &[(&str, &str)], body: &[u8], timeout_ms: u64) -> Result<u32, String> {
        let timeout = std::time::Duration::from_millis(timeout_ms);
        self.context.dispatch_http_call(upstream, headers.to_vec(), Some(body), vec![], timeout).map_err(|status| format!("{status:?}"))
    }

    fn count(&mut self, name: &str) {
        count_in(self.shared, name);
    }
}
