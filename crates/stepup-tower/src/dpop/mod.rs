//! Sender-constrained tokens: DPoP (RFC 9449).
//!
//! A DPoP-bound access token carries `cnf.jkt`, the RFC 7638 thumbprint of a key only the
//! client holds. With each request the client sends `Authorization: DPoP <token>` and one
//! `DPoP` header: a proof JWT signed by that key, naming the method and URL and hashing the
//! token. A stolen token is useless without the key, and a stolen proof is useless anywhere
//! else and a second time.
//!
//! Per issuer, DPoP is [`DpopMode::Off`] (the default: a token with `cnf` is refused),
//! [`DpopMode::Allowed`] (bound tokens need their proof; unbound tokens keep working as bearer
//! tokens) or [`DpopMode::Required`] (bearer tokens are refused). The proof rules are set once
//! per [`StepUp`](crate::StepUp) with [`Dpop`]:
//!
//! ```
//! use std::time::Duration;
//! use stepup_tower::{Issuer, StepUp, dpop::{Dpop, DpopMode}, keys::KeySet};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let keys = KeySet::new();
//! let auth = StepUp::builder()
//!     .issuer(Issuer::access_tokens("https://id.example.com").audience("bank-api")
//!         .dpop(DpopMode::Allowed)
//!         .static_keys(keys))
//!     .dpop(Dpop::new()
//!         // The URL clients call, as they see it (behind a proxy, not the local address).
//!         .public_url("https://bank.example.com")?
//!         .proof_window(Duration::from_secs(60)))
//!     .realm("bank")
//!     .build()?;
//! # Ok(())
//! # }
//! ```
//!
//! What is checked (RFC 9449 §4.3, §7), cheapest first:
//!
//! 1. exactly one `DPoP` header, a compact JWS of bounded size, no duplicate JSON members;
//! 2. header `typ` `dpop+jwt`, `alg` asymmetric and in [`Dpop::algorithms`], `jwk` a public
//!    key of a type that `alg` fits (no private members), no `crit`;
//! 3. the signature, with that `jwk`;
//! 4. `jti` (a string of at most 256 bytes), `htm` equal to the method, `htu` equal to the
//!    request URL without query and fragment (scheme and host compared case-insensitively,
//!    default ports dropped), `iat` within [`Dpop::proof_window`] of now, `ath` equal to
//!    base64url(SHA-256(access token));
//! 5. `nonce`, when nonces are on ([`Dpop::nonces`]): one this service issued and not
//!    expired, else `use_dpop_nonce` with a fresh `DPoP-Nonce`;
//! 6. the access token itself (signature and claims, from the verified-token cache when it is
//!    on); its `cnf.jkt` equals the thumbprint of the proof's `jwk`;
//! 7. the (`jkt`, `jti`) pair was never spent: the [`ReplayStore`] inserts it for as long as
//!    the proof could be accepted. A store that cannot answer gives 503 (fail-closed) unless
//!    [`Dpop::replay_fail_open`] was chosen.
//!
//! The proof key's parsed form and thumbprint are cached by the proof's encoded header (the
//! same for every request of a client), so a request costs one signature verification of the
//! proof plus what the token costs.

mod nonce;
mod proof;
#[cfg(feature = "redis")]
mod redis;
mod replay;

#[cfg(feature = "redis")]
pub use redis::*;

pub use nonce::{DEFAULT_NONCE_LIFETIME, DpopNonces};
pub use proof::{DpopError, VerifiedProof, jwk_thumbprint};
pub use replay::{
    DEFAULT_REPLAY_CAPACITY, Insert, InsertFuture, MemoryReplayStore, ReplayError, ReplayKey, ReplayStore,
};

pub(crate) use proof::{ExpectedUrl, ProofVerifier, PublicUrl};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

/// Whether an issuer's tokens may or must be DPoP-bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpopMode {
    /// No DPoP: the `DPoP` scheme is not accepted for this issuer and a token with `cnf` is
    /// refused (it cannot be used safely without its proof).
    #[default]
    Off,
    /// Bound tokens (`cnf.jkt`) need `Authorization: DPoP` and a valid proof; unbound tokens
    /// are accepted as bearer tokens.
    Allowed,
    /// Only bound tokens with a valid proof are accepted.
    Required,
}

impl DpopMode {
    /// Reads `off`, `allowed` or `required` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Some(Self::Off),
            "allowed" => Some(Self::Allowed),
            "required" => Some(Self::Required),
            _ => None,
        }
    }
}

