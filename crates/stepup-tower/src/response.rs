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
//! | DPoP proof missing or invalid, or replayed (RFC 9449 §7.1) | 401 | `DPoP error="invalid_dpop_proof", algs="…"` |
//! | DPoP proof without a valid server nonce (RFC 9449 §9) | 401 | `DPoP error="use_dpop_nonce"`, plus `DPoP-Nonce` |
//! | DPoP replay store unreachable (fail-closed) | 503 | none; `Retry-After: 5` |
//!
//! With DPoP on ([`StepUpBuilder::dpop`](crate::StepUpBuilder::dpop)), the challenge of a
//! refusal has the scheme the request used (`DPoP` challenges carry `algs`), and the other
//! accepted scheme follows as a bare challenge in its own `WWW-Authenticate` field (RFC 9449
//! §7.2): a request without credentials gets `Bearer realm="…"` and `DPoP realm="…", algs="…"`.
//!
//! The response can be replaced with a [`Responder`]: any `Fn(&Refusal) -> Response<Bytes>`.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::bearer::BearerError;
use crate::challenge::{AuthScheme, BearerChallenge, ErrorCode};
use crate::dpop::{DpopError, ReplayError};
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
    /// The DPoP proof is missing, invalid or replayed (401 `invalid_dpop_proof`).
    InvalidDpopProof(DpopError),
    /// The DPoP proof lacks a valid server nonce (401 `use_dpop_nonce`, RFC 9449 §9).
    UseDpopNonce,
    /// The replay store could not answer, and the layer fails closed (503).
    ReplayUnavailable(ReplayError),
}

/// A refused request: what went wrong and the challenge that answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    kind: RefusalKind,
    challenge: BearerChallenge,
    /// The other accepted scheme's bare challenge, when there is one.
    other: Option<Box<BearerChallenge>>,
    dpop_nonce: Option<String>,
    /// The request was a gRPC call: answer trailers-only.
    grpc: bool,
    /// A browser navigation with the login redirect on: where to send it (303).
    login_redirect: Option<HeaderValue>,
}

impl Refusal {
    pub(crate) fn new(kind: RefusalKind, challenge: BearerChallenge) -> Self {
        Self {
            kind,
            challenge,
            other: None,
            dpop_nonce: None,
            grpc: false,
            login_redirect: None,
        }
    }

    /// Whether the refused request was a gRPC call (its `content-type`): the default response
    /// is then [`crate::grpc::response`].
    pub fn is_grpc(&self) -> bool {
        self.grpc
    }

    /// For a browser navigation, with [`StepUpBuilder::login_redirect`](crate::StepUpBuilder::login_redirect)
    /// on: the login URL (with `acr_values`, `max_age`, `return_to`) the default response
    /// sends the browser to with `303 See Other`.
    pub fn login_redirect(&self) -> Option<&HeaderValue> {
        self.login_redirect.as_ref()
    }

    pub(crate) fn set_grpc(&mut self, grpc: bool) {
        self.grpc = grpc;
    }

    pub(crate) fn set_login_redirect(&mut self, location: Option<HeaderValue>) {
        self.login_redirect = location;
    }

    /// Every challenge, in order: [`Refusal::challenge`], then the other accepted scheme's
    /// bare challenge (RFC 9449 §7.2) when DPoP is on. Each goes in its own
    /// `WWW-Authenticate` field.
    pub fn challenges(&self) -> impl Iterator<Item = &BearerChallenge> {
        std::iter::once(&self.challenge).chain(self.other.as_deref())
    }

