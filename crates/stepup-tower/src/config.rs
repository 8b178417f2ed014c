//! [`StepUp`]: the validated, shared configuration every layer of an application uses.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::ConfigError;
use crate::keys::Key;
use crate::require::AcrLadder;
use crate::response::{Answers, DefaultResponder, Responder};
use crate::verify::{
    DEFAULT_MAX_HEADER_LEN, DEFAULT_MAX_TOKEN_LEN, Issuer, Outcome, VerifiedToken, Verifier, VerifyError, issuer,
};

/// Default leeway for every time check.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// The source of "now", in seconds since the epoch. Replaceable for tests.
pub(crate) type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

fn system_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The DPoP rules of a layer, ready for requests.
pub(crate) struct DpopRuntime {
    pub(crate) proofs: crate::dpop::ProofVerifier,
    pub(crate) public_url: Option<crate::dpop::PublicUrl>,
    pub(crate) replay: Arc<dyn crate::dpop::ReplayStore>,
    pub(crate) fail_open: bool,
    pub(crate) nonces: Option<crate::dpop::DpopNonces>,
    pub(crate) window: i64,
}

pub(crate) struct Inner {
    pub(crate) id: u64,
    #[cfg(feature = "metrics")]
    pub(crate) completions: crate::observe::Completions,
    #[cfg(feature = "metrics")]
    pub(crate) hot: crate::observe::Hot,
    pub(crate) verifier: Verifier,
    pub(crate) dpop: Option<DpopRuntime>,
    pub(crate) answers: Answers,
    pub(crate) ladder: Option<AcrLadder>,
    pub(crate) clock: Clock,
}

/// Verification and answer rules, built once with [`StepUp::builder`] and shared by every
/// layer made from it (cloning is an `Arc` clone).
///
/// ```
/// use stepup_tower::{StepUp, Issuer, Requirement, keys::KeySet};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = KeySet::from_hmac_secret(b"a client secret of at least 32 bytes!")?;
/// let auth = StepUp::builder()
///     .issuer(Issuer::id_tokens("https://id.example.com", "my-client").static_keys(keys))
///     .realm("example")
///     .build()?;
/// let mfa_only = auth.require(Requirement::new().amr_any(["mfa"]));
/// # let _ = mfa_only;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StepUp {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for StepUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepUp")
            .field(
                "issuers",
                &self
                    .inner
                    .verifier
                    .issuers
                    .iter()
                    .map(|i| &i.issuer)
                    .collect::<Vec<_>>(),
            )
            .field("realm", &self.inner.answers.realm)
            .finish_non_exhaustive()
    }
}

impl StepUp {
    /// Starts a configuration.
    pub fn builder() -> StepUpBuilder {
        StepUpBuilder::default()
    }

    /// Verifies a raw token (without the `Bearer ` prefix) outside of any request, as a
    /// bearer token: a sender-constrained token (`cnf`) is refused, since no proof comes with it.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, VerifyError> {
        let verified = match self.verify_now(token, self.now()) {
            Outcome::Done(r) => r,
            Outcome::NeedsKeys { issuer, kid, failed } => self.verify_after_refresh(token, issuer, kid, failed).await,
        }?;
        if verified.is_sender_constrained() {
            return Err(VerifyError::SenderConstrained);
        }
        Ok(verified)
    }

    /// Counters of the verified-token cache (all zero when it is off).
    pub fn token_cache_metrics(&self) -> crate::verify::TokenCacheMetrics {
        self.inner.verifier.cache_metrics()
    }

    pub(crate) fn now(&self) -> i64 {
        (self.inner.clock)()
    }

    /// The cache, then (on a miss) every check, at `now`.
    pub(crate) fn verify_now(&self, token: &str, now: i64) -> Outcome {
        match self.inner.verifier.cached(token.as_bytes(), now) {
            Some(hit) => Outcome::Done(Ok(hit)),
            None => self.inner.verifier.verify(token, now, None, true),
        }
    }

    pub(crate) async fn verify_after_refresh(
        &self,
        token: &str,
        issuer: usize,
        kid: Option<String>,
        failed: Option<Arc<Key>>,
    ) -> Result<Arc<VerifiedToken>, VerifyError> {
        let Some(rules) = self.inner.verifier.issuer(issuer) else {
            return Err(VerifyError::UnknownIssuer);
        };
        let refreshed = match (&failed, kid.as_deref()) {
            (Some(_), Some(kid)) => rules.keys.refresh_after_bad_signature(kid).await,
            _ => rules.keys.refresh(kid.as_deref()).await,
        };
        let keys = match refreshed {
            Ok(keys) => keys,
            Err(e) => return Err(VerifyError::KeysUnavailable(e)),
        };
        // Same material under that kid: the token is simply bad; do not verify it again.
        if let Some(failed) = &failed {
            let unchanged = keys
                .keys()
                .any(|k| k.kid() == kid.as_deref() && k.same_material(failed));
            if unchanged {
                let alg_ok = self
                    .inner
                    .verifier
                    .header_alg(token)
                    .is_some_and(|alg| failed.permits(alg));
                return Err(if alg_ok {
                    VerifyError::BadSignature
                } else {
                    VerifyError::KeyAlgorithmMismatch
                });
            }
        }
        match self.inner.verifier.verify(token, self.now(), Some(keys), false) {
            Outcome::Done(r) => r,
            Outcome::NeedsKeys { kid, .. } => Err(VerifyError::KeyNotFound { kid }),
        }
    }
}

