//! Loading a module and driving it as a proxy does: one root context per plugin, one HTTP
//! context per request, callbacks in Envoy's order (`hosts` says where another proxy differs),
//! and every failure of the guest turned into a closed request instead of a hang or a panic.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{
    Config, Engine, Instance, InstancePre, Linker, Module, Store, StoreLimitsBuilder, Trap, TypedFunc, WasmParams,
    WasmResults,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::host::{
    Answer, Clock, Cluster, ForeignFunction, HostState, LogEntry, LogLevel, Metric, Shared, Step, Stream, property_path,
};
use crate::hosts::{HostProfile, encode_all};
use crate::http::{CallReply, HttpCallRequest, LocalReply, Outcome, PropertyValue, Request, Response, UpstreamRequest};
use crate::{Status, abi};

/// Limits on one plugin instance. A guest that exceeds them fails its request closed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Fuel (roughly, wasm instructions) one callback may burn before it is stopped. `None`
    /// compiles the module without fuel metering, as proxies run it: a runaway loop is then
    /// not stopped, and no fuel is counted. Metering costs time (about a third more for
    /// arithmetic-heavy code), so the bench times an unmetered module.
    pub fuel_per_callback: Option<u64>,
    /// The most linear memory the guest may grow to, in bytes.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { fuel_per_callback: Some(2_000_000_000), memory_bytes: 256 << 20 }
    }
}

/// Why a module could not be loaded. A refused configuration carries the module's log, which
/// is usually where it says why.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("not a valid wasm module: {0}")]
    Compile(String),
    #[error("the module exports no proxy_abi_version_0_2_1 or _0_2_0: not a proxy-wasm 0.2 module")]
    UnsupportedAbi,
    #[error("cannot instantiate the module: {0}")]
    Instantiate(String),
    #[error("the module refused its configuration ({phase} returned false); on this host: {}{}", host.refused_configuration(), render_logs(logs))]
    Refused { phase: &'static str, host: HostProfile, logs: Vec<LogEntry> },
    #[error("the module failed during {phase}: {reason}{}", render_logs(logs))]
    Failed { phase: &'static str, reason: String, logs: Vec<LogEntry> },
}

fn render_logs(logs: &[LogEntry]) -> String {
    if logs.is_empty() {
        return "\nthe module logged nothing".to_string();
    }
    let mut out = String::from("\nmodule log:");
    for entry in logs {
        out.push_str(&format!("\n  [{}] {}", entry.level, entry.message));
    }
    out
}

/// A compiled proxy-wasm module, ready to be instantiated any number of times.
pub struct ProxyWasmModule {
    engine: Engine,
    pre: InstancePre<HostState>,
    limits: Limits,
}

impl ProxyWasmModule {
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
        Self::from_bytes(&bytes, Limits::default())
    }

    /// Compiles `bytes` (binary wasm, or text when the `wat` feature is on).
    pub fn from_bytes(bytes: &[u8], limits: Limits) -> Result<Self, LoadError> {
        let mut config = Config::new();
        config.consume_fuel(limits.fuel_per_callback.is_some());
        let engine = Engine::new(&config).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let module = Module::new(&engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
        if !exports.iter().any(|name| *name == "proxy_abi_version_0_2_1" || *name == "proxy_abi_version_0_2_0") {
            return Err(LoadError::UnsupportedAbi);
        }
        let mut linker = Linker::new(&engine);
        let link = |linker: &mut Linker<HostState>| -> wasmtime::Result<()> {
            wasmtime_wasi::p1::add_to_linker_sync(linker, |state: &mut HostState| &mut state.wasi)?;
            abi::link(linker)?;
            abi::link_unknown_env_imports(linker, &module)
        };
        link(&mut linker).map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        let pre = linker.instantiate_pre(&module).map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        Ok(ProxyWasmModule { engine, pre, limits })
    }

    pub fn plugin(&self) -> PluginBuilder<'_> {
        PluginBuilder {
            module: self,
            plugin_config: Vec::new(),
            vm_config: Vec::new(),
            now_unix_seconds: 1_800_000_000,
            host: HostProfile::Envoy,
            properties: BTreeMap::new(),
            clusters: Vec::new(),
            foreign_functions: envoy_foreign_functions(),
            upstream: Arc::new(|_| Response::new(200)),
            log_level: LogLevel::Trace,
            echo_logs: false,
            shared: None,
            shm_kv: Vec::new(),
        }
    }
}

fn envoy_foreign_functions() -> Vec<(String, ForeignFunction)> {
    crate::envoy_functions::defaults()
        .into_iter()
        .map(|(name, function)| (name.to_string(), Arc::new(function) as ForeignFunction))
        .collect()
}

