//! The stepup-tower demo bank: balance for any login, transfers only after a recent MFA.
//!
//! `GET /api/balance`, `GET /api/transfers`: any valid access token.
//! `POST /api/transfers`: acr multi-factor (or higher on the ladder) and `auth_time` within
//! 300 s, else the RFC 9470 challenge. The embedded dev provider is mounted at `/idp` unless
//! `STEPUP_ISSUER` names another one.
//!
//! `GET /metrics` (Prometheus text) and `GET /ops` (a page charting refusals, step-up
//! challenges and completions) show the layer's `stepup_*` metrics (`src/ops.rs`).

pub mod ledger;
mod ops;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dev_provider::{MFA_ACR, PASSWORD_ACR, Provider, ProviderConfig};
use serde_json::{Value, json};
use stepup_tower::dpop::{Dpop, DpopMode, DpopNonces, RedisReplayStore};
use stepup_tower::extract::Token;
use stepup_tower::keys::{KeySet, RemoteJwks};
use stepup_tower::metadata::ResourceMetadata;
use stepup_tower::{AcrLadder, AuthContext, Issuer, Requirement, StepUp};
use tower_http::cors::{AllowOrigin, CorsLayer};

use ledger::{Ledger, Outcome, TransferError};

/// `max_age` of the transfer route, seconds.
pub const TRANSFER_MAX_AGE: u64 = 300;
/// Longest life of an entry of the verified-token cache (never past the token's `exp`).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(300);

/// Configuration, normally from the environment (see the README).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `STEPUP_ISSUER`: an external issuer (discovery); `None` mounts the embedded provider.
    pub issuer: Option<String>,
    /// `STEPUP_JWKS_URI`: skip discovery.
    pub jwks_uri: Option<String>,
    /// `STEPUP_AUDIENCE` (default `bank-api`).
    pub audience: String,
    /// `STEPUP_CLIENT_ID` (default `bank-spa`): the SPA's client at the issuer.
    pub client_id: String,
    /// `STEPUP_RESOURCE`: RFC 8707 `resource` the SPA asks tokens for (some providers need it).
    pub resource: Option<String>,
    /// `STEPUP_SCOPE` (default `openid accounts`).
    pub scope: String,
    /// `DEV_PROVIDER_KEY_FILE`: PKCS#8 PEM signing key of the embedded provider.
    pub dev_key_pem: Option<Vec<u8>>,
    /// `STEPUP_TOKEN_CACHE`: entries of the verified-token cache (default 10,000; 0 = off).
    pub token_cache: usize,
    /// `STEPUP_TRANSFER_ACR`: acr values accepted for a transfer, in preference order
    /// (default the multi-factor URI).
    pub transfer_acr: Vec<String>,
    /// `STEPUP_ACCEPT_TYP`: extra access-token `typ` values (e.g. `JWT` for Entra ID; `none`:
    /// tokens without a `typ`, as Okta sends).
    pub accept_typ: Vec<String>,
    /// `STEPUP_CLIENT_CLAIM`: the claim naming the client in the issuer's access tokens when it
    /// is not `client_id` (e.g. `azp` for Entra ID and Keycloak, `cid` for Okta).
    pub client_claim: Option<String>,
    /// `STEPUP_OMIT_CLAIMS`: RFC 9068 claims the issuer leaves out of access tokens (any of
    /// `sub`, `iat`, `jti`, `client_id`).
    pub omit_claims: Vec<String>,
    /// `STEPUP_JWKS_COOLDOWN`: seconds between forced refetches of an external issuer's keys
    /// (default 30, at least 1).
    pub jwks_cooldown: Option<Duration>,
    /// `STEPUP_REQUIRED_SCOPE`: the scope every `/api/*` call needs (403 `insufficient_scope`
    /// without it). `None`: `accounts` with the embedded provider, none with an external
    /// issuer (providers name scopes differently); `Some("")`: none.
    pub required_scope: Option<String>,
    /// `BANK_CORS_ORIGINS`: origins besides the demo's own allowed to call the API from a
    /// browser (comma- or space-separated).
    pub cors_origins: Vec<String>,
    /// `STEPUP_DPOP`: `off`, `allowed` (the default, `None`) or `required`: whether tokens
    /// may or must be DPoP-bound (RFC 9449).
    pub dpop: Option<DpopMode>,
    /// `STEPUP_REPLAY_REDIS`: a `redis://` URL of the store of spent DPoP proofs, shared by
    /// replicas; in-memory when `None`.
    pub replay_redis: Option<String>,
    /// `STEPUP_DPOP_NONCE_SECRET`: 32 bytes, base64url; turns on DPoP server nonces (RFC 9449
    /// §9). Replicas share it.
    pub dpop_nonce_secret: Option<[u8; 32]>,
    /// The embedded provider's clock (tests); the system clock when `None`.
    pub provider_clock: Option<dev_provider::Clock>,
    /// How account numbers are derived (tests force collisions); [`ledger::iban_for`] when
    /// `None`.
    pub account_numbering: Option<ledger::Numbering>,
}

