//! DPoP at the dev provider's token endpoint (RFC 9449 §4.3, §5): a valid proof gets a token
//! bound to its key (`cnf.jkt`, `token_type` DPoP); every broken proof is refused with
//! `invalid_dpop_proof` before the code is used; without a proof nothing changes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dev_provider::{Clock, Provider, ProviderConfig, jwk_thumbprint};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower::ServiceExt;

const ISSUER: &str = "http://127.0.0.1:9/idp";
const REDIRECT: &str = "http://127.0.0.1:9/";
const TOKEN_ENDPOINT: &str = "http://127.0.0.1:9/idp/token";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const NOW: i64 = 1_800_000_000;

struct Idp {
    provider: Provider,
    router: Router,
}

fn idp() -> Idp {
    let now = Arc::new(AtomicI64::new(NOW));
    let mut config = ProviderConfig::demo(ISSUER, REDIRECT);
    config.clock = Clock::new(move || now.load(Ordering::SeqCst));
    let provider = Provider::new(config).unwrap();
    Idp {
        router: provider.router(),
        provider,
    }
}

/// A P-256 key made by aws-lc-rs: its jsonwebtoken signing key and its public JWK.
struct ProofKey {
    signing: EncodingKey,
    jwk: Value,
    pkcs8: Vec<u8>,
}

fn proof_key() -> ProofKey {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    // The uncompressed point: 0x04 ‖ x ‖ y.
    let point = pair.public_key().as_ref();
    assert_eq!(point.len(), 65);
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    ProofKey {
        signing: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk,
        pkcs8: pkcs8.as_ref().to_vec(),
    }
}

/// A proof signed by `key`, whose header is `typ`, `alg` ES256 and `jwk` (any JSON: the
/// header's `jwk` goes in as given, private members included).
fn proof_with(key: &ProofKey, typ: &str, jwk: &Value, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some(typ.into());
    header.extras.insert("jwk", jwk.clone());
    jsonwebtoken::encode(&header, claims, &key.signing).unwrap()
}

fn claims(jti: &str, htm: &str, htu: &str, iat: i64) -> Value {
    json!({ "jti": jti, "htm": htm, "htu": htu, "iat": iat })
}

fn proof(key: &ProofKey, claims: &Value) -> String {
    proof_with(key, "dpop+jwt", &key.jwk, claims)
}

fn good_proof(key: &ProofKey, jti: &str) -> String {
    proof(key, &claims(jti, "POST", TOKEN_ENDPOINT, NOW))
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, header::HeaderMap, String) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn location(headers: &header::HeaderMap) -> String {
    headers[header::LOCATION].to_str().unwrap().to_string()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// An authorization code of alice (password login), as the browser would get it.
async fn code(idp: &Idp) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        VERIFIER.as_bytes(),
    ));
    let authorize = format!(
        "/authorize?response_type=code&client_id=bank-spa&redirect_uri={}&scope=openid%20accounts&state=st&code_challenge={challenge}&code_challenge_method=S256",
        "http%3A%2F%2F127.0.0.1%3A9%2F"
    );
    let (status, headers, _) = send(&idp.router, Request::get(authorize).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let login = location(&headers);
    let req = query_param(&login, "req").unwrap();
    let pre = headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let form = format!("req={req}&username=alice&password=alice-demo-pw");
    let (status, headers, _) = send(
        &idp.router,
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, pre)
            .body(Body::from(form))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let back = location(&headers);
    assert!(back.starts_with(REDIRECT), "{back}");
    query_param(&back, "code").unwrap()
}

/// POST /token with the code and these `DPoP` header values.
async fn token(idp: &Idp, code: &str, dpop: &[&str]) -> (StatusCode, Value) {
    let mut req = Request::post("/token").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for value in dpop {
        req = req.header("DPoP", *value);
    }
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2F&client_id=bank-spa&code_verifier={VERIFIER}"
    );
    let (status, _, body) = send(&idp.router, req.body(Body::from(form)).unwrap()).await;
    (status, serde_json::from_str(&body).unwrap())
}

fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A refused proof: 400 `invalid_dpop_proof` with a description (naming `why`) that does not
/// echo the proof,
/// and the code (a fresh one) is still good afterwards: the proof is checked first.
async fn assert_refused(idp: &Idp, dpop: &[&str], why: &str) {
    let code = &code(idp).await;
    let (status, body) = token(idp, code, dpop).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains(why), "expected {why:?}, got {description:?}");
    for value in dpop {
        for part in value.split('.') {
            assert!(part.len() < 8 || !description.contains(part), "{description}");
        }
    }
    let (status, body) = token(idp, code, &[]).await;
    assert_eq!(status, StatusCode::OK, "the code survives a refused proof: {body}");
}

#[test]
fn thumbprint_of_the_rfc_7638_example_key() {
    // RFC 7638 §3.1.
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    });
    assert_eq!(
        jwk_thumbprint(&jwk).as_deref(),
        Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    );
    assert_eq!(jwk_thumbprint(&json!({"kty": "oct", "k": "AAAA"})), None);
    assert_eq!(jwk_thumbprint(&json!({"kty": "EC", "crv": "P-256", "x": "AA"})), None);
}

#[test]
fn thumbprint_of_an_ec_key_matches_jsonwebtoken() {
    let key = proof_key();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
    assert_eq!(
        jwk_thumbprint(&key.jwk).unwrap(),
        jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).unwrap()
    );
}

#[tokio::test]
async fn discovery_names_the_dpop_algorithms() {
    let idp = idp();
    let (status, _, body) = send(
        &idp.router,
        Request::get("/.well-known/openid-configuration")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        json!(["ES256", "ES384", "EdDSA", "RS256", "PS256"])
    );
}