    /// A fresh server nonce for the `DPoP-Nonce` header (RFC 9449 §8), when nonces are on.
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.dpop_nonce.as_deref()
    }

    pub(crate) fn set_dpop_nonce(&mut self, nonce: Option<String>) {
        self.dpop_nonce = nonce;
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
            RefusalKind::MissingToken
            | RefusalKind::InvalidToken(_)
            | RefusalKind::StepUp(_)
            | RefusalKind::InvalidDpopProof(_)
            | RefusalKind::UseDpopNonce => StatusCode::UNAUTHORIZED,
            RefusalKind::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            RefusalKind::InsufficientScope(_) => StatusCode::FORBIDDEN,
            RefusalKind::KeysUnavailable(_) | RefusalKind::ReplayUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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

    /// The default response: [`Refusal::http_response`], or for a gRPC call the trailers-only
    /// [`grpc::response`](crate::grpc::response), or for a browser navigation with the login
    /// redirect on, `303 See Other` to the login URL.
    pub fn default_response(&self) -> Response<Bytes> {
        if let Some(location) = &self.login_redirect {
            let mut res = Response::new(Bytes::new());
            *res.status_mut() = StatusCode::SEE_OTHER;
            res.headers_mut().insert(header::LOCATION, location.clone());
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return res;
        }
        if self.grpc {
            return crate::grpc::response(self);
        }
        self.http_response()
    }

    /// The HTTP answer: status, `WWW-Authenticate`, `Cache-Control: no-store`, JSON body.
    pub fn http_response(&self) -> Response<Bytes> {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut res = Response::new(Bytes::from(body));
        *res.status_mut() = self.status();
        let h = res.headers_mut();
        match self.kind {
            // Not the token's fault: no challenge (a client would throw a good token away),
            // and a hint when to come back.
            RefusalKind::KeysUnavailable(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            }
            RefusalKind::ReplayUnavailable(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {
                for c in self.challenges() {
                    h.append(header::WWW_AUTHENTICATE, c.to_header_value());
                }
            }
        }
        if let Some(nonce) = self.dpop_nonce.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
            h.insert(DPOP_NONCE, nonce);
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
            RefusalKind::InvalidDpopProof(e) => write!(f, "invalid DPoP proof: {e}"),
            RefusalKind::UseDpopNonce => f.write_str("DPoP proof without a valid server nonce"),
            RefusalKind::ReplayUnavailable(e) => write!(f, "DPoP proof not checked for replay: {e}"),
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

/// The `DPoP-Nonce` response header (RFC 9449 §8.1).
pub const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// Which schemes a layer accepts, when DPoP is on for some issuer.
#[derive(Clone, Debug)]
pub(crate) struct DpopAnswers {
    /// `algs` of DPoP challenges.
    pub(crate) algs: Vec<String>,
    /// Some issuer accepts bearer tokens (not every issuer requires DPoP).
    pub(crate) bearer: bool,
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
    /// `None` when no issuer accepts DPoP.
    pub(crate) dpop: Option<DpopAnswers>,
    /// Browser navigations sent to log in, when on.
    pub(crate) login: Option<crate::navigation::LoginRedirect>,
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

    /// A refused DPoP proof: 401 `invalid_dpop_proof` (RFC 9449 §7.1).
    pub(crate) fn invalid_dpop_proof(&self, e: DpopError) -> Refusal {
        self.refusal(RefusalKind::InvalidDpopProof(e), Vec::new(), None)
    }

    /// A proof without a valid nonce: 401 `use_dpop_nonce` (RFC 9449 §9).
    pub(crate) fn use_dpop_nonce(&self) -> Refusal {
        self.refusal(RefusalKind::UseDpopNonce, Vec::new(), None)
    }

    /// The replay store could not answer: 503.
    pub(crate) fn replay_unavailable(&self, e: ReplayError) -> Refusal {
        self.refusal(RefusalKind::ReplayUnavailable(e), Vec::new(), None)
    }

    /// Puts the refusal's error in the scheme the request used (RFC 9449 §7.1: a DPoP request
    /// is answered with a `DPoP` challenge), the other accepted scheme as a bare challenge.
    pub(crate) fn in_scheme(&self, mut refusal: Refusal, scheme: AuthScheme) -> Refusal {
        if refusal.challenge.scheme != scheme && self.dpop.is_some() && !forced_dpop(&refusal.kind) {
            self.set_scheme(&mut refusal, scheme);
        }
        refusal
    }

    fn set_scheme(&self, refusal: &mut Refusal, scheme: AuthScheme) {
        let Some(dpop) = &self.dpop else {
            return;
        };
        refusal.challenge.scheme = scheme;
        refusal.challenge.algs = match scheme {
            AuthScheme::DPoP => dpop.algs.clone(),
            _ => Vec::new(),
        };
        refusal.other = match scheme {
            AuthScheme::DPoP if dpop.bearer => Some(Box::new(self.base())),
            AuthScheme::DPoP => None,
            _ => Some(Box::new(BearerChallenge {
                scheme: AuthScheme::DPoP,
                algs: dpop.algs.clone(),
                ..self.base()
            })),
        };
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
            RefusalKind::InvalidDpopProof(e) => {
                c.error = Some(ErrorCode::Other("invalid_dpop_proof".into()));
                c.error_description = Some(e.description().into());
            }
            RefusalKind::UseDpopNonce => {
                c.error = Some(ErrorCode::Other("use_dpop_nonce".into()));
                c.error_description = Some("the DPoP proof needs the nonce this server sent".into());
            }
            RefusalKind::ReplayUnavailable(_) => {
                c.error = Some(ErrorCode::Other("temporarily_unavailable".into()));
                c.error_description = Some("DPoP proofs cannot be checked right now".into());
            }
        }
        let mut refusal = Refusal::new(kind, c);
        if let Some(dpop) = &self.dpop {
            let scheme = if forced_dpop(&refusal.kind) || !dpop.bearer {
                AuthScheme::DPoP
            } else {
                AuthScheme::Bearer
            };
            self.set_scheme(&mut refusal, scheme);
        }
        refusal
    }

    pub(crate) fn respond(&self, refusal: &Refusal) -> Response<Bytes> {
        self.responder.respond(refusal)
    }

    /// What only the request tells: a gRPC call (answered trailers-only), a browser navigation
    /// (sent to log in, when that is on).
    pub(crate) fn for_request<B>(&self, refusal: &mut Refusal, req: &http::Request<B>) {
        refusal.set_grpc(crate::grpc::is_grpc(req.headers()));
        if let Some(login) = &self.login
            && !refusal.is_grpc()
            && crate::navigation::is_navigation(req.method(), req.headers())
        {
            refusal.set_login_redirect(login.location(refusal, req.uri()));
        }
    }
}

/// Refusals that only a `DPoP` challenge can express.
fn forced_dpop(kind: &RefusalKind) -> bool {
    matches!(
        kind,
        RefusalKind::InvalidDpopProof(_)
            | RefusalKind::UseDpopNonce
            | RefusalKind::InvalidToken(
                VerifyError::DpopRequired | VerifyError::DpopKeyMismatch | VerifyError::NotDpopBound
            )
    )
}