/// The upstream behind the proxy: answers every request the module lets through.
pub type Upstream = Arc<dyn Fn(&UpstreamRequest) -> Response + Send + Sync>;

/// Sets up a plugin (root context, configuration, host environment) before it starts.
#[derive(Clone)]
pub struct PluginBuilder<'m> {
    module: &'m ProxyWasmModule,
    plugin_config: Vec<u8>,
    vm_config: Vec<u8>,
    now_unix_seconds: u64,
    host: HostProfile,
    properties: BTreeMap<String, PropertyValue>,
    clusters: Vec<(String, Cluster)>,
    foreign_functions: Vec<(String, ForeignFunction)>,
    upstream: Upstream,
    log_level: LogLevel,
    echo_logs: bool,
    shared: Option<(Shared, Clock)>,
    shm_kv: Vec<String>,
}

impl PluginBuilder<'_> {
    /// Another worker of `plugin`'s proxy: it shares that plugin's shared data (and
    /// ngx_wasm_module's `shm_kv` zones) and its clock, so `advance_time` on either moves
    /// both (`now` is then ignored). Everything else is its own: root context, ticks, stub
    /// clusters, queues, metrics. Each plugin delivers only its own ticks and callouts, when
    /// it advances or sends; a tick another worker's advance skipped over fires once, late, on
    /// its next advance. [`Plugin::advance_workers`] advances several in time order. Give
    /// them the same host.
    pub fn shared_with(mut self, plugin: &Plugin) -> Self {
        let state = plugin.store.data();
        self.shared = Some((state.shared.clone(), state.clock.clone()));
        self
    }

    /// ngx_wasm_module: declares a `shm_kv <name> <size>;` zone of the `wasm{}` block (`*` is
    /// the default zone). Without any, shared data traps on that host, as in an nginx.conf
    /// without `shm_kv`. Envoy ignores it.
    pub fn ngx_shm_kv(mut self, name: &str) -> Self {
        self.shm_kv.push(name.to_string());
        self
    }

    pub fn plugin_config(mut self, config: impl Into<Vec<u8>>) -> Self {
        self.plugin_config = config.into();
        self
    }

    pub fn vm_config(mut self, config: impl Into<Vec<u8>>) -> Self {
        self.vm_config = config.into();
        self
    }

    /// The host clock's start, in seconds since the Unix epoch.
    pub fn now(mut self, unix_seconds: u64) -> Self {
        self.now_unix_seconds = unix_seconds;
        self
    }

    /// Which proxy to play ([`HostProfile`]; Envoy unless set). Set it before adding foreign
    /// functions: it resets them to the host's own (Envoy's `verify_signature`, or none).
    pub fn host(mut self, host: HostProfile) -> Self {
        self.host = host;
        self.foreign_functions = if host.has_envoy_functions() { envoy_foreign_functions() } else { Vec::new() };
        self
    }

    /// A plugin-wide property (`plugin_root_id`, `source.address`, ...).
    pub fn property(mut self, path: &str, value: impl Into<PropertyValue>) -> Self {
        self.properties.insert(path.to_string(), value.into());
        self
    }

    /// A cluster the module may call with `proxy_http_call`.
    pub fn cluster(mut self, name: &str, answer: impl Fn(&HttpCallRequest) -> CallReply + Send + Sync + 'static) -> Self {
        self.clusters.push((name.to_string(), Arc::new(answer)));
        self
    }

    pub fn foreign_function(
        mut self,
        name: &str,
        function: impl Fn(&[u8]) -> Result<Vec<u8>, Status> + Send + Sync + 'static,
    ) -> Self {
        self = self.without_foreign_function(name);
        self.foreign_functions.push((name.to_string(), Arc::new(function)));
        self
    }

    /// Withdraws a foreign function, Envoy's own included (`verify_signature`): the module's
    /// call then answers `NotFound` (Envoy) or traps (ngx_wasm_module).
    pub fn without_foreign_function(mut self, name: &str) -> Self {
        self.foreign_functions.retain(|(known, _)| known != name);
        self
    }

    /// How the stub upstream answers forwarded requests (default: 200, no body).
    pub fn upstream(mut self, answer: impl Fn(&UpstreamRequest) -> Response + Send + Sync + 'static) -> Self {
        self.upstream = Arc::new(answer);
        self
    }

    /// The level `proxy_get_log_level` reports (the module may skip lower levels).
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// Also print every log line to stderr as it happens.
    pub fn echo_logs(mut self, echo: bool) -> Self {
        self.echo_logs = echo;
        self
    }

    /// Instantiates the module and runs start-up: `_initialize`/`_start`, the root context,
    /// `proxy_on_vm_start` and `proxy_on_configure`. A `false` from either is a refusal.
    pub fn start(self) -> Result<Plugin, LoadError> {
        let (shared, clock) = match self.shared {
            Some((shared, clock)) => (shared, clock),
            None => (Shared::default(), Clock::at_unix_seconds(self.now_unix_seconds)),
        };
        if let Ok(mut store) = shared.lock() {
            for zone in &self.shm_kv {
                store.zones.entry(zone.clone()).or_default();
            }
        }
        let stdout = MemoryOutputPipe::new(1 << 20);
        let stderr = MemoryOutputPipe::new(1 << 20);
        let wasi = WasiCtxBuilder::new()
            .wall_clock(clock.clone())
            .monotonic_clock(clock.clone())
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build_p1();
        let limits = StoreLimitsBuilder::new().memory_size(self.module.limits.memory_bytes).build();
        let mut state = HostState::new(wasi, limits, clock);
        state.log_level = self.log_level;
        state.echo_logs = self.echo_logs;
        state.vm_config = self.vm_config;
        state.plugin_config = self.plugin_config;
        state.profile = self.host;
        state.properties = encode_all(self.host.default_properties());
        for (path, value) in &self.properties {
            for (path, value) in self.host.reported_property(path, value) {
                state.properties.insert(property_path(&path), value.encode());
            }
        }
        state.clusters = self.clusters.into_iter().collect();
        state.shared = shared;
        state.foreign_functions = self.foreign_functions.into_iter().collect();

        let mut store = Store::new(&self.module.engine, state);
        store.limiter(|state| &mut state.limits);
        if let Some(fuel) = self.module.limits.fuel_per_callback {
            store.set_fuel(fuel).map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        }
        let instance = self.module.pre.instantiate(&mut store).map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        let exports = Exports::find(&instance, &mut store).map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        store.data_mut().guest_memory = instance.get_memory(&mut store, "memory");
        store.data_mut().guest_allocator = crate::guest::ALLOCATOR_EXPORTS
            .iter()
            .find_map(|name| instance.get_typed_func::<i32, i32>(&mut store, name).ok());
        let mut plugin = Plugin {
            store,
            exports,
            upstream: self.upstream,
            limits: self.module.limits,
            stdout: OutputTap::new(stdout, LogLevel::Info),
            stderr: OutputTap::new(stderr, LogLevel::Error),
            next_context: 2,
            failed: None,
            fuel_burnt: 0,
        };
        plugin.boot()?;
        Ok(plugin)
    }
}

