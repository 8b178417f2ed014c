//! Refusal → HTTP response: status, `WWW-Authenticate`, small JSON body (RFC 6750 §3,
//! RFC 9470 §3).
//!
//! | situation | status | challenge |
//! |---|---|---|
//! | no credentials | 401 | `Bearer realm="…"` (no `error`) |
//! | malformed request | 400 | `error="invalid_request"` |
//! | token bad in any way | 401 | `error="invalid_token"` |
//! | keys unavailable, when configured so | 503 | none; `Retry-After: 30`, body `temporarily_unavailable` |
//! | missing scope | 403 | `error="insufficient_scope", scope="…"` |
//! | authentication too weak or too old | 401 | `error="insufficient_user_authentication", acr_values="…", max_age=…` |
//!
//! The response can be replaced with a [`Responder`]: any `Fn(&Refusal) -> Response<Bytes>`.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::bearer::BearerError;
use crate::challenge::{BearerChallenge, ErrorCode};
use crate::require::{Demand, Unmet};
use crate::verify::VerifyError;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// No bearer token (401, bare challenge).
    MissingToken,
    /// The `Authorization` header is malformed (400 `invalid_request`).
    InvalidRequest(BearerError),
    /// The token was refused (401 `invalid_token`).
    InvalidToken(VerifyError),
    /// No keys could be had and the layer is configured to say so with 503.
    KeysUnavailable(VerifyError),
    /// The token lacks a scope (403 `insufficient_scope`).
    InsufficientScope(Unmet),
    /// The authentication is too weak or too old (401 `insufficient_user_authentication`).
    StepUp(Unmet),
}

/// A refused request: what went wrong and the challenge that answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    kind: RefusalKind,
    challenge: BearerChallenge,
}

impl Refusal {
    pub(crate) fn new(kind: RefusalKind, challenge: BearerChallenge) -> Self {
        Self { kind, challenge }
    }

    /// What went wrong.
    pub fn kind(&self) -> &RefusalKind {
        &self.kind
    }

    /// The challenge for `WWW-Authenticate`, realm and `resource_metadata` included.
    pub fn challenge(&self) -> &BearerChallenge {
        &self.challenge
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RefusalKind::MissingToken | RefusalKind::InvalidToken(_) | RefusalKind::StepUp(_) => {
                StatusCode::UNAUTHORIZED
            }
            RefusalKind::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            RefusalKind::InsufficientScope(_) => StatusCode::FORBIDDEN,
            RefusalKind::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON body of the default response.
    pub fn body(&self) -> serde_json::Value {
        let c = &self.challenge;
        let mut body = serde_json::Map::new();
        // Like the header: no RFC 6750 error code when no credentials were sent (§3.1).
        if let Some(e) = &c.error {
            body.insert("error".into(), e.as_str().into());
        }
        let desc = c
            .error_description
            .clone()
            .unwrap_or_else(|| "a bearer token is required".into());
        body.insert("error_description".into(), desc.into());
        if !c.acr_values.is_empty() {
            body.insert("acr_values".into(), c.acr_values.join(" ").into());
        }
        if let Some(m) = c.max_age {
            body.insert("max_age".into(), m.into());
        }
        if !c.scope.is_empty() {
            body.insert("scope".into(), c.scope.join(" ").into());
        }
        serde_json::Value::Object(body)
    }

    /// The default response: status, `WWW-Authenticate`, `Cache-Control: no-store`, JSON body.
    pub fn default_response(&self) -> Response<Bytes> {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut res = Response::new(Bytes::from(body));
        *res.status_mut() = self.status();
        let h = res.headers_mut();
        if matches!(self.kind, RefusalKind::KeysUnavailable(_)) {
            // Not the token's fault: no challenge (a client would throw a good token away),
            // and a hint when to come back.
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        } else {
            h.insert(header::WWW_AUTHENTICATE, self.challenge.to_header_value());
        }
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RefusalKind::MissingToken => f.write_str("no bearer token"),
            RefusalKind::InvalidRequest(e) => write!(f, "invalid request: {e}"),
            RefusalKind::InvalidToken(e) => write!(f, "invalid token: {e}"),
            RefusalKind::KeysUnavailable(e) => write!(f, "keys unavailable: {e}"),
            RefusalKind::InsufficientScope(u) | RefusalKind::StepUp(u) => write!(f, "{u}"),
        }
    }
}

