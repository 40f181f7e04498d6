//! OAuth2 token introspection (RFC 7662): a token no signature can vouch for (an opaque
//! token, or any token for a provider so configured) is POSTed to the provider's
//! authorization server with the gateway's client credentials while the request waits
//! (`Flow::Dispatched`), and the answer decides: `active: true` with matching `exp`, `nbf`,
//! `iss` and `aud` is a caller (cached by the token until `min(exp, cache_seconds)`),
//! `active: false` a 401 (remembered `negative_seconds`), and anything else (a timeout, a
//! reset, another status, a malformed or oversized answer) a 503: the server could not say,
//! so nobody is let through and the caller is not told its token is bad.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use decision_table::bundle::{ClientAuth, Introspection};
use serde_json::{Map, Value};

use crate::config::Loaded;
// `application/x-www-form-urlencoded` (RFC 6749 Appendix B): all but unreserved characters
// escaped, as for a URL in a query value.
use crate::engine::percent_encode as form;
use crate::jwt::{Rejection, Verified};

/// The introspecting provider that takes `token` (not Basic credentials), if any: the one
/// with `all_tokens`, or the one for tokens that are not a JWS.
pub fn provider_for(loaded: &Loaded, token: &str) -> Option<usize> {
    let jws_shaped = token.split('.').count() == 3;
    loaded.providers.iter().position(|p| p.introspection.as_ref().is_some_and(|i| i.all_tokens || !jws_shaped))
}

/// The introspection request: extra headers (beside the pseudo-headers) and the body.
pub fn request(introspection: &Introspection, token: &str) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let mut body = format!("token={}&token_type_hint=access_token", form(token));
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded".to_string()), ("accept", "application/json".to_string())];
    match introspection.client_auth {
        // RFC 6749 §2.3.1: the id and secret are form-encoded, then joined and base64'd.
        ClientAuth::Basic => {
            let credentials = STANDARD.encode(format!("{}:{}", form(&introspection.client_id), form(&introspection.client_secret)));
            headers.push(("authorization", format!("Basic {credentials}")));
        }
        ClientAuth::Post => body.push_str(&format!("&client_id={}&client_secret={}", form(&introspection.client_id), form(&introspection.client_secret))),
    }
    (headers, body.into_bytes())
}

/// What an endpoint's answer about a credential decides (introspection, Basic).
pub enum Outcome {
    Active(Box<Verified>),
    /// A 401: not active, expired, not yet valid, another issuer or audience.
    Refused(Rejection),
    /// A 503: the server gave no usable answer (why, for the log).
    Unavailable(String),
}

/// Reads an answer for `provider_index` at host time `now`.
pub fn decide(loaded: &Loaded, provider_index: usize, status: Option<u16>, body: Option<&[u8]>, now: u64) -> Outcome {
    let Some((provider, introspection)) = loaded.providers.get(provider_index).and_then(|p| Some((p, p.introspection.as_ref()?))) else {
        return Outcome::Unavailable("no such provider".into());
    };
    let body = match (status, body) {
        (None, _) => return Outcome::Unavailable("the callout failed (timeout or connection error)".into()),
        (Some(200), Some(body)) if body.len() <= introspection.endpoint.max_bytes => body,
        (Some(200), _) => return Outcome::Unavailable(format!("the answer is over max_bytes ({})", introspection.endpoint.max_bytes)),
        (Some(status), _) => return Outcome::Unavailable(format!("the endpoint answered {status}")),
    };
    let Ok(mut claims) = decision_table::strict_json::object(body) else {
        return Outcome::Unavailable("the answer is not a JSON object".into());
    };
    match claims.remove("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Outcome::Refused(Rejection::Inactive),
        _ => return Outcome::Unavailable("the answer has no boolean `active`".into()),
    }
    let skew = loaded.settings.clock_skew_seconds;
    let number = |claims: &Map<String, Value>, name: &str| claims.get(name).and_then(Value::as_u64);
    if claims.get("exp").is_some_and(|v| !v.is_u64()) || claims.get("nbf").is_some_and(|v| !v.is_u64()) {
        return Outcome::Unavailable("`exp` or `nbf` is not a whole number".into());
    }
    let exp = number(&claims, "exp");
    if exp.is_some_and(|exp| now > exp.saturating_add(skew)) {
        return Outcome::Refused(Rejection::Expired);
    }
    if number(&claims, "nbf").is_some_and(|nbf| now.saturating_add(skew) < nbf) {
        return Outcome::Refused(Rejection::NotYetValid);
    }
    // `iss` and `aud` are optional in an answer (RFC 7662 §2.2); where the provider names
    // them, an answer that names others is refused, and audiences are required.
    if let (Some(expected), Some(iss)) = (&provider.issuer, claims.get("iss").and_then(Value::as_str))
        && iss != expected
    {
        return Outcome::Refused(Rejection::UnknownIssuer);
    }
    if !provider.audiences.is_empty() {
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.iter().any(|a| provider.audiences.iter().any(|wanted| wanted == a)) {
            return Outcome::Refused(Rejection::WrongAudience);
        }
    }
    // A client-credentials token names a client, not a user: the client is the subject.
    if !claims.contains_key("sub")
        && !claims.contains_key(&loaded.settings.claims.subject)
        && let Some(client) = claims.get("client_id").cloned()
    {
        claims.insert("sub".into(), client);
    }
    // The token cache keeps an entry until `expires_at` plus the clock skew: for the answer
    // to last exactly `cache_seconds`, the skew comes off that bound (not off the `exp`).
    let until = now.saturating_add(introspection.cache_seconds).saturating_sub(skew);
    vouched(loaded, provider_index, claims, exp.map_or(until, |exp| exp.min(until)))
}

/// A caller an endpoint vouched for (introspection, Basic): its claims as far as the
/// provider may assert them, its static tenant, cached until `expires_at`.
pub fn vouched(loaded: &Loaded, provider_index: usize, claims: Map<String, Value>, expires_at: u64) -> Outcome {
    let Some(provider) = loaded.providers.get(provider_index) else { return Outcome::Unavailable("no such provider".into()) };
    let Ok((subject, mut attributes)) = decision_table::request::attributes_from_claims(&claims, &loaded.settings.claims, &provider.name, &provider.trust) else {
        return Outcome::Refused(Rejection::UntrustedSubject);
    };
    if let Some(mapping) = &loaded.settings.tenants {
        decision_table::request::map_tenant(mapping, &subject, &mut attributes);
    }
    Outcome::Active(Box::new(Verified {
        claims,
        expires_at,
        provider: provider.name.clone(),
        provider_index,
        key_fingerprint: [0; 32],
        subject,
        attributes,
        forwarded: Default::default(),
        tenant_mapped: false,
    }))
}