/// Turns what the guest writes to stdout/stderr into log lines, as Envoy does.
struct OutputTap {
    pipe: MemoryOutputPipe,
    seen: usize,
    level: LogLevel,
}

impl OutputTap {
    fn new(pipe: MemoryOutputPipe, level: LogLevel) -> Self {
        OutputTap { pipe, seen: 0, level }
    }

    fn drain(&mut self, state: &mut HostState) {
        let contents = self.pipe.contents();
        let fresh = contents.get(self.seen..).unwrap_or_default();
        self.seen = contents.len();
        for line in String::from_utf8_lossy(fresh).lines().filter(|l| !l.trim().is_empty()) {
            state.log(self.level, line.to_string());
        }
    }
}

type Func<P, R> = Option<TypedFunc<P, R>>;

/// The guest's exports the host calls. Any of them may be missing: Envoy then skips the
/// callback (and a skipped HTTP callback continues).
struct Exports {
    initialize: Func<(), ()>,
    start: Func<(), ()>,
    context_create: Func<(i32, i32), ()>,
    vm_start: Func<(i32, i32), i32>,
    configure: Func<(i32, i32), i32>,
    request_headers: Func<(i32, i32, i32), i32>,
    request_body: Func<(i32, i32, i32), i32>,
    request_trailers: Func<(i32, i32), i32>,
    response_headers: Func<(i32, i32, i32), i32>,
    response_body: Func<(i32, i32, i32), i32>,
    response_trailers: Func<(i32, i32), i32>,
    done: Func<i32, i32>,
    log: Func<i32, ()>,
    delete: Func<i32, ()>,
    tick: Func<i32, ()>,
    queue_ready: Func<(i32, i32), ()>,
    http_call_response: Func<(i32, i32, i32, i32, i32), ()>,
}

