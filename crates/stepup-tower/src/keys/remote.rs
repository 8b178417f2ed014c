//! Remote key sets: OIDC discovery and a JWKS cache that survives rotation, storms and outages.
//!
//! ```no_run
//! use stepup_tower::{Issuer, StepUp, keys::RemoteJwks};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = RemoteJwks::discover("https://id.example.com").build()?;
//! keys.load().await?; // optional: the first request does not pay for the fetch
//! let auth = StepUp::builder()
//!     .issuer(Issuer::access_tokens("https://id.example.com").audience("bank-api").key_source(keys))
//!     .build()?;
//! # let _ = auth; Ok(())
//! # }
//! ```
//!
//! How it behaves:
//!
//! - **Readers never wait on a fetch.** The request path loads an immutable snapshot of
//!   pre-parsed keys through an [`ArcSwap`](arc_swap::ArcSwapOption); a fetch builds a whole new
//!   snapshot and swaps it in.
//! - **TTL** comes from `Cache-Control: max-age`, clamped to `[min_ttl, max_ttl]` (defaults 1 min
//!   and 24 h; 10 min when the header is absent). A background task refreshes ahead of expiry
//!   (at 80% of the TTL).
//! - **Unknown `kid`** → one immediate refetch, shared by every concurrent request that needs
//!   it (single-flight) and rate-limited: at most one such forced refetch per `cooldown`
//!   (default 30 s). A `kid` still unknown afterwards is a 401 `invalid_token`.
//! - **Known `kid`, bad signature** (a provider restarted with new key material under the same
//!   `kid`): when the snapshot is older than the cooldown, one forced refetch from the same
//!   budget; if that `kid`'s material changed, the token is verified once more with the new key.
//! - **A `200` whose body is a JWK Set is authoritative**, even with no usable key in it
//!   (`{"keys":[]}`, or only `oct`/`enc`/unknown keys): it replaces the snapshot, so a provider
//!   that empties its set revokes its keys. It is logged at `warn` and counted
//!   ([`CacheMetrics::empty_sets`]).
//! - **Outages** (timeout, connection failure, a status other than 200, a body that is not
//!   JSON or not a JWK Set, an oversized body, a cross-origin redirect): the last good keys keep
//!   serving, past their TTL, for up to `max_stale` (default 24 h) after they expired. With no
//!   keys at all the request is refused (401, or 503 with
//!   [`StepUpBuilder::unavailable_keys_as_503`](crate::StepUpBuilder::unavailable_keys_as_503)).
//! - **Rotation bound**: a key the provider publishes is accepted at the latest one `cooldown`
//!   after it appears, even while someone floods made-up `kid`s: the flood can suppress forced
//!   refetches only until the cooldown has passed, and any refetch made after publication —
//!   the flood's own, or a legitimate token's — loads the new key.
//! - **Settings that could loop are refused** by [`RemoteJwksBuilder::build`]: `min_ttl`,
//!   `cooldown` and `retry_backoff` must each be at least one second ([`SettingError`]).
//! - **HTTP**: rustls, connect and total timeouts, a body cap (256 KiB), only `200` with a JSON
//!   body, redirects only within the same origin. Every failure is a [`FetchError`] and a
//!   `tracing` event with the reason.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use reqwest::{Client, StatusCode, Url};
use tokio::time::Instant;

use super::{BoxFuture, KeyError, KeySet, KeySource};

/// Tuning of a [`RemoteJwks`]. The defaults suit most providers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheSettings {
    /// Lower bound of the TTL taken from `Cache-Control: max-age` (default 60 s; at least 1 s).
    pub min_ttl: Duration,
    /// Upper bound of the TTL (default 24 h).
    pub max_ttl: Duration,
    /// TTL when the response has no `max-age` (default 10 min).
    pub default_ttl: Duration,
    /// At most one forced refetch (unknown `kid`, a known `kid` whose signature failed, or no
    /// keys) per this period (default 30 s; at least 1 s).
    pub cooldown: Duration,
    /// How long after their TTL the last good keys keep serving while fetches fail (default 24 h).
    pub max_stale: Duration,
    /// Largest accepted response body (default 256 KiB).
    pub max_body_bytes: usize,
    /// Connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Total timeout of one fetch (default 10 s).
    pub timeout: Duration,
    /// First retry delay of the background refresher after a failure; doubles up to
    /// `cooldown` (default 1 s; at least 1 s).
    pub retry_backoff: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(600),
            cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(24 * 3600),
            max_body_bytes: 256 * 1024,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            retry_backoff: Duration::from_secs(1),
        }
    }
}

