//! Turning what a proxy sees into an [`AccessRequest`](crate::AccessRequest): the normalised
//! path, the caller's attributes from token claims, and the method's action. The filter and
//! the compiler's `explain` and `test` share this code, so they cannot disagree.

use serde_json::{Map, Value};

use crate::bundle::{ClaimNames, MTLS_PROVIDER, MayAssert, Mtls, PROVIDER_ATTRIBUTE, PathParameters, Settings};
use crate::eval::Attributes;
use crate::matcher::RegexMatcher;

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
    #[error("the request target holds a fragment (`#`)")]
    Fragment,
    #[error("a path segment ends in a dot or a space")]
    TrailingDotOrSpace,
    #[error("the path holds a path parameter (`;`)")]
    PathParameter,
    #[error("the path holds a character outside ASCII, or a `::$` suffix, that a case-insensitive upstream may read as another path")]
    CaseFolding,
}

/// The settings that change how a path normalises ([`Settings::path_rules`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathRules {
    pub parameters: PathParameters,
    pub case_insensitive: bool,
}

impl Settings {
    pub fn path_rules(&self) -> PathRules {
        PathRules { parameters: self.path_parameters, case_insensitive: self.case_insensitive_paths }
    }
}

/// Normalises a request path before any matching, so that no spelling of a path reaches a
/// resource a policy protects under another spelling:
/// drop the query; decode percent-encoded unreserved characters once (and write other
/// escapes in upper case); encode every other byte that may not stand raw in a path (RFC 3986
/// `pchar`: a space, `"`, `<`, non-ASCII, ... become `%XX`); merge repeated slashes; resolve
/// `.` and `..` segments (never above the root).
///
/// Refused, because some upstream would resolve them to another resource than the one decided
/// on: encoded `/`, `\`, NUL and control characters, raw control characters and backslashes,
/// broken escapes, an encoded `%` that starts another escape (`%252e`: an upstream that
/// decodes twice sees `.`), a `#` (no request target has a fragment; NGINX hands over a
/// decoded `%23` raw), a segment ending in `.` or a space (Windows file systems and IIS drop
/// them), and unless `rules` keep them, path parameters (`;`: Tomcat and Spring strip them,
/// so `/swagger/..;/admin` is `/admin` there). With `rules.case_insensitive` the path is
/// lower-cased, and a character whose case folds to ASCII (`ſ` is `S` upper-cased) refused.
///
/// The result is a valid path to forward as it is: the filter rewrites `:path` to it, so the
/// upstream resolves exactly what was decided on (NGINX hands the module an already decoded
/// `r->uri`, in which a space or a non-ASCII byte stands raw).
pub fn normalize_path(raw: &str, rules: PathRules) -> Result<String, PathError> {
    if raw.contains('#') {
        return Err(PathError::Fragment);
    }
    let end = raw.bytes().position(|b| b == b'?').unwrap_or(raw.len());
    let path = raw.get(..end).unwrap_or_default();
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if already_normal(path, rules) {
        return Ok(path.to_string());
    }
    normalise_slowly(path, rules)
}

