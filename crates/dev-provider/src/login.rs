//! The interactive login: `/authorize`, the password and second-factor pages, Cancel, and the
//! authorization code that ends a login.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use totp_rs::Totp;

use crate::store::{Factor, Grant, PRE_LOGIN_COOKIE, Pending, SESSION_COOKIE, Session, bound};
use crate::web::{constant_time_eq, cookie, oauth_error_redirect, redirect, secret_eq, with_cookie, with_params};
use crate::{MFA_ACR, PASSWORD_ACR, Provider, pages};

/// How long an authorization code stays usable, seconds.
const CODE_TTL: i64 = 60;

/// Refuses a cross-site `POST` (login CSRF): a foreign `Origin`, or `Sec-Fetch-Site:
/// cross-site`. Requests without either header (non-browser clients) pass; the sealed,
/// cookie-bound request value protects those forms as well.
pub(crate) fn same_origin(p: &Provider, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let foreign_origin = headers
        .get(header::ORIGIN)
        .is_some_and(|o| !o.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(&p.inner.origin)));
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if foreign_origin || cross_site {
        tracing::info!(target: "dev_provider", "cross-origin POST refused");
        return Err(Box::new(pages::error(
            StatusCode::FORBIDDEN,
            "This form was sent from another site and was refused.",
        )));
    }
    Ok(())
}

/// RFC 6238 with one step of skew each way: the matching step, if any. Every candidate is
/// computed and compared in constant time, whichever matches. Spaces inside the code (as
/// authenticator apps show it, "123 456") are ignored.
fn check_totp(totp: &Totp, code: &str, now: i64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = u64::try_from(now).ok()? / 30;
    let mut found = None;
    for s in [step.saturating_sub(1), step, step + 1] {
        let expected = totp.generate(s * 30).to_string();
        if constant_time_eq(&expected, &code) && found.is_none() {
            found = Some(s);
        }
    }
    found
}

enum Next {
    Login,
    Mfa,
    Done(Session),
}

fn next_step(req: &Pending, session: Option<&Session>, now: i64) -> Next {
    let Some(s) = session else { return Next::Login };
    if req.force_login {
        return Next::Login;
    }
    let fresh = |t: i64| req.max_age.is_none_or(|m| now - t <= m);
    if req.mfa {
        // Step-up: the password session stands; only the second factor is asked.
        if s.mfa_at.is_some_and(fresh) {
            Next::Done(s.clone())
        } else {
            Next::Mfa
        }
    } else if fresh(s.mfa_at.map_or(s.pwd_at, |m| m.max(s.pwd_at))) {
        Next::Done(s.clone())
    } else {
        Next::Login
    }
}

pub(crate) async fn authorize(
    State(p): State<Provider>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let client_id = q.get("client_id").map(String::as_str).unwrap_or_default();
    let Some(client) = p.inner.config.clients.iter().find(|c| c.client_id == client_id) else {
        tracing::info!(target: "dev_provider", "authorize: unknown client");
        return pages::error(StatusCode::BAD_REQUEST, "Unknown client.");
    };
    let redirect_uri = q.get("redirect_uri").map(String::as_str).unwrap_or_default();
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        tracing::info!(target: "dev_provider", "authorize: redirect_uri not registered");
        return pages::error(
            StatusCode::BAD_REQUEST,
            "This redirect URI is not registered for the client.",
        );
    }
    let state = q.get("state").map(String::as_str);
    let refuse = |error: &str, description: &str| oauth_error_redirect(redirect_uri, state, error, description);
    if q.get("response_type").map(String::as_str) != Some("code") {
        return refuse("unsupported_response_type", "only response_type=code is supported");
    }
    let code_challenge = match (
        q.get("code_challenge"),
        q.get("code_challenge_method").map(String::as_str),
    ) {
        (Some(c), Some("S256"))
            if c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            c.clone()
        }
        _ => return refuse("invalid_request", "PKCE with code_challenge_method=S256 is required"),
    };
    let max_age = match q.get("max_age").map(|m| m.parse::<i64>()) {
        None => None,
        Some(Ok(v)) if v >= 0 => Some(v),
        Some(_) => return refuse("invalid_request", "max_age must be a non-negative integer"),
    };
    // RFC 6749 §3.3: grant the requested scopes the client is registered for.
    let requested = q.get("scope").map(String::as_str).unwrap_or("openid");
    let granted: Vec<&str> = requested
        .split(' ')
        .filter(|s| !s.is_empty() && client.scopes.iter().any(|c| c == s))
        .collect();
    // OIDC Core §3.1.2.1: acr_values in order of preference; take the first we support.
    let mfa = q
        .get("acr_values")
        .and_then(|values| {
            values.split(' ').find_map(|v| match v {
                MFA_ACR => Some(true),
                PASSWORD_ACR => Some(false),
                _ => None,
            })
        })
        .unwrap_or(false);
    let prompt = q.get("prompt").map(String::as_str).unwrap_or_default();
    let now = p.now();
    // The pre-login cookie this pending login is bound to (kept across logins of this browser).
    let existing_pre = cookie(&headers, PRE_LOGIN_COOKIE).filter(|c| c.len() == 43);
    let pre = existing_pre.clone().unwrap_or_else(|| p.random(32));
    let pending = Pending {
        id: p.random(16),
        pre: pre.clone(),
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        state: state.map(str::to_string),
        nonce: q.get("nonce").cloned(),
        code_challenge,
        scope: granted.join(" "),
        mfa,
        max_age,
        force_login: prompt.split(' ').any(|p| p == "login"),
        created: now,
    };
    let session = p.session(&headers).map(|(_, s)| s);
    let next = next_step(&pending, session.as_ref(), now);
    if prompt.split(' ').any(|p| p == "none") && !matches!(next, Next::Done(_)) {
        return refuse("login_required", "interaction required");
    }
    if let Next::Done(s) = next {
        return complete(&p, &pending, &s, now);
    }
    let Some(sealed) = p.seal(&pending) else {
        return pages::error(StatusCode::SERVICE_UNAVAILABLE, "Could not start the login.");
    };
    let page = if matches!(next, Next::Mfa) { "/mfa" } else { "/login" };
    let res = redirect(&with_params(&p.url(page), &[("req", &sealed)]));
    if existing_pre.is_some() {
        res
    } else {
        with_cookie(res, p.cookie(PRE_LOGIN_COOKIE, &pre, None))
    }
}

