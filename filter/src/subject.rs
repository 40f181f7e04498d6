//! The common name of a certificate subject as the proxy writes it: an RFC 4514 string
//! (`CN=billing,OU=svc,O=Example`). Parsed, not split: `\,` and `\2C` are part of a value,
//! `+` joins attributes of one RDN, and only an attribute whose type is `CN` (or its OID,
//! `2.5.4.3`) counts. A subject with no CN, two, a hex-encoded (`#...`) CN value, or that does
//! not parse has no common name: the request is not authenticated by it.

/// The one CN of `subject`, unescaped.
pub fn common_name(subject: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for rdn in split_unescaped(subject, b',')? {
        for attribute in split_unescaped(rdn, b'+')? {
            let (kind, value) = attribute.split_once('=')?;
            let kind = kind.trim();
            if kind.eq_ignore_ascii_case("CN") || kind == "2.5.4.3" {
                if found.is_some() || value.starts_with('#') {
                    return None;
                }
                found = Some(unescape(value)?);
            }
        }
    }
    found.filter(|cn| !cn.is_empty())
}

/// `text` split at each `separator` that no backslash escapes; `None` for a dangling `\`.
fn split_unescaped(text: &str, separator: u8) -> Option<Vec<&str>> {
    let bytes = text.as_bytes();
    let (mut parts, mut start, mut at) = (Vec::new(), 0, 0);
    while let Some(&byte) = bytes.get(at) {
        if byte == b'\\' {
            bytes.get(at + 1)?;
            at += 2;
            continue;
        }
        if byte == separator {
            parts.push(text.get(start..at)?);
            start = at + 1;
        }
        at += 1;
    }
    parts.push(text.get(start..)?);
    Some(parts)
}

/// An attribute value with its escapes resolved: `\` before a special character, or two hex
/// digits (`\2C`, and the bytes of a UTF-8 sequence).
fn unescape(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte != b'\\' {
            out.push(byte);
            at += 1;
            continue;
        }
        let next = *bytes.get(at + 1)?;
        let hex = bytes.get(at + 1..at + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(decoded) if next.is_ascii_hexdigit() => {
                out.push(decoded);
                at += 3;
            }
            _ if b" \"#+,;<=>\\".contains(&next) => {
                out.push(next);
                at += 2;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::common_name;

    #[test]
    fn the_cn_is_found_among_other_attributes() {
        assert_eq!(common_name("CN=billing,OU=svc,O=Example").as_deref(), Some("billing"));
        assert_eq!(common_name("O=Example, cn=billing").as_deref(), Some("billing"));
        assert_eq!(common_name("2.5.4.3=billing,O=Example").as_deref(), Some("billing"));
        assert_eq!(common_name("CN=Smith\\, John,O=Example").as_deref(), Some("Smith, John"));
        assert_eq!(common_name("CN=caf\\C3\\A9,O=x").as_deref(), Some("caf\u{e9}"));
    }

    #[test]
    fn escaped_separators_cannot_forge_a_cn() {
        // The attacks: no CN at all, or a real CN beside an escaped fake one.
        assert_eq!(common_name("O=Evil\\,CN=admin-svc,C=US"), None);
        assert_eq!(common_name("OU=x\\,CN=admin-svc,CN=attacker").as_deref(), Some("attacker"));
        assert_eq!(common_name("O=Evil\\2CCN=admin-svc,C=US"), None);
        assert_eq!(common_name("OU=a+CN=admin-svc,O=x").as_deref(), Some("admin-svc"), "a multi-valued RDN's CN counts");
    }

    #[test]
    fn ambiguous_or_broken_subjects_have_no_cn() {
        assert_eq!(common_name("CN=a,CN=b"), None, "two CNs");
        assert_eq!(common_name("CN=a+CN=b"), None);
        assert_eq!(common_name("CN=#0403616263"), None, "a BER-encoded value");
        assert_eq!(common_name("CN=a\\"), None, "a dangling escape");
        assert_eq!(common_name("CN=a\\q"), None, "an escape of nothing special");
        assert_eq!(common_name("CN="), None);
        assert_eq!(common_name("O=x"), None);
        assert_eq!(common_name("garbage"), None);
    }
}
