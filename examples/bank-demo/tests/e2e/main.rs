//! The bank demo and its embedded provider end to end, over real HTTP on 127.0.0.1: login with
//! password, balance, transfer → RFC 9470 challenge → step-up with TOTP only → transfer 201.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod login;
mod metrics;
mod replicas;

use std::sync::Arc;

use bank_demo::{Bank, Config};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dev_provider::{MFA_ACR, Provider};
use login::{Site, User, config, enc, now, query, redirect_to};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use stepup_tower::challenge::{BearerChallenge, ErrorCode};

struct Demo {
    base: String,
    provider: Provider,
    ledger: Arc<bank_demo::ledger::Ledger>,
    http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

async fn start() -> Demo {
    start_with(config()).await.0
}

async fn start_with(config: Config) -> (Demo, stepup_tower::StepUp) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let Bank {
        router,
        provider,
        ledger,
        auth,
        ..
    } = bank_demo::build(&config, &base).await.unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let demo = Demo {
        base,
        provider: provider.unwrap(),
        ledger,
        http,
        _server: server,
    };
    (demo, auth)
}

impl Site for Demo {
    fn base(&self) -> &str {
        &self.base
    }
    fn http(&self) -> &reqwest::Client {
        &self.http
    }
    fn provider(&self) -> &Provider {
        &self.provider
    }
}

struct ApiAnswer {
    status: StatusCode,
    challenge: Option<BearerChallenge>,
    body: Value,
}

async fn api(demo: &Demo, method: &str, path: &str, token: &str, body: Option<Value>, key: Option<&str>) -> ApiAnswer {
    let url = format!("{}{path}", demo.base);
    let mut r = match method {
        "GET" => demo.http.get(url),
        _ => demo.http.post(url),
    }
    .header(AUTHORIZATION, format!("Bearer {token}"));
    if let Some(b) = body {
        r = r.header(CONTENT_TYPE, "application/json").body(b.to_string());
    }
    if let Some(k) = key {
        r = r.header("idempotency-key", k);
    }
    let res = r.send().await.unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| BearerChallenge::parse(v.to_str().unwrap()).unwrap().unwrap());
    let body = serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null);
    ApiAnswer {
        status,
        challenge,
        body,
    }
}

const EXTERNAL: &str = "DE89370400440532013000";

#[tokio::test]
async fn password_login_balance_step_up_with_totp_only_then_transfer() {
    let demo = start().await;
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    let (tokens, pages) = alice.authorize(&[]).await;
    assert_eq!(pages, ["login"]);
    let at = tokens["access_token"].as_str().unwrap().to_string();

    let a = api(&demo, "GET", "/api/balance", &at, None, None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["balance"], "1000.00");
    assert_eq!(a.body["currency"], "EUR");

    let transfer = json!({"to": EXTERNAL, "amount": "25.00"});
    let a = api(&demo, "POST", "/api/transfers", &at, Some(transfer.clone()), None).await;
    assert_eq!(a.status, 401);
    let c = a.challenge.unwrap();
    assert_eq!(c.error, Some(ErrorCode::InsufficientUserAuthentication));
    assert_eq!(c.acr_values, vec![MFA_ACR.to_string()]);
    assert_eq!(c.max_age, Some(300));
    assert_eq!(
        c.resource_metadata,
        Some(format!("{}/.well-known/oauth-protected-resource", demo.base))
    );

    // Step up with what the challenge asked: only the second factor is prompted.
    let (tokens, pages) = alice
        .authorize(&[
            ("acr_values", c.acr_values.join(" ")),
            ("max_age", c.max_age.unwrap().to_string()),
        ])
        .await;
    assert_eq!(pages, ["mfa"]);
    let mfa_at = tokens["access_token"].as_str().unwrap().to_string();
    let a = api(&demo, "POST", "/api/transfers", &mfa_at, Some(transfer), Some("k-1")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["balance"], "975.00");
    assert_eq!(a.body["transfer"]["to"], EXTERNAL);
    let h = api(&demo, "GET", "/api/transfers", &mfa_at, None, None).await;
    assert_eq!(h.body["transfers"].as_array().unwrap().len(), 1);
    // The ID token is not an access token.
    let id = tokens["id_token"].as_str().unwrap();
    let a = api(&demo, "GET", "/api/balance", id, None, None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.challenge.unwrap().error, Some(ErrorCode::InvalidToken));
}

