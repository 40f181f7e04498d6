//! The evaluator the filter runs. Built once from a decoded [`Table`] (regexes compiled, the
//! resource index laid out); then each decision looks up candidate policies by resource (exact
//! path, then literal prefixes in front of the regexes) instead of scanning every policy.
//!
//! Semantics (Ladon's `DoPoliciesAllow`): a policy applies when the action, the subject and
//! the resource each match one of its patterns and every condition holds; any applicable deny
//! decides at once; no applicable allow means deny.

// FxHash: the keys are the table's own strings, fixed at load; lookups cost a fraction of
// SipHash's on every request.
use rustc_hash::FxHashMap as HashMap;
use std::net::IpAddr;

use crate::format::{Condition, DecodeError, Effect, Network, Pattern, StrId, Table, Test};
use crate::matcher::RegexMatcher;

/// Attribute values of one request, by name (`roles`, `organizations`, `clientIP`, any claim).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    entries: Vec<(String, Vec<String>)>,
}

impl Attributes {
    pub fn new() -> Self {
        Attributes::default()
    }

    /// Sets `key` to `values`, replacing what it had.
    pub fn insert(&mut self, key: &str, values: Vec<String>) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = values,
            None => self.entries.push((key.to_string(), values)),
        }
    }

    pub fn with(mut self, key: &str, values: &[&str]) -> Self {
        self.insert(key, values.iter().map(|v| (*v).to_string()).collect());
        self
    }

    /// The values of `key`; empty when absent.
    pub fn get(&self, key: &str) -> &[String] {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice()).unwrap_or_default()
    }

    /// Keeps the attributes `keep` says yes to; it may also drop some of their values.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut Vec<String>) -> bool) {
        self.entries.retain_mut(|(name, values)| keep(name, values));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

/// The client's address as the proxy reports it (none when it reports none): the only source
/// of the `clientIP` attribute, which no token claim can supply.
#[derive(Clone, Copy)]
pub enum ClientAddress<'a> {
    Known(&'a [String]),
    /// Asked only when a condition that reads `clientIP` is evaluated (a hostcall in the
    /// filter, which most requests never need); the caller remembers the answer.
    Ask(&'a dyn Fn() -> &'a [String]),
}

impl<'a> ClientAddress<'a> {
    pub fn get(&self) -> &'a [String] {
        match self {
            ClientAddress::Known(values) => values,
            ClientAddress::Ask(ask) => ask(),
        }
    }
}

impl std::fmt::Debug for ClientAddress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAddress::Known(values) => f.debug_tuple("Known").field(values).finish(),
            ClientAddress::Ask(_) => f.write_str("Ask"),
        }
    }
}

/// What the evaluator is asked.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub subject: &'a str,
    pub action: &'a str,
    /// The normalised path: no query, no dot segments.
    pub resource: &'a str,
    pub attributes: &'a Attributes,
    pub client_address: ClientAddress<'a>,
}

/// The attribute name under which conditions read the client's address.
pub const CLIENT_IP: &str = "clientIP";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

/// The answer, with the policy that decided it (none for a default deny).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'t> {
    pub verdict: Verdict,
    pub policy: Option<&'t str>,
}

impl Decision<'_> {
    pub fn allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }
}

/// A condition prepared for evaluation: exact values split from regexes.
struct PreparedCondition {
    key: String,
    test: PreparedTest,
}

enum PreparedTest {
    /// Sorted string ids, and regex indexes.
    AnyMatches { exact: Vec<StrId>, regexes: Vec<usize> },
    Lacks { exact: Vec<StrId>, regexes: Vec<usize> },
    Owner,
    EqualsSubject,
    StringEqual(String),
    StringMatch(Matcher),
    Cidr(Vec<Network>),
    Boolean(bool),
}

enum Matcher {
    Exact(String),
    Regex(usize),
}

struct PreparedPolicy {
    id: String,
    effect: Effect,
    action_bits: u64,
    actions: Vec<Matcher>,
    subjects: Vec<Matcher>,
    conditions: Vec<PreparedCondition>,
}

pub struct Evaluator {
    policies: Vec<PreparedPolicy>,
    regexes: Vec<RegexMatcher>,
    /// Interned strings, to compare attribute values by id.
    string_ids: HashMap<String, StrId>,
    action_bits: HashMap<String, u64>,
    exact_resources: HashMap<String, Vec<u32>>,
    /// Regex resources by literal prefix: (policy, regex).
    prefixed_resources: HashMap<String, Vec<(u32, usize)>>,
    /// The distinct prefix lengths, ascending.
    prefix_lengths: Vec<usize>,
}

