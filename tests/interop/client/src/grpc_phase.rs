//! The `grpc` phase: `examples/grpc-bank` (the bank's gRPC service on the demo's port, same
//! rules) with oidc-provider tokens, through a tonic client: `GetBalance` with a password-level
//! token, `Transfer` refused with the RFC 9470 challenge in the `www-authenticate` metadata (read
//! with `stepup_tower::grpc::challenge`), and `Transfer` after the step-up the challenge asks
//! for.

use grpc_bank::pb;
use grpc_bank::pb::bank_client::BankClient;
use serde_json::Value;
use stepup_tower::challenge::BearerChallenge;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::oidc::{Browser, jwt_part};
use crate::{BANK_RESOURCE, CLIENTS, MFA, Res, Run};

/// The payee of the gRPC transfer.
const PAYEE: &str = "DE89370400440532013000";

/// `message` with `authorization: Bearer <token>` metadata.
fn authed<T>(message: T, token: &str) -> Res<Request<T>> {
    let mut req = Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|e| format!("token as metadata: {e}"))?;
    req.metadata_mut().insert("authorization", value);
    Ok(req)
}

fn transfer() -> pb::TransferRequest {
    pb::TransferRequest {
        to: PAYEE.into(),
        amount: "1.00".into(),
        idempotency_key: String::new(),
    }
}

impl Run {
    pub(crate) async fn phase_grpc(&mut self) {
        let client_id = CLIENTS.first().map_or("interop-rs256", |c| c.0);
        let mut browser = Browser::default();
        let setup = async {
            let endpoints = self.oidc.discover(MFA).await?;
            let channel = Channel::from_shared(self.args.bank.clone())
                .map_err(|e| format!("{}: {e}", self.args.bank))?
                .connect()
                .await
                .map_err(|e| format!("gRPC connection to {}: {e}", self.args.bank))?;
            Ok::<_, String>((endpoints, BankClient::new(channel)))
        };
        let (endpoints, mut client) = match setup.await {
            Ok(s) => s,
            Err(e) => {
                self.check("gRPC: GetBalance with a password-level token: OK", Err(e));
                return;
            }
        };

        // 1. GetBalance with a password-level token.
        let password = self
            .oidc
            .authorize(&endpoints, &mut browser, client_id, BANK_RESOURCE, None, None)
            .await;
        let outcome = match &password {
            Ok(tokens) => match authed(pb::GetBalanceRequest {}, &tokens.access_token) {
                Ok(req) => match client.get_balance(req).await {
                    Ok(res) => {
                        let b = res.into_inner();
                        Ok(format!("account {}, balance {} {}", b.account, b.balance, b.currency))
                    }
                    Err(status) => Err(format!("{status:?}")),
                },
                Err(e) => Err(e),
            },
            Err(e) => Err(e.clone()),
        };
        if !self.check(
            "gRPC: GetBalance with a password-level token (oidc-provider, RS256): OK",
            outcome,
        ) {
            return;
        }
        let Ok(password) = password else { return };

        // 2. Transfer with it: UNAUTHENTICATED, the step-up challenge in the metadata.
        let challenge: Res<BearerChallenge> = match authed(transfer(), &password.access_token) {
            Ok(req) => match client.transfer(req).await {
                Ok(res) => Err(format!("the transfer went through: {:?}", res.into_inner())),
                Err(status) if status.code() != Code::Unauthenticated => Err(format!("{status:?}")),
                Err(status) => stepup_tower::grpc::challenge(&status)
                    .ok_or_else(|| format!("no Bearer challenge in the metadata: {:?}", status.metadata())),
            },
            Err(e) => Err(e),
        };
        let outcome = challenge.as_ref().map_err(Clone::clone).and_then(|c| {
            crate::transfer_step_up(c).map(|parsed| format!("UNAUTHENTICATED, www-authenticate {parsed}"))
        });
        if !self.check(
            "gRPC: Transfer with it: UNAUTHENTICATED with the RFC 9470 challenge",
            outcome,
        ) {
            return;
        }
        let Ok(challenge) = challenge else { return };

        // 3. Step up with what the challenge asked, then the transfer goes through.
        let acr_values = challenge.acr_values.join(" ");
        let stepped = self
            .oidc
            .authorize(
                &endpoints,
                &mut browser,
                client_id,
                BANK_RESOURCE,
                Some(&acr_values),
                challenge.max_age,
            )
            .await;
        let outcome = match stepped {
            Ok(tokens) => {
                let acr = jwt_part(&tokens.access_token, 1)
                    .ok()
                    .and_then(|c| c.get("acr").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default();
                match authed(transfer(), &tokens.access_token) {
                    Ok(req) => match client.transfer(req).await {
                        Ok(res) => {
                            let r = res.into_inner();
                            Ok(format!(
                                "token acr {acr}; transfer {} of {}, balance now {} EUR",
                                r.transfer.as_ref().map_or(0, |t| t.id),
                                r.transfer.as_ref().map_or("-", |t| t.amount.as_str()),
                                r.balance
                            ))
                        }
                        Err(status) => Err(format!("token acr {acr}: {status:?}")),
                    },
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        self.check(
            "gRPC: Transfer after step-up with the challenge's acr_values and max_age: OK",
            outcome,
        );
    }
}