#[tokio::test]
async fn stale_auth_time_gets_max_age_challenge() {
    let demo = start().await;
    let old = demo
        .provider
        .mint_access_token("alice", MFA_ACR, &["pwd", "otp"], now() as i64 - 3600);
    let a = api(
        &demo,
        "POST",
        "/api/transfers",
        &old,
        Some(json!({"to": EXTERNAL, "amount": "1.00"})),
        None,
    )
    .await;
    assert_eq!(a.status, 401);
    let c = a.challenge.unwrap();
    assert!(c.is_step_up());
    assert_eq!(c.max_age, Some(300));
    assert_eq!(demo.ledger.balance("alice").unwrap().1, "1000.00");
    let fresh = demo
        .provider
        .mint_access_token("alice", MFA_ACR, &["pwd", "otp"], now() as i64);
    let a = api(
        &demo,
        "POST",
        "/api/transfers",
        &fresh,
        Some(json!({"to": EXTERNAL, "amount": "1.00"})),
        None,
    )
    .await;
    assert_eq!(a.status, 201);
}

#[tokio::test]
async fn bad_transfer_input_names_the_field_and_changes_nothing() {
    let demo = start().await;
    let t = demo
        .provider
        .mint_access_token("alice", MFA_ACR, &["pwd", "otp"], now() as i64);
    let alice_iban = demo.ledger.balance("alice").unwrap().0;
    let cases: Vec<(Value, u16, Option<&str>)> = vec![
        (json!({"to": EXTERNAL, "amount": "-5.00"}), 422, Some("amount")),
        (json!({"to": EXTERNAL, "amount": "0"}), 422, Some("amount")),
        (json!({"to": EXTERNAL, "amount": "abc"}), 422, Some("amount")),
        (json!({"to": EXTERNAL, "amount": "1.001"}), 422, Some("amount")),
        (json!({"to": EXTERNAL, "amount": 25}), 422, Some("amount")),
        (json!({"to": EXTERNAL, "amount": "5000.00"}), 422, Some("amount")),
        (json!({"to": EXTERNAL}), 422, Some("amount")),
        (json!({"amount": "1.00"}), 422, Some("to")),
        (json!({"to": "DE00123", "amount": "1.00"}), 422, Some("to")),
        (json!({"to": alice_iban, "amount": "1.00"}), 422, Some("to")),
        (
            json!({"to": EXTERNAL, "amount": "1.00", "memo": "x"}),
            422,
            Some("memo"),
        ),
        (json!([1, 2]), 400, None),
    ];
    for (body, status, field) in cases {
        let a = api(&demo, "POST", "/api/transfers", &t, Some(body.clone()), None).await;
        assert_eq!(a.status.as_u16(), status, "{body}: {}", a.body);
        assert!(a.body["error"].is_string(), "{body}");
        assert_eq!(a.body["field"].as_str(), field, "{body}");
    }
    // Malformed JSON.
    let res = demo
        .http
        .post(format!("{}/api/transfers", demo.base))
        .header(AUTHORIZATION, format!("Bearer {t}"))
        .header(CONTENT_TYPE, "application/json")
        .body("{\"to\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(demo.ledger.balance("alice").unwrap().1, "1000.00");
    assert_eq!(demo.ledger.history("alice").unwrap().len(), 0);
}

#[tokio::test]
async fn idempotency_key_makes_a_retry_happen_once() {
    let demo = start().await;
    let t = demo
        .provider
        .mint_access_token("alice", MFA_ACR, &["pwd", "otp"], now() as i64);
    let body = json!({"to": EXTERNAL, "amount": "10.00"});
    let a = api(
        &demo,
        "POST",
        "/api/transfers",
        &t,
        Some(body.clone()),
        Some("retry-me"),
    )
    .await;
    let b = api(&demo, "POST", "/api/transfers", &t, Some(body), Some("retry-me")).await;
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (201, 201));
    assert_eq!(a.body, b.body);
    assert_eq!(demo.ledger.balance("alice").unwrap().1, "990.00");
    let c = api(
        &demo,
        "POST",
        "/api/transfers",
        &t,
        Some(json!({"to": EXTERNAL, "amount": "11.00"})),
        Some("retry-me"),
    )
    .await;
    assert_eq!(c.status, 409);
}

