//! Turning what a proxy sees into an [`AccessRequest`](crate::AccessRequest): the normalised
//! path, the caller's attributes from token claims, and the method's action. The filter and
//! the compiler's `explain` and `test` share this code, so they cannot disagree.

use serde_json::{Map, Value};

use crate::bundle::ClaimNames;
use crate::eval::Attributes;

/// Why a path was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with /")]
    NotAbsolute,
    #[error("the path holds an encoded {0}")]
    ForbiddenEncoding(&'static str),
    #[error("the path holds a control character or a backslash")]
    ForbiddenCharacter,
    #[error("the path holds a broken percent-encoding")]
    BrokenEncoding,
}

/// Normalises a request path before any matching, so that no spelling of a path reaches a
/// resource a policy protects under another spelling:
/// drop the query and fragment; decode percent-encoded unreserved characters once (and write
/// other escapes in upper case); encode every other byte that may not stand raw in a path
/// (RFC 3986 `pchar`: a space, `"`, `<`, non-ASCII, ... become `%XX`); refuse encoded `/`,
/// `\`, NUL and control characters, raw control characters and backslashes, and broken
/// escapes; merge repeated slashes; resolve `.` and `..` segments (never above the root).
///
/// The result is a valid path to forward as it is: the filter rewrites `:path` to it, so the
/// upstream resolves exactly what was decided on (NGINX hands the module an already decoded
/// `r->uri`, in which a space or a non-ASCII byte stands raw).
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    let end = raw.bytes().position(|b| b == b'?' || b == b'#').unwrap_or(raw.len());
    let path = raw.get(..end).unwrap_or_default();
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if already_normal(path) {
        return Ok(path.to_string());
    }
    normalise_slowly(path)
}

/// Decodes, checks and resolves an absolute path without query, character by character.
fn normalise_slowly(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'%' {
            let hex = bytes.get(at + 1..at + 3).ok_or(PathError::BrokenEncoding)?;
            let text = std::str::from_utf8(hex).map_err(|_| PathError::BrokenEncoding)?;
            let value = u8::from_str_radix(text, 16).map_err(|_| PathError::BrokenEncoding)?;
            match value {
                b'/' => return Err(PathError::ForbiddenEncoding("slash")),
                b'\\' => return Err(PathError::ForbiddenEncoding("backslash")),
                0 => return Err(PathError::ForbiddenEncoding("NUL")),
                v if v < 0x20 || v == 0x7f => return Err(PathError::ForbiddenEncoding("control character")),
                v if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') => decoded.push(char::from(v)),
                v => decoded.push_str(&format!("%{v:02X}")),
            }
            at += 3;
        } else {
            if byte < 0x20 || byte == 0x7f || byte == b'\\' {
                return Err(PathError::ForbiddenCharacter);
            }
            if is_path_char(byte) {
                decoded.push(char::from(byte));
            } else {
                decoded.push_str(&format!("%{byte:02X}"));
            }
            at += 1;
        }
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/').skip(1) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let trailing_slash = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut normalised = String::with_capacity(decoded.len());
    for segment in &segments {
        normalised.push('/');
        normalised.push_str(segment);
    }
    if normalised.is_empty() || (trailing_slash && !segments.is_empty()) {
        normalised.push('/');
    }
    Ok(normalised)
}

/// A byte that may stand raw in a path segment or as its separator (RFC 3986 `pchar` and
/// `/`): unreserved, sub-delims, `:` and `@`.
fn is_path_char(byte: u8) -> bool {
    matches!(byte, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@' | b'/')
}

/// Whether `path` (absolute, no query) is its own normal form, which most paths are: only
/// raw path characters, no empty segment but a trailing one, no dot segment.
fn already_normal(path: &str) -> bool {
    let plain = path.bytes().all(is_path_char);
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == "." || segment == ".." || (segment.is_empty() && !last) {
            return false;
        }
    }
    plain
}

/// A claim's values as a list: a JSON array of strings, or a string of comma- or
/// space-separated values (Microkubes sends `"user,admin"`, OAuth2 `"read write"`); only `,`
/// and the ASCII space separate.
pub fn claim_values(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(text) => Some(text.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|v| !v.is_empty())
            .collect(),
        Some(Value::String(text)) => {
            // Only the documented separators: a comma (Microkubes) or an ASCII space (OAuth2).
            // Any other whitespace (`"user\u{a0}admin"`) is part of one value, never a second.
            text.split([',', ' ']).filter(|v| !v.is_empty()).map(str::to_string).collect()
        }
        Some(Value::Number(n)) => vec![n.to_string()],
        Some(Value::Bool(b)) => vec![b.to_string()],
        _ => Vec::new(),
    }
}