fn list(v: Option<String>) -> Vec<String> {
    v.map(|v| {
        v.split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

impl Config {
    /// Reads the environment.
    pub fn from_env() -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let dev_key_pem = match var("DEV_PROVIDER_KEY_FILE") {
            Some(path) => Some(std::fs::read(&path).map_err(|e| format!("DEV_PROVIDER_KEY_FILE {path}: {e}"))?),
            None => None,
        };
        Ok(Self {
            issuer: var("STEPUP_ISSUER"),
            jwks_uri: var("STEPUP_JWKS_URI"),
            audience: var("STEPUP_AUDIENCE").unwrap_or_else(|| "bank-api".into()),
            client_id: var("STEPUP_CLIENT_ID").unwrap_or_else(|| "bank-spa".into()),
            resource: var("STEPUP_RESOURCE"),
            scope: var("STEPUP_SCOPE").unwrap_or_else(|| "openid accounts".into()),
            dev_key_pem,
            token_cache: match var("STEPUP_TOKEN_CACHE") {
                Some(v) => v
                    .parse()
                    .map_err(|_| format!("STEPUP_TOKEN_CACHE must be a number of entries, not {v:?}"))?,
                None => 10_000,
            },
            transfer_acr: var("STEPUP_TRANSFER_ACR")
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            accept_typ: list(var("STEPUP_ACCEPT_TYP")),
            client_claim: var("STEPUP_CLIENT_CLAIM"),
            omit_claims: list(var("STEPUP_OMIT_CLAIMS")),
            required_scope: std::env::var("STEPUP_REQUIRED_SCOPE")
                .ok()
                .map(|v| v.trim().to_string()),
            cors_origins: list(var("BANK_CORS_ORIGINS")),
            dpop: match var("STEPUP_DPOP") {
                Some(v) => Some(
                    DpopMode::parse(&v)
                        .ok_or_else(|| format!("STEPUP_DPOP must be off, allowed or required, not {v:?}"))?,
                ),
                None => None,
            },
            replay_redis: var("STEPUP_REPLAY_REDIS"),
            dpop_nonce_secret: match var("STEPUP_DPOP_NONCE_SECRET") {
                Some(v) => Some(
                    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.trim())
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .ok_or("STEPUP_DPOP_NONCE_SECRET must be 32 bytes in base64url (43 characters)")?,
                ),
                None => None,
            },
            provider_clock: None,
            account_numbering: None,
            jwks_cooldown: match var("STEPUP_JWKS_COOLDOWN") {
                Some(v) => Some(Duration::from_secs(v.parse().map_err(|_| {
                    format!("STEPUP_JWKS_COOLDOWN must be a number of seconds, not {v:?}")
                })?)),
                None => None,
            },
        })
    }
}

/// Binds `BANK_ADDR` (default `127.0.0.1:8080`); the origin is `BANK_PUBLIC_URL`, else
/// `http://` and the bound address. Returns the listener, its address and the origin.
pub async fn listen_from_env() -> Result<(tokio::net::TcpListener, std::net::SocketAddr, String), String> {
    let addr = std::env::var("BANK_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let origin = std::env::var("BANK_PUBLIC_URL").unwrap_or_else(|_| format!("http://{local}"));
    Ok((listener, local, origin))
}

/// The startup lines naming the demo users and their TOTP secrets (embedded provider only;
/// empty otherwise).
pub fn demo_users_text(provider: Option<&Provider>) -> String {
    let Some(p) = provider else {
        return String::new();
    };
    let mut out = String::from("\n  Demo users (embedded dev provider; development only):\n");
    for u in dev_provider::demo_users() {
        out.push_str(&format!(
            "    {:<6} password {:<14} TOTP secret {}\n",
            u.username, u.password, u.totp_secret
        ));
        if let Some(uri) = p.otpauth_uri(&u.username) {
            out.push_str(&format!("           {uri}\n"));
        }
    }
    out.push_str("  Current code: cargo run -p dev-provider --example totp -- alice\n");
    out
}

/// A built application.
#[derive(Debug)]
pub struct Bank {
    /// The router to serve.
    pub router: Router,
    /// The embedded provider, when used.
    pub provider: Option<Provider>,
    /// The issuer tokens must come from.
    pub issuer: String,
    /// The ledger (for tests and the startup banner).
    pub ledger: Arc<Ledger>,
    /// The remote key cache, when an external issuer is used.
    pub remote_keys: Option<RemoteJwks>,
    /// The authentication layer's handle (for its cache statistics).
    pub auth: StepUp,
    /// What every `/api/*` call needs (the required scope, or any valid token): other front
    /// ends of the same bank (gRPC) apply the same rules.
    pub api_requirement: Requirement,
    /// What a transfer needs: the transfer acr within [`TRANSFER_MAX_AGE`].
    pub transfer_requirement: Requirement,
}

#[derive(Clone)]
struct AppState {
    ledger: Arc<Ledger>,
    config: Arc<Value>,
}

/// Builds the application served at `origin` (e.g. `http://127.0.0.1:8080`).
pub async fn build(config: &Config, origin: &str) -> Result<Bank, Box<dyn std::error::Error + Send + Sync>> {
    let origin = origin.trim_end_matches('/').to_string();
    let (issuer, provider, key_source, remote_keys): (String, Option<Provider>, Issuer, Option<RemoteJwks>) =
        match &config.issuer {
            None => {
                let issuer = format!("{origin}/idp");
                let mut pc = ProviderConfig::demo(&issuer, format!("{origin}/"));
                pc.audience = config.audience.clone();
                pc.signing_key_pem = config.dev_key_pem.clone();
                if let Some(clock) = &config.provider_clock {
                    pc.clock = clock.clone();
                }
                let provider = Provider::new(pc)?;
                // Same process: the provider's public keys are handed over directly.
                let keys = KeySet::from_jwks_json(provider.jwks_json().as_bytes())?;
                let iss = Issuer::access_tokens(&issuer).static_keys(keys);
                (issuer, Some(provider), iss, None)
            }
            Some(issuer) => {
                let mut remote = match &config.jwks_uri {
                    Some(uri) => RemoteJwks::from_jwks_uri(uri),
                    None => RemoteJwks::discover(issuer),
                };
                if let Some(cooldown) = config.jwks_cooldown {
                    remote = remote.cooldown(cooldown);
                }
                let remote = remote.build()?;
                if let Err(e) = remote.load().await {
                    tracing::error!(issuer = %issuer, error = %e, "could not load the issuer's keys yet; requests will retry");
                }
                let iss = Issuer::access_tokens(issuer).key_source(remote.clone());
                (issuer.clone(), None, iss, Some(remote))
            }
        };
    let mut key_source = key_source;
    for typ in &config.accept_typ {
        key_source = if typ.eq_ignore_ascii_case("none") {
            key_source.allow_missing_typ()
        } else {
            key_source.also_accept_typ(typ)
        };
    }
    if let Some(claim) = &config.client_claim {
        key_source = key_source.client_id_claim(claim);
    }
    key_source = key_source.omits_claims(config.omit_claims.iter().cloned());
    let required_scope = match &config.required_scope {
        Some(s) => Some(s.clone()).filter(|s| !s.is_empty()),
        None if provider.is_some() => Some("accounts".to_string()),
        None => None,
    };
    // RFC 9728: where clients learn who issues tokens for this API; every challenge names it.
    let metadata = ResourceMetadata::new(&origin)
        .authorization_server(&issuer)
        .scopes_supported(required_scope.iter())
        .resource_name("stepup-tower demo bank");
    // The metrics recorder first: what the layers count from the first request on is kept.
    ops::prometheus();
    let dpop_mode = config.dpop.unwrap_or(DpopMode::Allowed);
    let mut auth = StepUp::builder().issuer(key_source.audience(&config.audience).dpop(dpop_mode));
    if dpop_mode != DpopMode::Off {
        // `htu` names the public URL: replicas behind one load balancer agree on it.
        let mut dpop = Dpop::new().public_url(&origin)?;
        if let Some(url) = &config.replay_redis {
            let store = RedisReplayStore::builder(url).build()?;
            tracing::info!(store = %store.target(), "DPoP replay store: Redis (shared by replicas)");
            dpop = dpop.replay_store(store);
        }
        if let Some(secret) = config.dpop_nonce_secret {
            dpop = dpop.nonces(DpopNonces::new(secret));
        }
        auth = auth.dpop(dpop);
    }
    let auth = auth
        .realm("bank")
        .protected_resource(&metadata)
        .token_cache(config.token_cache, TOKEN_CACHE_TTL)
        .acr_ladder(
            AcrLadder::new()
                .level([PASSWORD_ACR, "loa1"])
                .level([MFA_ACR, "loa2"])
                .level(["loa3"]),
        )
        .build()?;
    let ledger = Arc::new(match config.account_numbering {
        Some(numbering) => Ledger::with_numbering(numbering).open(["alice", "bob"]),
        None => Ledger::with_users(["alice", "bob"]),
    });
    let state = AppState {
        ledger: ledger.clone(),
        config: Arc::new(json!({
            "issuer": issuer,
            "client_id": config.client_id,
            "redirect_uri": format!("{origin}/"),
            "scope": config.scope,
            "resource": config.resource,
        })),
    };
    let transfer_acr = if config.transfer_acr.is_empty() {
        vec![MFA_ACR.to_string()]
    } else {
        config.transfer_acr.clone()
    };
    let transfer_rule = Requirement::new().acr(transfer_acr).max_age(TRANSFER_MAX_AGE);
    let api_requirement = match &required_scope {
        Some(scope) => Requirement::new().scope([scope.clone()]),
        None => Requirement::new(),
    };
    let api_layer = auth.try_require(api_requirement.clone())?;
    let api = Router::new()
        .route("/api/balance", get(balance))
        .route(
            "/api/transfers",
            get(history).post(axum::handler::Handler::layer(
                create_transfer,
                auth.require(transfer_rule.clone()),
            )),
        )
        // route_layer: only the API's own routes need a token; an unknown path stays 404.
        .route_layer(api_layer);
    let mut router = Router::new()
        .merge(api)
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/favicon.ico",
            get(|| async { web("image/svg+xml", include_str!("../web/favicon.svg")) }),
        )
        .route_service(&metadata.well_known_path(), metadata.service())
        .route("/config.json", get(spa_config))
        // Observability, without a token in the demo (a real deployment keeps these internal).
        .route("/metrics", get(ops::metrics))
        .route("/ops", get(ops::page))
        .route(
            "/ops.mjs",
            get(|| async { web("text/javascript; charset=utf-8", include_str!("../web/ops.mjs")) }),
        )
        .route(
            "/ops-model.mjs",
            get(|| async { web("text/javascript; charset=utf-8", include_str!("../web/ops-model.mjs")) }),
        )
        .route(
            "/ops.css",
            get(|| async { web("text/css; charset=utf-8", include_str!("../web/ops.css")) }),
        )
        .route(
            "/",
            get(|| async { web("text/html; charset=utf-8", include_str!("../web/index.html")) }),
        )
        .route(
            "/app.mjs",
            get(|| async { web("text/javascript; charset=utf-8", include_str!("../web/app.mjs")) }),
        )
        .route(
            "/bank.mjs",
            get(|| async { web("text/javascript; charset=utf-8", include_str!("../web/bank.mjs")) }),
        )
        .route(
            "/login.mjs",
            get(|| async { web("text/javascript; charset=utf-8", include_str!("../web/login.mjs")) }),
        )
        // The SPA's step-up client: the npm package stepup-fetch, served from its sources (plain
        // ESM, no build step), so the demo runs exactly what is published.
        .route(
            "/stepup-fetch/index.js",
            get(|| async {
                web(
                    "text/javascript; charset=utf-8",
                    include_str!("../../../clients/stepup-fetch/src/index.js"),
                )
            }),
        )
        .route(
            "/stepup-fetch/oidc.js",
            get(|| async {
                web(
                    "text/javascript; charset=utf-8",
                    include_str!("../../../clients/stepup-fetch/src/oidc.js"),
                )
            }),
        )
        .route(
            "/stepup-fetch/dpop.js",
            get(|| async {
                web(
                    "text/javascript; charset=utf-8",
                    include_str!("../../../clients/stepup-fetch/src/dpop.js"),
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async { web("text/css; charset=utf-8", include_str!("../web/style.css")) }),
        )
        .with_state(state);
    if let Some(p) = &provider {
        router = router.nest("/idp", p.router());
    }
    // Outermost: a cross-origin SPA must be able to read the challenge. Only the demo's own
    // origin and the configured ones may call the API from a browser.
    let mut origins = vec![origin.clone()];
    origins.extend(config.cors_origins.iter().map(|o| o.trim_end_matches('/').to_string()));
    let origins = origins
        .iter()
        .map(|o| {
            // scheme://host[:port], nothing else: no `*`, no path, no `null`.
            let is_origin = o.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains(['/', '?', '#', '*', ' '])
            });
            is_origin
                .then(|| HeaderValue::from_str(o).ok())
                .flatten()
                .ok_or_else(|| format!("BANK_CORS_ORIGINS: {o:?} is not an origin (scheme://host[:port])"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("dpop"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::HeaderName::from_static("idempotent-replayed"),
            header::HeaderName::from_static("dpop-nonce"),
        ])
        .max_age(Duration::from_secs(600));
    Ok(Bank {
        router: router.layer(cors),
        provider,
        issuer,
        ledger,
        remote_keys,
        auth,
        api_requirement,
        transfer_requirement: transfer_rule,
    })
}

fn web(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response {
    // Serializing plain data cannot fail; an empty object is the harmless fallback.
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    let mut res = (status, body).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn api_error(status: StatusCode, error: &str, description: &str, field: Option<&str>) -> Response {
    let mut body = json!({ "error": error, "error_description": description });
    if let (Some(f), Some(o)) = (field, body.as_object_mut()) {
        o.insert("field".into(), json!(f));
    }
    json_response(status, &body)
}

/// The subject's account number is taken by another subject ([`ledger::NumberTaken`]).
fn no_account() -> Response {
    api_error(
        StatusCode::CONFLICT,
        "account_unavailable",
        "no account can be opened for this subject: its account number belongs to another account",
        None,
    )
}

async fn spa_config(State(s): State<AppState>) -> Response {
    json_response(StatusCode::OK, &*s.config)
}

fn subject(ctx: &AuthContext) -> Result<&str, Box<Response>> {
    ctx.sub.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        Box::new(api_error(
            StatusCode::FORBIDDEN,
            "no_subject",
            "the token names no subject (sub)",
            None,
        ))
    })
}

/// Body of `GET /api/balance`.
#[derive(serde::Serialize)]
struct BalanceBody {
    account: String,
    balance: String,
    currency: &'static str,
}

// The handlers take `Token` (an `Arc` of what the layer verified) rather than `AuthContext`
// (a copy of its strings): the API's hot path allocates nothing for the claims.
async fn balance(State(s): State<AppState>, Token(token): Token) -> Response {
    let sub = match subject(token.context()) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let Ok((account, balance)) = s.ledger.balance(sub) else {
        return no_account();
    };
    json_response(
        StatusCode::OK,
        &BalanceBody {
            account,
            balance,
            currency: "EUR",
        },
    )
}

async fn history(State(s): State<AppState>, Token(token): Token) -> Response {
    let ctx = token.context();
    let sub = match subject(ctx) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match s.ledger.history(sub) {
        Ok(transfers) => json_response(StatusCode::OK, &json!({ "transfers": transfers })),
        Err(_) => no_account(),
    }
}

async fn create_transfer(State(s): State<AppState>, Token(token): Token, headers: HeaderMap, body: Bytes) -> Response {
    let ctx = token.context();
    let sub = match subject(ctx) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return api_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "send JSON with Content-Type: application/json",
            None,
        );
    }
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => Some(k.to_string()),
        Some(_) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Idempotency-Key must be 1–255 visible ASCII characters",
                Some("Idempotency-Key"),
            );
        }
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is not a JSON object",
            None,
        );
    };
    if let Some(unknown) = fields.keys().find(|k| *k != "to" && *k != "amount") {
        let unknown: String = unknown.chars().filter(|c| c.is_ascii_graphic()).take(40).collect();
        return api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            &format!("unknown field {unknown:?}"),
            Some(&unknown),
        );
    }
    let to = match fields.get("to") {
        None => {
            return api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "to is required",
                Some("to"),
            );
        }
        Some(Value::String(t)) => match ledger::normalize_iban(t) {
            Ok(t) => t,
            Err(why) => return api_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_account", why, Some("to")),
        },
        Some(_) => {
            return api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "to must be a string",
                Some("to"),
            );
        }
    };
    let cents = match fields.get("amount") {
        None => {
            return api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "amount is required",
                Some("amount"),
            );
        }
        Some(Value::String(a)) => match ledger::parse_amount(a) {
            Ok(c) => c,
            Err(why) => return api_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_amount", why, Some("amount")),
        },
        Some(_) => {
            return api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_amount",
                "amount must be a string such as \"25.00\"",
                Some("amount"),
            );
        }
    };
    match s.ledger.transfer(sub, &to, cents, key.as_deref()) {
        Ok(Outcome::Done(t, balance)) => {
            tracing::info!(sub, id = t.id, amount = %t.amount, "transfer done");
            json_response(StatusCode::CREATED, &json!({ "transfer": t, "balance": balance }))
        }
        Ok(Outcome::Replayed(body)) => {
            let mut res = json_response(StatusCode::CREATED, &body);
            res.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            res
        }
        Err(TransferError::NoAccount) => no_account(),
        Err(TransferError::InsufficientFunds) => api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "insufficient_funds",
            "amount is above the balance",
            Some("amount"),
        ),
        Err(TransferError::SelfTransfer) => api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_account",
            "to is your own account",
            Some("to"),
        ),
        Err(TransferError::KeyReused) => api_error(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different transfer",
            Some("Idempotency-Key"),
        ),
    }
}
