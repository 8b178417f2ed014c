//! A browser-like user of the embedded dev provider for tests: keeps its cookies, answers the
//! login and second-factor pages (real TOTP codes), and runs the authorization code flow with
//! PKCE to the end. Shared by the bank demo's e2e tests and grpc-bank's tests
//! (`#[path]`-included there), which each implement [`Site`] for their server.
#![allow(dead_code)] // each includer uses a part

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

/// The demo's defaults, as `Config::from_env` gives them with no variable set.
pub(crate) fn config() -> bank_demo::Config {
    bank_demo::Config {
        audience: "bank-api".into(),
        client_id: "bank-spa".into(),
        scope: "openid accounts".into(),
        ..bank_demo::Config::default()
    }
}

/// What a test server offers the user: its origin, an HTTP client that follows no redirect,
/// and the embedded provider (for TOTP codes).
pub(crate) trait Site {
    fn base(&self) -> &str;
    fn http(&self) -> &reqwest::Client;
    fn provider(&self) -> &dev_provider::Provider;
}

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub(crate) fn query(location: &str) -> HashMap<String, String> {
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The PKCE verifier of every test login.
/// The `Location` of a `303`.
pub(crate) fn redirect_to(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "expected a redirect");
    res.headers()[LOCATION].to_str().unwrap().to_string()
}

pub(crate) const VERIFIER: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";

/// A browser-like client of the provider: keeps its cookies (the pre-login and the SSO
/// session cookie), follows nothing by itself.
pub(crate) struct User<'a, S: Site> {
    demo: &'a S,
    cookies: std::sync::Mutex<HashMap<String, String>>,
    pub(crate) name: &'static str,
    pub(crate) password: &'static str,
    pub(crate) last_step: Option<u64>,
    /// The provider's clock, when the test controls it.
    pub(crate) clock: Option<Arc<std::sync::atomic::AtomicI64>>,
}

impl<'a, S: Site> User<'a, S> {
    pub(crate) fn new(demo: &'a S, name: &'static str, password: &'static str) -> Self {
        Self {
            demo,
            cookies: std::sync::Mutex::new(HashMap::new()),
            name,
            password,
            last_step: None,
            clock: None,
        }
    }

    pub(crate) fn cookie_header(&self) -> Option<String> {
        let jar = self.cookies.lock().unwrap();
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    pub(crate) fn has_cookie(&self, name: &str) -> bool {
        self.cookies.lock().unwrap().contains_key(name)
    }

    pub(crate) fn keep_cookies(&self, res: &reqwest::Response) {
        let mut jar = self.cookies.lock().unwrap();
        for sc in res.headers().get_all(SET_COOKIE) {
            let text = sc.to_str().unwrap();
            let (name, value) = text.split(';').next().unwrap().split_once('=').unwrap();
            if text.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
    }

    pub(crate) async fn get(&self, url: &str) -> reqwest::Response {
        let mut r = self.demo.http().get(url);
        if let Some(c) = self.cookie_header() {
            r = r.header(COOKIE, c);
        }
        let res = r.send().await.unwrap();
        self.keep_cookies(&res);
        res
    }

    pub(crate) async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_form_with(url, form, &[]).await
    }

    pub(crate) async fn post_form_with(
        &mut self,
        url: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
        let mut r = self
            .demo
            .http()
            .post(url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.join("&"));
        if let Some(c) = self.cookie_header() {
            r = r.header(COOKIE, c);
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let res = r.send().await.unwrap();
        self.keep_cookies(&res);
        res
    }

    /// "Now" as the provider sees it.
    pub(crate) fn now(&self) -> u64 {
        match &self.clock {
            Some(c) => c.load(std::sync::atomic::Ordering::SeqCst) as u64,
            None => now(),
        }
    }

    /// Runs an authorization request to the end, answering the pages the provider shows.
    /// Returns (tokens, pages seen).
    /// The provider's authorization URL for this demo's SPA client, with `extra` parameters.
    pub(crate) fn authorize_url(&self, extra: &[(&str, String)]) -> String {
        let challenge =
            URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()).as_ref());
        let mut params = vec![
            ("response_type", "code".to_string()),
            ("client_id", "bank-spa".to_string()),
            ("redirect_uri", format!("{}/", self.demo.base())),
            ("scope", "openid accounts".to_string()),
            ("state", "st4te".to_string()),
            ("nonce", "n0nce".to_string()),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256".to_string()),
        ];
        // `extra` adds parameters or replaces the defaults (e.g. another `scope`).
        for (k, v) in extra {
            params.retain(|(p, _)| p != k);
            params.push((k, v.clone()));
        }
        let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
        format!("{}/idp/authorize?{}", self.demo.base(), q.join("&"))
    }

    pub(crate) async fn authorize(&mut self, extra: &[(&str, String)]) -> (Value, Vec<&'static str>) {
        let (res, pages) = self.authorize_with(extra, &[]).await;
        assert_eq!(res.status(), 200);
        (serde_json::from_str(&res.text().await.unwrap()).unwrap(), pages)
    }

    /// As [`User::authorize`], with `token_headers` on the token request (e.g. a `DPoP`
    /// proof); returns the token endpoint's answer as it is.
    pub(crate) async fn authorize_with(
        &mut self,
        extra: &[(&str, String)],
        token_headers: &[(&str, &str)],
    ) -> (reqwest::Response, Vec<&'static str>) {
        let verifier = VERIFIER;
        let redirect_uri = format!("{}/", self.demo.base());
        let mut location = redirect_to(&self.get(&self.authorize_url(extra)).await);
        let mut pages = Vec::new();
        loop {
            if location.starts_with(&format!("{redirect_uri}?")) {
                break;
            }
            let req = query(&location)["req"].clone();
            if location.contains("/idp/login") {
                pages.push("login");
                let page = self.get(&location).await.text().await.unwrap();
                assert!(page.contains("id=\"password\""));
                let res = self
                    .post_form(
                        &format!("{}/idp/login", self.demo.base()),
                        &[("req", &req), ("username", self.name), ("password", self.password)],
                    )
                    .await;
                location = redirect_to(&res);
            } else if location.contains("/idp/mfa") {
                pages.push("mfa");
                let page = self.get(&location).await.text().await.unwrap();
                assert!(
                    !page.contains("id=\"password\""),
                    "the second-factor page asks only for the code"
                );
                // A code not used yet (RFC 6238 §5.2: each is accepted once).
                let mut t = self.now();
                if self.last_step.is_some_and(|s| s >= t / 30) {
                    t += 30;
                }
                self.last_step = Some(t / 30);
                let code = self.demo.provider().totp_code(self.name, t).unwrap();
                let res = self
                    .post_form(
                        &format!("{}/idp/mfa", self.demo.base()),
                        &[("req", &req), ("code", &code)],
                    )
                    .await;
                location = redirect_to(&res);
            } else {
                panic!("unexpected redirect {location}");
            }
        }
        let q = query(&location);
        assert_eq!(q.get("state").map(String::as_str), Some("st4te"), "{location}");
        let code = q.get("code").unwrap_or_else(|| panic!("no code in {location}")).clone();
        let res = self
            .post_form_with(
                &format!("{}/idp/token", self.demo.base()),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect_uri),
                    ("client_id", "bank-spa"),
                    ("code_verifier", verifier),
                ],
                token_headers,
            )
            .await;
        (res, pages)
    }
}
