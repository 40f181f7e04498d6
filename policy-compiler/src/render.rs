//! Filling proxy configuration templates with a bundle, quoted the way each format needs:
//!
//! - `{{bundle:json-string}}`: a JSON string literal, quotes included (also a valid YAML
//!   double-quoted scalar): Envoy's `StringValue`, Kong's `config`.
//! - `{{bundle:json}}`: the bundle as compact JSON (a YAML flow mapping): Istio's
//!   `pluginConfig`, a ConfigMap value.
//! - `{{bundle:nginx}}`: an NGINX single-quoted string, quotes included (`\` and `'` escaped),
//!   for ngx_wasm_module.
//!
//! A placeholder may name the proxy the bundle is for, `{{bundle:json-string:envoy}}` or
//! `{{bundle:json-string:ngx_wasm_module}}` (`{{bundle:nginx}}` always means ngx_wasm_module):
//! the bundle's `host` setting is then set to it, so the module knows its host without asking
//! (what it may call, how it removes a header). A bundle compiled for another host is an error.

use decision_table::Bundle;
use decision_table::bundle::ProxyHost;

const FORMATS: [&str; 3] = ["json-string", "json", "nginx"];

pub fn render(template: &str, bundle: &Bundle) -> Result<String, String> {
    let mut rendered = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find("{{bundle:") {
        rendered.push_str(rest.get(..at).unwrap_or_default());
        let tail = rest.get(at..).unwrap_or_default();
        let end = tail.find("}}").map_or(tail.len(), |e| e + 2);
        let placeholder = tail.get(..end).unwrap_or(tail);
        let inner = placeholder.trim_start_matches("{{bundle:").trim_end_matches("}}");
        let (format, named) = inner.split_once(':').map_or((inner, None), |(f, h)| (f, Some(h)));
        let host = match (format, named) {
            ("nginx", None | Some("ngx_wasm_module")) => Some(ProxyHost::NgxWasmModule),
            (_, None) => None,
            (_, Some("envoy")) => Some(ProxyHost::Envoy),
            (_, Some("ngx_wasm_module")) => Some(ProxyHost::NgxWasmModule),
            (_, Some(_)) => return Err(format!("unknown placeholder {placeholder} (hosts: envoy, ngx_wasm_module)")),
        };
        if !FORMATS.contains(&format) {
            return Err(format!("unknown placeholder {placeholder}"));
        }
        rendered.push_str(&quoted(format, &for_host(bundle, host)?)?);
        rest = tail.get(end..).unwrap_or_default();
    }
    rendered.push_str(rest);
    Ok(rendered)
}

/// The bundle with its `host` set to the template's proxy.
fn for_host(bundle: &Bundle, host: Option<ProxyHost>) -> Result<Bundle, String> {
    let mut bundle = bundle.clone();
    if let Some(host) = host {
        if bundle.settings.host != ProxyHost::Auto && bundle.settings.host != host {
            return Err(format!("the bundle is for {:?} (filter.host) but the template renders it for {host:?}", bundle.settings.host));
        }
        bundle.settings.host = host;
    }
    Ok(bundle)
}

/// The longest configuration parameter NGINX reads: a longer one is refused ("too long
/// parameter", `NGX_CONF_BUFFER` in src/core/ngx_conf_file.c).
pub const NGINX_MAX_PARAMETER: usize = 4095;

fn quoted(format: &str, bundle: &Bundle) -> Result<String, String> {
    // Members at their defaults left out: the same bundle to the filter, in fewer bytes.
    let compact = bundle.to_compact_json().to_string();
    Ok(match format {
        "json-string" => serde_json::to_string(&compact).map_err(|e| e.to_string())?,
        "nginx" => {
            let quoted = format!("'{}'", compact.replace('\\', "\\\\").replace('\'', "\\'"));
            if quoted.len() > NGINX_MAX_PARAMETER {
                return Err(format!(
                    "the bundle is {} bytes as an NGINX string, and NGINX refuses a parameter over {NGINX_MAX_PARAMETER} bytes; build the module with the bundle in it (POLICY_FILTER_BUNDLE=bundle.json, README, tutorial step 6) and write `proxy_wasm policy_filter;` without a configuration, or use Kong, which stores the configuration itself",
                    quoted.len()
                ));
            }
            quoted
        }
        _ => compact,
    })
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