#[tokio::test]
async fn concurrent_transfers_never_lose_money() {
    let demo = Arc::new(start().await);
    let total = demo.ledger.total_cents();
    let alice = demo
        .provider
        .mint_access_token("alice", MFA_ACR, &["pwd", "otp"], now() as i64);
    let bob = demo
        .provider
        .mint_access_token("bob", MFA_ACR, &["pwd", "otp"], now() as i64);
    let (alice_iban, bob_iban) = (
        demo.ledger.balance("alice").unwrap().0,
        demo.ledger.balance("bob").unwrap().0,
    );
    let mut tasks = Vec::new();
    for i in 0..200 {
        let demo = demo.clone();
        let (token, to) = match i % 3 {
            0 => (alice.clone(), bob_iban.clone()),
            1 => (bob.clone(), alice_iban.clone()),
            _ => (alice.clone(), EXTERNAL.to_string()),
        };
        tasks.push(tokio::spawn(async move {
            api(
                &demo,
                "POST",
                "/api/transfers",
                &token,
                Some(json!({"to": to, "amount": "7.31"})),
                None,
            )
            .await
            .status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 201 || s == 422, "{s}");
        ok += usize::from(s == 201);
    }
    assert!(ok > 100);
    assert_eq!(demo.ledger.total_cents(), total, "money created or destroyed");
}

#[tokio::test]
async fn unknown_sub_gets_an_account_and_provider_refuses_bad_requests() {
    let demo = start().await;
    let t = demo
        .provider
        .mint_access_token("carol@external", "loa1", &["pwd"], now() as i64);
    let a = api(&demo, "GET", "/api/balance", &t, None, None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["balance"], "1000.00");

    let mut alice = User::new(&demo, "alice", "wrong");
    let q = format!(
        "response_type=code&client_id=bank-spa&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=s",
        enc(&format!("{}/", demo.base)),
        URL_SAFE_NO_PAD.encode([1u8; 32])
    );
    // Wrong password: the login page again, 401, no session.
    let loc = redirect_to(&alice.get(&format!("{}/idp/authorize?{q}", demo.base)).await);
    let req = query(&loc)["req"].clone();
    let res = alice
        .post_form(
            &format!("{}/idp/login", demo.base),
            &[("req", &req), ("username", "alice"), ("password", "nope")],
        )
        .await;
    assert_eq!(res.status(), 401);
    assert!(
        !alice.has_cookie("dev_idp_session"),
        "no session after a wrong password"
    );
    // Unknown client, unregistered redirect: an error page, never a redirect.
    for bad in [
        q.replace("client_id=bank-spa", "client_id=evil"),
        q.replace(&enc(&format!("{}/", demo.base)), &enc("https://evil.example/")),
    ] {
        let res = alice.get(&format!("{}/idp/authorize?{bad}", demo.base)).await;
        assert_eq!(res.status(), 400);
        assert!(res.headers().get(LOCATION).is_none());
    }
    // No PKCE: an OAuth error back to the client.
    let res = alice
        .get(&format!(
            "{}/idp/authorize?{}",
            demo.base,
            q.replace("code_challenge_method=S256", "code_challenge_method=plain")
        ))
        .await;
    assert!(redirect_to(&res).contains("error=invalid_request"));
    // Wrong and replayed TOTP codes.
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    alice.authorize(&[]).await;
    let loc = redirect_to(
        &alice
            .get(&format!("{}/idp/authorize?{q}&acr_values={}", demo.base, enc(MFA_ACR)))
            .await,
    );
    assert!(loc.contains("/idp/mfa"));
    let req = query(&loc)["req"].clone();
    let res = alice
        .post_form(&format!("{}/idp/mfa", demo.base), &[("req", &req), ("code", "12345x")])
        .await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("Wrong code"));
    let code = demo.provider.totp_code("alice", now()).unwrap();
    let res = alice
        .post_form(&format!("{}/idp/mfa", demo.base), &[("req", &req), ("code", &code)])
        .await;
    let code_loc = redirect_to(&res);
    // max_age=0 a second later forces the second factor again, inside the same TOTP step.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let loc = redirect_to(
        &alice
            .get(&format!(
                "{}/idp/authorize?{q}&acr_values={}&max_age=0",
                demo.base,
                enc(MFA_ACR)
            ))
            .await,
    );
    let req = query(&loc)["req"].clone();
    let res = alice
        .post_form(&format!("{}/idp/mfa", demo.base), &[("req", &req), ("code", &code)])
        .await;
    assert_eq!(res.status(), 401, "a replayed code is refused");
    // PKCE mismatch at the token endpoint.
    let code = query(&code_loc)["code"].clone();
    let res = alice
        .post_form(
            &format!("{}/idp/token", demo.base),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &format!("{}/", demo.base)),
                ("client_id", "bank-spa"),
                ("code_verifier", &URL_SAFE_NO_PAD.encode([2u8; 32])),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("invalid_grant"));
}