/// Algorithms accepted for proofs by default: the asymmetric algorithms clients use.
pub const DEFAULT_PROOF_ALGORITHMS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// Default [`Dpop::proof_window`]: 60 seconds either side of now.
pub const DEFAULT_PROOF_WINDOW: Duration = Duration::from_secs(60);

/// Default bound on a `DPoP` header, in bytes (an RSA-4096 proof is about 1.5 KB).
pub const DEFAULT_MAX_PROOF_LEN: usize = 8 * 1024;

/// Proof rules for every DPoP issuer of a [`StepUp`](crate::StepUp).
#[derive(Clone)]
#[must_use]
pub struct Dpop {
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) window: Duration,
    pub(crate) public_url: Option<PublicUrl>,
    pub(crate) replay: Arc<dyn ReplayStore>,
    pub(crate) fail_open: bool,
    pub(crate) nonces: Option<DpopNonces>,
    pub(crate) max_proof_len: usize,
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("algorithms", &self.algorithms)
            .field("window", &self.window)
            .field("public_url", &self.public_url)
            .field("fail_open", &self.fail_open)
            .field("nonces", &self.nonces.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Dpop {
    fn default() -> Self {
        Self::new()
    }
}

/// A `public_url` that is not an absolute `http(s)` URL without query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPublicUrl(pub(crate) &'static str);

impl fmt::Display for InvalidPublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid DPoP public URL: {}", self.0)
    }
}

impl std::error::Error for InvalidPublicUrl {}

impl Dpop {
    /// The defaults: [`DEFAULT_PROOF_ALGORITHMS`], a 60 s window, the in-memory replay store,
    /// fail-closed, no nonces, `htu` checked against the request's `Host`.
    pub fn new() -> Self {
        Self {
            algorithms: DEFAULT_PROOF_ALGORITHMS.to_vec(),
            window: DEFAULT_PROOF_WINDOW,
            public_url: None,
            replay: Arc::new(MemoryReplayStore::default()),
            fail_open: false,
            nonces: None,
            max_proof_len: DEFAULT_MAX_PROOF_LEN,
        }
    }

    /// The proof algorithms accepted (sent as `algs` in challenges). Symmetric algorithms are
    /// dropped: a proof is signed with a private key (RFC 9449 §4.2).
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs
            .into_iter()
            .filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
            .collect();
        self
    }

    /// How far a proof's `iat` may be from now, either way (default 60 s). Also how long a
    /// spent `jti` is remembered.
    pub fn proof_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The URL clients use to reach this service (`https://bank.example.com`, or with a path
    /// prefix a proxy strips: `https://example.com/bank`). `htu` must equal it followed by the
    /// request path. Set it whenever a proxy or load balancer is in front: replicas then agree
    /// on one URL whatever address each listens on.
    ///
    /// Without it, `htu` must name the request's `Host` (or HTTP/2 `:authority`) and path,
    /// with the scheme of the request URI when it has one, else `http` or `https`.
    pub fn public_url(mut self, url: impl AsRef<str>) -> Result<Self, InvalidPublicUrl> {
        self.public_url = Some(PublicUrl::parse(url.as_ref())?);
        Ok(self)
    }

    /// Where spent proofs are remembered (default: [`MemoryReplayStore`], right for one
    /// process). Replicas behind one load balancer need a shared store.
    pub fn replay_store(self, store: impl ReplayStore) -> Self {
        self.shared_replay_store(Arc::new(store))
    }

    /// As [`Dpop::replay_store`], with a store shared with other code.
    pub fn shared_replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.replay = store;
        self
    }

    /// When the replay store cannot answer, accept the proof anyway (logged at `warn`) instead
    /// of answering 503. A replayed proof then passes during the outage: choose it only where
    /// availability matters more than that.
    pub fn replay_fail_open(mut self) -> Self {
        self.fail_open = true;
        self
    }

    /// Demands server nonces (RFC 9449 §8–9): proofs must carry a `nonce` this service issued
    /// within its lifetime; others get `use_dpop_nonce` with a fresh `DPoP-Nonce`.
    pub fn nonces(mut self, nonces: DpopNonces) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// Bound on the `DPoP` header, in bytes (default 8 KiB).
    pub fn max_proof_len(mut self, bytes: usize) -> Self {
        self.max_proof_len = bytes;
        self
    }

    /// The `algs` challenge parameter: the accepted algorithms, space-separated.
    pub(crate) fn algs(&self) -> Vec<String> {
        self.algorithms.iter().map(|a| format!("{a:?}")).collect()
    }
}