/// A [`CacheSettings`] value that [`RemoteJwksBuilder::build`] refuses, naming the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingError {
    /// `min_ttl` is under one second: a provider sending `max-age=0` or `no-store` would be
    /// fetched in a loop.
    MinTtlTooShort(Duration),
    /// `cooldown` is under one second: a flood of unknown `kid`s would become a flood of fetches.
    CooldownTooShort(Duration),
    /// `retry_backoff` is under one second: a failing provider would be retried in a loop.
    RetryBackoffTooShort(Duration),
    /// `min_ttl` is larger than `max_ttl`.
    TtlBoundsInverted {
        /// `min_ttl`.
        min: Duration,
        /// `max_ttl`.
        max: Duration,
    },
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MinTtlTooShort(d) => write!(f, "min_ttl of {d:?} is under the 1 s minimum"),
            Self::CooldownTooShort(d) => write!(f, "cooldown of {d:?} is under the 1 s minimum"),
            Self::RetryBackoffTooShort(d) => write!(f, "retry_backoff of {d:?} is under the 1 s minimum"),
            Self::TtlBoundsInverted { min, max } => write!(f, "min_ttl {min:?} is larger than max_ttl {max:?}"),
        }
    }
}

impl std::error::Error for SettingError {}

/// The smallest `min_ttl`, `cooldown` and `retry_backoff` the builder accepts.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Why building a [`RemoteJwks`], discovering its JWKS URL or fetching its keys failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// A setting would make the cache fetch in a loop (refused by the builder).
    Setting(SettingError),
    /// The URL is not a valid http(s) URL.
    InvalidUrl(String),
    /// Connecting failed (refused, reset, DNS, TLS).
    Connect(String),
    /// The fetch took longer than the timeout.
    Timeout,
    /// The server answered with another status than 200.
    Status(u16),
    /// A redirect to another origin.
    CrossOriginRedirect(String),
    /// The body is larger than the cap.
    TooLarge {
        /// The cap in bytes.
        max: usize,
    },
    /// The body is not JSON (or says it is another content type).
    NotJson(String),
    /// The JSON is not a JWK Set.
    InvalidJwkSet(String),
    /// The JWK Set has no key we can use. The (empty) set was still swapped in: a provider's
    /// well-formed answer is authoritative. Returned by [`RemoteJwks::load`] and
    /// [`RemoteJwks::refresh_now`] so that a start-up check sees it.
    NoUsableKeys {
        /// How many keys were skipped.
        skipped: usize,
    },
    /// The discovery document names another issuer.
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The document's `issuer`.
        found: String,
    },
    /// The discovery document has no usable `jwks_uri`.
    NoJwksUri,
    /// Any other transport error.
    Http(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Setting(e) => write!(f, "invalid setting: {e}"),
            Self::InvalidUrl(u) => write!(f, "invalid URL {u:?}"),
            Self::Connect(e) => write!(f, "connection failed: {e}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Status(s) => write!(f, "HTTP status {s}, expected 200"),
            Self::CrossOriginRedirect(to) => write!(f, "redirect to another origin ({to}) refused"),
            Self::TooLarge { max } => write!(f, "response body larger than {max} bytes"),
            Self::NotJson(e) => write!(f, "response is not JSON: {e}"),
            Self::InvalidJwkSet(e) => write!(f, "not a JWK Set: {e}"),
            Self::NoUsableKeys { skipped } => write!(f, "JWK Set has no usable key ({skipped} skipped)"),
            Self::IssuerMismatch { expected, found } => {
                write!(
                    f,
                    "discovery document issuer {found:?} is not the configured {expected:?}"
                )
            }
            Self::NoJwksUri => f.write_str("discovery document has no valid jwks_uri"),
            Self::Http(e) => write!(f, "HTTP error: {e}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// Counters a user can read (e.g. export as metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheMetrics {
    /// Fetch attempts (background, forced and initial).
    pub fetches: u64,
    /// Failed fetch attempts.
    pub failures: u64,
    /// Forced refetches (unknown `kid`, a known `kid` whose signature failed, or no keys) that
    /// were made.
    pub forced_refetches: u64,
    /// Forced refetches refused by the cooldown.
    pub suppressed_refetches: u64,
    /// Fetches that got a well-formed JWK Set with no usable key (swapped in: it revokes).
    pub empty_sets: u64,
}

/// The state of the cache.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheStatus {
    /// Usable keys in the current snapshot.
    pub keys: usize,
    /// Time since the snapshot was fetched.
    pub age: Duration,
    /// Its TTL.
    pub ttl: Duration,
    /// The JWKS URL in use (after discovery).
    pub jwks_uri: Option<String>,
}

enum Location {
    JwksUri(String),
    Discovery { issuer: String },
}

/// Builds a [`RemoteJwks`].
pub struct RemoteJwksBuilder {
    location: Location,
    client: Option<Client>,
    settings: CacheSettings,
}

impl fmt::Debug for RemoteJwksBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwksBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RemoteJwksBuilder {
    /// Uses your own HTTP client (custom CA, proxy, User-Agent). Redirects to another origin
    /// are still refused and the total timeout still applies to each fetch.
    pub fn http_client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Replaces all settings.
    pub fn settings(mut self, settings: CacheSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Bounds of the TTL taken from `Cache-Control: max-age` (`min` at least one second).
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.settings.min_ttl = min;
        self.settings.max_ttl = max;
        self
    }

    /// TTL when the response has no `max-age`.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.settings.default_ttl = ttl;
        self
    }

    /// At most one forced refetch per `period` (at least one second).
    pub fn cooldown(mut self, period: Duration) -> Self {
        self.settings.cooldown = period;
        self
    }

    /// How long expired keys keep serving while fetches fail.
    pub fn max_stale(mut self, max: Duration) -> Self {
        self.settings.max_stale = max;
        self
    }

    /// First delay of the background refresher's retries after a failure; doubles up to the
    /// cooldown (at least one second).
    pub fn retry_backoff(mut self, delay: Duration) -> Self {
        self.settings.retry_backoff = delay;
        self
    }

    /// Total timeout of one fetch.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// Largest accepted body.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_body_bytes = bytes;
        self
    }

    /// Checks the URL and the settings, and builds the HTTP client.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stepup_tower::keys::{FetchError, RemoteJwks, SettingError};
    ///
    /// let err = RemoteJwks::from_jwks_uri("https://id.example.com/jwks")
    ///     .cooldown(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err, FetchError::Setting(SettingError::CooldownTooShort(Duration::ZERO)));
    /// ```
    pub fn build(self) -> Result<RemoteJwks, FetchError> {
        let url = match &self.location {
            Location::JwksUri(u) | Location::Discovery { issuer: u } => u,
        };
        parse_http_url(url)?;
        let s = &self.settings;
        let refused = if s.min_ttl < MIN_INTERVAL {
            Some(SettingError::MinTtlTooShort(s.min_ttl))
        } else if s.cooldown < MIN_INTERVAL {
            Some(SettingError::CooldownTooShort(s.cooldown))
        } else if s.retry_backoff < MIN_INTERVAL {
            Some(SettingError::RetryBackoffTooShort(s.retry_backoff))
        } else if s.min_ttl > s.max_ttl {
            Some(SettingError::TtlBoundsInverted {
                min: s.min_ttl,
                max: s.max_ttl,
            })
        } else {
            None
        };
        if let Some(e) = refused {
            return Err(FetchError::Setting(e));
        }
        let client = match self.client {
            Some(c) => c,
            None => Client::builder()
                .connect_timeout(s.connect_timeout)
                .timeout(s.timeout)
                .redirect(same_origin_redirects())
                .user_agent(concat!("stepup-tower/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| FetchError::Http(e.to_string()))?,
        };
        let jwks_uri = match &self.location {
            Location::JwksUri(u) => Some(Arc::new(parse_http_url(u)?)),
            Location::Discovery { .. } => None,
        };
        Ok(RemoteJwks {
            shared: Arc::new(Shared {
                location: self.location,
                client,
                settings: self.settings,
                jwks_uri: ArcSwapOption::new(jwks_uri),
                snapshot: ArcSwapOption::empty(),
                fetch_lock: tokio::sync::Mutex::new(()),
                last_forced: Mutex::new(None),
                background: AtomicBool::new(false),
                fetches: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                forced: AtomicU64::new(0),
                suppressed: AtomicU64::new(0),
                empty_sets: AtomicU64::new(0),
            }),
        })
    }
}

fn parse_http_url(u: &str) -> Result<Url, FetchError> {
    let url = Url::parse(u).map_err(|_| FetchError::InvalidUrl(u.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(FetchError::InvalidUrl(u.to_string()));
    }
    Ok(url)
}

fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(Url::origin);
        if attempt.previous().len() > 5 {
            attempt.error("too many redirects")
        } else if first.is_some_and(|o| o != attempt.url().origin()) {
            let to = attempt.url().origin().ascii_serialization();
            attempt.error(FetchError::CrossOriginRedirect(to))
        } else {
            attempt.follow()
        }
    })
}

