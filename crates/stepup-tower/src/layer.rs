//! The tower [`Layer`] and [`Service`] that put the steps in order:
//! `bearer → verify → require → response`.
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use stepup_tower::{AuthContext, Issuer, Requirement, StepUp, keys::KeySet};
//!
//! const MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let jwks = br#"{"keys":[]}"#;
//! let auth = StepUp::builder()
//!     .issuer(Issuer::access_tokens("https://id.example.com").audience("bank-api")
//!         .static_keys(KeySet::from_jwks_json(jwks)?))
//!     .realm("bank")
//!     .build()?;
//!
//! async fn balance(ctx: AuthContext) -> String { format!("hello {:?}", ctx.sub) }
//! async fn transfer(ctx: AuthContext) -> &'static str { "sent" }
//!
//! let app: Router = Router::new()
//!     .route("/transfer", post(transfer))
//!     .route_layer(auth.require(Requirement::new().acr([MFA]).max_age(300)))
//!     .route("/balance", get(balance))
//!     .layer(auth.authenticate());
//! # Ok(())
//! # }
//! ```
//!
//! The service verifies the token once and stores the result in the request extensions; a
//! later layer made from the same [`StepUp`] reuses it and only checks its own requirement.
//! When the token names a `kid` the key set lacks, the request waits for the key source's
//! refresh (which is rate-limited and shared); every other request completes without awaiting
//! anything.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use std::time::Duration;

use crate::bearer;
use crate::challenge::AuthScheme;
use crate::config::StepUp;
use crate::dpop::{DpopError, DpopMode, ExpectedUrl, Insert, ReplayKey, VerifiedProof};
use crate::error::ConfigError;
use crate::keys::Key;
use crate::require::Requirement;
use crate::response::{Answers, Refusal};
use crate::verify::claims::Binding;
use crate::verify::{Outcome, VerifiedToken, VerifyError};

/// Identifies a requirement layer (its clones share the `Arc`) for the completion metrics.
#[cfg(feature = "metrics")]
fn layer_id(requirement: &Arc<Requirement>) -> usize {
    Arc::as_ptr(requirement) as usize
}

/// The `DPoP` request header (RFC 9449 §4.1).
const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Required,
    Optional,
}

/// What the layer leaves in the request extensions for later layers and extractors.
#[derive(Clone)]
pub(crate) struct AuthState {
    pub(crate) step_up: StepUp,
    pub(crate) token: Option<Arc<VerifiedToken>>,
    /// The scheme the token came under.
    pub(crate) scheme: Option<AuthScheme>,
}

impl AuthState {
    fn new(step_up: &StepUp, token: Option<Arc<VerifiedToken>>, scheme: Option<AuthScheme>) -> Self {
        Self {
            step_up: step_up.clone(),
            token,
            scheme,
        }
    }
}

/// Verifies bearer tokens and enforces a requirement. Made by [`StepUp::authenticate`],
/// [`StepUp::optional`] and [`StepUp::require`].
#[derive(Clone, Debug)]
#[must_use]
pub struct StepUpLayer {
    config: Arc<LayerConfig>,
}

/// A layer's settings, shared by the services it makes: cloning a service (axum does, per
/// request) costs one reference count.
#[derive(Clone, Debug)]
pub(crate) struct LayerConfig {
    step_up: StepUp,
    mode: Mode,
    requirement: Option<Arc<Requirement>>,
    route_label: Option<Arc<str>>,
}

impl StepUpLayer {
    pub(crate) fn new(step_up: StepUp, mode: Mode, requirement: Option<Arc<Requirement>>) -> Self {
        if let Some(r) = &requirement
            && let Err(e) = r.validate()
        {
            tracing::error!(target: "stepup_tower", error = %e, "requirement values cannot be sent in a challenge; use StepUp::try_require to refuse them");
        }
        Self {
            config: Arc::new(LayerConfig {
                step_up,
                mode,
                requirement,
                route_label: None,
            }),
        }
    }

    /// The `route` label of this layer's metrics (feature `metrics`) where axum's
    /// `MatchedPath` is not there (outside a router, or a layer around the whole router).
    /// A fixed name, never a raw path.
    pub fn route_label(mut self, label: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).route_label = Some(Arc::from(label.into()));
        self
    }
}

