//! What the request logic needs from the proxy. The proxy-wasm adapter implements it with
//! hostcalls; tests implement it with a plain struct, so most logic runs natively.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// The proxy the module runs in, as far as the module knows it (the bundle's `host`, else
/// what the proxy answered at start). It decides what the module may ask of the proxy and
/// how it takes a header out of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    /// Envoy (or Istio): a removed header is gone; an unknown foreign function is `NotFound`;
    /// a refused configuration keeps the previous one serving.
    Envoy,
    /// NGINX with ngx_wasm_module, or Kong: a removed header still reaches the upstream (only
    /// its hash is zeroed), an unknown foreign function traps, and a refused configuration
    /// stops every worker.
    NgxWasmModule,
    /// A proxy that did not say: treated as the less forgiving of the two in each respect.
    Unknown,
}

impl Proxy {
    /// Whether `proxy_remove_header_map_value` takes the header out of what the upstream
    /// receives. Where it does not, the module overwrites instead (with an empty value when
    /// it has nothing to say) and refuses requests that repeat a header it must control.
    pub fn removal_reaches_upstream(self) -> bool {
        self == Proxy::Envoy
    }

    /// Whether calling a foreign function that may not exist is safe (answered `NotFound`).
    pub fn may_call_foreign_functions(self) -> bool {
        self == Proxy::Envoy
    }

    /// Whether refusing a configuration (`on_configure` returning false) leaves the rest of
    /// the proxy serving. Where it does not, the module accepts it and answers every request
    /// 503 instead: closed for this filter's routes, without taking down the others.
    pub fn refusal_keeps_serving(self) -> bool {
        self == Proxy::Envoy
    }

    /// Whether `:path` holds the path already percent-decoded once. ngx_wasm_module hands over
    /// NGINX's `r->uri` (`ngx_proxy_wasm_maps_get_path`), decoded by
    /// `ngx_http_parse_complex_uri`: an escape left in it was an encoded `%` the client sent
    /// (`%252e`), which a second decoding would turn into a character.
    pub fn path_is_decoded(self) -> bool {
        self != Proxy::Envoy
    }

    pub fn name(self) -> &'static str {
        match self {
            Proxy::Envoy => "envoy",
            Proxy::NgxWasmModule => "ngx_wasm_module",
            Proxy::Unknown => "an unknown proxy",
        }
    }
}

pub trait Host {
    /// Every request header, in order, names lower-case (pseudo-headers included).
    fn request_headers(&self) -> Vec<(String, String)>;
    fn set_request_header(&mut self, name: &str, value: Option<&str>);
    fn add_request_header(&mut self, name: &str, value: &str);
    /// A property (`["source", "address"]`), raw bytes.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// The host's clock, in Unix seconds. Never the module's own.
    fn now(&self) -> u64;
    /// The same clock in milliseconds (callout latency).
    fn now_ms(&self) -> u64;
    fn send_response(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]);
    fn log(&mut self, level: Level, message: &str);
    /// Adds one to the counter `name`.
    fn count(&mut self, name: &str);
    /// Records `value` in the histogram `name`.
    fn record(&mut self, name: &str, value: u64);
    /// Calls the proxy's foreign function `name` (`proxy_call_foreign_function`); `None` when
    /// the proxy has no such function or it failed.
    fn call_foreign_function(&self, _name: &str, _arguments: &[u8]) -> Option<Vec<u8>> {
        None
    }
    /// Starts an HTTP callout from this request (`proxy_http_call`); its token. The request
    /// then waits for the answer.
    fn dispatch(&mut self, _upstream: &str, _headers: &[(&str, &str)], _body: &[u8], _timeout_ms: u64) -> Result<u32, String> {
        Err("this host makes no callouts".into())
    }
}
