//! The policy of the remote key cache, independent of HTTP: the snapshot readers see, the TTL
//! and refresh ahead of expiry, forced refetches (single-flight, one per cooldown), stale keys
//! through outages, and the counters. The fetching itself is a [`Source`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::time::Instant;

use super::{CacheMetrics, CacheSettings, FetchError};
use crate::keys::{BoxFuture, KeyError, KeySet};

/// Where a cache gets its keys: a fetch gives a JWK Set and its TTL.
pub(super) trait Source: Send + Sync + 'static {
    /// One fetch.
    fn fetch(&self) -> BoxFuture<'_, Result<(KeySet, Duration), FetchError>>;
    /// What to name in logs (the configured URL).
    fn name(&self) -> &str;
}

pub(super) struct Snapshot {
    pub(super) keys: Arc<KeySet>,
    pub(super) fetched: Instant,
    pub(super) ttl: Duration,
}

/// Why a request asks for a forced refetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// The `kid` (or any key) is not in the snapshot.
    UnknownKid,
    /// The `kid` is there but its key did not verify the signature.
    BadSignature,
}

enum Forced<'a> {
    /// A fetch is in flight: wait for it and use its result.
    Wait,
    /// The cooldown has not passed.
    Suppressed,
    /// We fetch, holding the lock.
    Fetch(tokio::sync::MutexGuard<'a, ()>),
}

pub(super) struct Cache<S> {
    pub(super) source: S,
    settings: CacheSettings,
    snapshot: ArcSwapOption<Snapshot>,
    /// Held for the duration of every fetch: concurrent refreshers wait on it and then share
    /// the result (single-flight).
    fetch_lock: tokio::sync::Mutex<()>,
    /// When the last forced refetch started.
    last_forced: Mutex<Option<Instant>>,
    background: AtomicBool,
    fetches: AtomicU64,
    failures: AtomicU64,
    forced: AtomicU64,
    suppressed: AtomicU64,
    empty_sets: AtomicU64,
    /// The source's name (its URL), the `issuer` label of the metrics.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    label: Arc<str>,
    #[cfg(feature = "metrics")]
    age: std::sync::OnceLock<metrics::Gauge>,
}

impl<S: Source> Cache<S> {
    pub(super) fn new(source: S, settings: CacheSettings) -> Self {
        let label = Arc::from(source.name());
        Self {
            label,
            #[cfg(feature = "metrics")]
            age: std::sync::OnceLock::new(),
            source,
            settings,
            snapshot: ArcSwapOption::empty(),
            fetch_lock: tokio::sync::Mutex::new(()),
            last_forced: Mutex::new(None),
            background: AtomicBool::new(false),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            forced: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            empty_sets: AtomicU64::new(0),
        }
    }