/// The layer constructors.
impl StepUp {
    /// A layer that requires a valid bearer token on every request it sees.
    pub fn authenticate(&self) -> StepUpLayer {
        StepUpLayer::new(self.clone(), Mode::Required, None)
    }

    /// A layer that verifies a token when one is sent (a bad one is refused) and lets requests
    /// without any through; handlers read `Option<AuthContext>` / `Option<Claims<T>>`.
    pub fn optional(&self) -> StepUpLayer {
        StepUpLayer::new(self.clone(), Mode::Optional, None)
    }

    /// A layer that requires a valid token meeting `requirement`. Attach it with
    /// `Router::route_layer`. The token is verified once per request, however many of these
    /// layers (and [`StepUp::authenticate`]) it passes.
    pub fn require(&self, requirement: Requirement) -> StepUpLayer {
        StepUpLayer::new(self.clone(), Mode::Required, Some(Arc::new(requirement)))
    }

    /// As [`StepUp::require`], but refuses requirement values a challenge cannot carry (an
    /// acr value with a space, a scope with a quote) instead of logging them.
    pub fn try_require(&self, requirement: Requirement) -> Result<StepUpLayer, ConfigError> {
        requirement.validate().map_err(ConfigError::UnsendableValue)?;
        Ok(self.require(requirement))
    }
}

impl<S> Layer<S> for StepUpLayer {
    type Service = StepUpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StepUpService {
            inner,
            layer: self.config.clone(),
        }
    }
}

/// The service made by [`StepUpLayer`].
#[derive(Clone, Debug)]
pub struct StepUpService<S> {
    inner: S,
    layer: Arc<LayerConfig>,
}