#[tokio::test]
async fn metadata_cors_and_health() {
    let demo = start().await;
    let res = demo.http.get(format!("{}/healthz", demo.base)).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "ok");
    let res = demo
        .http
        .get(format!("{}/.well-known/oauth-protected-resource", demo.base))
        .send()
        .await
        .unwrap();
    let m: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(m["resource"], demo.base);
    assert_eq!(m["authorization_servers"][0], format!("{}/idp", demo.base));
    let res = demo
        .http
        .get(format!("{}/api/balance", demo.base))
        .header("origin", &demo.base)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["access-control-allow-origin"], demo.base.as_str());
    let expose = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(expose.contains("www-authenticate"));
    // Another origin is not allowed unless configured.
    let res = demo
        .http
        .get(format!("{}/api/balance", demo.base))
        .header("origin", "https://spa.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let (other, _) = start_with(Config {
        cors_origins: vec!["https://spa.example".into()],
        ..config()
    })
    .await;
    let res = other
        .http
        .get(format!("{}/api/balance", other.base))
        .header("origin", "https://spa.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "https://spa.example");
}

/// `STEPUP_TOKEN_CACHE` reaches the layer: with a cache, the second request with the same
/// token is a hit; with 0 there is no cache at all. (The load benchmark once measured the
/// same server for both settings because the demo never passed the setting on.)
#[tokio::test]
async fn token_cache_setting_reaches_the_layer() {
    for (entries, expect_hits) in [(1000, true), (0, false)] {
        let (demo, auth) = start_with(Config {
            audience: "bank-api".into(),
            client_id: "bank-spa".into(),
            scope: "openid accounts".into(),
            token_cache: entries,
            ..Config::default()
        })
        .await;
        let mut alice = User::new(&demo, "alice", "alice-demo-pw");
        let (tokens, _) = alice.authorize(&[]).await;
        let at = tokens["access_token"].as_str().unwrap().to_string();
        for _ in 0..3 {
            assert_eq!(api(&demo, "GET", "/api/balance", &at, None, None).await.status, 200);
        }
        let stats = auth.token_cache_metrics();
        if expect_hits {
            assert_eq!((stats.entries, stats.hits, stats.misses), (1, 2, 1), "{stats:?}");
        } else {
            assert_eq!((stats.entries, stats.hits), (0, 0), "{stats:?}");
        }
    }
}

/// `STEPUP_ACCEPT_TYP`, `STEPUP_CLIENT_CLAIM` and `STEPUP_OMIT_CLAIMS` reach the layer, and a
/// relaxed `typ` never lets the provider's ID token through.
#[tokio::test]
async fn token_type_settings_reach_the_layer() {
    let base = || Config {
        audience: "bank-api".into(),
        client_id: "bank-spa".into(),
        scope: "openid accounts".into(),
        accept_typ: vec!["JWT".into()],
        ..Config::default()
    };
    // A relaxed typ with no client claim at all is refused at start.
    let err = bank_demo::build(
        &Config {
            omit_claims: vec!["client_id".into()],
            ..base()
        },
        "http://127.0.0.1:9",
    )
    .await
    .expect_err("refused")
    .to_string();
    assert!(err.contains("client_id_claim"), "{err}");

    // typ JWT accepted: the ID token (typ JWT) is still refused as the wrong type.
    let (demo, _) = start_with(base()).await;
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    let (tokens, _) = alice.authorize(&[]).await;
    let (at, id) = (
        tokens["access_token"].as_str().unwrap().to_string(),
        tokens["id_token"].as_str().unwrap().to_string(),
    );
    assert_eq!(api(&demo, "GET", "/api/balance", &at, None, None).await.status, 200);
    let a = api(&demo, "GET", "/api/balance", &id, None, None).await;
    assert_eq!(a.status, 401);
    let c = a.challenge.expect("a challenge");
    assert_eq!(
        c.error_description.as_deref(),
        Some("wrong token type: an ID token is not an access token"),
        "{:?}",
        a.body
    );

    // A client claim the provider does not send (its tokens carry client_id, not cid).
    let (demo, _) = start_with(Config {
        client_claim: Some("cid".into()),
        ..base()
    })
    .await;
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    let (tokens, _) = alice.authorize(&[]).await;
    let at = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(api(&demo, "GET", "/api/balance", &at, None, None).await.status, 401);
}

