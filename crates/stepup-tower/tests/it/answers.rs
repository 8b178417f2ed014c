//! Every row of the answers table (RFC 6750 §3, RFC 9470 §3; README "Answers"), the seed scenarios, extractors, and the
//! layer's composition.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::json;
use stepup_tower::challenge::{BearerChallenge, ErrorCode};
use stepup_tower::keys::{KeyError, KeySet, KeySource, StaticKeys};
use stepup_tower::response::Refusal;
use stepup_tower::{AcrLadder, AuthContext, Claims, Issuer, Requirement, StepUp};

use crate::support::*;

#[tokio::test]
async fn no_credentials_gets_bare_challenge() {
    let app = app(&step_up());
    let a = send(&app, get_with("/balance", None)).await;
    a.assert_refused(401, None);
    let raw = a.raw_challenge.unwrap();
    assert!(!raw.contains("error="), "{raw}");
    assert_eq!(
        raw,
        "Bearer realm=\"bank\", resource_metadata=\"https://bank.example.test/.well-known/oauth-protected-resource\""
    );
    // Another scheme is not bearer credentials either.
    send(&app, get_with("/balance", Some("Basic dXNlcjpwYXNz")))
        .await
        .assert_refused(401, None);
}

#[tokio::test]
async fn malformed_header_is_invalid_request() {
    let app = app(&step_up());
    let token = mint(&pwd_claims());
    for bad in ["Bearer", "Bearer ", "Bearer a b", "Bearer\ttoken", "Bearer a,b"] {
        send(&app, get_with("/balance", Some(bad)))
            .await
            .assert_refused(400, Some("invalid_request"));
    }
    let two = Request::get("/balance")
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    send(&app, two).await.assert_refused(400, Some("invalid_request"));
    let both = get_with(
        &format!("/balance?access_token={token}"),
        Some(&format!("Bearer {token}")),
    );
    send(&app, both).await.assert_refused(400, Some("invalid_request"));
    let huge = format!("Bearer {}", "a".repeat(20_000));
    send(&app, get_with("/balance", Some(&huge)))
        .await
        .assert_refused(400, Some("invalid_request"));
}

#[tokio::test]
async fn valid_token_passes_for_every_algorithm() {
    let app = app(&step_up());
    for alg in ALL_ASYMMETRIC {
        let a = call(&app, "/balance", &mint_with(alg, &pwd_claims())).await;
        assert_eq!(a.status, StatusCode::OK, "{alg:?}: {}", a.text);
        assert_eq!(a.text, "alice");
        assert!(a.challenge.is_none());
    }
}

