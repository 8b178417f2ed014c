//! Proof replay detection: "insert this key with this expiry if absent" (RFC 9449 §11.1).
//!
//! Every accepted proof spends its `jti` for as long as the proof could be accepted (its `iat`
//! plus the proof window). The key is the SHA-256 of the proof key's thumbprint and the `jti`,
//! so one client cannot spend another client's `jti`, and what is stored has a fixed size.
//!
//! [`MemoryReplayStore`] (the default) is right for one process. Behind a load balancer every
//! replica must see every spent `jti`: use a shared store such as
//! [`RedisReplayStore`](crate::dpop::RedisReplayStore) (feature `redis`), or implement
//! [`ReplayStore`] over the store you run.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The key of one spent proof: SHA-256 over the proof key's RFC 7638 thumbprint and the `jti`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey([u8; 32]);

impl ReplayKey {
    /// The key for a proof of the key with thumbprint `jkt` carrying `jti`.
    pub fn new(jkt: &str, jti: &str) -> Self {
        let mut input = Vec::with_capacity(jkt.len() + 1 + jti.len());
        input.extend_from_slice(jkt.as_bytes());
        // The thumbprint is base64url, so a NUL cannot occur in it: the pair is unambiguous.
        input.push(0);
        input.extend_from_slice(jti.as_bytes());
        Self(crate::crypto::sha256(&input))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// base64url of the 32 bytes (43 characters): what a text store uses as its key.
impl fmt::Display for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayKey({self})")
    }
}

/// Whether a key was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// The key was absent and is now stored: the proof is fresh.
    Fresh,
    /// The key was already there: the proof is a replay.
    Replayed,
}

/// The store could not answer. The layer answers 503 (fail-closed) unless
/// [`Dpop::replay_fail_open`](crate::dpop::Dpop::replay_fail_open) was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// The store did not answer in time.
    Timeout(Duration),
    /// The store is unreachable or answered with an error; the text names the failure (never
    /// a key or a proof).
    Unavailable(String),
    /// A bounded store is full of entries that have not expired yet.
    Full {
        /// Its bound.
        capacity: usize,
    },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(d) => write!(f, "replay store did not answer within {} ms", d.as_millis()),
            Self::Unavailable(why) => write!(f, "replay store unavailable: {why}"),
            Self::Full { capacity } => write!(f, "replay store full ({capacity} unexpired entries)"),
        }
    }
}

impl std::error::Error for ReplayError {}

/// The future of [`ReplayStore::insert_if_absent`].
pub type InsertFuture<'a> = Pin<Box<dyn Future<Output = Result<Insert, ReplayError>> + Send + 'a>>;

/// Where spent proofs are remembered: one atomic operation, "insert `key`, to expire after
/// `ttl`, if it is absent".
///
/// ```
/// use std::time::Duration;
/// use stepup_tower::dpop::{Insert, MemoryReplayStore, ReplayKey, ReplayStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemoryReplayStore::new(1_000);
/// let key = ReplayKey::new("thumbprint", "jti-1");
/// assert_eq!(store.insert_if_absent(key, Duration::from_secs(60)).await, Ok(Insert::Fresh));
/// assert_eq!(store.insert_if_absent(key, Duration::from_secs(60)).await, Ok(Insert::Replayed));
/// # }
/// ```
pub trait ReplayStore: Send + Sync + 'static {
    /// Stores `key` for `ttl` unless it is already stored. Must be atomic: of two concurrent
    /// calls with one key, exactly one sees [`Insert::Fresh`].
    fn insert_if_absent(&self, key: ReplayKey, ttl: Duration) -> InsertFuture<'_>;
}

const SHARDS: usize = 16;

/// The in-process store: bounded, entries expire on their own, memory flat under a flood.
///
/// At most `capacity` unexpired entries (split over 16 shards). Expired entries are dropped as
/// new ones arrive; when a shard is full of unexpired entries, inserts fail with
/// [`ReplayError::Full`] (answered 503, fail-closed) rather than forget a spent proof.
pub struct MemoryReplayStore {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    expiry: HashMap<ReplayKey, Instant>,
    /// Insertion order, for expiry without a scan.
    order: VecDeque<(Instant, ReplayKey)>,
}

impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("capacity", &(self.per_shard * SHARDS))
            .field("len", &self.len())
            .finish()
    }
}

/// Default bound of [`MemoryReplayStore`]: 1,048,576 entries (about 90 MB at the worst).
pub const DEFAULT_REPLAY_CAPACITY: usize = 1 << 20;

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl MemoryReplayStore {
    /// A store holding at most `capacity` unexpired entries (at least 16).
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
        }
    }

    /// Entries held now (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.expiry.len()).unwrap_or(0))
            .sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert_now(&self, key: ReplayKey, ttl: Duration, now: Instant) -> Result<Insert, ReplayError> {
        let index = usize::from(key.0[0]) % SHARDS;
        let Some(shard) = self.shards.get(index) else {
            return Err(ReplayError::Unavailable("no shard".into()));
        };
        // A poisoned lock only means another insert panicked midway; the map is still sound.
        let mut shard = shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.purge(now);
        if let Some(expiry) = shard.expiry.get(&key)
            && *expiry > now
        {
            return Ok(Insert::Replayed);
        }
        if shard.expiry.len() >= self.per_shard {
            return Err(ReplayError::Full {
                capacity: self.per_shard * SHARDS,
            });
        }
        let expiry = now + ttl;
        shard.expiry.insert(key, expiry);
        shard.order.push_back((expiry, key));
        Ok(Insert::Fresh)
    }
}

impl Shard {
    /// Drops expired entries from the front of the insertion order. Entries are inserted with
    /// nearly equal lifetimes, so the front is (almost) the oldest; one that outlives a later
    /// one merely waits for it.
    fn purge(&mut self, now: Instant) {
        while let Some((expiry, key)) = self.order.front().copied() {
            if expiry > now {
                break;
            }
            self.order.pop_front();
            if self.expiry.get(&key).is_some_and(|e| *e <= now) {
                self.expiry.remove(&key);
            }
        }
    }
}

impl ReplayStore for MemoryReplayStore {
    fn insert_if_absent(&self, key: ReplayKey, ttl: Duration) -> InsertFuture<'_> {
        let result = self.insert_now(key, ttl, Instant::now());
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn fresh_then_replayed_then_fresh_after_expiry() {
        let store = MemoryReplayStore::new(64);
        let t0 = Instant::now();
        let k = ReplayKey::new("jkt", "a");
        let ttl = Duration::from_secs(10);
        assert_eq!(store.insert_now(k, ttl, t0), Ok(Insert::Fresh));
        assert_eq!(
            store.insert_now(k, ttl, t0 + Duration::from_secs(9)),
            Ok(Insert::Replayed)
        );
        assert_eq!(
            store.insert_now(k, ttl, t0 + Duration::from_secs(11)),
            Ok(Insert::Fresh)
        );
    }

    #[test]
    fn key_binds_thumbprint_and_jti() {
        assert_ne!(ReplayKey::new("a", "bc"), ReplayKey::new("ab", "c"));
        assert_ne!(ReplayKey::new("k1", "j"), ReplayKey::new("k2", "j"));
        assert_eq!(ReplayKey::new("k", "j").to_string().len(), 43);
    }

    #[test]
    fn bounded_and_fail_closed_when_full_then_recovers() {
        let store = MemoryReplayStore::new(16 * 4);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut full = 0;
        for i in 0..10_000 {
            match store.insert_now(ReplayKey::new("k", &i.to_string()), ttl, t0) {
                Ok(Insert::Fresh) => {}
                Err(ReplayError::Full { capacity }) => {
                    assert_eq!(capacity, 64);
                    full += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(store.len() <= 64);
        assert!(full > 9_000);
        // Once the window has passed, the flood is gone and inserts succeed again.
        let later = t0 + Duration::from_secs(11);
        for i in 0..64 {
            let _ = store.insert_now(ReplayKey::new("k2", &i.to_string()), ttl, later);
        }
        assert!(store.len() <= 64);
        assert_eq!(
            store.insert_now(ReplayKey::new("k", "0"), ttl, later + Duration::from_secs(11)),
            Ok(Insert::Fresh)
        );
    }
}
