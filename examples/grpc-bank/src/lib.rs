//! The demo bank over gRPC: `bank.v1.Bank` (`GetBalance`, `Transfer`, see
//! `proto/bank.proto`) as a tonic service behind stepup-tower, sharing the ledger, rules and
//! configuration of `examples/bank-demo` and served on the same port as its HTTP routes.
//!
//! - Every `bank.v1.Bank` method needs what every `/api/*` route needs
//!   ([`bank_demo::Bank::api_requirement`]: a valid token, with the API scope when one is
//!   configured); [`TRANSFER_PATH`] also needs [`bank_demo::Bank::transfer_requirement`] (the
//!   transfer acr within `max_age`, RFC 9470 §3). The token is verified once: the inner layer
//!   reuses what the outer one verified.
//! - A refusal is a trailers-only gRPC answer: `grpc-status` 16 `UNAUTHENTICATED` (no token, a
//!   bad token, step-up), 7 `PERMISSION_DENIED` (`insufficient_scope`), 14 `UNAVAILABLE` (keys
//!   or DPoP replay store unavailable), with the RFC 6750 §3 / RFC 9470 §3 challenge in the
//!   `www-authenticate` metadata.
//! - Handlers read the verified token from `tonic::Request::extensions()` as a
//!   [`stepup_tower::Token`] (an `Arc<VerifiedToken>`, put there by the layer).
//! - The reflection service (`grpc.reflection.v1` and `v1alpha`) needs no token, so that
//!   generic clients (grpcurl) can list and describe the service before they have one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use bank_demo::ledger::{self, Ledger, Outcome, TransferError};
use bank_demo::{Bank, Config};
use serde_json::Value;
use stepup_tower::Token;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

/// The code generated from `proto/bank.proto` (package `bank.v1`) by `build.rs`.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod pb {
    tonic::include_proto!("bank.v1");

    /// The encoded `FileDescriptorSet` of `proto/bank.proto`, served by the reflection
    /// service.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bank_descriptor.bin"));
}

use pb::bank_server::BankServer;

/// The gRPC path of the method that needs a step-up (a tonic method is an HTTP/2 `POST` to
/// `/{package}.{Service}/{Method}`).
pub const TRANSFER_PATH: &str = "/bank.v1.Bank/Transfer";
/// The gRPC path of the balance method.
pub const GET_BALANCE_PATH: &str = "/bank.v1.Bank/GetBalance";
/// The fully-qualified service name.
pub const SERVICE_NAME: &str = <BankServer<BankService> as NamedService>::NAME;

/// A built application: the bank demo's HTTP routes, the gRPC service and the reflection
/// service on one router.
#[derive(Debug)]
pub struct GrpcBank {
    /// Everything to serve (HTTP/1.1 and HTTP/2, see `src/main.rs`).
    pub router: Router,
    /// The bank demo's parts: ledger, provider, issuer, `auth`, requirements. Its `router` is
    /// empty: its routes are in [`GrpcBank::router`].
    pub bank: Bank,
    /// How many calls the gRPC handlers have run (a refused call never reaches them).
    pub handled: Arc<AtomicU64>,
}

/// Builds the bank demo for `origin` (see [`bank_demo::build`]) and adds the gRPC service and
/// the reflection service to its router.
pub async fn build(config: &Config, origin: &str) -> Result<GrpcBank, Box<dyn std::error::Error + Send + Sync>> {
    let mut bank = bank_demo::build(config, origin).await?;
    let service = BankService::new(bank.ledger.clone());
    let handled = service.handled.clone();
    let grpc = grpc_router(&bank, service)?;
    let router = std::mem::take(&mut bank.router).merge(grpc);
    Ok(GrpcBank { router, bank, handled })
}

/// The gRPC routes with the bank demo's rules: every `bank.v1.Bank` method behind
/// `bank.api_requirement`, [`TRANSFER_PATH`] also behind `bank.transfer_requirement`, and the
/// reflection service without a token.
pub fn grpc_router(bank: &Bank, service: BankService) -> Result<Router, Box<dyn std::error::Error + Send + Sync>> {
    let server = BankServer::new(service);
    // The step-up method: its own route with the transfer rule (a route-level layer).
    let transfer = Router::new()
        .route_service(TRANSFER_PATH, server.clone())
        .route_layer(bank.auth.try_require(bank.transfer_requirement.clone())?);
    // Every method of the service (the catch-all answers UNIMPLEMENTED for unknown ones, after
    // authentication) behind the API rule. This outer layer verifies the token; the transfer
    // layer inside it reuses the result and checks only its own requirement.
    let methods = Router::new()
        .route_service(&format!("/{SERVICE_NAME}/{{*method}}"), server)
        .merge(transfer)
        .route_layer(bank.auth.try_require(bank.api_requirement.clone())?);
    Ok(with_reflection(methods)?)
}

/// `router` plus the reflection service (v1 and v1alpha) for `proto/bank.proto`, needing no
/// token: it tells what the API looks like, never any account data.
pub fn with_reflection(router: Router) -> Result<Router, tonic_reflection::server::Error> {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let v1_path = format!("/{}/{{*method}}", name_of(&v1));
    let v1alpha_path = format!("/{}/{{*method}}", name_of(&v1alpha));
    Ok(router.route_service(&v1_path, v1).route_service(&v1alpha_path, v1alpha))
}