struct Snapshot {
    keys: Arc<KeySet>,
    fetched: Instant,
    ttl: Duration,
}

struct Shared {
    location: Location,
    client: Client,
    settings: CacheSettings,
    jwks_uri: ArcSwapOption<Url>,
    snapshot: ArcSwapOption<Snapshot>,
    /// Held for the duration of every fetch: concurrent refreshers wait on it and then share
    /// the result (single-flight).
    fetch_lock: tokio::sync::Mutex<()>,
    /// When the last forced refetch started (only touched on the forced paths).
    last_forced: Mutex<Option<Instant>>,
    background: AtomicBool,
    fetches: AtomicU64,
    failures: AtomicU64,
    forced: AtomicU64,
    suppressed: AtomicU64,
    empty_sets: AtomicU64,
}

/// A JWK Set fetched over HTTP (from `jwks_uri` or by OIDC discovery), cached and refreshed as
/// described in the [module docs](self). Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct RemoteJwks {
    shared: Arc<Shared>,
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("status", &self.status())
            .field("metrics", &self.metrics())
            .finish()
    }
}

enum Forced<'a> {
    /// A fetch is in flight: wait for it and use its result.
    Wait,
    /// The cooldown has not passed.
    Suppressed,
    /// We fetch, holding the lock.
    Fetch(tokio::sync::MutexGuard<'a, ()>),
}

