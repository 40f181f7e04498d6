//! A bounded cache of verified tokens, keyed by the whole token, so a repeated token costs no
//! signature check. An entry is used only while the token is unexpired (checked on every hit,
//! on the host clock); the oldest entry makes room for a new one.
//!
//! Beside it, the tokens whose signature failed, by SHA-256 (a forger chooses them, so they
//! are neither stored whole nor hashed with FxHash), for [`REJECTED_SECONDS`]: a replayed
//! forgery costs a hash instead of a signature check.

use std::collections::VecDeque;
use std::rc::Rc;

use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use decision_table::bundle::TenantEntry;

use crate::jwt::{Rejection, Verified};

/// How long a token whose signature failed is remembered, in seconds of host time.
pub const REJECTED_SECONDS: u64 = 60;

pub struct TokenCache {
    capacity: usize,
    /// FxHash rather than SipHash: only verified tokens become keys, so nobody can choose
    /// colliding ones, and hashing a 600-byte token with SipHash cost more than the lookup.
    entries: FxHashMap<String, Rc<Verified>>,
    order: VecDeque<String>,
    rejected_capacity: usize,
    /// SHA-256 of a rejected token to the host time it is remembered until, and why;
    /// oldest first in `rejected_order`.
    rejected: FxHashMap<[u8; 32], (u64, Rejection)>,
    rejected_order: VecDeque<[u8; 32]>,
    /// The answer of the introspection just made for a token, for the request that waited
    /// for it (the one pass after the answer; the cache may hold nothing).
    fresh: Option<(String, Result<Rc<Verified>, Rejection>)>,
    /// Minted internal tokens by identity ([`crate::mint::Minter::identity`]), with expiry.
    minted: FxHashMap<String, (Rc<str>, u64)>,
    /// The callouts requests wait for, by callout token.
    pending: FxHashMap<u32, Pending>,
    /// The tenant-mapping endpoint's answers by provider and authorization id
    /// ([`tenant_key`]), with the host time they are used until; bounded like the tokens.
    tenants: FxHashMap<String, (u64, Option<TenantEntry>)>,
    /// A mapping the endpoint could not give, for the one pass after its answer.
    tenant_unavailable: Option<String>,
    /// Callouts already answered for the request being decided again (0: a new request), so
    /// one request never calls out without end ([`MAX_CALLOUTS_PER_REQUEST`]).
    pub round: u32,
}

/// A request that would make more callouts than this is answered 503: a first-success chain
/// of credentials that each need an endpoint, answered unusably, would otherwise ask them in
/// turn forever.
pub const MAX_CALLOUTS_PER_REQUEST: u32 = 4;

/// At most this many requests wait for a callout on a worker; more are answered 503.
const MAX_PENDING: usize = 4096;

/// A callout a request waits for: what it checks, and when it started (host ms), for the
/// latency histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub check: Check,
    pub started_ms: u64,
    /// The callouts the request had made before this one.
    pub round: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A credential (its cache key, [`credential_key`]) by the provider's endpoint.
    Credential { key: String, provider_index: usize },
    /// A caller's tenant ([`tenant_key`]).
    Tenant { key: String },
}

/// Pending callouts older than this (host ms) are forgotten: their request is gone.
const PENDING_MS: u64 = 120_000;

