//! Anchored regexes of the shapes that Ladon patterns and ignore patterns almost always take
//! (`^(?:/health)$`, `^(.+)$`, `^/swagger(.+)$`, `^/billing/([^/]+)$`, `^(?:/api/.*)$`) are
//! matched with plain string operations; any other regex goes to regex-lite. regex-lite has no
//! literal optimisations, and its PikeVM was about half of a cached request's cost.
//!
//! A shape is recognised only when it means exactly what regex-lite would make of it: each
//! literal must survive a round trip through `regex_lite::escape`, `.` excludes `\n` as
//! regex-lite's does, and `[^/]` includes it. A property test checks the equivalence.

use regex_lite::Regex;

/// What the one variable part of a shape accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Middle {
    /// `.*` / `.+`: any characters but `\n`.
    AnyButNewline,
    /// `[^/]*` / `[^/]+`: any characters but `/` (newlines included).
    AnyButSlash,
}

/// `prefix MIDDLE suffix`, anchored at both ends; `middle: None` is an exact string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    prefix: String,
    middle: Option<(Middle, bool)>,
    suffix: String,
}

/// The variable parts recognised, with and without a capture group; `true`: non-empty.
const MIDDLES: [(&str, Middle, bool); 8] = [
    ("(.*)", Middle::AnyButNewline, false),
    ("(.+)", Middle::AnyButNewline, true),
    ("([^/]*)", Middle::AnyButSlash, false),
    ("([^/]+)", Middle::AnyButSlash, true),
    (".*", Middle::AnyButNewline, false),
    (".+", Middle::AnyButNewline, true),
    ("[^/]*", Middle::AnyButSlash, false),
    ("[^/]+", Middle::AnyButSlash, true),
];

/// The literal text a regex fragment stands for, when it is nothing but escaped literal text.
fn literal(fragment: &str) -> Option<String> {
    let mut text = String::with_capacity(fragment.len());
    let mut chars = fragment.chars();
    while let Some(c) = chars.next() {
        text.push(if c == '\\' { chars.next()? } else { c });
    }
    (regex_lite::escape(&text) == fragment).then_some(text)
}

/// The position of the first `(`, `.` or `[` that is not escaped.
fn first_operator(body: &str) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '(' | '.' | '[' => return Some(at),
            _ => {}
        }
    }
    None
}

impl Shape {
    fn parse(source: &str) -> Option<Shape> {
        let body = source.strip_prefix('^')?.strip_suffix('$')?;
        // `^(?:...)$` is how ignore patterns and condition values are anchored. A stray `)` or
        // `|` inside would fail the literal round trip, so unwrapping cannot change the meaning.
        body.strip_prefix("(?:").and_then(|b| b.strip_suffix(')')).and_then(Shape::parse_body).or_else(|| Shape::parse_body(body))
    }

    fn parse_body(body: &str) -> Option<Shape> {
        let Some(at) = first_operator(body) else {
            return Some(Shape { prefix: literal(body)?, middle: None, suffix: String::new() });
        };
        let (before, rest) = body.split_at_checked(at)?;
        MIDDLES.iter().find_map(|(text, middle, non_empty)| {
            let after = rest.strip_prefix(text)?;
            Some(Shape { prefix: literal(before)?, middle: Some((*middle, *non_empty)), suffix: literal(after)? })
        })
    }

    fn is_match(&self, value: &str) -> bool {
        let Some(rest) = value.strip_prefix(self.prefix.as_str()) else { return false };
        match self.middle {
            None => rest.is_empty(),
            Some((middle, non_empty)) => {
                let Some(middle_text) = rest.strip_suffix(self.suffix.as_str()) else { return false };
                let excluded = match middle {
                    Middle::AnyButNewline => '\n',
                    Middle::AnyButSlash => '/',
                };
                (!non_empty || !middle_text.is_empty()) && !middle_text.contains(excluded)
            }
        }
    }
}