/// A demo whose embedded provider reads a clock the test moves.
async fn start_with_clock(config: Config) -> (Demo, Arc<std::sync::atomic::AtomicI64>) {
    let clock = Arc::new(std::sync::atomic::AtomicI64::new(now() as i64));
    let c = clock.clone();
    let (demo, _) = start_with(Config {
        provider_clock: Some(dev_provider::Clock::new(move || {
            c.load(std::sync::atomic::Ordering::SeqCst)
        })),
        ..config
    })
    .await;
    (demo, clock)
}

fn advance(clock: &std::sync::atomic::AtomicI64, secs: i64) {
    clock.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
}

/// Five wrong codes end the pending login and lock the user out; the right code is then
/// refused until a new login after the backoff. Codes typed with a space are read.
#[tokio::test]
async fn five_wrong_codes_end_the_pending_login_until_a_new_login_after_the_backoff() {
    let (demo, clock) = start_with_clock(config()).await;
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    alice.clock = Some(clock.clone());
    alice.authorize(&[]).await;
    let step_up = [("acr_values", MFA_ACR.to_string())];
    let loc = redirect_to(&alice.get(&alice.authorize_url(&step_up)).await);
    assert!(loc.contains("/idp/mfa"), "{loc}");
    let req = query(&loc)["req"].clone();
    let mfa = format!("{}/idp/mfa", demo.base);
    for i in 1..=4 {
        let res = alice.post_form(&mfa, &[("req", &req), ("code", "000000")]).await;
        assert_eq!(res.status(), 401, "wrong code {i}");
    }
    let res = alice.post_form(&mfa, &[("req", &req), ("code", "000000")]).await;
    assert_eq!(res.status(), 429, "the fifth wrong code ends the login");
    assert_eq!(res.headers()["retry-after"], "30");
    let page = res.text().await.unwrap();
    assert!(page.contains("Wait <b id=\"wait\">30 seconds</b>"), "{page}");
    // The right code on the ended login: refused.
    let t = alice.now();
    let right = demo.provider.totp_code("alice", t).unwrap();
    let res = alice.post_form(&mfa, &[("req", &req), ("code", &right)]).await;
    assert_eq!(res.status(), 400, "the ended login stays ended");
    // A new login during the backoff: the right code is refused, without being checked.
    let loc = redirect_to(&alice.get(&alice.authorize_url(&step_up)).await);
    let req = query(&loc)["req"].clone();
    let res = alice.post_form(&mfa, &[("req", &req), ("code", &right)]).await;
    assert_eq!(res.status(), 429, "locked out during the backoff");
    // After the backoff, a new login with the right code (typed as apps show it) passes.
    advance(&clock, 31);
    let t = alice.now();
    let code = demo.provider.totp_code("alice", t).unwrap();
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let loc = redirect_to(&alice.get(&alice.authorize_url(&step_up)).await);
    let req = query(&loc)["req"].clone();
    let res = alice.post_form(&mfa, &[("req", &req), ("code", &spaced)]).await;
    let loc = redirect_to(&res);
    assert!(loc.contains("code="), "{loc}");
}

/// Five wrong passwords for a known user lock it out, and the backoff doubles.
#[tokio::test]
async fn wrong_passwords_lock_out_with_a_growing_backoff() {
    let (demo, clock) = start_with_clock(config()).await;
    let mut mallory = User::new(&demo, "alice", "guess");
    let login = format!("{}/idp/login", demo.base);
    for (round, wait) in [(1, "30"), (2, "60")] {
        let loc = redirect_to(&mallory.get(&mallory.authorize_url(&[])).await);
        let req = query(&loc)["req"].clone();
        for _ in 0..4 {
            let res = mallory
                .post_form(&login, &[("req", &req), ("username", "alice"), ("password", "guess")])
                .await;
            assert_eq!(res.status(), 401, "round {round}");
        }
        let res = mallory
            .post_form(&login, &[("req", &req), ("username", "alice"), ("password", "guess")])
            .await;
        assert_eq!(res.status(), 429, "round {round}");
        assert_eq!(res.headers()["retry-after"], wait, "round {round}");
        advance(&clock, wait.parse().unwrap());
        advance(&clock, 1);
    }
    // The real user logs in after the backoff, and that resets the counters.
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    alice.clock = Some(clock.clone());
    let (_, pages) = alice.authorize(&[]).await;
    assert_eq!(pages, ["login"]);
}

