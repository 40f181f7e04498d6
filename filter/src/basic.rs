//! Basic credentials checked by an endpoint (CADI's Basic protocol, Compass's Basic flow):
//! the client's `Authorization: Basic` is passed to the provider's endpoint while the request
//! waits (`Flow::Dispatched`). A 200 vouches for the user, and a JSON object in its body adds
//! claims (`roles`, `scope`, a canonical `sub`...); a 401 or 403 refuses the credentials (a
//! 401, remembered `negative_seconds`); anything else is a 503. The credentials are cached
//! by their SHA-256 ([`crate::cache::credential_key`]) and never logged.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::config::Loaded;
use crate::introspection::Outcome;
use crate::jwt::Rejection;

/// The user name in Basic credentials (`base64(user:password)`, RFC 7617); `None` when they
/// are not that (refused without asking the endpoint).
pub fn username(credentials: &str) -> Option<String> {
    let decoded = STANDARD.decode(credentials.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, _password) = text.split_once(':')?;
    (!user.is_empty() && !user.chars().any(char::is_control)).then(|| user.to_string())
}

/// The check's extra headers (beside the pseudo-headers): the client's credentials as it
/// sent them.
pub fn request(credentials: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Basic {credentials}")), ("accept", "application/json".to_string())]
}

/// Reads the endpoint's answer about `credentials` for `provider_index` at host time `now`.
pub fn decide(loaded: &Loaded, provider_index: usize, credentials: &str, status: Option<u16>, body: Option<&[u8]>, now: u64) -> Outcome {
    let Some(basic) = loaded.providers.get(provider_index).and_then(|p| p.basic.as_ref()) else {
        return Outcome::Unavailable("no such provider".into());
    };
    let Some(user) = username(credentials) else { return Outcome::Refused(Rejection::Malformed("the Basic credentials are not base64 of user:password")) };
    let body = match (status, body) {
        (None, _) => return Outcome::Unavailable("the callout failed (timeout or connection error)".into()),
        (Some(401 | 403), _) => return Outcome::Refused(Rejection::BadCredentials),
        (Some(200), Some(body)) if body.len() <= basic.endpoint.max_bytes => body,
        (Some(200), _) => return Outcome::Unavailable(format!("the answer is over max_bytes ({})", basic.endpoint.max_bytes)),
        (Some(status), _) => return Outcome::Unavailable(format!("the endpoint answered {status}")),
    };
    let mut claims = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match decision_table::strict_json::object(body) {
            Ok(claims) => claims,
            Err(_) => return Outcome::Unavailable("the answer is neither empty nor a JSON object".into()),
        }
    };
    // The user the endpoint vouched for, unless it names the caller itself.
    let subject_claim = loaded.settings.claims.subject.clone();
    if !claims.contains_key("sub") && !claims.contains_key(&subject_claim) {
        claims.insert(subject_claim, Value::String(user.clone()));
    }
    claims.entry("username").or_insert(Value::String(user));
    let skew = loaded.settings.clock_skew_seconds;
    crate::introspection::vouched(loaded, provider_index, claims, now.saturating_add(basic.cache_seconds).saturating_sub(skew))
}
