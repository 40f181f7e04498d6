//! Documents fetched from the identity provider at run time: a provider's JWKS, and its
//! revocation list. Off the request path: everything here runs in `on_tick` and in the
//! callout's answer, never while a request waits.
//!
//! One fetch serves every worker. Each document has two shared-data entries: a small `meta`
//! (the generation of the document, when it was fetched, when it is due again, and a lease)
//! and the `body`. A worker that finds the document due takes the lease by writing `meta`
//! with compare-and-swap; only the lease holder fetches. Every worker reads `meta` on each
//! tick and, when the generation moved, reads the body and installs it. A fetch that fails,
//! times out, answers non-200, is too large or does not parse keeps the last good document,
//! and is retried after `retry_seconds`.
//!
//! Compare-and-swap differs between the hosts, so every write passes the `cas` its read
//! returned: Envoy writes unconditionally at cas 0 (proxy-wasm-cpp-host `SharedData::set`),
//! ngx_wasm_module only when the key is absent (`ngx_wa_shm_kv_set_locked`). The first
//! lease on Envoy can therefore be taken twice; two fetches of the same document are
//! harmless.

use decision_table::bundle::{Endpoint, Revocation};
use sha2::{Digest, Sha256};

use crate::cache::TokenCache;
use crate::config::Loaded;
use crate::host::Level;
use crate::jwks;
use crate::jwt::Revoked;

/// What the remote side needs of the proxy (the adapter implements it with hostcalls, or with
/// a map of its own where the workers cannot share data).
pub trait Fetcher {
    /// The host clock, in milliseconds.
    fn now_ms(&self) -> u64;
    /// A shared entry and its compare-and-swap value.
    fn shared_get(&mut self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes when `cas` is the entry's current one; false when another worker wrote first.
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> bool;
    /// Starts `GET` of the endpoint; the callout's token.
    fn dispatch(&mut self, endpoint: &Endpoint) -> Result<u32, String>;
    fn log(&mut self, level: Level, message: &str);
    fn count(&mut self, name: &str);
    fn gauge(&mut self, name: &str, value: u64);
}

/// A callout's answer. `status` is `None` when the callout failed (timeout, reset).
pub struct Answer {
    pub status: Option<u16>,
    pub cache_control: Option<String>,
    pub body_size: usize,
    /// The body, read only when it is within the endpoint's `max_bytes`.
    pub body: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Keys,
    Revocations,
    /// The issuer's OpenID Connect configuration, for the `jwks_uri` in it.
    Discovery,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Keys => "key set",
            Kind::Revocations => "revocation list",
            Kind::Discovery => "openid configuration",
        }
    }
}

pub mod metrics {
    pub const FETCHES: &str = "policy_filter_remote_fetches";
    pub const FETCH_FAILURES: &str = "policy_filter_remote_fetch_failures";
    pub const INSTALLS: &str = "policy_filter_remote_installs";
}

pub struct Source {
    pub kind: Kind,
    pub provider: usize,
    pub endpoint: Endpoint,
    /// For a key set: early fetches for unknown `kid`s at most once per this many ms.
    early_interval_ms: u64,
    /// Shared-data key prefix: a hash of what is fetched, so that two configurations that
    /// fetch the same document share it, and no two others collide.
    key: String,
    /// The generation installed in this worker (0: none).
    installed: u64,
    /// For a discovery source: the JWKS path its configuration names.
    discovered: Option<String>,
    /// Ticks in a row on which `meta` named a body that could not be read.
    missing_body_ticks: u8,
    /// SHA-256 of the installed document: a refresh that brings the same bytes (the usual
    /// case) is neither parsed nor installed again, so it costs no key setup.
    installed_digest: [u8; 32],
    in_flight: Option<InFlight>,
}

struct InFlight {
    token: u32,
    /// A callout the host never answers (it should) is given up at this time.
    deadline_ms: u64,
}

/// The shared `meta` entry of a document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Meta {
    generation: u64,
    fetched_at_ms: u64,
    next_fetch_ms: u64,
    lease_until_ms: u64,
    last_early_ms: u64,
}

