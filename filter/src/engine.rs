//! One request, start to end, behind the [`Host`] trait: normalise the path, drop
//! client-supplied identity headers, bypass, find the credential (a JWT, else the mTLS
//! certificate, else anonymous), verify it, evaluate the decision table, then answer
//! (400/401/403) or forward with the caller's identity. Fails closed at every step.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::rc::Rc;

use decision_table::bundle::{Chain, Endpoint, MTLS_PROVIDER, Mode, MtlsIdentity, Settings, TokenSource};
use decision_table::request::normalize_path;
use decision_table::{AccessRequest, ClientAddress};
use serde::Serialize;

use crate::cache::{self, Check, TokenCache};
use crate::config::Loaded;
use crate::credentials::{self, Found, Origin};
use crate::host::{Host, Level};
use crate::host_verify;
use crate::jwt::{self, Rejection, Verified};

/// What the proxy should do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Forward it (possibly with edited headers).
    Continue,
    /// The filter answered; stop.
    Answered,
    /// The request waits for this callout ([`on_callout_answer`]).
    Dispatched(u32),
}

/// Metric names, all counters.
pub mod metrics {
    pub const ALLOWED: &str = "policy_filter_allowed";
    pub const DENIED: &str = "policy_filter_denied";
    pub const UNAUTHENTICATED: &str = "policy_filter_unauthenticated";
    pub const BYPASSED: &str = "policy_filter_bypassed";
    pub const MALFORMED: &str = "policy_filter_malformed";
    pub const CACHE_HITS: &str = "policy_filter_cache_hits";
    pub const CACHE_MISSES: &str = "policy_filter_cache_misses";
    pub const SHADOW_DENIED: &str = "policy_filter_shadow_denied";
    /// A token refused because its signature failed within the last minute.
    pub const REJECTED_CACHE_HITS: &str = "policy_filter_rejected_cache_hits";
    /// Browsers sent to the login page instead of a 401.
    pub const LOGIN_REDIRECTS: &str = "policy_filter_login_redirects";
    /// Introspection callouts made, and what they answered.
    pub const INTROSPECTIONS: &str = "policy_filter_introspections";
    pub const INTROSPECTED_ACTIVE: &str = "policy_filter_introspected_active";
    pub const INTROSPECTED_INACTIVE: &str = "policy_filter_introspected_inactive";
    /// Requests answered 503: an endpoint that vouches for credentials or tenants did not
    /// answer usably.
    pub const UNAVAILABLE: &str = "policy_filter_unavailable";
    /// The tenant-mapping endpoint's latency (a histogram, milliseconds) and its failures.
    pub const TENANT_MAPPING_MS: &str = "policy_filter_tenant_mapping_ms";
    pub const TENANT_MAPPING_UNAVAILABLE: &str = "policy_filter_tenant_mapping_unavailable";
}

/// Who is calling, once a credential succeeded: the verified token (shared with the cache, so
/// a cached request copies nothing) or the identity taken from the client certificate.
struct Identity {
    caller: Rc<Verified>,
    via: &'static str,
}

/// The answer the filter would give, before shadow mode has its say.
enum Refusal {
    /// A request the filter cannot decide on (400): the reason for the log, the client's message.
    Malformed { reason: String, message: &'static str },
    Unauthenticated { error: Option<&'static str>, description: &'static str, reason: &'static str },
    /// The credential's authorization server gave no usable answer (503).
    Unavailable,
    /// Denied (403): the deciding policy (none: the default deny, or `reason` below).
    Forbidden { policy: Option<String>, subject: String, reason: &'static str },
}

pub fn on_request_headers(loaded: &Loaded, cache: &mut TokenCache, host: &mut dyn Host) -> Flow {
    let headers = host.request_headers();
    // Envoy hands names lower-case; NGINX as the client spelled them.
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let (mut method, mut raw_path, mut request_id) = ("", "", "");
    for (name, value) in &headers {
        match name.as_str() {
            ":method" => method = value,
            ":path" => raw_path = value,
            _ if request_id.is_empty() && name.eq_ignore_ascii_case("x-request-id") => request_id = value,
            _ => {}
        }
    }
    let settings = &loaded.settings;

    // Where a removed header still reaches the upstream (ngx_wasm_module), a header the
    // filter controls can only be overwritten, and a replace overwrites just the first copy:
    // a request that repeats one is refused rather than forwarded with a copy left over.
    if !loaded.proxy.removal_reaches_upstream()
        && let Some(name) = loaded.controlled_headers.iter().find(|name| headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).nth(1).is_some())
    {
        let refusal = Refusal::Malformed { reason: format!("repeated_header {name}"), message: "the request repeats a header the policy filter controls" };
        return finish(loaded, host, request_id, method, raw_path, refusal, None);
    }

    // The query is forwarded as it came, so it must be a valid one: visible ASCII only. NGINX
    // hands the module a decoded `r->uri`, in which `%3F` became the `?` that seems to start
    // the query and `%0D%0A` a CR LF that `$uri` would copy into the upstream's request line.
    if let Some(at) = raw_path.bytes().position(|b| b == b'?')
        && raw_path.bytes().skip(at + 1).any(|b| !(0x21..=0x7e).contains(&b))
    {
        let refusal = Refusal::Malformed { reason: "query_character".into(), message: "the request's query holds a character that may not stand in it" };
        return finish(loaded, host, request_id, method, raw_path, refusal, None);
    }

    // A header spelled with underscores (`x_auth_user_id`) is one the upstream may read as the
    // identity header (CGI stacks map both to HTTP_X_AUTH_USER_ID): taken out as well.
    for (name, _) in &headers {
        if name.contains('_') && loaded.identity_headers.iter().any(|identity| same_but_underscores(name, identity)) {
            clear_header(loaded, host, name);
        }
    }

    // Whatever the client claims about its own identity never reaches the upstream. Only the
    // headers it actually sent cost a hostcall.
    let client_sent: Vec<&str> =
        loaded.identity_headers.iter().filter(|name| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))).map(String::as_str).collect();
    for name in &client_sent {
        clear_header(loaded, host, name);
    }

