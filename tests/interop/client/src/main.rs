//! Interop client: drives the bank demo against an independent OpenID provider (npm
//! `oidc-provider`, started by `tests/interop/run.sh`) and prints one line per check, then
//! `N passed, M failed`. Exit code 1 when any check failed, 2 on bad arguments.
//!
//! ```text
//! interop-client --bank http://127.0.0.1:P --issuer http://127.0.0.1:Q --phase main     --state FILE
//! interop-client --bank http://127.0.0.1:P --issuer http://127.0.0.1:Q --phase rotation --state FILE
//! interop-client --bank http://127.0.0.1:P --issuer http://127.0.0.1:Q --phase reuse    --state FILE
//! interop-client --bank http://127.0.0.1:P --issuer http://127.0.0.1:Q --phase dpop     --state FILE
//! interop-client --bank http://127.0.0.1:G --issuer http://127.0.0.1:Q --phase grpc     --state FILE
//! ```
//!
//! `main`: tokens signed with RS256, ES256, EdDSA and Ed25519 (RFC 9864), the whole RFC 9470 loop (the challenge is
//! read with `stepup_tower::challenge::BearerChallenge`), an ID token and a token for another
//! audience refused. It writes the provider's keys (`kid` and public material), the balance and
//! one of its tokens to the state file.
//! `rotation` (after the provider was restarted with new keys, the demo left running): the new
//! keys share no `kid` with the old ones, tokens signed with them pass, the demo kept its state
//! (so it was not restarted), the token `main` saved is refused, and the RFC 9470 loop works
//! again. It writes the same hand-over for `reuse`.
//! `reuse` (after the provider was restarted again with new key material under the same `kid`s,
//! the demo left running): every `kid` is back with different material, tokens signed with the
//! new material pass once the demo refetched the keys (a bad signature on a known `kid` triggers
//! a refetch limited by the demo's cooldown, so a 401 is retried for up to 10 s), the demo kept
//! its state, the token `rotation` saved (same `kid`, old material) is refused, and the RFC 9470
//! loop works.
//! `dpop` (RFC 9449; the demo runs with `STEPUP_DPOP=allowed`): DPoP-bound tokens from the
//! provider (the client `interop-dpop` has `dpop_bound_access_tokens`; the code is bound with
//! `dpop_jkt`; the provider demands a `DPoP-Nonce`), `token_type` `DPoP` and `cnf.jkt` the
//! RFC 7638 thumbprint of our key; the RFC 9470 loop with proofs (the `DPoP` challenge read with
//! `stepup_tower::challenge`); a replayed proof, the bound token as a Bearer token, and proofs
//! for another `htu`, `htm`, `ath` or key are refused. Proofs are made here, with
//! `jsonwebtoken` and an AWS-LC P-256 key, independently of the crate under test.
//! `grpc` (`--bank` is `examples/grpc-bank`, the bank's gRPC service, same provider): with a
//! tonic client, `GetBalance` with a password-level token passes, `Transfer` is refused with
//! `UNAUTHENTICATED` and the RFC 9470 challenge in the `www-authenticate` metadata (read with
//! `stepup_tower::grpc::challenge`), and `Transfer` after the step-up it asks for passes.
#![allow(clippy::print_stdout)]

mod dpop;
mod dpop_phase;
mod grpc_phase;
mod oidc;
mod state;

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use stepup_tower::challenge::{BearerChallenge, ErrorCode};

use oidc::{Browser, Endpoints, OidcClient, PublicKey, Tokens, excerpt, jwt_part, kids};
use state::Handover;

/// The multi-factor acr the demo's transfer route asks for.
const MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
/// Resource indicator whose tokens carry `aud` `bank-api`.
const BANK_RESOURCE: &str = "urn:bank-api";
/// Resource indicator whose tokens carry `aud` `other-api`.
const OTHER_RESOURCE: &str = "urn:other-api";
/// The test clients of `provider.mjs` and the JWS alg of their tokens.
const CLIENTS: [(&str, &str); 4] = [
    ("interop-rs256", "RS256"),
    ("interop-es256", "ES256"),
    ("interop-eddsa", "EdDSA"),
    ("interop-ed25519", "Ed25519"),
];
/// The public client of `provider.mjs` registered with `dpop_bound_access_tokens` (RFC 9449
/// §5.2): its token requests must carry a proof. Its tokens are signed with ES256.
const DPOP_CLIENT: &str = "interop-dpop";
/// The transfer every step-up check sends.
const TRANSFER_BODY: &str = r#"{"to":"DE89370400440532013000","amount":"1.00"}"#;
/// How long the `reuse` phase retries a fresh token the demo refuses with 401: the demo refetches
/// the keys on a bad signature under a known `kid` only when its key set is older than its
/// cooldown (`STEPUP_JWKS_COOLDOWN`, 2 s in `run.sh`).
const REUSE_PATIENCE: Duration = Duration::from_secs(10);
/// The pause between two such attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