    /// The keys requests verify with: never waits.
    pub(super) fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        let snapshot = self.snapshot.load();
        // One clock read per call (this runs on every request, token-cache hits included).
        let age = snapshot.as_ref().map(|s| s.fetched.elapsed());
        #[cfg(feature = "metrics")]
        if let Some(age) = age {
            self.age
                .get_or_init(|| crate::observe::key_set_age_gauge(&self.label))
                .set(age.as_secs_f64());
        }
        match snapshot.as_ref() {
            Some(s) if s.keys.is_empty() => Err(KeyError::Unavailable("the issuer's JWK Set has no usable key".into())),
            Some(s) if age.is_some_and(|a| a <= s.ttl.saturating_add(self.settings.max_stale)) => Ok(s.keys.clone()),
            Some(_) => Err(KeyError::Unavailable(
                "cached keys are older than the maximum staleness".into(),
            )),
            None => Err(KeyError::Unavailable("keys not loaded yet".into())),
        }
    }

    pub(super) fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.load_full()
    }

    pub(super) fn metrics(&self) -> CacheMetrics {
        CacheMetrics {
            fetches: self.fetches.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            forced_refetches: self.forced.load(Ordering::Relaxed),
            suppressed_refetches: self.suppressed.load(Ordering::Relaxed),
            empty_sets: self.empty_sets.load(Ordering::Relaxed),
        }
    }

    /// Fetches now, whatever the TTL and cooldown say; an empty set is reported.
    pub(super) async fn fetch_now(&self, reason: &'static str) -> Result<(), FetchError> {
        let _guard = self.fetch_lock.lock().await;
        let keys = self.fetch_and_swap(reason).await?;
        if keys.is_empty() {
            return Err(FetchError::NoUsableKeys {
                skipped: keys.skipped().len(),
            });
        }
        Ok(())
    }

    /// Starts the background refresher once, when a tokio runtime is there.
    pub(super) fn ensure_background(self: &Arc<Self>) {
        if self.background.load(Ordering::Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        handle.spawn(refresher(Arc::downgrade(self)));
    }

    /// A forced refetch asked by a request, shared by concurrent callers and at most one per
    /// cooldown. A bad signature on a known `kid` refetches only keys older than the cooldown.
    pub(super) async fn forced_refresh(&self, kid: Option<String>, why: Why) -> Result<Arc<KeySet>, KeyError> {
        let cooldown = self.settings.cooldown;
        // Twice at most: after waiting for another fetch (which may have been a background
        // refresh that began before the key was published), decide again.
        for _ in 0..2 {
            let decision = {
                let mut last = self.last_forced.lock().unwrap_or_else(|p| p.into_inner());
                // Keys younger than the cooldown were just read from the provider.
                let fresh = why == Why::BadSignature
                    && self
                        .snapshot
                        .load()
                        .as_ref()
                        .is_some_and(|s| s.fetched.elapsed() < cooldown);
                match self.fetch_lock.try_lock() {
                    Err(_) => Forced::Wait,
                    Ok(_) if fresh || last.is_some_and(|t| t.elapsed() < cooldown) => Forced::Suppressed,
                    Ok(guard) => {
                        *last = Some(Instant::now());
                        Forced::Fetch(guard)
                    }
                }
            };
            match decision {
                Forced::Wait => {
                    drop(self.fetch_lock.lock().await);
                    if why == Why::BadSignature {
                        // The fetch we waited for read the provider's current material.
                        break;
                    }
                    let known = match (&kid, self.current()) {
                        (Some(k), Ok(set)) => set.contains_kid(k),
                        (None, Ok(_)) => true,
                        (_, Err(_)) => false,
                    };
                    if known {
                        break;
                    }
                }
                Forced::Suppressed => {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                    #[cfg(feature = "metrics")]
                    crate::observe::key_refetch_suppressed(&self.label);
                    tracing::debug!(target: "stepup_tower", kid = ?kid, "forced JWKS refetch suppressed by the cooldown");
                    break;
                }
                Forced::Fetch(_guard) => {
                    self.forced.fetch_add(1, Ordering::Relaxed);
                    let reason = match why {
                        Why::UnknownKid => "unknown kid",
                        Why::BadSignature => "known kid, bad signature",
                    };
                    tracing::info!(target: "stepup_tower", kid = ?kid, reason, "forced JWKS refetch");
                    // A failure is logged inside; the last good keys (if any) still answer.
                    let _ = self.fetch_and_swap(reason).await;
                    break;
                }
            }
        }
        self.current()
    }

    fn next_refresh_in(&self, failures: u32) -> Duration {
        let s = &self.settings;
        if failures > 0 {
            let backoff = s
                .retry_backoff
                .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)));
            return backoff.min(s.cooldown.max(s.retry_backoff));
        }
        match self.snapshot.load().as_ref() {
            // Refresh at 80% of the TTL.
            Some(s) => (s.ttl.saturating_mul(4) / 5).saturating_sub(s.fetched.elapsed()),
            None => Duration::ZERO,
        }
    }

    /// Fetches and swaps in a new snapshot. The caller holds `fetch_lock`.
    async fn fetch_and_swap(&self, reason: &'static str) -> Result<Arc<KeySet>, FetchError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.source.fetch().await;
        let elapsed_ms = started.elapsed().as_millis();
        let url = self.source.name();
        #[cfg(feature = "metrics")]
        crate::observe::key_fetch(&self.label, result.as_ref().err().map(FetchError::code));
        match result {
            Ok((set, ttl)) => {
                for skipped in set.skipped() {
                    tracing::warn!(target: "stepup_tower", kid = ?skipped.kid, reason = %skipped.reason, "JWK skipped");
                }
                let keys = Arc::new(set);
                if keys.is_empty() {
                    // A well-formed JWK Set is the provider's word: an empty one revokes.
                    self.empty_sets.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target: "stepup_tower", url, reason, skipped = keys.skipped().len(), ttl_s = ttl.as_secs(), elapsed_ms,
                        "JWKS fetched with no usable key; swapped in: every token of this issuer is refused until keys are published");
                } else {
                    tracing::info!(target: "stepup_tower", url, reason, keys = keys.len(), ttl_s = ttl.as_secs(), elapsed_ms, "JWKS fetched");
                }
                self.snapshot.store(Some(Arc::new(Snapshot {
                    keys: keys.clone(),
                    fetched: Instant::now(),
                    ttl,
                })));
                Ok(keys)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                match self.snapshot.load().as_ref().map(|s| s.keys.len()) {
                    Some(keys) => {
                        tracing::warn!(target: "stepup_tower", url, reason, error = %e, elapsed_ms, cached_keys = keys, "JWKS fetch failed; keeping the last good keys");
                    }
                    None => {
                        tracing::warn!(target: "stepup_tower", url, reason, error = %e, elapsed_ms, "JWKS fetch failed; no keys yet");
                    }
                }
                Err(e)
            }
        }
    }
}

