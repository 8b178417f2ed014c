//! Axum extractors over what the layer verified.
//!
//! - [`AuthContext`]: `sub`, `acr`, `amr`, `auth_time`, scopes of the verified token (an owned
//!   copy of its strings);
//! - [`Claims<T>`]: the payload deserialized into your type;
//! - [`Token`]: the whole [`VerifiedToken`], shared (`Arc`): nothing is copied, so hot routes
//!   prefer it (`token.context().sub`);
//! - `Option<…>` of each, for routes behind [`StepUp::optional`](crate::StepUp::optional).
//!
//! Behind a layer but without a token (an optional route), the non-optional extractors answer
//! 401 with the bare challenge. On a route with no layer at all they answer 500 and log the
//! misconfiguration (as axum's `Extension` does). When the claims do not fit `T`, `Claims<T>`
//! answers 401 `invalid_token`: the token lacks what the application needs.

use std::sync::Arc;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::layer::AuthState;
use crate::response::{Answers, Refusal};
use crate::verify::{AuthContext, VerifiedToken, VerifyError};

/// The verified token, as an extractor.
#[derive(Debug, Clone)]
pub struct Token(pub Arc<VerifiedToken>);

/// The verified claims deserialized into `T`.
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

/// Rejection of the extractors: the refusal of the layer's configuration and its response,
/// as axum's own rejections expose them.
#[derive(Debug)]
pub struct AuthRejection(Box<Rejected>);

#[derive(Debug)]
struct Rejected {
    /// `None` when the route has no layer (a server misconfiguration, answered with 500).
    refusal: Option<Refusal>,
    response: http::Response<bytes::Bytes>,
}

impl AuthRejection {
    fn new(state: Option<&AuthState>, refusal: impl FnOnce(&Answers) -> Refusal) -> Self {
        match state {
            Some(s) => {
                let answers = &s.step_up.inner.answers;
                let refusal = refusal(answers);
                Self(Box::new(Rejected {
                    response: answers.respond(&refusal),
                    refusal: Some(refusal),
                }))
            }
            None => {
                // A server misconfiguration, not the client's fault (as axum's `Extension`).
                tracing::error!(target: "stepup_tower", "extractor used on a route without a StepUp layer");
                let mut res = http::Response::new(bytes::Bytes::from_static(
                    br#"{"error":"server_error","error_description":"authentication is not configured for this route"}"#,
                ));
                *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                res.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Self(Box::new(Rejected {
                    refusal: None,
                    response: res,
                }))
            }
        }
    }

    /// The HTTP status this rejection answers with.
    pub fn status(&self) -> http::StatusCode {
        self.0.response.status()
    }

    /// The refusal (what went wrong, and the challenge); `None` when the route has no layer.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.0.refusal.as_ref()
    }

    /// The response this rejection sends.
    pub fn response(&self) -> &http::Response<bytes::Bytes> {
        &self.0.response
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.0.response.map(axum_core::body::Body::from)
    }
}

/// A refusal as a response, for handlers that check more themselves.
impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        self.default_response().map(axum_core::body::Body::from)
    }
}

fn state(parts: &Parts) -> Option<&AuthState> {
    parts.extensions.get::<AuthState>()
}

fn token(parts: &Parts) -> Result<Option<Arc<VerifiedToken>>, AuthRejection> {
    match state(parts) {
        Some(s) => Ok(s.token.clone()),
        None => Err(AuthRejection::new(None, Answers::missing_token)),
    }
}

fn required(parts: &Parts) -> Result<Arc<VerifiedToken>, AuthRejection> {
    token(parts)?.ok_or_else(|| AuthRejection::new(state(parts), Answers::missing_token))
}

fn claims<T: DeserializeOwned>(parts: &Parts, token: &VerifiedToken) -> Result<T, AuthRejection> {
    token.deserialize_claims::<T>().map_err(|e| {
        tracing::debug!(target: "stepup_tower", error = %e, "claims do not fit the handler's type");
        AuthRejection::new(state(parts), |a| a.invalid_token(VerifyError::InvalidClaim("claims")))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Token {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        required(parts).map(Token)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Token {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(state(parts).and_then(|s| s.token.clone()).map(Token))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthContext {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        required(parts).map(|t| t.context().clone())
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for AuthContext {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(state(parts).and_then(|s| s.token.as_ref()).map(|t| t.context().clone()))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let token = required(parts)?;
        claims(parts, &token).map(Claims)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequestParts<S> for Claims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        match state(parts).and_then(|s| s.token.clone()) {
            None => Ok(None),
            Some(token) => claims(parts, &token).map(|c| Some(Claims(c))),
        }
    }
}