impl RemoteJwks {
    /// Keys from a known JWKS URL.
    pub fn from_jwks_uri(jwks_uri: impl Into<String>) -> RemoteJwksBuilder {
        RemoteJwksBuilder {
            location: Location::JwksUri(jwks_uri.into()),
            client: None,
            settings: CacheSettings::default(),
        }
    }

    /// Keys found by discovery from the issuer: `{issuer}/.well-known/openid-configuration`,
    /// then the RFC 8414 `/.well-known/oauth-authorization-server{path}` form. The document's
    /// `issuer` must equal `issuer` exactly.
    pub fn discover(issuer: impl Into<String>) -> RemoteJwksBuilder {
        RemoteJwksBuilder {
            location: Location::Discovery { issuer: issuer.into() },
            client: None,
            settings: CacheSettings::default(),
        }
    }

    /// Fetches now (discovery included) and starts the background refresher. Optional: without
    /// it, the first request that needs keys fetches them.
    ///
    /// A well-formed JWK Set without a usable key is swapped in (it is the provider's answer)
    /// and reported as [`FetchError::NoUsableKeys`].
    pub async fn load(&self) -> Result<(), FetchError> {
        self.ensure_background();
        let _guard = self.shared.fetch_lock.lock().await;
        usable(self.shared.fetch_and_swap("initial load").await?)
    }

    /// Fetches now, whatever the TTL and cooldown say (reported as [`RemoteJwks::load`]).
    pub async fn refresh_now(&self) -> Result<(), FetchError> {
        let _guard = self.shared.fetch_lock.lock().await;
        usable(self.shared.fetch_and_swap("explicit refresh").await?)
    }

    /// The counters.
    pub fn metrics(&self) -> CacheMetrics {
        let s = &self.shared;
        CacheMetrics {
            fetches: s.fetches.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            forced_refetches: s.forced.load(Ordering::Relaxed),
            suppressed_refetches: s.suppressed.load(Ordering::Relaxed),
            empty_sets: s.empty_sets.load(Ordering::Relaxed),
        }
    }

    /// The current snapshot, if any.
    pub fn status(&self) -> Option<CacheStatus> {
        let snap = self.shared.snapshot.load_full()?;
        Some(CacheStatus {
            keys: snap.keys.len(),
            age: snap.fetched.elapsed(),
            ttl: snap.ttl,
            jwks_uri: self.shared.jwks_uri.load_full().map(|u| u.to_string()),
        })
    }