#[tokio::test]
async fn bad_tokens_are_invalid_token() {
    let app = app(&step_up());
    let now = now();
    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut c = pwd_claims();
    c["exp"] = json!(now - 120);
    cases.push(("expired", mint(&c)));
    let mut c = pwd_claims();
    c["nbf"] = json!(now + 600);
    cases.push(("not yet valid", mint(&c)));
    let mut c = pwd_claims();
    c["iat"] = json!(now + 600);
    cases.push(("issued in the future", mint(&c)));
    let mut c = pwd_claims();
    c["iss"] = json!("https://evil.example");
    cases.push(("wrong issuer", mint(&c)));
    let mut c = pwd_claims();
    c["iss"] = json!("https://id.example.test/");
    cases.push(("issuer differs by a slash", mint(&c)));
    let mut c = pwd_claims();
    c["aud"] = json!("other-api");
    cases.push(("wrong audience", mint(&c)));
    let mut c = pwd_claims();
    c.as_object_mut().unwrap().remove("exp");
    cases.push(("no exp", mint(&c)));
    let mut c = pwd_claims();
    c.as_object_mut().unwrap().remove("aud");
    cases.push(("no aud", mint(&c)));
    let s = signer(Algorithm::ES256);
    cases.push((
        "no typ",
        sign_raw(
            &header(Algorithm::ES256, None, Some(s.kid)).to_string(),
            &pwd_claims().to_string(),
            &s.key,
            Algorithm::ES256,
        ),
    ));
    cases.push((
        "typ JWT",
        sign_raw(
            &header(Algorithm::ES256, Some("JWT"), Some(s.kid)).to_string(),
            &pwd_claims().to_string(),
            &s.key,
            Algorithm::ES256,
        ),
    ));
    cases.push((
        "unknown kid",
        sign_raw(
            &header(Algorithm::ES256, Some("at+jwt"), Some("nope")).to_string(),
            &pwd_claims().to_string(),
            &s.key,
            Algorithm::ES256,
        ),
    ));
    cases.push((
        "signed by a stranger under our kid",
        sign_raw(
            &header(Algorithm::ES256, Some("at+jwt"), Some(s.kid)).to_string(),
            &pwd_claims().to_string(),
            &stranger_p256(),
            Algorithm::ES256,
        ),
    ));
    let good = mint(&pwd_claims());
    let (head, sig) = good.rsplit_once('.').unwrap();
    let mut flipped = sig.to_string().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    cases.push((
        "modified signature",
        format!("{head}.{}", String::from_utf8(flipped).unwrap()),
    ));
    cases.push(("garbage", "not-a-jwt".into()));
    cases.push(("two segments", "abc.def".into()));
    for (what, token) in cases {
        let a = call(&app, "/balance", &token).await;
        assert_eq!(a.status, 401, "{what}: {}", a.text);
        a.assert_refused(401, Some("invalid_token"));
        assert!(a.challenge.as_ref().unwrap().error_description.is_some(), "{what}");
        assert!(
            a.challenge.as_ref().unwrap().acr_values.is_empty(),
            "{what}: no step-up hint before validation"
        );
    }
}

#[tokio::test]
async fn typ_comparison_is_case_insensitive() {
    let app = app(&step_up());
    let s = signer(Algorithm::ES256);
    for typ in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"] {
        let t = sign_raw(
            &header(Algorithm::ES256, Some(typ), Some(s.kid)).to_string(),
            &pwd_claims().to_string(),
            &s.key,
            Algorithm::ES256,
        );
        assert_eq!(call(&app, "/balance", &t).await.status, 200, "{typ}");
    }
}

#[tokio::test]
async fn leeway_applies_to_exp() {
    let app = app(&step_up());
    let mut c = pwd_claims();
    c["exp"] = json!(now() - 30);
    assert_eq!(
        call(&app, "/balance", &mint(&c)).await.status,
        200,
        "30 s past exp is within the 60 s leeway"
    );
}

#[tokio::test]
async fn aud_array_contains_ours() {
    let app = app(&step_up());
    let mut c = pwd_claims();
    c["aud"] = json!(["other", AUD]);
    assert_eq!(call(&app, "/balance", &mint(&c)).await.status, 200);
    c["aud"] = json!(["other", "another"]);
    call(&app, "/balance", &mint(&c))
        .await
        .assert_refused(401, Some("invalid_token"));
    c["aud"] = json!([]);
    call(&app, "/balance", &mint(&c))
        .await
        .assert_refused(401, Some("invalid_token"));
}

#[tokio::test]
async fn seed_pwd_token_reads_balance_but_must_step_up_for_transfer() {
    let app = app(&step_up());
    let token = mint(&pwd_claims());
    assert_eq!(call(&app, "/balance", &token).await.status, 200);
    let a = call(&app, "/transfer", &token).await;
    a.assert_refused(401, Some("insufficient_user_authentication"));
    let c = a.challenge.unwrap();
    assert_eq!(c.acr_values, vec![MFA.to_string()]);
    assert_eq!(c.max_age, Some(300));
    assert_eq!(
        c.resource_metadata.as_deref(),
        Some("https://bank.example.test/.well-known/oauth-protected-resource")
    );
    assert_eq!(a.body["acr_values"], MFA);
    assert_eq!(a.body["max_age"], 300);
    assert!(
        a.raw_challenge.unwrap().contains("max_age=300"),
        "max_age sent as a token"
    );
}