    // Where the proxy decoded the path already, any `%` in it was a `%25` from the client: the
    // double encoding `normalize_path` refuses in a raw path.
    let path_part = raw_path.split('?').next().unwrap_or_default();
    if loaded.proxy.path_is_decoded() && path_part.contains('%') {
        let refusal = Refusal::Malformed { reason: "encoded_percent".into(), message: "the request path is malformed" };
        return finish(loaded, host, request_id, method, raw_path, refusal, None);
    }
    let resource = match normalize_path(raw_path, settings.path_rules()) {
        Ok(resource) => resource,
        Err(e) => {
            let refusal = Refusal::Malformed { reason: e.to_string(), message: "the request path is malformed" };
            return finish(loaded, host, request_id, method, raw_path, refusal, None);
        }
    };
    if loaded.ignore.iter().any(|re| re.is_match(&resource)) || is_cors_preflight(settings.bypass_cors_preflight, method, &header) {
        host.count(metrics::BYPASSED);
        forward_path(loaded, host, raw_path, &resource, &[]);
        return Flow::Continue;
    }

    // The credentials, in the documented order (`token_sources`, the certificate last): one
    // decides, or (`chain: first_success`) the first that authenticates.
    let found: Vec<Found> = match credentials::find_for(settings.chain, &headers, raw_path, &settings.token_sources) {
        Ok(found) => found,
        Err(credentials::MultipleCredentials) => {
            let refusal = Refusal::Unauthenticated {
                error: Some("invalid_request"),
                description: "the request carries more than one credential",
                reason: "multiple_credentials",
            };
            return finish(loaded, host, request_id, method, &resource, refusal, None);
        }
    };
    let mut refused: Option<Rejection> = None;
    let mut winner: Option<(Identity, &Found)> = None;
    for credential in &found {
        match verify(loaded, cache, host, credential) {
            Checked::Caller(verified) => {
                let via = via_of(loaded, &verified);
                winner = Some((Identity { caller: verified, via }, credential));
                break;
            }
            Checked::Dispatched(callout) => return Flow::Dispatched(callout),
            Checked::Refused(rejection) => {
                // An endpoint that could not say outranks a refusal: a 503, not a 401 the
                // caller's other credential did not earn.
                if refused.is_none() || rejection == Rejection::Unavailable {
                    refused = Some(rejection);
                }
                if settings.chain == Chain::OneCredential {
                    break;
                }
            }
        }
    }
    let (identity, winning) = match winner {
        Some((identity, credential)) => (identity, Some(credential)),
        None => {
            // An invalid token never falls back to the certificate, unless the chain tries
            // each credential in turn.
            let certificate = if found.is_empty() || settings.chain == Chain::FirstSuccess { mtls_identity(loaded, host) } else { None };
            match (certificate, refused) {
                (Some(identity), _) => (identity, None),
                (None, Some(Rejection::Unavailable)) => return refuse_carrying(loaded, host, request_id, method, &resource, Refusal::Unavailable, &found, raw_path),
                (None, Some(rejection)) => {
                    if login_redirect(loaded, host, &header, method, &resource, raw_path) {
                        return Flow::Answered;
                    }
                    let refusal =
                        Refusal::Unauthenticated { error: Some("invalid_token"), description: rejection.description(), reason: rejection.reason() };
                    return refuse_carrying(loaded, host, request_id, method, &resource, refusal, &found, raw_path);
                }
                (None, None) => {
                    if login_redirect(loaded, host, &header, method, &resource, raw_path) {
                        return Flow::Answered;
                    }
                    let refusal = Refusal::Unauthenticated { error: None, description: "authentication is required", reason: "missing" };
                    return finish(loaded, host, request_id, method, &resource, refusal, None);
                }
            }
        }
    };
    let identity = match remote_tenant(loaded, cache, host, identity, winning) {
        Ok(identity) => identity,
        Err(Checked::Dispatched(callout)) => return Flow::Dispatched(callout),
        Err(_) => return refuse_carrying(loaded, host, request_id, method, &resource, Refusal::Unavailable, &found, raw_path),
    };
    // A caller without a tenant, where one is required, is authenticated but goes nowhere.
    if settings.tenants.as_ref().is_some_and(|m| m.required) && decision_table::request::tenant_of(&identity.caller.attributes).is_none() {
        let refusal = Refusal::Forbidden { policy: None, subject: identity.caller.subject.clone(), reason: "no_tenant" };
        return finish(loaded, host, request_id, method, &resource, refusal, Some((&identity, &found, raw_path, &client_sent)));
    }
    // The client address costs a hostcall: it is asked for only when a condition that reads
    // it is evaluated, and then once.
    let client_address: OnceCell<Vec<String>> = OnceCell::new();
    let proxy: &dyn Host = host;
    let ask_address = || -> &[String] {
        client_address.get_or_init(|| {
            proxy.property(&["source", "address"]).map(|a| String::from_utf8_lossy(&a).into_owned()).into_iter().collect()
        })
    };
    let decision = settings.actions.get(method).map(|action| {
        let request = AccessRequest {
            subject: &identity.caller.subject,
            action,
            resource: &resource,
            attributes: &identity.caller.attributes,
            client_address: ClientAddress::Ask(&ask_address),
        };
        let decision = loaded.evaluator.evaluate(&request);
        (decision.allowed(), decision.policy.map(str::to_string))
    });
    match decision {
        Some((true, policy)) => {
            host.count(metrics::ALLOWED);
            if loaded.sample_allowed() {
                let line = DecisionLine {
                    event: "allowed",
                    status: 200,
                    request_id,
                    method,
                    path: &resource,
                    subject: &identity.caller.subject,
                    via: Some(identity.via),
                    provider: Some(&identity.caller.provider),
                    policy: policy.as_deref(),
                    reason: "policy",
                };
                host.log(Level::Info, &serde_json::to_string(&line).unwrap_or_default());
            }
            forward_identity(loaded, host, &identity, policy.as_deref(), found.as_ref(), raw_path, &resource, &client_sent);
            if let Some(minter) = &loaded.minter {
                let now = host.now();
                let token = cache.minted(minter, &identity.caller, now);
                let value = if minter.bearer { format!("Bearer {token}") } else { token.to_string() };
                host.set_request_header(&minter.header_name, Some(&value));
            }
            Flow::Continue
        }
        Some((false, policy)) => {
            let reason = if policy.is_some() { "policy" } else { "default_deny" };
            let refusal = Refusal::Forbidden { policy, subject: identity.caller.subject.clone(), reason };
            finish(loaded, host, request_id, method, &resource, refusal, Some((&identity, &found, raw_path, &client_sent)))
        }
        None => {
            let refusal = Refusal::Forbidden { policy: None, subject: identity.caller.subject.clone(), reason: "default_deny" };
            finish(loaded, host, request_id, method, &resource, refusal, Some((&identity, &found, raw_path, &client_sent)))
        }
    }
}