const META_MAGIC: &[u8; 4] = b"PFM1";

impl Meta {
    fn encode(&self) -> Vec<u8> {
        let mut out = META_MAGIC.to_vec();
        for value in [self.generation, self.fetched_at_ms, self.next_fetch_ms, self.lease_until_ms, self.last_early_ms] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Meta> {
        let rest = bytes.strip_prefix(META_MAGIC)?;
        let mut values = rest.chunks_exact(8).map(|chunk| chunk.try_into().map(u64::from_le_bytes).unwrap_or_default());
        let meta = Meta {
            generation: values.next()?,
            fetched_at_ms: values.next()?,
            next_fetch_ms: values.next()?,
            lease_until_ms: values.next()?,
            last_early_ms: values.next()?,
        };
        (rest.len() == 40).then_some(meta)
    }
}

/// The documents of every provider, fetched and installed.
pub struct Remote {
    pub sources: Vec<Source>,
}

impl Remote {
    pub fn new(loaded: &Loaded) -> Remote {
        let mut sources = Vec::new();
        for (provider, keys) in loaded.providers.iter().enumerate() {
            if let Some(jwks) = &keys.jwks {
                let mut keys = Source::new(Kind::Keys, provider, &jwks.endpoint, jwks.unknown_kid_seconds);
                if jwks.discovery {
                    sources.push(Source::new(Kind::Discovery, provider, &jwks.endpoint, 0));
                    // Fetched once the configuration names its path (same upstream).
                    keys.endpoint.path.clear();
                }
                sources.push(keys);
            }
            if let Some(endpoint) = &keys.revocation_endpoint {
                sources.push(Source::new(Kind::Revocations, provider, endpoint, 0));
            }
        }
        Remote { sources }
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The body size this callout's answer may have (its endpoint's `max_bytes`); `None`
    /// when the token is not one of ours.
    pub fn max_bytes(&self, token: u32) -> Option<usize> {
        self.sources.iter().find(|s| s.in_flight.as_ref().is_some_and(|f| f.token == token)).map(|s| s.endpoint.max_bytes)
    }

    /// Once a tick: install what other workers fetched, and fetch what is due.
    pub fn on_tick(&mut self, loaded: &Loaded, cache: &mut TokenCache, fetcher: &mut dyn Fetcher) {
        for at in 0..self.sources.len() {
            if let Some(source) = self.sources.get_mut(at) {
                source.tick(loaded, cache, fetcher);
            }
            self.follow_discovery();
        }
    }

    /// At start: installs what is in shared data already, without fetching.
    pub fn install_shared(&mut self, loaded: &Loaded, cache: &mut TokenCache, fetcher: &mut dyn Fetcher) {
        for at in 0..self.sources.len() {
            if let Some(source) = self.sources.get_mut(at)
                && !source.endpoint.path.is_empty()
            {
                let (meta, _) = source.read_meta(fetcher);
                if meta.generation != 0 {
                    source.install_shared(loaded, cache, fetcher, &meta);
                }
            }
            self.follow_discovery();
        }
    }

    /// Gives each discovered JWKS path to its provider's key set.
    fn follow_discovery(&mut self) {
        let discovered: Vec<(usize, String)> =
            self.sources.iter().filter(|s| s.kind == Kind::Discovery).filter_map(|s| s.discovered.clone().map(|path| (s.provider, path))).collect();
        for (provider, path) in discovered {
            if let Some(keys) = self.sources.iter_mut().find(|s| s.kind == Kind::Keys && s.provider == provider) {
                keys.endpoint.path = path;
            }
        }
    }

