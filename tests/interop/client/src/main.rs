//! Interop client: drives the bank demo against an independent OpenID provider (npm
//! `oidc-provider`, started by `tests/interop/run.sh`) and prints one line per check, then
//! `N passed, M failed`. Exit code 1 when any check failed, 2 on bad arguments.
//!
//! ```text
//! interop-client --bank http://127.0.0.1:P --issuer http://127.0.0.1:Q --phase main     --state FILE
//! interop-client --bank http://127.0.0.1:P --issuer http://127.0.0.1:Q --phase rotation --state FILE
//! ```
//!
//! `main`: tokens signed with RS256, ES256, EdDSA and Ed25519 (RFC 9864), the whole RFC 9470 loop (the challenge is
//! read with `stepup_tower::challenge::BearerChallenge`), an ID token and a token for another
//! audience refused. It writes the key ids it saw and the balance to the state file.
//! `rotation` (after the provider was restarted with new keys, the demo left running): the new
//! keys share no `kid` with the old ones, tokens signed with them pass, the demo kept its state
//! (so it was not restarted), and the RFC 9470 loop works again.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode, Url};
use serde_json::{Value, json};
use stepup_tower::challenge::{BearerChallenge, ErrorCode};

/// The multi-factor acr the demo's transfer route asks for.
const MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
/// Redirect URI registered for the test clients in `provider.mjs`; nobody serves it.
const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";
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
/// The transfer every step-up check sends.
const TRANSFER_BODY: &str = r#"{"to":"DE89370400440532013000","amount":"1.00"}"#;

type Res<T> = Result<T, String>;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("interop-client: {e}");
            eprintln!("usage: interop-client --bank URL --issuer URL --phase main|rotation --state FILE");
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

/// A user agent's cookie jar, reduced to what the provider's interaction needs: every cookie
/// goes back on every request to the provider (paths and expiry are not tracked).
#[derive(Debug, Default)]
struct Browser {
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, res: &Response) {
        for value in res.headers().get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let name = name.trim();
            let value = value.trim();
            // oidc-provider clears a cookie by sending it empty with an expiry in the past.
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
    }
}

/// Token endpoint answer.
#[derive(Debug, Clone)]
struct Tokens {
    access_token: String,
    id_token: Option<String>,
}

/// The provider's endpoints, from discovery.
#[derive(Debug, Clone)]
struct Endpoints {
    authorization: String,
    token: String,
    jwks: String,
}

