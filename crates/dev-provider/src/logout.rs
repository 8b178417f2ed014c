//! OpenID Connect RP-Initiated Logout 1.0: `/logout` and its confirmation form.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::login::same_origin;
use crate::store::SESSION_COOKIE;
use crate::web::{constant_time_eq, redirect, with_cookie, with_params};
use crate::{Provider, pages};

#[derive(Deserialize, Default)]
pub(crate) struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    client_id: Option<String>,
    state: Option<String>,
    csrf: Option<String>,
}

/// The subject and client of an ID token we issued (signature and issuer checked; an expired
/// hint is still a hint, OIDC RP-Initiated Logout 1.0 §2).
fn hint(p: &Provider, token: &str) -> Option<(String, String)> {
    let mut v = Validation::new(Algorithm::ES256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_issuer(&[p.issuer()]);
    v.set_required_spec_claims(&["iss", "sub", "aud"]);
    let data = jsonwebtoken::decode::<Value>(token, &p.inner.decoding, &v).ok()?;
    // An ID token (typ JWT or none), not an access token (at+jwt), which travels further.
    if data
        .header
        .typ
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
    {
        return None;
    }
    let sub = data.claims.get("sub")?.as_str()?.to_string();
    let aud = match data.claims.get("aud")? {
        Value::String(a) => a.clone(),
        Value::Array(a) => a.first()?.as_str()?.to_string(),
        _ => return None,
    };
    // Issued to a registered client.
    if !p.inner.config.clients.iter().any(|c| c.client_id == aud) {
        return None;
    }
    Some((sub, aud))
}

/// Where to send the browser after logout: `post_logout_redirect_uri`, registered exactly for
/// the client, with `state`. `Ok(None)`: no redirect asked.
fn logout_target(p: &Provider, q: &LogoutParams, hint_client: Option<&str>) -> Result<Option<String>, Box<Response>> {
    let Some(uri) = q.post_logout_redirect_uri.as_deref() else {
        return Ok(None);
    };
    let client_id = q.client_id.as_deref().or(hint_client);
    let registered = p
        .inner
        .config
        .clients
        .iter()
        .filter(|c| client_id.is_none_or(|id| c.client_id == id))
        .any(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
    if !registered || client_id.is_none() {
        tracing::info!(target: "dev_provider", "logout: post_logout_redirect_uri not registered for the client");
        return Err(Box::new(pages::error(
            StatusCode::BAD_REQUEST,
            "This post-logout redirect URI is not registered for the client.",
        )));
    }
    Ok(Some(match &q.state {
        Some(s) => with_params(uri, &[("state", s)]),
        None => uri.to_string(),
    }))
}

fn logged_out(p: &Provider, sid: Option<&str>, target: Option<String>) -> Response {
    if let Some(sid) = sid {
        let ended = p.store().sessions.remove(sid);
        if let Some(s) = ended {
            tracing::info!(target: "dev_provider", user = %s.user, "logged out");
        }
    }
    let res = match target {
        Some(to) => redirect(&to),
        None => pages::signed_out(),
    };
    with_cookie(res, p.cookie(SESSION_COOKIE, "", Some(0)))
}

/// OpenID Connect RP-Initiated Logout 1.0: with an `id_token_hint` of this browser's user the
/// session ends at once; otherwise the user confirms on a page (a form bound to the session).
pub(crate) async fn logout(State(p): State<Provider>, headers: HeaderMap, Query(q): Query<LogoutParams>) -> Response {
    // RP-Initiated Logout 1.0 §2: with both, client_id must be the hint's audience.
    let hinted = q
        .id_token_hint
        .as_deref()
        .and_then(|t| hint(&p, t))
        .filter(|(_, aud)| q.client_id.as_deref().is_none_or(|c| c == aud));
    if q.id_token_hint.is_some() && hinted.is_none() {
        tracing::info!(target: "dev_provider", "logout: id_token_hint refused");
    }
    let target = match logout_target(&p, &q, hinted.as_ref().map(|(_, c)| c.as_str())) {
        Ok(t) => t,
        Err(res) => return *res,
    };
    let session = p.session(&headers);
    match (&session, &hinted) {
        (None, _) => logged_out(&p, None, target),
        (Some((sid, s)), Some((sub, _))) if *sub == s.user => logged_out(&p, Some(sid), target),
        (Some((sid, s)), _) => pages::logout_confirm(
            &s.user,
            &p.mac("logout", sid),
            q.post_logout_redirect_uri.as_deref(),
            q.client_id.as_deref().or(hinted.as_ref().map(|(_, c)| c.as_str())),
            q.state.as_deref(),
        ),
    }
}

pub(crate) async fn logout_confirmed(
    State(p): State<Provider>,
    headers: HeaderMap,
    Form(q): Form<LogoutParams>,
) -> Response {
    if let Err(res) = same_origin(&p, &headers) {
        return *res;
    }
    let target = match logout_target(&p, &q, None) {
        Ok(t) => t,
        Err(res) => return *res,
    };
    let Some((sid, _)) = p.session(&headers) else {
        return logged_out(&p, None, target);
    };
    let csrf_ok = q
        .csrf
        .as_deref()
        .is_some_and(|c| constant_time_eq(c, &p.mac("logout", &sid)));
    if !csrf_ok {
        tracing::info!(target: "dev_provider", "logout refused: CSRF token missing or wrong");
        return pages::error(StatusCode::FORBIDDEN, "This logout form is not valid. Start again.");
    }
    logged_out(&p, Some(&sid), target)
}
