//! Refusals in gRPC's own terms, for tonic (or any gRPC) services behind the layer.
//!
//! A request whose `content-type` is `application/grpc` (or `application/grpc+proto`,
//! `application/grpc+json`, any `application/grpc+…` or with parameters) is refused with a
//! *trailers-only* response: HTTP 200, no body, the status in the headers. The challenge the
//! HTTP answer would carry travels as `www-authenticate` metadata, so a gRPC client can step up
//! exactly as an HTTP client does (RFC 9470 over gRPC). Nothing here needs tonic: the layer
//! reads the content type and writes headers.
//!
//! | refusal | HTTP answer | `grpc-status` |
//! |---|---|---|
//! | no token, bad token, malformed `Authorization`, DPoP proof errors, step-up needed | 400 / 401 | 16 `UNAUTHENTICATED` |
//! | missing scope (`insufficient_scope`) | 403 | 7 `PERMISSION_DENIED` |
//! | keys (or the DPoP replay store) unavailable, when answered 503 | 503 | 14 `UNAVAILABLE` |
//!
//! `grpc-message` is the `error_description`, percent-encoded as the gRPC HTTP/2 protocol asks.
//! Handlers read the verified token from the request extensions: `stepup_tower::Token` (an
//! `Arc<VerifiedToken>`), which tonic hands over as `request.extensions().get::<Token>()`.
//!
//! With the `tonic` feature, `grpc::challenge` reads the challenge back out of a `tonic::Status`.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};

use crate::response::{DPOP_NONCE, Refusal};

/// `grpc-status`.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// gRPC status codes a refusal maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// 7: the caller is authenticated but may not do this (`insufficient_scope`).
    PermissionDenied = 7,
    /// 14: try again later (keys or the replay store unavailable).
    Unavailable = 14,
    /// 16: no valid credentials, or too weak ones (step-up).
    Unauthenticated = 16,
}

/// Whether a request is a gRPC call (by its `content-type`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.trim_start();
            ct.get(..16).is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"))
                && matches!(ct.as_bytes().get(16), None | Some(b'+' | b';' | b' '))
        })
}

/// The gRPC status of a refusal, from its HTTP status.
pub fn code(refusal: &Refusal) -> Code {
    match refusal.status() {
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        _ => Code::Unauthenticated,
    }
}

/// Percent-encodes `grpc-message` (gRPC over HTTP/2: every byte outside `%x20-24 / %x26-7E`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The trailers-only gRPC answer to a refusal: HTTP 200, `content-type: application/grpc`,
/// `grpc-status`, `grpc-message`, `www-authenticate` (one entry per challenge, except for
/// `UNAVAILABLE`, where the token is not at fault), `dpop-nonce` and `retry-after` when the
/// HTTP answer has them.
pub fn response(refusal: &Refusal) -> Response<Bytes> {
    let http = refusal.http_response();
    let mut res = Response::new(Bytes::new());
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    let code = code(refusal);
    h.insert(GRPC_STATUS, HeaderValue::from(code as u16));
    let message = refusal
        .challenge()
        .error_description
        .clone()
        .unwrap_or_else(|| "a bearer token is required".into());
    if let Ok(v) = HeaderValue::from_str(&percent_encode(&message)) {
        h.insert(GRPC_MESSAGE, v);
    }
    for name in [header::WWW_AUTHENTICATE, DPOP_NONCE, header::RETRY_AFTER] {
        for v in http.headers().get_all(&name) {
            h.append(name.clone(), v.clone());
        }
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Reads the challenge of `scheme` out of a gRPC status's `www-authenticate` metadata, with the
/// same parser as for HTTP. `None` when there is none (or it does not parse).
///
/// ```
/// use stepup_tower::challenge::AuthScheme;
/// let mut status = tonic::Status::unauthenticated("authentication too old");
/// status.metadata_mut().insert("www-authenticate",
///     r#"Bearer error="insufficient_user_authentication", acr_values="mfa", max_age=300"#.parse().unwrap());
/// let c = stepup_tower::grpc::challenge_for(&status, AuthScheme::Bearer).unwrap();
/// assert!(c.is_step_up());
/// assert_eq!(c.max_age, Some(300));
/// ```
#[cfg(feature = "tonic")]
pub fn challenge_for(
    status: &tonic::Status,
    scheme: crate::challenge::AuthScheme,
) -> Option<crate::challenge::BearerChallenge> {
    crate::challenge::BearerChallenge::from_headers_for(&status.metadata().clone().into_headers(), scheme)
        .ok()
        .flatten()
}

/// [`challenge_for`] the `Bearer` scheme.
#[cfg(feature = "tonic")]
pub fn challenge(status: &tonic::Status) -> Option<crate::challenge::BearerChallenge> {
    challenge_for(status, crate::challenge::AuthScheme::Bearer)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn grpc_content_types() {
        let is = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            is_grpc(&h)
        };
        for yes in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "Application/GRPC",
            "application/grpc; charset=utf-8",
        ] {
            assert!(is(yes), "{yes}");
        }
        for no in [
            "application/grpc-web",
            "application/grpcx",
            "application/json",
            "text/html",
            "",
        ] {
            assert!(!is(no), "{no}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn message_encoding() {
        assert_eq!(percent_encode("100% sure: é"), "100%25 sure: %C3%A9");
        assert_eq!(percent_encode("plain text"), "plain text");
    }
}