/// 10,000 anonymous authorization requests leave nothing behind on the server: a normal
/// login right after succeeds.
#[tokio::test]
async fn a_flood_of_anonymous_authorize_requests_blocks_nobody() {
    let demo = start().await;
    let url = User::new(&demo, "x", "y").authorize_url(&[]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..(10_000 / 32 + 1) {
                let res = client.get(&url).send().await.unwrap();
                ok += usize::from(res.status() == StatusCode::SEE_OTHER);
            }
            ok
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert!(total >= 10_000, "{total} redirects");
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    let (tokens, pages) = alice.authorize(&[]).await;
    assert_eq!(pages, ["login"]);
    assert!(tokens["access_token"].is_string());
}

/// Login CSRF: a cross-site POST and a pending login from another browser are refused.
#[tokio::test]
async fn cross_origin_login_post_is_refused() {
    let demo = start().await;
    let mut attacker = User::new(&demo, "alice", "alice-demo-pw");
    let loc = redirect_to(&attacker.get(&attacker.authorize_url(&[])).await);
    let req = query(&loc)["req"].clone();
    let login = format!("{}/idp/login", demo.base);
    let form = [
        ("req", req.as_str()),
        ("username", "alice"),
        ("password", "alice-demo-pw"),
    ];
    let res = attacker
        .post_form_with(&login, &form, &[("origin", "https://evil.example")])
        .await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get(SET_COOKIE).is_none());
    let res = attacker
        .post_form_with(&login, &form, &[("sec-fetch-site", "cross-site")])
        .await;
    assert_eq!(res.status(), 403);
    // The victim's browser (no pre-login cookie, or another one) posting the attacker's form.
    let mut victim = User::new(&demo, "alice", "alice-demo-pw");
    let res = victim.post_form(&login, &form).await;
    assert_eq!(res.status(), 403);
    assert!(!victim.has_cookie("dev_idp_session"));
    victim.get(&victim.authorize_url(&[])).await;
    let res = victim.post_form(&login, &form).await;
    assert_eq!(res.status(), 403, "bound to the attacker's pre-login cookie");
    // The same-origin POST passes.
    let res = attacker.post_form_with(&login, &form, &[("origin", &demo.base)]).await;
    assert_eq!(res.status(), 303);
}

/// RP-initiated logout ends the SSO session: the next step-up asks for the password again.
#[tokio::test]
async fn logout_ends_single_sign_on() {
    let demo = start().await;
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    let (tokens, _) = alice.authorize(&[]).await;
    let id_token = tokens["id_token"].as_str().unwrap().to_string();
    let home = format!("{}/", demo.base);
    let discovery: Value = serde_json::from_str(
        &alice
            .get(&format!("{}/idp/.well-known/openid-configuration", demo.base))
            .await
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let end_session = discovery["end_session_endpoint"].as_str().unwrap().to_string();
    // An unregistered post-logout redirect: an error page, no redirect, still signed in.
    let res = alice
        .get(&format!(
            "{end_session}?id_token_hint={id_token}&post_logout_redirect_uri={}",
            enc("https://evil.example/")
        ))
        .await;
    assert_eq!(res.status(), 400);
    assert!(alice.has_cookie("dev_idp_session"));
    // Without a hint: a confirmation page, nothing ended yet.
    let res = alice.get(&end_session).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("logout-confirm"));
    assert!(alice.has_cookie("dev_idp_session"));
    // With the hint: ended at once, back to the registered URI with the state.
    let res = alice
        .get(&format!(
            "{end_session}?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye&client_id=bank-spa",
            enc(&home)
        ))
        .await;
    assert_eq!(redirect_to(&res), format!("{home}?state=bye"));
    assert!(!alice.has_cookie("dev_idp_session"));
    let (_, pages) = alice.authorize(&[("acr_values", MFA_ACR.to_string())]).await;
    assert_eq!(pages, ["login", "mfa"], "the password is asked again");
}

