//! The verified-token cache: a repeated token skips signature verification.
//!
//! Off by default ([`StepUpBuilder::token_cache`](crate::StepUpBuilder::token_cache) turns it on).
//! Keyed by the SHA-256 of the whole token; only tokens that passed every check are stored. On
//! every hit, `exp` and `nbf` are checked again against the current time, the entry's own TTL is
//! checked, and the key that verified the token must still be in the issuer's current key set
//! (same `kid`, same key material): removing or replacing a key invalidates what it verified.
//! Requirements are evaluated on every request by the layer, never cached. The number of entries
//! is bounded (S3-FIFO eviction), so memory stays flat under a flood of distinct tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::sync::Cache;

use super::VerifiedToken;
use crate::keys::{Key, KeySet};

pub(crate) struct Entry {
    pub(crate) token: Arc<VerifiedToken>,
    pub(crate) issuer: usize,
    pub(crate) key: Arc<Key>,
    pub(crate) nbf: Option<i64>,
    pub(crate) stored_at: i64,
}

pub(crate) struct TokenCache {
    entries: Cache<[u8; 32], Arc<Entry>>,
    ttl: i64,
    hits: AtomicU64,
    misses: AtomicU64,
    #[cfg(feature = "metrics")]
    hot: crate::observe::Hot,
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    #[cfg(feature = "aws-lc-rs")]
    {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        use sha2::Digest as _;
        sha2::Sha256::digest(data).into()
    }
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

    /// A still-valid entry for this token digest.
    pub(crate) fn get(
        &self,
        digest: &[u8; 32],
        now: i64,
        leeway: i64,
        keys: impl Fn(usize) -> Option<Arc<KeySet>>,
    ) -> Option<Arc<VerifiedToken>> {
        let Some(entry) = self.entries.get(digest) else {
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
                set.find_shared(entry.token.kid(), entry.token.algorithm())
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
            self.entries.remove(digest);
            None
        }
    }

    pub(crate) fn insert(&self, digest: [u8; 32], entry: Entry) {
        self.entries.insert(digest, Arc::new(entry));
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