/// Refreshes ahead of expiry; retries failures with backoff. Ends when the cache is dropped.
async fn refresher<S: Source>(weak: Weak<Cache<S>>) {
    let mut failures: u32 = 0;
    loop {
        let delay = {
            let Some(cache) = weak.upgrade() else { return };
            cache.next_refresh_in(failures)
        };
        tokio::time::sleep(delay).await;
        let Some(cache) = weak.upgrade() else { return };
        if failures == 0 && !cache.next_refresh_in(0).is_zero() {
            continue;
        }
        let _guard = cache.fetch_lock.lock().await;
        // Skip when another fetch (initial load, forced refetch) refreshed the snapshot meanwhile.
        if failures == 0 && !cache.next_refresh_in(0).is_zero() {
            continue;
        }
        match cache.fetch_and_swap("refresh ahead of expiry").await {
            Ok(_) => failures = 0,
            Err(_) => failures = failures.saturating_add(1),
        }
    }
}

/// The policy under tokio's paused clock, with a scripted source: no sockets, no sleeps that
/// take real time.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    const KEY_A: &str =
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"a","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    const KEY_B: &str =
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"b","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    /// Answers fetches from a script (the last answer repeats), each after `delay`.
    struct Script {
        answers: Mutex<VecDeque<Result<(&'static str, Duration), FetchError>>>,
        last: Mutex<Option<Result<(&'static str, Duration), FetchError>>>,
        delay: Duration,
        calls: AtomicUsize,
    }

    impl Script {
        fn new(answers: Vec<Result<(&'static str, Duration), FetchError>>, delay: Duration) -> Self {
            Self {
                answers: Mutex::new(answers.into()),
                last: Mutex::new(None),
                delay,
                calls: AtomicUsize::new(0),
            }
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl Source for Script {
        fn fetch(&self) -> BoxFuture<'_, Result<(KeySet, Duration), FetchError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(self.delay).await;
                let next = self.answers.lock().unwrap().pop_front();
                let answer = match next {
                    Some(a) => {
                        *self.last.lock().unwrap() = Some(a.clone());
                        a
                    }
                    None => self.last.lock().unwrap().clone().expect("a scripted answer"),
                };
                answer.map(|(json, ttl)| (KeySet::from_jwks_json(json.as_bytes()).unwrap(), ttl))
            })
        }
        fn name(&self) -> &str {
            "script"
        }
    }

    fn settings() -> CacheSettings {
        CacheSettings {
            cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(3600),
            retry_backoff: Duration::from_secs(1),
            ..CacheSettings::default()
        }
    }

    fn cache(answers: Vec<Result<(&'static str, Duration), FetchError>>, delay: Duration) -> Arc<Cache<Script>> {
        Arc::new(Cache::new(Script::new(answers, delay), settings()))
    }

    const TEN_MIN: Duration = Duration::from_secs(600);

    #[tokio::test(start_paused = true)]
    async fn refreshes_at_80_percent_of_the_ttl() {
        let c = cache(vec![Ok((KEY_A, TEN_MIN)), Ok((KEY_B, TEN_MIN))], Duration::ZERO);
        c.fetch_now("initial load").await.unwrap();
        c.ensure_background();
        tokio::time::sleep(Duration::from_secs(479)).await;
        assert_eq!(c.source.calls(), 1, "not before 80% of the TTL");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(c.source.calls(), 2, "refreshed at 480 s");
        assert!(c.current().unwrap().contains_kid("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_forced_refetches_share_one_fetch_and_the_cooldown_holds() {
        let c = cache(
            vec![Ok((KEY_A, TEN_MIN)), Ok((KEY_B, TEN_MIN))],
            Duration::from_millis(200),
        );
        c.fetch_now("initial load").await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                c.forced_refresh(Some("b".into()), Why::UnknownKid).await
            }));
        }
        for t in tasks {
            assert!(
                t.await.unwrap().unwrap().contains_kid("b"),
                "every waiter sees the new key"
            );
        }
        assert_eq!(c.source.calls(), 2, "one fetch for fifty requests");
        // Within the cooldown: suppressed, no fetch.
        tokio::time::sleep(Duration::from_secs(29)).await;
        c.forced_refresh(Some("zzz".into()), Why::UnknownKid).await.unwrap();
        assert_eq!(c.source.calls(), 2);
        assert_eq!(c.metrics().suppressed_refetches, 1);
        // After it: one more.
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.forced_refresh(Some("zzz".into()), Why::UnknownKid).await.unwrap();
        assert_eq!(c.source.calls(), 3);
        assert_eq!(c.metrics().forced_refetches, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bad_signature_refetches_only_keys_older_than_the_cooldown() {
        let c = cache(vec![Ok((KEY_A, TEN_MIN))], Duration::ZERO);
        c.fetch_now("initial load").await.unwrap();
        c.forced_refresh(Some("a".into()), Why::BadSignature).await.unwrap();
        assert_eq!(c.source.calls(), 1, "young keys are not refetched");
        tokio::time::sleep(Duration::from_secs(31)).await;
        c.forced_refresh(Some("a".into()), Why::BadSignature).await.unwrap();
        assert_eq!(c.source.calls(), 2, "older than the cooldown: refetched");
        c.forced_refresh(Some("a".into()), Why::BadSignature).await.unwrap();
        assert_eq!(c.source.calls(), 2, "and the cooldown holds");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_keep_stale_keys_up_to_max_stale_then_refuse() {
        let c = cache(
            vec![Ok((KEY_A, Duration::from_secs(60))), Err(FetchError::Timeout)],
            Duration::ZERO,
        );
        c.fetch_now("initial load").await.unwrap();
        c.ensure_background();
        // TTL 60 s, max_stale 1 h: fetches fail from 48 s on; the keys serve until 3660 s.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(c.current().is_ok(), "stale keys still serve");
        let failures = c.metrics().failures;
        assert!(failures > 5, "the refresher kept retrying ({failures})");
        // Backoff doubles from 1 s up to the cooldown (30 s): not a tight loop.
        assert!(failures < 3600 / 30 + 10, "{failures} retries in an hour");
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert!(matches!(c.current(), Err(KeyError::Unavailable(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_set_is_swapped_in_and_reported() {
        let c = cache(
            vec![Ok((KEY_A, TEN_MIN)), Ok((r#"{"keys":[]}"#, TEN_MIN))],
            Duration::ZERO,
        );
        c.fetch_now("initial load").await.unwrap();
        assert!(matches!(
            c.fetch_now("explicit refresh").await,
            Err(FetchError::NoUsableKeys { skipped: 0 })
        ));
        assert!(matches!(c.current(), Err(KeyError::Unavailable(_))));
        assert_eq!(c.metrics().empty_sets, 1);
        assert_eq!(c.metrics().failures, 0);
    }
}
