//! The smallest stepup-tower app. `cargo run -p minimal`, then `curl -i 127.0.0.1:3000/` (open)
//! and `curl -i -X POST 127.0.0.1:3000/transfer` (401 with an RFC 6750 challenge; a token of
//! the issuer below without a recent MFA gets the RFC 9470 step-up challenge).
#![allow(clippy::print_stdout)]

use axum::Router;
use axum::routing::{get, post};
use stepup_tower::keys::KeySet;
use stepup_tower::{AuthContext, Issuer, Requirement, StepUp};

const MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The issuer's public keys: a JWK Set file (a copy of its jwks_uri document).
    let jwks_file = std::env::var("JWKS_FILE").unwrap_or_else(|_| "examples/minimal/jwks.json".into());
    let keys = KeySet::from_jwks_json(&std::fs::read(jwks_file)?)?;
    let auth = StepUp::builder()
        .issuer(
            Issuer::access_tokens("https://id.example.com")
                .audience("bank-api")
                .static_keys(keys),
        )
        .realm("bank")
        .build()?;

    let app = Router::new()
        // A multi-factor login within the last 300 s, or the RFC 9470 challenge.
        .route("/transfer", post(transfer))
        .route_layer(auth.require(Requirement::new().acr([MFA]).max_age(300)))
        // Added after the route_layer: open to everyone.
        .route("/", get(|| async { "open to everyone\n" }));

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn transfer(ctx: AuthContext) -> String {
    format!("transfer by {}\n", ctx.sub.unwrap_or_default())
}
