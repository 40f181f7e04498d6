//! Ladon patterns, exactly as ory/ladon compiles them (`compiler/regex.go`):
//! a pattern without `<` must equal the value; otherwise every `<...>` part is a regular
//! expression, the text between parts is literal, and the whole is anchored. Delimiters may
//! nest when balanced; unbalanced delimiters are an error.

use thiserror::Error;

/// A pattern ready for the table: an exact string, or an anchored regex with the literal
/// prefix every match must start with (the index key in front of the regex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompiledPattern {
    Exact(String),
    Regex { source: String, prefix: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    #[error("unbalanced `<` `>` delimiters in {pattern:?}")]
    Unbalanced { pattern: String },
    #[error("{pattern:?}: {reason}")]
    UnsupportedRegex { pattern: String, reason: String },
}

/// Compiles a Ladon subject, resource or action pattern.
pub fn ladon(pattern: &str) -> Result<CompiledPattern, PatternError> {
    if !pattern.contains('<') {
        return Ok(CompiledPattern::Exact(pattern.to_string()));
    }
    let unbalanced = || PatternError::Unbalanced { pattern: pattern.to_string() };
    let mut source = String::from("^");
    let mut prefix: Option<String> = None;
    let (mut level, mut literal_start, mut group_start) = (0usize, 0usize, 0usize);
    for (at, ch) in pattern.char_indices() {
        match ch {
            '<' => {
                level += 1;
                if level == 1 {
                    let literal = pattern.get(literal_start..at).ok_or_else(unbalanced)?;
                    prefix.get_or_insert_with(|| literal.to_string());
                    source.push_str(&regex_lite::escape(literal));
                    group_start = at + 1;
                }
            }
            '>' => {
                level = level.checked_sub(1).ok_or_else(unbalanced)?;
                if level == 0 {
                    source.push('(');
                    source.push_str(pattern.get(group_start..at).ok_or_else(unbalanced)?);
                    source.push(')');
                    literal_start = at + 1;
                }
            }
            _ => {}
        }
    }
    if level != 0 {
        return Err(unbalanced());
    }
    source.push_str(&regex_lite::escape(pattern.get(literal_start..).unwrap_or_default()));
    source.push('$');
    validate(pattern, &source)?;
    Ok(CompiledPattern::Regex { source, prefix: prefix.unwrap_or_default() })
}

/// Compiles a condition value (`RolesCondition` and the like): a plain regular expression,
/// matched against the whole value. Microkubes searched unanchored, so the pattern `user`
/// matched the role `superuser`; here it must match the whole value.
pub fn condition_value(pattern: &str) -> Result<CompiledPattern, PatternError> {
    if regex_lite::escape(pattern) == pattern {
        return Ok(CompiledPattern::Exact(pattern.to_string()));
    }
    let source = format!("^(?:{pattern})$");
    validate(pattern, &source)?;
    Ok(CompiledPattern::Regex { source, prefix: String::new() })
}

/// Refuses what the module's engine (regex-lite) cannot run, naming the construct.
fn validate(pattern: &str, source: &str) -> Result<(), PatternError> {
    let lookaround = ["(?!", "(?=", "(?<!", "(?<="];
    let reason = if lookaround.iter().any(|l| pattern.contains(l)) {
        Some("lookahead and lookbehind are not supported by the module's regex engine; write a deny policy for the excluded case instead".to_string())
    } else if has_backreference(pattern) {
        Some("backreferences are not supported by the module's regex engine".to_string())
    } else {
        regex_lite::Regex::new(source).err().map(|e| format!("invalid regular expression: {e}"))
    };
    match reason {
        Some(reason) => Err(PatternError::UnsupportedRegex { pattern: pattern.to_string(), reason }),
        None => Ok(()),
    }
}

fn has_backreference(pattern: &str) -> bool {
    let bytes = pattern.as_bytes();
    bytes.windows(2).enumerate().any(|(at, pair)| {
        let escaped = at == 0 || bytes.get(at - 1) != Some(&b'\\');
        matches!(pair, [b'\\', b'1'..=b'9']) && escaped
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regex(pattern: &str) -> (String, String) {
        match ladon(pattern).unwrap() {
            CompiledPattern::Regex { source, prefix } => (source, prefix),
            other => panic!("expected a regex, got {other:?}"),
        }
    }

    #[test]
    fn text_without_delimiters_is_exact() {
        assert_eq!(ladon("/users/me").unwrap(), CompiledPattern::Exact("/users/me".into()));
        assert_eq!(ladon("a>b").unwrap(), CompiledPattern::Exact("a>b".into()), "only `<` starts a regex, as in Ladon");
    }

    #[test]
    fn delimited_parts_are_regexes_and_the_rest_is_literal() {
        assert_eq!(regex("/swagger<.+>"), ("^/swagger(.+)$".into(), "/swagger".into()));
        assert_eq!(regex("/v1.0/<[a-z]+>/items"), (r"^/v1\.0/([a-z]+)/items$".into(), "/v1.0/".into()));
        assert_eq!(regex("<.*>"), ("^(.*)$".into(), String::new()));
        assert_eq!(regex("api:<read|write>"), ("^api:(read|write)$".into(), "api:".into()));
    }

    #[test]
    fn nested_delimiters_must_balance() {
        assert_eq!(regex("/a/<x<y>z>"), ("^/a/(x<y>z)$".into(), "/a/".into()));
        assert!(matches!(ladon("/a/<x"), Err(PatternError::Unbalanced { .. })));
        assert!(matches!(ladon("/a/<x>>"), Err(PatternError::Unbalanced { .. })));
    }

    #[test]
    fn constructs_the_engine_cannot_run_are_named() {
        let error = ladon("<(?!admin).*>").unwrap_err().to_string();
        assert!(error.contains("lookahead"), "{error}");
        assert!(error.contains("deny policy"), "{error}");
        assert!(ladon(r"<(a)\1>").unwrap_err().to_string().contains("backreferences"));
        assert!(ladon("<[a-z>").unwrap_err().to_string().contains("invalid regular expression"));
    }

    #[test]
    fn condition_values_are_anchored() {
        assert_eq!(condition_value("user").unwrap(), CompiledPattern::Exact("user".into()));
        let CompiledPattern::Regex { source, .. } = condition_value("user|admin").unwrap() else { panic!() };
        let re = regex_lite::Regex::new(&source).unwrap();
        assert!(re.is_match("admin"));
        assert!(!re.is_match("superuser"), "anchored, unlike Microkubes");
    }
}