impl Exports {
    fn find(instance: &Instance, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        fn get<P: WasmParams, R: WasmResults>(
            instance: &Instance,
            store: &mut Store<HostState>,
            name: &str,
        ) -> wasmtime::Result<Func<P, R>> {
            match instance.get_func(&mut *store, name) {
                None => Ok(None),
                Some(func) => func
                    .typed::<P, R>(&*store)
                    .map(Some)
                    .map_err(|e| e.context(format!("export {name} has the wrong signature"))),
            }
        }
        Ok(Exports {
            initialize: get(instance, store, "_initialize")?,
            start: get(instance, store, "_start")?,
            context_create: get(instance, store, "proxy_on_context_create")?,
            vm_start: get(instance, store, "proxy_on_vm_start")?,
            configure: get(instance, store, "proxy_on_configure")?,
            request_headers: get(instance, store, "proxy_on_request_headers")?,
            request_body: get(instance, store, "proxy_on_request_body")?,
            request_trailers: get(instance, store, "proxy_on_request_trailers")?,
            response_headers: get(instance, store, "proxy_on_response_headers")?,
            response_body: get(instance, store, "proxy_on_response_body")?,
            response_trailers: get(instance, store, "proxy_on_response_trailers")?,
            done: get(instance, store, "proxy_on_done")?,
            log: get(instance, store, "proxy_on_log")?,
            delete: get(instance, store, "proxy_on_delete")?,
            tick: get(instance, store, "proxy_on_tick")?,
            queue_ready: get(instance, store, "proxy_on_queue_ready")?,
            http_call_response: get(instance, store, "proxy_on_http_call_response")?,
        })
    }
}

/// The guest failed (trap, fuel, memory): the plugin is broken from now on, as a failed VM is
/// in Envoy, and every request fails closed.
#[derive(Debug, Clone)]
struct GuestFailure(String);

/// Where a request or response phase left the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Replied,
    Reset,
    Stalled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

const CONTINUE: i32 = 0;
/// How many callouts and queue deliveries one callback may set off before the harness stops
/// delivering (a module that calls out from every callout response would loop forever).
const MAX_EVENTS_PER_CALLBACK: usize = 1000;

/// A running plugin: one VM, one root context, and a fresh HTTP context per request.
pub struct Plugin {
    store: Store<HostState>,
    exports: Exports,
    upstream: Upstream,
    limits: Limits,
    stdout: OutputTap,
    stderr: OutputTap,
    next_context: u32,
    failed: Option<String>,
    fuel_burnt: u64,
}

impl Plugin {
    /// The proxy this plugin plays.
    pub fn host(&self) -> HostProfile {
        self.store.data().profile
    }

    fn root(&self) -> i32 {
        self.store.data().root_context as i32
    }

