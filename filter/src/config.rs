//! The plugin configuration (the compiler's bundle) turned into ready-to-run state, once, in
//! `on_configure`: the table decoded and its regexes compiled, the keys parsed, the ignore
//! patterns compiled. Anything invalid is an error, and the module refuses the configuration
//! rather than run half-configured.

use decision_table::Evaluator;
use decision_table::bundle::{BUNDLE_FORMAT, Bundle, ProxyHost, Settings};
use decision_table::matcher::RegexMatcher;

use crate::engine;
use crate::host::Proxy;
use crate::host_verify;
use crate::jwt::{self, ProviderKeys};

pub struct Loaded {
    pub settings: Settings,
    pub evaluator: Evaluator,
    pub providers: Vec<ProviderKeys>,
    pub ignore: Vec<RegexMatcher>,
    pub table_hash: String,
    /// The key families whose signatures the proxy's `verify_signature` checks: those that
    /// passed its self-test (set by the proxy adapter after loading; none natively and when
    /// the host lacks it).
    pub host_verifies: host_verify::Families,
    /// The proxy: from the bundle's `host`, or (for `auto`) what the adapter found out.
    pub proxy: Proxy,
    /// The identity headers a client's copy of is taken out ([`engine::identity_headers`]).
    pub identity_headers: Vec<String>,
    /// The headers whose upstream value the filter decides ([`engine::controlled_headers`]).
    pub controlled_headers: Vec<String>,
    /// `settings.mint`, ready to sign.
    pub minter: Option<crate::mint::Minter>,
    /// `settings.login.paths`, compiled.
    pub login_paths: Vec<RegexMatcher>,
    /// The largest answer any callout a request waits for may have (introspection, Basic,
    /// tenant mapping); each endpoint's own `max_bytes` is checked on its answer.
    pub callout_max_bytes: usize,
    /// The client certificate's metric names.
    pub mtls_metrics: jwt::ProviderMetrics,
    /// Allowed requests since the last one logged (`log_allowed_every`).
    allowed_since_logged: std::cell::Cell<u64>,
}

impl Loaded {
    /// Whether this allowed request is one to log: every `log_allowed_every`-th (never at 0).
    pub fn sample_allowed(&self) -> bool {
        let every = self.settings.log_allowed_every;
        if every == 0 {
            return false;
        }
        let seen = self.allowed_since_logged.get() + 1;
        let log = seen >= every;
        self.allowed_since_logged.set(if log { 0 } else { seen });
        log
    }
}

/// A bundle built into the module (`POLICY_FILTER_BUNDLE=path cargo build ...`), used when
/// the proxy passes no plugin configuration.
pub const EMBEDDED_BUNDLE: &str = include_str!(concat!(env!("OUT_DIR"), "/embedded-bundle.json"));

pub fn load(configuration: &[u8]) -> Result<Loaded, String> {
    let configuration = if configuration.iter().all(u8::is_ascii_whitespace) {
        if EMBEDDED_BUNDLE.trim().is_empty() {
            return Err("no plugin configuration, and no bundle was embedded at build time".into());
        }
        EMBEDDED_BUNDLE.as_bytes()
    } else {
        configuration
    };
    let bundle = Bundle::parse(configuration).map_err(|e| format!("the configuration is not a policy bundle: {e}"))?;
    if bundle.format != BUNDLE_FORMAT {
        return Err(format!("bundle format {} is not supported (this module reads {BUNDLE_FORMAT}); recompile with a matching policy-compiler", bundle.format));
    }
    let table = decision_table::Table::decode_bundled(&bundle.table, &bundle.table_hash).map_err(|e| e.to_string())?;
    let evaluator = Evaluator::new(&table).map_err(|e| e.to_string())?;
    let ignore = bundle
        .settings
        .ignore_patterns
        .iter()
        .map(|p| RegexMatcher::new(p).map_err(|e| format!("ignore pattern {p:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let providers = jwt::providers(&bundle.providers)?;
    let login_paths = match &bundle.settings.login {
        Some(login) => login.paths.iter().map(|p| RegexMatcher::new(p).map_err(|e| format!("login path {p:?}: {e}"))).collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if providers.is_empty() && bundle.settings.mtls.is_none() {
        return Err("the bundle has no token provider and no mTLS: nothing could authenticate".into());
    }
    if bundle.settings.token_sources.is_empty() && bundle.settings.mtls.is_none() {
        return Err("the bundle has no token source and no mTLS".into());
    }
    let proxy = match bundle.settings.host {
        ProxyHost::Envoy => Proxy::Envoy,
        ProxyHost::NgxWasmModule => Proxy::NgxWasmModule,
        ProxyHost::Auto => Proxy::Unknown,
    };
    let minter = bundle.settings.mint.as_ref().map(crate::mint::Minter::new).transpose()?;
    let endpoints = providers
        .iter()
        .flat_map(|p| [p.introspection.as_ref().map(|i| &i.endpoint), p.basic.as_ref().map(|b| &b.endpoint)])
        .chain([bundle.settings.tenants.as_ref().and_then(|t| t.endpoint.as_ref())]);
    let callout_max_bytes = endpoints.flatten().map(|e| e.max_bytes).max().unwrap_or(0);
    Ok(Loaded {
        callout_max_bytes,
        mtls_metrics: jwt::ProviderMetrics::new(decision_table::bundle::MTLS_PROVIDER),
        minter,
        login_paths,
        identity_headers: engine::identity_headers(&bundle.settings),
        controlled_headers: engine::controlled_headers(&bundle.settings),
        evaluator,
        providers,
        ignore,
        table_hash: bundle.table_hash,
        settings: bundle.settings,
        host_verifies: host_verify::Families::default(),
        proxy,
        allowed_since_logged: std::cell::Cell::new(0),
    })
}
