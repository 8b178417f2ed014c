//! DPoP (RFC 9449): every rule with real keys. Proofs are made here, independently of the
//! crate: keys from aws-lc-rs, JWKs and thumbprints written out by hand, signatures from
//! jsonwebtoken.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use axum::body::Body;
use http::Request;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use stepup_tower::challenge::{AuthScheme, BearerChallenge};
use stepup_tower::dpop::{Dpop, DpopMode, DpopNonces, Insert, InsertFuture, ReplayError, ReplayKey, ReplayStore};
use stepup_tower::{Issuer, StepUp, VerifyError};
use tower::ServiceExt as _;

use crate::support::*;

const ORIGIN: &str = "https://bank.example.test";

/// A client's proof key: the private key for jsonwebtoken, the public JWK written by hand.
struct ProofKey {
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

impl ProofKey {
    fn ec(alg: Algorithm) -> Self {
        let (signing, crv, len) = match alg {
            Algorithm::ES256 => (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32),
            _ => (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48),
        };
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).unwrap();
        // Uncompressed point: 0x04 ‖ x ‖ y.
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = point[1..].split_at(len);
        Self {
            alg,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)}),
        }
    }

    fn ed25519() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
        }
    }

    /// RFC 7638, written out: required members in lexicographic order, no whitespace.
    fn thumbprint(&self) -> String {
        let j = &self.jwk;
        let canonical = match j["kty"].as_str().unwrap() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                j["crv"].as_str().unwrap(),
                j["x"].as_str().unwrap(),
                j["y"].as_str().unwrap()
            ),
            _ => format!(
                r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
                j["crv"].as_str().unwrap(),
                j["x"].as_str().unwrap()
            ),
        };
        b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": format!("{:?}", self.alg), "jwk": self.jwk})
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        sign_raw(&header.to_string(), &claims.to_string(), &self.key, self.alg)
    }

    /// A valid proof for `method` `url`, bound to `token`.
    fn proof(&self, method: &str, url: &str, token: &str) -> String {
        self.sign(&self.header(), &claims(method, url, token))
    }
}

fn ath(token: &str) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref())
}

fn claims(method: &str, url: &str, token: &str) -> Value {
    json!({
        "jti": b64(&rand_bytes()), "htm": method, "htu": url, "iat": now(), "ath": ath(token),
    })
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b
}

/// An access token bound to `key` (`cnf.jkt`).
fn bound(mut claims: Value, key: &ProofKey) -> String {
    claims["cnf"] = json!({"jkt": key.thumbprint()});
    mint(&claims)
}

fn auth_with(mode: DpopMode, dpop: Dpop) -> StepUp {
    StepUp::builder()
        .issuer(
            Issuer::access_tokens(ISS)
                .audience(AUD)
                .dpop(mode)
                .static_keys(issuer_keys()),
        )
        .dpop(dpop)
        .realm("bank")
        .build()
        .unwrap()
}

fn auth(mode: DpopMode) -> StepUp {
    auth_with(mode, Dpop::new().public_url(ORIGIN).unwrap())
}

/// A request with `Authorization: <scheme> <token>` and these `DPoP` headers.
fn req(method: &str, path: &str, scheme: &str, token: &str, proofs: &[&str]) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "10.0.0.7:8080")
        .header("authorization", format!("{scheme} {token}"));
    for p in proofs {
        b = b.header("dpop", *p);
    }
    b.body(Body::empty()).unwrap()
}

struct Reply {
    status: u16,
    challenges: Vec<String>,
    nonce: Option<String>,
    retry_after: Option<String>,
}

impl Reply {
    fn dpop(&self) -> BearerChallenge {
        let all = self.challenges.join(", ");
        BearerChallenge::parse_scheme(&all, AuthScheme::DPoP)
            .unwrap()
            .unwrap_or_else(|| panic!("a DPoP challenge in {all:?}"))
    }

    /// 401 with a `DPoP` challenge carrying this error and description.
    #[track_caller]
    fn assert_dpop_error(&self, error: &str, description: &str) {
        assert_eq!(self.status, 401, "{:?}", self.challenges);
        let c = self.dpop();
        assert_eq!(
            c.error.as_ref().map(|e| e.as_str()),
            Some(error),
            "{:?}",
            self.challenges
        );
        assert_eq!(c.error_description.as_deref(), Some(description));
        assert!(c.algs.contains(&"ES256".to_string()), "algs in {:?}", self.challenges);
        assert_eq!(c.realm.as_deref(), Some("bank"));
    }
}

