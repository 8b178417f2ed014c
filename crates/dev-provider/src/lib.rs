//! A small but real OpenID provider for development and tests.
//!
//! Not a mock: discovery, JWKS, authorization code with PKCE (S256 only), a login page, a
//! second-factor page with real TOTP (RFC 6238, via `totp-rs`), an SSO session cookie so that a
//! step-up asks only for the second factor, and a token endpoint issuing an ID token and an
//! RFC 9068 access token, both ES256 with a key generated at start (or loaded from a PEM file).
//!
//! Tokens carry `acr` (`loa1` after a password, the multi-factor URI after TOTP), `amr`
//! (`["pwd"]` / `["pwd","otp"]`) and `auth_time`. `acr_values`, `max_age` and `prompt=login`
//! are honoured.
//!
//! ```no_run
//! use dev_provider::{Provider, ProviderConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = Provider::new(ProviderConfig::demo("http://127.0.0.1:8080/idp", "http://127.0.0.1:8080/"))?;
//! let app = axum::Router::new().nest("/idp", provider.router());
//! # let _ = app; Ok(())
//! # }
//! ```
//!
//! It keeps everything in memory and is meant for development only: demo users have fixed,
//! printed passwords and TOTP secrets.

mod pages;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};
use totp_rs::{Secret, Totp};

/// The multi-factor acr (OpenID PAPE).
pub const MFA_ACR: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
/// The password-only acr.
pub const PASSWORD_ACR: &str = "loa1";

const SESSION_COOKIE: &str = "dev_idp_session";
const CODE_TTL: i64 = 60;
const REQUEST_TTL: i64 = 600;
const MAX_ENTRIES: usize = 10_000;

/// A demo user.
#[derive(Debug, Clone)]
pub struct DemoUser {
    /// Login name; also the `sub` of its tokens.
    pub username: String,
    /// Password (demo only: printed at start).
    pub password: String,
    /// TOTP secret, base32.
    pub totp_secret: String,
}

/// An OAuth client registered with the provider (public client, PKCE).
#[derive(Debug, Clone)]
pub struct ClientRegistration {
    /// `client_id`.
    pub client_id: String,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
}

/// Provider configuration.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The issuer URL (where the provider's router is reachable), without trailing slash.
    pub issuer: String,
    /// `aud` of access tokens.
    pub audience: String,
    /// Registered clients.
    pub clients: Vec<ClientRegistration>,
    /// Users.
    pub users: Vec<DemoUser>,
    /// Lifetime of access and ID tokens, seconds.
    pub token_ttl: i64,
    /// PKCS#8 PEM of a P-256 signing key; generated at start when `None`.
    pub signing_key_pem: Option<Vec<u8>>,
}

impl ProviderConfig {
    /// alice and bob, client `bank-spa` with `redirect_uri`, audience `bank-api`.
    pub fn demo(issuer: impl Into<String>, redirect_uri: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_string(),
            audience: "bank-api".into(),
            clients: vec![ClientRegistration {
                client_id: "bank-spa".into(),
                redirect_uris: vec![redirect_uri.into()],
            }],
            users: demo_users(),
            token_ttl: 600,
            signing_key_pem: None,
        }
    }
}

/// The seeded demo users: fixed passwords and TOTP secrets, printed at start.
pub fn demo_users() -> Vec<DemoUser> {
    vec![
        DemoUser {
            username: "alice".into(),
            password: "alice-demo-pw".into(),
            totp_secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
        },
        DemoUser {
            username: "bob".into(),
            password: "bob-demo-pw".into(),
            totp_secret: "KVKFKRCPNZQUYMLXOVYDSQKJKZDTSRLD".into(),
        },
    ]
}

/// The provider could not start.
#[derive(Debug)]
pub struct ProviderError(String);

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dev provider: {}", self.0)
    }
}

impl std::error::Error for ProviderError {}

struct User {
    password: String,
    totp: Totp,
}

