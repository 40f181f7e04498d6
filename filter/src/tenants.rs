//! The tenant-mapping endpoint's answer (Compass's tenant-mapping handler, behind
//! Oathkeeper's hydrator): the module POSTs the hydrator's session for an authorization id no
//! static entry maps, and reads the tenant and scopes it sends back.

use decision_table::bundle::{TenantEntry, TenantMapping};
use serde_json::Value;

/// What the answer says: `Ok(Some)` a tenant, `Ok(None)` nobody (a 404, or a 200 naming no
/// tenant), `Err(why)` no usable answer (a 503 for the request).
pub fn decide(status: Option<u16>, body: Option<&[u8]>, mapping: &TenantMapping) -> Result<Option<TenantEntry>, String> {
    let max_bytes = mapping.endpoint.as_ref().map_or(0, |e| e.max_bytes);
    let body = match (status, body) {
        (None, _) => return Err("the callout failed (timeout or connection error)".into()),
        (Some(404), _) => return Ok(None),
        (Some(200), Some(body)) if body.len() <= max_bytes => body,
        (Some(200), _) => return Err(format!("the answer is over max_bytes ({max_bytes})")),
        (Some(status), _) => return Err(format!("the endpoint answered {status}")),
    };
    let answer = decision_table::strict_json::object(body).map_err(|_| "the answer is not a JSON object".to_string())?;
    // The hydrator form (`extra.tenant`, `extra.scope`) or a plain one (`tenant`, `scopes`).
    let extra = answer.get("extra").and_then(Value::as_object);
    let member = |name: &str| extra.and_then(|e| e.get(name)).or_else(|| answer.get(name));
    let tenant = match member("tenant") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(tenant)) if tenant.is_empty() => return Ok(None),
        Some(Value::String(tenant)) => tenant.clone(),
        Some(_) => return Err("`tenant` is not a string".into()),
    };
    let scopes = scopes(member("scope").or_else(|| member("scopes")))?;
    Ok(Some(TenantEntry { tenant, scopes }))
}

/// Scopes as a space-separated string (OAuth2's `scope`) or a list of strings.
fn scopes(value: Option<&Value>) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(text.split_whitespace().map(str::to_string).collect()),
        Some(Value::Array(items)) => items.iter().map(|item| item.as_str().map(str::to_string).ok_or_else(|| "a scope is not a string".to_string())).collect(),
        Some(_) => Err("`scope` is neither a string nor a list of strings".into()),
    }
}