    /// A callout's answer; false when it was not one of ours.
    pub fn on_answer(&mut self, loaded: &Loaded, cache: &mut TokenCache, fetcher: &mut dyn Fetcher, token: u32, answer: Answer) -> bool {
        let Some(source) = self.sources.iter_mut().find(|s| s.in_flight.as_ref().is_some_and(|f| f.token == token)) else {
            return false;
        };
        source.in_flight = None;
        source.answered(loaded, cache, fetcher, answer);
        self.follow_discovery();
        true
    }
}

impl Source {
    fn new(kind: Kind, provider: usize, endpoint: &Endpoint, early_seconds: u64) -> Source {
        let mut hash = Sha256::new();
        for part in [kind.what(), &endpoint.upstream, &endpoint.authority, &endpoint.path, &endpoint.scheme] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize();
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Source {
            kind,
            provider,
            endpoint: endpoint.clone(),
            early_interval_ms: early_seconds.saturating_mul(1000),
            key: format!("policy_filter.remote.{hex}"),
            installed: 0,
            discovered: None,
            missing_body_ticks: 0,
            installed_digest: [0; 32],
            in_flight: None,
        }
    }

    fn meta_key(&self) -> String {
        format!("{}.meta", self.key)
    }

    fn body_key(&self) -> String {
        format!("{}.body", self.key)
    }

    fn name(&self, loaded: &Loaded) -> String {
        let provider = loaded.providers.get(self.provider).map_or("?", |p| p.name.as_str());
        format!("provider {provider:?}: {}", self.kind.what())
    }

    fn read_meta(&self, fetcher: &mut dyn Fetcher) -> (Meta, u32) {
        match fetcher.shared_get(&self.meta_key()) {
            Some((bytes, cas)) => (Meta::decode(&bytes).unwrap_or_default(), cas),
            None => (Meta::default(), 0),
        }
    }

    /// Changes `meta` with compare-and-swap, retrying on a concurrent write; the value written.
    fn update_meta(&self, fetcher: &mut dyn Fetcher, change: impl Fn(&mut Meta)) -> Option<Meta> {
        for _ in 0..4 {
            let (mut meta, cas) = self.read_meta(fetcher);
            change(&mut meta);
            if fetcher.shared_set(&self.meta_key(), &meta.encode(), cas) {
                return Some(meta);
            }
        }
        None
    }

    fn tick(&mut self, loaded: &Loaded, cache: &mut TokenCache, fetcher: &mut dyn Fetcher) {
        if self.endpoint.path.is_empty() {
            return; // a discovered key set whose configuration has not been read yet
        }
        let now = fetcher.now_ms();
        let (mut meta, mut cas) = self.read_meta(fetcher);
        if meta.generation != 0 && meta.generation != self.installed && !self.install_shared(loaded, cache, fetcher, &meta) {
            // `meta` names a document whose body is gone (ngx_wasm_module's shm_kv evicts
            // entries when the zone is full) or is being rewritten: after a second tick of
            // that, it is fetched again.
            self.missing_body_ticks = self.missing_body_ticks.saturating_add(1);
            if self.missing_body_ticks >= 2 && now < meta.next_fetch_ms {
                fetcher.log(Level::Warn, &format!("{}: the shared document is missing (shm_kv zone too small?); fetching it again", self.name(loaded)));
                if let Some(due) = self.update_meta(fetcher, |m| m.next_fetch_ms = now) {
                    (meta, cas) = (due, self.read_meta(fetcher).1);
                }
                self.missing_body_ticks = 0;
            }
        } else {
            self.missing_body_ticks = 0;
        }
        if self.installed != 0 {
            let provider = loaded.providers.get(self.provider).map_or("", |p| p.name.as_str());
            let gauge = match self.kind {
                Kind::Keys => format!("policy_filter_jwks_age_seconds_{provider}"),
                Kind::Revocations => format!("policy_filter_revocations_age_seconds_{provider}"),
                Kind::Discovery => format!("policy_filter_openid_configuration_age_seconds_{provider}"),
            };
            fetcher.gauge(&gauge, now.saturating_sub(meta.fetched_at_ms) / 1000);
        }
        if let Some(in_flight) = &self.in_flight {
            if now < in_flight.deadline_ms {
                return;
            }
            self.in_flight = None;
            self.failed(loaded, fetcher, meta.fetched_at_ms, "no answer within the timeout");
            return;
        }
        let due = now >= meta.next_fetch_ms;
        // Only a fetch made for an unknown kid alone counts against the early-fetch limit.
        let early = !due && self.wants_early_fetch(loaded, &meta, now);
        if !(due || early) || now < meta.lease_until_ms {
            return;
        }
        let lease = Meta {
            lease_until_ms: now.saturating_add(self.endpoint.timeout_ms).saturating_add(1000),
            last_early_ms: if early { now } else { meta.last_early_ms },
            ..meta
        };
        if !fetcher.shared_set(&self.meta_key(), &lease.encode(), cas) {
            return; // another worker took the lease
        }
        if let Some(provider) = loaded.providers.get(self.provider).filter(|_| self.kind == Kind::Keys) {
            provider.unknown_kid_at.set(0);
        }
        match fetcher.dispatch(&self.endpoint) {
            Ok(token) => {
                fetcher.count(metrics::FETCHES);
                let deadline_ms = now.saturating_add(self.endpoint.timeout_ms).saturating_add(1000);
                self.in_flight = Some(InFlight { token, deadline_ms });
            }
            Err(why) => self.failed(loaded, fetcher, meta.fetched_at_ms, &format!("the proxy refused the callout ({why})")),
        }
    }