#[derive(Clone)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    scope: String,
    target_acr: &'static str,
    max_age: Option<i64>,
    force_login: bool,
    created: i64,
}

#[derive(Clone)]
struct Session {
    user: String,
    pwd_at: i64,
    mfa_at: Option<i64>,
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    sub: String,
    acr: &'static str,
    amr: Vec<&'static str>,
    auth_time: i64,
    scope: String,
    expires: i64,
}

#[derive(Default)]
struct Store {
    requests: HashMap<String, AuthRequest>,
    sessions: HashMap<String, Session>,
    codes: HashMap<String, Grant>,
    last_totp_step: HashMap<String, u64>,
}

impl Store {
    fn prune(&mut self, now: i64) {
        self.requests.retain(|_, r| now - r.created < REQUEST_TTL);
        self.codes.retain(|_, g| g.expires > now);
        if self.sessions.len() > MAX_ENTRIES {
            self.sessions.retain(|_, s| now - s.pwd_at < 24 * 3600);
        }
    }
}

struct Inner {
    config: ProviderConfig,
    users: HashMap<String, User>,
    key: EncodingKey,
    kid: String,
    jwks: Value,
    rng: SystemRandom,
    store: Mutex<Store>,
}

/// The provider: build it once, mount [`Provider::router`] at the issuer's path.
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.inner.config.issuer)
            .field("kid", &self.inner.kid)
            .finish()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Provider {
    /// Builds the provider: parses the users' TOTP secrets and makes (or loads) the signing key.
    pub fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        let rng = SystemRandom::new();
        let der = match &config.signing_key_pem {
            Some(pem) => pem_to_der(pem)?,
            None => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| ProviderError("cannot generate a P-256 key".into()))?
                .as_ref()
                .to_vec(),
        };
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|_| ProviderError("the signing key is not a PKCS#8 P-256 key".into()))?;
        let key = EncodingKey::from_ec_der(&der);
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256)
            .map_err(|e| ProviderError(format!("cannot export the public key: {e}")))?;
        let kid = jwk
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .map_err(|e| ProviderError(format!("thumbprint: {e}")))?;
        let mut jwk = serde_json::to_value(&jwk).map_err(|e| ProviderError(e.to_string()))?;
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), json!(kid));
            o.insert("use".into(), json!("sig"));
        }
        let mut users = HashMap::new();
        for u in &config.users {
            let secret = Secret::try_from_base32(&u.totp_secret)
                .map_err(|_| ProviderError(format!("TOTP secret of {} is not base32", u.username)))?;
            let totp = totp_rs::Builder::new()
                .with_secret(secret)
                .with_issuer(Some("stepup-tower demo"))
                .with_account_name(u.username.clone())
                .build()
                .map_err(|e| ProviderError(format!("TOTP of {}: {e}", u.username)))?;
            users.insert(
                u.username.clone(),
                User {
                    password: u.password.clone(),
                    totp,
                },
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                jwks: json!({ "keys": [jwk] }),
                config,
                users,
                key,
                kid,
                rng,
                store: Mutex::new(Store::default()),
            }),
        })
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.inner.config.issuer
    }

    /// The public JWK Set document.
    pub fn jwks_json(&self) -> String {
        self.inner.jwks.to_string()
    }

    /// The `otpauth://` URI of a user, for a phone authenticator.
    pub fn otpauth_uri(&self, username: &str) -> Option<String> {
        self.inner.users.get(username).and_then(|u| u.totp.to_url().ok())
    }

    /// The TOTP code of a user at `time` (seconds since the epoch). For tests.
    pub fn totp_code(&self, username: &str, time: u64) -> Option<String> {
        self.inner
            .users
            .get(username)
            .map(|u| u.totp.generate(time).to_string())
    }

    /// Mints an access token directly, as `/token` would. For tests (e.g. an old `auth_time`).
    pub fn mint_access_token(&self, sub: &str, acr: &str, amr: &[&str], auth_time: i64) -> String {
        let now = now();
        let claims = json!({
            "iss": self.issuer(), "sub": sub, "aud": self.inner.config.audience, "client_id": "bank-spa",
            "iat": now, "exp": now + self.inner.config.token_ttl, "jti": self.random(16),
            "scope": "openid accounts", "auth_time": auth_time, "acr": acr, "amr": amr,
        });
        self.sign("at+jwt", &claims).unwrap_or_default()
    }

    /// The provider's routes, relative to the issuer: mount them at the issuer's path.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/login", get(login_page).post(login_submit))
            .route("/mfa", get(mfa_page).post(mfa_submit))
            .route("/token", axum::routing::post(token))
            .with_state(self.clone())
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.inner.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn random(&self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        // SystemRandom only fails if the OS has no entropy source; then an all-zero value would
        // be guessable, so fall back to the clock-mixed counter below rather than panic.
        if self.inner.rng.fill(&mut buf).is_err() {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (t >> ((i % 16) * 8)) as u8;
            }
        }
        URL_SAFE_NO_PAD.encode(buf)
    }

    fn sign(&self, typ: &str, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(typ.into());
        header.kid = Some(self.inner.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.inner.key)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.config.issuer)
    }
}

fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>, ProviderError> {
    let text = std::str::from_utf8(pem).map_err(|_| ProviderError("key file is not PEM".into()))?;
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| ProviderError("key file is not PEM".into()))
}

async fn discovery(State(p): State<Provider>) -> Response {
    let doc = json!({
        "issuer": p.issuer(),
        "authorization_endpoint": p.url("/authorize"),
        "token_endpoint": p.url("/token"),
        "jwks_uri": p.url("/jwks"),
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
    });
    json_response(StatusCode::OK, &doc)
}

async fn jwks(State(p): State<Provider>) -> Response {
    let mut res = json_response(StatusCode::OK, &p.inner.jwks);
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut res = (status, v.to_string()).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn redirect(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            res.headers_mut().insert(header::LOCATION, v);
            res
        }
        Err(_) => pages::error(StatusCode::BAD_REQUEST, "Invalid redirect target."),
    }
}

/// RFC 3986 percent-encoding of a query component.
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", pct(v))).collect();
    format!("{uri}{sep}{}", q.join("&"))
}

fn oauth_error_redirect(req: &AuthRequest, error: &str, description: &str) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = &req.state {
        params.push(("state", s));
    }
    redirect(&with_params(&req.redirect_uri, &params))
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

enum Next {
    Login,
    Mfa,
    Done(Session),
}