#[tokio::test]
async fn seed_mfa_token_with_amr_list_passes() {
    let auth = step_up();
    let app = Router::new()
        .route("/mfa", get(|| async { "ok" }))
        .route_layer(auth.require(Requirement::new().amr_any(["mfa"]).hint_acr_values([MFA])))
        .layer(auth.authenticate());
    let a = call(&app, "/mfa", &mint(&mfa_claims())).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // Membership, not presence: amr ["pwd"] does not contain mfa.
    let a = call(&app, "/mfa", &mint(&pwd_claims())).await;
    a.assert_refused(401, Some("insufficient_user_authentication"));
    assert_eq!(a.challenge.unwrap().acr_values, vec![MFA.to_string()]);
    // No amr at all.
    let mut c = pwd_claims();
    c.as_object_mut().unwrap().remove("amr");
    call(&app, "/mfa", &mint(&c))
        .await
        .assert_refused(401, Some("insufficient_user_authentication"));
}

#[tokio::test]
async fn mfa_token_passes_transfer() {
    let app = app(&step_up());
    let a = call(&app, "/transfer", &mint(&mfa_claims())).await;
    assert_eq!(a.status, 200, "{}", a.text);
}

#[tokio::test]
async fn old_auth_time_gets_max_age() {
    let app = app(&step_up());
    let mut c = mfa_claims();
    c["auth_time"] = json!(now() - 3600);
    let a = call(&app, "/transfer", &mint(&c)).await;
    a.assert_refused(401, Some("insufficient_user_authentication"));
    let ch = a.challenge.unwrap();
    assert_eq!(ch.max_age, Some(300));
    assert_eq!(
        ch.acr_values,
        vec![MFA.to_string()],
        "the challenge keeps the acr so re-auth does not lose MFA"
    );
    // Missing auth_time fails max_age.
    let mut c = mfa_claims();
    c.as_object_mut().unwrap().remove("auth_time");
    call(&app, "/transfer", &mint(&c))
        .await
        .assert_refused(401, Some("insufficient_user_authentication"));
    // Within max_age + leeway passes.
    let mut c = mfa_claims();
    c["auth_time"] = json!(now() - 330);
    assert_eq!(call(&app, "/transfer", &mint(&c)).await.status, 200);
}

#[tokio::test]
async fn missing_scope_is_403_with_scope() {
    let app = app(&step_up());
    let a = call(&app, "/scoped", &mint(&pwd_claims())).await;
    a.assert_refused(403, Some("insufficient_scope"));
    assert_eq!(a.challenge.unwrap().scope, vec!["transfer".to_string()]);
    let mut c = pwd_claims();
    c["scope"] = json!("openid transfer");
    assert_eq!(call(&app, "/scoped", &mint(&c)).await.status, 200);
    let mut c = pwd_claims();
    c.as_object_mut().unwrap().remove("scope");
    c["scp"] = json!(["transfer"]);
    assert_eq!(
        call(&app, "/scoped", &mint(&c)).await.status,
        200,
        "scp array is read too"
    );
}

#[tokio::test]
async fn step_up_only_after_full_validation() {
    // An expired token on the MFA route learns nothing about the route's requirements.
    let app = app(&step_up());
    let mut c = pwd_claims();
    c["exp"] = json!(now() - 3600);
    let a = call(&app, "/transfer", &mint(&c)).await;
    a.assert_refused(401, Some("invalid_token"));
    let ch = a.challenge.unwrap();
    assert!(ch.acr_values.is_empty() && ch.max_age.is_none());
    // No token at all: bare challenge, no requirements.
    let a = send(&app, get_with("/transfer", None)).await;
    a.assert_refused(401, None);
    assert!(a.challenge.unwrap().acr_values.is_empty());
}

