//! A small but real OpenID provider for development and tests.
//!
//! Not a mock: discovery, JWKS, authorization code with PKCE (S256 only), a login page, a
//! second-factor page with real TOTP (RFC 6238, via `totp-rs`), an SSO session cookie so that a
//! step-up asks only for the second factor, RP-initiated logout, and a token endpoint issuing an
//! ID token and an RFC 9068 access token, both ES256 with a key generated at start (or loaded
//! from a PEM file).
//!
//! Tokens carry `acr` (`loa1` after a password, the multi-factor URI after TOTP), `amr`
//! (`["pwd"]` / `["pwd","otp"]`) and `auth_time`. `acr_values`, `max_age` and `prompt=login`
//! are honoured; only the scopes registered for the client are granted.
//!
//! A token request with a `DPoP` proof (RFC 9449 §4, §5) gets an access token bound to the
//! proof's key (`cnf.jkt`, RFC 9449 §6.1) and `"token_type": "DPoP"`; the proof is checked as
//! RFC 9449 §4.3 says (`typ`, an asymmetric `alg`, a public `jwk`, the signature, `htm`, `htu`,
//! `iat` within 60 s, a `jti` used once).
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
//! It is meant for development only — demo users have fixed, printed passwords and TOTP
//! secrets, and everything is in memory — but it is safe to copy as far as it goes:
//!
//! - **No server state for anonymous requests.** A pending login lives in the browser, sealed
//!   (AES-256-GCM under a key made at start) and bound to a pre-login cookie; the server stores
//!   nothing until credentials were checked, so a flood of `/authorize` requests costs memory
//!   to no one.
//! - **CSRF.** Every form carries that sealed value, which is only accepted together with the
//!   cookie it is bound to; a `POST` with a foreign `Origin` (or `Sec-Fetch-Site: cross-site`)
//!   is refused.
//! - **Factor throttling.** Failed passwords and codes are counted per user and per pending
//!   login; after [`ProviderConfig::max_failures`] the pending login is ended and the user waits
//!   (30 s, doubling per lockout up to 15 min). Codes are compared in constant time and each
//!   code is accepted once (RFC 6238 §5.2).
//! - **Sessions** expire when idle (30 min) and after 12 h; at most
//!   [`ProviderConfig::max_sessions_per_user`] per user; the cookie is `HttpOnly`,
//!   `SameSite=Lax`, limited to the provider's path, and `Secure` with an https issuer.
//! - **Logout**: OpenID Connect RP-Initiated Logout 1.0 (`end_session_endpoint`,
//!   `id_token_hint`, exact `post_logout_redirect_uri`).

mod dpop;
mod login;
mod logout;
mod pages;
mod store;
mod token;
mod web;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::Router;
use axum::http::HeaderValue;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};
use totp_rs::{Secret, Totp};

pub use dpop::jwk_thumbprint;
use store::Store;

/// The multi-factor acr (OpenID PAPE).
pub const MFA_ACR: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
/// The password-only acr.
pub const PASSWORD_ACR: &str = "loa1";

/// The source of "now" (seconds since the epoch). Replaceable for tests.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// A clock reading `now`.
    pub fn new(now: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The system clock.
    pub fn system() -> Self {
        Self::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0)
        })
    }

    /// The current time.
    pub fn now(&self) -> i64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

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
    /// Exact `post_logout_redirect_uri` values (RP-Initiated Logout).
    pub post_logout_redirect_uris: Vec<String>,
    /// Scopes the client may be granted; others it asks for are left out of the grant.
    pub scopes: Vec<String>,
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
    /// A session ends after this many seconds without use (default 30 min).
    pub session_idle: i64,
    /// A session ends this many seconds after the password (default 12 h).
    pub session_absolute: i64,
    /// Sessions one user may hold at once; the oldest ends first (default 5).
    pub max_sessions_per_user: usize,
    /// Failed passwords or codes before a pending login ends and the user waits (default 5).
    pub max_failures: u32,
    /// The clock (default: the system's).
    pub clock: Clock,
}