fn complete(p: &Provider, req: &Pending, s: &Session, now: i64) -> Response {
    let mfa = s.mfa_at.is_some();
    let grant = Grant {
        client_id: req.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.code_challenge.clone(),
        nonce: req.nonce.clone(),
        sub: s.user.clone(),
        acr: if mfa { MFA_ACR } else { PASSWORD_ACR },
        amr: if mfa { vec!["pwd", "otp"] } else { vec!["pwd"] },
        auth_time: s.mfa_at.map_or(s.pwd_at, |m| m.max(s.pwd_at)),
        scope: req.scope.clone(),
        expires: now + CODE_TTL,
    };
    let code = p.random(32);
    {
        let mut store = p.store();
        store.prune(now);
        bound(&mut store.codes, now, |g| g.expires);
        store.codes.insert(code.clone(), grant);
    }
    p.end_pending(req, now);
    tracing::info!(target: "dev_provider", user = %s.user, mfa, "authorization code issued");
    let mut params = vec![("code", code.as_str())];
    if let Some(st) = &req.state {
        params.push(("state", st));
    }
    redirect(&with_params(&req.redirect_uri, &params))
}

#[derive(Deserialize)]
pub(crate) struct ReqQuery {
    req: Option<String>,
}

fn locked_page(wait: i64) -> Response {
    let mut res = pages::locked(wait);
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

pub(crate) async fn login_page(State(p): State<Provider>, headers: HeaderMap, Query(q): Query<ReqQuery>) -> Response {
    match p.pending(&headers, q.req.as_deref()) {
        Ok(_) => pages::login(StatusCode::OK, q.req.as_deref().unwrap_or_default(), None),
        Err(res) => *res,
    }
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    req: String,
    username: String,
    password: String,
}

pub(crate) async fn login_submit(State(p): State<Provider>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    if let Err(res) = same_origin(&p, &headers) {
        return *res;
    }
    let pending = match p.pending(&headers, Some(&f.req)) {
        Ok(pending) => pending,
        Err(res) => return *res,
    };
    let now = p.now();
    // A locked-out user is not even checked: no password oracle while waiting.
    if let Some(wait) = p.locked_for(&f.username, Factor::Password, now) {
        p.end_pending(&pending, now);
        return locked_page(wait);
    }
    let user = p.inner.users.get(&f.username);
    let expected = user.map_or("\u{0}never a password", |u| u.password.as_str());
    let ok = secret_eq(expected, &f.password) && user.is_some();
    if !ok {
        tracing::info!(target: "dev_provider", "login refused: wrong username or password");
        if let Some(wait) = p.failed(Some(&f.username), Factor::Password, &pending, now) {
            return locked_page(wait);
        }
        return pages::login(StatusCode::UNAUTHORIZED, &f.req, Some("Wrong username or password."));
    }
    p.succeeded(&f.username, Factor::Password);
    let sid = p.open_session(&f.username, now);
    tracing::info!(target: "dev_provider", user = %f.username, "password accepted");
    let session = Session {
        user: f.username.clone(),
        pwd_at: now,
        mfa_at: None,
        created: now,
        last_seen: now,
        seq: 0,
    };
    let after_password = Pending {
        force_login: false,
        ..pending.clone()
    };
    let res = match next_step(&after_password, Some(&session), now) {
        Next::Done(s) => complete(&p, &pending, &s, now),
        _ => redirect(&with_params(&p.url("/mfa"), &[("req", &f.req)])),
    };
    with_cookie(res, p.cookie(SESSION_COOKIE, &sid, None))
}

pub(crate) async fn mfa_page(State(p): State<Provider>, headers: HeaderMap, Query(q): Query<ReqQuery>) -> Response {
    if let Err(res) = p.pending(&headers, q.req.as_deref()) {
        return *res;
    }
    let id = q.req.unwrap_or_default();
    match p.session(&headers) {
        Some((_, s)) => pages::mfa(StatusCode::OK, &id, &s.user, None),
        None => redirect(&with_params(&p.url("/login"), &[("req", &id)])),
    }
}

#[derive(Deserialize)]
pub(crate) struct MfaForm {
    req: String,
    code: String,
}

pub(crate) async fn mfa_submit(State(p): State<Provider>, headers: HeaderMap, Form(f): Form<MfaForm>) -> Response {
    if let Err(res) = same_origin(&p, &headers) {
        return *res;
    }
    let pending = match p.pending(&headers, Some(&f.req)) {
        Ok(pending) => pending,
        Err(res) => return *res,
    };
    let Some((sid, session)) = p.session(&headers) else {
        return redirect(&with_params(&p.url("/login"), &[("req", &f.req)]));
    };
    let Some(user) = p.inner.users.get(&session.user) else {
        return pages::error(StatusCode::BAD_REQUEST, "Unknown user.");
    };
    let now = p.now();
    if let Some(wait) = p.locked_for(&session.user, Factor::Code, now) {
        p.end_pending(&pending, now);
        return locked_page(wait);
    }
    let Some(step) = check_totp(&user.totp, &f.code, now) else {
        tracing::info!(target: "dev_provider", user = %session.user, "second factor refused: wrong code");
        if let Some(wait) = p.failed(Some(&session.user), Factor::Code, &pending, now) {
            return locked_page(wait);
        }
        return pages::mfa(
            StatusCode::UNAUTHORIZED,
            &f.req,
            &session.user,
            Some("Wrong code. Enter the current code of your authenticator."),
        );
    };
    let updated = {
        let mut store = p.store();
        // RFC 6238 §5.2: a code is accepted once.
        let last = store.last_totp_step.get(&session.user).copied();
        if last.is_some_and(|l| step <= l) {
            None
        } else {
            store.last_totp_step.insert(session.user.clone(), step);
            store.sessions.get_mut(&sid).map(|s| {
                s.mfa_at = Some(now);
                s.clone()
            })
        }
    };
    match updated {
        None => {
            tracing::info!(target: "dev_provider", user = %session.user, "second factor refused: code replayed");
            if let Some(wait) = p.failed(Some(&session.user), Factor::Code, &pending, now) {
                return locked_page(wait);
            }
            pages::mfa(
                StatusCode::UNAUTHORIZED,
                &f.req,
                &session.user,
                Some("This code was already used. Wait for the next one."),
            )
        }
        Some(s) => {
            tracing::info!(target: "dev_provider", user = %s.user, "second factor accepted");
            p.succeeded(&s.user, Factor::Code);
            complete(&p, &pending, &s, now)
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CancelForm {
    req: String,
}

/// "Cancel" on the login or second-factor page: OAuth `access_denied` back to the client.
pub(crate) async fn cancel(State(p): State<Provider>, headers: HeaderMap, Form(f): Form<CancelForm>) -> Response {
    if let Err(res) = same_origin(&p, &headers) {
        return *res;
    }
    let pending = match p.pending(&headers, Some(&f.req)) {
        Ok(pending) => pending,
        Err(res) => return *res,
    };
    p.end_pending(&pending, p.now());
    tracing::info!(target: "dev_provider", "login cancelled by the user");
    oauth_error_redirect(
        &pending.redirect_uri,
        pending.state.as_deref(),
        "access_denied",
        "the user cancelled the login",
    )
}