#[tokio::test]
async fn acr_ladder_lets_higher_level_pass() {
    let auth = StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).audience(AUD).static_keys(issuer_keys()))
        .realm("bank")
        .acr_ladder(AcrLadder::new().level(["loa1"]).level(["loa2", MFA]).level(["loa3"]))
        .build()
        .unwrap();
    let app = Router::new()
        .route("/x", get(|| async { "ok" }))
        .route_layer(auth.require(Requirement::new().acr(["loa2"])))
        .layer(auth.authenticate());
    for (acr, want) in [
        ("loa1", 401),
        ("loa2", 200),
        (MFA, 200),
        ("loa3", 200),
        ("unknown", 401),
    ] {
        let mut c = pwd_claims();
        c["acr"] = json!(acr);
        let a = call(&app, "/x", &mint(&c)).await;
        assert_eq!(a.status, want, "{acr}");
        if want == 401 {
            assert_eq!(a.challenge.unwrap().acr_values, vec!["loa2".to_string()]);
        }
    }
    let mut c = pwd_claims();
    c.as_object_mut().unwrap().remove("acr");
    call(&app, "/x", &mint(&c))
        .await
        .assert_refused(401, Some("insufficient_user_authentication"));
}

#[tokio::test]
async fn acr_values_keep_preference_order() {
    let auth = step_up();
    let app = Router::new()
        .route("/x", get(|| async { "ok" }))
        .route_layer(auth.require(Requirement::new().acr(["loa3", MFA, "loa2"])))
        .layer(auth.authenticate());
    let a = call(&app, "/x", &mint(&pwd_claims())).await;
    assert_eq!(
        a.challenge.unwrap().acr_values,
        vec!["loa3".to_string(), MFA.to_string(), "loa2".to_string()]
    );
}

#[tokio::test]
async fn claim_predicate_seed_authentication_level() {
    let auth = step_up();
    let app =
        Router::new()
            .route("/x", get(|| async { "ok" }))
            .route_layer(auth.require(
                Requirement::new().claim("authentication_level", |v| v.and_then(|v| v.as_str()) == Some("mfa")),
            ))
            .layer(auth.authenticate());
    let mut c = pwd_claims();
    c["authentication_level"] = json!("mfa");
    assert_eq!(call(&app, "/x", &mint(&c)).await.status, 200);
    c["authentication_level"] = json!("pwd");
    call(&app, "/x", &mint(&c))
        .await
        .assert_refused(401, Some("insufficient_user_authentication"));
}

#[tokio::test]
async fn requirements_compose_all_of() {
    let auth = step_up();
    let app = Router::new()
        .route("/x", get(|| async { "ok" }))
        .route_layer(
            auth.require(
                Requirement::new()
                    .acr([MFA])
                    .and(Requirement::new().scope(["transfer"])),
            ),
        )
        .layer(auth.authenticate());
    let mut c = mfa_claims();
    assert_eq!(call(&app, "/x", &mint(&c)).await.status, 403, "acr ok, scope missing");
    c["scope"] = json!("transfer");
    assert_eq!(call(&app, "/x", &mint(&c)).await.status, 200);
    c["acr"] = json!("loa1");
    assert_eq!(call(&app, "/x", &mint(&c)).await.status, 401, "scope ok, acr weak");
}

/// Counts how often the request path reads the key set: once per verification.
struct Counting(StaticKeys, Arc<AtomicUsize>);

impl KeySource for Counting {
    fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.current()
    }
}