impl ProviderConfig {
    /// alice and bob, client `bank-spa` with `redirect_uri` (also its post-logout redirect URI)
    /// and scopes `openid accounts`, audience `bank-api`.
    pub fn demo(issuer: impl Into<String>, redirect_uri: impl Into<String>) -> Self {
        let redirect_uri = redirect_uri.into();
        Self {
            issuer: issuer.into().trim_end_matches('/').to_string(),
            audience: "bank-api".into(),
            clients: vec![ClientRegistration {
                client_id: "bank-spa".into(),
                redirect_uris: vec![redirect_uri.clone()],
                post_logout_redirect_uris: vec![redirect_uri],
                scopes: vec!["openid".into(), "accounts".into()],
            }],
            users: demo_users(),
            token_ttl: 600,
            signing_key_pem: None,
            session_idle: 30 * 60,
            session_absolute: 12 * 3600,
            max_sessions_per_user: 5,
            max_failures: 5,
            clock: Clock::system(),
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

/// The TOTP generator of a base32 secret, as the provider checks it (SHA-1, 6 digits, 30 s).
pub fn totp_for(secret_base32: &str, account: &str) -> Result<Totp, ProviderError> {
    let secret = Secret::try_from_base32(secret_base32.trim())
        .map_err(|_| ProviderError(format!("TOTP secret of {account} is not base32")))?;
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_issuer(Some("stepup-tower demo"))
        .with_account_name(account.to_string())
        .build()
        .map_err(|e| ProviderError(format!("TOTP of {account}: {e}")))
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

struct Inner {
    config: ProviderConfig,
    users: HashMap<String, User>,
    key: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    jwks: Value,
    rng: SystemRandom,
    seal: LessSafeKey,
    mac: hmac::Key,
    /// `scheme://host[:port]` of the issuer, for the `Origin` check.
    origin: String,
    /// Origins of the registered redirect URIs, for the pages' `form-action`.
    form_origins: Vec<String>,
    cookie_path: String,
    secure: bool,
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

/// `scheme://authority` and the path of a URL (`/` when empty).
fn split_url(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or(rest), rest.get(i..).unwrap_or("/")),
        None => (rest, "/"),
    };
    let path = if path.is_empty() { "/" } else { path };
    (
        format!("{}://{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()),
        path.to_string(),
    )
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
        let public = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256)
            .map_err(|e| ProviderError(format!("cannot export the public key: {e}")))?;
        let decoding = DecodingKey::from_jwk(&public).map_err(|e| ProviderError(format!("public key: {e}")))?;
        let kid = public
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .map_err(|e| ProviderError(format!("thumbprint: {e}")))?;
        let mut jwk = serde_json::to_value(&public).map_err(|e| ProviderError(e.to_string()))?;
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), json!(kid));
            o.insert("use".into(), json!("sig"));
        }
        let mut users = HashMap::new();
        for u in &config.users {
            users.insert(
                u.username.clone(),
                User {
                    password: u.password.clone(),
                    totp: totp_for(&u.totp_secret, &u.username)?,
                },
            );
        }
        let mut secret = [0u8; 32];
        rng.fill(&mut secret)
            .map_err(|_| ProviderError("no randomness for the sealing key".into()))?;
        let seal =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secret).map_err(|_| ProviderError("sealing key".into()))?);
        rng.fill(&mut secret)
            .map_err(|_| ProviderError("no randomness for the MAC key".into()))?;
        let mac = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        let (origin, path) = split_url(&config.issuer);
        Ok(Self {
            inner: Arc::new(Inner {
                jwks: json!({ "keys": [jwk] }),
                secure: origin.starts_with("https://"),
                form_origins: form_origins(&config),
                cookie_path: path,
                origin,
                config,
                users,
                key,
                decoding,
                kid,
                rng,
                seal,
                mac,
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

    /// Mints an access token directly, as `/token` would, with scope `openid accounts`. For
    /// tests (e.g. an old `auth_time`).
    pub fn mint_access_token(&self, sub: &str, acr: &str, amr: &[&str], auth_time: i64) -> String {
        self.mint_access_token_with_scope(sub, acr, amr, auth_time, "openid accounts")
    }

    /// As [`Provider::mint_access_token`], with another scope.
    pub fn mint_access_token_with_scope(
        &self,
        sub: &str,
        acr: &str,
        amr: &[&str],
        auth_time: i64,
        scope: &str,
    ) -> String {
        let now = self.now();
        let claims = json!({
            "iss": self.issuer(), "sub": sub, "aud": self.inner.config.audience, "client_id": "bank-spa",
            "iat": now, "exp": now + self.inner.config.token_ttl, "jti": self.random(16),
            "scope": scope, "auth_time": auth_time, "acr": acr, "amr": amr,
        });
        self.sign("at+jwt", &claims).unwrap_or_default()
    }

    /// The provider's routes, relative to the issuer: mount them at the issuer's path.
    pub fn router(&self) -> Router {
        // Browsers apply `form-action` to the redirect after a form POST too (login, second
        // factor, cancel, logout): the registered clients' origins must be allowed.
        let csp = pages::csp(&self.inner.form_origins);
        Router::new()
            .route("/.well-known/openid-configuration", get(token::discovery))
            .route("/jwks", get(token::jwks))
            .route("/authorize", get(login::authorize))
            .route("/login", get(login::login_page).post(login::login_submit))
            .route("/mfa", get(login::mfa_page).post(login::mfa_submit))
            .route("/cancel", post(login::cancel))
            .route("/logout", get(logout::logout).post(logout::logout_confirmed))
            .route("/token", post(token::token))
            .with_state(self.clone())
            .layer(axum::middleware::map_response(
                move |mut res: axum::response::Response| {
                    let csp = csp.clone();
                    async move {
                        if res.headers().contains_key(axum::http::header::CONTENT_SECURITY_POLICY) {
                            res.headers_mut()
                                .insert(axum::http::header::CONTENT_SECURITY_POLICY, csp);
                        }
                        res
                    }
                },
            ))
    }

    fn now(&self) -> i64 {
        self.inner.config.clock.now()
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

    fn mac(&self, purpose: &str, value: &str) -> String {
        let tag = hmac::sign(&self.inner.mac, format!("{purpose}\u{0}{value}").as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> Option<HeaderValue> {
        let secure = if self.inner.secure { "; Secure" } else { "" };
        let max_age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={}; HttpOnly; SameSite=Lax{secure}{max_age}",
            self.inner.cookie_path
        ))
        .ok()
    }
}

fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>, ProviderError> {
    let text = std::str::from_utf8(pem).map_err(|_| ProviderError("key file is not PEM".into()))?;
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| ProviderError("key file is not PEM".into()))
}

/// The distinct origins of every registered redirect and post-logout redirect URI.
fn form_origins(config: &ProviderConfig) -> Vec<String> {
    let mut origins: Vec<String> = config
        .clients
        .iter()
        .flat_map(|c| c.redirect_uris.iter().chain(&c.post_logout_redirect_uris))
        .map(|u| split_url(u).0)
        .collect();
    origins.sort();
    origins.dedup();
    origins
}
