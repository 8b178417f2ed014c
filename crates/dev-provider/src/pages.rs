//! The provider's HTML pages. Every value is HTML-escaped.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · dev provider</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;color:#222}}\
         h1{{font-size:1.3rem}} label{{display:block;margin:.8rem 0 .2rem}}\
         input{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}\
         button{{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}} button.secondary{{background:none;border:1px solid #888}}\
         .error{{color:#a00;background:#fee;padding:.5rem;border-radius:4px}} .note{{color:#666;font-size:.9rem}}\
         </style></head><body><p class=\"note\">stepup-tower dev OpenID provider — for development only</p>{body}</body></html>",
        title = escape(title)
    );
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // Replaced by the router with the registered clients' origins (see `csp`).
    h.insert(header::CONTENT_SECURITY_POLICY, csp(&[]));
    res
}

fn error_box(error: Option<&str>) -> String {
    error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default()
}

pub(crate) fn login(status: StatusCode, req: &str, error: Option<&str>) -> Response {
    let body = format!(
        "<h1>Sign in</h1>{err}<form id=\"login-form\" method=\"post\" action=\"login\">\
         <input type=\"hidden\" name=\"req\" value=\"{req}\">\
         <label for=\"username\">Username</label><input id=\"username\" name=\"username\" autocomplete=\"username\" required>\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button id=\"login-submit\" type=\"submit\">Sign in</button> \
         <button id=\"login-cancel\" class=\"secondary\" type=\"submit\" formaction=\"cancel\" formnovalidate>Cancel</button></form>",
        err = error_box(error),
        req = escape(req)
    );
    page(status, "Sign in", &body)
}

pub(crate) fn mfa(status: StatusCode, req: &str, user: &str, error: Option<&str>) -> Response {
    let body = format!(
        "<h1>Second factor</h1><p>Signed in as <b id=\"mfa-user\">{user}</b>. This action needs a stronger \
         authentication: enter the 6-digit code of your authenticator app.</p>{err}\
         <form id=\"mfa-form\" method=\"post\" action=\"mfa\">\
         <input type=\"hidden\" name=\"req\" value=\"{req}\">\
         <label for=\"code\">Code</label><input id=\"code\" name=\"code\" inputmode=\"numeric\" pattern=\"[0-9 ]{{6,9}}\" \
         autocomplete=\"one-time-code\" maxlength=\"9\" required autofocus>\
         <button id=\"mfa-submit\" type=\"submit\">Verify</button> \
         <button id=\"mfa-cancel\" class=\"secondary\" type=\"submit\" formaction=\"cancel\" formnovalidate>Cancel</button></form>",
        user = escape(user),
        err = error_box(error),
        req = escape(req)
    );
    page(status, "Second factor", &body)
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Error",
        &format!(
            "<h1>Something went wrong</h1><p class=\"error\">{}</p>",
            escape(message)
        ),
    )
}

/// Too many failed attempts: the login was ended; how long to wait.
pub(crate) fn locked(wait_secs: i64) -> Response {
    let minutes = (wait_secs + 59) / 60;
    let when = if wait_secs < 120 {
        format!("{wait_secs} seconds")
    } else {
        format!("{minutes} minutes")
    };
    page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        &format!(
            "<h1>Too many failed attempts</h1><p class=\"error\" role=\"alert\" id=\"locked\">For your safety this \
             login was ended. Wait <b id=\"wait\">{when}</b>, then start again from the application.</p>",
            when = escape(&when)
        ),
    )
}

/// After a logout without a redirect.
pub(crate) fn signed_out() -> Response {
    page(
        StatusCode::OK,
        "Signed out",
        "<h1>Signed out</h1><p id=\"signed-out\">You are signed out of the dev provider. You can close this page.</p>",
    )
}

fn hidden(name: &str, value: Option<&str>) -> String {
    value
        .map(|v| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(v)))
        .unwrap_or_default()
}

/// Logout without a valid `id_token_hint`: the user confirms (a form bound to the session).
pub(crate) fn logout_confirm(
    user: &str,
    csrf: &str,
    post_logout_redirect_uri: Option<&str>,
    client_id: Option<&str>,
    state: Option<&str>,
) -> Response {
    let body = format!(
        "<h1>Sign out?</h1><p>Signed in as <b>{user}</b>. Sign out of the dev provider?</p>\
         <form id=\"logout-form\" method=\"post\" action=\"logout\">{csrf}{uri}{client}{state}\
         <button id=\"logout-confirm\" type=\"submit\">Sign out</button></form>",
        user = escape(user),
        csrf = hidden("csrf", Some(csrf)),
        uri = hidden("post_logout_redirect_uri", post_logout_redirect_uri),
        client = hidden("client_id", client_id),
        state = hidden("state", state),
    );
    page(StatusCode::OK, "Sign out", &body)
}

/// The pages' Content-Security-Policy: nothing but inline styles, forms posting here or
/// redirecting to a registered client's origin, never framed.
pub(crate) fn csp(form_origins: &[String]) -> HeaderValue {
    let extra: String = form_origins
        .iter()
        .filter(|o| o.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b','))
        .map(|o| format!(" {o}"))
        .collect();
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'{extra}; frame-ancestors 'none'"
    ))
    .unwrap_or_else(|_| {
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        )
    })
}
