//! `HostState`: everything the host knows about one plugin instance. It lives in the wasmtime
//! `Store`, never in globals, so any number of plugins run side by side (and tests in parallel).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use wasmtime::{Memory, StoreLimits, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::http::{CallReply, Headers, HttpCallRequest, LocalReply, Response};

/// A property path, one entry per segment (`source.address` is `["source", "address"]`).
pub type PropertyPath = Vec<String>;

/// Splits a dotted property name (`connection.uri_san_peer_certificate`) into its segments.
pub fn property_path(dotted: &str) -> PropertyPath {
    dotted.split('.').map(str::to_string).collect()
}

/// The host clock. `proxy_get_current_time_nanoseconds` and the WASI clocks read the same
/// value, and only the harness moves it, so time inside the module is fully controlled.
#[derive(Debug, Clone, Default)]
pub struct Clock(Arc<AtomicU64>);

impl Clock {
    pub fn at_unix_seconds(seconds: u64) -> Self {
        let clock = Clock::default();
        clock.set_nanos(seconds.saturating_mul(1_000_000_000));
        clock
    }

    pub fn nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    pub fn set_nanos(&self, nanos: u64) {
        self.0.store(nanos, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl wasmtime_wasi::HostWallClock for Clock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos())
    }
}

impl wasmtime_wasi::HostMonotonicClock for Clock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.nanos()
    }
}

/// Log levels as the ABI numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub(crate) fn from_abi(level: i32) -> Option<Self> {
        Some(match level {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        };
        f.write_str(name)
    }
}

/// One line the module logged (or the harness logged about the module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    pub level: LogLevel,
    pub context_id: u32,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric the module defined. Counters and gauges keep a value; histograms every sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
    pub value: i64,
    pub samples: Vec<u64>,
}

/// A host function a test makes callable with `proxy_call_foreign_function`.
pub type ForeignFunction = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, crate::Status> + Send + Sync>;

/// A stub upstream cluster answering the module's `proxy_http_call`s.
pub type Cluster = Arc<dyn Fn(&HttpCallRequest) -> CallReply + Send + Sync>;

/// Per-stream (per HTTP context) state.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub request_headers: Headers,
    /// Request headers the module removed that the host still forwards (ngx_wasm_module
    /// only hides them: see `hosts::ngx_wasm_module`).
    pub request_headers_hidden: Headers,
    pub request_body: Vec<u8>,
    pub request_trailers: Headers,
    pub response_headers: Headers,
    pub response_body: Vec<u8>,
    pub response_trailers: Headers,
    pub properties: BTreeMap<PropertyPath, Vec<u8>>,
    pub local_reply: Option<(LocalReply, Response)>,
    pub request_resumed: bool,
    pub response_resumed: bool,
    pub reset: bool,
    /// ngx_wasm_module: a dispatch paused the request, which resumes once its calls are
    /// answered (`ngx_http_proxy_wasm_dispatch_resume_handler`).
    pub dispatch_paused: bool,
}

/// What a pending callout will deliver when it is due.
#[derive(Debug)]
pub(crate) enum Answer {
    Response(Response),
    /// No headers, no body; the reason is ngx_wasm_module's `:dispatch_status`.
    Failure(&'static str),
}

#[derive(Debug)]
pub(crate) struct PendingCall {
    pub token: u32,
    pub context_id: u32,
    /// On the host clock; `None` never comes (no timeout and no answer).
    pub due_nanos: Option<u64>,
    pub answer: Answer,
}

/// The callback the guest is in: ngx_wasm_module allows some hostcalls only in some steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Start,
    VmStart,
    Configure,
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    Done,
    Log,
    Delete,
    Tick,
    QueueReady,
    CallResponse,
}

/// One shared-data map: key to (value, cas).
pub(crate) type KeyValues = HashMap<String, (Vec<u8>, u32)>;

/// Shared data as the host keeps it, shared by every plugin (worker) started `shared_with`
/// another: Envoy's one map per vm_id, or ngx_wasm_module's `shm_kv` zones.
#[derive(Debug)]
pub(crate) struct SharedStore {
    pub envoy: KeyValues,
    /// proxy-wasm-cpp-host's `SharedData::nextCas`: one counter for every key, never 0.
    pub next_cas: u32,
    /// Declared `shm_kv` zones by name (`*` is the default zone).
    pub zones: BTreeMap<String, KeyValues>,
}