fn next_step(req: &AuthRequest, session: Option<&Session>, now: i64) -> Next {
    let Some(s) = session else { return Next::Login };
    if req.force_login {
        return Next::Login;
    }
    let fresh = |t: i64| req.max_age.is_none_or(|m| now - t <= m);
    if req.target_acr == MFA_ACR {
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

async fn authorize(
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
    let now = now();
    let mut req = AuthRequest {
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        state: q.get("state").cloned(),
        nonce: q.get("nonce").cloned(),
        code_challenge: String::new(),
        scope: q.get("scope").cloned().unwrap_or_else(|| "openid".into()),
        target_acr: PASSWORD_ACR,
        max_age: None,
        force_login: false,
        created: now,
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return oauth_error_redirect(
            &req,
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    match (
        q.get("code_challenge"),
        q.get("code_challenge_method").map(String::as_str),
    ) {
        (Some(c), Some("S256"))
            if c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            req.code_challenge = c.clone();
        }
        _ => {
            return oauth_error_redirect(
                &req,
                "invalid_request",
                "PKCE with code_challenge_method=S256 is required",
            );
        }
    }
    if let Some(m) = q.get("max_age") {
        match m.parse::<i64>() {
            Ok(v) if v >= 0 => req.max_age = Some(v),
            _ => return oauth_error_redirect(&req, "invalid_request", "max_age must be a non-negative integer"),
        }
    }
    // OIDC Core §3.1.2.1: acr_values in order of preference; take the first we support.
    if let Some(values) = q.get("acr_values") {
        req.target_acr = values
            .split(' ')
            .find_map(|v| match v {
                MFA_ACR => Some(MFA_ACR),
                PASSWORD_ACR => Some(PASSWORD_ACR),
                _ => None,
            })
            .unwrap_or(PASSWORD_ACR);
    }
    let prompt = q.get("prompt").map(String::as_str).unwrap_or_default();
    req.force_login = prompt.split(' ').any(|p| p == "login");
    let prompt_none = prompt.split(' ').any(|p| p == "none");
    let session = session_id(&headers).and_then(|id| p.store().sessions.get(&id).cloned());
    let next = next_step(&req, session.as_ref(), now);
    if prompt_none && !matches!(next, Next::Done(_)) {
        return oauth_error_redirect(&req, "login_required", "interaction required");
    }
    if let Next::Done(s) = next {
        return complete(&p, &req, &s, now);
    }
    let id = p.random(24);
    {
        let mut store = p.store();
        store.prune(now);
        if store.requests.len() >= MAX_ENTRIES {
            return pages::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many pending logins; try again later.",
            );
        }
        store.requests.insert(id.clone(), req);
    }
    match next {
        Next::Mfa => redirect(&with_params(&p.url("/mfa"), &[("req", &id)])),
        _ => redirect(&with_params(&p.url("/login"), &[("req", &id)])),
    }
}

fn complete(p: &Provider, req: &AuthRequest, s: &Session, now: i64) -> Response {
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
        store.codes.insert(code.clone(), grant);
    }
    tracing::info!(target: "dev_provider", user = %s.user, mfa, "authorization code issued");
    let mut params = vec![("code", code.as_str())];
    if let Some(st) = &req.state {
        params.push(("state", st));
    }
    redirect(&with_params(&req.redirect_uri, &params))
}

#[derive(Deserialize)]
struct ReqQuery {
    req: Option<String>,
}

fn pending(p: &Provider, id: Option<&str>) -> Option<AuthRequest> {
    let id = id?;
    let now = now();
    p.store()
        .requests
        .get(id)
        .filter(|r| now - r.created < REQUEST_TTL)
        .cloned()
}

async fn login_page(State(p): State<Provider>, Query(q): Query<ReqQuery>) -> Response {
    match pending(&p, q.req.as_deref()) {
        Some(_) => pages::login(StatusCode::OK, q.req.as_deref().unwrap_or_default(), None),
        None => pages::error(
            StatusCode::BAD_REQUEST,
            "This login request is unknown or expired. Start again from the application.",
        ),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    req: String,
    username: String,
    password: String,
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

async fn login_submit(State(p): State<Provider>, Form(f): Form<LoginForm>) -> Response {
    let Some(mut req) = pending(&p, Some(&f.req)) else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "This login request is unknown or expired. Start again from the application.",
        );
    };
    let ok = p
        .inner
        .users
        .get(&f.username)
        .is_some_and(|u| constant_time_eq(&u.password, &f.password));
    if !ok {
        tracing::info!(target: "dev_provider", "login refused: wrong username or password");
        return pages::login(StatusCode::UNAUTHORIZED, &f.req, Some("Wrong username or password."));
    }
    let now = now();
    let session = Session {
        user: f.username.clone(),
        pwd_at: now,
        mfa_at: None,
    };
    let sid = p.random(32);
    req.force_login = false;
    {
        let mut store = p.store();
        store.prune(now);
        store.sessions.insert(sid.clone(), session.clone());
        store.requests.insert(f.req.clone(), req.clone());
    }
    tracing::info!(target: "dev_provider", user = %f.username, "password accepted");
    let mut res = match next_step(&req, Some(&session), now) {
        Next::Done(s) => {
            p.store().requests.remove(&f.req);
            complete(&p, &req, &s, now)
        }
        _ => redirect(&with_params(&p.url("/mfa"), &[("req", &f.req)])),
    };
    let cookie = format!("{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn mfa_page(State(p): State<Provider>, headers: HeaderMap, Query(q): Query<ReqQuery>) -> Response {
    let Some(_) = pending(&p, q.req.as_deref()) else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "This login request is unknown or expired. Start again from the application.",
        );
    };
    let id = q.req.unwrap_or_default();
    match session_id(&headers).and_then(|s| p.store().sessions.get(&s).cloned()) {
        Some(s) => pages::mfa(StatusCode::OK, &id, &s.user, None),
        None => redirect(&with_params(&p.url("/login"), &[("req", &id)])),
    }
}

