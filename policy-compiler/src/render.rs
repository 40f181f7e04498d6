//! Filling proxy configuration templates with a bundle, quoted the way each format needs:
//!
//! - `{{bundle:json-string}}`: a JSON string literal, quotes included (also a valid YAML
//!   double-quoted scalar): Envoy's `StringValue`, Kong's `config`.
//! - `{{bundle:json}}`: the bundle as compact JSON (a YAML flow mapping): Istio's
//!   `pluginConfig`, a ConfigMap value.
//! - `{{bundle:nginx}}`: an NGINX single-quoted string, quotes included (`\` and `'` escaped).

use decision_table::Bundle;

pub fn render(template: &str, bundle: &Bundle) -> Result<String, String> {
    let compact = serde_json::to_string(bundle).map_err(|e| e.to_string())?;
    let json_string = serde_json::to_string(&compact).map_err(|e| e.to_string())?;
    let nginx = format!("'{}'", compact.replace('\\', "\\\\").replace('\'', "\\'"));
    let rendered = template
        .replace("{{bundle:json-string}}", &json_string)
        .replace("{{bundle:json}}", &compact)
        .replace("{{bundle:nginx}}", &nginx);
    if let Some(at) = rendered.find("{{bundle:") {
        let rest = rendered.get(at..).unwrap_or_default();
        let end = rest.find("}}").map_or(rest.len(), |e| e + 2);
        return Err(format!("unknown placeholder {}", rest.get(..end).unwrap_or(rest)));
    }
    Ok(rendered)
}

/// Reads an NGINX single-quoted string back (the inverse of `{{bundle:nginx}}`).
pub fn nginx_unquote(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(ch);
        }
    }
    Some(out)
}