/// Answers a refusal of a request that carries credentials no caller came of. Shadow mode
/// lets it through, and then the credentials still stay behind, as accepted ones would.
#[allow(clippy::too_many_arguments, reason = "finish's arguments and the credentials; a struct would only rename them")]
fn refuse_carrying(loaded: &Loaded, host: &mut dyn Host, request_id: &str, method: &str, resource: &str, refusal: Refusal, found: &[Found], raw_path: &str) -> Flow {
    let flow = finish(loaded, host, request_id, method, resource, refusal, None);
    if flow == Flow::Continue {
        take_out_credential(loaded, host, found, raw_path, resource);
    }
    flow
}

/// Sends a browser without a valid credential to the login page (`settings.login`), with the
/// URL it asked for to come back to; false (the caller answers 401) for anything that is not
/// a page navigation on a login path, or whose origin is not an allowed return origin: the
/// `:authority` is the client's to choose, and the login page would send the user there.
fn login_redirect<'a>(loaded: &Loaded, host: &mut dyn Host, header: &impl Fn(&str) -> Option<&'a str>, method: &str, resource: &str, raw_path: &str) -> bool {
    let Some(login) = loaded.settings.login.as_ref().filter(|_| loaded.settings.mode == Mode::Enforce) else { return false };
    let navigation = header("sec-fetch-mode").is_some_and(|mode| mode.eq_ignore_ascii_case("navigate"));
    let wants_html = header("accept").is_some_and(|accept| accept.split(',').any(|item| item.trim().to_ascii_lowercase().starts_with("text/html")));
    if !matches!(method, "GET" | "HEAD") || !(navigation || wants_html) || !loaded.login_paths.iter().any(|re| re.is_match(resource)) {
        return false;
    }
    let scheme = header(":scheme").unwrap_or("https").to_ascii_lowercase();
    let origin = format!("{scheme}://{}", header(":authority").unwrap_or_default().to_ascii_lowercase());
    if !login.return_origins.contains(&origin) {
        host.log(Level::Warn, &format!(r#"{{"event":"login_redirect_refused","origin":{}}}"#, serde_json::to_string(&origin).unwrap_or_default()));
        return false;
    }
    // The decided path, and the query without any token parameter (the login page's logs
    // never see a credential).
    let query: Vec<&str> = raw_path
        .split_once('?')
        .map(|(_, query)| query.split('&').filter(|pair| !pair.is_empty() && !is_token_parameter(loaded, pair)).collect())
        .unwrap_or_default();
    let back = if query.is_empty() { format!("{origin}{resource}") } else { format!("{origin}{resource}?{}", query.join("&")) };
    let separator = if login.url.contains('?') { '&' } else { '?' };
    let location = format!("{}{separator}{}={}", login.url, login.return_parameter, percent_encode(&back));
    host.count(metrics::LOGIN_REDIRECTS);
    host.send_response(302, &[("location", &location), ("cache-control", "no-store")], b"");
    true
}

fn is_token_parameter(loaded: &Loaded, pair: &str) -> bool {
    let name = pair.split_once('=').map_or(pair, |(name, _)| name);
    loaded.settings.token_sources.iter().any(|source| matches!(source, TokenSource::Query { name: query } if query == name))
}

/// Everything but RFC 3986's unreserved characters, percent-encoded (a URL as a query value,
/// a form field).
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn is_cors_preflight<'a>(enabled: bool, method: &str, header: &impl Fn(&str) -> Option<&'a str>) -> bool {
    enabled && method == "OPTIONS" && header("origin").is_some() && header("access-control-request-method").is_some()
}

/// A credential checked: a caller, a refusal, or a callout the request now waits for.
enum Checked {
    Caller(Rc<Verified>),
    Refused(Rejection),
    Dispatched(u32),
}

/// How the caller authenticated, for the log: its provider's kind.
fn via_of(loaded: &Loaded, verified: &Verified) -> &'static str {
    match loaded.providers.get(verified.provider_index) {
        Some(p) if p.introspects() => "introspection",
        Some(p) if p.basic.is_some() => "basic",
        _ => "jwt",
    }
}