/// A regex, matched by string operations when it has a simple shape.
#[derive(Debug, Clone)]
pub struct RegexMatcher(Inner);

#[derive(Debug, Clone)]
enum Inner {
    Shape(Shape),
    Engine(Regex),
}

impl RegexMatcher {
    pub fn new(source: &str) -> Result<Self, regex_lite::Error> {
        match Shape::parse(source) {
            Some(shape) => Ok(RegexMatcher(Inner::Shape(shape))),
            None => Regex::new(source).map(|regex| RegexMatcher(Inner::Engine(regex))),
        }
    }

    pub fn is_match(&self, value: &str) -> bool {
        match &self.0 {
            Inner::Shape(shape) => shape.is_match(value),
            Inner::Engine(regex) => regex.is_match(value),
        }
    }

    /// Whether regex-lite's engine runs for this regex (for tests and `inspect`).
    pub fn uses_engine(&self) -> bool {
        matches!(self.0, Inner::Engine(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn common_shapes_skip_the_engine() {
        for source in [
            "^(?:/health)$",
            "^(.+)$",
            "^/swagger(.+)$",
            "^/admin(.*)$",
            "^/billing/([^/]+)$",
            "^/users/([^/]+)/profile$",
            "^(?:/api/.*)$",
            "^/a\\.b(.*)$",
        ] {
            assert!(!RegexMatcher::new(source).unwrap().uses_engine(), "{source}");
        }
        for source in ["^(?:a|b)$", "/health", "^/x(.*)/y(.*)$", "^(?i)abc$", "^a\\d$", "^(?:a)|(?:b)$", "^abc\\$", "^[a-z]+$"] {
            assert!(RegexMatcher::new(source).unwrap().uses_engine(), "{source}");
        }
    }

    #[test]
    fn shapes_match_like_the_regex() {
        let cases = [
            ("^(?:/health)$", "/health", true),
            ("^(?:/health)$", "/health/", false),
            ("^(.+)$", "", false),
            ("^(.+)$", "a\nb", false),
            ("^/billing/([^/]+)$", "/billing/a\nb", true),
            ("^/billing/([^/]+)$", "/billing/a/b", false),
            ("^/billing/([^/]+)$", "/billing/", false),
            ("^/admin(.*)$", "/admin", true),
            ("^/a\\.b(.*)$", "/axb", false),
            ("^ab(.*)ba$", "aba", false),
            ("^ab(.*)ba$", "abba", true),
        ];
        for (source, value, expected) in cases {
            assert_eq!(RegexMatcher::new(source).unwrap().is_match(value), expected, "{source} on {value:?}");
            assert_eq!(Regex::new(source).unwrap().is_match(value), expected, "regex-lite: {source} on {value:?}");
        }
    }

    fn literal_text() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-c/.\\n+$(|)-]{0,4}").unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Every source the shape parser accepts or refuses means the same as in regex-lite.
        #[test]
        fn agrees_with_regex_lite(
            prefix in literal_text(),
            suffix in literal_text(),
            middle in proptest::sample::select(vec!["", "(.*)", "(.+)", "([^/]*)", "([^/]+)", ".*", ".+", "[^/]+", "(a|b)", "[^/]"]),
            wrapped in any::<bool>(),
            value in proptest::string::string_regex("[a-c/.\\n+$(|)-]{0,10}").unwrap(),
        ) {
            let body = format!("{}{middle}{}", regex_lite::escape(&prefix), regex_lite::escape(&suffix));
            let source = if wrapped { format!("^(?:{body})$") } else { format!("^{body}$") };
            let regex = Regex::new(&source).unwrap();
            let matcher = RegexMatcher::new(&source).unwrap();
            // The value also tried with the pattern's own literals around it.
            for candidate in [value.clone(), format!("{prefix}{value}{suffix}"), format!("{prefix}{suffix}")] {
                prop_assert_eq!(matcher.is_match(&candidate), regex.is_match(&candidate), "{} on {:?}", source, candidate);
            }
        }
    }
}
