//! The verified-token cache: a repeated token skips signature verification.
//!
//! Off by default ([`StepUpBuilder::token_cache`](crate::StepUpBuilder::token_cache) turns it on).
//! Keyed by the whole token: a lookup hashes it with a randomly seeded fast hash (foldhash,
//! per cache) and then compares it in full with the stored token, without an early exit. (A
//! SHA-256 of the token as key costs more than the rest of a cache hit together; a digest of
//! part of it, say the signature, would hand the cached claims to anyone who pairs a seen
//! signature with other claims.) Only tokens that passed every check are stored. On
//! every hit, `exp` and `nbf` are checked again against the current time, the entry's own TTL is
//! checked, and the key that verified the token must still be in the issuer's current key set
//! (same `kid`, same key material): removing or replacing a key invalidates what it verified.
//! Requirements are evaluated on every request by the layer, never cached. The number of entries
//! is bounded (S3-FIFO eviction), so memory stays flat under a flood of distinct tokens; each
//! entry holds the token itself besides its claims (the process holds every token it serves
//! anyway; a memory dump of a cache of 10,000 entries reveals at most those tokens, each until
//! its `exp`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::Equivalent;
use quick_cache::sync::Cache;

use super::VerifiedToken;
use crate::keys::{Key, KeySet};

pub(crate) struct Entry {
    pub(crate) token: Arc<VerifiedToken>,
    pub(crate) issuer: usize,
    pub(crate) key: Arc<Key>,
    /// The set `key` was found in: while it is still the current one, so is the key.
    pub(crate) set: Arc<KeySet>,
    pub(crate) nbf: Option<i64>,
    pub(crate) stored_at: i64,
}

/// A stored token (the key of an entry).
#[derive(PartialEq, Eq, Hash)]
struct Stored(Box<[u8]>);

/// A presented token, looked up by its bytes. Hashes as [`Stored`] does (both hash a `[u8]`).
#[derive(Hash)]
struct Presented<'a>(&'a [u8]);

impl Equivalent<Stored> for Presented<'_> {
    /// Equal lengths and equal bytes, compared without an early exit: how much of a stored
    /// token a presented one matches does not show in the time taken.
    fn equivalent(&self, stored: &Stored) -> bool {
        self.0.len() == stored.0.len() && self.0.iter().zip(stored.0.iter()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }
}

pub(crate) struct TokenCache {
    entries: Cache<Stored, Arc<Entry>>,
    ttl: i64,
    hits: AtomicU64,
    misses: AtomicU64,
    #[cfg(feature = "metrics")]
    hot: crate::observe::Hot,
}

impl TokenCache {
    pub(crate) fn new(max_entries: usize, ttl_secs: i64) -> Self {
        Self {
            entries: Cache::new(max_entries.max(1)),
            ttl: ttl_secs,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            hot: crate::observe::Hot::default(),
        }
    }

    /// A still-valid entry for this token.
    pub(crate) fn get(
        &self,
        token: &[u8],
        now: i64,
        leeway: i64,
        keys: impl Fn(usize) -> Option<Arc<KeySet>>,
    ) -> Option<Arc<VerifiedToken>> {
        let Some(entry) = self.entries.get(&Presented(token)) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            self.hot.token_cache(false);
            return None;
        };
        let ctx = entry.token.context();
        let fresh = now < ctx.exp.saturating_add(leeway)
            && entry.nbf.is_none_or(|nbf| nbf <= now.saturating_add(leeway))
            && now < entry.stored_at.saturating_add(self.ttl);
        let key_still_there = fresh
            && keys(entry.issuer).is_some_and(|set| {
                Arc::ptr_eq(&set, &entry.set)
                    || set
                        .find_shared(entry.token.kid(), entry.token.algorithm())
                        .is_ok_and(|k| Arc::ptr_eq(k, &entry.key) || k.same_material(&entry.key))
            });
        if key_still_there {
            self.hits.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            self.hot.token_cache(true);
            Some(entry.token.clone())
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            self.hot.token_cache(false);
            self.entries.remove(&Presented(token));
            None
        }
    }

    pub(crate) fn insert(&self, token: &[u8], entry: Entry) {
        self.entries.insert(Stored(token.into()), Arc::new(entry));
    }

    pub(crate) fn metrics(&self) -> TokenCacheMetrics {
        TokenCacheMetrics {
            entries: self.entries.len(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

/// Counters of the verified-token cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenCacheMetrics {
    /// Tokens held.
    pub entries: usize,
    /// Requests answered from the cache.
    pub hits: u64,
    /// Lookups that had to verify (absent, expired, or the key changed).
    pub misses: u64,
}