/// The provider an endpoint asks about `credential`, if one does: the one with `basic` for
/// Basic credentials, else the introspecting one that takes the token.
fn checking_provider(loaded: &Loaded, credential: &Found) -> Option<usize> {
    if credential.basic {
        loaded.providers.iter().position(|p| p.basic.is_some())
    } else {
        crate::introspection::provider_for(loaded, &credential.token)
    }
}

/// Counts a credential's outcome under its provider (when one is known) and returns it.
fn counted(loaded: &Loaded, host: &mut dyn Host, provider: Option<usize>, outcome: Result<Rc<Verified>, Rejection>) -> Checked {
    let metrics = provider.and_then(|index| loaded.providers.get(index)).map(|p| &p.metrics);
    match outcome {
        Ok(verified) => {
            if let Some(metrics) = metrics {
                host.count(&metrics.authenticated);
            }
            Checked::Caller(verified)
        }
        Err(rejection) => {
            if let Some(metrics) = metrics {
                host.count(if rejection == Rejection::Unavailable { &metrics.unavailable } else { &metrics.refused });
            }
            Checked::Refused(rejection)
        }
    }
}

fn verify(loaded: &Loaded, cache: &mut TokenCache, host: &mut dyn Host, credential: &Found) -> Checked {
    let now = host.now();
    let token = &*credential.token;
    // Every Basic credential's cache key starts with a NUL, which reaches a token only
    // through a query parameter's `%00`: such a token is refused, so none can equal one.
    if !credential.basic && token.starts_with('\0') {
        return Checked::Refused(Rejection::Malformed("the credential holds a NUL"));
    }
    let key = cache::credential_key(token, credential.basic);
    if let Some(answer) = cache.take_fresh(&key) {
        // The pass after this credential's endpoint answered.
        let provider = checking_provider(loaded, credential);
        return counted(loaded, host, provider, answer.and_then(|verified| not_revoked(loaded, verified, now)));
    }
    let skew = loaded.settings.clock_skew_seconds;
    if let Some(hit) = cache.get(&key, now, skew) {
        host.count(metrics::CACHE_HITS);
        let provider = hit.provider_index;
        if let Some(p) = loaded.providers.get(provider) {
            host.count(&p.metrics.cache_hits);
        }
        return counted(loaded, host, Some(provider), not_revoked(loaded, hit, now));
    }
    host.count(metrics::CACHE_MISSES);
    if let Some(rejection) = cache.was_rejected(&key, now) {
        host.count(metrics::REJECTED_CACHE_HITS);
        return counted(loaded, host, checking_provider(loaded, credential), Err(rejection));
    }
    if token.len() > loaded.settings.max_token_bytes {
        return Checked::Refused(Rejection::TooLarge);
    }
    if credential.basic {
        let provider = checking_provider(loaded, credential);
        let (Some(index), Some(_)) = (provider, crate::basic::username(token)) else {
            return counted(loaded, host, provider, Err(Rejection::Malformed("the Basic credentials are not base64 of user:password")));
        };
        return check_remotely(loaded, cache, host, index, &key, token);
    }
    if let Some(index) = crate::introspection::provider_for(loaded, token) {
        return check_remotely(loaded, cache, host, index, &key, token);
    }
    let proxy: &dyn Host = host;
    let ask_proxy = |arguments: &[u8]| proxy.call_foreign_function(host_verify::FUNCTION, arguments);
    let trusted = loaded.host_verifies;
    let offload = trusted.any().then_some(host_verify::Offload { call: &ask_proxy, trusted });
    match jwt::verify(token, &loaded.providers, &loaded.settings, now, offload) {
        Ok(mut verified) => {
            if let Some(mapping) = &loaded.settings.tenants {
                decision_table::request::map_tenant(mapping, &verified.subject, &mut verified.attributes);
            }
            let provider = verified.provider_index;
            let verified = Rc::new(verified);
            cache.insert(&key, Rc::clone(&verified));
            counted(loaded, host, Some(provider), not_revoked(loaded, verified, now))
        }
        Err((Rejection::BadSignature, provider)) => {
            // The one refusal that cost a signature check: a replay of it costs a hash.
            cache.reject(&key, now);
            counted(loaded, host, provider, Err(Rejection::BadSignature))
        }
        Err((rejection, provider)) => counted(loaded, host, provider, Err(rejection)),
    }
}

/// Asks the provider's endpoint about the credential (introspection, or the Basic check);
/// the request waits for the answer ([`on_callout_answer`]).
fn check_remotely(loaded: &Loaded, cache: &mut TokenCache, host: &mut dyn Host, index: usize, key: &str, token: &str) -> Checked {
    let Some(provider) = loaded.providers.get(index) else { return Checked::Refused(Rejection::Unavailable) };
    let (endpoint, method, extra, body) = match (&provider.introspection, &provider.basic) {
        (Some(introspection), _) => {
            let (extra, body) = crate::introspection::request(introspection, token);
            (&introspection.endpoint, "POST", extra, body)
        }
        (None, Some(basic)) => (&basic.endpoint, "GET", crate::basic::request(token), Vec::new()),
        (None, None) => return Checked::Refused(Rejection::Unavailable),
    };
    let check = || Check::Credential { key: key.to_string(), provider_index: index };
    match call_out(cache, host, endpoint, method, &extra, &body, check) {
        Ok(callout) => {
            if provider.introspects() {
                host.count(metrics::INTROSPECTIONS);
            }
            Checked::Dispatched(callout)
        }
        Err(why) => {
            host.log(Level::Error, &format!("provider {}: {why}; answering 503", provider.name));
            host.count(&provider.metrics.unavailable);
            Checked::Refused(Rejection::Unavailable)
        }
    }
}