type Res<T> = Result<T, String>;
/// A response of the demo: status, body, headers.
type Reply = (StatusCode, String, HeaderMap);

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("interop-client: {e}");
            eprintln!(
                "usage: interop-client --bank URL --issuer URL --phase main|rotation|reuse|dpop|grpc --state FILE"
            );
            return ExitCode::from(2);
        }
    };
    let mut run = match Run::new(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("interop-client: {e}");
            return ExitCode::from(2);
        }
    };
    match run.args.phase {
        Phase::Main => run.phase_main().await,
        Phase::Rotation => run.phase_rotation().await,
        Phase::Reuse => run.phase_reuse().await,
        Phase::Dpop => run.phase_dpop().await,
        Phase::Grpc => run.phase_grpc().await,
    }
    println!("{} passed, {} failed", run.passed, run.failed);
    if run.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Main,
    Rotation,
    Reuse,
    Dpop,
    Grpc,
}

impl Phase {
    /// What the names of this phase's checks start with.
    const fn prefix(self) -> &'static str {
        match self {
            Self::Main => "",
            Self::Rotation => "after rotation, ",
            Self::Reuse => "after key reuse, ",
            Self::Dpop => "DPoP: ",
            Self::Grpc => "gRPC: ",
        }
    }
}

#[derive(Debug)]
struct Args {
    bank: String,
    issuer: String,
    phase: Phase,
    state: String,
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> Res<Self> {
        let (mut bank, mut issuer, mut phase, mut state) = (None, None, None, None);
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--bank" => bank = Some(value.trim_end_matches('/').to_string()),
                "--issuer" => issuer = Some(value),
                "--phase" => {
                    phase = Some(match value.as_str() {
                        "main" => Phase::Main,
                        "rotation" => Phase::Rotation,
                        "reuse" => Phase::Reuse,
                        "dpop" => Phase::Dpop,
                        "grpc" => Phase::Grpc,
                        other => return Err(format!("unknown phase {other:?}")),
                    });
                }
                "--state" => state = Some(value),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(Self {
            bank: bank.ok_or("--bank is required")?,
            issuer: issuer.ok_or("--issuer is required")?,
            phase: phase.ok_or("--phase is required")?,
            state: state.ok_or("--state is required")?,
        })
    }
}

/// The start of some key material, for check lines.
fn short(material: &str) -> String {
    let start: String = material.chars().take(10).collect();
    if start.is_empty() {
        "-".into()
    } else {
        format!("{start}...")
    }
}

struct Run {
    args: Args,
    http: Client,
    oidc: OidcClient,
    passed: u32,
    failed: u32,
}

impl Run {
    fn new(args: Args) -> Res<Self> {
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let oidc = OidcClient::new(http.clone(), args.issuer.clone());
        Ok(Self {
            args,
            http,
            oidc,
            passed: 0,
            failed: 0,
        })
    }

    /// Records and prints one check.
    fn check(&mut self, name: &str, outcome: Res<String>) -> bool {
        match outcome {
            Ok(detail) => {
                self.passed += 1;
                println!("PASS  {name}: {detail}");
                true
            }
            Err(why) => {
                self.failed += 1;
                println!("FAIL  {name}: {why}");
                false
            }
        }
    }