/// Builds the HTTP response for a refusal. Implemented for every
/// `Fn(&Refusal) -> Response<Bytes>`; the default is [`Refusal::default_response`].
///
/// ```
/// use stepup_tower::response::Refusal;
/// let problem_json = |r: &Refusal| {
///     let mut res = r.default_response();
///     res.headers_mut().insert("content-type", "application/problem+json".parse().unwrap());
///     res
/// };
/// # let _ = stepup_tower::StepUp::builder().responder(problem_json);
/// ```
pub trait Responder: Send + Sync + 'static {
    /// The response for `refusal`.
    fn respond(&self, refusal: &Refusal) -> Response<Bytes>;
}

impl<F> Responder for F
where
    F: Fn(&Refusal) -> Response<Bytes> + Send + Sync + 'static,
{
    fn respond(&self, refusal: &Refusal) -> Response<Bytes> {
        self(refusal)
    }
}

/// The standard response.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultResponder;

impl Responder for DefaultResponder {
    fn respond(&self, refusal: &Refusal) -> Response<Bytes> {
        refusal.default_response()
    }
}

/// What every challenge of a layer carries, who writes the response, and which answer each
/// refusal gets: the one place a refusal is mapped to a status.
#[derive(Clone)]
pub(crate) struct Answers {
    pub(crate) realm: Option<String>,
    pub(crate) resource_metadata: Option<String>,
    pub(crate) responder: Arc<dyn Responder>,
    /// Keys that cannot be had at all: 503 instead of 401 `invalid_token`.
    pub(crate) unavailable_is_503: bool,
}

impl Answers {
    fn base(&self) -> BearerChallenge {
        BearerChallenge {
            realm: self.realm.clone(),
            resource_metadata: self.resource_metadata.clone(),
            ..BearerChallenge::default()
        }
    }

    /// No credentials: 401 with the bare challenge.
    pub(crate) fn missing_token(&self) -> Refusal {
        self.refusal(RefusalKind::MissingToken, Vec::new(), None)
    }

    /// A malformed `Authorization` header: 400 `invalid_request`.
    pub(crate) fn invalid_request(&self, e: BearerError) -> Refusal {
        self.refusal(RefusalKind::InvalidRequest(e), Vec::new(), None)
    }

    /// A refused token: 401 `invalid_token`, or 503 when the keys are unavailable and the
    /// layer is configured to say so.
    pub(crate) fn invalid_token(&self, e: VerifyError) -> Refusal {
        let kind = match e {
            e @ VerifyError::KeysUnavailable(_) if self.unavailable_is_503 => RefusalKind::KeysUnavailable(e),
            e => RefusalKind::InvalidToken(e),
        };
        self.refusal(kind, Vec::new(), None)
    }

    /// An unmet requirement: 403 `insufficient_scope` for scopes, else the RFC 9470 step-up
    /// challenge (401) naming everything the route needs.
    pub(crate) fn unmet(&self, demand: Demand) -> Refusal {
        match demand.unmet {
            u @ Unmet::Scope { .. } => self.refusal(RefusalKind::InsufficientScope(u), Vec::new(), None),
            u => self.refusal(RefusalKind::StepUp(u), demand.acr_values, demand.max_age),
        }
    }

    /// The challenge for a refusal.
    fn refusal(&self, kind: RefusalKind, acr_values: Vec<String>, max_age: Option<u64>) -> Refusal {
        let mut c = self.base();
        match &kind {
            RefusalKind::MissingToken => {}
            RefusalKind::InvalidRequest(e) => {
                c.error = Some(ErrorCode::InvalidRequest);
                c.error_description = Some(e.description().into());
            }
            RefusalKind::InvalidToken(e) => {
                c.error = Some(ErrorCode::InvalidToken);
                c.error_description = Some(e.description().into());
            }
            RefusalKind::KeysUnavailable(e) => {
                c.error = Some(ErrorCode::Other("temporarily_unavailable".into()));
                c.error_description = Some(e.description().into());
            }
            RefusalKind::InsufficientScope(u) => {
                c.error = Some(ErrorCode::InsufficientScope);
                c.error_description = Some(u.description().into());
                if let Unmet::Scope { required } = u {
                    c.scope = required.clone();
                }
            }
            RefusalKind::StepUp(u) => {
                c.error = Some(ErrorCode::InsufficientUserAuthentication);
                c.error_description = Some(u.description().into());
                c.acr_values = acr_values;
                c.max_age = max_age;
            }
        }
        Refusal::new(kind, c)
    }

    pub(crate) fn respond(&self, refusal: &Refusal) -> Response<Bytes> {
        self.responder.respond(refusal)
    }
}