/// Decodes, checks and resolves an absolute path without query, character by character.
fn normalise_slowly(path: &str, rules: PathRules) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'%' {
            let value = escape_at(bytes, at).ok_or(PathError::BrokenEncoding)?;
            match value {
                b'/' => return Err(PathError::ForbiddenEncoding("slash")),
                b'\\' => return Err(PathError::ForbiddenEncoding("backslash")),
                0 => return Err(PathError::ForbiddenEncoding("NUL")),
                b'%' if starts_escape_once_decoded(bytes, at + 3) => return Err(PathError::ForbiddenEncoding("percent sign that starts another escape")),
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
            other => {
                check_segment(other, rules)?;
                segments.push(other);
            }
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
    if rules.case_insensitive {
        return lower_case(&normalised);
    }
    Ok(normalised)
}

/// The byte `%XX` at `at` stands for, if it is a well-formed escape.
fn escape_at(bytes: &[u8], at: usize) -> Option<u8> {
    if bytes.get(at) != Some(&b'%') {
        return None;
    }
    let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
    u8::from_str_radix(hex, 16).ok().filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether the bytes at `at`, decoded once, begin with two hex digits (`2e`, or `%32%65`):
/// after an encoded `%`, a second decoding would make an escape of them.
fn starts_escape_once_decoded(bytes: &[u8], at: usize) -> bool {
    let digit = |at: usize| match (bytes.get(at), escape_at(bytes, at)) {
        (_, Some(value)) if value.is_ascii_hexdigit() => Some(at + 3),
        (Some(byte), None) if byte.is_ascii_hexdigit() => Some(at + 1),
        _ => None,
    };
    digit(at).and_then(digit).is_some()
}

/// A segment (not `.` or `..`) some upstream would read as another one.
fn check_segment(segment: &str, rules: PathRules) -> Result<(), PathError> {
    if segment.ends_with('.') || segment.ends_with("%20") {
        return Err(PathError::TrailingDotOrSpace);
    }
    if rules.parameters == PathParameters::Refuse && segment.contains(';') {
        return Err(PathError::PathParameter);
    }
    Ok(())
}

/// A normalised path in lower case (its escapes' hex digits stay upper case), for an upstream
/// that ignores case. Refused: any character outside ASCII (`É` and `é` are one file there,
/// but lower-casing UTF-8 is not what every upstream does, and `ſ` or the Kelvin sign fold
/// into ASCII), and NTFS's `::$` stream suffix (`/secret::$DATA` is `/secret` to IIS).
fn lower_case(normalised: &str) -> Result<String, PathError> {
    let bytes = normalised.as_bytes();
    // The path as the upstream decodes it, to look for `::$` spelled with escapes too.
    let mut raw = Vec::with_capacity(bytes.len());
    let mut out = String::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match escape_at(bytes, at) {
            Some(value) => {
                raw.push(value);
                out.push_str(normalised.get(at..at + 3).unwrap_or_default());
                at += 3;
            }
            None => {
                raw.push(byte.to_ascii_lowercase());
                out.push(char::from(byte.to_ascii_lowercase()));
                at += 1;
            }
        }
    }
    // Any character outside ASCII, cased or not (a byte above 0x7F, which a normalised path
    // holds only as an escape): telling which have a case takes Unicode's case tables, 24 KB
    // of the module, for a mode few upstreams need.
    if !raw.is_ascii() || raw.windows(3).any(|w| w == b"::$") {
        return Err(PathError::CaseFolding);
    }
    Ok(out)
}

/// A byte that may stand raw in a path segment or as its separator (RFC 3986 `pchar` and
/// `/`): unreserved, sub-delims, `:` and `@`.
fn is_path_char(byte: u8) -> bool {
    matches!(byte, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@' | b'/')
}

/// Whether `path` (absolute, no query) is its own normal form, which most paths are: only
/// raw path characters (lower case ones where case does not count, no `;` unless kept), no
/// empty segment but a trailing one, no dot segment, none ending in a dot.
fn already_normal(path: &str, rules: PathRules) -> bool {
    let plain = path.bytes().all(|b| {
        is_path_char(b) && !(rules.case_insensitive && b.is_ascii_uppercase()) && !(b == b';' && rules.parameters == PathParameters::Refuse)
    });
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment.ends_with('.') || (segment.is_empty() && !last) {
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

/// A provider's [`MayAssert`] ready to apply: its regexes compiled once, at load, each
/// anchored here (`^(?:...)$`), whoever wrote the bundle.
pub enum Trust {
    Any,
    Only {
        /// The subjects the provider may name (none when the bundle lists none).
        subject: Vec<RegexMatcher>,
        attributes: Vec<(String, Vec<RegexMatcher>)>,
    },
}

impl Trust {
    pub fn new(may_assert: &MayAssert) -> Result<Trust, String> {
        let compile = |list: &[String]| {
            list.iter().map(|re| RegexMatcher::new(&format!("^(?:{re})$")).map_err(|e| format!("{re:?}: {e}"))).collect::<Result<Vec<_>, _>>()
        };
        Ok(match may_assert {
            MayAssert::Any => Trust::Any,
            MayAssert::Only(limits) => Trust::Only {
                subject: compile(limits.get("subject").map(Vec::as_slice).unwrap_or_default())?,
                attributes: limits
                    .iter()
                    .filter(|(name, _)| name.as_str() != "subject")
                    .map(|(name, list)| Ok((name.clone(), compile(list)?)))
                    .collect::<Result<_, String>>()?,
            },
        })
    }
}

/// The attributes of a caller the proxy authenticated by a client certificate naming
/// `subject`: the roles the bundle gives that identity (none when it is not listed), the
/// subject as `username` and `subject`, and `mtls` as the provider.
pub fn certificate_attributes(subject: &str, mtls: &Mtls) -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert("roles", mtls.roles.get(subject).cloned().unwrap_or_default());
    attributes.insert("username", vec![subject.to_string()]);
    attributes.insert("subject", vec![subject.to_string()]);
    attributes.insert(PROVIDER_ATTRIBUTE, vec![MTLS_PROVIDER.to_string()]);
    attributes
}

/// The provider a token's `iss` chooses: the one with that issuer, else the one without an
/// issuer (a bundle has at most one: [`crate::bundle::check_provider_chain`]). No other
/// provider is tried, whatever the outcome.
pub fn provider_for_issuer<'a, P>(providers: &'a [P], issuer_of: impl Fn(&P) -> Option<&str>, iss: Option<&str>) -> Option<&'a P> {
    providers
        .iter()
        .find(|p| issuer_of(p).is_some() && issuer_of(p) == iss)
        .or_else(|| providers.iter().find(|p| issuer_of(p).is_none()))
}

/// The token names a subject its provider may not assert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UntrustedSubject;

/// The policy subject and the attributes conditions read, from verified claims, as far as
/// the verifying `provider` may assert them (`trust`).
///
/// Every top-level claim is an attribute under its own name (strings, numbers and booleans as
/// one value, arrays of strings as several); then the canonical keys `roles`,
/// `organizations`, `namespaces`, `scopes`, `userId`, `username` and `subject` are set from
/// the configured claim names. Under [`Trust::Only`] only the attributes it names are kept,
/// each with the values it allows; `username` is then the subject. `provider` is always the
/// verifying provider (a claim of that name is dropped, like `clientIP`).
pub fn attributes_from_claims(claims: &Map<String, Value>, names: &ClaimNames, provider: &str, trust: &Trust) -> Result<(String, Attributes), UntrustedSubject> {
    let mut attributes = Attributes::new();
    for (name, value) in claims {
        // The client address comes from the proxy and the provider from the filter, never
        // from the caller's own token.
        if name == crate::eval::CLIENT_IP || name == PROVIDER_ATTRIBUTE {
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
    let username = match trust {
        Trust::Any => single("username").or_else(|| single(&names.subject)),
        Trust::Only { .. } => Some(subject.clone()),
    };
    attributes.insert("username", username.into_iter().collect());
    if let Trust::Only { subject: allowed, attributes: limits } = trust {
        if !allowed.iter().any(|re| re.is_match(&subject)) {
            return Err(UntrustedSubject);
        }
        attributes.retain(|name, values| {
            if name == "username" {
                return true;
            }
            match limits.iter().find(|(limited, _)| limited == name) {
                Some((_, allowed)) => {
                    values.retain(|value| allowed.iter().any(|re| re.is_match(value)));
                    true
                }
                None => false,
            }
        });
    }
    attributes.insert("subject", vec![subject.clone()]);
    attributes.insert(PROVIDER_ATTRIBUTE, vec![provider.to_string()]);
    Ok((subject, attributes))
}

/// The authorization id a tenant mapping looks up: the first of `id_claims` the caller's
/// attributes hold, else the subject (a client certificate's identity, a token's subject).
/// Attributes, not raw claims: a provider's token counts only as far as its `may_assert`
/// allows, so a partner's token naming another client's `client_id` or `email` never gets
/// that caller's tenant and scopes.
pub fn authorization_id<'a>(mapping: &'a crate::bundle::TenantMapping, attributes: &'a Attributes, subject: &'a str) -> &'a str {
    mapping.id_claims.iter().find_map(|claim| attributes.get(claim).first().map(String::as_str)).unwrap_or(subject)
}

/// Applies the tenant mapping to a caller's attributes: the entry's tenant replaces the
/// `tenant` attribute (a claim counts only where no entry maps the caller), its scopes are
/// added to `scopes`. Shared by the module and `explain`/`test`.
pub fn map_tenant(mapping: &crate::bundle::TenantMapping, subject: &str, attributes: &mut Attributes) {
    if let Some(entry) = mapping.entries.get(authorization_id(mapping, attributes, subject)) {
        apply_tenant(entry, attributes);
    }
}

/// Gives the caller `entry`'s tenant (over a `tenant` claim) and adds its scopes.
pub fn apply_tenant(entry: &crate::bundle::TenantEntry, attributes: &mut Attributes) {
    attributes.insert("tenant", vec![entry.tenant.clone()]);
    if !entry.scopes.is_empty() {
        let mut scopes = attributes.get("scopes").to_vec();
        scopes.extend(entry.scopes.iter().filter(|s| !scopes.contains(s)).cloned().collect::<Vec<_>>());
        attributes.insert("scopes", scopes);
    }
}

/// The caller's tenant, once mapped; `None` for none (or an empty one).
pub fn tenant_of(attributes: &Attributes) -> Option<&str> {
    attributes.get("tenant").first().map(String::as_str).filter(|t| !t.is_empty())
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
            "/../../admin/users",
        ] {
            assert_eq!(normalize_path(spelling, PathRules::default()).unwrap(), "/admin/users", "{spelling}");
        }
        assert_eq!(normalize_path("/a/b/", PathRules::default()).unwrap(), "/a/b/");
        assert_eq!(normalize_path("/", PathRules::default()).unwrap(), "/");
        assert_eq!(normalize_path("/a/..", PathRules::default()).unwrap(), "/");
        assert_eq!(normalize_path("/files/a%20b%2a", PathRules::default()).unwrap(), "/files/a%20b%2A");
        assert_eq!(normalize_path("/caf\u{e9}", PathRules::default()).unwrap(), "/caf%C3%A9");
        assert_eq!(normalize_path("/caf%C3%A9", PathRules::default()).unwrap(), "/caf%C3%A9");
        // NGINX hands the module a decoded URI: what stands raw there is encoded here, so the
        // forwarded path is valid and means what was decided on.
        assert_eq!(normalize_path("/files/a b\"c<d>", PathRules::default()).unwrap(), "/files/a%20b%22c%3Cd%3E");
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_agrees_with_the_full_normalisation(path in "/[a-cA./%2eE\\\\~\u{e9}\u{7f} :@;-]{0,12}", keep: bool, case_insensitive: bool) {
            let rules = PathRules { parameters: if keep { PathParameters::Keep } else { PathParameters::Refuse }, case_insensitive };
            proptest::prop_assert_eq!(normalize_path(&path, rules), normalise_slowly(&path, rules));
        }

        #[test]
        fn a_normal_path_is_its_own_normal_form(path in "/[a-cA./%2eE5\\\\~\u{e9}\u{17f} :@;#?-]{0,12}", keep: bool, case_insensitive: bool) {
            let rules = PathRules { parameters: if keep { PathParameters::Keep } else { PathParameters::Refuse }, case_insensitive };
            if let Ok(once) = normalize_path(&path, rules) {
                proptest::prop_assert_eq!(normalize_path(&once, rules), Ok(once.clone()));
            }
        }
    }

    #[test]
    fn refuses_spellings_that_cannot_be_normalised_safely() {
        assert_eq!(normalize_path("/admin%2Fusers", PathRules::default()), Err(PathError::ForbiddenEncoding("slash")));
        assert_eq!(normalize_path("/admin%2fusers", PathRules::default()), Err(PathError::ForbiddenEncoding("slash")));
        assert_eq!(normalize_path("/admin%5Cusers", PathRules::default()), Err(PathError::ForbiddenEncoding("backslash")));
        assert_eq!(normalize_path("/a%00", PathRules::default()), Err(PathError::ForbiddenEncoding("NUL")));
        assert_eq!(normalize_path("/a%0d%0a", PathRules::default()), Err(PathError::ForbiddenEncoding("control character")));
        assert_eq!(normalize_path("/a\\..\\admin", PathRules::default()), Err(PathError::ForbiddenCharacter));
        assert_eq!(normalize_path("/a\tb", PathRules::default()), Err(PathError::ForbiddenCharacter));
        assert_eq!(normalize_path("/a%2", PathRules::default()), Err(PathError::BrokenEncoding));
        assert_eq!(normalize_path("/a%zz", PathRules::default()), Err(PathError::BrokenEncoding));
        assert_eq!(normalize_path("admin", PathRules::default()), Err(PathError::NotAbsolute));
        assert_eq!(normalize_path("*", PathRules::default()), Err(PathError::NotAbsolute));
    }

    #[test]
    fn double_encoding_is_refused_and_a_lone_percent_kept() {
        // An upstream that decodes twice would read `%252E%252E` as `..`.
        for path in ["/admin/%252E%252E/x", "/admin/%252e", "/%25%32%65"] {
            assert_eq!(normalize_path(path, PathRules::default()), Err(PathError::ForbiddenEncoding("percent sign that starts another escape")), "{path}");
        }
        assert_eq!(normalize_path("/files/100%25", PathRules::default()).unwrap(), "/files/100%25");
        assert_eq!(normalize_path("/files/100%25-off", PathRules::default()).unwrap(), "/files/100%25-off");
    }

    #[test]
    fn spellings_an_upstream_resolves_differently_are_refused() {
        let refused = |path: &str| normalize_path(path, PathRules::default()).unwrap_err();
        // Tomcat and Spring strip `;` parameters, and then read `..;` as `..`.
        for path in ["/swagger/..;/admin/users", "/public/..;/admin/x", "/secret;x=1", "/a;/b"] {
            assert_eq!(refused(path), PathError::PathParameter, "{path}");
        }
        for path in ["/secret#x", "/a?b#c", "/secret%23/../x"] {
            assert!(matches!(normalize_path(path, PathRules::default()), Err(PathError::Fragment) | Ok(_)), "{path}");
        }
        assert_eq!(refused("/secret#x"), PathError::Fragment);
        assert_eq!(refused("/a?b#c"), PathError::Fragment);
        // `%23` stays encoded: not a fragment, and forwarded as `%23`.
        assert_eq!(normalize_path("/a%23b", PathRules::default()).unwrap(), "/a%23b");
        for path in ["/secret.", "/secret./x", "/secret%2e", "/secret%20", "/secret ", "/a/...", "/secret%2E%2E%2E"] {
            assert_eq!(refused(path), PathError::TrailingDotOrSpace, "{path}");
        }
        assert_eq!(normalize_path("/v1.0/.well-known/x", PathRules::default()).unwrap(), "/v1.0/.well-known/x");
        let keep = PathRules { parameters: PathParameters::Keep, ..PathRules::default() };
        assert_eq!(normalize_path("/secret;x=1", keep).unwrap(), "/secret;x=1");
        assert_eq!(normalize_path("/swagger/..;/admin", keep).unwrap(), "/swagger/..;/admin");
    }

    #[test]
    fn case_counts_unless_the_upstream_ignores_it() {
        assert_eq!(normalize_path("/SECRET", PathRules::default()).unwrap(), "/SECRET");
        assert_eq!(normalize_path("/\u{17f}ecret", PathRules::default()).unwrap(), "/%C5%BFecret");
        let folded = PathRules { case_insensitive: true, ..PathRules::default() };
        assert_eq!(normalize_path("/SECRET/Files", folded).unwrap(), "/secret/files");
        assert_eq!(normalize_path("/files/X%2a", folded).unwrap(), "/files/x%2A");
        assert_eq!(normalize_path("/%53ECRET", folded).unwrap(), "/secret");
        // The long s upper-cases to S, the Kelvin sign lower-cases to k, the dotless i
        // upper-cases to I; É and é are one file to a case-insensitive upstream; ß upper-cases
        // to SS; `::$DATA` is the file itself to IIS.
        for path in ["/\u{17f}ecret", "/%C5%BFecret", "/\u{212a}ey", "/\u{131}d", "/CAF%C3%89", "/caf\u{e9}", "/stra\u{df}e", "/secret::$DATA"] {
            assert_eq!(normalize_path(path, folded), Err(PathError::CaseFolding), "{path}");
        }
        // Any character outside ASCII, cased or not (CJK has no case, and is refused all the same).
        assert_eq!(normalize_path("/\u{6587}\u{66f8}", folded), Err(PathError::CaseFolding));
        assert_eq!(normalize_path("/files/report-2026.pdf", folded).unwrap(), "/files/report-2026.pdf");
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
        let (subject, attributes) = attributes_from_claims(&claims, &ClaimNames::default(), "idp", &Trust::Any).unwrap();
        assert_eq!(subject, "ana");
        assert_eq!(attributes.get("roles"), ["user", "admin"]);
        assert_eq!(attributes.get("organizations"), ["org-a", "org-b"]);
        assert_eq!(attributes.get("scopes"), ["read", "write"]);
        assert_eq!(attributes.get("namespaces"), [] as [String; 0]);
        assert_eq!(attributes.get("userId"), ["u-1"]);
        assert_eq!(attributes.get("email"), ["ana@example.com"]);
        assert_eq!(attributes.get("level"), ["3"]);
        assert_eq!(attributes.get("provider"), ["idp"]);
    }

    #[test]
    fn a_provider_asserts_only_what_it_may() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"username": "partner-billing", "userId": "u-9", "roles": "admin,partner-clerk", "scope": "billing:read admin:all",
                "provider": "keysDir", "clientIP": "10.0.0.1", "tier": "gold"}"#,
        )
        .unwrap();
        // Anchored whoever wrote them: `partner-.*` never matches `root@partner-x`.
        let limits = [
            ("subject".to_string(), vec!["partner-.*".to_string()]),
            ("roles".to_string(), vec!["partner-.*".to_string()]),
            ("scopes".to_string(), vec!["billing:.*".to_string()]),
        ];
        let trust = Trust::new(&MayAssert::Only(limits.into())).unwrap();
        let (subject, attributes) = attributes_from_claims(&claims, &ClaimNames::default(), "partner", &trust).unwrap();
        assert_eq!(subject, "partner-billing");
        assert_eq!(attributes.get("roles"), ["partner-clerk"], "admin is not the partner's to give");
        assert_eq!(attributes.get("scopes"), ["billing:read"]);
        for dropped in ["userId", "tier", "clientIP", "organizations"] {
            assert_eq!(attributes.get(dropped), [] as [String; 0], "{dropped}");
        }
        assert_eq!(attributes.get("provider"), ["partner"], "never the token's own claim");
        assert_eq!((attributes.get("username"), attributes.get("subject")), (&["partner-billing".to_string()][..], &["partner-billing".to_string()][..]));
        for subject in ["root", "root@partner-x", "x-partner-y"] {
            let claims: Map<String, Value> = serde_json::from_str(&format!(r#"{{"username": "{subject}", "roles": "admin-partner-x"}}"#)).unwrap();
            assert_eq!(attributes_from_claims(&claims, &ClaimNames::default(), "partner", &trust), Err(UntrustedSubject), "{subject}");
        }
        let clerk: Map<String, Value> = serde_json::from_str(r#"{"username": "partner-a", "roles": "admin-partner-x"}"#).unwrap();
        let (_, attributes) = attributes_from_claims(&clerk, &ClaimNames::default(), "partner", &trust).unwrap();
        assert_eq!(attributes.get("roles"), [] as [String; 0], "anchored: admin-partner-x is no partner role");
        // Subjects named, nothing else: the subject only. No subject named: no one.
        let subject_only = Trust::new(&MayAssert::Only([("subject".to_string(), vec![".+".to_string()])].into())).unwrap();
        let (_, attributes) = attributes_from_claims(&claims, &ClaimNames::default(), "partner", &subject_only).unwrap();
        let names: Vec<&str> = attributes.iter().filter(|(_, values)| !values.is_empty()).map(|(name, _)| name).collect();
        assert_eq!(names, ["username", "subject", "provider"]);
        let nothing = Trust::new(&MayAssert::Only(Default::default())).unwrap();
        assert_eq!(attributes_from_claims(&claims, &ClaimNames::default(), "partner", &nothing), Err(UntrustedSubject));
    }
}
