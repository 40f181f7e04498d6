//! Finding the token in a request: in a header (with a case-insensitive scheme such as
//! `Bearer`), a query parameter or a cookie, as configured. Two credentials (two sources, two
//! `Authorization` headers, a parameter or cookie twice) are refused: which one would count?

use decision_table::bundle::TokenSource;

/// Where the token was found, so it can be removed before the request goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Header(String),
    Query(String),
    Cookie(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub token: String,
    pub origin: Origin,
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
        .filter(|(k, _)| k == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .map(|c| c.split_once('=').unwrap_or((c, "")))
}

/// The one token the request carries, if any.
pub fn find(headers: &[(String, String)], path: &str, sources: &[TokenSource]) -> Result<Option<Found>, MultipleCredentials> {
    let mut found: Vec<Found> = Vec::new();
    for source in sources {
        match source {
            TokenSource::Header { name, scheme } => {
                let name = name.to_ascii_lowercase();
                let values: Vec<&str> = headers.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.as_str()).collect();
                if values.len() > 1 {
                    return Err(MultipleCredentials);
                }
                let Some(value) = values.first() else { continue };
                let token = match scheme {
                    Some(scheme) => {
                        let value = value.trim();
                        let (given, rest) = value.split_once(' ').unwrap_or((value, ""));
                        if !given.eq_ignore_ascii_case(scheme) {
                            continue;
                        }
                        rest.trim()
                    }
                    None => value.trim(),
                };
                if !token.is_empty() {
                    found.push(Found { token: token.to_string(), origin: Origin::Header(name) });
                }
            }
            TokenSource::Query { name } => {
                let values: Vec<&str> = query_pairs(path).filter(|(k, _)| k == name).map(|(_, v)| v).collect();
                if values.len() > 1 {
                    return Err(MultipleCredentials);
                }
                if let Some(value) = values.first().filter(|v| !v.is_empty()) {
                    found.push(Found { token: percent_decode(value), origin: Origin::Query(name.clone()) });
                }
            }
            TokenSource::Cookie { name } => {
                let values: Vec<&str> = cookies(headers).filter(|(k, _)| k == name).map(|(_, v)| v).collect();
                if values.len() > 1 {
                    return Err(MultipleCredentials);
                }
                if let Some(value) = values.first().filter(|v| !v.is_empty()) {
                    found.push(Found { token: value.trim_matches('"').to_string(), origin: Origin::Cookie(name.clone()) });
                }
            }
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(MultipleCredentials),
    }
}

/// The `:path` without the query parameter `name`.
pub fn path_without_parameter(path: &str, name: &str) -> String {
    let Some((base, query)) = path.split_once('?') else { return path.to_string() };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && percent_decode(pair.split_once('=').map_or(*pair, |(k, _)| k)) != name)
        .collect();
    if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) }
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
            let found = find(&headers(&[("authorization", value)]), "/", &bearer()).unwrap().unwrap();
            assert_eq!(found.token, "abc");
        }
        assert_eq!(find(&headers(&[("authorization", "Basic dXNlcg==")]), "/", &bearer()), Ok(None));
        assert_eq!(find(&headers(&[("authorization", "Bearer")]), "/", &bearer()), Ok(None));
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
        let found = find(&headers(&[]), "/x?a=1&access%5Ftoken=t%2Dk&b=2", &bearer()).unwrap().unwrap();
        assert_eq!(found.token, "t-k");
        assert_eq!(path_without_parameter("/x?a=1&access%5Ftoken=t&b=2", "access_token"), "/x?a=1&b=2");
        assert_eq!(path_without_parameter("/x?access_token=t", "access_token"), "/x");

        let jar = headers(&[("cookie", "theme=dark; token=abc; lang=en")]);
        assert_eq!(find(&jar, "/", &bearer()).unwrap().unwrap().token, "abc");
        assert_eq!(cookies_without(&jar, "token").as_deref(), Some("theme=dark; lang=en"));
        assert_eq!(cookies_without(&headers(&[("cookie", "token=abc")]), "token"), None);
    }
}
