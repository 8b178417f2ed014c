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

mod pages;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use totp_rs::{Secret, Totp};

/// The multi-factor acr (OpenID PAPE).
pub const MFA_ACR: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
/// The password-only acr.
pub const PASSWORD_ACR: &str = "loa1";

const SESSION_COOKIE: &str = "dev_idp_session";
const PRE_LOGIN_COOKIE: &str = "dev_idp_pre";
const CODE_TTL: i64 = 60;
/// How long a pending login (the sealed request) stays usable.
const REQUEST_TTL: i64 = 600;
/// Bound of every table the provider keeps (codes, sessions, failure counters).
const MAX_ENTRIES: usize = 10_000;
/// First wait after a lockout; doubles per lockout up to [`MAX_BACKOFF`].
const BASE_BACKOFF: i64 = 30;
const MAX_BACKOFF: i64 = 15 * 60;
const SEAL_AAD: &[u8] = b"dev-provider pending login v1";

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

/// A pending login: carried by the browser, sealed, bound to the pre-login cookie.
#[derive(Clone, Serialize, Deserialize)]
struct Pending {
    /// Names this pending login in the failure counters.
    id: String,
    /// The pre-login cookie it is bound to.
    pre: String,
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    /// The granted scope.
    scope: String,
    mfa: bool,
    max_age: Option<i64>,
    force_login: bool,
    created: i64,
}

#[derive(Clone)]
struct Session {
    user: String,
    pwd_at: i64,
    mfa_at: Option<i64>,
    created: i64,
    last_seen: i64,
    /// Order of creation (sessions opened in the same second).
    seq: u64,
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

/// Failed factor checks of one user. The counters only go back to zero when that factor
/// succeeds, so a password login cannot wipe out the backoff earned by wrong codes.
#[derive(Default, Clone, Copy)]
struct Throttle {
    password: u32,
    code: u32,
    lockouts: u32,
    locked_until: i64,
}

/// Which factor was checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Factor {
    Password,
    Code,
}

#[derive(Default)]
struct Store {
    sessions: HashMap<String, Session>,
    next_seq: u64,
    codes: HashMap<String, Grant>,
    last_totp_step: HashMap<String, u64>,
    /// Known users only (a fixed set).
    throttle: HashMap<String, Throttle>,
    /// Failures per pending login: (count, expiry). Made only when a credential check failed.
    request_failures: HashMap<String, (u32, i64)>,
    /// Pending logins that were used, cancelled or ended by failures: id → expiry.
    ended: HashMap<String, i64>,
}

/// Keeps a table under [`MAX_ENTRIES`]: drops expired entries, then the ones expiring first.
fn bound<V>(map: &mut HashMap<String, V>, now: i64, expiry: impl Fn(&V) -> i64) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, v| expiry(v) > now);
    while map.len() >= MAX_ENTRIES {
        let Some(first) = map.iter().min_by_key(|(_, v)| expiry(v)).map(|(k, _)| k.clone()) else {
            return;
        };
        map.remove(&first);
    }
}

impl Store {
    fn prune(&mut self, now: i64) {
        self.codes.retain(|_, g| g.expires > now);
        self.request_failures.retain(|_, (_, exp)| *exp > now);
        self.ended.retain(|_, exp| *exp > now);
    }
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
        Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/login", get(login_page).post(login_submit))
            .route("/mfa", get(mfa_page).post(mfa_submit))
            .route("/cancel", post(cancel))
            .route("/logout", get(logout).post(logout_confirmed))
            .route("/token", post(token))
            .with_state(self.clone())
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

    /// Seals a pending login: base64url(nonce ‖ AES-256-GCM ciphertext and tag).
    fn seal(&self, pending: &Pending) -> Option<String> {
        let mut data = serde_json::to_vec(pending).ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.inner.rng.fill(&mut nonce).ok()?;
        self.inner
            .seal
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(SEAL_AAD), &mut data)
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    fn unseal(&self, sealed: &str) -> Option<Pending> {
        if sealed.len() > 4096 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let (nonce, rest) = bytes.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = rest.to_vec();
        let plain = self
            .inner
            .seal
            .open_in_place(nonce, Aad::from(SEAL_AAD), &mut data)
            .ok()?;
        serde_json::from_slice(plain).ok()
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

    /// The valid session of this browser (idle and absolute expiry checked; use recorded).
    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let sid = cookie(headers, SESSION_COOKIE)?;
        let now = self.now();
        let c = &self.inner.config;
        let mut store = self.store();
        let s = store.sessions.get_mut(&sid)?;
        if now - s.last_seen > c.session_idle || now - s.created > c.session_absolute {
            let user = s.user.clone();
            store.sessions.remove(&sid);
            tracing::info!(target: "dev_provider", user = %user, "session expired");
            return None;
        }
        s.last_seen = now;
        Some((sid, s.clone()))
    }

