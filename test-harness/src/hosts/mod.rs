//! The proxies the harness plays. What a module can observe of its host differs between
//! them (which foreign functions exist and what an unknown one does, whether a removed header
//! still reaches the upstream, what `:path` says, which requests the host answers itself, what
//! a refused configuration does, how properties are spelled, where and to what a callout may
//! go, how shared data's compare-and-swap works and where it lives), and a filter that is right in
//! one can be wrong in another. Each host's semantics live in its own module, side by side:
//! [`envoy`] and [`ngx_wasm_module`] (Kong's NGINX module, the runtime Kong Gateway embeds).

pub mod envoy;
pub mod ngx_wasm_module;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::http::{Headers, PropertyValue, Request, Response};

/// Which proxy the harness plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostProfile {
    /// Envoy (and Istio's sidecars and gateways, which are Envoy).
    #[default]
    Envoy,
    /// NGINX with Kong's ngx_wasm_module (and Kong Gateway 3.x, which embeds it), configured
    /// as `policy-compiler render nginx` renders it: `proxy_pass http://backend$uri$is_args$args`.
    NgxWasmModule,
    /// The same host with a plain `proxy_pass http://backend;`: NGINX then forwards the
    /// client's raw request line, whatever the module set `:path` to.
    NgxWasmModulePlainProxyPass,
}

impl HostProfile {
    pub const ALL: [HostProfile; 3] = [HostProfile::Envoy, HostProfile::NgxWasmModule, HostProfile::NgxWasmModulePlainProxyPass];

    pub fn name(self) -> &'static str {
        match self {
            HostProfile::Envoy => "envoy",
            HostProfile::NgxWasmModule => "ngx_wasm_module",
            HostProfile::NgxWasmModulePlainProxyPass => "ngx_wasm_module_plain_proxy_pass",
        }
    }

    /// The host without its configuration variant: `envoy` or `ngx_wasm_module`.
    pub fn family(self) -> &'static str {
        if self.is_ngx() { "ngx_wasm_module" } else { "envoy" }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|host| host.name() == name)
    }

    pub(crate) fn is_ngx(self) -> bool {
        !matches!(self, HostProfile::Envoy)
    }

    /// Whether the host offers Envoy's foreign functions (`verify_signature`).
    pub(crate) fn has_envoy_functions(self) -> bool {
        !self.is_ngx()
    }

    /// What an unknown foreign function does: Envoy answers `NotFound`, ngx_wasm_module traps.
    pub(crate) fn unknown_foreign_function_traps(self) -> bool {
        self.is_ngx()
    }

    /// Whether a header the module removes is gone from what the upstream receives. In
    /// ngx_wasm_module it is only hidden from the module (see [`ngx_wasm_module`]).
    pub(crate) fn removal_reaches_upstream(self) -> bool {
        !self.is_ngx()
    }

    /// The properties every request starts with.
    pub(crate) fn default_properties(self) -> Vec<(&'static str, PropertyValue)> {
        if self.is_ngx() { ngx_wasm_module::default_properties() } else { envoy::default_properties() }
    }

    /// Properties a request's own fields give.
    pub(crate) fn request_properties(self, request: &Request) -> Vec<(&'static str, PropertyValue)> {
        if self.is_ngx() { ngx_wasm_module::request_properties(request) } else { envoy::request_properties(request) }
    }

    /// A property a test set, as this host reports it (`source.address` is the client's
    /// `address:port`; ngx_wasm_module reports the bare address).
    pub(crate) fn reported_property(self, path: &str, value: &PropertyValue) -> Vec<(String, PropertyValue)> {
        if self.is_ngx() { ngx_wasm_module::reported_property(path, value) } else { vec![(path.to_string(), value.clone())] }
    }

    /// Properties the host does not have at all (asked for, they answer `NotFound`), even when
    /// a test sets them.
    pub(crate) fn lacks_property(self, path: &[String]) -> bool {
        self.is_ngx() && ngx_wasm_module::lacks_property(path)
    }

    /// A request the host answers itself, before any filter runs.
    pub(crate) fn answers_before_filters(self, request: &Request) -> Option<(Response, String)> {
        if self.is_ngx() { ngx_wasm_module::answers_before_filters(request) } else { None }
    }

    /// The request headers the module is handed.
    pub(crate) fn filter_headers(self, request: &Request) -> Headers {
        if self.is_ngx() { ngx_wasm_module::filter_headers(request) } else { envoy::filter_headers(request) }
    }

    /// The request the upstream receives, from what the module left (`visible`), what it
    /// removed but the host still forwards (`hidden`), and the client's own request.
    pub(crate) fn upstream_headers(self, request: &Request, visible: &Headers, hidden: &Headers) -> Headers {
        match self {
            HostProfile::Envoy => visible.clone(),
            HostProfile::NgxWasmModule => ngx_wasm_module::upstream_headers(request, visible, hidden, false),
            HostProfile::NgxWasmModulePlainProxyPass => ngx_wasm_module::upstream_headers(request, visible, hidden, true),
        }
    }

    /// What a refused configuration does to the host, for the refusal's message.
    pub fn refused_configuration(self) -> &'static str {
        if self.is_ngx() {
            "ngx_wasm_module: every worker exits (\"exited with fatal code 2 and cannot be respawned\"); the server answers nothing, in every server block"
        } else {
            "Envoy: the listener or ECDS update is rejected and the previous configuration keeps serving"
        }
    }
}

pub(crate) fn encode_all(properties: Vec<(&'static str, PropertyValue)>) -> BTreeMap<Vec<String>, Vec<u8>> {
    properties.into_iter().map(|(path, value)| (crate::host::property_path(path), value.encode())).collect()
}