struct Run {
    args: Args,
    http: Client,
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
        Ok(Self {
            args,
            http,
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
        let endpoints = match self.discover().await {
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
        let kids = self.jwks_kids(&endpoints).await;
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
                .password_token_passes(&endpoints, &mut browser, client_id, alg)
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
        let outcome = match (&kids, balance_after) {
            (Ok(kids), Some(balance)) => {
                let state = json!({ "kids": kids, "balance": balance, "old_token": old_token });
                std::fs::write(&self.args.state, state.to_string())
                    .map(|()| format!("kids {} and balance {balance} saved", kids.join(" ")))
                    .map_err(|e| format!("{}: {e}", self.args.state))
            }
            (Err(e), _) => Err(format!("provider JWKS: {e}")),
            (_, None) => Err("no balance after the transfer to hand over".into()),
        };
        self.check("state for the rotation phase written", outcome);
    }

    async fn phase_rotation(&mut self) {
        let health = self.healthz().await;
        self.check("demo still up (GET /healthz)", health);
        let state = std::fs::read_to_string(&self.args.state)
            .map_err(|e| format!("{}: {e}", self.args.state))
            .and_then(|s| serde_json::from_str::<Value>(&s).map_err(|e| format!("state file: {e}")));
        let old_kids: Vec<String> = state
            .as_ref()
            .ok()
            .and_then(|s| s.get("kids"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let old_balance = state
            .as_ref()
            .ok()
            .and_then(|s| s.get("balance"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let endpoints = match self.discover().await {
            Ok(e) => {
                self.check("restarted provider discovery", Ok(format!("jwks_uri {}", e.jwks)));
                e
            }
            Err(e) => {
                self.check("restarted provider discovery", Err(e));
                return;
            }
        };
        let new_kids = self.jwks_kids(&endpoints).await;
        let outcome = match (&state, &new_kids) {
            (Err(e), _) => Err(e.clone()),
            (_, Err(e)) => Err(e.clone()),
            (Ok(_), Ok(new)) if old_kids.is_empty() => Err(format!("no old kids saved; new: {new:?}")),
            (Ok(_), Ok(new)) => match new.iter().find(|k| old_kids.contains(k)) {
                Some(k) => Err(format!("kid {k} is in both key sets: the keys were not rotated")),
                None => Ok(format!("old {} -> new {}", old_kids.join(" "), new.join(" "))),
            },
        };
        self.check("provider restarted with new keys (no kid in common)", outcome);

        let mut browser = Browser::default();
        let mut first = None;
        for (client_id, alg) in CLIENTS {
            let name =
                format!("after rotation, {alg} access token (client {client_id}): GET /api/balance 200, same demo");
            let outcome = self
                .password_token_passes(&endpoints, &mut browser, client_id, alg)
                .await
                .and_then(|(detail, tokens)| {
                    let kid = jwt_part(&tokens.access_token, 0)
                        .ok()
                        .and_then(|h| h.get("kid").and_then(Value::as_str).map(str::to_string))
                        .unwrap_or_default();
                    match &new_kids {
                        Ok(new) if new.contains(&kid) => {}
                        _ => return Err(format!("kid {kid:?} is not one of the restarted provider's")),
                    }
                    Ok((detail, tokens))
                });
            let outcome = match outcome {
                Ok((detail, tokens)) => {
                    if first.is_none() {
                        first = Some(tokens);
                    }
                    // The ledger lives in the demo's memory: the same balance proves the demo
                    // was not restarted.
                    match &old_balance {
                        Some(b) if detail.contains(&format!("balance {b} ")) => Ok(detail),
                        Some(b) => Err(format!("{detail}; expected balance {b} from before the rotation")),
                        None => Err(format!("{detail}; no balance saved by the main phase")),
                    }
                }
                Err(e) => Err(e),
            };
            self.check(&name, outcome);
        }
        // A token signed with a key the restarted provider no longer publishes: the demo
        // refetched the key set for the new kids, so the old key (and any cached
        // verification made with it) must be gone.
        let old_token = state
            .as_ref()
            .ok()
            .and_then(|s| s.get("old_token"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let outcome = match old_token {
            Some(t) => self.refused_as_invalid_token(&t, "kid", "of a removed key").await,
            None => Err("no old token saved by the main phase".into()),
        };
        self.check(
            "after rotation, a token signed with a removed key (verified and cached before): 401 invalid_token",
            outcome,
        );

        match first {
            Some(tokens) => {
                let rs256 = CLIENTS.first().map(|c| c.0).unwrap_or("interop-rs256");
                self.step_up_loop(&endpoints, &mut browser, rs256, &tokens.access_token)
                    .await;
            }
            None => {
                self.check(
                    "after rotation, RFC 9470 step-up loop",
                    Err("no token from the restarted provider".into()),
                );
            }
        }
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

    async fn discover(&self) -> Res<Endpoints> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.args.issuer.trim_end_matches('/')
        );
        let doc = self.get_json(&url).await?;
        let field = |name: &str| {
            doc.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("discovery document has no {name}"))
        };
        if field("issuer")? != self.args.issuer {
            return Err(format!("issuer {:?} != {:?}", field("issuer")?, self.args.issuer));
        }
        let acrs = doc.get("acr_values_supported").and_then(Value::as_array);
        if !acrs.is_some_and(|a| a.iter().any(|v| v == MFA)) {
            return Err(format!("acr_values_supported lacks {MFA}: {acrs:?}"));
        }
        Ok(Endpoints {
            authorization: field("authorization_endpoint")?,
            token: field("token_endpoint")?,
            jwks: field("jwks_uri")?,
        })
    }

    async fn get_json(&self, url: &str) -> Res<Value> {
        let res = self.http.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = res.status();
        let body = res.text().await.map_err(|e| format!("{url}: {e}"))?;
        if status != StatusCode::OK {
            return Err(format!("{url} -> {status}: {}", excerpt(&body)));
        }
        serde_json::from_str(&body).map_err(|e| format!("{url}: not JSON: {e}"))
    }

    async fn jwks_kids(&self, endpoints: &Endpoints) -> Res<Vec<String>> {
        let jwks = self.get_json(&endpoints.jwks).await?;
        let kids: Vec<String> = jwks
            .get("keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.get("kid").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if kids.is_empty() {
            Err(format!("{}: no keys with a kid", endpoints.jwks))
        } else {
            Ok(kids)
        }
    }

    /// Authorization code + PKCE through the provider's auto-completing interaction, then the
    /// token request. `acr_values`/`max_age` go into the authorization request when given.
    async fn authorize(
        &self,
        endpoints: &Endpoints,
        browser: &mut Browser,
        client_id: &str,
        resource: &str,
        acr_values: Option<&str>,
        max_age: Option<u64>,
    ) -> Res<Tokens> {
        let verifier = random_b64(32)?;
        let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            verifier.as_bytes(),
        ));
        let state = random_b64(16)?;
        let nonce = random_b64(16)?;
        let mut url = Url::parse(&endpoints.authorization)
            .map_err(|e| format!("authorization_endpoint {}: {e}", endpoints.authorization))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", client_id)
                .append_pair("response_type", "code")
                .append_pair("scope", "openid accounts")
                .append_pair("redirect_uri", REDIRECT_URI)
                .append_pair("resource", resource)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", &state)
                .append_pair("nonce", &nonce);
            if let Some(acr) = acr_values {
                q.append_pair("acr_values", acr);
            }
            if let Some(max_age) = max_age {
                q.append_pair("max_age", &max_age.to_string());
            }
        }
        let mut hops = Vec::new();
        let mut code = None;
        for _ in 0..12 {
            let res = self
                .http
                .get(url.clone())
                .header(COOKIE, browser.cookie_header())
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            browser.keep(&res);
            let status = res.status();
            let location = res
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let Some(location) = location.filter(|_| status.is_redirection()) else {
                let body = res.text().await.unwrap_or_default();
                return Err(format!(
                    "GET {} -> {status} (after {}): {}",
                    url.path(),
                    hops.join(" -> "),
                    excerpt(&body)
                ));
            };
            url = url
                .join(&location)
                .map_err(|e| format!("bad Location {location:?}: {e}"))?;
            hops.push(format!("{} {}", status.as_u16(), url.path()));
            if url.as_str().starts_with(REDIRECT_URI) {
                let params: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
                if let Some(err) = params.get("error") {
                    return Err(format!(
                        "authorization error {err}: {}",
                        params.get("error_description").map_or("", String::as_str)
                    ));
                }
                if params.get("state") != Some(&state) {
                    return Err(format!("state mismatch in {url}"));
                }
                if params.get("iss") != Some(&self.args.issuer) {
                    return Err(format!("iss mismatch in {url} (RFC 9207)"));
                }
                code = params.get("code").cloned();
                break;
            }
        }
        let code = code.ok_or_else(|| format!("no code after {}", hops.join(" -> ")))?;

        let mut form = Url::parse("form:x").map_err(|e| e.to_string())?;
        form.query_pairs_mut()
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &code)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("client_id", client_id)
            .append_pair("code_verifier", &verifier)
            .append_pair("resource", resource);
        let body = form.query().unwrap_or_default().to_string();
        let res = self
            .http
            .post(&endpoints.token)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {}: {e}", endpoints.token))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| format!("token response: {e}"))?;
        if status != StatusCode::OK {
            return Err(format!("token endpoint -> {status}: {}", excerpt(&text)));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("token response: {e}"))?;
        let access_token = v
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or("token response has no access_token")?
            .to_string();
        let id_token = v.get("id_token").and_then(Value::as_str).map(str::to_string);
        if let Some(id) = &id_token {
            let claims = jwt_part(id, 1)?;
            if claims.get("nonce").and_then(Value::as_str) != Some(nonce.as_str()) {
                return Err("ID token nonce mismatch".into());
            }
        }
        Ok(Tokens { access_token, id_token })
    }

    /// Password-level (loa1) token from `client_id`; checks its header and that
    /// `GET /api/balance` accepts it. Returns a description including `balance X `.
    async fn password_token_passes(
        &self,
        endpoints: &Endpoints,
        browser: &mut Browser,
        client_id: &str,
        alg: &str,
    ) -> Res<(String, Tokens)> {
        let tokens = self
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
        let (status, body, _) = self.bank_get("/api/balance", &tokens.access_token).await?;
        if status != StatusCode::OK {
            return Err(format!("GET /api/balance -> {status}: {}", excerpt(&body)));
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("balance body: {e}"))?;
        let balance = v.get("balance").and_then(Value::as_str).unwrap_or_default();
        Ok((
            format!(
                "header alg {got_alg} kid {}, acr {}, balance {balance} EUR",
                header.get("kid").and_then(Value::as_str).unwrap_or("-"),
                claims.get("acr").and_then(Value::as_str).unwrap_or("-"),
            ),
            tokens,
        ))
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
        let prefix = if self.args.phase == Phase::Rotation {
            "after rotation, "
        } else {
            ""
        };
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
                "parsed: error={}, acr_values={:?}, max_age={:?}, realm={:?}",
                c.error.as_ref().map_or("", ErrorCode::as_str),
                c.acr_values,
                c.max_age,
                c.realm.as_deref().unwrap_or("")
            ))
        });
        let name = format!("{prefix}password-level token: POST /api/transfers 401 with RFC 9470 challenge");
        if !self.check(&name, outcome) {
            return None;
        }
        let challenge = challenge.ok()?;

        // b) Step up at the provider with what the challenge asked for.
        let acr_values = challenge.acr_values.join(" ");
        let stepped = self
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
                headers.get(reqwest::header::WWW_AUTHENTICATE)
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
        let metadata = self.get_json(&metadata_url).await?;
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

/// Decodes part `index` (0 header, 1 payload) of a compact JWS.
fn jwt_part(token: &str, index: usize) -> Res<Value> {
    let part = token
        .split('.')
        .nth(index)
        .ok_or_else(|| format!("not a compact JWS (part {index} missing)"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("JWS part {index}: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("JWS part {index}: {e}"))
}

fn random_b64(len: usize) -> Res<String> {
    let mut buf = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| "no randomness".to_string())?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn excerpt(s: &str) -> String {
    let s: String = s.chars().take(300).collect();
    s.replace('\n', " ")
}
