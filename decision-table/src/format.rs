//! The table's bytes: `PWDT` magic, format version (u16 LE), SHA-256 of the payload, then
//! the payload (postcard). Same table, same bytes: every list is in a defined order and
//! strings are interned once. Decoding untrusted bytes never panics, and every reference is
//! checked before the evaluator sees it.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

pub const MAGIC: [u8; 4] = *b"PWDT";
pub const FORMAT_VERSION: u16 = 1;
const HEADER_LEN: usize = 4 + 2 + 32;
/// Where the header holds the SHA-256 of the payload.
const HASH: std::ops::Range<usize> = 6..HEADER_LEN;
/// At most 64 distinct actions, one bit each.
pub const MAX_ACTIONS: usize = 64;

/// Index into [`Table::strings`].
pub type StrId = u32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Every string the table names, each once, in first-use order.
    pub strings: Vec<String>,
    /// The action universe (the mapped methods' actions and the policies' literal actions);
    /// bit `i` of [`Policy::action_bits`] stands for `actions[i]`.
    pub actions: Vec<StrId>,
    /// Sorted by id; ids are unique.
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub id: StrId,
    pub effect: Effect,
    /// Which actions of the universe this policy's action patterns match, precomputed.
    pub action_bits: u64,
    /// Kept for actions outside the universe (matched at run time).
    pub actions: Vec<Pattern>,
    pub subjects: Vec<Pattern>,
    pub resources: Vec<Pattern>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pattern {
    Exact(StrId),
    /// An anchored regex and the literal prefix every match starts with.
    Regex { source: StrId, prefix: StrId },
}

/// A condition on the request attribute named `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub key: StrId,
    pub test: Test,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Test {
    /// Roles, scopes, organisations, namespaces: some value fully matches some pattern.
    AnyMatches(Vec<Pattern>),
    /// No value matches any pattern (required scopes compile to a deny with this).
    Lacks(Vec<Pattern>),
    /// Holds when the attribute is absent, or is exactly one value equal to the subject.
    Owner,
    /// Exactly one value, equal to the subject.
    EqualsSubject,
    /// Exactly one value, equal to this string.
    StringEqual(StrId),
    /// Exactly one value, fully matching this pattern.
    StringMatch(Pattern),
    /// Exactly one value, an IP address inside one of these networks.
    Cidr(Vec<Network>),
    /// Exactly one value, `true` or `false`, equal to this.
    Boolean(bool),
}

/// An IP network: a v4 address is stored in the first 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub v4: bool,
    pub address: [u8; 16],
    pub prefix_len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("not a decision table (no PWDT magic); was it produced by policy-compiler?")]
    NotATable,
    #[error("decision table format version {found} is not supported (this module reads version {FORMAT_VERSION}); recompile the policies with a matching policy-compiler")]
    UnsupportedVersion { found: u16 },
    #[error("the decision table is corrupt: its content hash does not match")]
    HashMismatch,
    #[error("the decision table is malformed: {0}")]
    Malformed(String),
    #[error("the decision table is not valid base64: {0}")]
    Base64(String),
    #[error("the bundle's table_hash does not match its table")]
    StatedHashMismatch,
}