fn name_of<S: NamedService>(_: &S) -> &'static str {
    S::NAME
}

/// The `bank.v1.Bank` handlers over the bank demo's ledger.
#[derive(Debug, Clone)]
pub struct BankService {
    ledger: Arc<Ledger>,
    handled: Arc<AtomicU64>,
}

impl BankService {
    /// Handlers over `ledger`.
    pub fn new(ledger: Arc<Ledger>) -> Self {
        Self {
            ledger,
            handled: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many calls the handlers have run.
    pub fn handled(&self) -> Arc<AtomicU64> {
        self.handled.clone()
    }

    /// The verified token the layer left in the request, and its non-empty `sub`.
    fn caller<T>(&self, request: &Request<T>) -> Result<Arc<stepup_tower::VerifiedToken>, Status> {
        self.handled.fetch_add(1, Ordering::Relaxed);
        let Some(Token(token)) = request.extensions().get::<Token>() else {
            // A server misconfiguration (the service is mounted without a StepUp layer), not
            // the client's fault.
            tracing::error!("bank.v1.Bank called without a StepUp layer in front of it");
            return Err(Status::internal("authentication is not configured for this method"));
        };
        if token.context().sub.as_deref().is_none_or(str::is_empty) {
            return Err(Status::permission_denied(
                "no_subject: the token names no subject (sub)",
            ));
        }
        Ok(token.clone())
    }
}

fn sub(token: &stepup_tower::VerifiedToken) -> &str {
    token.context().sub.as_deref().unwrap_or_default()
}

/// The subject's account number belongs to another subject ([`ledger::NumberTaken`]).
fn no_account() -> Status {
    Status::not_found("account_unavailable: no account can be opened for this subject")
}

fn invalid(error: &str, description: &str) -> Status {
    Status::invalid_argument(format!("{error}: {description}"))
}

#[tonic::async_trait]
impl pb::bank_server::Bank for BankService {
    async fn get_balance(&self, request: Request<pb::GetBalanceRequest>) -> Result<Response<pb::Balance>, Status> {
        let token = self.caller(&request)?;
        let (account, balance) = self.ledger.balance(sub(&token)).map_err(|_| no_account())?;
        Ok(Response::new(pb::Balance {
            account,
            balance,
            currency: "EUR".into(),
        }))
    }

    async fn transfer(&self, request: Request<pb::TransferRequest>) -> Result<Response<pb::TransferResult>, Status> {
        let token = self.caller(&request)?;
        let req = request.into_inner();
        let key = match req.idempotency_key.as_str() {
            "" => None,
            k if k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => Some(k),
            _ => {
                return Err(invalid(
                    "invalid_request",
                    "idempotency_key must be 1–255 visible ASCII characters",
                ));
            }
        };
        if req.to.is_empty() {
            return Err(invalid("invalid_request", "to is required"));
        }
        let to = ledger::normalize_iban(&req.to).map_err(|why| invalid("invalid_account", why))?;
        if req.amount.is_empty() {
            return Err(invalid("invalid_request", "amount is required"));
        }
        let cents = ledger::parse_amount(&req.amount).map_err(|why| invalid("invalid_amount", why))?;
        let sub = sub(&token);
        match self.ledger.transfer(sub, &to, cents, key) {
            Ok(Outcome::Done(t, balance)) => {
                tracing::info!(sub, id = t.id, amount = %t.amount, "transfer done (gRPC)");
                Ok(Response::new(pb::TransferResult {
                    transfer: Some(pb::Transfer {
                        id: t.id,
                        direction: t.direction.to_string(),
                        from: t.from,
                        to: t.to,
                        amount: t.amount,
                        created_at: t.created_at,
                    }),
                    balance,
                    replayed: false,
                }))
            }
            Ok(Outcome::Replayed(body)) => Ok(Response::new(replayed(&body))),
            Err(TransferError::NoAccount) => Err(no_account()),
            Err(TransferError::InsufficientFunds) => Err(Status::failed_precondition(
                "insufficient_funds: amount is above the balance",
            )),
            Err(TransferError::SelfTransfer) => Err(invalid("invalid_account", "to is your own account")),
            Err(TransferError::KeyReused) => Err(Status::already_exists(
                "idempotency_key_reused: this idempotency key was used for a different transfer",
            )),
        }
    }
}

/// The stored answer of an idempotent transfer (the HTTP API's JSON body, see
/// `examples/bank-demo/src/ledger.rs`) as a [`pb::TransferResult`].
fn replayed(body: &Value) -> pb::TransferResult {
    let t = &body["transfer"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    pb::TransferResult {
        transfer: Some(pb::Transfer {
            id: t["id"].as_u64().unwrap_or_default(),
            direction: text(&t["direction"]),
            from: text(&t["from"]),
            to: text(&t["to"]),
            amount: text(&t["amount"]),
            created_at: t["created_at"].as_u64().unwrap_or_default(),
        }),
        balance: text(&body["balance"]),
        replayed: true,
    }
}