    fn ensure_background(&self) {
        if self.shared.background.load(Ordering::Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.shared.background.swap(true, Ordering::AcqRel) {
            return;
        }
        handle.spawn(refresher(Arc::downgrade(&self.shared)));
    }
}

impl KeySource for RemoteJwks {
    fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        self.ensure_background();
        match self.shared.snapshot.load().as_ref() {
            Some(s) if s.keys.is_empty() => Err(KeyError::Unavailable("the issuer's JWK Set has no usable key".into())),
            Some(s) if s.fetched.elapsed() <= s.ttl.saturating_add(self.shared.settings.max_stale) => {
                Ok(s.keys.clone())
            }
            Some(_) => Err(KeyError::Unavailable(
                "cached keys are older than the maximum staleness".into(),
            )),
            None => Err(KeyError::Unavailable("keys not loaded yet".into())),
        }
    }

    fn refresh(&self, kid: Option<&str>) -> BoxFuture<'_, Result<Arc<KeySet>, KeyError>> {
        let kid = kid.map(str::to_string);
        Box::pin(self.forced_refresh(kid, Why::UnknownKid))
    }

    fn refresh_after_bad_signature(&self, kid: &str) -> BoxFuture<'_, Result<Arc<KeySet>, KeyError>> {
        let kid = Some(kid.to_string());
        Box::pin(self.forced_refresh(kid, Why::BadSignature))
    }
}

/// Why a request asks for a forced refetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// The `kid` (or any key) is not in the snapshot.
    UnknownKid,
    /// The `kid` is there but its key did not verify the signature.
    BadSignature,
}

fn usable(keys: Arc<KeySet>) -> Result<(), FetchError> {
    if keys.is_empty() {
        Err(FetchError::NoUsableKeys {
            skipped: keys.skipped().len(),
        })
    } else {
        Ok(())
    }
}

impl RemoteJwks {
    async fn forced_refresh(&self, kid: Option<String>, why: Why) -> Result<Arc<KeySet>, KeyError> {
        let shared = &self.shared;
        let cooldown = shared.settings.cooldown;
        // Twice at most: after waiting for another fetch (which may have been a background
        // refresh that began before the key was published), decide again.
        for _ in 0..2 {
            let decision = {
                let mut last = shared.last_forced.lock().unwrap_or_else(|p| p.into_inner());
                // A bad signature on a known kid refetches only keys older than the cooldown:
                // younger ones were just read from the provider.
                let fresh = why == Why::BadSignature
                    && shared
                        .snapshot
                        .load()
                        .as_ref()
                        .is_some_and(|s| s.fetched.elapsed() < cooldown);
                match shared.fetch_lock.try_lock() {
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
                    drop(shared.fetch_lock.lock().await);
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
                    shared.suppressed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(target: "stepup_tower", kid = ?kid, "forced JWKS refetch suppressed by the cooldown");
                    break;
                }
                Forced::Fetch(_guard) => {
                    shared.forced.fetch_add(1, Ordering::Relaxed);
                    let reason = match why {
                        Why::UnknownKid => "unknown kid",
                        Why::BadSignature => "known kid, bad signature",
                    };
                    tracing::info!(target: "stepup_tower", kid = ?kid, reason, "forced JWKS refetch");
                    // A failure is logged inside; the last good keys (if any) still answer.
                    let _ = shared.fetch_and_swap(reason).await;
                    break;
                }
            }
        }
        self.current()
    }
}

/// Refreshes ahead of expiry; retries failures with backoff. Ends when the cache is dropped.
async fn refresher(weak: Weak<Shared>) {
    let mut failures: u32 = 0;
    loop {
        let delay = {
            let Some(shared) = weak.upgrade() else { return };
            shared.next_refresh_in(failures)
        };
        tokio::time::sleep(delay).await;
        let Some(shared) = weak.upgrade() else { return };
        if failures == 0 && !shared.next_refresh_in(0).is_zero() {
            continue;
        }
        let _guard = shared.fetch_lock.lock().await;
        // Skip when another fetch (initial load, forced refetch) refreshed the snapshot meanwhile.
        if failures == 0 && !shared.next_refresh_in(0).is_zero() {
            continue;
        }
        match shared.fetch_and_swap("refresh ahead of expiry").await {
            Ok(_) => failures = 0,
            Err(_) => failures = failures.saturating_add(1),
        }
    }
}