    /// Whether a token named a `kid` the key set lacks since the last early fetch (by any
    /// worker), and the rate limit allows another.
    fn wants_early_fetch(&self, loaded: &Loaded, meta: &Meta, now: u64) -> bool {
        let Some(provider) = loaded.providers.get(self.provider).filter(|_| self.kind == Kind::Keys) else { return false };
        let asked = provider.unknown_kid_at.get();
        if asked == 0 {
            return false;
        }
        if asked <= meta.last_early_ms {
            provider.unknown_kid_at.set(0); // fetched since it was asked
            return false;
        }
        now >= meta.last_early_ms.saturating_add(self.early_interval_ms)
    }

    fn answered(&mut self, loaded: &Loaded, cache: &mut TokenCache, fetcher: &mut dyn Fetcher, answer: Answer) {
        let (meta, _) = self.read_meta(fetcher);
        let body = match (answer.status, answer.body) {
            (None, _) => return self.failed(loaded, fetcher, meta.fetched_at_ms, "the callout failed (timeout or connection error)"),
            (Some(200), Some(body)) => body,
            (Some(200), None) => {
                let why = format!("the answer is {} bytes, over max_bytes ({})", answer.body_size, self.endpoint.max_bytes);
                return self.failed(loaded, fetcher, meta.fetched_at_ms, &why);
            }
            (Some(status), _) => return self.failed(loaded, fetcher, meta.fetched_at_ms, &format!("the endpoint answered {status}")),
        };
        let digest: [u8; 32] = Sha256::digest(&body).into();
        let unchanged = self.installed != 0 && digest == self.installed_digest;
        let document = match unchanged {
            true => None,
            false => match self.parse(loaded, &body) {
                Ok(document) => Some(document),
                Err(why) => return self.failed(loaded, fetcher, meta.fetched_at_ms, &why),
            },
        };
        let now = fetcher.now_ms();
        // Larger than any generation before it, even one whose `meta` was evicted and
        // rewritten from 0 (a worker that installed generation 1 would never install another 1).
        let generation = meta.generation.saturating_add(1).max(now);
        let mut stored = generation.to_le_bytes().to_vec();
        stored.extend_from_slice(&body);
        let body_key = self.body_key();
        let written = (0..4).any(|_| {
            let cas = fetcher.shared_get(&body_key).map_or(0, |(_, cas)| cas);
            fetcher.shared_set(&body_key, &stored, cas)
        });
        let fresh_ms = self.endpoint.freshness(answer.cache_control.as_deref()).saturating_mul(1000);
        if !written {
            // Another worker wrote the body meanwhile: its document is installed on the next tick.
            self.update_meta(fetcher, |m| m.lease_until_ms = 0);
            return;
        }
        self.update_meta(fetcher, |m| {
            *m = Meta { generation, fetched_at_ms: now, next_fetch_ms: now.saturating_add(fresh_ms), lease_until_ms: 0, ..*m };
        });
        match document {
            Some(document) => self.install(loaded, cache, fetcher, document, generation, now),
            None => self.keep(loaded, generation, now),
        }
        self.installed_digest = digest;
    }

