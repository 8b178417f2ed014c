//! Two bank-demo replicas sharing one Redis replay store (RFC 9449 §11.1): a proof spent on
//! one replica is a replay on the other, and a Redis outage is a 503, not a crash.
//!
//! The processes are started by `tests/replicas/run.sh`, which runs these `#[ignore]`d tests
//! one phase at a time (it stops and restarts Redis between them):
//!
//! - `replicas::replay`: a DPoP proof accepted by replica A is refused by replica B;
//! - `replicas::redis_down` (Redis stopped): 503 with `Retry-After` on both, both still alive;
//! - `replicas::redis_up` (Redis restarted on the same port): 200 again on both.
//!
//! Environment: `REPLICA_A` and `REPLICA_B`, the replicas' base URLs. Replica A runs the
//! embedded provider and its URL is also both replicas' `BANK_PUBLIC_URL` (the `htu` origin:
//! replicas behind one load balancer agree on it). Proofs are made here with `jsonwebtoken`
//! and an AWS-LC P-256 key, independently of the crate under test.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::rand::SecureRandom as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::*;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run tests/replicas/run.sh"))
        .trim_end_matches('/')
        .to_string()
}

/// Replica A as a [`Demo`] for [`User`]: its URL, and a provider configured like A's embedded
/// one (the demo users and their TOTP secrets are fixed) for the second-factor codes.
fn replica_a() -> Demo {
    let base = env("REPLICA_A");
    let provider = Provider::new(dev_provider::ProviderConfig::demo(
        format!("{base}/idp"),
        format!("{base}/"),
    ))
    .unwrap();
    Demo {
        base,
        provider,
        ledger: Arc::new(bank_demo::ledger::Ledger::default()),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _server: tokio::spawn(async {}),
    }
}

/// A client's DPoP key (P-256) and the proofs it signs.
struct ProofKey {
    encoding: EncodingKey,
    jwk: Jwk,
    thumbprint: String,
}

static JTI: AtomicU64 = AtomicU64::new(0);

impl ProofKey {
    fn generate() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        // Uncompressed point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
        let point = pair.public_key().as_ref();
        assert_eq!(point.len(), 65);
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..]),
        );
        // RFC 7638 §3.2: the required members, lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint = URL_SAFE_NO_PAD.encode(sha256(canonical.as_bytes()));
        let jwk: Jwk = serde_json::from_value(json!({"kty": "EC", "crv": "P-256", "x": x, "y": y})).unwrap();
        Self {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
            thumbprint,
        }
    }

    /// A proof for `method` `url` (RFC 9449 §4.2); with `ath` when `token` is given.
    fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        let mut random = [0u8; 12];
        aws_lc_rs::rand::SystemRandom::new().fill(&mut random).unwrap();
        let jti = format!(
            "{}-{}",
            JTI.fetch_add(1, Ordering::Relaxed),
            URL_SAFE_NO_PAD.encode(random)
        );
        let mut claims = json!({"jti": jti, "htm": method, "htu": url, "iat": now()});
        if let Some(token) = token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(sha256(token.as_bytes())));
        }
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Logs alice in at replica A's provider (password, and the second factor if asked) and
/// redeems the code with a DPoP proof: a token bound to `key`.
async fn login(demo: &Demo, key: &ProofKey) -> String {
    let mut alice = User::new(demo, "alice", "alice-demo-pw");
    let proof = key.proof("POST", &format!("{}/idp/token", demo.base), None);
    let (res, _) = alice.authorize_with(&[], &[("DPoP", &proof)]).await;
    let status = res.status();
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP", "the provider bound the token: {body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(
        claims["cnf"]["jkt"],
        key.thumbprint.as_str(),
        "cnf.jkt is the proof key's thumbprint"
    );
    token
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    /// The `DPoP` challenge's text (RFC 9449 §7.1), if there is one.
    fn dpop_challenge(&self) -> Option<String> {
        self.headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.len() > 5 && v[..5].eq_ignore_ascii_case("dpop "))
            .map(str::to_string)
    }
}