    /// Calls one guest export with `context` as the effective context, under the fuel budget.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        step: Step,
        func: impl Fn(&Exports) -> &Func<P, R>,
        context: i32,
        params: P,
    ) -> Result<Option<R>, GuestFailure> {
        if let Some(reason) = &self.failed {
            return Err(GuestFailure(reason.clone()));
        }
        let Some(func) = func(&self.exports).clone() else { return Ok(None) };
        self.store.data_mut().effective_context = context as u32;
        self.store.data_mut().step = step;
        let budget = self.limits.fuel_per_callback;
        if let Some(budget) = budget {
            self.store.set_fuel(budget).map_err(|e| GuestFailure(format!("{e:#}")))?;
        }
        let result = func.call(&mut self.store, params);
        if let Some(budget) = budget {
            let left = self.store.get_fuel().unwrap_or(0);
            self.fuel_burnt = self.fuel_burnt.saturating_add(budget.saturating_sub(left));
        }
        self.drain_output();
        match result {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                let reason = describe_trap(&error, budget);
                self.store.data_mut().log(LogLevel::Critical, format!("harness: guest failed: {reason}"));
                self.failed = Some(reason.clone());
                Err(GuestFailure(reason))
            }
        }
    }

    fn drain_output(&mut self) {
        let state = self.store.data_mut();
        self.stdout.drain(state);
        self.stderr.drain(state);
    }

    fn boot(&mut self) -> Result<(), LoadError> {
        let failed = |plugin: &Self, phase: &'static str, e: GuestFailure| LoadError::Failed {
            phase,
            reason: e.0,
            logs: plugin.logs().to_vec(),
        };
        if self.exports.initialize.is_some() {
            self.call(Step::Start, |e| &e.initialize, 0, ()).map_err(|e| failed(self, "_initialize", e))?;
        } else if self.exports.start.is_some() {
            self.call(Step::Start, |e| &e.start, 0, ()).map_err(|e| failed(self, "_start", e))?;
        }
        let root = self.root();
        self.call(Step::Start, |e| &e.context_create, root, (root, 0)).map_err(|e| failed(self, "proxy_on_context_create", e))?;
        let vm_config_size = self.store.data().vm_config.len() as i32;
        let started = self.call(Step::VmStart, |e| &e.vm_start, root, (root, vm_config_size)).map_err(|e| failed(self, "proxy_on_vm_start", e))?;
        if started == Some(0) {
            return Err(LoadError::Refused { phase: "proxy_on_vm_start", host: self.host(), logs: self.logs().to_vec() });
        }
        let plugin_config_size = self.store.data().plugin_config.len() as i32;
        let configured = self
            .call(Step::Configure, |e| &e.configure, root, (root, plugin_config_size))
            .map_err(|e| failed(self, "proxy_on_configure", e))?;
        if configured == Some(0) {
            return Err(LoadError::Refused { phase: "proxy_on_configure", host: self.host(), logs: self.logs().to_vec() });
        }
        self.pump_events().map_err(|e| failed(self, "start-up callouts", e))?;
        Ok(())
    }

    /// Sends one request through the module and the stub upstream, and reports how it ended.
    pub fn send(&mut self, request: &Request) -> Outcome {
        let host = self.host();
        if let Some((response, reason)) = host.answers_before_filters(request) {
            self.store.data_mut().log(LogLevel::Info, reason.clone());
            let reply = LocalReply { status: response.status, details: reason, grpc_status: -1 };
            return Outcome { response, upstream: None, local_reply: Some(reply), answered_by_proxy: true, reset: false, stalled: false, guest_failure: None, fuel: 0, hostcalls: Vec::new() };
        }
        let fuel_before = self.fuel_burnt;
        crate::status::start_recording_hostcalls();
        let context = self.next_context as i32;
        self.next_context = self.next_context.wrapping_add(1).max(2);
        let mut stream = Stream {
            request_headers: host.filter_headers(request),
            request_body: request.body.clone(),
            request_trailers: request.trailers.clone(),
            ..Stream::default()
        };
        stream.properties = request_properties(host, request);
        self.store.data_mut().streams.insert(context as u32, stream);

        let mut outcome = match self.run_stream(context, request) {
            Ok(outcome) => outcome,
            Err(GuestFailure(reason)) => failed_closed(reason),
        };
        if self.failed.is_none() {
            // The teardown of a healthy stream; a failure here still breaks the VM.
            let teardown = self
                .call(Step::Done, |e| &e.done, context, context)
                .and_then(|_| self.call(Step::Log, |e| &e.log, context, context))
                .and_then(|_| self.call(Step::Delete, |e| &e.delete, context, context));
            if let Err(GuestFailure(reason)) = teardown {
                outcome.guest_failure.get_or_insert(reason);
            }
        }
        // Envoy's `Context::~Context` cancels the stream's outstanding callouts.
        let state = self.store.data_mut();
        state.streams.remove(&(context as u32));
        state.pending_calls.retain(|call| call.context_id != context as u32);
        outcome.fuel = self.fuel_burnt.saturating_sub(fuel_before);
        outcome.hostcalls = crate::status::recorded_hostcalls();
        outcome
    }

    fn run_stream(&mut self, context: i32, request: &Request) -> Result<Outcome, GuestFailure> {
        self.call(Step::Start, |e| &e.context_create, context, (context, self.root()))?;
        let mut local_reply = None;
        let flow = self.request_phase(context, request)?;
        let upstream = match flow {
            Flow::Continue => {
                let host = self.host();
                let stream = self.stream(context);
                let sent = UpstreamRequest {
                    headers: host.upstream_headers(request, &stream.request_headers, &stream.request_headers_hidden),
                    body: stream.request_body.clone(),
                    trailers: stream.request_trailers.clone(),
                };
                let answer = (self.upstream)(&sent);
                self.set_response(context, answer);
                Some(sent)
            }
            Flow::Replied => {
                let (reply, response) = self.take_local_reply(context).unwrap_or_else(|| internal_reply(500));
                local_reply = Some(reply);
                self.set_response(context, response);
                None
            }
            Flow::Reset => return Ok(reset_outcome(None)),
            Flow::Stalled => return Ok(stalled_outcome()),
        };
        match self.response_phase(context)? {
            Flow::Continue => {}
            Flow::Replied => {
                // A local reply sent while the response was processed replaces the response.
                if let Some((reply, response)) = self.take_local_reply(context) {
                    local_reply = Some(reply);
                    self.set_response(context, response);
                }
            }
            Flow::Reset => return Ok(reset_outcome(upstream)),
            Flow::Stalled => return Ok(stalled_outcome()),
        }
        let stream = self.stream(context);
        let response = Response {
            status: status_of(&stream.response_headers),
            headers: stream.response_headers.clone(),
            body: stream.response_body.clone(),
            trailers: stream.response_trailers.clone(),
        };
        Ok(Outcome { response, upstream, local_reply, answered_by_proxy: false, reset: false, stalled: false, guest_failure: None, fuel: 0, hostcalls: Vec::new() })
    }

    fn request_phase(&mut self, context: i32, request: &Request) -> Result<Flow, GuestFailure> {
        let headers = self.stream(context).request_headers.len() as i32;
        let (has_body, has_trailers) = (!request.body.is_empty(), !request.trailers.is_empty());
        let end = i32::from(!has_body && !has_trailers);
        let action = self.call(Step::RequestHeaders, |e| &e.request_headers, context, (context, headers, end))?;
        let mut flow = self.settle(context, action, Direction::Request)?;
        if flow == Flow::Continue && has_body {
            let size = request.body.len() as i32;
            let action = self.call(Step::RequestBody, |e| &e.request_body, context, (context, size, i32::from(!has_trailers)))?;
            flow = self.settle(context, action, Direction::Request)?;
        }
        if flow == Flow::Continue && has_trailers {
            let count = request.trailers.len() as i32;
            let action = self.call(Step::RequestTrailers, |e| &e.request_trailers, context, (context, count))?;
            flow = self.settle(context, action, Direction::Request)?;
        }
        Ok(flow)
    }

    fn response_phase(&mut self, context: i32) -> Result<Flow, GuestFailure> {
        let stream = self.stream(context);
        let headers = stream.response_headers.len() as i32;
        let (body_size, trailers) = (stream.response_body.len() as i32, stream.response_trailers.len() as i32);
        let end = i32::from(body_size == 0 && trailers == 0);
        let action = self.call(Step::ResponseHeaders, |e| &e.response_headers, context, (context, headers, end))?;
        let mut flow = self.settle(context, action, Direction::Response)?;
        if flow == Flow::Continue && body_size > 0 {
            let action = self.call(Step::ResponseBody, |e| &e.response_body, context, (context, body_size, i32::from(trailers == 0)))?;
            flow = self.settle(context, action, Direction::Response)?;
        }
        if flow == Flow::Continue && trailers > 0 {
            let action = self.call(Step::ResponseTrailers, |e| &e.response_trailers, context, (context, trailers))?;
            flow = self.settle(context, action, Direction::Response)?;
        }
        Ok(flow)
    }

    /// After a callback: deliver what it set off (callouts, queues), then decide whether the
    /// stream goes on, was answered locally, was reset, or waits forever. A stream paused on
    /// its own callouts waits for them: the host clock moves to each next event (ticks
    /// included), as time passes for a client waiting on the proxy.
    fn settle(&mut self, context: i32, action: Option<i32>, direction: Direction) -> Result<Flow, GuestFailure> {
        self.pump_events()?;
        let paused = action.unwrap_or(CONTINUE) != CONTINUE;
        for _ in 0..MAX_EVENTS_PER_CALLBACK {
            let stream = self.stream_mut(context);
            let resumed = match direction {
                Direction::Request => stream.request_resumed,
                Direction::Response => stream.response_resumed,
            };
            let waiting = paused && !resumed && !stream.reset && stream.local_reply.is_none();
            let own_call_due =
                self.store.data().pending_calls.iter().any(|c| c.context_id == context as u32 && c.due_nanos.is_some());
            let Some(at) = self.next_event_at().filter(|_| waiting && own_call_due) else { break };
            self.run_events_at(at)?;
        }
        let stream = self.stream_mut(context);
        let resumed = match direction {
            Direction::Request => std::mem::take(&mut stream.request_resumed),
            Direction::Response => std::mem::take(&mut stream.response_resumed),
        };
        Ok(if stream.reset {
            Flow::Reset
        } else if stream.local_reply.is_some() {
            Flow::Replied
        } else if action.unwrap_or(CONTINUE) == CONTINUE || resumed {
            Flow::Continue
        } else {
            Flow::Stalled
        })
    }

    /// Delivers the callout responses due on the host clock (earliest first) and queue
    /// notifications.
    fn pump_events(&mut self) -> Result<(), GuestFailure> {
        for _ in 0..MAX_EVENTS_PER_CALLBACK {
            let state = self.store.data_mut();
            let now = state.clock.nanos();
            let due = state
                .pending_calls
                .iter()
                .enumerate()
                .filter_map(|(index, call)| call.due_nanos.filter(|at| *at <= now).map(|at| (at, index)))
                .min()
                .map(|(_, index)| index);
            if let Some(index) = due {
                let call = state.pending_calls.remove(index);
                let ngx = state.profile.is_ngx();
                let (response, status) = match call.answer {
                    Answer::Response(response) => (Some(response), "ok"),
                    // Envoy calls back with no response at all (`Context::onHttpCallFailure`):
                    // reading its headers or body is BadArgument (`getHeaderMap` gives no map
                    // for HttpCallResponseHeaders without `http_call_response_`). ngx_wasm_module
                    // hands an empty response and the reason in `:dispatch_status`.
                    Answer::Failure(reason) => (ngx.then(Response::default), reason),
                };
                let sizes = response.as_ref().map_or((0, 0, 0), |r| (r.headers.len() as i32, r.body.len() as i32, r.trailers.len() as i32));
                state.call_response = response;
                state.dispatch_status = ngx.then_some(status);
                let context = call.context_id as i32;
                let result = self.call(
                    Step::CallResponse,
                    |e| &e.http_call_response,
                    context,
                    (context, call.token as i32, sizes.0, sizes.1, sizes.2),
                );
                let state = self.store.data_mut();
                state.call_response = None;
                state.dispatch_status = None;
                result?;
                if ngx {
                    resume_after_dispatches(state, call.context_id);
                }
            } else if let Some((context, queue)) = state.ready_queues.pop_front() {
                self.call(Step::QueueReady, |e| &e.queue_ready, context as i32, (context as i32, queue as i32))?;
            } else {
                return Ok(());
            }
        }
        self.store.data_mut().log(LogLevel::Warn, "harness: too many chained events; stopped delivering".into());
        Ok(())
    }

    /// When this plugin's next tick or callout answer is due on the host clock.
    fn next_event_at(&self) -> Option<u64> {
        let state = self.store.data();
        let call = state.pending_calls.iter().filter_map(|call| call.due_nanos).min();
        match (call, state.next_tick_nanos) {
            (Some(call), Some(tick)) => Some(call.min(tick)),
            (call, tick) => call.or(tick),
        }
    }

    /// Moves the clock to `at` (never back: a shared clock may be ahead) and delivers what is
    /// due then: callout answers first, then a tick.
    fn run_events_at(&mut self, at: u64) -> Result<(), GuestFailure> {
        if at > self.now_nanos() {
            self.store.data().clock.set_nanos(at);
        }
        self.pump_events()?;
        let state = self.store.data_mut();
        let now = state.clock.nanos();
        if state.next_tick_nanos.is_some_and(|tick| tick <= now) {
            // Both hosts re-arm the tick timer one period after it fired.
            let period = u64::from(state.tick_period_ms) * 1_000_000;
            state.next_tick_nanos = Some(now.saturating_add(period.max(1)));
            let root = self.root();
            self.call(Step::Tick, |e| &e.tick, root, root)?;
            self.pump_events()?;
        }
        Ok(())
    }

    fn advance_to(&mut self, target: u64) -> Result<(), GuestFailure> {
        while let Some(at) = self.next_event_at().filter(|at| *at <= target) {
            self.run_events_at(at)?;
        }
        if target > self.now_nanos() {
            self.store.data().clock.set_nanos(target);
        }
        Ok(())
    }

    fn stream(&mut self, context: i32) -> &Stream {
        self.stream_mut(context)
    }

    fn stream_mut(&mut self, context: i32) -> &mut Stream {
        self.store.data_mut().streams.entry(context as u32).or_default()
    }

    fn take_local_reply(&mut self, context: i32) -> Option<(LocalReply, Response)> {
        self.stream_mut(context).local_reply.take()
    }

    fn set_response(&mut self, context: i32, response: Response) {
        let stream = self.stream_mut(context);
        stream.response_headers = response.headers;
        stream.response_body = response.body;
        stream.response_trailers = response.trailers;
    }

    /// Moves the host clock forward, delivering `proxy_on_tick` at each tick period and each
    /// callout answer when it is due, in time order (the clock reads each event's time).
    pub fn advance_time(&mut self, by: Duration) -> Result<(), String> {
        let target = self.now_nanos().saturating_add(nanos(by));
        self.advance_to(target).map_err(|e| e.0)
    }

    /// Advances several workers (plugins started [`PluginBuilder::shared_with`] one another)
    /// together: every worker's ticks and callout answers, in time order across workers.
    pub fn advance_workers(workers: &mut [Plugin], by: Duration) -> Result<(), String> {
        let targets: Vec<u64> = workers.iter().map(|w| w.now_nanos().saturating_add(nanos(by))).collect();
        loop {
            let next = workers
                .iter()
                .zip(&targets)
                .enumerate()
                .filter_map(|(index, (worker, target))| worker.next_event_at().filter(|at| at <= target).map(|at| (at, index)))
                .min();
            let Some((at, index)) = next else { break };
            if let Some(worker) = workers.get_mut(index) {
                worker.run_events_at(at).map_err(|e| format!("worker {index}: {}", e.0))?;
            }
        }
        for (index, (worker, target)) in workers.iter_mut().zip(targets).enumerate() {
            worker.advance_to(target).map_err(|e| format!("worker {index}: {}", e.0))?;
        }
        Ok(())
    }

    pub fn now_nanos(&self) -> u64 {
        self.store.data().clock.nanos()
    }

    /// Everything logged so far: the module's lines, its stdout/stderr, and harness notes.
    pub fn logs(&self) -> &[LogEntry] {
        &self.store.data().logs
    }

    pub fn clear_logs(&mut self) {
        self.store.data_mut().logs.clear();
    }

    pub fn metrics(&self) -> &[Metric] {
        &self.store.data().metrics
    }

    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics().iter().find(|m| m.name == name)
    }

    /// Every `proxy_http_call` the module made, answered or not.
    pub fn http_calls(&self) -> &[HttpCallRequest] {
        &self.store.data().calls_made
    }

    /// The callouts made but not answered yet (a delayed answer, or one never due).
    pub fn pending_http_calls(&self) -> usize {
        self.store.data().pending_calls.len()
    }

    /// A shared-data value as the module would read it (ngx_wasm_module: in the zone the key
    /// resolves to; `None` when none does).
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        let state = self.store.data();
        let mut store = state.shared.lock().ok()?;
        let entries = if state.profile.is_ngx() {
            crate::hosts::ngx_wasm_module::resolve_zone(&mut store.zones, key)?
        } else {
            &mut store.envoy
        };
        entries.get(key).map(|(value, _)| value.clone())
    }

    /// The reason the VM failed, if it has.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Total fuel burnt since start-up.
    pub fn fuel_burnt(&self) -> u64 {
        self.fuel_burnt
    }
}