impl Default for SharedStore {
    fn default() -> Self {
        SharedStore { envoy: HashMap::new(), next_cas: 1, zones: BTreeMap::new() }
    }
}

pub(crate) type Shared = Arc<Mutex<SharedStore>>;

#[derive(Debug)]
pub(crate) struct Queue {
    pub owner_context: u32,
    pub items: VecDeque<Vec<u8>>,
}

pub struct HostState {
    pub(crate) profile: crate::hosts::HostProfile,
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limits: StoreLimits,
    pub(crate) clock: Clock,
    pub(crate) log_level: LogLevel,
    pub(crate) echo_logs: bool,
    pub(crate) logs: Vec<LogEntry>,
    pub(crate) vm_config: Vec<u8>,
    pub(crate) plugin_config: Vec<u8>,
    pub(crate) properties: BTreeMap<PropertyPath, Vec<u8>>,
    pub(crate) root_context: u32,
    pub(crate) effective_context: u32,
    pub(crate) streams: HashMap<u32, Stream>,
    pub(crate) metrics: Vec<Metric>,
    pub(crate) shared: Shared,
    pub(crate) queues: Vec<(String, Queue)>,
    pub(crate) ready_queues: VecDeque<(u32, u32)>,
    pub(crate) tick_period_ms: u32,
    pub(crate) next_tick_nanos: Option<u64>,
    pub(crate) clusters: HashMap<String, Cluster>,
    pub(crate) next_call_token: u32,
    pub(crate) pending_calls: Vec<PendingCall>,
    pub(crate) calls_made: Vec<HttpCallRequest>,
    pub(crate) call_response: Option<Response>,
    /// ngx_wasm_module's `:dispatch_status` of the call being delivered.
    pub(crate) dispatch_status: Option<&'static str>,
    pub(crate) step: Step,
    pub(crate) foreign_functions: HashMap<String, ForeignFunction>,
    pub(crate) call_data: Vec<u8>,
    pub(crate) done_signalled: bool,
    /// The guest's memory and allocator, looked up once after instantiation (as Envoy's
    /// proxy-wasm host does), so a hostcall does not search the exports by name.
    pub(crate) guest_memory: Option<Memory>,
    pub(crate) guest_allocator: Option<TypedFunc<i32, i32>>,
}

impl HostState {
    pub(crate) fn new(wasi: WasiP1Ctx, limits: StoreLimits, clock: Clock) -> Self {
        HostState {
            profile: crate::hosts::HostProfile::Envoy,
            wasi,
            limits,
            clock,
            log_level: LogLevel::Trace,
            echo_logs: false,
            logs: Vec::new(),
            vm_config: Vec::new(),
            plugin_config: Vec::new(),
            properties: BTreeMap::new(),
            root_context: 1,
            effective_context: 1,
            streams: HashMap::new(),
            metrics: Vec::new(),
            shared: Shared::default(),
            queues: Vec::new(),
            ready_queues: VecDeque::new(),
            tick_period_ms: 0,
            next_tick_nanos: None,
            clusters: HashMap::new(),
            next_call_token: 1,
            pending_calls: Vec::new(),
            calls_made: Vec::new(),
            call_response: None,
            dispatch_status: None,
            step: Step::Start,
            foreign_functions: HashMap::new(),
            call_data: Vec::new(),
            done_signalled: false,
            guest_memory: None,
            guest_allocator: None,
        }
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: String) {
        if self.echo_logs {
            eprintln!("[wasm {level}] {message}");
        }
        let context_id = self.effective_context;
        self.logs.push(LogEntry { level, context_id, message });
    }

    /// The stream of the effective context, if that context is an HTTP context.
    pub(crate) fn stream(&self) -> Option<&Stream> {
        self.streams.get(&self.effective_context)
    }

    pub(crate) fn stream_mut(&mut self) -> Option<&mut Stream> {
        self.streams.get_mut(&self.effective_context)
    }

    pub(crate) fn property(&self, path: &[String]) -> Option<&Vec<u8>> {
        self.stream()
            .and_then(|stream| stream.properties.get(path))
            .or_else(|| self.properties.get(path))
    }
}