impl Shared {
    fn next_refresh_in(&self, failures: u32) -> Duration {
        if failures > 0 {
            let backoff = self
                .settings
                .retry_backoff
                .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)));
            return backoff.min(self.settings.cooldown.max(self.settings.retry_backoff));
        }
        match self.snapshot.load().as_ref() {
            // Refresh at 80% of the TTL.
            Some(s) => (s.ttl.saturating_mul(4) / 5).saturating_sub(s.fetched.elapsed()),
            None => Duration::ZERO,
        }
    }

    async fn jwks_uri(&self) -> Result<Arc<Url>, FetchError> {
        if let Some(u) = self.jwks_uri.load_full() {
            return Ok(u);
        }
        let Location::Discovery { issuer } = &self.location else {
            return Err(FetchError::NoJwksUri);
        };
        let url = Arc::new(discover(&self.client, issuer, &self.settings).await?);
        self.jwks_uri.store(Some(url.clone()));
        Ok(url)
    }

    /// Fetches and swaps in a new snapshot. The caller holds `fetch_lock`.
    async fn fetch_and_swap(&self, reason: &'static str) -> Result<Arc<KeySet>, FetchError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = async {
            let url = self.jwks_uri().await?;
            tracing::debug!(target: "stepup_tower", url = %url, reason, "JWKS fetch started");
            let fetched = fetch_jwks(&self.client, &url, &self.settings).await;
            if fetched.is_err() && matches!(self.location, Location::Discovery { .. }) {
                // The provider may have moved its JWKS: discover again next time.
                self.jwks_uri.store(None);
            }
            fetched
        }
        .await;
        let elapsed_ms = started.elapsed().as_millis();
        match result {
            Ok((set, ttl)) => {
                for skipped in set.skipped() {
                    tracing::warn!(target: "stepup_tower", kid = ?skipped.kid, reason = %skipped.reason, "JWK skipped");
                }
                let keys = Arc::new(set);
                if keys.is_empty() {
                    self.empty_sets.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target: "stepup_tower", reason, skipped = keys.skipped().len(), ttl_s = ttl.as_secs(), elapsed_ms,
                        "JWKS fetched with no usable key; swapped in: every token of this issuer is refused until keys are published");
                } else {
                    tracing::info!(target: "stepup_tower", reason, keys = keys.len(), ttl_s = ttl.as_secs(), elapsed_ms, "JWKS fetched");
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
                let have = self.snapshot.load().as_ref().map(|s| s.keys.len());
                let url = match &self.location {
                    Location::JwksUri(u) | Location::Discovery { issuer: u } => u.as_str(),
                };
                tracing::warn!(target: "stepup_tower", url, reason, error = %e, elapsed_ms, cached_keys = ?have, "JWKS fetch failed; keeping the last good keys");
                Err(e)
            }
        }
    }
}

fn classify(e: &reqwest::Error) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout;
    }
    if e.is_redirect() {
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        while let Some(s) = source {
            if let Some(f) = s.downcast_ref::<FetchError>() {
                return f.clone();
            }
            source = s.source();
        }
        return FetchError::CrossOriginRedirect("unknown".into());
    }
    if e.is_connect() {
        return FetchError::Connect(e.to_string());
    }
    FetchError::Http(e.to_string())
}

/// GET a JSON document: 200 only, same origin after redirects, JSON content type, bounded body.
async fn get_json(
    client: &Client,
    url: &Url,
    settings: &CacheSettings,
    accept: &'static str,
) -> Result<(Vec<u8>, reqwest::header::HeaderMap), FetchError> {
    let mut res = client
        .get(url.clone())
        .header(ACCEPT, accept)
        .timeout(settings.timeout)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    if res.url().origin() != url.origin() {
        return Err(FetchError::CrossOriginRedirect(
            res.url().origin().ascii_serialization(),
        ));
    }
    if res.status() != StatusCode::OK {
        return Err(FetchError::Status(res.status().as_u16()));
    }
    if let Some(ct) = res.headers().get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !ct.contains("json") {
            return Err(FetchError::NotJson(format!("content-type {ct:?}")));
        }
    }
    let max = settings.max_body_bytes;
    if res.content_length().is_some_and(|l| l > max as u64) {
        return Err(FetchError::TooLarge { max });
    }
    let headers = res.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| classify(&e))? {
        if body.len() + chunk.len() > max {
            return Err(FetchError::TooLarge { max });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, headers))
}