/// Starts a callout to `endpoint` from the request being decided, and remembers what it
/// checks ([`on_callout_answer`]); why not, when the request made its callouts, too many
/// wait, or the proxy refused it.
fn call_out(
    cache: &mut TokenCache,
    host: &mut dyn Host,
    endpoint: &Endpoint,
    method: &str,
    extra: &[(&str, String)],
    body: &[u8],
    check: impl FnOnce() -> Check,
) -> Result<u32, String> {
    let now_ms = host.now_ms();
    if !cache.may_call_out(now_ms) {
        return Err("the request made its callouts (or too many wait)".into());
    }
    let mut headers: Vec<(&str, &str)> = vec![(":method", method), (":path", &endpoint.path), (":authority", &endpoint.authority), (":scheme", &endpoint.scheme)];
    headers.extend(extra.iter().map(|(name, value)| (*name, value.as_str())));
    let callout = host
        .dispatch(&endpoint.upstream, &headers, body, endpoint.timeout_ms)
        .map_err(|why| format!("the proxy refused the callout to {} ({why})", endpoint.upstream))?;
    cache.wait_for(callout, check(), now_ms);
    Ok(callout)
}

/// Gives the caller its tenant from the tenant-mapping endpoint (`tenants.endpoint`), for an
/// authorization id no entry maps: from the cache, else the request waits for the endpoint
/// (`Err(Checked::Dispatched)`); `Err(Checked::Refused)` when it could not answer (a 503).
/// The mapped caller replaces the cached one, so the next request with the credential asks
/// nothing until the mapping's time is up.
fn remote_tenant(loaded: &Loaded, cache: &mut TokenCache, host: &mut dyn Host, identity: Identity, credential: Option<&Found>) -> Result<Identity, Checked> {
    let Some((mapping, endpoint)) = loaded.settings.tenants.as_ref().and_then(|m| Some((m, m.endpoint.as_ref()?))) else { return Ok(identity) };
    let caller = &identity.caller;
    let id = decision_table::request::authorization_id(mapping, &caller.attributes, &caller.subject);
    if caller.tenant_mapped || mapping.entries.contains_key(id) {
        return Ok(identity);
    }
    let key = cache::tenant_key(&caller.provider, id);
    let now = host.now();
    match cache.tenant(&key, now) {
        Some(Ok((entry, until))) => {
            let mut mapped = Verified::clone(caller);
            mapped.tenant_mapped = true;
            mapped.forwarded = OnceCell::new();
            if mapped.expires_at != 0 {
                mapped.expires_at = mapped.expires_at.min(until);
            }
            if let Some(entry) = entry {
                decision_table::request::apply_tenant(&entry, &mut mapped.attributes);
            }
            let mapped = Rc::new(mapped);
            if let Some(credential) = credential {
                cache.replace(&cache::credential_key(&credential.token, credential.basic), Rc::clone(&mapped));
            }
            Ok(Identity { caller: mapped, via: identity.via })
        }
        Some(Err(())) => Err(Checked::Refused(Rejection::Unavailable)),
        None => {
            // Oathkeeper's hydrator session, as Compass's tenant-mapping handler reads it. Its
            // `extra` names the caller and nothing of the token's: a handler that answers the
            // session it was sent would otherwise hand back a `tenant` or `scope` claim of the
            // caller's own choosing as its mapping.
            let extra = serde_json::json!({"provider": caller.provider, "authorization_id": id, "subject": caller.subject});
            let session = serde_json::json!({"subject": id, "extra": extra, "header": {}});
            let body = serde_json::to_vec(&session).unwrap_or_default();
            let extra = [("content-type", "application/json".to_string()), ("accept", "application/json".to_string())];
            match call_out(cache, host, endpoint, "POST", &extra, &body, || Check::Tenant { key }) {
                Ok(callout) => Err(Checked::Dispatched(callout)),
                Err(why) => {
                    host.log(Level::Error, &format!("tenant mapping: {why}; answering 503"));
                    Err(Checked::Refused(Rejection::Unavailable))
                }
            }
        }
    }
}

/// The answer of a callout a request waits for (`Flow::Dispatched`): remembered (a vouched
/// credential in the token cache, a refused one for its `negative_seconds`, a tenant in the
/// tenant cache), then the request is decided again from the start, which finds it.
pub fn on_callout_answer(loaded: &Loaded, cache: &mut TokenCache, host: &mut dyn Host, callout: u32, status: Option<u16>, body: Option<&[u8]>) -> Flow {
    let Some(pending) = cache.answered(callout) else {
        host.log(Level::Error, "a callout answered that no request waits for; answering 503");
        return answer_unavailable(host);
    };
    let now = host.now();
    let elapsed = host.now_ms().saturating_sub(pending.started_ms);
    match pending.check {
        Check::Credential { key, provider_index } => {
            let Some(provider) = loaded.providers.get(provider_index) else { return answer_unavailable(host) };
            host.record(&provider.metrics.callout_ms, elapsed);
            let headers = host.request_headers();
            let raw_path = headers.iter().find(|(k, _)| k == ":path").map_or("", |(_, v)| v.as_str());
            let found = credentials::find_all(&headers, raw_path, &loaded.settings.token_sources).unwrap_or_default();
            let credential = found.iter().find(|c| cache::credential_key(&c.token, c.basic) == key);
            let answer = match credential {
                Some(credential) if credential.basic => crate::basic::decide(loaded, provider_index, &credential.token, status, body, now),
                Some(_) => crate::introspection::decide(loaded, provider_index, status, body, now),
                None => crate::introspection::Outcome::Unavailable("the request's credential changed".into()),
            };
            let negative_seconds = provider.introspection.as_ref().map(|i| i.negative_seconds).or(provider.basic.as_ref().map(|b| b.negative_seconds)).unwrap_or(0);
            match answer {
                crate::introspection::Outcome::Active(verified) => {
                    if provider.introspects() {
                        host.count(metrics::INTROSPECTED_ACTIVE);
                    }
                    let verified: Rc<Verified> = Rc::from(verified);
                    cache.insert(&key, Rc::clone(&verified));
                    cache.set_fresh(&key, Ok(verified));
                }
                crate::introspection::Outcome::Refused(rejection) => {
                    if provider.introspects() {
                        host.count(metrics::INTROSPECTED_INACTIVE);
                    }
                    // Another request's callout may have cached an acceptance meanwhile.
                    cache.remove(&key);
                    cache.reject_until(&key, now, now.saturating_add(negative_seconds), rejection.clone());
                    cache.set_fresh(&key, Err(rejection));
                }
                crate::introspection::Outcome::Unavailable(why) => {
                    host.log(Level::Error, &format!("provider {}: {why}; answering 503", provider.name));
                    cache.set_fresh(&key, Err(Rejection::Unavailable));
                }
            }
        }
        Check::Tenant { key } => {
            host.record(metrics::TENANT_MAPPING_MS, elapsed);
            let Some(mapping) = &loaded.settings.tenants else { return answer_unavailable(host) };
            match crate::tenants::decide(status, body, mapping) {
                Ok(Some(entry)) => cache.set_tenant(&key, Ok(Some(entry)), now, now.saturating_add(mapping.cache_seconds)),
                Ok(None) => cache.set_tenant(&key, Ok(None), now, now.saturating_add(mapping.negative_seconds)),
                Err(why) => {
                    host.log(Level::Error, &format!("tenant mapping: {why}; answering 503"));
                    host.count(metrics::TENANT_MAPPING_UNAVAILABLE);
                    cache.set_tenant(&key, Err(()), now, now);
                }
            }
        }
    }
    // Decided again with the answer; what was left for this pass goes with it.
    cache.round = pending.round.saturating_add(1);
    let flow = on_request_headers(loaded, cache, host);
    cache.round = 0;
    cache.clear_fresh();
    flow
}

