//! Finding the credentials in a request: in a header (with a case-insensitive scheme such as
//! `Bearer`, or `Basic` credentials), a query parameter or a cookie, as configured, in the
//! order of the sources. One source giving two (two `Authorization` headers, a parameter or
//! cookie twice) is refused: which one would count? Two sources giving one each are refused
//! too unless the chain tries each in turn (`chain: first_success`).

use std::borrow::Cow;

use decision_table::bundle::{Chain, TokenSource};

/// Where the token was found (the header's name as the request carries it, the configured
/// parameter or cookie name), so it can be removed before the request goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin<'a> {
    Header(&'a str),
    Query(&'a str),
    Cookie(&'a str),
}

/// The token, borrowed from the request unless it had to be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    pub token: Cow<'a, str>,
    pub origin: Origin<'a>,
    /// `Authorization: Basic` credentials (base64 of `user:password`), for the provider
    /// with `basic`; never a token.
    pub basic: bool,
}

/// The only item of `items`; `Err` when there are two or more.
fn at_most_one<T>(mut items: impl Iterator<Item = T>) -> Result<Option<T>, MultipleCredentials> {
    let first = items.next();
    if items.next().is_some() { Err(MultipleCredentials) } else { Ok(first) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipleCredentials;

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        let hex = bytes.get(at + 1..at + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (byte, hex) {
            (b'%', Some(value)) => {
                out.push(value);
                at += 3;
            }
            _ => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_pairs(path: &str) -> impl Iterator<Item = (String, &str)> {
    let query = path.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or_default()).unwrap_or_default();
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key), value)
    })
}

fn cookies(headers: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .map(|c| c.split_once('=').unwrap_or((c, "")))
}

/// The one credential the request carries, if any.
pub fn find<'a>(headers: &'a [(String, String)], path: &'a str, sources: &'a [TokenSource]) -> Result<Option<Found<'a>>, MultipleCredentials> {
    Ok(find_for(Chain::OneCredential, headers, path, sources)?.pop())
}

/// The credentials `chain` decides on: every one the request carries ([`find_all`]), but
/// under `one_credential` two are refused.
pub fn find_for<'a>(chain: Chain, headers: &'a [(String, String)], path: &'a str, sources: &'a [TokenSource]) -> Result<Vec<Found<'a>>, MultipleCredentials> {
    let all = find_all(headers, path, sources)?;
    if chain == Chain::OneCredential && all.len() > 1 {
        return Err(MultipleCredentials);
    }
    Ok(all)
}

/// Every credential the request carries, one per source at most, in the sources' order.
pub fn find_all<'a>(headers: &'a [(String, String)], path: &'a str, sources: &'a [TokenSource]) -> Result<Vec<Found<'a>>, MultipleCredentials> {
    let mut found: Vec<Found<'a>> = Vec::new();
    for source in sources {
        let candidate = match source {
            TokenSource::Header { name, scheme } => {
                // The header's own (lower-case) name is what the proxy knows it by.
                let Some((header, value)) =
                    at_most_one(headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(k, v)| (k.as_str(), v.trim())))?
                else {
                    continue;
                };
                let token = match scheme {
                    Some(scheme) => {
                        let (given, rest) = value.split_once(' ').unwrap_or((value, ""));
                        if !given.eq_ignore_ascii_case(scheme) {
                            continue;
                        }
                        rest.trim()
                    }
                    None => value,
                };
                (!token.is_empty()).then_some(Found { token: Cow::Borrowed(token), origin: Origin::Header(header), basic: source.is_basic() })
            }
            TokenSource::Query { name } => at_most_one(query_pairs(path).filter(|(k, _)| k == name).map(|(_, v)| v))?
                .filter(|v| !v.is_empty())
                .map(|value| Found { token: Cow::Owned(percent_decode(value)), origin: Origin::Query(name), basic: false }),
            TokenSource::Cookie { name } => at_most_one(cookies(headers).filter(|(k, _)| k == name).map(|(_, v)| v))?
                .filter(|v| !v.is_empty())
                .map(|value| Found { token: Cow::Borrowed(value.trim_matches('"')), origin: Origin::Cookie(name), basic: false }),
        };
        found.extend(candidate);
    }
    Ok(found)
}

/// `?` and the query without the parameter `name`, or nothing when no parameter is left.
pub fn query_without_parameter(query: &str, name: &str) -> String {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && percent_decode(pair.split_once('=').map_or(*pair, |(k, _)| k)) != name)
        .collect();
    if kept.is_empty() { String::new() } else { format!("?{}", kept.join("&")) }
}

/// The `cookie` header without the cookie `name` (`None` when nothing is left).
pub fn cookies_without(headers: &[(String, String)], name: &str) -> Option<String> {
    let kept: Vec<String> = cookies(headers).filter(|(k, _)| *k != name).map(|(k, v)| format!("{k}={v}")).collect();
    if kept.is_empty() { None } else { Some(kept.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    fn bearer() -> Vec<TokenSource> {
        vec![
            TokenSource::Header { name: "authorization".into(), scheme: Some("Bearer".into()) },
            TokenSource::Query { name: "access_token".into() },
            TokenSource::Cookie { name: "token".into() },
        ]
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER   abc "] {
            let (request, sources) = (headers(&[("authorization", value)]), bearer());
            assert_eq!(find(&request, "/", &sources).unwrap().unwrap().token, "abc");
        }
        assert_eq!(find(&headers(&[("authorization", "Basic dXNlcg==")]), "/", &bearer()), Ok(None));
        assert_eq!(find(&headers(&[("authorization", "Bearer")]), "/", &bearer()), Ok(None));
    }

    #[test]
    fn a_header_source_matches_any_case_and_names_the_header_as_sent() {
        let (request, sources) = (headers(&[("x-token", "abc")]), vec![TokenSource::Header { name: "X-Token".into(), scheme: None }]);
        assert_eq!(find(&request, "/", &sources), Ok(Some(Found { token: "abc".into(), origin: Origin::Header("x-token"), basic: false })));
    }

    #[test]
    fn two_credentials_are_refused() {
        let two_headers = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert_eq!(find(&two_headers, "/", &bearer()), Err(MultipleCredentials));
        let header_and_query = headers(&[("authorization", "Bearer a")]);
        assert_eq!(find(&header_and_query, "/x?access_token=b", &bearer()), Err(MultipleCredentials));
        assert_eq!(find(&headers(&[]), "/x?access_token=a&access_token=b", &bearer()), Err(MultipleCredentials));
        let two_cookies = headers(&[("cookie", "token=a"), ("cookie", "token=b")]);
        assert_eq!(find(&two_cookies, "/", &bearer()), Err(MultipleCredentials));
    }

    #[test]
    fn query_and_cookie_tokens_are_found_and_can_be_removed() {
        let (none, sources) = (headers(&[]), bearer());
        assert_eq!(find(&none, "/x?a=1&access%5Ftoken=t%2Dk&b=2", &sources).unwrap().unwrap().token, "t-k");
        assert_eq!(query_without_parameter("a=1&access%5Ftoken=t&b=2", "access_token"), "?a=1&b=2");
        assert_eq!(query_without_parameter("access_token=t", "access_token"), "");

        let jar = headers(&[("cookie", "theme=dark; token=abc; lang=en")]);
        assert_eq!(find(&jar, "/", &bearer()).unwrap().unwrap().token, "abc");
        assert_eq!(cookies_without(&jar, "token").as_deref(), Some("theme=dark; lang=en"));
        assert_eq!(cookies_without(&headers(&[("cookie", "token=abc")]), "token"), None);
    }
}