    async fn phase_main(&mut self) {
        let health = self.healthz().await;
        self.check("demo is up (GET /healthz)", health);
        let endpoints = match self.oidc.discover(MFA).await {
            Ok(e) => {
                self.check(
                    "provider discovery (issuer, endpoints, acr_values_supported)",
                    Ok(format!("jwks_uri {}", e.jwks)),
                );
                e
            }
            Err(e) => {
                self.check("provider discovery (issuer, endpoints, acr_values_supported)", Err(e));
                return;
            }
        };
        let keys = self.oidc.jwks_keys(&endpoints).await;
        let outcome = self.no_token_challenge().await;
        self.check(
            "no token: 401 Bearer challenge without error; RFC 9728 metadata names the issuer",
            outcome,
        );

        // 1. A token signed with each algorithm passes.
        let mut browser = Browser::default();
        let mut password_tokens = Vec::new();
        for (client_id, alg) in CLIENTS {
            let outcome = self
                .password_token_passes(&endpoints, &mut browser, client_id, alg, Duration::ZERO)
                .await;
            let name = format!("{alg} access token (client {client_id}): GET /api/balance 200");
            match outcome {
                Ok((detail, tokens)) => {
                    self.check(&name, Ok(detail));
                    password_tokens.push(tokens);
                }
                Err(e) => {
                    self.check(&name, Err(e));
                }
            }
        }

        // 2. The RFC 9470 loop with the RS256 client's password-level token.
        let mut balance_after = None;
        match password_tokens.first() {
            Some(tokens) => {
                let rs256 = CLIENTS.first().map(|c| c.0).unwrap_or("interop-rs256");
                let access = tokens.access_token.clone();
                balance_after = self.step_up_loop(&endpoints, &mut browser, rs256, &access).await;
            }
            None => {
                self.check(
                    "RFC 9470 step-up loop",
                    Err("no password-level token to start from".into()),
                );
            }
        }

        // 3. An ID token offered as an access token is refused.
        let id_token = password_tokens.first().and_then(|t| t.id_token.clone());
        let outcome = match id_token {
            Some(t) => {
                self.refused_as_invalid_token(&t, "ID token", "no typ, aud = client_id")
                    .await
            }
            None => Err("the token response had no id_token".into()),
        };
        self.check("ID token as access token: 401 invalid_token", outcome);

        // 4. A token for another resource (aud other-api) is refused.
        let outcome = self.other_audience_refused(&endpoints, &mut browser).await;
        self.check("token for another resource (aud other-api): 401 invalid_token", outcome);

        // 5. Hand over to the rotation phase (with a token signed by a key about to go).
        let old_token = password_tokens.first().map(|t| t.access_token.clone());
        self.hand_over(&keys, balance_after, old_token);
    }

    /// What both restart phases start with: the demo still up, the hand-over of the phase
    /// before, the restarted provider's endpoints and keys.
    async fn after_provider_restart(
        &mut self,
    ) -> Option<(Result<Handover, String>, Endpoints, Result<Vec<PublicKey>, String>)> {
        let health = self.healthz().await;
        self.check("demo still up (GET /healthz)", health);
        let saved = Handover::load(&self.args.state);
        let endpoints = self.rediscover().await?;
        let keys = self.oidc.jwks_keys(&endpoints).await;
        Some((saved, endpoints, keys))
    }

    async fn phase_rotation(&mut self) {
        let Some((saved, endpoints, keys)) = self.after_provider_restart().await else {
            return;
        };
        let outcome = match (&saved, &keys) {
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
            (Ok(saved), Ok(new)) if saved.keys.is_empty() => Err(format!("no old kids saved; new: {:?}", kids(new))),
            (Ok(saved), Ok(new)) => match new.iter().find(|k| saved.keys.iter().any(|o| o.kid == k.kid)) {
                Some(k) => Err(format!("kid {} is in both key sets: the keys were not rotated", k.kid)),
                None => Ok(format!(
                    "old {} -> new {}",
                    kids(&saved.keys).join(" "),
                    kids(new).join(" ")
                )),
            },
        };
        self.check("provider restarted with new keys (no kid in common)", outcome);
        let (token, balance) = self.after_restart(&endpoints, &keys, &saved, Duration::ZERO).await;
        // Hand over to the reuse phase (with a token signed with material about to go).
        self.hand_over(&keys, balance, token);
    }

    async fn phase_reuse(&mut self) {
        let Some((saved, endpoints, keys)) = self.after_provider_restart().await else {
            return;
        };
        let outcome = match (&saved, &keys) {
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
            (Ok(saved), Ok(new)) => same_kids_new_material(&saved.keys, new),
        };
        self.check("provider restarted with new material under the same kids", outcome);
        self.after_restart(&endpoints, &keys, &saved, REUSE_PATIENCE).await;
    }