fn nanos(by: Duration) -> u64 {
    u64::try_from(by.as_nanos()).unwrap_or(u64::MAX)
}

/// ngx_wasm_module: once the last callout of a request that a dispatch paused is answered,
/// the request goes on without the module resuming it
/// (`ngx_http_proxy_wasm_dispatch_resume_handler`: "last dispatch operation handled",
/// `NGX_PROXY_WASM_ACTION_CONTINUE`).
fn resume_after_dispatches(state: &mut HostState, context: u32) {
    if state.pending_calls.iter().any(|call| call.context_id == context) {
        return;
    }
    if let Some(stream) = state.streams.get_mut(&context)
        && std::mem::take(&mut stream.dispatch_paused)
    {
        stream.request_resumed = true;
    }
}

fn request_properties(host: HostProfile, request: &Request) -> BTreeMap<Vec<String>, Vec<u8>> {
    let header = |name: &str| crate::http::find_header(&request.headers, name).map(str::to_string);
    let mut values = host.request_properties(request);
    for (property, name) in [("request.id", "x-request-id"), ("request.useragent", "user-agent"), ("request.referer", "referer")] {
        if let Some(value) = header(name) {
            values.push((property, value.into()));
        }
    }
    let mut properties: BTreeMap<_, _> = values.into_iter().map(|(path, value)| (property_path(path), value.encode())).collect();
    for (path, value) in &request.properties {
        for (path, value) in host.reported_property(path, value) {
            properties.insert(property_path(&path), value.encode());
        }
    }
    properties
}