async fn send_req(app: &axum::Router, r: Request<Body>) -> Reply {
    let res = app.clone().oneshot(r).await.unwrap();
    let h = res.headers();
    Reply {
        status: res.status().as_u16(),
        challenges: h
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect(),
        nonce: h.get("dpop-nonce").map(|v| v.to_str().unwrap().to_string()),
        retry_after: h.get("retry-after").map(|v| v.to_str().unwrap().to_string()),
    }
}

#[tokio::test]
async fn bound_tokens_with_their_proofs_pass_for_each_key_type() {
    let app = app(&auth(DpopMode::Allowed));
    for key in [
        ProofKey::ec(Algorithm::ES256),
        ProofKey::ec(Algorithm::ES384),
        ProofKey::ed25519(),
    ] {
        let token = bound(pwd_claims(), &key);
        let proof = key.proof("GET", &format!("{ORIGIN}/balance"), &token);
        let r = send_req(&app, req("GET", "/balance", "DPoP", &token, &[&proof])).await;
        assert_eq!(r.status, 200, "{:?}: {:?}", key.alg, r.challenges);
        // Scheme and host case, default port, query and fragment do not matter.
        let proof = key.proof("GET", "HTTPS://Bank.Example.Test:443/balance?x=1#f", &token);
        let r = send_req(&app, req("GET", "/balance", "dpop", &token, &[&proof])).await;
        assert_eq!(r.status, 200, "{:?}: {:?}", key.alg, r.challenges);
    }
}