/// A 503 sent at once, where the request cannot be decided at all.
fn answer_unavailable(host: &mut dyn Host) -> Flow {
    host.send_response(503, &[("content-type", "application/json"), ("retry-after", "1")], UNAVAILABLE_BODY);
    Flow::Answered
}

const UNAVAILABLE_BODY: &[u8] = br#"{"error":"temporarily_unavailable","message":"the credential could not be checked; try again"}"#;

/// A verified token, unless its provider's revocation list (the bundle's or the one last
/// fetched) names it: checked on every request, cached or not, so a revocation takes effect
/// on the next request.
fn not_revoked(loaded: &Loaded, verified: Rc<Verified>, now: u64) -> Result<Rc<Verified>, Rejection> {
    let Some(provider) = loaded.providers.get(verified.provider_index) else { return Ok(verified) };
    if let Some(max_age) = provider.max_list_age_ms {
        let fetched_at = provider.revocations_fetched_at.get();
        if fetched_at == 0 || now.saturating_mul(1000).saturating_sub(fetched_at) > max_age {
            return Err(Rejection::RevocationsStale);
        }
    }
    let fetched_revokes = || provider.revoked_fetched.try_borrow().map_or(true, |list| list.revokes(&verified));
    if provider.revoked.revokes(&verified) || fetched_revokes() { Err(Rejection::Revoked) } else { Ok(verified) }
}

/// The client certificate the proxy verified, when mTLS is configured.
fn mtls_identity(loaded: &Loaded, host: &mut dyn Host) -> Option<Identity> {
    let mtls = loaded.settings.mtls.as_ref()?;
    if host.property(&["connection", "mtls"]).as_deref() != Some(&[1]) {
        return None;
    }
    let subject = match mtls.identity {
        MtlsIdentity::UriSan => host.property(&["connection", "uri_san_peer_certificate"]).map(|v| String::from_utf8_lossy(&v).into_owned()),
        MtlsIdentity::SubjectCn => host
            .property(&["connection", "subject_peer_certificate"])
            .and_then(|v| crate::subject::common_name(&String::from_utf8_lossy(&v))),
        MtlsIdentity::DnsSan => host.property(&["connection", "dns_san_peer_certificate"]).map(|v| String::from_utf8_lossy(&v).into_owned()),
    }
    .filter(|s| !s.is_empty())?;
    let mut attributes = decision_table::request::certificate_attributes(&subject, mtls);
    if let Some(mapping) = &loaded.settings.tenants {
        decision_table::request::map_tenant(mapping, &subject, &mut attributes);
    }
    let caller = Verified { claims: serde_json::Map::new(), expires_at: 0, provider: MTLS_PROVIDER.into(), provider_index: usize::MAX, key_fingerprint: [0; 32], subject, attributes, forwarded: OnceCell::new(), tenant_mapped: false };
    host.count(&loaded.mtls_metrics.authenticated);
    Some(Identity { caller: Rc::new(caller), via: "mtls" })
}