fn status_of(headers: &[(String, String)]) -> u16 {
    crate::http::find_header(headers, ":status").and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn internal_reply(status: u16) -> (LocalReply, Response) {
    (LocalReply { status, details: "harness_internal".into(), grpc_status: -1 }, Response::new(status))
}

/// Envoy's answer when a wasm filter's VM has failed: 503, details `wasm_fail_stream`.
fn failed_closed(reason: String) -> Outcome {
    let (reply, response) = (
        LocalReply { status: 503, details: "wasm_fail_stream".into(), grpc_status: -1 },
        Response::new(503),
    );
    Outcome {
        response,
        upstream: None,
        local_reply: Some(reply),
        answered_by_proxy: false,
        reset: false,
        stalled: false,
        guest_failure: Some(reason),
        fuel: 0,
        hostcalls: Vec::new(),
    }
}

fn reset_outcome(upstream: Option<UpstreamRequest>) -> Outcome {
    Outcome {
        response: Response::default(),
        upstream,
        local_reply: None,
        answered_by_proxy: false,
        reset: true,
        stalled: false,
        guest_failure: None,
        fuel: 0,
        hostcalls: Vec::new(),
    }
}

/// A stream paused and never resumed: Envoy would wait for its stream idle timeout and
/// answer 408. The harness does that at once instead of waiting.
fn stalled_outcome() -> Outcome {
    Outcome {
        response: Response::new(408),
        upstream: None,
        local_reply: Some(LocalReply { status: 408, details: "stream_idle_timeout".into(), grpc_status: -1 }),
        answered_by_proxy: false,
        reset: false,
        stalled: true,
        guest_failure: None,
        fuel: 0,
        hostcalls: Vec::new(),
    }
}

fn describe_trap(error: &wasmtime::Error, budget: Option<u64>) -> String {
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => format!("ran out of fuel ({} units in one callback): a runaway loop?", budget.unwrap_or(0)),
        Some(Trap::UnreachableCodeReached) => format!("trapped (unreachable: a panic or abort in the module): {error:#}"),
        Some(trap) => format!("trapped ({trap}): {error:#}"),
        None => match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => format!("called proc_exit({})", exit.0),
            None => format!("{error:#}"),
        },
    }
}