async fn fetch_jwks(client: &Client, url: &Url, settings: &CacheSettings) -> Result<(KeySet, Duration), FetchError> {
    let (body, headers) = get_json(client, url, settings, "application/jwk-set+json, application/json").await?;
    serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| FetchError::NotJson(e.to_string()))?;
    // A well-formed JWK Set is the provider's word, even without a usable key: the caller
    // swaps it in (revocation by emptying the set).
    let set = KeySet::from_jwks_json(&body).map_err(|e| FetchError::InvalidJwkSet(e.to_string()))?;
    let ttl = ttl_from(&headers, settings);
    Ok((set, ttl))
}

/// RFC 9111 §5.2.2.1 `max-age`, clamped; `no-cache`/`no-store` mean the minimum.
fn ttl_from(headers: &reqwest::header::HeaderMap, s: &CacheSettings) -> Duration {
    let mut ttl = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',') {
            let d = directive.trim().to_ascii_lowercase();
            if d == "no-cache" || d == "no-store" {
                ttl = Some(Duration::ZERO);
            } else if let Some(v) = d.strip_prefix("max-age=")
                && let Ok(secs) = v.trim_matches('"').parse::<u64>()
            {
                ttl = Some(ttl.map_or(Duration::from_secs(secs), |t: Duration| {
                    t.min(Duration::from_secs(secs))
                }));
            }
        }
    }
    ttl.unwrap_or(s.default_ttl).clamp(s.min_ttl, s.max_ttl)
}

async fn discover(client: &Client, issuer: &str, settings: &CacheSettings) -> Result<Url, FetchError> {
    let base = parse_http_url(issuer)?;
    let oidc = parse_http_url(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))?;
    // RFC 8414 §3: the well-known segment goes between the host and the issuer's path.
    let path = base.path().trim_end_matches('/');
    let oauth = parse_http_url(&format!(
        "{}/.well-known/oauth-authorization-server{path}",
        base.origin().ascii_serialization()
    ))?;
    let mut last = FetchError::NoJwksUri;
    for url in [oidc, oauth] {
        let started = Instant::now();
        match get_json(client, &url, settings, "application/json").await {
            Ok((body, _)) => {
                let doc: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| FetchError::NotJson(e.to_string()))?;
                let found = doc.get("issuer").and_then(|v| v.as_str()).unwrap_or_default();
                if found != issuer {
                    let e = FetchError::IssuerMismatch {
                        expected: issuer.to_string(),
                        found: found.to_string(),
                    };
                    tracing::error!(target: "stepup_tower", url = %url, error = %e, "discovery refused");
                    return Err(e);
                }
                let jwks = doc
                    .get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .ok_or(FetchError::NoJwksUri)?;
                let jwks = parse_http_url(jwks).map_err(|_| FetchError::NoJwksUri)?;
                // An https issuer must not send us to plain http for its keys.
                if base.scheme() == "https" && jwks.scheme() != "https" {
                    return Err(FetchError::NoJwksUri);
                }
                tracing::info!(target: "stepup_tower", url = %url, jwks_uri = %jwks, elapsed_ms = started.elapsed().as_millis(), "discovery done");
                return Ok(jwks);
            }
            Err(e @ FetchError::Status(404)) => last = e,
            Err(e) => {
                tracing::warn!(target: "stepup_tower", url = %url, error = %e, "discovery failed");
                return Err(e);
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn cc(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn ttl_is_clamped() {
        let s = CacheSettings::default();
        assert_eq!(ttl_from(&HeaderMap::new(), &s), Duration::from_secs(600));
        assert_eq!(ttl_from(&cc("public, max-age=3600"), &s), Duration::from_secs(3600));
        assert_eq!(ttl_from(&cc("max-age=5"), &s), Duration::from_secs(60));
        assert_eq!(ttl_from(&cc("max-age=9999999"), &s), Duration::from_secs(86400));
        assert_eq!(ttl_from(&cc("no-store"), &s), Duration::from_secs(60));
        assert_eq!(ttl_from(&cc("max-age=abc"), &s), Duration::from_secs(600));
    }
}