#[tokio::test]
async fn token_is_verified_once_across_layers() {
    let reads = Arc::new(AtomicUsize::new(0));
    let auth = StepUp::builder()
        .issuer(
            Issuer::access_tokens(ISS)
                .audience(AUD)
                .key_source(Counting(StaticKeys::new(issuer_keys()), reads.clone())),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route("/x", get(|| async { "ok" }))
        .route_layer(auth.require(Requirement::new().acr([MFA])))
        .route_layer(auth.require(Requirement::new().max_age(300)))
        .route_layer(auth.require(Requirement::new().amr_any(["otp"])))
        .layer(auth.authenticate());
    let before = reads.load(Ordering::SeqCst);
    assert_eq!(call(&app, "/x", &mint(&mfa_claims())).await.status, 200);
    assert_eq!(reads.load(Ordering::SeqCst) - before, 1);
    // Also when only route layers are present.
    let app = Router::new()
        .route("/y", get(|| async { "ok" }))
        .route_layer(auth.require(Requirement::new().acr([MFA])))
        .route_layer(auth.require(Requirement::new().max_age(300)));
    let before = reads.load(Ordering::SeqCst);
    assert_eq!(call(&app, "/y", &mint(&mfa_claims())).await.status, 200);
    assert_eq!(reads.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test]
async fn route_layer_keeps_404_and_405() {
    let app = app(&step_up());
    let token = mint(&pwd_claims());
    let r = Request::delete("/transfer")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, r).await.status, 405);
    let auth = step_up();
    let app: Router = Router::new()
        .route("/x", get(|| async { "ok" }))
        .route_layer(auth.require(Requirement::new().acr([MFA])));
    assert_eq!(send(&app, get_with("/nope", None)).await.status, 404);
}

#[derive(Deserialize)]
struct MyClaims {
    sub: String,
    acr: String,
    amr: Vec<String>,
}

#[tokio::test]
async fn extractors_see_verified_claims() {
    let auth = step_up();
    async fn typed(Claims(c): Claims<MyClaims>, ctx: AuthContext) -> String {
        format!(
            "{} {} {} {:?} {}",
            c.sub,
            c.acr,
            c.amr.join(","),
            ctx.auth_time.is_some(),
            ctx.has_scope("accounts")
        )
    }
    #[derive(Deserialize)]
    struct NeedsGroups {
        #[allow(dead_code)]
        groups: Vec<String>,
    }
    async fn needs(Claims(_): Claims<NeedsGroups>) -> &'static str {
        "ok"
    }
    let app = Router::new()
        .route("/t", get(typed))
        .route("/g", get(needs))
        .layer(auth.authenticate());
    let a = call(&app, "/t", &mint(&mfa_claims())).await;
    assert_eq!(a.text, format!("alice {MFA} pwd,otp,mfa true true"));
    let a = call(&app, "/g", &mint(&mfa_claims())).await;
    a.assert_refused(401, Some("invalid_token"));
}

#[tokio::test]
async fn optional_routes_see_none_or_some() {
    let auth = step_up();
    async fn maybe(ctx: Option<AuthContext>, claims: Option<Claims<serde_json::Value>>) -> String {
        format!("{:?} {}", ctx.and_then(|c| c.sub), claims.is_some())
    }
    let app = Router::new().route("/o", get(maybe)).layer(auth.optional());
    assert_eq!(send(&app, get_with("/o", None)).await.text, "None false");
    assert_eq!(
        call(&app, "/o", &mint(&pwd_claims())).await.text,
        "Some(\"alice\") true"
    );
    // A bad token is refused even where a token is optional.
    let mut c = pwd_claims();
    c["exp"] = json!(0);
    call(&app, "/o", &mint(&c))
        .await
        .assert_refused(401, Some("invalid_token"));
}