    /// Writes what the next phase needs into the state file, as a check.
    fn hand_over(&mut self, keys: &Res<Vec<PublicKey>>, balance: Option<String>, token: Option<String>) {
        let next = if self.args.phase == Phase::Main {
            "rotation"
        } else {
            "reuse"
        };
        let outcome = match (keys, balance, token) {
            (Err(e), _, _) => Err(format!("provider JWKS: {e}")),
            (_, None, _) => Err("no balance after the transfer to hand over".into()),
            (_, _, None) => Err("no token of this key generation to hand over".into()),
            (Ok(keys), Some(balance), token) => {
                let detail = format!(
                    "kids {}, their public keys and balance {balance} saved",
                    kids(keys).join(" ")
                );
                Handover {
                    keys: keys.clone(),
                    balance: Some(balance),
                    token,
                }
                .save(&self.args.state)
                .map(|()| detail)
            }
        };
        self.check(&format!("state for the {next} phase written"), outcome);
    }

    /// Discovery at the restarted provider, as a check.
    async fn rediscover(&mut self) -> Option<Endpoints> {
        let name = "restarted provider discovery";
        match self.oidc.discover(MFA).await {
            Ok(e) => {
                self.check(name, Ok(format!("jwks_uri {}", e.jwks)));
                Some(e)
            }
            Err(e) => {
                self.check(name, Err(e));
                None
            }
        }
    }

    /// The checks after the provider restarted with other key material, the demo left
    /// running: a fresh password-level token of every client (signed with a key in `keys`)
    /// reads the balance the previous phase left, the token the previous phase saved is
    /// refused, and the RFC 9470 loop works. A 401 to a fresh token is retried for up to
    /// `patience`. Returns a fresh token that read the balance, and the balance after the loop.
    async fn after_restart(
        &mut self,
        endpoints: &Endpoints,
        keys: &Res<Vec<PublicKey>>,
        saved: &Res<Handover>,
        patience: Duration,
    ) -> (Option<String>, Option<String>) {
        let prefix = self.args.phase.prefix();
        let old_balance = saved.as_ref().ok().and_then(|s| s.balance.clone());
        let mut browser = Browser::default();
        let mut first = None;
        for (client_id, alg) in CLIENTS {
            let name = format!("{prefix}{alg} access token (client {client_id}): GET /api/balance 200, same demo");
            let outcome = self
                .password_token_passes(endpoints, &mut browser, client_id, alg, patience)
                .await
                .and_then(|(detail, tokens)| {
                    let kid = jwt_part(&tokens.access_token, 0)
                        .ok()
                        .and_then(|h| h.get("kid").and_then(Value::as_str).map(str::to_string))
                        .unwrap_or_default();
                    match keys {
                        Ok(keys) if keys.iter().any(|k| k.kid == kid) => Ok((detail, tokens)),
                        _ => Err(format!("kid {kid:?} is not one of the restarted provider's")),
                    }
                });
            let outcome = outcome.and_then(|(detail, tokens)| {
                if first.is_none() {
                    first = Some(tokens.access_token);
                }
                // The ledger lives in the demo's memory: the same balance proves the demo
                // was not restarted.
                match &old_balance {
                    Some(b) if detail.contains(&format!("balance {b} ")) => Ok(detail),
                    Some(b) => Err(format!("{detail}; expected balance {b} from before the restart")),
                    None => Err(format!("{detail}; no balance saved by the previous phase")),
                }
            });
            self.check(&name, outcome);
        }

        // The token the previous phase saved, verified (and cached) by the demo then. After a
        // rotation its key is no longer published; after a key reuse its kid is, with other
        // material. Either way the demo refetched the key set for the fresh tokens, so the old
        // key (and any cached verification made with it) must be gone.
        let (value, name) = match self.args.phase {
            Phase::Reuse => (
                "reused with new material",
                "the previous generation's token (same kid, old material; verified and cached before): 401 invalid_token",
            ),
            Phase::Main | Phase::Rotation | Phase::Dpop | Phase::Grpc => (
                "of a removed key",
                "a token signed with a removed key (verified and cached before): 401 invalid_token",
            ),
        };
        let outcome = match saved.as_ref().ok().and_then(|s| s.token.as_deref()) {
            Some(t) => self.refused_as_invalid_token(t, "kid", value).await,
            None => Err("no token saved by the previous phase".into()),
        };
        self.check(&format!("{prefix}{name}"), outcome);

        let balance = match &first {
            Some(token) => {
                let rs256 = CLIENTS.first().map(|c| c.0).unwrap_or("interop-rs256");
                self.step_up_loop(endpoints, &mut browser, rs256, token).await
            }
            None => {
                self.check(
                    &format!("{prefix}RFC 9470 step-up loop"),
                    Err("no token from the restarted provider".into()),
                );
                None
            }
        };
        (first, balance)
    }

