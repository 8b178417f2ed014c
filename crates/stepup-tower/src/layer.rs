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

use crate::bearer;
use crate::config::StepUp;
use crate::error::ConfigError;
use crate::keys::Key;
use crate::require::Requirement;
use crate::response::{Answers, Refusal};
use crate::verify::{Outcome, VerifiedToken, VerifyError};

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
}

/// Verifies bearer tokens and enforces a requirement. Made by [`StepUp::authenticate`],
/// [`StepUp::optional`] and [`StepUp::require`].
#[derive(Clone, Debug)]
#[must_use]
pub struct StepUpLayer {
    step_up: StepUp,
    mode: Mode,
    requirement: Option<Arc<Requirement>>,
}

impl StepUpLayer {
    pub(crate) fn new(step_up: StepUp, mode: Mode, requirement: Option<Arc<Requirement>>) -> Self {
        if let Some(r) = &requirement
            && let Err(e) = r.validate()
        {
            tracing::error!(target: "stepup_tower", error = %e, "requirement values cannot be sent in a challenge; use StepUp::try_require to refuse them");
        }
        Self {
            step_up,
            mode,
            requirement,
        }
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
            layer: self.clone(),
        }
    }
}

/// The service made by [`StepUpLayer`].
#[derive(Clone, Debug)]
pub struct StepUpService<S> {
    inner: S,
    layer: StepUpLayer,
}

impl<S> StepUpService<S> {
    /// Wraps `inner` with a layer.
    pub fn new(inner: S, layer: StepUpLayer) -> Self {
        Self { inner, layer }
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

enum Decision {
    Pass,
    Refuse(Refusal),
    NeedsKeys {
        token: String,
        issuer: usize,
        kid: Option<String>,
        failed: Option<Arc<Key>>,
    },
}

impl StepUpLayer {
    fn decide<B>(&self, req: &mut Request<B>) -> Decision {
        let inner = &self.step_up.inner;
        if let Some(state) = req.extensions().get::<AuthState>()
            && state.step_up.inner.id == inner.id
        {
            let token = state.token.clone();
            return self.after_verify(req, token);
        }
        let token = match bearer::extract(req.headers(), req.uri(), inner.verifier.max_token_len) {
            Ok(Some(t)) => t,
            Ok(None) => {
                if self.mode == Mode::Optional && self.requirement.is_none() {
                    req.extensions_mut().insert(AuthState {
                        step_up: self.step_up.clone(),
                        token: None,
                    });
                    return Decision::Pass;
                }
                return self.refuse(self.answers().missing_token());
            }
            Err(e) => return self.refuse(self.answers().invalid_request(e)),
        };
        match self.step_up.verify_now(token) {
            Outcome::Done(result) => self.finish(req, result),
            Outcome::NeedsKeys { issuer, kid, failed } => Decision::NeedsKeys {
                token: token.to_string(),
                issuer,
                kid,
                failed,
            },
        }
    }

    fn finish<B>(&self, req: &mut Request<B>, result: Result<Arc<VerifiedToken>, VerifyError>) -> Decision {
        match result {
            Ok(token) => {
                req.extensions_mut().insert(AuthState {
                    step_up: self.step_up.clone(),
                    token: Some(token.clone()),
                });
                self.after_verify(req, Some(token))
            }
            Err(e) => self.refuse(self.answers().invalid_token(e)),
        }
    }

    fn after_verify<B>(&self, req: &Request<B>, token: Option<Arc<VerifiedToken>>) -> Decision {
        let Some(token) = token else {
            // Reached through an optional layer without a token.
            if self.mode == Mode::Optional && self.requirement.is_none() {
                return Decision::Pass;
            }
            return self.refuse(self.answers().missing_token());
        };
        let Some(requirement) = &self.requirement else {
            tracing::debug!(target: "stepup_tower", sub = ?token.context().sub, acr = ?token.context().acr, path = %req.uri().path(), "token accepted");
            return Decision::Pass;
        };
        let inner = &self.step_up.inner;
        match requirement.check(&token, inner.ladder.as_ref(), self.step_up.now(), inner.verifier.leeway) {
            Ok(()) => {
                tracing::debug!(target: "stepup_tower", sub = ?token.context().sub, acr = ?token.context().acr, path = %req.uri().path(), "requirement met");
                Decision::Pass
            }
            Err(demand) => {
                tracing::debug!(target: "stepup_tower", sub = ?token.context().sub, acr = ?token.context().acr, path = %req.uri().path(), "requirement not met");
                self.refuse(self.answers().unmet(demand))
            }
        }
    }

    fn answers(&self) -> &Answers {
        &self.step_up.inner.answers
    }

    fn refuse(&self, refusal: Refusal) -> Decision {
        tracing::debug!(target: "stepup_tower", status = refusal.status().as_u16(), reason = %refusal, "request refused");
        Decision::Refuse(refusal)
    }

    fn response<B: From<Bytes>>(&self, refusal: &Refusal) -> Response<B> {
        self.step_up.inner.answers.respond(refusal).map(B::from)
    }
}

type BoxedResponse<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] fut: F },
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
            KindProj::Inner { fut } => fut.poll(cx),
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
            Decision::Pass => Kind::Inner {
                fut: self.inner.call(req),
            },
            Decision::Refuse(refusal) => Kind::Refused {
                res: Some(self.layer.response(&refusal)),
            },
            Decision::NeedsKeys {
                token,
                issuer,
                kid,
                failed,
            } => {
                // The service that was made ready goes into the future (tower's clone-and-swap).
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let layer = self.layer.clone();
                Kind::Refreshing {
                    fut: Box::pin(async move {
                        let result = layer.step_up.verify_after_refresh(&token, issuer, kid, failed).await;
                        match layer.finish(&mut req, result) {
                            Decision::Pass => inner.call(req).await,
                            Decision::Refuse(refusal) => Ok(layer.response(&refusal)),
                            // `finish` never asks for keys again.
                            Decision::NeedsKeys { .. } => {
                                let refusal = layer.answers().invalid_token(VerifyError::KeyNotFound { kid: None });
                                Ok(layer.response(&refusal))
                            }
                        }
                    }),
                }
            }
        };
        ResponseFuture { kind }
    }
}
