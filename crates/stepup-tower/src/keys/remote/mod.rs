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
//!   `cooldown` and `retry_backoff` must each be at least one second ([`BuildError`]).
//! - **HTTP**: rustls, connect and total timeouts, a body cap (256 KiB), only `200` with a JSON
//!   body, redirects only within the same origin. Every failure is a [`FetchError`] and a
//!   `tracing` event with the reason.

mod cache;
mod fetch;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;

use super::{BoxFuture, KeyError, KeySet, KeySource};
use cache::{Cache, Why};
use fetch::{HttpSource, Location};

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

/// Why [`RemoteJwksBuilder::build`] refused: each setting that could make the cache fetch in a
/// loop has its own variant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The URL is not an http(s) URL with a host.
    InvalidUrl(String),
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
    /// The HTTP client could not be built.
    HttpClient(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(u) => write!(f, "invalid URL {u:?}: an http(s) URL with a host is needed"),
            Self::MinTtlTooShort(d) => write!(f, "min_ttl of {d:?} is under the 1 s minimum"),
            Self::CooldownTooShort(d) => write!(f, "cooldown of {d:?} is under the 1 s minimum"),
            Self::RetryBackoffTooShort(d) => write!(f, "retry_backoff of {d:?} is under the 1 s minimum"),
            Self::TtlBoundsInverted { min, max } => write!(f, "min_ttl {min:?} is larger than max_ttl {max:?}"),
            Self::HttpClient(e) => write!(f, "HTTP client: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// The smallest `min_ttl`, `cooldown` and `retry_backoff` the builder accepts.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Why discovering the JWKS URL or fetching the keys failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
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

impl FetchError {
    /// A fixed, short name of the failure (a metrics label).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "invalid_url",
            Self::Connect(_) => "connect",
            Self::Timeout => "timeout",
            Self::Status(_) => "status",
            Self::CrossOriginRedirect(_) => "redirect",
            Self::TooLarge { .. } => "too_large",
            Self::NotJson(_) => "not_json",
            Self::InvalidJwkSet(_) => "not_a_jwk_set",
            Self::NoUsableKeys { .. } => "no_usable_keys",
            Self::IssuerMismatch { .. } => "issuer_mismatch",
            Self::NoJwksUri => "no_jwks_uri",
            Self::Http(_) => "http",
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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

/// Builds a [`RemoteJwks`].
#[must_use]
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
    /// use stepup_tower::keys::{BuildError, RemoteJwks};
    ///
    /// let err = RemoteJwks::from_jwks_uri("https://id.example.com/jwks")
    ///     .cooldown(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err, BuildError::CooldownTooShort(Duration::ZERO));
    /// ```
    pub fn build(self) -> Result<RemoteJwks, BuildError> {
        let s = &self.settings;
        if s.min_ttl < MIN_INTERVAL {
            return Err(BuildError::MinTtlTooShort(s.min_ttl));
        }
        if s.cooldown < MIN_INTERVAL {
            return Err(BuildError::CooldownTooShort(s.cooldown));
        }
        if s.retry_backoff < MIN_INTERVAL {
            return Err(BuildError::RetryBackoffTooShort(s.retry_backoff));
        }
        if s.min_ttl > s.max_ttl {
            return Err(BuildError::TtlBoundsInverted {
                min: s.min_ttl,
                max: s.max_ttl,
            });
        }
        let client = match self.client {
            Some(c) => c,
            None => fetch::default_client(s).map_err(|e| BuildError::HttpClient(e.to_string()))?,
        };
        let url = self.location.url().to_string();
        let source =
            HttpSource::new(self.location, client, self.settings.clone()).map_err(|_| BuildError::InvalidUrl(url))?;
        Ok(RemoteJwks {
            cache: Arc::new(Cache::new(source, self.settings)),
        })
    }
}

/// A JWK Set fetched over HTTP (from `jwks_uri` or by OIDC discovery), cached and refreshed as
/// described in the [module docs](self). Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct RemoteJwks {
    cache: Arc<Cache<HttpSource>>,
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("status", &self.status())
            .field("metrics", &self.metrics())
            .finish()
    }
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
        self.cache.ensure_background();
        self.cache.fetch_now("initial load").await
    }

    /// Fetches now, whatever the TTL and cooldown say (reported as [`RemoteJwks::load`]).
    pub async fn refresh_now(&self) -> Result<(), FetchError> {
        self.cache.fetch_now("explicit refresh").await
    }

    /// The counters.
    pub fn metrics(&self) -> CacheMetrics {
        self.cache.metrics()
    }

    /// The current snapshot, if any.
    pub fn status(&self) -> Option<CacheStatus> {
        let snap = self.cache.snapshot()?;
        Some(CacheStatus {
            keys: snap.keys.len(),
            age: snap.fetched.elapsed(),
            ttl: snap.ttl,
            jwks_uri: self.cache.source.jwks_uri(),
        })
    }
}

impl KeySource for RemoteJwks {
    fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        self.cache.ensure_background();
        self.cache.current()
    }

    fn refresh(&self, kid: Option<&str>) -> BoxFuture<'_, Result<Arc<KeySet>, KeyError>> {
        let kid = kid.map(str::to_string);
        Box::pin(self.cache.forced_refresh(kid, Why::UnknownKid))
    }

    fn refresh_after_bad_signature(&self, kid: &str) -> BoxFuture<'_, Result<Arc<KeySet>, KeyError>> {
        let kid = Some(kid.to_string());
        Box::pin(self.cache.forced_refresh(kid, Why::BadSignature))
    }
}