/// Identity headers for the upstream, and the credential removed when configured.
#[allow(clippy::too_many_arguments, reason = "one call site per outcome; a struct would only rename the arguments")]
fn forward_identity(
    loaded: &Loaded,
    host: &mut dyn Host,
    identity: &Identity,
    policy: Option<&str>,
    found: &[Found],
    raw_path: &str,
    resource: &str,
    client_sent: &[&str],
) {
    let forward = &loaded.settings.forward;
    let caller = &identity.caller;
    let [user_id, username, roles, organizations, namespaces, provider, tenant] = caller.forwarded.get_or_init(|| {
        let joined = |key: &str| caller.attributes.get(key).iter().map(|item| header_value(item, true)).collect::<Vec<_>>().join(",");
        let user_id = caller.attributes.get("userId").first().map(|id| header_value(id, false)).unwrap_or_default();
        let subject = header_value(&caller.subject, false);
        let tenant = decision_table::request::tenant_of(&caller.attributes).map(|t| header_value(t, false)).unwrap_or_default();
        [user_id, subject, joined("roles"), joined("organizations"), joined("namespaces"), header_value(&caller.provider, false), tenant]
    });
    let values = [
        (&forward.user_id, user_id.as_str()),
        (&forward.username, username.as_str()),
        (&forward.roles, roles.as_str()),
        (&forward.organizations, organizations.as_str()),
        (&forward.namespaces, namespaces.as_str()),
        (&forward.policy, policy.unwrap_or_default()),
        (&forward.provider, provider.as_str()),
        (&forward.tenant, tenant.as_str()),
    ];
    for (name, value) in values {
        if let Some(name) = name
            && !value.is_empty()
        {
            // A header the client did not send is appended (NGINX then skips its search of
            // the header list); one it sent was removed or blanked, and is overwritten.
            if client_sent.iter().any(|sent| sent.eq_ignore_ascii_case(name)) {
                host.set_request_header(name, Some(value));
            } else {
                host.add_request_header(name, value);
            }
        }
    }
    take_out_credential(loaded, host, found, raw_path, resource);
}

/// Forwards the decided path, and takes the credentials out of the request first when the
/// bundle says so (`forward.strip_token`): every one it carries, used or not.
fn take_out_credential(loaded: &Loaded, host: &mut dyn Host, found: &[Found], raw_path: &str, resource: &str) {
    let mut strip_parameters = Vec::new();
    if loaded.settings.forward.strip_token {
        for credential in found {
            match &credential.origin {
                Origin::Header(name) => clear_header(loaded, host, name),
                Origin::Query(name) => strip_parameters.push(*name),
                Origin::Cookie(name) => match credentials::cookies_without(&host.request_headers(), name) {
                    Some(remaining) => host.set_request_header("cookie", Some(&remaining)),
                    None => clear_header(loaded, host, "cookie"),
                },
            }
        }
    }
    forward_path(loaded, host, raw_path, resource, &strip_parameters);
}

/// Whether `name` is `identity` with some `-` written `_` (case aside).
fn same_but_underscores(name: &str, identity: &str) -> bool {
    name.len() == identity.len() && name.bytes().zip(identity.bytes()).all(|(a, b)| a.eq_ignore_ascii_case(&b) || (a == b'_' && b == b'-'))
}

/// A claim value as it may stand in a header: control characters (a CR LF would start a
/// header of the client's choosing) and `%` percent-encoded, and in a list item the `,` that
/// separates items too, so `["x,admin"]` cannot read as two roles upstream.
fn header_value(value: &str, list_item: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        let escape = ch.is_ascii_control() || ch == '%' || (list_item && ch == ',');
        if escape {
            out.push_str(&format!("%{:02X}", u32::from(ch)));
        } else {
            out.push(ch);
        }
    }
    out
}

/// The names the filter emits by default. A client's copy of each is taken out even when the
/// bundle renames or drops that header, so an upstream that reads the usual names is never
/// handed a client's claim (`x-auth-policy: forged` with `forward.policy` unset).
const DEFAULT_IDENTITY_HEADERS: [&str; 8] =
    ["x-auth-user-id", "x-auth-username", "x-auth-roles", "x-auth-organizations", "x-auth-namespaces", "x-auth-policy", "x-auth-provider", "x-auth-tenant"];

