//! The `dpop` phase: DPoP-bound tokens (RFC 9449) from the provider, the RFC 9470 loop with
//! proofs against the demo, and the refusals of RFC 9449 §4.3 and §7.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stepup_tower::challenge::ErrorCode;

use crate::dpop::{DpopKey, challenges, dpop_challenge, error_of, schemes};
use crate::oidc::{AuthRequest, Browser, Code, Endpoints, TokenAnswer, Tokens, excerpt, jwt_part};
use crate::{BANK_RESOURCE, DPOP_CLIENT, MFA, Reply, Res, Run, TRANSFER_BODY, now};

/// The client's DPoP state: its key and the latest nonces the servers gave.
#[derive(Debug)]
pub(crate) struct DpopSession {
    key: DpopKey,
    /// The provider's latest `DPoP-Nonce` (RFC 9449 §8).
    provider_nonce: Option<String>,
    /// The demo's latest `DPoP-Nonce` (RFC 9449 §9), when it asks for nonces.
    bank_nonce: Option<String>,
}

/// A deliberately wrong proof, for the refusal checks.
#[derive(Debug, Clone, Copy)]
enum Spoil<'a> {
    /// `htu` of another resource.
    Htu(&'a str),
    /// `htm` of another method.
    Htm(&'a str),
    /// `ath` of another access token.
    Ath(&'a str),
    /// Signed with another key (not the one in `cnf.jkt`).
    Key(&'a DpopKey),
}

impl Run {
    pub(crate) async fn phase_dpop(&mut self) {
        let health = self.healthz().await;
        self.check("demo still up (GET /healthz)", health);
        let name = "DPoP: provider discovery lists ES256 in dpop_signing_alg_values_supported";
        let endpoints = match self.oidc.discover(MFA).await {
            Ok(e) if e.dpop_algs.iter().any(|a| a == "ES256") => {
                self.check(name, Ok(format!("{:?}", e.dpop_algs)));
                e
            }
            Ok(e) => {
                self.check(name, Err(format!("{:?}", e.dpop_algs)));
                return;
            }
            Err(e) => {
                self.check(name, Err(e));
                return;
            }
        };
        let mut session = match DpopKey::generate() {
            Ok(key) => DpopSession {
                key,
                provider_nonce: None,
                bank_nonce: None,
            },
            Err(e) => {
                self.check("DPoP: a P-256 key for the proofs", Err(e));
                return;
            }
        };
        let mut browser = Browser::default();

        // 1. A password-level DPoP-bound token.
        let Some(password) = self.first_dpop_token(&endpoints, &mut browser, &mut session).await else {
            return;
        };
        let outcome = self
            .bank_dpop(&mut session, Method::GET, "/api/balance", &password.access_token, None)
            .await
            .and_then(|((status, body, headers), _)| match status {
                StatusCode::OK => {
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    Ok(format!(
                        "200, balance {} EUR",
                        v.get("balance").and_then(Value::as_str).unwrap_or("-")
                    ))
                }
                _ => Err(unexpected(status, &body, &headers)),
            });
        self.check(
            "DPoP: bound token, Authorization: DPoP + proof (htm, htu, ath): GET /api/balance 200",
            outcome,
        );

        // 2. The RFC 9470 loop with proofs.
        let Some((stepped, transfer_proof)) = self
            .dpop_step_up(&endpoints, &mut browser, &mut session, &password.access_token)
            .await
        else {
            return;
        };
        let token = stepped.access_token.as_str();

        // 3. Refusals. The transfer request sent again, proof and all (RFC 9449 §11.1).
        let outcome = match self
            .bank_send(
                Method::POST,
                "/api/transfers",
                &format!("DPoP {token}"),
                Some(&transfer_proof),
            )
            .await
        {
            Ok(reply) => expect_dpop_error(&reply, &["invalid_dpop_proof"]),
            Err(e) => Err(e),
        };
        self.check(
            "DPoP: the transfer's proof sent again (replay): 401 DPoP error=invalid_dpop_proof",
            outcome,
        );

        // RFC 9449 §7.2: a bound token presented as a Bearer token is refused.
        let outcome = match self
            .bank_send(Method::GET, "/api/balance", &format!("Bearer {token}"), None)
            .await
        {
            Ok(reply) => expect_invalid_token(&reply),
            Err(e) => Err(e),
        };
        self.check(
            "DPoP: bound token as Authorization: Bearer (no downgrade): 401 invalid_token",
            outcome,
        );

        // RFC 9449 §4.3: htu, htm, ath and the key must match the request and the token.
        let transfers_url = format!("{}/api/transfers", self.args.bank);
        let other_key = DpopKey::generate();
        let cases = [
            (
                Spoil::Htu(&transfers_url),
                "DPoP: proof for another URL (htu .../api/transfers on GET /api/balance): 401 DPoP error=invalid_dpop_proof",
            ),
            (
                Spoil::Htm("POST"),
                "DPoP: proof for another method (htm POST on GET /api/balance): 401 DPoP error=invalid_dpop_proof",
            ),
            (
                Spoil::Ath(&password.access_token),
                "DPoP: proof for another access token (ath of the password-level token): 401 DPoP error=invalid_dpop_proof",
            ),
        ];
        for (spoil, name) in cases {
            let outcome = match self
                .bank_dpop(&mut session, Method::GET, "/api/balance", token, Some(spoil))
                .await
            {
                Ok((reply, _)) => expect_dpop_error(&reply, &["invalid_dpop_proof"]),
                Err(e) => Err(e),
            };
            self.check(name, outcome);
        }
        // RFC 9449 §7.1 leaves the code of a key that is not the token's open.
        let name =
            "DPoP: proof signed by another key (not cnf.jkt): 401 DPoP error=invalid_dpop_proof or invalid_token";
        let outcome = match &other_key {
            Ok(other) => match self
                .bank_dpop(
                    &mut session,
                    Method::GET,
                    "/api/balance",
                    token,
                    Some(Spoil::Key(other)),
                )
                .await
            {
                Ok((reply, _)) => expect_dpop_error(&reply, &["invalid_dpop_proof", "invalid_token"]),
                Err(e) => Err(e),
            },
            Err(e) => Err(e.clone()),
        };
        self.check(name, outcome);
    }

    /// The first DPoP-bound token, step by step: the authorization request with `dpop_jkt`; the
    /// token request without a proof (refused: the client has `dpop_bound_access_tokens`, and
    /// the code is not spent), with a proof but no nonce (`use_dpop_nonce`, RFC 9449 §8), and
    /// with the nonce (a bound token).
    async fn first_dpop_token(
        &mut self,
        endpoints: &Endpoints,
        browser: &mut Browser,
        session: &mut DpopSession,
    ) -> Option<Tokens> {
        let request = AuthRequest {
            client_id: DPOP_CLIENT,
            resource: BANK_RESOURCE,
            acr_values: None,
            max_age: None,
            dpop_jkt: Some(session.key.thumbprint()),
        };
        let code = match self.oidc.authorization_code(endpoints, browser, &request).await {
            Ok(c) => c,
            Err(e) => {
                self.check("DPoP: authorization request with dpop_jkt (RFC 9449 §10)", Err(e));
                return None;
            }
        };

        let outcome = match self.oidc.token_request(endpoints, &code, None).await {
            Ok(a) if a.status == StatusCode::BAD_REQUEST && a.error().as_deref() == Some("invalid_grant") => {
                Ok(format!("400 {}", excerpt(&a.body)))
            }
            Ok(a) => Err(format!("{}: {}", a.status, excerpt(&a.body))),
            Err(e) => Err(e),
        };
        self.check(
            "DPoP: token request without a proof (client with dpop_bound_access_tokens): 400 invalid_grant",
            outcome,
        );

        let proof = match session.key.proof("POST", &endpoints.token, None, None) {
            Ok(p) => p,
            Err(e) => {
                self.check("DPoP: a proof for the token request", Err(e));
                return None;
            }
        };
        let name =
            "DPoP: token request with a proof but no nonce: 400 use_dpop_nonce with a DPoP-Nonce header (RFC 9449 §8)";
        let answer = match self.oidc.token_request(endpoints, &code, Some(&proof)).await {
            Ok(a) if a.status == StatusCode::BAD_REQUEST && a.error().as_deref() == Some("use_dpop_nonce") => {
                match &a.dpop_nonce {
                    Some(nonce) => {
                        self.check(
                            name,
                            Ok(format!("400 use_dpop_nonce, DPoP-Nonce of {} chars", nonce.len())),
                        );
                        session.provider_nonce = Some(nonce.clone());
                        self.redeem_dpop(endpoints, session, &code).await
                    }
                    None => {
                        self.check(
                            name,
                            Err(format!("400 without a DPoP-Nonce header: {}", excerpt(&a.body))),
                        );
                        return None;
                    }
                }
            }
            Ok(a) => {
                self.check(name, Err(format!("{}: {}", a.status, excerpt(&a.body))));
                Ok(a)
            }
            Err(e) => Err(e),
        };
        let outcome = answer
            .and_then(|a| a.tokens(&code))
            .and_then(|t| bound_token(&t, &session.key, "loa1").map(|detail| (detail, t)));
        let name = "DPoP: token request with a proof and the nonce: 200 token_type DPoP, cnf.jkt = RFC 7638 thumbprint of our key";
        match outcome {
            Ok((detail, t)) => {
                self.check(name, Ok(detail));
                Some(t)
            }
            Err(e) => {
                self.check(name, Err(e));
                None
            }
        }
    }

    /// The RFC 9470 loop with DPoP: the transfer with the password-level token gets a `DPoP`
    /// challenge; a new authorization request with its `acr_values` and `max_age` gives a new
    /// bound token; the transfer with it succeeds. Returns that token and the transfer's proof.
    async fn dpop_step_up(
        &mut self,
        endpoints: &Endpoints,
        browser: &mut Browser,
        session: &mut DpopSession,
        password_token: &str,
    ) -> Option<(Tokens, String)> {
        // a) The challenge.
        let challenge = self
            .bank_dpop(session, Method::POST, "/api/transfers", password_token, None)
            .await
            .and_then(|((status, body, headers), _)| {
                if status != StatusCode::UNAUTHORIZED {
                    return Err(unexpected(status, &body, &headers));
                }
                let c = dpop_challenge(&headers)?
                    .ok_or_else(|| format!("401 without a DPoP challenge ({})", schemes(&headers)))?;
                if c.error != Some(ErrorCode::InsufficientUserAuthentication) {
                    return Err(format!(
                        "error {:?}, expected insufficient_user_authentication ({})",
                        error_of(&c),
                        schemes(&headers)
                    ));
                }
                if !c.acr_values.iter().any(|a| a == MFA) {
                    return Err(format!("acr_values {:?} lack {MFA}", c.acr_values));
                }
                if c.max_age != Some(300) {
                    return Err(format!("max_age {:?}, expected 300", c.max_age));
                }
                let detail = format!(
                    "challenges {}; DPoP: error={}, acr_values={:?}, max_age={:?}, algs={:?}",
                    schemes(&headers),
                    error_of(&c),
                    c.acr_values,
                    c.max_age,
                    c.algs.join(" ")
                );
                Ok((detail, c))
            });
        let name = "DPoP: password-level bound token: POST /api/transfers 401 DPoP error=insufficient_user_authentication with acr_values, max_age";
        let challenge = match challenge {
            Ok((detail, c)) => {
                self.check(name, Ok(detail));
                c
            }
            Err(e) => {
                self.check(name, Err(e));
                return None;
            }
        };

        // b) Step up at the provider with what the challenge asked for, with a proof again.
        let acr_values = challenge.acr_values.join(" ");
        let request = AuthRequest {
            client_id: DPOP_CLIENT,
            resource: BANK_RESOURCE,
            acr_values: Some(&acr_values),
            max_age: challenge.max_age,
            dpop_jkt: Some(session.key.thumbprint()),
        };
        let outcome = match self.oidc.authorization_code(endpoints, browser, &request).await {
            Ok(code) => self
                .redeem_dpop(endpoints, session, &code)
                .await
                .and_then(|a| a.tokens(&code)),
            Err(e) => Err(e),
        }
        .and_then(|t| {
            let detail = bound_token(&t, &session.key, MFA)?;
            let claims = jwt_part(&t.access_token, 1)?;
            let auth_time = claims.get("auth_time").and_then(Value::as_u64).unwrap_or(0);
            let age = now().saturating_sub(auth_time);
            if age > 60 {
                return Err(format!("new token auth_time is {age} s old"));
            }
            Ok((
                format!(
                    "acr_values={acr_values:?} max_age={:?} -> {detail}, auth_time {age} s ago",
                    challenge.max_age
                ),
                t,
            ))
        });
        let name = "DPoP: step-up authorization request with the challenge's acr_values and max_age: new bound token";
        let stepped = match outcome {
            Ok((detail, t)) => {
                self.check(name, Ok(detail));
                t
            }
            Err(e) => {
                self.check(name, Err(e));
                return None;
            }
        };

        // c) The transfer goes through.
        let result = self
            .bank_dpop(session, Method::POST, "/api/transfers", &stepped.access_token, None)
            .await;
        let name = "DPoP: stepped-up bound token + fresh proof: POST /api/transfers 201";
        match result {
            Ok(((StatusCode::CREATED, body, _), proof)) => {
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let balance = v.get("balance").and_then(Value::as_str).unwrap_or("-");
                self.check(name, Ok(format!("201, balance now {balance} EUR")));
                Some((stepped, proof))
            }
            Ok(((status, body, headers), _)) => {
                self.check(name, Err(unexpected(status, &body, &headers)));
                None
            }
            Err(e) => {
                self.check(name, Err(e));
                None
            }
        }
    }

    /// The token request for `code` with a proof carrying the provider's latest nonce; a
    /// `use_dpop_nonce` answer with a new `DPoP-Nonce` is retried once (RFC 9449 §8).
    async fn redeem_dpop(&self, endpoints: &Endpoints, session: &mut DpopSession, code: &Code) -> Res<TokenAnswer> {
        let mut retried = false;
        loop {
            let proof = session
                .key
                .proof("POST", &endpoints.token, None, session.provider_nonce.as_deref())?;
            let answer = self.oidc.token_request(endpoints, code, Some(&proof)).await?;
            if let Some(nonce) = &answer.dpop_nonce {
                session.provider_nonce = Some(nonce.clone());
            }
            let wants_nonce = answer.status == StatusCode::BAD_REQUEST
                && answer.error().as_deref() == Some("use_dpop_nonce")
                && answer.dpop_nonce.is_some();
            if !wants_nonce || retried {
                return Ok(answer);
            }
            retried = true;
        }
    }

    /// A request to the demo with `Authorization: DPoP <token>` and a fresh proof for it
    /// (spoiled when asked to); a `use_dpop_nonce` answer with a `DPoP-Nonce` header is
    /// retried once with the nonce (RFC 9449 §9). Returns the reply and the last proof sent.
    async fn bank_dpop(
        &self,
        session: &mut DpopSession,
        method: Method,
        path: &str,
        token: &str,
        spoil: Option<Spoil<'_>>,
    ) -> Res<(Reply, String)> {
        let url = format!("{}{path}", self.args.bank);
        let mut retried = false;
        loop {
            let nonce = session.bank_nonce.as_deref();
            let proof = match spoil {
                None => session.key.proof(method.as_str(), &url, Some(token), nonce)?,
                Some(Spoil::Htu(other)) => session.key.proof(method.as_str(), other, Some(token), nonce)?,
                Some(Spoil::Htm(other)) => session.key.proof(other, &url, Some(token), nonce)?,
                Some(Spoil::Ath(other)) => session.key.proof(method.as_str(), &url, Some(other), nonce)?,
                Some(Spoil::Key(other)) => other.proof(method.as_str(), &url, Some(token), nonce)?,
            };
            let reply = self
                .bank_send(method.clone(), path, &format!("DPoP {token}"), Some(&proof))
                .await?;
            let new_nonce = reply
                .2
                .get("DPoP-Nonce")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let wants_nonce = reply.0 == StatusCode::UNAUTHORIZED
                && new_nonce.is_some()
                && dpop_challenge(&reply.2)
                    .ok()
                    .flatten()
                    .is_some_and(|c| error_of(&c) == "use_dpop_nonce");
            if new_nonce.is_some() {
                session.bank_nonce = new_nonce;
            }
            if !wants_nonce || retried {
                return Ok((reply, proof));
            }
            retried = true;
        }
    }

    /// One request to the demo with the given `Authorization` and `DPoP` headers (a POST
    /// carries [`TRANSFER_BODY`]).
    pub(crate) async fn bank_send(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        proof: Option<&str>,
    ) -> Res<Reply> {
        let url = format!("{}{path}", self.args.bank);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header(AUTHORIZATION, authorization);
        if let Some(proof) = proof {
            req = req.header("DPoP", proof);
        }
        if method == Method::POST {
            req = req.header(CONTENT_TYPE, "application/json").body(TRANSFER_BODY);
        }
        let res = req.send().await.map_err(|e| format!("{method} {url}: {e}"))?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.text().await.map_err(|e| format!("{method} {url}: {e}"))?;
        Ok((status, body, headers))
    }
}

/// Checks a token response of a DPoP token request: `token_type` DPoP (RFC 9449 §5), an
/// RFC 9068 token for `bank-api` with `acr` `acr` and `cnf.jkt` the thumbprint of `key`
/// (RFC 9449 §6.1).
fn bound_token(tokens: &Tokens, key: &DpopKey, acr: &str) -> Res<String> {
    // RFC 6749 §7.1: the token type is case-insensitive.
    if !tokens.token_type.eq_ignore_ascii_case("DPoP") {
        return Err(format!("token_type {:?}, expected DPoP", tokens.token_type));
    }
    let header = jwt_part(&tokens.access_token, 0)?;
    let claims = jwt_part(&tokens.access_token, 1)?;
    if header.get("typ").and_then(Value::as_str) != Some("at+jwt") {
        return Err(format!("token header typ is not at+jwt: {header}"));
    }
    if claims.get("aud") != Some(&json!("bank-api")) {
        return Err(format!("token aud is not bank-api: {claims}"));
    }
    let got_acr = claims.get("acr").and_then(Value::as_str).unwrap_or_default();
    if got_acr != acr {
        return Err(format!("token acr {got_acr:?}, expected {acr:?}"));
    }
    let jkt = claims
        .get("cnf")
        .and_then(|c| c.get("jkt"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the token has no cnf.jkt: cnf {:?}", claims.get("cnf")))?;
    if jkt != key.thumbprint() {
        return Err(format!("cnf.jkt {jkt}, our key's thumbprint {}", key.thumbprint()));
    }
    Ok(format!(
        "token_type {}, alg {}, acr {got_acr}, cnf.jkt {jkt}",
        tokens.token_type,
        header.get("alg").and_then(Value::as_str).unwrap_or("-")
    ))
}

/// A 401 whose `DPoP` challenge has one of the `expected` error codes.
fn expect_dpop_error(reply: &Reply, expected: &[&str]) -> Res<String> {
    let (status, body, headers) = reply;
    if *status != StatusCode::UNAUTHORIZED {
        return Err(unexpected(*status, body, headers));
    }
    let c = dpop_challenge(headers)?.ok_or_else(|| format!("401 without a DPoP challenge ({})", schemes(headers)))?;
    if !expected.contains(&error_of(&c)) {
        return Err(format!(
            "DPoP error {:?}, expected {} ({})",
            error_of(&c),
            expected.join(" or "),
            schemes(headers)
        ));
    }
    Ok(format!(
        "401, challenges {}; DPoP error={}, error_description={:?}",
        schemes(headers),
        error_of(&c),
        c.error_description.as_deref().unwrap_or("")
    ))
}

/// A 401 with `error="invalid_token"` in one of its challenges (whichever scheme).
fn expect_invalid_token(reply: &Reply) -> Res<String> {
    let (status, body, headers) = reply;
    if *status != StatusCode::UNAUTHORIZED {
        return Err(unexpected(*status, body, headers));
    }
    let all = challenges(headers)?;
    let with_error: Vec<String> = all
        .iter()
        .filter_map(|c| c.param("error").map(|e| format!("{} error={e}", c.scheme)))
        .collect();
    match all.iter().find(|c| c.param("error") == Some("invalid_token")) {
        Some(c) => Ok(format!(
            "401, challenges {}; {} error=invalid_token, error_description={:?}",
            schemes(headers),
            c.scheme,
            c.param("error_description").unwrap_or("")
        )),
        None => Err(format!(
            "401 without error=invalid_token: {} ({})",
            with_error.join(", "),
            schemes(headers)
        )),
    }
}

/// An unexpected answer of the demo, for check lines.
fn unexpected(status: StatusCode, body: &str, headers: &reqwest::header::HeaderMap) -> String {
    let challenges: Vec<&str> = headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    format!("{status}: {} (WWW-Authenticate {challenges:?})", excerpt(body))
}