    /// The same document again: only its generation and age change.
    fn keep(&mut self, loaded: &Loaded, generation: u64, fetched_at_ms: u64) {
        self.installed = generation;
        if self.kind == Kind::Revocations
            && let Some(provider) = loaded.providers.get(self.provider)
        {
            provider.revocations_fetched_at.set(fetched_at_ms.max(1));
        }
    }

    /// The document, parsed: a fetch that does not parse is a failed fetch.
    fn parse(&self, loaded: &Loaded, body: &[u8]) -> Result<Document, String> {
        match self.kind {
            Kind::Keys => {
                let jwks = loaded.providers.get(self.provider).and_then(|p| p.jwks.as_ref()).ok_or("the provider has no jwks")?;
                jwks::parse(body, jwks).map(Document::Keys)
            }
            Kind::Revocations => Revocation::parse_list(body).map(Document::Revocations),
            Kind::Discovery => {
                // OpenID Connect Discovery 1.0 §4.3: the configuration's issuer must be the
                // provider's, exactly; its jwks_uri must be on the upstream the bundle names.
                let configuration = decision_table::strict_json::object(body).map_err(|e| format!("not an OpenID configuration: {e}"))?;
                let expected = loaded.providers.get(self.provider).and_then(|p| p.issuer.as_deref()).unwrap_or_default();
                let issuer = configuration.get("issuer").and_then(serde_json::Value::as_str).unwrap_or_default();
                if issuer != expected {
                    return Err(format!("its issuer {issuer:?} is not the provider's {expected:?}"));
                }
                let jwks_uri = configuration.get("jwks_uri").and_then(serde_json::Value::as_str).ok_or("it names no jwks_uri")?;
                decision_table::bundle::same_origin_path(&self.endpoint, jwks_uri).map(Document::Discovery)
            }
        }
    }

    /// Keeps the last good document and schedules the next attempt.
    fn failed(&self, loaded: &Loaded, fetcher: &mut dyn Fetcher, fetched_at_ms: u64, why: &str) {
        let now = fetcher.now_ms();
        let retry_ms = self.endpoint.retry_seconds.saturating_mul(1000);
        self.update_meta(fetcher, |m| {
            m.next_fetch_ms = now.saturating_add(retry_ms);
            m.lease_until_ms = 0;
        });
        fetcher.count(metrics::FETCH_FAILURES);
        let kept = if self.installed == 0 {
            match self.kind {
                Kind::Keys | Kind::Discovery => "none was fetched yet: tokens that need it are refused (401)".to_string(),
                Kind::Revocations => "none was fetched yet: only the bundle's list applies".to_string(),
            }
        } else {
            format!("keeping the one fetched {} s ago", now.saturating_sub(fetched_at_ms) / 1000)
        };
        let message = format!(
            "{}: fetching {}{} from {} failed: {why}; {kept}; next attempt in {} s",
            self.name(loaded),
            self.endpoint.authority,
            self.endpoint.path,
            self.endpoint.upstream,
            self.endpoint.retry_seconds
        );
        fetcher.log(Level::Warn, &message);
    }