/// `GET /api/balance` on `replica` with the bound token and `proof`.
async fn balance(demo: &Demo, replica: &str, token: &str, proof: &str) -> Answer {
    let res = demo
        .http
        .get(format!("{replica}/api/balance"))
        .header(AUTHORIZATION, format!("DPoP {token}"))
        .header("DPoP", proof)
        .send()
        .await
        .unwrap();
    Answer {
        status: res.status(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

/// Both replicas answer `/healthz`: they are still running.
async fn alive(demo: &Demo, replicas: &[&str]) {
    for r in replicas {
        let res = demo.http.get(format!("{r}/healthz")).send().await;
        assert!(res.as_ref().is_ok_and(|r| r.status() == 200), "{r}/healthz: {res:?}");
    }
}

#[tokio::test]
#[ignore = "needs two bank-demo replicas and redis-server: tests/replicas/run.sh runs it"]
async fn replay() {
    let demo = replica_a();
    let (a, b) = (demo.base.clone(), env("REPLICA_B"));
    let key = ProofKey::generate();
    let token = login(&demo, &key).await;
    // Both replicas are reached as one public origin: replica A's.
    let htu = format!("{a}/api/balance");

    let p = key.proof("GET", &htu, Some(&token));
    let first = balance(&demo, &a, &token, &p).await;
    assert_eq!(first.status, 200, "replica A accepts a fresh proof: {}", first.body);
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["currency"], "EUR");

    let replayed = balance(&demo, &b, &token, &p).await;
    assert_eq!(
        replayed.status, 401,
        "replica B refuses A's spent proof: {}",
        replayed.body
    );
    let challenge = replayed.dpop_challenge().unwrap_or_else(|| {
        panic!("no DPoP challenge in {:?}", replayed.headers);
    });
    assert!(challenge.contains(r#"error="invalid_dpop_proof""#), "{challenge}");

    let again = balance(&demo, &a, &token, &p).await;
    assert_eq!(again.status, 401, "and so does replica A itself");

    let fresh = balance(&demo, &b, &token, &key.proof("GET", &htu, Some(&token))).await;
    assert_eq!(fresh.status, 200, "replica B accepts a fresh proof: {}", fresh.body);

    // The other way round: spent on B, replayed on A.
    let q = key.proof("GET", &htu, Some(&token));
    assert_eq!(balance(&demo, &b, &token, &q).await.status, 200);
    assert_eq!(balance(&demo, &a, &token, &q).await.status, 401);
}

#[tokio::test]
#[ignore = "needs two bank-demo replicas and redis-server: tests/replicas/run.sh runs it"]
async fn redis_down() {
    let demo = replica_a();
    let (a, b) = (demo.base.clone(), env("REPLICA_B"));
    let key = ProofKey::generate();
    // The provider does not use Redis: logging in still works.
    let token = login(&demo, &key).await;
    let htu = format!("{a}/api/balance");
    for replica in [&a, &b] {
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            let r = balance(&demo, replica, &token, &key.proof("GET", &htu, Some(&token))).await;
            assert_eq!(r.status, 503, "{replica} without Redis: fail-closed: {}", r.body);
            assert!(
                r.headers.contains_key(RETRY_AFTER),
                "{replica}: no Retry-After in {:?}",
                r.headers
            );
            assert!(r.dpop_challenge().is_none(), "a 503 is no challenge");
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(2),
                "{replica} answered fast"
            );
        }
    }
    alive(&demo, &[&a, &b]).await;
}

#[tokio::test]
#[ignore = "needs two bank-demo replicas and redis-server: tests/replicas/run.sh runs it"]
async fn redis_up() {
    let demo = replica_a();
    let (a, b) = (demo.base.clone(), env("REPLICA_B"));
    let key = ProofKey::generate();
    let token = login(&demo, &key).await;
    let htu = format!("{a}/api/balance");
    // Several calls each, so every pooled connection of each replica is exercised.
    for _ in 0..6 {
        for replica in [&a, &b] {
            let r = balance(&demo, replica, &token, &key.proof("GET", &htu, Some(&token))).await;
            assert_eq!(r.status, 200, "{replica} after Redis came back: {}", r.body);
        }
    }
    // And replays are caught across replicas again.
    let p = key.proof("GET", &htu, Some(&token));
    assert_eq!(balance(&demo, &b, &token, &p).await.status, 200);
    assert_eq!(balance(&demo, &a, &token, &p).await.status, 401);
    alive(&demo, &[&a, &b]).await;
}