    /// Opens a new session for `user`, ending its oldest ones beyond the per-user bound.
    fn open_session(&self, user: &str, now: i64) -> String {
        let sid = self.random(32);
        let c = &self.inner.config;
        let max = c.max_sessions_per_user.max(1);
        let mut store = self.store();
        store
            .sessions
            .retain(|_, s| now - s.last_seen <= c.session_idle && now - s.created <= c.session_absolute);
        let mut mine: Vec<(String, u64)> = store
            .sessions
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(k, s)| (k.clone(), s.seq))
            .collect();
        mine.sort_by_key(|(_, seq)| *seq);
        let excess = (mine.len() + 1).saturating_sub(max);
        for (old, _) in mine.into_iter().take(excess) {
            store.sessions.remove(&old);
        }
        let idle = c.session_idle;
        bound(&mut store.sessions, now, |s| s.last_seen + idle);
        store.next_seq += 1;
        let seq = store.next_seq;
        store.sessions.insert(
            sid.clone(),
            Session {
                user: user.to_string(),
                pwd_at: now,
                mfa_at: None,
                created: now,
                last_seen: now,
                seq,
            },
        );
        sid
    }

    /// Seconds `user` must still wait, if locked out.
    fn locked_for(&self, user: &str, now: i64) -> Option<i64> {
        let t = self.store().throttle.get(user).copied()?;
        (t.locked_until > now).then_some(t.locked_until - now)
    }

    /// Counts a failed password or code. Returns the wait in seconds when this failure ended
    /// the pending login.
    fn failed(&self, user: Option<&str>, factor: Factor, pending: &Pending, now: i64) -> Option<i64> {
        let max = self.inner.config.max_failures.max(1);
        let mut store = self.store();
        store.prune(now);
        let mut wait = None;
        if let Some(user) = user.filter(|u| self.inner.users.contains_key(*u)) {
            let t = store.throttle.entry(user.to_string()).or_default();
            let count = match factor {
                Factor::Password => &mut t.password,
                Factor::Code => &mut t.code,
            };
            *count = count.saturating_add(1);
            if *count % max == 0 {
                t.lockouts = t.lockouts.saturating_add(1);
                let backoff = BASE_BACKOFF
                    .saturating_mul(1i64 << t.lockouts.saturating_sub(1).min(10))
                    .min(MAX_BACKOFF);
                t.locked_until = now + backoff;
                wait = Some(backoff);
                tracing::info!(target: "dev_provider", user, backoff_s = backoff, "too many failures: user locked out");
            }
        }
        bound(&mut store.request_failures, now, |(_, exp)| *exp);
        let expires = pending.created + REQUEST_TTL;
        let count = {
            let e = store.request_failures.entry(pending.id.clone()).or_insert((0, expires));
            e.0 += 1;
            e.0
        };
        if count >= max || wait.is_some() {
            store.request_failures.remove(&pending.id);
            bound(&mut store.ended, now, |exp| *exp);
            store.ended.insert(pending.id.clone(), expires);
            return Some(wait.unwrap_or(BASE_BACKOFF));
        }
        None
    }

    /// A factor succeeded: its counter starts again; with no failure left, so does the backoff.
    fn succeeded(&self, user: &str, factor: Factor) {
        let mut store = self.store();
        if let Some(t) = store.throttle.get_mut(user) {
            match factor {
                Factor::Password => t.password = 0,
                Factor::Code => t.code = 0,
            }
            if t.password == 0 && t.code == 0 && t.locked_until <= self.now() {
                store.throttle.remove(user);
            }
        }
    }

    fn end_pending(&self, pending: &Pending, now: i64) {
        let mut store = self.store();
        store.prune(now);
        store.request_failures.remove(&pending.id);
        bound(&mut store.ended, now, |exp| *exp);
        store.ended.insert(pending.id.clone(), pending.created + REQUEST_TTL);
    }

    /// The pending login named by `sealed`, if it is genuine, fresh, not ended, and bound to
    /// this browser's pre-login cookie.
    fn pending(&self, headers: &HeaderMap, sealed: Option<&str>) -> Result<Pending, Box<Response>> {
        let expired = || {
            pages::error(
                StatusCode::BAD_REQUEST,
                "This login request is unknown, expired or already used. Start again from the application.",
            )
        };
        let Some(pending) = sealed.and_then(|s| self.unseal(s)) else {
            tracing::debug!(target: "dev_provider", "pending login refused: not a sealed request of ours");
            return Err(Box::new(expired()));
        };
        let now = self.now();
        if now - pending.created >= REQUEST_TTL || pending.created > now + 60 {
            return Err(Box::new(expired()));
        }
        let bound_here = cookie(headers, PRE_LOGIN_COOKIE).is_some_and(|pre| constant_time_eq(&pre, &pending.pre));
        if !bound_here {
            tracing::info!(target: "dev_provider", "pending login refused: not bound to this browser (pre-login cookie)");
            return Err(Box::new(pages::error(
                StatusCode::FORBIDDEN,
                "This login was started in another browser. Start again from the application.",
            )));
        }
        if self.store().ended.contains_key(&pending.id) {
            return Err(Box::new(expired()));
        }
        Ok(pending)
    }
}

fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>, ProviderError> {
    let text = std::str::from_utf8(pem).map_err(|_| ProviderError("key file is not PEM".into()))?;
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| ProviderError("key file is not PEM".into()))
}

/// Refuses a cross-site `POST` (login CSRF): a foreign `Origin`, or `Sec-Fetch-Site:
/// cross-site`. Requests without either header (non-browser clients) pass; the sealed,
/// cookie-bound request value protects those forms as well.
fn same_origin(p: &Provider, headers: &HeaderMap) -> Result<(), Box<Response>> {
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

async fn discovery(State(p): State<Provider>) -> Response {
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

fn with_cookie(mut res: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
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

fn oauth_error_redirect(redirect_uri: &str, state: Option<&str>, error: &str, description: &str) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    redirect(&with_params(redirect_uri, &params))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
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
struct ReqQuery {
    req: Option<String>,
}

fn locked_page(wait: i64) -> Response {
    let mut res = pages::locked(wait);
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

async fn login_page(State(p): State<Provider>, headers: HeaderMap, Query(q): Query<ReqQuery>) -> Response {
    match p.pending(&headers, q.req.as_deref()) {
        Ok(_) => pages::login(StatusCode::OK, q.req.as_deref().unwrap_or_default(), None),
        Err(res) => *res,
    }
}

#[derive(Deserialize)]
struct LoginForm {
    req: String,
    username: String,
    password: String,
}

async fn login_submit(State(p): State<Provider>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    if let Err(res) = same_origin(&p, &headers) {
        return *res;
    }
    let pending = match p.pending(&headers, Some(&f.req)) {
        Ok(pending) => pending,
        Err(res) => return *res,
    };
    let now = p.now();
    // A locked-out user is not even checked: no password oracle while waiting.
    if let Some(wait) = p.locked_for(&f.username, now) {
        p.end_pending(&pending, now);
        return locked_page(wait);
    }
    let user = p.inner.users.get(&f.username);
    let expected = user.map_or("\u{0}never a password", |u| u.password.as_str());
    let ok = constant_time_eq(expected, &f.password) && user.is_some();
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

async fn mfa_page(State(p): State<Provider>, headers: HeaderMap, Query(q): Query<ReqQuery>) -> Response {
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
struct MfaForm {
    req: String,
    code: String,
}

async fn mfa_submit(State(p): State<Provider>, headers: HeaderMap, Form(f): Form<MfaForm>) -> Response {
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
    if let Some(wait) = p.locked_for(&session.user, now) {
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
struct CancelForm {
    req: String,
}

/// "Cancel" on the login or second-factor page: OAuth `access_denied` back to the client.
async fn cancel(State(p): State<Provider>, headers: HeaderMap, Form(f): Form<CancelForm>) -> Response {
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

#[derive(Deserialize, Default)]
struct LogoutParams {
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
    let sub = data.claims.get("sub")?.as_str()?.to_string();
    let aud = match data.claims.get("aud")? {
        Value::String(a) => a.clone(),
        Value::Array(a) => a.first()?.as_str()?.to_string(),
        _ => return None,
    };
    Some((sub, aud))
}

/// Where to send the browser after logout: `post_logout_redirect_uri`, registered exactly for
/// the client, with `state`. `Ok(None)`: no redirect asked.
fn logout_target(
    p: &Provider,
    q: &LogoutParams,
    hint_client: Option<&str>,
) -> Result<Option<String>, Box<Response>> {
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
async fn logout(State(p): State<Provider>, headers: HeaderMap, Query(q): Query<LogoutParams>) -> Response {
    let hinted = q.id_token_hint.as_deref().and_then(|t| hint(&p, t));
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

async fn logout_confirmed(State(p): State<Provider>, headers: HeaderMap, Form(q): Form<LogoutParams>) -> Response {
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