/// Every identity header a client's copy of is taken out: the configured names and the
/// defaults, lower-case, once each (worked out at load, not per request).
pub fn identity_headers(settings: &Settings) -> Vec<String> {
    let forward = &settings.forward;
    let configured =
        [&forward.user_id, &forward.username, &forward.roles, &forward.organizations, &forward.namespaces, &forward.policy, &forward.provider, &forward.tenant];
    let mut names: Vec<String> = Vec::new();
    // The minted token's header is the filter's to fill, unless it is where the caller's own
    // token comes from (that one is controlled by `strip_token`).
    let token_header = |name: &str| settings.token_sources.iter().any(|s| matches!(s, TokenSource::Header { name: h, .. } if h.eq_ignore_ascii_case(name)));
    let minted = settings.mint.as_ref().map(|m| m.header.as_str()).filter(|name| !token_header(name));
    for name in configured.into_iter().flatten().map(String::as_str).chain(minted).chain(DEFAULT_IDENTITY_HEADERS) {
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Every header whose upstream value the filter decides: the identity headers, and the token's
/// header (or `cookie`) when the token is stripped.
pub fn controlled_headers(settings: &Settings) -> Vec<String> {
    let mut names = identity_headers(settings);
    if settings.forward.strip_token {
        for source in &settings.token_sources {
            let name = match source {
                TokenSource::Header { name, .. } => name.to_ascii_lowercase(),
                TokenSource::Cookie { .. } => "cookie".to_string(),
                TokenSource::Query { .. } => continue,
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Takes a header out of what the upstream receives: removes it where removal reaches the
/// upstream (Envoy), else overwrites it with an empty value. ngx_wasm_module's removal only
/// zeroes the entry's hash, which NGINX's proxy module forwards all the same
/// (`ngx_http_wasm_set_header_helper`, `ngx_http_proxy_create_request`); a replace updates
/// the entry in place, and an empty value carries nothing.
fn clear_header(loaded: &Loaded, host: &mut dyn Host, name: &str) {
    let value = if loaded.proxy.removal_reaches_upstream() { None } else { Some("") };
    host.set_request_header(name, value);
}

/// Forwards the path that was decided on: `resource` (normalised, and valid to forward as it
/// is) with the request's query, less the stripped token parameter. Costs a hostcall only
/// when that differs from what the request carries. Under NGINX this reaches the upstream
/// when `proxy_pass` forwards `$uri$is_args$args` (as `policy-compiler render` writes it); a
/// plain `proxy_pass` sends the client's raw request line.
fn forward_path(loaded: &Loaded, host: &mut dyn Host, raw_path: &str, resource: &str, strip_parameters: &[&str]) {
    // `?` and the query, as forwarded (`normalize_path` refused a fragment).
    let query = match raw_path.bytes().position(|b| b == b'?') {
        Some(at) if !strip_parameters.is_empty() => {
            let mut query = raw_path.get(at..).unwrap_or_default().to_string();
            for name in strip_parameters {
                query = credentials::query_without_parameter(query.get(1..).unwrap_or_default(), name);
            }
            Cow::Owned(query)
        }
        Some(at) => Cow::Borrowed(raw_path.get(at..).unwrap_or_default()),
        None => Cow::Borrowed(""),
    };
    // Most requests are already in normal form: compare before building anything.
    if raw_path.len() == resource.len() + query.len() && raw_path.starts_with(resource) && raw_path.ends_with(&*query) {
        return;
    }
    // ngx_wasm_module sets `r->args` only from a value that has a `?`
    // (ngx_proxy_wasm_maps_set_path): a path without one would keep the old query, the
    // stripped token with it. An empty `?` clears it (`$is_args` is then empty).
    let clear_query = query.is_empty() && raw_path.contains('?') && !loaded.proxy.removal_reaches_upstream();
    let clear = if clear_query { "?" } else { "" };
    host.set_request_header(":path", Some(&format!("{resource}{query}{clear}")));
}

/// The log line of a decision: every refusal, and the sampled allows (serialised directly: a
/// `serde_json::Value` would bring in the float printer for numbers this line never has).
#[derive(Serialize)]
struct DecisionLine<'a> {
    event: &'static str,
    status: u32,
    request_id: &'a str,
    method: &'a str,
    path: &'a str,
    subject: &'a str,
    via: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    policy: Option<&'a str>,
    /// `policy` (a policy decided), `default_deny` (none allowed), or why the credential or
    /// the request was refused.
    reason: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: &'a str,
}

/// Answers a refusal (or, in shadow mode, records it and lets the request through).
fn finish(
    loaded: &Loaded,
    host: &mut dyn Host,
    request_id: &str,
    method: &str,
    path: &str,
    refusal: Refusal,
    authenticated: Option<(&Identity, &[Found], &str, &[&str])>,
) -> Flow {
    let (status, counter, policy, subject, reason) = match &refusal {
        Refusal::Malformed { reason, .. } => (400, metrics::MALFORMED, None, String::new(), reason.clone()),
        Refusal::Unauthenticated { reason, .. } => (401, metrics::UNAUTHENTICATED, None, String::new(), (*reason).to_string()),
        Refusal::Unavailable => (503, metrics::UNAVAILABLE, None, String::new(), "unavailable".to_string()),
        Refusal::Forbidden { policy, subject, reason } => {
            (403, metrics::DENIED, policy.clone(), subject.clone(), (*reason).to_string())
        }
    };
    host.count(counter);
    if let Refusal::Unauthenticated { reason, .. } = &refusal {
        host.count(&format!("{}_{reason}", metrics::UNAUTHENTICATED));
    }
    // A request the filter cannot decide on is refused in shadow mode too: it cannot be
    // forwarded safely (a path that does not normalise, a header it cannot take out).
    let shadow = loaded.settings.mode == Mode::Shadow && !matches!(refusal, Refusal::Malformed { .. });
    let line = DecisionLine {
        event: if shadow { "shadow_denied" } else { "denied" },
        status,
        request_id,
        method,
        path,
        subject: &subject,
        via: authenticated.map(|(identity, ..)| identity.via),
        provider: authenticated.map(|(identity, ..)| identity.caller.provider.as_str()),
        policy: policy.as_deref(),
        reason: &reason,
    };
    // Warn, not info: NGINX's default error_log level hides info (and Kong's shows notice up).
    host.log(Level::Warn, &serde_json::to_string(&line).unwrap_or_default());
    if shadow {
        host.count(metrics::SHADOW_DENIED);
        if let Some((identity, found, raw_path, client_sent)) = authenticated {
            forward_identity(loaded, host, identity, None, found, raw_path, path, client_sent);
        }
        return Flow::Continue;
    }
    let json = [("content-type", "application/json")];
    match refusal {
        Refusal::Malformed { message, .. } => {
            let body = serde_json::to_string(&ErrorBody { error: "bad_request", message }).unwrap_or_default();
            host.send_response(400, &json, body.as_bytes());
        }
        Refusal::Unauthenticated { error, description, .. } => {
            let realm = loaded.settings.realm.replace(['"', '\\'], "");
            let challenge = match error {
                Some(error) => format!(r#"Bearer realm="{realm}", error="{error}", error_description="{description}""#),
                None => format!(r#"Bearer realm="{realm}""#),
            };
            let body = serde_json::to_string(&ErrorBody { error: "unauthorized", message: description }).unwrap_or_default();
            // Where Basic credentials are accepted, the client is told so too (RFC 7617 §2),
            // in a challenge of its own.
            let basic = format!(r#"Basic realm="{realm}", charset="UTF-8""#);
            let mut headers = vec![("content-type", "application/json"), ("www-authenticate", challenge.as_str())];
            if loaded.providers.iter().any(|p| p.basic.is_some()) {
                headers.push(("www-authenticate", basic.as_str()));
            }
            host.send_response(401, &headers, body.as_bytes());
        }
        Refusal::Forbidden { .. } => {
            host.send_response(403, &json, br#"{"error":"forbidden","message":"access denied by policy"}"#);
        }
        Refusal::Unavailable => {
            host.send_response(503, &[("content-type", "application/json"), ("retry-after", "1")], UNAVAILABLE_BODY);
        }
    }
    Flow::Answered
}
