//! # stepup-tower
//!
//! A Tower layer for Axum (and any tower HTTP service) that verifies bearer JWTs and enforces
//! per-route step-up authentication, answering exactly as RFC 6750 and RFC 9470 say.
//!
//! - [`bearer`]: `Authorization` header → raw token (RFC 6750 §2);
//! - [`verify`]: raw token → [`VerifiedToken`] (header, key, signature, claims);
//! - [`keys`]: key sources (static JWK Sets, PEM keys, HMAC secrets; remote caches plug in);
//! - [`require`]: [`Requirement`] — acr (with an [`AcrLadder`]), amr, `max_age`, scope, any claim;
//! - [`challenge`]: `WWW-Authenticate` formatting (server) and parsing (client);
//! - [`response`]: refusal → response, replaceable with a [`Responder`](response::Responder);
//! - [`layer`]: the [`StepUpLayer`] wiring the above;
//! - [`extract`]: axum extractors [`AuthContext`], [`Claims<T>`](extract::Claims), [`Token`];
//! - [`metadata`]: RFC 9728 protected-resource metadata, served and named in every challenge;
//! - [`dpop`]: DPoP-bound tokens (RFC 9449): proofs, replay stores, nonces;
//! - [`grpc`]: refusals of gRPC calls as gRPC statuses, the challenge in metadata;
//! - [`navigation`]: an opt-in login redirect for browser navigations.
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use stepup_tower::{AuthContext, Issuer, Requirement, StepUp, keys::KeySet};
//!
//! const MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jwks = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1",
//!   "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
//!   "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
//! let auth = StepUp::builder()
//!     .issuer(Issuer::access_tokens("https://id.example.com")
//!         .audience("bank-api")
//!         .static_keys(KeySet::from_jwks_json(jwks)?))
//!     .realm("bank")
//!     .build()?;
//!
//! async fn balance(ctx: AuthContext) -> String { format!("balance of {:?}", ctx.sub) }
//! async fn transfer(_: AuthContext) -> &'static str { "done" }
//!
//! let app: Router = Router::new()
//!     // MFA within the last 5 minutes, or the RFC 9470 challenge.
//!     .route("/transfer", post(transfer))
//!     .route_layer(auth.require(Requirement::new().acr([MFA]).max_age(300)))
//!     // Any valid token.
//!     .route("/balance", get(balance))
//!     .layer(auth.authenticate());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bearer;
pub mod challenge;
mod config;
mod crypto;
pub mod dpop;
mod error;
pub mod extract;
pub mod grpc;
pub mod keys;
pub mod layer;
pub mod metadata;
pub mod navigation;
pub mod observe;
pub mod require;
pub mod response;
pub mod verify;

pub use config::{DEFAULT_LEEWAY, StepUp, StepUpBuilder};
pub use error::ConfigError;
pub use extract::{Claims, Token};
pub use jsonwebtoken::Algorithm;
pub use layer::{StepUpLayer, StepUpService};
pub use require::{AcrLadder, Requirement, Unmet};
pub use verify::{AuthContext, Issuer, TokenProfile, VerifiedToken, VerifyError};
pub use verify::{DEFAULT_MAX_HEADER_LEN, DEFAULT_MAX_TOKEN_LEN};

/// The README's examples, compiled as doc-tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