/// The key a credential is cached by: a token itself (only verified tokens become keys), a
/// Basic credential by its SHA-256, so no password is kept. The NUL cannot stand in a
/// header value, so no token collides with it.
pub fn credential_key(token: &str, basic: bool) -> std::borrow::Cow<'_, str> {
    if basic {
        let digest = Sha256::digest(token.as_bytes());
        std::borrow::Cow::Owned(format!("\0basic\0{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>()))
    } else {
        std::borrow::Cow::Borrowed(token)
    }
}

/// The key a tenant mapping is cached by: the provider and the authorization id.
pub fn tenant_key(provider: &str, authorization_id: &str) -> String {
    format!("{provider}\0{authorization_id}")
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache::with_rejected(capacity, 0)
    }

    /// A cache of `capacity` verified tokens and `rejected_capacity` rejected ones.
    pub fn with_rejected(capacity: usize, rejected_capacity: usize) -> Self {
        TokenCache {
            capacity,
            entries: FxHashMap::default(),
            order: VecDeque::new(),
            rejected_capacity,
            rejected: FxHashMap::default(),
            rejected_order: VecDeque::new(),
            minted: FxHashMap::default(),
            fresh: None,
            pending: FxHashMap::default(),
            tenants: FxHashMap::default(),
            tenant_unavailable: None,
            round: 0,
        }
    }

    /// Whether the request being decided may make another callout: within
    /// [`MAX_CALLOUTS_PER_REQUEST`], and while fewer than [`MAX_PENDING`] requests wait.
    pub fn may_call_out(&mut self, now_ms: u64) -> bool {
        if self.pending.len() >= MAX_PENDING {
            self.pending.retain(|_, pending| now_ms.saturating_sub(pending.started_ms) < PENDING_MS);
        }
        self.round < MAX_CALLOUTS_PER_REQUEST && self.pending.len() < MAX_PENDING
    }

    /// Remembers that the request being decided waits for `callout`.
    pub fn wait_for(&mut self, callout: u32, check: Check, now_ms: u64) {
        self.pending.insert(callout, Pending { check, started_ms: now_ms, round: self.round });
    }

    /// Forgets a callout whose request ended before its answer.
    pub fn forget(&mut self, callout: u32) {
        self.pending.remove(&callout);
    }

    /// Drops the answer left for the pass after a callout, once that pass is over: it is for
    /// that request only.
    pub fn clear_fresh(&mut self) {
        self.fresh = None;
        self.tenant_unavailable = None;
    }

    /// Forgets the cached acceptance of `token` (its endpoint refused it since).
    pub fn remove(&mut self, token: &str) {
        if self.entries.remove(token).is_some() {
            self.order.retain(|t| t != token);
        }
    }

    /// What `callout` was for, once.
    pub fn answered(&mut self, callout: u32) -> Option<Pending> {
        self.pending.remove(&callout)
    }

    /// The tenant-mapping endpoint's answer for `key` at `now`: `Some(Ok((entry, until)))`
    /// while cached (no entry: the endpoint maps nobody), `Some(Err(()))` once after it could
    /// not answer, `None` when it must be asked.
    pub fn tenant(&mut self, key: &str, now: u64) -> Option<Result<(Option<TenantEntry>, u64), ()>> {
        if self.tenant_unavailable.as_deref() == Some(key) {
            self.tenant_unavailable = None;
            return Some(Err(()));
        }
        match self.tenants.get(key) {
            Some((until, entry)) if now < *until => Some(Ok((entry.clone(), *until))),
            Some(_) => {
                self.tenants.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers the endpoint's mapping for `key` until `until` (`Err`: it gave none, for
    /// the next pass only).
    pub fn set_tenant(&mut self, key: &str, answer: Result<Option<TenantEntry>, ()>, now: u64, until: u64) {
        match answer {
            Ok(entry) => {
                if self.tenants.len() >= self.capacity.max(1) {
                    self.tenants.retain(|_, (until, _)| now < *until);
                    if self.tenants.len() >= self.capacity.max(1) {
                        self.tenants.clear();
                    }
                }
                self.tenants.insert(key.to_string(), (until, entry));
            }
            Err(()) => self.tenant_unavailable = Some(key.to_string()),
        }
    }

    /// Puts `verified` in place of what is cached for `token` (the same caller, now with
    /// its tenant), if anything is.
    pub fn replace(&mut self, token: &str, verified: Rc<Verified>) {
        if let Some(entry) = self.entries.get_mut(token) {
            *entry = verified;
        }
    }

    /// Why `token` was refused, if it was in the last [`REJECTED_SECONDS`] (a failed
    /// signature) or its introspection said inactive within its `negative_seconds`.
    pub fn was_rejected(&self, token: &str, now: u64) -> Option<Rejection> {
        if self.rejected.is_empty() {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.rejected.get(&digest).filter(|(until, _)| now < *until).map(|(_, why)| why.clone())
    }

    /// Remembers that `token`'s signature failed at `now`, for [`REJECTED_SECONDS`].
    pub fn reject(&mut self, token: &str, now: u64) {
        self.reject_until(token, now, now.saturating_add(REJECTED_SECONDS), Rejection::BadSignature);
    }

    /// Remembers a refusal of `token` until `until`, dropping what expired or, when full,
    /// the oldest.
    pub fn reject_until(&mut self, token: &str, now: u64, until: u64, why: Rejection) {
        if self.rejected_capacity == 0 {
            return;
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        while let Some(oldest) = self.rejected_order.front().copied() {
            let expired = self.rejected.get(&oldest).is_none_or(|(until, _)| now >= *until);
            if !expired && self.rejected.len() < self.rejected_capacity {
                break;
            }
            self.rejected_order.pop_front();
            self.rejected.remove(&oldest);
        }
        if self.rejected.insert(digest, (until, why)).is_none() {
            self.rejected_order.push_back(digest);
        }
    }

    /// Leaves the introspection answer for `token` to the pass that follows it.
    pub fn set_fresh(&mut self, token: &str, answer: Result<Rc<Verified>, Rejection>) {
        self.fresh = Some((token.to_string(), answer));
    }

    /// The introspection answer left for `token`, once.
    pub fn take_fresh(&mut self, token: &str) -> Option<Result<Rc<Verified>, Rejection>> {
        match &self.fresh {
            Some((fresh, _)) if fresh == token => self.fresh.take().map(|(_, answer)| answer),
            _ => None,
        }
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

    /// The internal token for `caller` at `now`: the one minted before while it has more than
    /// ten seconds left, else a new one. Bounded like the token cache (expired ones go first,
    /// then all: a flood of identities costs signatures, never memory).
    pub fn minted(&mut self, minter: &crate::mint::Minter, caller: &Verified, now: u64) -> Rc<str> {
        let identity = crate::mint::Minter::identity(caller);
        if let Some((token, expires)) = self.minted.get(&identity)
            && now.saturating_add(10) < *expires
        {
            return Rc::clone(token);
        }
        if self.minted.len() >= self.capacity.max(1) {
            self.minted.retain(|_, (_, expires)| now.saturating_add(10) < *expires);
            if self.minted.len() >= self.capacity.max(1) {
                self.minted.clear();
            }
        }
        let (token, expires) = minter.mint(caller, &identity, now);
        let token: Rc<str> = token.into();
        self.minted.insert(identity, (Rc::clone(&token), expires));
        token
    }

    /// Drops the cached tokens `keep` says no to (those signed by a key the identity provider
    /// withdrew).
    pub fn retain(&mut self, keep: impl Fn(&Verified) -> bool) {
        self.entries.retain(|_, verified| keep(verified));
        let entries = &self.entries;
        self.order.retain(|token| entries.contains_key(token));
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
            provider_index: 0,
            key_fingerprint: [0; 32],
            subject: "s".into(),
            attributes: decision_table::Attributes::new(),
            forwarded: Default::default(),
            tenant_mapped: false,
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

    #[test]
    fn rejected_tokens_are_remembered_for_a_minute_and_stay_bounded() {
        let mut cache = TokenCache::with_rejected(2, 2);
        cache.reject("forged-1", 1000);
        assert!(cache.was_rejected("forged-1", 1000 + REJECTED_SECONDS - 1).is_some());
        assert!(cache.was_rejected("forged-1", 1000 + REJECTED_SECONDS).is_none(), "forgotten after a minute");
        assert!(cache.was_rejected("forged-2", 1000).is_none());
        cache.reject("forged-2", 1001);
        cache.reject("forged-3", 1002);
        assert!(cache.was_rejected("forged-1", 1002).is_none(), "the oldest made room");
        assert!(cache.was_rejected("forged-2", 1002).is_some() && cache.was_rejected("forged-3", 1002).is_some());
        assert_eq!(cache.rejected.len(), 2);
        assert!(cache.is_empty(), "a rejected token is never a verified one");
        let mut off = TokenCache::new(2);
        off.reject("forged-1", 1000);
        assert!(off.was_rejected("forged-1", 1000).is_none());
    }
}