#[tokio::test]
async fn step_up_over_dpop_is_the_rfc_9470_challenge_in_the_dpop_scheme() {
    let app = app(&auth(DpopMode::Allowed));
    let key = ProofKey::ec(Algorithm::ES256);
    let url = format!("{ORIGIN}/transfer");
    let weak = bound(pwd_claims(), &key);
    let r = send_req(
        &app,
        req("POST", "/transfer", "DPoP", &weak, &[&key.proof("POST", &url, &weak)]),
    )
    .await;
    assert_eq!(r.status, 401);
    let c = r.dpop();
    assert!(c.is_step_up(), "{:?}", r.challenges);
    assert_eq!(c.acr_values, [MFA]);
    assert_eq!(c.max_age, Some(300));
    assert!(r.challenges[0].starts_with("DPoP "), "{:?}", r.challenges);
    // Bearer is accepted too: its bare challenge follows (RFC 9449 §7.2).
    assert_eq!(r.challenges.len(), 2);
    assert_eq!(r.challenges[1], r#"Bearer realm="bank""#);
    let strong = bound(mfa_claims(), &key);
    let r = send_req(
        &app,
        req(
            "POST",
            "/transfer",
            "DPoP",
            &strong,
            &[&key.proof("POST", &url, &strong)],
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.challenges);
}

#[tokio::test]
async fn each_broken_proof_is_refused_with_its_reason() {
    let app = app(&auth(DpopMode::Allowed));
    let key = ProofKey::ec(Algorithm::ES256);
    let other = ProofKey::ec(Algorithm::ES256);
    let token = bound(pwd_claims(), &key);
    let url = format!("{ORIGIN}/balance");
    let good = || claims("GET", &url, &token);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good();
        f(&mut c);
        key.sign(&key.header(), &c)
    };
    let with_header = |f: &dyn Fn(&mut Value)| {
        let mut h = key.header();
        f(&mut h);
        key.sign(&h, &good())
    };
    let hmac = EncodingKey::from_secret(HMAC_SECRET);
    let hs256 = sign_raw(
        &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(HMAC_SECRET)}}).to_string(),
        &good().to_string(),
        &hmac,
        Algorithm::HS256,
    );
    let duplicate = {
        let c = good();
        let payload = format!(
            r#"{{"jti":{},"jti":"again","htm":"GET","htu":{},"iat":{},"ath":{}}}"#,
            c["jti"], c["htu"], c["iat"], c["ath"]
        );
        sign_raw(&key.header().to_string(), &payload, &key.key, key.alg)
    };
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("no proof", vec![], "DPoP proof missing"),
        (
            "two proofs",
            vec![key.proof("GET", &url, &token), key.proof("GET", &url, &token)],
            "more than one DPoP proof",
        ),
        ("not a JWS", vec!["abc.def".into()], "malformed DPoP proof"),
        (
            "typ JWT",
            vec![with_header(&|h| h["typ"] = json!("JWT"))],
            "DPoP proof typ must be dpop+jwt",
        ),
        (
            "no typ",
            vec![with_header(&|h| {
                h.as_object_mut().unwrap().remove("typ");
            })],
            "DPoP proof typ must be dpop+jwt",
        ),
        ("HS256", vec![hs256], "DPoP proof algorithm not allowed"),
        (
            "alg none",
            vec![format!(
                "{}.{}.",
                b64(br#"{"typ":"dpop+jwt","alg":"none"}"#),
                b64(good().to_string().as_bytes())
            )],
            "malformed DPoP proof",
        ),
        (
            "crit",
            vec![with_header(&|h| h["crit"] = json!(["exp"]))],
            "unsupported critical header in DPoP proof",
        ),
        (
            "private key",
            vec![with_header(&|h| h["jwk"]["d"] = json!(b64(&[1; 32])))],
            "DPoP proof key is not a usable public key",
        ),
        (
            "no jwk",
            vec![with_header(&|h| {
                h.as_object_mut().unwrap().remove("jwk");
            })],
            "DPoP proof key is not a usable public key",
        ),
        (
            "jwk of another type than alg",
            vec![with_header(&|h| h["alg"] = json!("ES384"))],
            "DPoP proof key is not a usable public key",
        ),
        (
            "signed by another key",
            vec![other.sign(&key.header(), &good())],
            "invalid DPoP proof signature",
        ),
        (
            "duplicate member",
            vec![duplicate],
            "duplicate JSON member in DPoP proof",
        ),
        (
            "htm",
            vec![with(&|c| c["htm"] = json!("POST"))],
            "DPoP proof htm does not match the request method",
        ),
        (
            "htm lower case",
            vec![with(&|c| c["htm"] = json!("get"))],
            "DPoP proof htm does not match the request method",
        ),
        (
            "htu path",
            vec![with(&|c| c["htu"] = json!(format!("{ORIGIN}/transfer")))],
            "DPoP proof htu does not match the request URL",
        ),
        (
            "htu host",
            vec![with(&|c| c["htu"] = json!("https://evil.example/balance"))],
            "DPoP proof htu does not match the request URL",
        ),
        (
            "htu scheme",
            vec![with(&|c| c["htu"] = json!("http://bank.example.test/balance"))],
            "DPoP proof htu does not match the request URL",
        ),
        (
            "htu local address",
            vec![with(&|c| c["htu"] = json!("http://10.0.0.7:8080/balance"))],
            "DPoP proof htu does not match the request URL",
        ),
        (
            "iat old",
            vec![with(&|c| c["iat"] = json!(now() - 120))],
            "DPoP proof iat outside the acceptable window",
        ),
        (
            "iat future",
            vec![with(&|c| c["iat"] = json!(now() + 120))],
            "DPoP proof iat outside the acceptable window",
        ),
        (
            "no iat",
            vec![with(&|c| {
                c.as_object_mut().unwrap().remove("iat");
            })],
            "DPoP proof claim iat missing",
        ),
        (
            "no jti",
            vec![with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            })],
            "DPoP proof claim jti missing",
        ),
        (
            "no ath",
            vec![with(&|c| {
                c.as_object_mut().unwrap().remove("ath");
            })],
            "DPoP proof claim ath missing",
        ),
        (
            "ath of another token",
            vec![with(&|c| c["ath"] = json!(ath("another")))],
            "DPoP proof ath does not match the access token",
        ),
    ];
    for (name, proofs, description) in cases {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let r = send_req(&app, req("GET", "/balance", "DPoP", &token, &proofs)).await;
        println!("{name}");
        r.assert_dpop_error("invalid_dpop_proof", description);
    }
}

#[tokio::test]
async fn a_proof_is_spent_once_even_with_the_token_cache() {
    let auth = StepUp::builder()
        .issuer(
            Issuer::access_tokens(ISS)
                .audience(AUD)
                .dpop(DpopMode::Allowed)
                .static_keys(issuer_keys()),
        )
        .dpop(Dpop::new().public_url(ORIGIN).unwrap())
        .token_cache(100, Duration::from_secs(60))
        .realm("bank")
        .build()
        .unwrap();
    let app = app(&auth);
    let key = ProofKey::ec(Algorithm::ES256);
    let token = bound(pwd_claims(), &key);
    let url = format!("{ORIGIN}/balance");
    let proof = key.proof("GET", &url, &token);
    assert_eq!(
        send_req(&app, req("GET", "/balance", "DPoP", &token, &[&proof]))
            .await
            .status,
        200
    );
    send_req(&app, req("GET", "/balance", "DPoP", &token, &[&proof]))
        .await
        .assert_dpop_error("invalid_dpop_proof", "DPoP proof already used");
    // A fresh proof with the cached token: the token's signature is not checked again.
    let fresh = key.proof("GET", &url, &token);
    assert_eq!(
        send_req(&app, req("GET", "/balance", "DPoP", &token, &[&fresh]))
            .await
            .status,
        200
    );
    let m = auth.token_cache_metrics();
    assert!(m.hits >= 2, "{m:?}");
}