/// Sessions expire after 30 idle minutes and after 12 hours in all; at most 5 per user.
#[tokio::test]
async fn sessions_expire_and_are_bounded_per_user() {
    let (demo, clock) = start_with_clock(config()).await;
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    alice.clock = Some(clock.clone());
    alice.authorize(&[]).await;
    advance(&clock, 29 * 60);
    let (_, pages) = alice.authorize(&[]).await;
    assert!(pages.is_empty(), "used within 30 min: still signed in");
    advance(&clock, 31 * 60);
    let (_, pages) = alice.authorize(&[]).await;
    assert_eq!(pages, ["login"], "idle for 31 min: signed out");
    // Used every 25 minutes, the session still ends 12 h after the password.
    for _ in 0..28 {
        advance(&clock, 25 * 60);
        let (_, pages) = alice.authorize(&[]).await;
        assert!(pages.is_empty());
    }
    advance(&clock, 25 * 60);
    let (_, pages) = alice.authorize(&[]).await;
    assert_eq!(pages, ["login"], "12 h after the password: signed out");
    // A sixth browser's login ends the oldest session.
    let mut browsers = Vec::new();
    for _ in 0..6 {
        let mut b = User::new(&demo, "alice", "alice-demo-pw");
        b.clock = Some(clock.clone());
        b.authorize(&[]).await;
        browsers.push(b);
    }
    let (_, pages) = browsers[0].authorize(&[]).await;
    assert_eq!(pages, ["login"], "the oldest of six sessions was ended");
    let (_, pages) = browsers[5].authorize(&[]).await;
    assert!(pages.is_empty());
}

/// With an https public URL the provider's cookies are `Secure`, and always `HttpOnly`,
/// `SameSite=Lax` and limited to the provider's path.
#[tokio::test]
async fn cookies_are_secure_with_an_https_public_url() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = format!("http://{}", listener.local_addr().unwrap());
    let public = "https://bank.example.test";
    let bank = bank_demo::build(&config(), public).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, bank.router).await.unwrap() });
    let challenge = URL_SAFE_NO_PAD.encode([9u8; 32]);
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "{local}/idp/authorize?response_type=code&client_id=bank-spa&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
            enc(&format!("{public}/"))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()[SET_COOKIE].to_str().unwrap();
    for attr in ["Path=/idp", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    let demo = start().await;
    let plain = User::new(&demo, "x", "y");
    let res = demo.http.get(plain.authorize_url(&[])).send().await.unwrap();
    let cookie = res.headers()[SET_COOKIE].to_str().unwrap();
    assert!(!cookie.contains("Secure") && cookie.contains("Path=/idp"), "{cookie}");
}

/// The provider grants only registered scopes; the bank requires `accounts` (403
/// `insufficient_scope` without it), and `STEPUP_REQUIRED_SCOPE` changes or removes that.
#[tokio::test]
async fn api_needs_the_accounts_scope() {
    let demo = start().await;
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    let (tokens, _) = alice.authorize(&[("scope", "openid accounts admin".to_string())]).await;
    assert_eq!(
        tokens["scope"], "openid accounts",
        "admin is not registered for the client"
    );
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(api(&demo, "GET", "/api/balance", at, None, None).await.status, 200);
    let (tokens, _) = alice.authorize(&[("scope", "openid".to_string())]).await;
    let at = tokens["access_token"].as_str().unwrap().to_string();
    let a = api(&demo, "GET", "/api/balance", &at, None, None).await;
    assert_eq!(a.status, 403);
    let c = a.challenge.unwrap();
    assert_eq!(c.error, Some(ErrorCode::InsufficientScope));
    assert_eq!(c.scope, vec!["accounts".to_string()]);
    // Turned off: the same token reads the balance.
    let (open, _) = start_with(Config {
        required_scope: Some(String::new()),
        ..config()
    })
    .await;
    let t = open
        .provider
        .mint_access_token_with_scope("alice", "loa1", &["pwd"], now() as i64, "openid");
    assert_eq!(api(&open, "GET", "/api/balance", &t, None, None).await.status, 200);
}

/// Two subjects whose account numbers collide: the second is refused (409), never merged
/// into the first's account.
#[tokio::test]
async fn an_account_number_collision_is_refused_not_merged() {
    fn one_number(_: &str) -> String {
        bank_demo::ledger::iban_from_number(7)
    }
    let (demo, _) = start_with(Config {
        account_numbering: Some(one_number),
        ..config()
    })
    .await;
    let alice = demo.provider.mint_access_token("alice", "loa1", &["pwd"], now() as i64);
    let a = api(&demo, "GET", "/api/balance", &alice, None, None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["account"], bank_demo::ledger::iban_from_number(7));
    for sub in ["bob", "mallory@external"] {
        let t = demo.provider.mint_access_token(sub, "loa1", &["pwd"], now() as i64);
        let a = api(&demo, "GET", "/api/balance", &t, None, None).await;
        assert_eq!(a.status, 409, "{sub}");
        assert_eq!(a.body["error"], "account_unavailable");
    }
    let a = api(&demo, "GET", "/api/balance", &alice, None, None).await;
    assert_eq!(a.body["balance"], "1000.00");
    assert_eq!(demo.ledger.accounts(), 1);
}

