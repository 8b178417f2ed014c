//! Micro-benchmarks, measured side by side in one run (BENCHMARKS.md):
//! raw `jsonwebtoken::decode` vs the layer's verify path vs a full `oneshot` through an axum
//! router, per algorithm; a verified-token cache hit; key sets of 1/10/100 keys; tokens of
//! 0.5/2/8 KB.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde_json::{Value, json};
use stepup_tower::keys::KeySet;
use stepup_tower::{Issuer, StepUp};
use tower::ServiceExt as _;

const ISS: &str = "https://id.example.test";
const AUD: &str = "bank-api";

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/", $name))
    };
}

struct Alg {
    name: &'static str,
    alg: Algorithm,
    kid: &'static str,
    key: EncodingKey,
    public_pem: &'static [u8],
    decoding: DecodingKey,
}

fn algs() -> Vec<Alg> {
    vec![
        Alg {
            name: "RS256",
            alg: Algorithm::RS256,
            kid: "rsa1",
            key: EncodingKey::from_rsa_pem(fixture!("rsa1.pem")).unwrap(),
            public_pem: fixture!("rsa1.pub.pem"),
            decoding: DecodingKey::from_rsa_pem(fixture!("rsa1.pub.pem")).unwrap(),
        },
        Alg {
            name: "ES256",
            alg: Algorithm::ES256,
            kid: "p256a",
            key: EncodingKey::from_ec_pem(fixture!("p256a.pem")).unwrap(),
            public_pem: fixture!("p256a.pub.pem"),
            decoding: DecodingKey::from_ec_pem(fixture!("p256a.pub.pem")).unwrap(),
        },
        Alg {
            name: "EdDSA",
            alg: Algorithm::EdDSA,
            kid: "ed1",
            key: EncodingKey::from_ed_pem(fixture!("ed1.pem")).unwrap(),
            public_pem: fixture!("ed1.pub.pem"),
            decoding: DecodingKey::from_ed_pem(fixture!("ed1.pub.pem")).unwrap(),
        },
    ]
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn claims(pad: usize) -> Value {
    let now = now();
    json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "client_id": "spa", "iat": now, "exp": now + 3600,
        "auth_time": now, "acr": "loa1", "amr": ["pwd"], "scope": "openid accounts", "jti": "j1",
        "pad": "x".repeat(pad),
    })
}

fn mint(a: &Alg, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": format!("{:?}", a.alg), "typ": "at+jwt", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &a.key, a.alg).unwrap();
    format!("{input}.{sig}")
}

fn step_up(keys: KeySet, cache: bool) -> StepUp {
    let mut b = StepUp::builder().issuer(Issuer::access_tokens(ISS).audience(AUD).static_keys(keys));
    if cache {
        b = b.token_cache(10_000, Duration::from_secs(300));
    }
    b.build().unwrap()
}

/// Static keys never make `verify` wait: poll it once.
fn verify_now(auth: &StepUp, token: &str) {
    let mut fut = std::pin::pin!(auth.verify(token));
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => {
            black_box(r.unwrap());
        }
        Poll::Pending => panic!("static keys must not wait"),
    }
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_audience(&[AUD]);
    v.set_issuer(&[ISS]);
    v
}

fn per_algorithm(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut g = c.benchmark_group("new_token");
    for a in algs() {
        let keys = KeySet::from_pem(Some(a.kid), a.public_pem).unwrap();
        let auth = step_up(keys.clone(), false);
        let token = mint(&a, a.kid, &claims(0));
        let v = validation(a.alg);
        g.bench_function(format!("{}/raw_jsonwebtoken_decode", a.name), |b| {
            b.iter(|| black_box(jsonwebtoken::decode::<Value>(black_box(&token), &a.decoding, &v).unwrap()))
        });
        g.bench_function(format!("{}/layer_verify", a.name), |b| {
            b.iter(|| verify_now(&auth, black_box(&token)))
        });
        let app: Router = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(auth.authenticate());
        let header = format!("Bearer {token}");
        g.bench_function(format!("{}/axum_oneshot", a.name), |b| {
            b.iter(|| {
                let req = Request::get("/")
                    .header("authorization", &header)
                    .body(Body::empty())
                    .unwrap();
                let res = rt.block_on(app.clone().oneshot(req)).unwrap();
                assert_eq!(res.status(), 200);
            })
        });
        let cached = step_up(keys, true);
        verify_now(&cached, &token);
        g.bench_function(format!("{}/layer_verify_cache_hit", a.name), |b| {
            b.iter(|| verify_now(&cached, black_box(&token)))
        });
    }
    g.finish();
}

fn key_set_sizes(c: &mut Criterion) {
    let a = algs().remove(1); // ES256
    let mut g = c.benchmark_group("key_set_size_es256");
    for n in [1usize, 10, 100] {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut jwks = Vec::new();
        for i in 0..n.saturating_sub(1) {
            let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            )
            .unwrap();
            let k = EncodingKey::from_ec_der(pkcs8.as_ref());
            let mut j =
                serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&k, Algorithm::ES256).unwrap()).unwrap();
            j["kid"] = json!(format!("other-{i}"));
            jwks.push(j);
        }
        let mut ours =
            serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&a.key, Algorithm::ES256).unwrap()).unwrap();
        ours["kid"] = json!(a.kid);
        jwks.push(ours);
        let keys = KeySet::from_jwks_json(json!({"keys": jwks}).to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), n);
        let auth = step_up(keys, false);
        let token = mint(&a, a.kid, &claims(0));
        g.bench_function(format!("{n}_keys"), |b| b.iter(|| verify_now(&auth, black_box(&token))));
    }
    g.finish();
}

fn token_sizes(c: &mut Criterion) {
    let a = algs().remove(1); // ES256
    let keys = KeySet::from_pem(Some(a.kid), a.public_pem).unwrap();
    let auth = step_up(keys, false);
    let v = validation(a.alg);
    let mut g = c.benchmark_group("token_size_es256");
    for (label, target) in [("0.5KB", 512usize), ("2KB", 2048), ("8KB", 8192)] {
        let base = mint(&a, a.kid, &claims(0)).len();
        // base64 grows the padding by 4/3.
        let token = mint(&a, a.kid, &claims(target.saturating_sub(base) * 3 / 4));
        g.bench_function(format!("{label}/raw_jsonwebtoken_decode"), |b| {
            b.iter(|| black_box(jsonwebtoken::decode::<Value>(black_box(&token), &a.decoding, &v).unwrap()))
        });
        g.bench_function(format!("{label}/layer_verify"), |b| {
            b.iter(|| verify_now(&auth, black_box(&token)))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
}

criterion_group! { name = benches; config = config(); targets = per_algorithm, key_set_sizes, token_sizes }
criterion_main!(benches);