#[tokio::test]
async fn responder_can_be_replaced() {
    let auth = StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).audience(AUD).static_keys(issuer_keys()))
        .realm("bank")
        .responder(|r: &Refusal| {
            let mut res = r.default_response();
            res.headers_mut()
                .insert("content-type", "application/problem+json".parse().unwrap());
            *res.body_mut() = bytes::Bytes::from(format!("{{\"title\":\"{}\"}}", r.status().as_u16()));
            res
        })
        .build()
        .unwrap();
    let app = app(&auth);
    let res = tower::ServiceExt::oneshot(app, get_with("/balance", None))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert!(res.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn id_token_profile_with_client_secret() {
    // The seeds' pattern: ID tokens verified with the OIDC client secret.
    let keys = KeySet::from_hmac_secret(HMAC_SECRET).unwrap();
    let auth = StepUp::builder()
        .issuer(Issuer::id_tokens(ISS, "bank-spa").static_keys(keys))
        .realm("bank")
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/me",
            get(|ctx: AuthContext| async move { ctx.sub.unwrap_or_default() }),
        )
        .layer(auth.authenticate());
    let key = jsonwebtoken::EncodingKey::from_secret(HMAC_SECRET);
    let now = now();
    let claims = json!({"iss": ISS, "aud": "bank-spa", "sub": "bob", "exp": now + 60, "iat": now, "azp": "bank-spa"});
    let hs = |h: &str, c: &serde_json::Value| sign_raw(h, &c.to_string(), &key, Algorithm::HS256);
    assert_eq!(
        call(&app, "/me", &hs(r#"{"alg":"HS256","typ":"JWT"}"#, &claims))
            .await
            .text,
        "bob"
    );
    assert_eq!(call(&app, "/me", &hs(r#"{"alg":"HS256"}"#, &claims)).await.status, 200);
    // An access token is not an ID token.
    call(&app, "/me", &hs(r#"{"alg":"HS256","typ":"at+jwt"}"#, &claims))
        .await
        .assert_refused(401, Some("invalid_token"));
    // azp of another client.
    let mut other = claims.clone();
    other["azp"] = json!("other-client");
    call(&app, "/me", &hs(r#"{"alg":"HS256"}"#, &other))
        .await
        .assert_refused(401, Some("invalid_token"));
    // kid does not pick another secret.
    let wrong = jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-32-bytes-or-more!!");
    let t = sign_raw(
        r#"{"alg":"HS256","kid":"other"}"#,
        &claims.to_string(),
        &wrong,
        Algorithm::HS256,
    );
    call(&app, "/me", &t).await.assert_refused(401, Some("invalid_token"));
}

#[tokio::test]
async fn id_token_refused_where_access_token_expected() {
    let app = app(&step_up());
    let s = signer(Algorithm::RS256);
    let mut c = pwd_claims();
    c["nonce"] = json!("n");
    let id_token = sign_raw(
        &header(Algorithm::RS256, Some("JWT"), Some(s.kid)).to_string(),
        &c.to_string(),
        &s.key,
        Algorithm::RS256,
    );
    call(&app, "/balance", &id_token)
        .await
        .assert_refused(401, Some("invalid_token"));
}

#[tokio::test]
async fn multiple_issuers_each_with_own_keys() {
    let other_keys = KeySet::from_pem(Some("rsa1"), rsa1_public_pem()).unwrap();
    let auth = StepUp::builder()
        .issuer(
            Issuer::access_tokens(ISS)
                .audience(AUD)
                .static_keys(issuer_keys())
                .algorithms([Algorithm::ES256]),
        )
        .issuer(
            Issuer::access_tokens("https://other.example.test")
                .audience(AUD)
                .static_keys(other_keys),
        )
        .realm("bank")
        .build()
        .unwrap();
    let app = app(&auth);
    assert_eq!(
        call(&app, "/balance", &mint_with(Algorithm::ES256, &pwd_claims()))
            .await
            .status,
        200
    );
    // Issuer A allows only ES256.
    call(&app, "/balance", &mint_with(Algorithm::RS256, &pwd_claims()))
        .await
        .assert_refused(401, Some("invalid_token"));
    let mut c = pwd_claims();
    c["iss"] = json!("https://other.example.test");
    assert_eq!(
        call(&app, "/balance", &mint_with(Algorithm::RS256, &c)).await.status,
        200
    );
    // A token of issuer B signed with issuer A's key fails.
    call(&app, "/balance", &mint_with(Algorithm::ES256, &c))
        .await
        .assert_refused(401, Some("invalid_token"));
}

#[tokio::test]
async fn config_errors_are_precise() {
    let e = StepUp::builder().build().unwrap_err();
    assert!(e.to_string().contains("no issuer"));
    let e = StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).static_keys(KeySet::new()))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("audience"), "{e}");
    let e = StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).audience(AUD))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("key source"), "{e}");
    assert!(matches!(
        KeySet::from_hmac_secret(b"short"),
        Err(KeyError::WeakHmacSecret { len: 5 })
    ));
}

#[tokio::test]
async fn over_real_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app(&step_up())).await });
    let pwd = mint(&pwd_claims());
    let mfa = mint(&mfa_claims());
    let client = |path: &str, token: Option<&str>| {
        let path = path.to_string();
        let token = token.map(str::to_string);
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let auth = token
                .map(|t| format!("Authorization: Bearer {t}\r\n"))
                .unwrap_or_default();
            let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
            tokio::io::AsyncWriteExt::write_all(&mut stream, req.as_bytes())
                .await
                .unwrap();
            let mut out = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut out)
                .await
                .unwrap();
            String::from_utf8(out).unwrap()
        }
    };
    let r = client("/balance", Some(&pwd)).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = client("/transfer", Some(&pwd)).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let line = r
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .unwrap();
    let c = BearerChallenge::parse(line.split_once(':').unwrap().1.trim())
        .unwrap()
        .unwrap();
    assert_eq!(c.error, Some(ErrorCode::InsufficientUserAuthentication));
    assert_eq!(c.acr_values, vec![MFA.to_string()]);
    assert_eq!(c.max_age, Some(300));
    assert!(client("/transfer", Some(&mfa)).await.starts_with("HTTP/1.1 200"));
    assert!(client("/balance", None).await.starts_with("HTTP/1.1 401"));
    server.abort();
}