/// "Cancel" on the provider's pages: `access_denied` back to the SPA, and the login is over.
#[tokio::test]
async fn cancel_returns_access_denied() {
    let demo = start().await;
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    let loc = redirect_to(&alice.get(&alice.authorize_url(&[])).await);
    let req = query(&loc)["req"].clone();
    let res = alice
        .post_form(&format!("{}/idp/cancel", demo.base), &[("req", &req)])
        .await;
    let loc = redirect_to(&res);
    let q = query(&loc);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st4te");
    let res = alice
        .post_form(
            &format!("{}/idp/login", demo.base),
            &[("req", &req), ("username", "alice"), ("password", "alice-demo-pw")],
        )
        .await;
    assert_eq!(res.status(), 400, "a cancelled login cannot be finished");
}

/// Unknown paths stay 404 for anonymous requests (the API's layer covers its routes only), and
/// the favicon is served.
#[tokio::test]
async fn unknown_paths_are_404_and_the_favicon_is_served() {
    let demo = start().await;
    for (path, status) in [
        ("/nope", 404),
        ("/api/nope", 404),
        ("/favicon.ico", 200),
        ("/api/balance", 401),
    ] {
        let res = demo.http.get(format!("{}{path}", demo.base)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path}");
    }
}

/// `BANK_CORS_ORIGINS` takes origins only: `*`, paths and `null` are refused at start.
#[tokio::test]
async fn cors_origins_must_be_origins() {
    for bad in ["*", "https://spa.example/app", "null", "spa.example"] {
        let err = bank_demo::build(
            &Config {
                cors_origins: vec![bad.into()],
                ..config()
            },
            "http://127.0.0.1:9",
        )
        .await
        .expect_err(bad)
        .to_string();
        assert!(err.contains("BANK_CORS_ORIGINS"), "{bad}: {err}");
    }
}

/// Wrong passwords (which anyone can send) lock the password, not the second factor of a user
/// who is already signed in.
#[tokio::test]
async fn a_password_lockout_does_not_block_the_signed_in_users_second_factor() {
    let (demo, clock) = start_with_clock(config()).await;
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    alice.clock = Some(clock.clone());
    alice.authorize(&[]).await;
    // Someone else locks alice's password out.
    let mut mallory = User::new(&demo, "alice", "guess");
    let loc = redirect_to(&mallory.get(&mallory.authorize_url(&[])).await);
    let req = query(&loc)["req"].clone();
    for _ in 0..5 {
        mallory
            .post_form(
                &format!("{}/idp/login", demo.base),
                &[("req", &req), ("username", "alice"), ("password", "guess")],
            )
            .await;
    }
    // Alice's step-up still works.
    let (_, pages) = alice.authorize(&[("acr_values", MFA_ACR.to_string())]).await;
    assert_eq!(pages, ["mfa"]);
}

/// The provider's pages allow their forms to redirect to the registered clients' origins only.
#[tokio::test]
async fn provider_pages_csp_names_the_client_origins() {
    let demo = start().await;
    let user = User::new(&demo, "alice", "alice-demo-pw");
    let loc = redirect_to(&user.get(&user.authorize_url(&[])).await);
    let res = user.get(&loc).await;
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains(&format!("form-action 'self' {};", demo.base)), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

/// Only an ID token we issued to a registered client, matching `client_id` when both are
/// given, ends the session without asking: an access token as the hint asks first.
#[tokio::test]
async fn logout_hint_must_be_an_id_token_of_the_client() {
    let demo = start().await;
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    let (tokens, _) = alice.authorize(&[]).await;
    let end_session = format!("{}/idp/logout", demo.base);
    for (what, hint, client) in [
        ("an access token", tokens["access_token"].as_str().unwrap(), "bank-spa"),
        ("another client_id", tokens["id_token"].as_str().unwrap(), "other-spa"),
    ] {
        let res = alice
            .get(&format!("{end_session}?id_token_hint={hint}&client_id={client}"))
            .await;
        assert_eq!(res.status(), 200, "{what}");
        assert!(
            res.text().await.unwrap().contains("logout-confirm"),
            "{what}: asks first"
        );
        assert!(alice.has_cookie("dev_idp_session"), "{what}: still signed in");
    }
}