#[tokio::test]
async fn token_and_proof_must_belong_together() {
    let app = app(&auth(DpopMode::Allowed));
    let key = ProofKey::ec(Algorithm::ES256);
    let other = ProofKey::ed25519();
    let url = format!("{ORIGIN}/balance");
    // Bound to another key.
    let token = bound(pwd_claims(), &other);
    send_req(
        &app,
        req("GET", "/balance", "DPoP", &token, &[&key.proof("GET", &url, &token)]),
    )
    .await
    .assert_dpop_error("invalid_token", "invalid DPoP key binding");
    // Not bound at all, sent under DPoP.
    let plain = mint(&pwd_claims());
    send_req(
        &app,
        req("GET", "/balance", "DPoP", &plain, &[&key.proof("GET", &url, &plain)]),
    )
    .await
    .assert_dpop_error("invalid_token", "the token is not bound to a DPoP key");
    // Bound, sent as a bearer token: no downgrade. Answered in the Bearer scheme, DPoP offered.
    let token = bound(pwd_claims(), &key);
    let r = send_req(&app, req("GET", "/balance", "Bearer", &token, &[])).await;
    assert_eq!(r.status, 401);
    let c = BearerChallenge::parse(&r.challenges[0]).unwrap().unwrap();
    assert_eq!(c.error.as_ref().map(|e| e.as_str()), Some("invalid_token"));
    assert_eq!(
        c.error_description.as_deref(),
        Some(VerifyError::SenderConstrained.description())
    );
    assert!(
        r.challenges[1].starts_with("DPoP realm=\"bank\", algs=\"ES256 "),
        "{:?}",
        r.challenges
    );
    // Even with a valid proof alongside.
    let r = send_req(
        &app,
        req("GET", "/balance", "Bearer", &token, &[&key.proof("GET", &url, &token)]),
    )
    .await;
    assert_eq!(r.status, 401);
    // An unbound token stays a bearer token where DPoP is only allowed.
    assert_eq!(
        send_req(&app, req("GET", "/balance", "Bearer", &plain, &[]))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn no_credentials_get_both_challenges_and_required_mode_refuses_bearer() {
    let allowed = app(&auth(DpopMode::Allowed));
    let r = send_req(&allowed, get_with("/balance", None)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.challenges.len(), 2, "{:?}", r.challenges);
    assert_eq!(r.challenges[0], r#"Bearer realm="bank""#);
    assert_eq!(
        r.challenges[1],
        r#"DPoP realm="bank", algs="ES256 ES384 EdDSA RS256 PS256""#
    );

    let required = app(&auth(DpopMode::Required));
    let r = send_req(&required, get_with("/balance", None)).await;
    assert_eq!(
        r.challenges,
        [r#"DPoP realm="bank", algs="ES256 ES384 EdDSA RS256 PS256""#]
    );
    let plain = mint(&pwd_claims());
    send_req(&required, req("GET", "/balance", "Bearer", &plain, &[]))
        .await
        .assert_dpop_error("invalid_token", "a DPoP-bound token and proof are required");
    let key = ProofKey::ed25519();
    let token = bound(pwd_claims(), &key);
    let proof = key.proof("GET", &format!("{ORIGIN}/balance"), &token);
    assert_eq!(
        send_req(&required, req("GET", "/balance", "DPoP", &token, &[&proof]))
            .await
            .status,
        200
    );

    // DPoP off (the default): the DPoP scheme is not credentials, and no DPoP challenge.
    let off = app(&step_up());
    let r = send_req(&off, req("GET", "/balance", "DPoP", &token, &[&proof])).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.challenges,
        [r#"Bearer realm="bank", resource_metadata="https://bank.example.test/.well-known/oauth-protected-resource""#]
    );
    assert!(
        StepUp::builder()
            .issuer(Issuer::access_tokens(ISS).audience(AUD).static_keys(issuer_keys()))
            .dpop(Dpop::new())
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn without_a_public_url_htu_names_the_host() {
    let app = app(&auth_with(DpopMode::Allowed, Dpop::new()));
    let key = ProofKey::ec(Algorithm::ES256);
    let token = bound(pwd_claims(), &key);
    for (htu, status) in [
        ("http://10.0.0.7:8080/balance", 200),
        ("https://10.0.0.7:8080/balance", 200),
        ("http://10.0.0.7:8081/balance", 401),
        ("http://10.0.0.7/balance", 401),
        ("https://bank.example.test/balance", 401),
    ] {
        let r = send_req(
            &app,
            req("GET", "/balance", "DPoP", &token, &[&key.proof("GET", htu, &token)]),
        )
        .await;
        assert_eq!(r.status, status, "{htu}: {:?}", r.challenges);
    }
}

#[tokio::test]
async fn server_nonces_are_demanded_issued_and_checked() {
    let dpop = Dpop::new().public_url(ORIGIN).unwrap().nonces(DpopNonces::new([9; 32]));
    let app = app(&auth_with(DpopMode::Allowed, dpop));
    let key = ProofKey::ec(Algorithm::ES256);
    let token = bound(pwd_claims(), &key);
    let url = format!("{ORIGIN}/balance");
    let r = send_req(
        &app,
        req("GET", "/balance", "DPoP", &token, &[&key.proof("GET", &url, &token)]),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.dpop().error.as_ref().map(|e| e.as_str()), Some("use_dpop_nonce"));
    let nonce = r.nonce.expect("DPoP-Nonce");
    let mut c = claims("GET", &url, &token);
    c["nonce"] = json!(nonce);
    let r = send_req(
        &app,
        req("GET", "/balance", "DPoP", &token, &[&key.sign(&key.header(), &c)]),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.challenges);
    // A nonce of another server (another secret) is not accepted.
    let foreign = {
        let other = app_nonce_from(DpopNonces::new([8; 32])).await;
        other.expect("a foreign nonce")
    };
    let mut c = claims("GET", &url, &token);
    c["nonce"] = json!(foreign);
    let r = send_req(
        &app,
        req("GET", "/balance", "DPoP", &token, &[&key.sign(&key.header(), &c)]),
    )
    .await;
    assert_eq!(r.dpop().error.as_ref().map(|e| e.as_str()), Some("use_dpop_nonce"));
    // Any refusal carries a fresh nonce, so a client need not ask twice.
    assert!(send_req(&app, get_with("/balance", None)).await.nonce.is_some());
}

/// A nonce issued by a service with other nonce keys.
async fn app_nonce_from(nonces: DpopNonces) -> Option<String> {
    let app = app(&auth_with(
        DpopMode::Allowed,
        Dpop::new().public_url(ORIGIN).unwrap().nonces(nonces),
    ));
    send_req(&app, get_with("/balance", None)).await.nonce
}

/// A store that can be switched off: what an unreachable Redis looks like to the layer.
#[derive(Default)]
struct Flaky {
    down: AtomicBool,
    inner: stepup_tower::dpop::MemoryReplayStore,
}

impl ReplayStore for Flaky {
    fn insert_if_absent(&self, key: ReplayKey, ttl: Duration) -> InsertFuture<'_> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(ReplayError::Unavailable("connection refused".into())) });
        }
        self.inner.insert_if_absent(key, ttl)
    }
}

#[tokio::test]
async fn an_unreachable_replay_store_fails_closed_unless_told_otherwise() {
    let store = Arc::new(Flaky::default());
    let closed = app(&auth_with(
        DpopMode::Allowed,
        Dpop::new()
            .public_url(ORIGIN)
            .unwrap()
            .shared_replay_store(store.clone()),
    ));
    let open = app(&auth_with(
        DpopMode::Allowed,
        Dpop::new()
            .public_url(ORIGIN)
            .unwrap()
            .shared_replay_store(store.clone())
            .replay_fail_open(),
    ));
    let key = ProofKey::ec(Algorithm::ES256);
    let token = bound(pwd_claims(), &key);
    let url = format!("{ORIGIN}/balance");
    store.down.store(true, Ordering::SeqCst);
    let r = send_req(
        &closed,
        req("GET", "/balance", "DPoP", &token, &[&key.proof("GET", &url, &token)]),
    )
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.retry_after.as_deref(), Some("5"));
    assert!(r.challenges.is_empty(), "no challenge: the token is not at fault");
    let r = send_req(
        &open,
        req("GET", "/balance", "DPoP", &token, &[&key.proof("GET", &url, &token)]),
    )
    .await;
    assert_eq!(r.status, 200);
    store.down.store(false, Ordering::SeqCst);
    let r = send_req(
        &closed,
        req("GET", "/balance", "DPoP", &token, &[&key.proof("GET", &url, &token)]),
    )
    .await;
    assert_eq!(r.status, 200);
    let _ = Insert::Fresh;
}