#[derive(Deserialize)]
struct MfaForm {
    req: String,
    code: String,
}

async fn mfa_submit(State(p): State<Provider>, headers: HeaderMap, Form(f): Form<MfaForm>) -> Response {
    let Some(req) = pending(&p, Some(&f.req)) else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "This login request is unknown or expired. Start again from the application.",
        );
    };
    let Some(sid) = session_id(&headers) else {
        return redirect(&with_params(&p.url("/login"), &[("req", &f.req)]));
    };
    let Some(session) = p.store().sessions.get(&sid).cloned() else {
        return redirect(&with_params(&p.url("/login"), &[("req", &f.req)]));
    };
    let Some(user) = p.inner.users.get(&session.user) else {
        return pages::error(StatusCode::BAD_REQUEST, "Unknown user.");
    };
    let now = now();
    let code = f.code.trim();
    let step = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        user.totp.check(code, now.max(0) as u64)
    } else {
        None
    };
    let Some(step) = step else {
        tracing::info!(target: "dev_provider", user = %session.user, "second factor refused: wrong code");
        return pages::mfa(
            StatusCode::UNAUTHORIZED,
            &f.req,
            &session.user,
            Some("Wrong code. Try the current code of your authenticator."),
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
            let s = store.sessions.get_mut(&sid).map(|s| {
                s.mfa_at = Some(now);
                s.clone()
            });
            store.requests.remove(&f.req);
            s
        }
    };
    match updated {
        None => {
            tracing::info!(target: "dev_provider", user = %session.user, "second factor refused: code replayed");
            pages::mfa(
                StatusCode::UNAUTHORIZED,
                &f.req,
                &session.user,
                Some("Wrong code: this code was already used. Wait for the next one."),
            )
        }
        Some(s) => {
            tracing::info!(target: "dev_provider", user = %s.user, "second factor accepted");
            complete(&p, &req, &s, now)
        }
    }
}

#[derive(Deserialize)]
struct TokenForm {
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

async fn token(State(p): State<Provider>, Form(f): Form<TokenForm>) -> Response {
    if f.grant_type.as_deref() != Some("authorization_code") {
        return token_error("unsupported_grant_type", "only authorization_code is supported");
    }
    let now = now();
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
    let at_claims = json!({
        "iss": p.issuer(), "sub": grant.sub, "aud": p.inner.config.audience, "client_id": grant.client_id,
        "iat": now, "exp": now + ttl, "jti": p.random(16), "scope": grant.scope,
        "auth_time": grant.auth_time, "acr": grant.acr, "amr": grant.amr,
    });
    let (Ok(id_token), Ok(access_token)) = (p.sign("JWT", &id_claims), p.sign("at+jwt", &at_claims)) else {
        return json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": "server_error"}));
    };
    tracing::info!(target: "dev_provider", sub = %grant.sub, acr = grant.acr, "tokens issued");
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access_token, "token_type": "Bearer", "expires_in": ttl,
            "id_token": id_token, "scope": grant.scope,
        }),
    )
}