#[tokio::test]
async fn and_only_narrows_a_requirement() {
    let auth = step_up();
    let app = Router::new()
        .route(
            "/acr",
            get(|| async { "ok" })
                .route_layer(auth.require(Requirement::new().acr(["loa3"]).and(Requirement::new().acr(["loa1"])))),
        )
        .route(
            "/amr",
            get(|| async { "ok" }).route_layer(auth.require(Requirement::new().amr_any(["hwk"]).amr_any(["pwd"]))),
        )
        .layer(auth.authenticate());
    // acr loa1 meets the second condition only: refused, and the challenge names the unmet one.
    let a = call(&app, "/acr", &mint(&pwd_claims())).await;
    a.assert_refused(401, Some("insufficient_user_authentication"));
    assert_eq!(a.challenge.unwrap().acr_values, vec!["loa3".to_string()]);
    call(&app, "/amr", &mint(&pwd_claims()))
        .await
        .assert_refused(401, Some("insufficient_user_authentication"));
    let mut c = pwd_claims();
    c["amr"] = json!(["pwd", "hwk"]);
    assert_eq!(call(&app, "/amr", &mint(&c)).await.status, 200);
}

#[tokio::test]
async fn id_token_with_untrusted_audience_or_logout_shape_is_refused() {
    let keys = KeySet::from_hmac_secret(HMAC_SECRET).unwrap();
    let auth = StepUp::builder()
        .issuer(Issuer::id_tokens(ISS, "bank-spa").static_keys(keys))
        .realm("bank")
        .build()
        .unwrap();
    let app = Router::new()
        .route("/me", get(|| async { "ok" }))
        .layer(auth.authenticate());
    let key = jsonwebtoken::EncodingKey::from_secret(HMAC_SECRET);
    let now = now();
    let t = |c: serde_json::Value| sign_raw(r#"{"alg":"HS256"}"#, &c.to_string(), &key, Algorithm::HS256);
    // OIDC Core §3.1.3.7 (3): an audience we do not trust.
    let c = json!({"iss": ISS, "aud": ["bank-spa", "evil-client"], "sub": "bob", "exp": now + 60, "azp": "bank-spa"});
    call(&app, "/me", &t(c))
        .await
        .assert_refused(401, Some("invalid_token"));
    // Several audiences without azp.
    let auth2 = StepUp::builder()
        .issuer(
            Issuer::id_tokens(ISS, "bank-spa")
                .audience("bank-spa-2")
                .static_keys(KeySet::from_hmac_secret(HMAC_SECRET).unwrap()),
        )
        .realm("bank")
        .build()
        .unwrap();
    let app2 = Router::new()
        .route("/me", get(|| async { "ok" }))
        .layer(auth2.authenticate());
    let c = json!({"iss": ISS, "aud": ["bank-spa", "bank-spa-2"], "sub": "bob", "exp": now + 60});
    call(&app2, "/me", &t(c))
        .await
        .assert_refused(401, Some("invalid_token"));
    // A back-channel logout token is not a credential.
    let c = json!({"iss": ISS, "aud": "bank-spa", "sub": "bob", "exp": now + 60, "events": {"http://schemas.openid.net/event/backchannel-logout": {}}});
    call(&app, "/me", &t(c))
        .await
        .assert_refused(401, Some("invalid_token"));
    let c = json!({"iss": ISS, "aud": "bank-spa", "sub": "bob", "exp": now + 60});
    assert_eq!(call(&app, "/me", &t(c)).await.status, 200);
}

#[tokio::test]
async fn scope_array_and_strict_rfc9068_claims() {
    let auth = StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).audience(AUD).static_keys(issuer_keys()))
        .realm("bank")
        .build()
        .unwrap();
    let app = app(&auth);
    let mut c = pwd_claims();
    c["scope"] = json!(["transfer", "openid"]);
    assert_eq!(call(&app, "/scoped", &mint(&c)).await.status, 200);
    for missing in ["sub", "client_id", "iat", "jti"] {
        let mut c = pwd_claims();
        c.as_object_mut().unwrap().remove(missing);
        call(&app, "/balance", &mint(&c))
            .await
            .assert_refused(401, Some("invalid_token"));
    }
}

