//! The token endpoint (RFC 6749 §4.1.3 with RFC 7636 PKCE, DPoP-bound tokens per RFC 9449 §5),
//! discovery (OpenID Connect Discovery 1.0 §3, RFC 9449 §5.1) and the JWK Set.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::json;

use crate::dpop::DPOP_ALGS;
use crate::web::{constant_time_eq, json_response};
use crate::{MFA_ACR, PASSWORD_ACR, Provider};

pub(crate) async fn discovery(State(p): State<Provider>) -> Response {
    let doc = json!({
        "issuer": p.issuer(),
        "authorization_endpoint": p.url("/authorize"),
        "token_endpoint": p.url("/token"),
        "jwks_uri": p.url("/jwks"),
        "end_session_endpoint": p.url("/logout"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["openid", "accounts"],
        "acr_values_supported": [PASSWORD_ACR, MFA_ACR],
        "claims_supported": ["sub", "acr", "amr", "auth_time", "nonce", "azp"],
        "prompt_values_supported": ["none", "login"],
        "dpop_signing_alg_values_supported": DPOP_ALGS,
    });
    json_response(StatusCode::OK, &doc)
}

pub(crate) async fn jwks(State(p): State<Provider>) -> Response {
    let mut res = json_response(StatusCode::OK, &p.inner.jwks);
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
}

fn token_error(error: &str, description: &str) -> Response {
    tracing::info!(target: "dev_provider", error, description, "token request refused");
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": error, "error_description": description }),
    )
}

pub(crate) async fn token(State(p): State<Provider>, headers: HeaderMap, Form(f): Form<TokenForm>) -> Response {
    if f.grant_type.as_deref() != Some("authorization_code") {
        return token_error("unsupported_grant_type", "only authorization_code is supported");
    }
    // RFC 9449 §5: checked before the code is used, so a refused proof does not cost the code.
    let jkt = match p.dpop_proof(&Method::POST, &headers) {
        Ok(jkt) => jkt,
        Err(reason) => {
            tracing::debug!(target: "dev_provider", reason, "token request refused: invalid DPoP proof");
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({ "error": "invalid_dpop_proof", "error_description": reason }),
            );
        }
    };
    let now = p.now();
    let Some(grant) = f.code.as_deref().and_then(|c| p.store().codes.remove(c)) else {
        return token_error("invalid_grant", "unknown or already used code");
    };
    if grant.expires <= now {
        return token_error("invalid_grant", "code expired");
    }
    if f.client_id.as_deref() != Some(grant.client_id.as_str()) {
        return token_error("invalid_grant", "code issued to another client");
    }
    if f.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
        return token_error("invalid_grant", "redirect_uri does not match");
    }
    // RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) == code_challenge.
    let verifier = f.code_verifier.unwrap_or_default();
    let verifier_ok = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    if !verifier_ok || !constant_time_eq(&URL_SAFE_NO_PAD.encode(digest.as_ref()), &grant.code_challenge) {
        return token_error("invalid_grant", "PKCE verification failed");
    }
    let ttl = p.inner.config.token_ttl;
    let mut id_claims = json!({
        "iss": p.issuer(), "sub": grant.sub, "aud": grant.client_id, "azp": grant.client_id,
        "iat": now, "exp": now + ttl, "auth_time": grant.auth_time, "acr": grant.acr, "amr": grant.amr,
    });
    if let (Some(n), Some(obj)) = (&grant.nonce, id_claims.as_object_mut()) {
        obj.insert("nonce".into(), json!(n));
    }
    let mut at_claims = json!({
        "iss": p.issuer(), "sub": grant.sub, "aud": p.inner.config.audience, "client_id": grant.client_id,
        "iat": now, "exp": now + ttl, "jti": p.random(16), "scope": grant.scope,
        "auth_time": grant.auth_time, "acr": grant.acr, "amr": grant.amr,
    });
    // RFC 9449 §6.1: the token is bound to the proof's key.
    if let (Some(jkt), Some(obj)) = (&jkt, at_claims.as_object_mut()) {
        obj.insert("cnf".into(), json!({ "jkt": jkt }));
    }
    let (Ok(id_token), Ok(access_token)) = (p.sign("JWT", &id_claims), p.sign("at+jwt", &at_claims)) else {
        return json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": "server_error"}));
    };
    let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
    tracing::info!(target: "dev_provider", sub = %grant.sub, acr = grant.acr, token_type, "tokens issued");
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access_token, "token_type": token_type, "expires_in": ttl,
            "id_token": id_token, "scope": grant.scope,
        }),
    )
}