impl<S> StepUpService<S> {
    /// Wraps `inner` with a layer.
    pub fn new(inner: S, layer: StepUpLayer) -> Self {
        Self {
            inner,
            layer: layer.config,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What a layer does with a request. Small: the rare cases are boxed, so that the common one
/// (pass) moves two words.
enum Decision {
    /// To the inner service; the first layer of a `StepUp` owes the decision count.
    Pass(crate::observe::Owed),
    Refuse(Box<Refusal>),
    NeedsKeys(Box<NeedsKeys>),
    /// A DPoP request whose proof and token passed: spend the proof, then check the
    /// requirement.
    Spend(Box<(Arc<VerifiedToken>, VerifiedProof)>),
}

/// A token whose key is not in the issuer's current set: the request waits for a refresh.
struct NeedsKeys {
    token: String,
    issuer: usize,
    kid: Option<String>,
    failed: Option<Arc<Key>>,
    scheme: AuthScheme,
    proof: Option<VerifiedProof>,
}

impl LayerConfig {
    fn decide<B>(&self, req: &mut Request<B>) -> Decision {
        let now = self.step_up.now();
        if let Some(state) = req.extensions().get::<AuthState>()
            && state.step_up.inner.id == self.step_up.inner.id
        {
            // A later layer of the same `StepUp`: the token is verified, the first layer counts.
            let (token, scheme) = (state.token.clone(), state.scheme);
            return self.after_verify(req, token, scheme, now);
        }
        match self.first(req, now) {
            // This layer made the request's state: it counts the decision when the response
            // comes back.
            Decision::Pass(owed) if owed.is_none() => Decision::Pass(self.owed(false)),
            other => other,
        }
    }

    #[cfg(feature = "metrics")]
    fn owed(&self, anonymous: bool) -> crate::observe::Owed {
        self.step_up.inner.hot.owed(anonymous, self.step_up.inner.id)
    }

    #[cfg(not(feature = "metrics"))]
    fn owed(&self, _anonymous: bool) -> crate::observe::Owed {
        crate::observe::Owed::none()
    }

    /// The first layer of this `StepUp` the request meets: find, verify and bind the token.
    fn first<B>(&self, req: &mut Request<B>, now: i64) -> Decision {
        let inner = &self.step_up.inner;
        let dpop = inner.dpop.is_some();
        let (scheme, raw) = match bearer::raw_credentials(req.headers(), req.uri(), inner.verifier.max_token_len, dpop)
        {
            Ok(Some(c)) => c,
            Ok(None) => {
                if self.mode == Mode::Optional && self.requirement.is_none() {
                    req.extensions_mut().insert(AuthState::new(&self.step_up, None, None));
                    return Decision::Pass(self.owed(true));
                }
                return self.refuse_with(|a| a.missing_token(), None);
            }
            Err(e) => return self.refuse_with(|a| a.invalid_request(e), None),
        };
        // A bearer token the cache holds passed every check, its syntax included, when it was
        // stored: the hot path reads it once, to hash and compare it.
        if scheme == AuthScheme::Bearer
            && let Some(hit) = inner.verifier.cached(raw, now)
        {
            return self.finish(req, Ok(hit), scheme, None, now);
        }
        // Owned, so that the request stays free to take the verified token (a copy of at most
        // the header bound, on the path that checks a signature).
        let raw = Bytes::copy_from_slice(raw);
        self.verify(req, scheme, &raw, now)
    }

    /// A token the cache does not hold (or a DPoP request): its syntax, the proof, then every
    /// check. Out of line: a signature check dwarfs the call, and the cache-hit path stays small.
    #[inline(never)]
    fn verify<B>(&self, req: &mut Request<B>, scheme: AuthScheme, raw: &[u8], now: i64) -> Decision {
        let inner = &self.step_up.inner;
        let token = match bearer::checked_token(raw) {
            Ok(t) => t,
            Err(e) => return self.refuse_with(|a| a.invalid_request(e), None),
        };
        let proof = match scheme {
            AuthScheme::DPoP => match self.check_proof(req, token, now) {
                Ok(p) => Some(p),
                Err(refusal) => return self.refuse(*refusal, Some(scheme)),
            },
            _ => None,
        };
        if proof.is_some()
            && let Some(hit) = inner.verifier.cached(raw, now)
        {
            return self.finish(req, Ok(hit), scheme, proof, now);
        }
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        match inner.verifier.verify(token, now, None, true) {
            Outcome::Done(result) => {
                #[cfg(feature = "metrics")]
                inner.hot.verify_time(started);
                self.finish(req, result, scheme, proof, now)
            }
            Outcome::NeedsKeys { issuer, kid, failed } => Decision::NeedsKeys(Box::new(NeedsKeys {
                token: token.to_string(),
                issuer,
                kid,
                failed,
                scheme,
                proof,
            })),
        }
    }

    /// The proof's own checks and the server nonce (RFC 9449 §4.3, §9).
    fn check_proof<B>(&self, req: &Request<B>, token: &str, now: i64) -> Result<VerifiedProof, Box<Refusal>> {
        let answers = self.answers();
        let Some(dpop) = &self.step_up.inner.dpop else {
            return Err(Box::new(answers.missing_token()));
        };
        let mut proofs = req.headers().get_all(DPOP).iter();
        let proof = match (proofs.next(), proofs.next()) {
            (None, _) => Err(DpopError::Missing),
            (Some(v), None) => v.to_str().map_err(|_| DpopError::Malformed("not ASCII")),
            (Some(_), Some(_)) => Err(DpopError::MultipleProofs),
        }
        .map_err(|e| Box::new(answers.invalid_dpop_proof(e)))?;
        let authority = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(http::uri::Authority::as_str));
        let url = ExpectedUrl {
            public: dpop.public_url.as_ref(),
            scheme: req.uri().scheme_str(),
            authority,
            path: req.uri().path(),
        };
        let verified = dpop
            .proofs
            .verify(proof, req.method().as_str(), &url, token, now)
            .map_err(|e| Box::new(answers.invalid_dpop_proof(e)))?;
        if let Some(nonces) = &dpop.nonces
            && !verified.nonce.as_deref().is_some_and(|n| nonces.check(n, now))
        {
            return Err(Box::new(answers.use_dpop_nonce()));
        }
        Ok(verified)
    }

    fn finish<B>(
        &self,
        req: &mut Request<B>,
        result: Result<Arc<VerifiedToken>, VerifyError>,
        scheme: AuthScheme,
        proof: Option<VerifiedProof>,
        now: i64,
    ) -> Decision {
        let token = match result.and_then(|t| self.bind(&t, scheme, proof.as_ref()).map(|()| t)) {
            Ok(token) => token,
            Err(e) => return self.refuse_with(|a| a.invalid_token(e), Some(scheme)),
        };
        req.extensions_mut()
            .insert(AuthState::new(&self.step_up, Some(token.clone()), Some(scheme)));
        // For services that are not axum handlers (tonic: `request.extensions().get::<Token>()`).
        req.extensions_mut().insert(crate::extract::Token(token.clone()));
        match proof {
            Some(proof) => Decision::Spend(Box::new((token, proof))),
            None => self.after_verify(req, Some(token), Some(scheme), now),
        }
    }

    /// The token fits the scheme it came under (RFC 9449 §7.1–7.2): a bound token only with
    /// its proof, and the proof's key is the one it is bound to.
    fn bind(
        &self,
        token: &VerifiedToken,
        scheme: AuthScheme,
        proof: Option<&VerifiedProof>,
    ) -> Result<(), VerifyError> {
        let mode = self
            .step_up
            .inner
            .verifier
            .issuer(token.issuer_index())
            .map_or(DpopMode::Off, |r| r.dpop);
        match (scheme, token.binding(), proof) {
            (AuthScheme::DPoP, _, _) if mode == DpopMode::Off => Err(VerifyError::DpopNotAccepted),
            (AuthScheme::DPoP, Binding::Jkt(jkt), Some(p)) if **jkt == *p.jkt => Ok(()),
            (AuthScheme::DPoP, Binding::Jkt(_), _) => Err(VerifyError::DpopKeyMismatch),
            (AuthScheme::DPoP, _, _) => Err(VerifyError::NotDpopBound),
            (_, Binding::None, _) if mode == DpopMode::Required => Err(VerifyError::DpopRequired),
            (_, Binding::None, _) => Ok(()),
            (_, _, _) => Err(VerifyError::SenderConstrained),
        }
    }

    /// Spends the proof's (`jkt`, `jti`) for as long as the proof could be accepted.
    async fn spend(&self, proof: &VerifiedProof) -> Result<(), Box<Refusal>> {
        let Some(dpop) = &self.step_up.inner.dpop else {
            return Ok(());
        };
        let left = proof.iat.saturating_add(dpop.window).saturating_sub(self.step_up.now());
        // One second more than the window, so that a proof at the edge is still remembered.
        let ttl = Duration::from_secs(left.clamp(0, i64::MAX - 1).cast_unsigned().saturating_add(1));
        let key = ReplayKey::new(&proof.jkt, &proof.jti);
        match dpop.replay.insert_if_absent(key, ttl).await {
            Ok(Insert::Fresh) => Ok(()),
            Ok(Insert::Replayed) => Err(Box::new(self.answers().invalid_dpop_proof(DpopError::Replayed))),
            Err(e) if dpop.fail_open => {
                tracing::warn!(target: "stepup_tower", error = %e, "DPoP replay store failed; proof accepted unchecked (fail-open)");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(target: "stepup_tower", error = %e, "DPoP replay store failed; answering 503 (fail-closed)");
                Err(Box::new(self.answers().replay_unavailable(e)))
            }
        }
    }

    fn after_verify<B>(
        &self,
        req: &Request<B>,
        token: Option<Arc<VerifiedToken>>,
        scheme: Option<AuthScheme>,
        now: i64,
    ) -> Decision {
        let Some(token) = token else {
            // Reached through an optional layer without a token.
            if self.mode == Mode::Optional && self.requirement.is_none() {
                return Decision::Pass(crate::observe::Owed::none());
            }
            return self.refuse_with(|a| a.missing_token(), None);
        };
        let Some(requirement) = &self.requirement else {
            log_decision(&token, req, "token accepted");
            return Decision::Pass(crate::observe::Owed::none());
        };
        let inner = &self.step_up.inner;
        match requirement.check(&token, inner.ladder.as_ref(), now, inner.verifier.leeway) {
            Ok(()) => {
                log_decision(&token, req, "requirement met");
                #[cfg(feature = "metrics")]
                // The route label is built only while some challenge is open.
                if let Some(sub) = &token.context().sub
                    && inner.completions.any_open(now)
                {
                    inner
                        .completions
                        .met(&token.context().iss, sub, &self.route(req), layer_id(requirement));
                }
                Decision::Pass(crate::observe::Owed::none())
            }
            Err(demand) => {
                log_decision(&token, req, "requirement not met");
                self.refuse_with(|a| a.unmet(demand), scheme)
            }
        }
    }

    fn answers(&self) -> &Answers {
        &self.step_up.inner.answers
    }

    #[cold]
    #[inline(never)]
    fn refuse(&self, refusal: Refusal, scheme: Option<AuthScheme>) -> Decision {
        Decision::Refuse(Box::new(self.refusal(refusal, scheme)))
    }

    /// Refusals are the cold path: built out of line, so that the code a passing request runs
    /// stays small.
    #[cold]
    #[inline(never)]
    fn refuse_with(&self, refusal: impl FnOnce(&Answers) -> Refusal, scheme: Option<AuthScheme>) -> Decision {
        self.refuse(refusal(self.answers()), scheme)
    }

    /// The final form of a refusal: the request's scheme, a fresh nonce when nonces are on.
    fn refusal(&self, refusal: Refusal, scheme: Option<AuthScheme>) -> Refusal {
        let mut refusal = match scheme {
            Some(s) => self.answers().in_scheme(refusal, s),
            None => refusal,
        };
        if let Some(nonces) = self.step_up.inner.dpop.as_ref().and_then(|d| d.nonces.as_ref())
            && refusal.status() == http::StatusCode::UNAUTHORIZED
        {
            refusal.set_dpop_nonce(nonces.issue(self.step_up.now()));
        }
        // One span per refusal, at debug: an attack must not flood the logs at info.
        let (reason, error) = crate::observe::labels(refusal.kind());
        let span =
            tracing::debug_span!(target: "stepup_tower", "refusal", status = refusal.status().as_u16(), reason, error);
        span.in_scope(|| tracing::debug!(target: "stepup_tower", detail = %refusal, "request refused"));
        refusal
    }

    fn response<B: From<Bytes>, RB>(&self, mut refusal: Refusal, req: &Request<RB>) -> Response<B> {
        #[cfg(feature = "metrics")]
        self.observe_refusal(&refusal, req);
        let answers = self.answers();
        answers.for_request(&mut refusal, req);
        #[cfg_attr(not(feature = "metrics"), allow(unused_mut))]
        let mut res = answers.respond(&refusal).map(B::from);
        #[cfg(feature = "metrics")]
        res.extensions_mut()
            .insert(crate::observe::Refused(self.step_up.inner.id));
        res
    }

    /// The `route` label: axum's `MatchedPath`, else this layer's label.
    #[cfg(feature = "metrics")]
    fn route<B>(&self, req: &Request<B>) -> String {
        match req.extensions().get::<axum::extract::MatchedPath>() {
            Some(m) => m.as_str().to_string(),
            None => self.route_label.as_deref().unwrap_or("unlabeled").to_string(),
        }
    }

    /// Counts a refusal (once per request: it ends the request), and a step-up challenge by
    /// route and acr, remembered for its completion.
    #[cfg(feature = "metrics")]
    fn observe_refusal<B>(&self, refusal: &Refusal, req: &Request<B>) {
        crate::observe::refusal(refusal);
        let state = req
            .extensions()
            .get::<AuthState>()
            .filter(|s| s.step_up.inner.id == self.step_up.inner.id);
        if let crate::response::RefusalKind::StepUp(_) = refusal.kind() {
            let route = self.route(req);
            let acr = refusal.challenge().acr_values.join(" ");
            if let Some(token) = state.and_then(|s| s.token.as_ref())
                && let Some(sub) = &token.context().sub
                && let Some(requirement) = &self.requirement
            {
                self.step_up.inner.completions.challenged(
                    &token.context().iss,
                    sub,
                    &route,
                    layer_id(requirement),
                    self.step_up.now(),
                );
            }
            crate::observe::challenge(route, if acr.is_empty() { "none".into() } else { acr });
        }
    }

    /// What follows a decision that needs to wait (keys, the replay store), to the end.
    async fn complete<S, ReqBody, ResBody>(
        self: Arc<Self>,
        mut req: Request<ReqBody>,
        mut inner: S,
        decision: Decision,
    ) -> Result<Response<ResBody>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: From<Bytes>,
    {
        let decision = match decision {
            Decision::NeedsKeys(keys) => {
                let NeedsKeys {
                    token,
                    issuer,
                    kid,
                    failed,
                    scheme,
                    proof,
                } = *keys;
                #[cfg(feature = "metrics")]
                let started = std::time::Instant::now();
                let result = self.step_up.verify_after_refresh(&token, issuer, kid, failed).await;
                #[cfg(feature = "metrics")]
                self.step_up.inner.hot.verify_time(started);
                self.finish(&mut req, result, scheme, proof, self.step_up.now())
            }
            other => other,
        };
        let decision = match decision {
            Decision::Spend(spend) => {
                let (token, proof) = *spend;
                match self.spend(&proof).await {
                    Ok(()) => self.after_verify(&req, Some(token), Some(AuthScheme::DPoP), self.step_up.now()),
                    Err(refusal) => Decision::Refuse(Box::new(self.refusal(*refusal, Some(AuthScheme::DPoP)))),
                }
            }
            other => other,
        };
        match decision {
            // Only the first layer of a `StepUp` waits for keys or spends proofs: it counts.
            Decision::Pass(_) => {
                let mut out = inner.call(req).await;
                self.owed(false).settle(&mut out);
                out
            }
            Decision::Refuse(refusal) => Ok(self.response(*refusal, &req)),
            // Keys are asked for once and proofs spent once: neither comes back here.
            Decision::NeedsKeys(_) | Decision::Spend(_) => {
                let refusal = self.answers().invalid_token(VerifyError::KeyNotFound { kid: None });
                Ok(self.response(refusal, &req))
            }
        }
    }
}

/// A decision on a verified token, at `debug` (never the token itself). Only the level check
/// is inline.
#[inline]
fn log_decision<B>(token: &VerifiedToken, req: &Request<B>, what: &'static str) {
    if tracing::enabled!(target: "stepup_tower", tracing::Level::DEBUG) {
        log_decision_cold(token, req.uri().path(), what);
    }
}

#[cold]
#[inline(never)]
fn log_decision_cold(token: &VerifiedToken, path: &str, what: &'static str) {
    let ctx = token.context();
    tracing::debug!(target: "stepup_tower", sub = ?ctx.sub, acr = ?ctx.acr, path, "{what}");
}

type BoxedResponse<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] fut: F, owed: crate::observe::Owed },
        Refused { res: Option<Response<B>> },
        Refreshing { fut: BoxedResponse<B, E> },
    }
}

pin_project! {
    /// Response future of [`StepUpService`].
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { fut, owed } => {
                let mut out = std::task::ready!(fut.poll(cx));
                owed.settle(&mut out);
                Poll::Ready(out)
            }
            KindProj::Refused { res } => match res.take() {
                Some(r) => Poll::Ready(Ok(r)),
                // Polled after completion: stay pending rather than panic.
                None => Poll::Pending,
            },
            KindProj::Refreshing { fut } => fut.as_mut().poll(cx),
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for StepUpService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let kind = match self.layer.decide(&mut req) {
            Decision::Pass(owed) => Kind::Inner {
                fut: self.inner.call(req),
                owed,
            },
            Decision::Refuse(refusal) => Kind::Refused {
                res: Some(self.layer.response(*refusal, &req)),
            },
            decision @ (Decision::NeedsKeys(_) | Decision::Spend(_)) => {
                // The service that was made ready goes into the future (tower's clone-and-swap).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                Kind::Refreshing {
                    fut: Box::pin(self.layer.clone().complete(req, inner, decision)),
                }
            }
        };
        ResponseFuture { kind }
    }
}