#[tokio::test]
async fn extractor_without_layer_is_a_server_error() {
    let app: Router = Router::new().route("/x", get(|ctx: AuthContext| async move { ctx.sub.unwrap_or_default() }));
    let a = send(&app, get_with("/x", Some("Bearer abc"))).await;
    assert_eq!(a.status, 500);
    assert!(a.challenge.is_none());
}

#[tokio::test]
async fn try_require_refuses_values_a_challenge_cannot_carry() {
    let auth = step_up();
    assert!(auth.try_require(Requirement::new().acr(["loa 2"])).is_err());
    assert!(auth.try_require(Requirement::new().scope(["a\"b"])).is_err());
    assert!(
        auth.try_require(Requirement::new().acr([MFA]).scope(["transfer"]))
            .is_ok()
    );
}

#[tokio::test]
async fn legacy_typ_only_when_configured() {
    let s = signer(Algorithm::ES256);
    let jwt_typ = sign_raw(
        &header(Algorithm::ES256, Some("JWT"), Some(s.kid)).to_string(),
        &pwd_claims().to_string(),
        &s.key,
        Algorithm::ES256,
    );
    let no_typ = sign_raw(
        &header(Algorithm::ES256, None, Some(s.kid)).to_string(),
        &pwd_claims().to_string(),
        &s.key,
        Algorithm::ES256,
    );
    let strict = app(&step_up());
    call(&strict, "/balance", &jwt_typ)
        .await
        .assert_refused(401, Some("invalid_token"));
    let lenient = StepUp::builder()
        .issuer(
            Issuer::access_tokens(ISS)
                .audience(AUD)
                .static_keys(issuer_keys())
                .also_accept_typ("JWT"),
        )
        .realm("bank")
        .build()
        .unwrap();
    let lenient = app(&lenient);
    assert_eq!(call(&lenient, "/balance", &jwt_typ).await.status, 200);
    call(&lenient, "/balance", &no_typ)
        .await
        .assert_refused(401, Some("invalid_token"));
}

#[tokio::test]
async fn empty_requirement_groups_are_refused() {
    let auth = step_up();
    for r in [
        Requirement::new().acr(Vec::<String>::new()),
        Requirement::new().amr_any(Vec::<String>::new()),
    ] {
        assert!(matches!(
            auth.try_require(r),
            Err(stepup_tower::ConfigError::UnsendableValue(_))
        ));
    }
}
