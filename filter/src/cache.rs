//! A bounded cache of verified tokens, keyed by the whole token, so a repeated token costs no
//! signature check. An entry is used only while the token is unexpired (checked on every hit,
//! on the host clock); the oldest entry makes room for a new one.

use std::collections::VecDeque;
use std::rc::Rc;

use rustc_hash::FxHashMap;

use crate::jwt::Verified;

pub struct TokenCache {
    capacity: usize,
    /// FxHash rather than SipHash: only verified tokens become keys, so nobody can choose
    /// colliding ones, and hashing a 600-byte token with SipHash cost more than the lookup.
    entries: FxHashMap<String, Rc<Verified>>,
    order: VecDeque<String>,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache { capacity, entries: FxHashMap::default(), order: VecDeque::new() }
    }

    /// The verified token, if cached and not expired at `now` (with `skew` seconds).
    pub fn get(&mut self, token: &str, now: u64, skew: u64) -> Option<Rc<Verified>> {
        let entry = self.entries.get(token)?;
        if now > entry.expires_at.saturating_add(skew) {
            self.entries.remove(token);
            self.order.retain(|t| t != token);
            return None;
        }
        Some(Rc::clone(entry))
    }

    pub fn insert(&mut self, token: &str, verified: Rc<Verified>) {
        if self.capacity == 0 || self.entries.contains_key(token) {
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        self.order.push_back(token.to_string());
        self.entries.insert(token.to_string(), verified);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(expires_at: u64) -> Rc<Verified> {
        Rc::new(Verified {
            claims: serde_json::Map::new(),
            expires_at,
            provider: "p".into(),
            subject: "s".into(),
            attributes: decision_table::Attributes::new(),
            forwarded: Default::default(),
        })
    }

    #[test]
    fn entries_expire_with_the_token_and_the_cache_stays_bounded() {
        let mut cache = TokenCache::new(2);
        cache.insert("a", verified(100));
        assert!(cache.get("a", 100, 0).is_some());
        assert!(cache.get("a", 101, 0).is_none(), "expired on the host clock");
        assert!(cache.is_empty());
        cache.insert("a", verified(500));
        cache.insert("b", verified(500));
        cache.insert("c", verified(500));
        assert_eq!(cache.len(), 2);
        assert!(cache.get("a", 0, 0).is_none(), "the oldest made room");
        assert!(cache.get("c", 0, 0).is_some());
    }
}
