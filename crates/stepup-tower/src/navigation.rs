//! Browser navigations: a login redirect instead of a 401 page (opt-in).
//!
//! A server-rendered app wants a browser that opens a page needing a step-up to land on the
//! login page, not on a JSON 401. With [`StepUpBuilder::login_redirect`](crate::StepUpBuilder::login_redirect),
//! a `GET` (or `HEAD`) whose `Accept` prefers `text/html` over JSON (and whose
//! `Sec-Fetch-Mode`, when sent, is `navigate`) and that needs a step-up gets `303 See Other`
//! to the login URL with `acr_values`, `max_age` and `return_to`; with
//! [`LoginRedirect::also_without_token`], so does such a request without any token. API calls
//! (`Accept: application/json`, `fetch` with its `*/*`) keep the 401 and its challenge.
//!
//! `return_to` is the request's own path and query, made origin-relative: leading slashes and
//! backslashes collapse into one `/`, so `//evil.example/` becomes `/evil.example/`; it never
//! holds a scheme or a host, and is percent-encoded as one query value. The login page must
//! still only ever redirect to same-origin paths.
//!
//! ```
//! use stepup_tower::{Issuer, StepUp, keys::KeySet, navigation::LoginRedirect};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = StepUp::builder()
//!     .issuer(Issuer::access_tokens("https://id.example.com").audience("bank").static_keys(KeySet::new()))
//!     .login_redirect(LoginRedirect::new("/login")?.also_without_token())
//!     .build()?;
//! # let _ = auth; Ok(())
//! # }
//! ```

use std::fmt;

use http::{HeaderMap, HeaderValue, Method, Uri, header};

use crate::response::{Refusal, RefusalKind};

/// Where browser navigations are sent to log in (or step up).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct LoginRedirect {
    url: String,
    without_token: bool,
}

/// A login URL that is neither an absolute `http(s)` URL nor a path starting with one `/`, or
/// that has a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLoginUrl;

impl fmt::Display for InvalidLoginUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the login URL must be an absolute http(s) URL or a path starting with a single '/', without a fragment",
        )
    }
}

impl std::error::Error for InvalidLoginUrl {}

impl LoginRedirect {
    /// Redirects to `url` (e.g. `/login` or `https://app.example.com/login`; it may have a
    /// query of its own).
    pub fn new(url: impl Into<String>) -> Result<Self, InvalidLoginUrl> {
        let url = url.into();
        let path = url.starts_with('/') && !url.starts_with("//") && !url.starts_with("/\\");
        let absolute = url
            .parse::<Uri>()
            .ok()
            .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if !(path || absolute) || url.contains('#') || HeaderValue::from_str(&url).is_err() {
            return Err(InvalidLoginUrl);
        }
        Ok(Self {
            url,
            without_token: false,
        })
    }

    /// Also redirect navigations that carry no token at all (the app's pages are never
    /// public), not only those that need a step-up.
    pub fn also_without_token(mut self) -> Self {
        self.without_token = true;
        self
    }

    /// The `Location` for a refused navigation, when this refusal is one to redirect.
    pub(crate) fn location(&self, refusal: &Refusal, uri: &Uri) -> Option<HeaderValue> {
        let mut params = Vec::new();
        match refusal.kind() {
            RefusalKind::StepUp(_) => {
                let c = refusal.challenge();
                if !c.acr_values.is_empty() {
                    params.push(("acr_values", c.acr_values.join(" ")));
                }
                if let Some(m) = c.max_age {
                    params.push(("max_age", m.to_string()));
                }
            }
            RefusalKind::MissingToken if self.without_token => {}
            _ => return None,
        }
        params.push(("return_to", return_to(uri)));
        let mut location = self.url.clone();
        let mut sep = if location.contains('?') { '&' } else { '?' };
        for (name, value) in params {
            location.push(sep);
            sep = '&';
            location.push_str(name);
            location.push('=');
            location.push_str(&encode(&value));
        }
        HeaderValue::from_str(&location).ok()
    }
}

/// The request's path and query, origin-relative whatever the request line said.
pub(crate) fn return_to(uri: &Uri) -> String {
    let path = uri.path().trim_start_matches(['/', '\\']);
    match uri.query() {
        Some(q) => format!("/{path}?{q}"),
        None => format!("/{path}"),
    }
}

/// Percent-encodes a query value: everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a request is a browser navigation: `GET`/`HEAD`, `Sec-Fetch-Mode: navigate` when
/// that header is sent, and an `Accept` that prefers HTML to JSON.
pub(crate) fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    if let Some(mode) = headers.get("sec-fetch-mode")
        && mode.as_bytes() != b"navigate"
    {
        return false;
    }
    let (mut html, mut json) = (0.0f32, 0.0f32);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            if media.eq_ignore_ascii_case("text/html") || media.eq_ignore_ascii_case("application/xhtml+xml") {
                html = html.max(q);
            } else if media.eq_ignore_ascii_case("application/json")
                || media.eq_ignore_ascii_case("application/problem+json")
            {
                json = json.max(q);
            }
        }
    }
    html > 0.0 && html > json
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn nav(method: Method, accept: &[&str], mode: Option<&str>) -> bool {
        let mut h = HeaderMap::new();
        for a in accept {
            h.append(header::ACCEPT, HeaderValue::from_str(a).unwrap());
        }
        if let Some(m) = mode {
            h.insert("sec-fetch-mode", HeaderValue::from_str(m).unwrap());
        }
        is_navigation(&method, &h)
    }

    #[test]
    fn navigations_and_api_calls() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        assert!(nav(Method::GET, &[chrome], Some("navigate")));
        assert!(nav(Method::GET, &[chrome], None));
        assert!(nav(Method::HEAD, &["text/html"], None));
        assert!(!nav(Method::POST, &[chrome], Some("navigate")));
        assert!(!nav(Method::GET, &[chrome], Some("cors")));
        assert!(!nav(Method::GET, &["*/*"], None));
        assert!(!nav(Method::GET, &[], None));
        assert!(!nav(Method::GET, &["application/json"], None));
        assert!(!nav(Method::GET, &["text/html, application/json"], None));
        assert!(!nav(Method::GET, &["text/html;q=0.5, application/json"], None));
        assert!(nav(Method::GET, &["application/json;q=0.1", "text/html"], None));
        assert!(!nav(Method::GET, &["text/html;q=0"], None));
    }

    #[test]
    fn return_to_is_never_another_origin() {
        let rt = |u: &str| return_to(&u.parse::<Uri>().unwrap());
        assert_eq!(rt("/accounts?x=1&y=%2F"), "/accounts?x=1&y=%2F");
        assert_eq!(rt("//evil.example/path"), "/evil.example/path");
        assert_eq!(rt("/\\evil.example"), "/evil.example");
        assert_eq!(rt("///\\//evil.example"), "/evil.example");
        assert_eq!(rt("https://evil.example/x?q"), "/x?q");
        assert_eq!(rt("*"), "/*");
        assert_eq!(encode("/a b?c=d&e"), "%2Fa%20b%3Fc%3Dd%26e");
    }

    #[test]
    fn login_urls() {
        assert!(LoginRedirect::new("/login").is_ok());
        assert!(LoginRedirect::new("https://app.example/login?next=1").is_ok());
        for bad in [
            "//evil.example/login",
            "/\\evil",
            "login",
            "javascript:alert(1)",
            "/login#x",
            "ftp://x/",
        ] {
            assert!(LoginRedirect::new(bad).is_err(), "{bad}");
        }
    }
}