impl Table {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain structs and vectors into memory cannot fail; an empty payload
        // would be refused by `decode`, never accepted.
        let payload = postcard::to_allocvec(self).unwrap_or_default();
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&Sha256::digest(&payload));
        bytes.extend_from_slice(&payload);
        bytes
    }

    pub fn encode_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.encode())
    }

    pub fn decode(bytes: &[u8]) -> Result<Table, DecodeError> {
        let magic = bytes.get(..4).ok_or(DecodeError::NotATable)?;
        if magic != MAGIC {
            return Err(DecodeError::NotATable);
        }
        let version = bytes.get(4..6).and_then(|v| v.try_into().ok()).map(u16::from_le_bytes);
        let version = version.ok_or(DecodeError::Malformed("truncated header".into()))?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        let hash = bytes.get(HASH).ok_or(DecodeError::Malformed("truncated header".into()))?;
        let payload = bytes.get(HEADER_LEN..).unwrap_or_default();
        if Sha256::digest(payload).as_slice() != hash {
            return Err(DecodeError::HashMismatch);
        }
        let (table, rest): (Table, &[u8]) =
            postcard::take_from_bytes(payload).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(DecodeError::Malformed(format!("{} trailing bytes", rest.len())));
        }
        table.validate()?;
        Ok(table)
    }

    pub fn decode_base64(text: &str) -> Result<Table, DecodeError> {
        Table::decode(&Self::base64_bytes(text)?)
    }

    /// Decodes a bundle's table (base64) and checks it is the one the bundle's `table_hash`
    /// names. The hash is read from the checked header, so the module never re-encodes the
    /// table (which would link the whole encoder into it).
    pub fn decode_bundled(text: &str, table_hash: &str) -> Result<Table, DecodeError> {
        let bytes = Self::base64_bytes(text)?;
        let table = Table::decode(&bytes)?;
        match bytes.get(HASH) {
            Some(hash) if hex(hash) == table_hash => Ok(table),
            _ => Err(DecodeError::StatedHashMismatch),
        }
    }

    fn base64_bytes(text: &str) -> Result<Vec<u8>, DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|e| DecodeError::Base64(e.to_string()))
    }

    /// The content hash, as lower-case hex: the table's identity in logs and `inspect`.
    pub fn content_hash(&self) -> String {
        hex(&Sha256::digest(postcard::to_allocvec(self).unwrap_or_default()))
    }

    pub fn string(&self, id: StrId) -> &str {
        self.strings.get(id as usize).map(String::as_str).unwrap_or_default()
    }

    /// Every index in range, policies sorted by unique id, at most 64 actions.
    fn validate(&self) -> Result<(), DecodeError> {
        let strings = self.strings.len();
        let bad = |what: &str| DecodeError::Malformed(format!("{what} refers to a missing string"));
        let check = |id: StrId, what: &str| if (id as usize) < strings { Ok(()) } else { Err(bad(what)) };
        let check_pattern = |p: &Pattern| match p {
            Pattern::Exact(id) => check(*id, "a pattern"),
            Pattern::Regex { source, prefix } => check(*source, "a pattern").and(check(*prefix, "a pattern")),
        };
        if self.actions.len() > MAX_ACTIONS {
            return Err(DecodeError::Malformed(format!("{} actions, at most {MAX_ACTIONS}", self.actions.len())));
        }
        for id in &self.actions {
            check(*id, "an action")?;
        }
        for pair in self.policies.windows(2) {
            if let [a, b] = pair
                && self.string(a.id) >= self.string(b.id)
            {
                return Err(DecodeError::Malformed("policies are not sorted by unique id".into()));
            }
        }
        for policy in &self.policies {
            check(policy.id, "a policy id")?;
            let patterns = policy.actions.iter().chain(&policy.subjects).chain(&policy.resources);
            for pattern in patterns {
                check_pattern(pattern)?;
            }
            for condition in &policy.conditions {
                check(condition.key, "a condition")?;
                match &condition.test {
                    Test::AnyMatches(patterns) | Test::Lacks(patterns) => patterns.iter().try_for_each(check_pattern)?,
                    Test::StringEqual(id) => check(*id, "a condition")?,
                    Test::StringMatch(pattern) => check_pattern(pattern)?,
                    Test::Cidr(networks) => {
                        if networks.iter().any(|n| n.prefix_len > if n.v4 { 32 } else { 128 }) {
                            return Err(DecodeError::Malformed("a network prefix is too long".into()));
                        }
                    }
                    Test::Owner | Test::EqualsSubject | Test::Boolean(_) => {}
                }
            }
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table {
            strings: vec!["p1".into(), "api:read".into(), "/a".into(), "<.*>".into()],
            actions: vec![1],
            policies: vec![Policy {
                id: 0,
                effect: Effect::Allow,
                action_bits: 1,
                actions: vec![Pattern::Exact(1)],
                subjects: vec![Pattern::Exact(3)],
                resources: vec![Pattern::Exact(2)],
                conditions: vec![],
            }],
        }
    }

    #[test]
    fn round_trips_through_bytes_and_base64() {
        let table = sample();
        assert_eq!(Table::decode(&table.encode()).unwrap(), table);
        assert_eq!(Table::decode_base64(&table.encode_base64()).unwrap(), table);
        assert_eq!(table.encode(), sample().encode(), "deterministic");
    }

    #[test]
    fn a_bundled_table_must_be_the_one_its_hash_names() {
        let table = sample();
        let text = table.encode_base64();
        assert_eq!(Table::decode_bundled(&text, &table.content_hash()), Ok(table.clone()));
        let mut other = sample();
        other.strings.push("extra".into());
        assert_eq!(Table::decode_bundled(&text, &other.content_hash()), Err(DecodeError::StatedHashMismatch));
        assert_eq!(Table::decode_bundled(&text, ""), Err(DecodeError::StatedHashMismatch));
    }

    #[test]
    fn wrong_magic_version_hash_and_references_are_clear_errors() {
        let bytes = sample().encode();
        assert_eq!(Table::decode(b"nope"), Err(DecodeError::NotATable));
        let mut future = bytes.clone();
        future[4] = 9;
        assert_eq!(Table::decode(&future), Err(DecodeError::UnsupportedVersion { found: 9 }));
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(Table::decode(&flipped), Err(DecodeError::HashMismatch));

        let mut dangling = sample();
        dangling.policies[0].resources = vec![Pattern::Exact(99)];
        assert!(matches!(Table::decode(&dangling.encode()), Err(DecodeError::Malformed(_))));
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Table::decode(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            framed.extend_from_slice(&Sha256::digest(&bytes));
            framed.extend_from_slice(&bytes);
            let _ = Table::decode(&framed);
        }
    }
}