    async fn healthz(&self) -> Res<String> {
        let url = format!("{}/healthz", self.args.bank);
        let res = self.http.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = res.status();
        let body = res.text().await.map_err(|e| format!("{url}: {e}"))?;
        if status == StatusCode::OK && body.trim() == "ok" {
            Ok(format!("{url} -> 200 ok"))
        } else {
            Err(format!("{url} -> {status} {body:?}"))
        }
    }

    /// Password-level (loa1) token from `client_id`; checks its header and that
    /// `GET /api/balance` accepts it (see [`Run::balance_within`] for `patience`). Returns a
    /// description including `balance X `.
    async fn password_token_passes(
        &self,
        endpoints: &Endpoints,
        browser: &mut Browser,
        client_id: &str,
        alg: &str,
        patience: Duration,
    ) -> Res<(String, Tokens)> {
        let tokens = self
            .oidc
            .authorize(endpoints, browser, client_id, BANK_RESOURCE, None, None)
            .await?;
        let header = jwt_part(&tokens.access_token, 0)?;
        let claims = jwt_part(&tokens.access_token, 1)?;
        let got_alg = header.get("alg").and_then(Value::as_str).unwrap_or_default();
        if got_alg != alg {
            return Err(format!("token header alg {got_alg:?}, expected {alg:?}: {header}"));
        }
        if header.get("typ").and_then(Value::as_str) != Some("at+jwt") {
            return Err(format!("token header typ is not at+jwt: {header}"));
        }
        if claims.get("aud") != Some(&json!("bank-api")) {
            return Err(format!("token aud is not bank-api: {claims}"));
        }
        let (body, attempts) = self.balance_within(&tokens.access_token, patience).await?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("balance body: {e}"))?;
        let balance = v.get("balance").and_then(Value::as_str).unwrap_or_default();
        let mut detail = format!(
            "header alg {got_alg} kid {}, acr {}, balance {balance} EUR",
            header.get("kid").and_then(Value::as_str).unwrap_or("-"),
            claims.get("acr").and_then(Value::as_str).unwrap_or("-"),
        );
        if !patience.is_zero() {
            detail.push_str(&format!(" ({attempts})"));
        }
        Ok((detail, tokens))
    }

    /// `GET /api/balance` with `token` until it answers 200: a 401 is tried again every
    /// [`RETRY_PAUSE`] for up to `patience` (zero: one attempt). Returns the body and what it
    /// took (e.g. `2 attempts in 0.5 s`).
    async fn balance_within(&self, token: &str, patience: Duration) -> Res<(String, String)> {
        let start = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let (status, body, headers) = self.bank_get("/api/balance", token).await?;
            let took = format!(
                "{attempts} attempt{} in {:.1} s",
                if attempts == 1 { "" } else { "s" },
                start.elapsed().as_secs_f64()
            );
            if status == StatusCode::OK {
                return Ok((body, took));
            }
            if status != StatusCode::UNAUTHORIZED || start.elapsed() >= patience {
                let challenge = headers.get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok());
                let took = if patience.is_zero() {
                    String::new()
                } else {
                    format!(" after {took}")
                };
                return Err(format!(
                    "GET /api/balance -> {status}{took}: {} (WWW-Authenticate {challenge:?})",
                    excerpt(&body)
                ));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// The RFC 9470 loop: the transfer with a password-level token gets the challenge, which
    /// is read with our parser; a new authorization request carries its `acr_values` and
    /// `max_age`; the transfer with the new token succeeds. Returns the balance after it.
    async fn step_up_loop(
        &mut self,
        endpoints: &Endpoints,
        browser: &mut Browser,
        client_id: &str,
        password_token: &str,
    ) -> Option<String> {
        let prefix = self.args.phase.prefix();
        // a) The challenge.
        let challenge = match self.transfer(password_token).await {
            Ok((status, body, headers)) => {
                let parsed = BearerChallenge::from_headers(&headers)
                    .map_err(|e| format!("our parser refused the challenge: {e:?} in {headers:?}"));
                match parsed {
                    Ok(Some(c)) if status == StatusCode::UNAUTHORIZED => Ok(c),
                    Ok(Some(c)) => Err(format!("status {status} (challenge {c:?}): {}", excerpt(&body))),
                    Ok(None) => Err(format!("status {status}, no Bearer challenge: {}", excerpt(&body))),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        let outcome = challenge.as_ref().map_err(Clone::clone).and_then(|c| {
            transfer_step_up(c).map(|parsed| format!("{parsed}, realm={:?}", c.realm.as_deref().unwrap_or("")))
        });
        let name = format!("{prefix}password-level token: POST /api/transfers 401 with RFC 9470 challenge");
        if !self.check(&name, outcome) {
            return None;
        }
        let challenge = challenge.ok()?;

        // b) Step up at the provider with what the challenge asked for.
        let acr_values = challenge.acr_values.join(" ");
        let stepped = self
            .oidc
            .authorize(
                endpoints,
                browser,
                client_id,
                BANK_RESOURCE,
                Some(&acr_values),
                challenge.max_age,
            )
            .await
            .and_then(|t| {
                let claims = jwt_part(&t.access_token, 1)?;
                let acr = claims.get("acr").and_then(Value::as_str).unwrap_or_default();
                if acr != MFA {
                    return Err(format!("new token acr {acr:?}, expected {MFA}: {claims}"));
                }
                let auth_time = claims.get("auth_time").and_then(Value::as_u64).unwrap_or(0);
                let age = now().saturating_sub(auth_time);
                if age > 60 {
                    return Err(format!("new token auth_time is {age} s old: {claims}"));
                }
                Ok((
                    format!(
                        "acr_values={acr_values:?} max_age={:?} -> token acr {acr}, amr {}, auth_time {age} s ago",
                        challenge.max_age,
                        claims.get("amr").map_or_else(|| "-".to_string(), Value::to_string)
                    ),
                    t,
                ))
            });
        let name = format!("{prefix}step-up authorization request with the challenge's acr_values and max_age");
        let tokens = match stepped {
            Ok((detail, t)) => {
                self.check(&name, Ok(detail));
                t
            }
            Err(e) => {
                self.check(&name, Err(e));
                return None;
            }
        };

        // c) The transfer goes through.
        let mut balance = None;
        let outcome = match self.transfer(&tokens.access_token).await {
            Ok((StatusCode::CREATED, body, _)) => {
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                balance = v.get("balance").and_then(Value::as_str).map(str::to_string);
                match &balance {
                    Some(b) => Ok(format!("201, balance now {b} EUR")),
                    None => Err(format!("201 but no balance in {}", excerpt(&body))),
                }
            }
            Ok((status, body, headers)) => Err(format!(
                "{status}: {} {:?}",
                excerpt(&body),
                headers.get(WWW_AUTHENTICATE)
            )),
            Err(e) => Err(e),
        };
        self.check(&format!("{prefix}stepped-up token: POST /api/transfers 201"), outcome);
        balance
    }

    /// Without a token: 401 with a bare challenge (realm, `resource_metadata`, no `error`),
    /// and the RFC 9728 document it points to names the provider as authorization server.
    async fn no_token_challenge(&self) -> Res<String> {
        let url = format!("{}/api/balance", self.args.bank);
        let res = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if res.status() != StatusCode::UNAUTHORIZED {
            return Err(format!("GET /api/balance without a token -> {}", res.status()));
        }
        let c = BearerChallenge::from_headers(res.headers())
            .map_err(|e| format!("our parser refused the challenge: {e:?}"))?
            .ok_or("401 without a Bearer challenge")?;
        if c.error.is_some() {
            return Err(format!(
                "error {:?} in the challenge to a request without token",
                c.error
            ));
        }
        let metadata_url = c.resource_metadata.ok_or("the challenge has no resource_metadata")?;
        let metadata = oidc::get_json(&self.http, &metadata_url).await?;
        let names_issuer = metadata
            .get("authorization_servers")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(self.args.issuer.as_str())));
        if !names_issuer {
            return Err(format!("{metadata_url} does not name {}: {metadata}", self.args.issuer));
        }
        Ok(format!(
            "realm={:?}, resource_metadata {metadata_url} -> authorization_servers {}",
            c.realm.unwrap_or_default(),
            metadata.get("authorization_servers").unwrap_or(&Value::Null)
        ))
    }

    /// A token for `urn:other-api` (aud other-api) is refused with 401 invalid_token.
    async fn other_audience_refused(&self, endpoints: &Endpoints, browser: &mut Browser) -> Res<String> {
        let client_id = CLIENTS.get(1).map(|c| c.0).unwrap_or("interop-es256");
        let tokens = self
            .oidc
            .authorize(endpoints, browser, client_id, OTHER_RESOURCE, None, None)
            .await?;
        let claims = jwt_part(&tokens.access_token, 1)?;
        if claims.get("aud") != Some(&json!("other-api")) {
            return Err(format!("the provider did not issue aud other-api: {claims}"));
        }
        self.refused_as_invalid_token(&tokens.access_token, "aud", "other-api")
            .await
    }

    /// `GET /api/balance` with `token` answers 401 with `error="invalid_token"` (read with our
    /// parser).
    async fn refused_as_invalid_token(&self, token: &str, what: &str, value: &str) -> Res<String> {
        let (status, body, headers) = self.bank_get("/api/balance", token).await?;
        if status != StatusCode::UNAUTHORIZED {
            return Err(format!("GET /api/balance -> {status}: {}", excerpt(&body)));
        }
        let c = BearerChallenge::from_headers(&headers)
            .map_err(|e| format!("our parser refused the challenge: {e:?}"))?
            .ok_or("401 without a Bearer challenge")?;
        if c.error != Some(ErrorCode::InvalidToken) {
            return Err(format!("error {:?}, expected invalid_token", c.error));
        }
        Ok(format!(
            "({what} {value}) 401 error=invalid_token, error_description={:?}",
            c.error_description.unwrap_or_default()
        ))
    }

    async fn bank_get(&self, path: &str, token: &str) -> Res<(StatusCode, String, reqwest::header::HeaderMap)> {
        let url = format!("{}{path}", self.args.bank);
        let res = self
            .http
            .get(&url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.text().await.map_err(|e| format!("GET {url}: {e}"))?;
        Ok((status, body, headers))
    }

    async fn transfer(&self, token: &str) -> Res<(StatusCode, String, reqwest::header::HeaderMap)> {
        let url = format!("{}/api/transfers", self.args.bank);
        let res = self
            .http
            .post(&url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(TRANSFER_BODY)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.text().await.map_err(|e| format!("POST {url}: {e}"))?;
        Ok((status, body, headers))
    }
}

/// The reuse phase's key-set check: the restarted provider publishes exactly the `kid`s it
/// published before (`old`), each with other public material.
fn same_kids_new_material(old: &[PublicKey], new: &[PublicKey]) -> Res<String> {
    let old_kids: BTreeSet<&str> = kids(old).into_iter().collect();
    let new_kids: BTreeSet<&str> = kids(new).into_iter().collect();
    if old_kids.is_empty() {
        return Err(format!("no kids saved by the rotation phase; now {new_kids:?}"));
    }
    if old_kids != new_kids {
        return Err(format!("kids {new_kids:?}, expected the same as before: {old_kids:?}"));
    }
    let mut changes = Vec::new();
    for key in new {
        let before = old
            .iter()
            .find(|k| k.kid == key.kid)
            .map_or("", |k| k.material.as_str());
        if before.is_empty() || key.material.is_empty() {
            return Err(format!("kid {}: no public material (n, x, y) to compare", key.kid));
        }
        if before == key.material {
            return Err(format!(
                "kid {}: the same public material {} as before the restart",
                key.kid,
                short(before)
            ));
        }
        changes.push(format!("{} {} -> {}", key.kid, short(before), short(&key.material)));
    }
    Ok(changes.join(", "))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The transfer's RFC 9470 challenge: `insufficient_user_authentication`, the multi-factor acr,
/// `max_age=300` (over HTTP and over gRPC alike).
pub(crate) fn transfer_step_up(c: &BearerChallenge) -> Result<String, String> {
    if c.error != Some(ErrorCode::InsufficientUserAuthentication) {
        return Err(format!(
            "error {:?}, expected insufficient_user_authentication",
            c.error
        ));
    }
    if !c.acr_values.iter().any(|a| a == MFA) {
        return Err(format!("acr_values {:?} lack {MFA}", c.acr_values));
    }
    if c.max_age != Some(300) {
        return Err(format!("max_age {:?}, expected 300", c.max_age));
    }
    Ok(format!(
        "parsed: error={}, acr_values={:?}, max_age={:?}",
        c.error.as_ref().map_or("", ErrorCode::as_str),
        c.acr_values,
        c.max_age
    ))
}