    /// Installs the document `meta` names, which another worker (or this one, before a
    /// reload) fetched; false when its body is not there.
    fn install_shared(&mut self, loaded: &Loaded, cache: &mut TokenCache, fetcher: &mut dyn Fetcher, meta: &Meta) -> bool {
        let Some((stored, _)) = fetcher.shared_get(&self.body_key()) else { return false };
        let Some((stamp, body)) = stored.split_first_chunk::<8>() else { return false };
        if u64::from_le_bytes(*stamp) != meta.generation {
            return false;
        }
        let digest: [u8; 32] = Sha256::digest(body).into();
        if self.installed != 0 && digest == self.installed_digest {
            self.keep(loaded, meta.generation, meta.fetched_at_ms);
            return true;
        }
        self.installed_digest = digest;
        match self.parse(loaded, body) {
            Ok(document) => self.install(loaded, cache, fetcher, document, meta.generation, meta.fetched_at_ms),
            Err(why) => {
                self.installed = meta.generation;
                fetcher.log(Level::Error, &format!("{}: the shared document does not parse: {why}", self.name(loaded)));
            }
        }
        true
    }

    fn install(&mut self, loaded: &Loaded, cache: &mut TokenCache, fetcher: &mut dyn Fetcher, document: Document, generation: u64, fetched_at_ms: u64) {
        self.installed = generation;
        let Some(provider) = loaded.providers.get(self.provider) else { return };
        let name = self.name(loaded);
        match document {
            Document::Keys(fetched) => {
                if !fetched.skipped.is_empty() {
                    // One line, however many: a document's size bounds its entries, not its logs.
                    let shown: Vec<&str> = fetched.skipped.iter().take(8).map(String::as_str).collect();
                    let more = fetched.skipped.len().saturating_sub(shown.len());
                    let more = if more > 0 { format!("; and {more} more") } else { String::new() };
                    fetcher.log(Level::Warn, &format!("{name}: skipped {} entries: {}{more}", fetched.skipped.len(), shown.join("; ")));
                }
                let kids: Vec<&str> = fetched.keys.iter().map(|k| k.kid.as_str()).collect();
                if kids.is_empty() {
                    // The provider withdrew every key it had (or every one left is unusable):
                    // taken as it says, so a compromised key cannot outlive its withdrawal.
                    fetcher.log(Level::Error, &format!("{name}: the JWKS holds no usable key: none of this provider's fetched keys verifies any more"));
                } else {
                    fetcher.log(Level::Info, &format!("{name}: {} keys installed ({})", fetched.keys.len(), kids.join(", ")));
                }
                let valid: Vec<[u8; 32]> = provider.keys.iter().chain(&fetched.keys).map(|k| k.fingerprint).collect();
                // A key the provider withdrew takes the tokens it verified with it.
                let index = self.provider;
                cache.retain(|v| v.provider_index != index || valid.contains(&v.key_fingerprint));
                if let Ok(mut slot) = provider.fetched.try_borrow_mut() {
                    *slot = Some(fetched.keys);
                }
                provider.unknown_kid_at.set(0);
            }
            Document::Discovery(path) => {
                fetcher.log(Level::Info, &format!("{name}: the key set is at {}{path}", self.endpoint.authority));
                self.discovered = Some(path);
            }
            Document::Revocations(list) => {
                fetcher.log(Level::Info, &format!("{name}: {} token ids and {} subjects revoked", list.token_ids.len(), list.subjects.len()));
                if let Ok(mut slot) = provider.revoked_fetched.try_borrow_mut() {
                    *slot = Revoked::new(&list);
                }
                provider.revocations_fetched_at.set(fetched_at_ms.max(1));
            }
        }
        fetcher.count(metrics::INSTALLS);
    }
}

enum Document {
    Keys(jwks::FetchedKeys),
    Revocations(Revocation),
    /// The JWKS path an OpenID configuration names.
    Discovery(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_reads_back_and_anything_else_is_no_meta() {
        let meta = Meta { generation: 3, fetched_at_ms: 1, next_fetch_ms: 2, lease_until_ms: 4, last_early_ms: 5 };
        assert_eq!(Meta::decode(&meta.encode()), Some(meta));
        assert_eq!(Meta::decode(b"PFM1"), None);
        assert_eq!(Meta::decode(&meta.encode()[..40]), None);
        assert_eq!(Meta::decode(b"junk"), None);
    }
}