/// Builds a [`StepUp`]; [`StepUpBuilder::build`] validates everything once.
#[must_use]
pub struct StepUpBuilder {
    issuers: Vec<Issuer>,
    realm: Option<String>,
    resource_metadata: Option<String>,
    ladder: Option<AcrLadder>,
    leeway: Duration,
    max_token_len: usize,
    max_header_len: usize,
    responder: Arc<dyn Responder>,
    clock: Clock,
    unavailable_is_503: bool,
    token_cache: Option<(usize, Duration)>,
    dpop: Option<crate::dpop::Dpop>,
    login: Option<crate::navigation::LoginRedirect>,
}

impl Default for StepUpBuilder {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            realm: None,
            resource_metadata: None,
            ladder: None,
            leeway: DEFAULT_LEEWAY,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            max_header_len: DEFAULT_MAX_HEADER_LEN,
            responder: Arc::new(DefaultResponder),
            clock: Arc::new(system_clock),
            unavailable_is_503: false,
            token_cache: None,
            dpop: None,
            login: None,
        }
    }
}

impl fmt::Debug for StepUpBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepUpBuilder")
            .field("issuers", &self.issuers)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl StepUpBuilder {
    /// Trusts an issuer. Several may be configured; a token's `iss` picks one (exact match).
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// The `realm` of every challenge.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// RFC 9728 `resource_metadata` URL added to every challenge.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// Names this RFC 9728 document in every challenge (`resource_metadata`, RFC 9728 §5.1);
    /// serve it with [`ResourceMetadata::service`](crate::metadata::ResourceMetadata::service).
    pub fn protected_resource(self, metadata: &crate::metadata::ResourceMetadata) -> Self {
        self.resource_metadata(metadata.url())
    }

    /// The acr ladder used by every requirement.
    pub fn acr_ladder(mut self, ladder: AcrLadder) -> Self {
        self.ladder = Some(ladder);
        self
    }

    /// Leeway for `exp`, `nbf`, `iat` and `max_age` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Bound on the `Authorization` header and the token, in bytes (default 16 KiB).
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// Bound on the encoded JOSE header, in bytes (default 4 KiB).
    pub fn max_header_len(mut self, bytes: usize) -> Self {
        self.max_header_len = bytes;
        self
    }

    /// Replaces the refusal response.
    pub fn responder(mut self, responder: impl Responder) -> Self {
        self.responder = Arc::new(responder);
        self
    }

    /// Replaces the clock (seconds since the epoch).
    pub fn clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Turns on the verified-token cache (off by default): a repeated token skips signature
    /// verification. At most `max_entries` tokens (each entry holds its token string, the key)
    /// for at most `ttl` each (and never past their `exp`); time claims are checked again on
    /// every hit, requirements are always evaluated, and an entry dies with the key that
    /// verified it.
    pub fn token_cache(mut self, max_entries: usize, ttl: Duration) -> Self {
        self.token_cache = (max_entries > 0).then_some((max_entries, ttl));
        self
    }

    /// Answer 503 (with `Retry-After`, no challenge) instead of 401 `invalid_token` when an
    /// issuer's keys cannot be had at all.
    pub fn unavailable_keys_as_503(mut self) -> Self {
        self.unavailable_is_503 = true;
        self
    }

    /// The DPoP proof rules (RFC 9449) for issuers that accept DPoP
    /// ([`Issuer::dpop`](crate::Issuer::dpop)). Without this call such issuers use
    /// [`Dpop::new`](crate::dpop::Dpop::new)'s defaults. See [`dpop`](crate::dpop).
    pub fn dpop(mut self, dpop: crate::dpop::Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// Sends browser navigations that need a step-up (and, if chosen, those without a token)
    /// to a login URL with `303 See Other` instead of answering 401; API calls keep the 401.
    /// See [`navigation`](crate::navigation).
    pub fn login_redirect(mut self, login: crate::navigation::LoginRedirect) -> Self {
        self.login = Some(login);
        self
    }

    /// Validates the configuration.
    pub fn build(self) -> Result<StepUp, ConfigError> {
        crate::crypto::install_provider();
        if self.issuers.is_empty() {
            return Err(ConfigError::NoIssuer);
        }
        let mut issuers = Vec::with_capacity(self.issuers.len());
        for i in self.issuers {
            if issuers.iter().any(|r: &issuer::IssuerRules| r.issuer == i.issuer) {
                return Err(ConfigError::DuplicateIssuer(i.issuer));
            }
            issuers.push(issuer::validate(i)?);
        }
        if let Some(ladder) = &self.ladder {
            crate::require::Requirement::new()
                .acr(ladder.values().cloned())
                .validate()
                .map_err(ConfigError::UnsendableValue)?;
        }
        let leeway = i64::try_from(self.leeway.as_secs()).map_err(|_| ConfigError::LeewayTooLarge)?;
        use crate::dpop::DpopMode;
        let dpop_on = issuers.iter().any(|i| i.dpop != DpopMode::Off);
        let bearer_on = issuers.iter().any(|i| i.dpop != DpopMode::Required);
        let (dpop, dpop_answers) = match (dpop_on, self.dpop) {
            (false, Some(_)) => return Err(ConfigError::DpopUnused),
            (false, None) => (None, None),
            (true, config) => {
                let config = config.unwrap_or_default();
                if config.algorithms.is_empty() {
                    return Err(ConfigError::NoProofAlgorithm);
                }
                let window = i64::try_from(config.window.as_secs()).map_err(|_| ConfigError::LeewayTooLarge)?;
                let answers = crate::response::DpopAnswers {
                    algs: config.algs(),
                    bearer: bearer_on,
                };
                let runtime = DpopRuntime {
                    proofs: crate::dpop::ProofVerifier::new(config.algorithms, window, config.max_proof_len),
                    public_url: config.public_url,
                    replay: config.replay,
                    fail_open: config.fail_open,
                    nonces: config.nonces,
                    window,
                };
                (Some(runtime), Some(answers))
            }
        };
        Ok(StepUp {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                #[cfg(feature = "metrics")]
                completions: crate::observe::Completions::default(),
                #[cfg(feature = "metrics")]
                hot: crate::observe::Hot::default(),
                verifier: Verifier {
                    issuers,
                    leeway,
                    max_token_len: self.max_token_len,
                    max_header_len: self.max_header_len,
                    cache: self.token_cache.map(|(n, ttl)| {
                        crate::verify::cache::TokenCache::new(n, i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))
                    }),
                },
                dpop,
                answers: Answers {
                    realm: self.realm,
                    resource_metadata: self.resource_metadata,
                    responder: self.responder,
                    unavailable_is_503: self.unavailable_is_503,
                    dpop: dpop_answers,
                    login: self.login,
                },
                ladder: self.ladder,
                clock: self.clock,
            }),
        })
    }
}