#[tokio::test]
async fn a_valid_proof_binds_the_access_token_to_its_key() {
    let idp = idp();
    let key = proof_key();
    let code = code(&idp).await;
    let (status, body) = token(&idp, &code, &[&good_proof(&key, "jti-1")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let at = payload(body["access_token"].as_str().unwrap());
    // Computed here independently of the provider (RFC 7638 §3.2, members in order).
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        key.jwk["x"].as_str().unwrap(),
        key.jwk["y"].as_str().unwrap()
    );
    let expected = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ));
    assert_eq!(at["cnf"]["jkt"], json!(expected));
    assert_eq!(at["sub"], "alice");
    // The ID token is not bound.
    assert!(payload(body["id_token"].as_str().unwrap()).get("cnf").is_none());
    // The provider's JWKS still verifies the bound token.
    let jwks: Value = serde_json::from_str(&idp.provider.jwks_json()).unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
    validation.set_audience(&["bank-api"]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(
        body["access_token"].as_str().unwrap(),
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .unwrap();
}

#[tokio::test]
async fn without_a_proof_the_token_is_a_bearer_token() {
    let idp = idp();
    let code = code(&idp).await;
    let (status, body) = token(&idp, &code, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(payload(body["access_token"].as_str().unwrap()).get("cnf").is_none());
}

#[tokio::test]
async fn iat_within_sixty_seconds_and_fractional_iat_are_accepted() {
    let idp = idp();
    let key = proof_key();
    for (i, iat) in [json!(NOW - 60), json!(NOW + 60), json!(NOW as f64 + 0.5)]
        .into_iter()
        .enumerate()
    {
        let code = code(&idp).await;
        let c = json!({ "jti": format!("ok-{i}"), "htm": "POST", "htu": TOKEN_ENDPOINT, "iat": iat });
        let (status, body) = token(&idp, &code, &[&proof(&key, &c)]).await;
        assert_eq!(status, StatusCode::OK, "iat {iat}: {body}");
    }
}

#[tokio::test]
async fn htu_is_compared_without_query_and_case_of_scheme_and_host() {
    let idp = idp();
    let key = proof_key();
    let code = code(&idp).await;
    let c = claims("htu-case", "POST", "HTTP://127.0.0.1:9/idp/token?x=1#frag", NOW);
    let (status, body) = token(&idp, &code, &[&proof(&key, &c)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn wrong_htm_is_refused() {
    let idp = idp();
    let key = proof_key();
    assert_refused(&idp, &[&proof(&key, &claims("m", "GET", TOKEN_ENDPOINT, NOW))], "htm").await;
}

#[tokio::test]
async fn wrong_htu_is_refused() {
    let idp = idp();
    let key = proof_key();
    for htu in [
        "http://127.0.0.1:9/idp/authorize",
        "http://127.0.0.1:10/idp/token",
        "https://127.0.0.1:9/idp/token",
        "/idp/token",
    ] {
        assert_refused(&idp, &[&proof(&key, &claims(htu, "POST", htu, NOW))], "htu").await;
    }
}

#[tokio::test]
async fn stale_or_future_iat_is_refused() {
    let idp = idp();
    let key = proof_key();
    assert_refused(
        &idp,
        &[&proof(&key, &claims("old", "POST", TOKEN_ENDPOINT, NOW - 61))],
        "iat is too far",
    )
    .await;
    assert_refused(
        &idp,
        &[&proof(&key, &claims("new", "POST", TOKEN_ENDPOINT, NOW + 61))],
        "iat is too far",
    )
    .await;
    let no_iat = json!({ "jti": "none", "htm": "POST", "htu": TOKEN_ENDPOINT });
    assert_refused(&idp, &[&proof(&key, &no_iat)], "no iat").await;
}

#[tokio::test]
async fn a_replayed_jti_is_refused() {
    let idp = idp();
    let key = proof_key();
    let first = code(&idp).await;
    let (status, body) = token(&idp, &first, &[&good_proof(&key, "once")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The same proof again, and a new proof with the same jti.
    assert_refused(&idp, &[&good_proof(&key, "once")], "already used").await;
    let other = proof(&key, &claims("once", "POST", TOKEN_ENDPOINT, NOW - 1));
    assert_refused(&idp, &[&other], "already used").await;
}

#[tokio::test]
async fn two_dpop_headers_are_refused() {
    let idp = idp();
    let key = proof_key();
    assert_refused(&idp, &[&good_proof(&key, "a"), &good_proof(&key, "b")], "more than one").await;
}

#[tokio::test]
async fn a_private_key_in_the_jwk_is_refused() {
    let idp = idp();
    let key = proof_key();
    // The private scalar, from the PKCS#8 document (RFC 5915 ECPrivateKey, 32 octets after
    // `04 20`), as a leaky client would put it in the header.
    let at = key.pkcs8.windows(2).position(|w| w == [0x04, 0x20]).unwrap() + 2;
    let mut jwk = key.jwk.clone();
    jwk["d"] = json!(URL_SAFE_NO_PAD.encode(&key.pkcs8[at..at + 32]));
    let c = claims("priv", "POST", TOKEN_ENDPOINT, NOW);
    assert_refused(&idp, &[&proof_with(&key, "dpop+jwt", &jwk, &c)], "not a public key").await;
}

#[tokio::test]
async fn typ_jwt_is_refused() {
    let idp = idp();
    let key = proof_key();
    let c = claims("typ", "POST", TOKEN_ENDPOINT, NOW);
    assert_refused(&idp, &[&proof_with(&key, "JWT", &key.jwk, &c)], "typ").await;
}

#[tokio::test]
async fn other_broken_proofs_are_refused() {
    let idp = idp();
    let key = proof_key();
    let other = proof_key();
    let c = claims("broken", "POST", TOKEN_ENDPOINT, NOW);
    // Signed by another key than the header's jwk.
    assert_refused(&idp, &[&proof_with(&other, "dpop+jwt", &key.jwk, &c)], "signature").await;
    // A jwk of another curve than ES256's.
    let mut p384 = key.jwk.clone();
    p384["crv"] = json!("P-384");
    assert_refused(&idp, &[&proof_with(&key, "dpop+jwt", &p384, &c)], "does not fit").await;
    // A symmetric key and an HMAC proof.
    let mut hs = Header::new(Algorithm::HS256);
    hs.typ = Some("dpop+jwt".into());
    hs.extras.insert("jwk", json!({"kty": "oct", "k": "c2VjcmV0"}));
    let hmac = jsonwebtoken::encode(&hs, &c, &EncodingKey::from_secret(b"secret")).unwrap();
    assert_refused(&idp, &[&hmac], "alg").await;
    // alg none.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}).to_string()),
        URL_SAFE_NO_PAD.encode(c.to_string())
    );
    assert_refused(&idp, &[&none], "alg").await;
    // No jti; not a JWS at all.
    let no_jti = json!({ "htm": "POST", "htu": TOKEN_ENDPOINT, "iat": NOW });
    assert_refused(&idp, &[&proof(&key, &no_jti)], "no jti").await;
    assert_refused(&idp, &["not-a-jwt"], "compact JWS").await;
    // Nothing about the proof is echoed: covered by assert_refused.
}