/// The policy subject and the attributes conditions read, from verified claims.
///
/// Every top-level claim is an attribute under its own name (strings, numbers and booleans as
/// one value, arrays of strings as several); then the canonical keys `roles`,
/// `organizations`, `namespaces`, `scopes`, `userId`, `username` and `subject` are set from
/// the configured claim names.
pub fn attributes_from_claims(claims: &Map<String, Value>, names: &ClaimNames) -> (String, Attributes) {
    let mut attributes = Attributes::new();
    for (name, value) in claims {
        // The client address comes from the proxy, never from the caller's own token.
        if name == crate::eval::CLIENT_IP {
            continue;
        }
        let values = match value {
            Value::String(text) => vec![text.clone()],
            Value::Number(_) | Value::Bool(_) | Value::Array(_) => claim_values(Some(value)),
            _ => continue,
        };
        attributes.insert(name, values);
    }
    for (canonical, claim) in [
        ("roles", &names.roles),
        ("organizations", &names.organizations),
        ("namespaces", &names.namespaces),
        ("scopes", &names.scopes),
    ] {
        attributes.insert(canonical, claim_values(claims.get(claim.as_str())));
    }
    let single = |claim: &str| claims.get(claim).and_then(Value::as_str).map(str::to_string);
    let subject = single(&names.subject).or_else(|| single("sub")).unwrap_or_default();
    attributes.insert("userId", single(&names.user_id).into_iter().collect());
    attributes.insert("username", single("username").or_else(|| single(&names.subject)).into_iter().collect());
    attributes.insert("subject", vec![subject.clone()]);
    (subject, attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_every_spelling_of_a_path_to_one() {
        for spelling in [
            "/admin/users",
            "//admin//users",
            "/admin/./users",
            "/public/../admin/users",
            "/%61dmin/users",
            "/admin/%2E%2E/admin/users",
            "/admin/users?x=/public",
            "/admin/users#frag",
            "/../../admin/users",
        ] {
            assert_eq!(normalize_path(spelling).unwrap(), "/admin/users", "{spelling}");
        }
        assert_eq!(normalize_path("/a/b/").unwrap(), "/a/b/");
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert_eq!(normalize_path("/a/..").unwrap(), "/");
        assert_eq!(normalize_path("/files/a%20b%2a").unwrap(), "/files/a%20b%2A");
        assert_eq!(normalize_path("/caf\u{e9}").unwrap(), "/caf%C3%A9");
        assert_eq!(normalize_path("/caf%C3%A9").unwrap(), "/caf%C3%A9");
        // NGINX hands the module a decoded URI: what stands raw there is encoded here, so the
        // forwarded path is valid and means what was decided on.
        assert_eq!(normalize_path("/files/a b\"c<d>").unwrap(), "/files/a%20b%22c%3Cd%3E");
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_agrees_with_the_full_normalisation(path in "/[a-c./%2eE\\\\~\u{e9}\u{7f} :@;-]{0,12}") {
            proptest::prop_assert_eq!(normalize_path(&path), normalise_slowly(&path));
        }
    }

    #[test]
    fn refuses_spellings_that_cannot_be_normalised_safely() {
        assert_eq!(normalize_path("/admin%2Fusers"), Err(PathError::ForbiddenEncoding("slash")));
        assert_eq!(normalize_path("/admin%2fusers"), Err(PathError::ForbiddenEncoding("slash")));
        assert_eq!(normalize_path("/admin%5Cusers"), Err(PathError::ForbiddenEncoding("backslash")));
        assert_eq!(normalize_path("/a%00"), Err(PathError::ForbiddenEncoding("NUL")));
        assert_eq!(normalize_path("/a%0d%0a"), Err(PathError::ForbiddenEncoding("control character")));
        assert_eq!(normalize_path("/a\\..\\admin"), Err(PathError::ForbiddenCharacter));
        assert_eq!(normalize_path("/a\tb"), Err(PathError::ForbiddenCharacter));
        assert_eq!(normalize_path("/a%2"), Err(PathError::BrokenEncoding));
        assert_eq!(normalize_path("/a%zz"), Err(PathError::BrokenEncoding));
        assert_eq!(normalize_path("admin"), Err(PathError::NotAbsolute));
        assert_eq!(normalize_path("*"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn double_encoding_is_decoded_once_only() {
        // `%25` is `%`, which is not unreserved: it stays encoded, so `%252E%252E` can never
        // become a `..` segment here.
        assert_eq!(normalize_path("/admin/%252E%252E/x").unwrap(), "/admin/%252E%252E/x");
    }

    #[test]
    fn only_commas_and_ascii_spaces_separate_values() {
        let values = |text: &str| claim_values(Some(&Value::String(text.into())));
        assert_eq!(values("user,admin"), ["user", "admin"]);
        assert_eq!(values("read write"), ["read", "write"]);
        assert_eq!(values("user\u{a0}admin"), ["user\u{a0}admin"]);
        assert_eq!(values("user\tadmin"), ["user\tadmin"]);
        assert_eq!(values("user\u{2003}admin"), ["user\u{2003}admin"]);
    }

    #[test]
    fn claims_in_every_shape_become_lists() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"username": "ana", "userId": "u-1", "roles": "user, admin", "organizations": ["org-a", "org-b"],
                "scope": "read write", "email": "ana@example.com", "level": 3}"#,
        )
        .unwrap();
        let (subject, attributes) = attributes_from_claims(&claims, &ClaimNames::default());
        assert_eq!(subject, "ana");
        assert_eq!(attributes.get("roles"), ["user", "admin"]);
        assert_eq!(attributes.get("organizations"), ["org-a", "org-b"]);
        assert_eq!(attributes.get("scopes"), ["read", "write"]);
        assert_eq!(attributes.get("namespaces"), [] as [String; 0]);
        assert_eq!(attributes.get("userId"), ["u-1"]);
        assert_eq!(attributes.get("email"), ["ana@example.com"]);
        assert_eq!(attributes.get("level"), ["3"]);
    }
}