impl Evaluator {
    /// Decodes and prepares a table; the only failures are a bad table or a regex the engine
    /// refuses (the compiler validates every regex, so that means a foreign table).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::new(&Table::decode(bytes)?)
    }

    pub fn new(table: &Table) -> Result<Self, DecodeError> {
        let mut builder = Builder { table, regexes: Vec::new(), regex_of: HashMap::default() };
        let mut policies = Vec::with_capacity(table.policies.len());
        let mut exact_resources: HashMap<String, Vec<u32>> = HashMap::default();
        let mut prefixed_resources: HashMap<String, Vec<(u32, usize)>> = HashMap::default();
        for (index, policy) in table.policies.iter().enumerate() {
            let index = u32::try_from(index).map_err(|_| DecodeError::Malformed("too many policies".into()))?;
            for resource in &policy.resources {
                match resource {
                    Pattern::Exact(id) => exact_resources.entry(table.string(*id).to_string()).or_default().push(index),
                    Pattern::Regex { source, prefix } => {
                        let regex = builder.regex(*source)?;
                        prefixed_resources.entry(table.string(*prefix).to_string()).or_default().push((index, regex));
                    }
                }
            }
            policies.push(PreparedPolicy {
                id: table.string(policy.id).to_string(),
                effect: policy.effect,
                action_bits: policy.action_bits,
                actions: policy.actions.iter().map(|p| builder.matcher(p)).collect::<Result<_, _>>()?,
                subjects: policy.subjects.iter().map(|p| builder.matcher(p)).collect::<Result<_, _>>()?,
                conditions: policy.conditions.iter().map(|c| builder.condition(c)).collect::<Result<_, _>>()?,
            });
        }
        let mut prefix_lengths: Vec<usize> = prefixed_resources.keys().map(String::len).collect();
        prefix_lengths.sort_unstable();
        prefix_lengths.dedup();
        let action_bits = table
            .actions
            .iter()
            .enumerate()
            .map(|(bit, id)| (table.string(*id).to_string(), 1u64 << bit))
            .collect();
        let string_ids = table.strings.iter().enumerate().map(|(id, s)| (s.clone(), id as StrId)).collect();
        Ok(Evaluator {
            policies,
            regexes: builder.regexes,
            string_ids,
            action_bits,
            exact_resources,
            prefixed_resources,
            prefix_lengths,
        })
    }

    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }

    pub fn evaluate(&self, request: &AccessRequest<'_>) -> Decision<'_> {
        let mut allow: Option<&str> = None;
        for index in self.candidates(request.resource) {
            let Some(policy) = self.policies.get(index as usize) else { continue };
            if !self.applies(policy, request) {
                continue;
            }
            match policy.effect {
                Effect::Deny => return Decision { verdict: Verdict::Deny, policy: Some(&policy.id) },
                Effect::Allow => {
                    allow.get_or_insert(&policy.id);
                }
            }
        }
        match allow {
            Some(id) => Decision { verdict: Verdict::Allow, policy: Some(id) },
            None => Decision { verdict: Verdict::Deny, policy: None },
        }
    }

    /// Policies whose resource patterns match, in policy (id) order, each once.
    fn candidates(&self, resource: &str) -> Vec<u32> {
        let mut found: Vec<u32> = self.exact_resources.get(resource).cloned().unwrap_or_default();
        for &length in &self.prefix_lengths {
            let Some(prefix) = resource.get(..length) else { continue };
            for &(policy, regex) in self.prefixed_resources.get(prefix).map(Vec::as_slice).unwrap_or_default() {
                if self.regexes.get(regex).is_some_and(|re| re.is_match(resource)) {
                    found.push(policy);
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    fn applies(&self, policy: &PreparedPolicy, request: &AccessRequest<'_>) -> bool {
        let action = match self.action_bits.get(request.action) {
            Some(bit) => policy.action_bits & bit != 0,
            None => policy.actions.iter().any(|m| self.matches(m, request.action)),
        };
        action
            && policy.subjects.iter().any(|m| self.matches(m, request.subject))
            && policy.conditions.iter().all(|c| self.holds(c, request))
    }

    fn matches(&self, matcher: &Matcher, value: &str) -> bool {
        match matcher {
            Matcher::Exact(text) => text == value,
            Matcher::Regex(index) => self.regexes.get(*index).is_some_and(|re| re.is_match(value)),
        }
    }

    fn any_matches(&self, values: &[String], exact: &[StrId], regexes: &[usize]) -> bool {
        values.iter().any(|value| {
            let by_id = self.string_ids.get(value.as_str()).is_some_and(|id| exact.binary_search(id).is_ok());
            by_id || regexes.iter().any(|r| self.regexes.get(*r).is_some_and(|re| re.is_match(value)))
        })
    }

    fn holds(&self, condition: &PreparedCondition, request: &AccessRequest<'_>) -> bool {
        let values = if condition.key == CLIENT_IP { request.client_address.get() } else { request.attributes.get(&condition.key) };
        let single = match values {
            [one] => Some(one.as_str()),
            _ => None,
        };
        match &condition.test {
            PreparedTest::AnyMatches { exact, regexes } => self.any_matches(values, exact, regexes),
            PreparedTest::Lacks { exact, regexes } => !self.any_matches(values, exact, regexes),
            PreparedTest::Owner => values.is_empty() || single == Some(request.subject),
            PreparedTest::EqualsSubject => single == Some(request.subject),
            PreparedTest::StringEqual(expected) => single == Some(expected.as_str()),
            PreparedTest::StringMatch(matcher) => single.is_some_and(|v| self.matches(matcher, v)),
            PreparedTest::Cidr(networks) => single.is_some_and(|v| in_networks(v, networks)),
            PreparedTest::Boolean(expected) => single == Some(if *expected { "true" } else { "false" }),
        }
    }
}

/// Parses a client address (`10.0.0.7`, `10.0.0.7:51234`, `[::1]:80`) and checks membership.
pub fn in_networks(address: &str, networks: &[Network]) -> bool {
    let Some(ip) = parse_ip(address) else { return false };
    networks.iter().any(|network| network_contains(network, ip))
}

pub fn parse_ip(address: &str) -> Option<IpAddr> {
    if let Ok(ip) = address.parse::<IpAddr>() {
        return Some(ip);
    }
    address.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

pub fn network_contains(network: &Network, ip: IpAddr) -> bool {
    // An IPv4-mapped IPv6 address (::ffff:10.0.0.7) is the IPv4 address it carries.
    let (bytes, width): (Vec<u8>, usize) = match (ip, network.v4) {
        (IpAddr::V4(v4), true) => (v4.octets().to_vec(), 32),
        (IpAddr::V6(v6), true) => match v6.to_ipv4_mapped() {
            Some(v4) => (v4.octets().to_vec(), 32),
            None => return false,
        },
        (IpAddr::V6(v6), false) => (v6.octets().to_vec(), 128),
        (IpAddr::V4(_), false) => return false,
    };
    let prefix = usize::from(network.prefix_len).min(width);
    (0..prefix).all(|bit| {
        let mask = 0x80u8 >> (bit % 8);
        let ours = bytes.get(bit / 8).map(|b| b & mask);
        let theirs = network.address.get(bit / 8).map(|b| b & mask);
        ours.is_some() && ours == theirs
    })
}

struct Builder<'t> {
    table: &'t Table,
    regexes: Vec<RegexMatcher>,
    regex_of: HashMap<StrId, usize>,
}

impl Builder<'_> {
    fn regex(&mut self, source: StrId) -> Result<usize, DecodeError> {
        if let Some(index) = self.regex_of.get(&source) {
            return Ok(*index);
        }
        let text = self.table.string(source);
        let regex = RegexMatcher::new(text).map_err(|e| DecodeError::Malformed(format!("regex {text:?}: {e}")))?;
        self.regexes.push(regex);
        let index = self.regexes.len() - 1;
        self.regex_of.insert(source, index);
        Ok(index)
    }

    fn matcher(&mut self, pattern: &Pattern) -> Result<Matcher, DecodeError> {
        Ok(match pattern {
            Pattern::Exact(id) => Matcher::Exact(self.table.string(*id).to_string()),
            Pattern::Regex { source, .. } => Matcher::Regex(self.regex(*source)?),
        })
    }

    /// Exact values as sorted interned ids (equal strings share one id: the table stores each
    /// string once), and regex indexes.
    fn value_set(&mut self, patterns: &[Pattern]) -> Result<(Vec<StrId>, Vec<usize>), DecodeError> {
        let mut exact = Vec::new();
        let mut regexes = Vec::new();
        for pattern in patterns {
            match pattern {
                Pattern::Exact(id) => exact.push(*id),
                Pattern::Regex { source, .. } => regexes.push(self.regex(*source)?),
            }
        }
        exact.sort_unstable();
        exact.dedup();
        Ok((exact, regexes))
    }

    fn condition(&mut self, condition: &Condition) -> Result<PreparedCondition, DecodeError> {
        let test = match &condition.test {
            Test::AnyMatches(patterns) => {
                let (exact, regexes) = self.value_set(patterns)?;
                PreparedTest::AnyMatches { exact, regexes }
            }
            Test::Lacks(patterns) => {
                let (exact, regexes) = self.value_set(patterns)?;
                PreparedTest::Lacks { exact, regexes }
            }
            Test::Owner => PreparedTest::Owner,
            Test::EqualsSubject => PreparedTest::EqualsSubject,
            Test::StringEqual(id) => PreparedTest::StringEqual(self.table.string(*id).to_string()),
            Test::StringMatch(pattern) => PreparedTest::StringMatch(self.matcher(pattern)?),
            Test::Cidr(networks) => PreparedTest::Cidr(networks.clone()),
            Test::Boolean(value) => PreparedTest::Boolean(*value),
        };
        Ok(PreparedCondition { key: self.table.string(condition.key).to_string(), test })
    }
}
