//! The twin server: `GET /api/balance` and `GET /healthz`, like the bank demo, but with the
//! JWT validation of the crates.io `jwt-authorizer` crate.
//!
//! Configuration (environment):
//! - listen address: first argument, else `TWIN_ADDR`, else `127.0.0.1:0` (a free port); the
//!   bound address is printed as `twin listening on http://ADDR`;
//! - `TWIN_JWKS_URL` (required): the JWK Set URL, e.g. `http://127.0.0.1:8080/idp/jwks`;
//! - `TWIN_ISSUER` (required): the required `iss`, e.g. `http://127.0.0.1:8080/idp`;
//! - `TWIN_AUDIENCE` (default `bank-api`): the required `aud`.
//!
//! Validation: ES256 only, signature with the key named by the token's `kid` from the JWKS
//! (fetched at start, refetched when a `kid` is unknown — jwt-authorizer's default strategy),
//! `exp` (60 s leeway, the crate's default), `iss`, `aud`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jsonwebtoken::Algorithm;
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer, JwtClaims, RegisteredClaims, Validation};

/// Opening balance of an account, cents (as the demo: 1000.00).
const OPENING_BALANCE_CENTS: i64 = 100_000;

/// In-memory accounts, opened on first sight of a `sub` (as the demo's ledger does).
#[derive(Default)]
struct Ledger {
    accounts: Mutex<HashMap<String, (String, i64)>>,
}

impl Ledger {
    fn balance(&self, sub: &str) -> (String, String) {
        let mut map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let (iban, cents) = map
            .entry(sub.to_string())
            .or_insert_with(|| (iban_for(sub), OPENING_BALANCE_CENTS));
        (iban.clone(), format!("{}.{:02}", *cents / 100, *cents % 100))
    }
}

/// The same stable pseudo-IBAN as the demo (FNV-1a of `sub`, ISO 13616 check digits).
fn iban_for(sub: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sub.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let bban = format!("{:018}", h % 1_000_000_000_000_000_000);
    // "DE00" moved to the end, letters as numbers (D=13, E=14).
    let digits = format!("{bban}131400");
    let rem = digits
        .bytes()
        .fold(0u32, |r, d| (r * 10 + u32::from(d - b'0')) % 97);
    format!("DE{:02}{bban}", 98 - rem)
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn balance(State(ledger): State<Arc<Ledger>>, JwtClaims(claims): JwtClaims<RegisteredClaims>) -> Response {
    let Some(sub) = claims.sub.filter(|s| !s.is_empty()) else {
        return json_response(
            StatusCode::FORBIDDEN,
            serde_json::json!({"error": "no_subject", "error_description": "the token names no subject (sub)"})
                .to_string(),
        );
    };
    let (account, balance) = ledger.balance(&sub);
    json_response(
        StatusCode::OK,
        serde_json::json!({ "account": account, "balance": balance, "currency": "EUR" }).to_string(),
    )
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("twin: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let addr = std::env::args()
        .nth(1)
        .or_else(|| env("TWIN_ADDR"))
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let jwks_url = env("TWIN_JWKS_URL").ok_or("TWIN_JWKS_URL is required")?;
    let issuer = env("TWIN_ISSUER").ok_or("TWIN_ISSUER is required")?;
    let audience = env("TWIN_AUDIENCE").unwrap_or_else(|| "bank-api".into());

    let validation = Validation::new()
        .iss(&[issuer.as_str()])
        .aud(&[audience.as_str()])
        .algs(vec![Algorithm::ES256]);
    let auth: Authorizer<RegisteredClaims> = JwtAuthorizer::from_jwks_url(&jwks_url)
        .validation(validation)
        .build()
        .await
        .map_err(|e| format!("jwt-authorizer: {e}"))?;

    let app = Router::new()
        .route("/api/balance", get(balance))
        .layer(auth.into_layer())
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(Ledger::default()));

    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("twin listening on http://{}", listener.local_addr()?);
    println!("twin jwks {jwks_url} issuer {issuer} audience {audience}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
