//! Micro-benchmarks, measured side by side in one run (BENCHMARKS.md):
//! raw `jsonwebtoken::decode` vs the layer's verify path vs a full `oneshot` through an axum
//! router, per algorithm; a verified-token cache hit; key sets of 1/10/100 keys; tokens of
//! 0.5/2/8 KB; a DPoP request vs a raw decode of its proof.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout,
    missing_docs
)]

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// A DPoP client's proof key: PKCS#8 from aws-lc-rs, the public JWK written out here.
struct ProofKey {
    name: &'static str,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
    decoding: DecodingKey,
}

fn proof_keys() -> Vec<ProofKey> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let p256 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
    let point = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, p256.as_ref())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let (x, y) = point[1..].split_at(32);
    let ed = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let ed_public = Ed25519KeyPair::from_pkcs8(ed.as_ref())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    vec![
        ProofKey {
            name: "ES256",
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_der(p256.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}),
            decoding: DecodingKey::from_ec_components(&b64(x), &b64(y)).unwrap(),
        },
        ProofKey {
            name: "EdDSA",
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(ed.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&ed_public)}),
            decoding: DecodingKey::from_ed_components(&b64(&ed_public)).unwrap(),
        },
    ]
}

/// A DPoP request through the layer (the bound token from the verified-token cache, the proof
/// verified, its `jti` spent in the in-memory store) vs one raw `jsonwebtoken::decode` of the
/// same proof with the same key type.
fn dpop(c: &mut Criterion) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use stepup_tower::dpop::{Dpop, DpopMode, MemoryReplayStore, jwk_thumbprint};
    use tower::Layer as _;
    const ORIGIN: &str = "https://bank.example.test";
    let issuer = &algs()[1];
    let counter = AtomicU64::new(0);
    let mut g = c.benchmark_group("dpop");
    for pk in proof_keys() {
        let auth = StepUp::builder()
            .issuer(
                Issuer::access_tokens(ISS)
                    .audience(AUD)
                    .dpop(DpopMode::Allowed)
                    .static_keys(KeySet::from_pem(Some(issuer.kid), issuer.public_pem).unwrap()),
            )
            // Room for every proof of the run within the window.
            .dpop(
                Dpop::new()
                    .public_url(ORIGIN)
                    .unwrap()
                    .replay_store(MemoryReplayStore::new(1 << 23)),
            )
            .token_cache(10_000, Duration::from_secs(300))
            .build()
            .unwrap();
        let mut c = claims(0);
        c["cnf"] = json!({"jkt": jwk_thumbprint(&pk.jwk).unwrap()});
        let token = mint(issuer, issuer.kid, &c);
        let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()));
        let header = URL_SAFE_NO_PAD
            .encode(json!({"typ": "dpop+jwt", "alg": format!("{:?}", pk.alg), "jwk": pk.jwk}).to_string());
        let proof = || {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let claims = json!({"jti": format!("bench-{n}"), "htm": "GET", "htu": format!("{ORIGIN}/"),
                "iat": now(), "ath": ath});
            let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
            let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &pk.key, pk.alg).unwrap();
            format!("{input}.{sig}")
        };
        let mut v = Validation::new(pk.alg);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_aud = false;
        let sample = proof();
        g.bench_function(format!("{}/raw_jsonwebtoken_decode_of_the_proof", pk.name), |b| {
            b.iter(|| black_box(jsonwebtoken::decode::<Value>(black_box(&sample), &pk.decoding, &v).unwrap()))
        });
        let service = auth
            .authenticate()
            .layer(tower::service_fn(|_req: Request<Body>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
            }));
        let authorization = format!("DPoP {token}");
        let request = |p: String| {
            Request::get("/")
                .header("host", "10.0.0.7:8080")
                .header("authorization", &authorization)
                .header("dpop", p)
                .body(Body::empty())
                .unwrap()
        };
        // The token enters the cache.
        let first = service.clone().oneshot(request(proof()));
        assert_eq!(rt_poll(first).status(), 200);
        g.bench_function(format!("{}/dpop_request_through_the_layer", pk.name), |b| {
            b.iter_batched(
                || request(proof()),
                |req| {
                    let res = rt_poll(service.clone().oneshot(req));
                    debug_assert_eq!(res.status(), 200);
                    black_box(res)
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// Polls a future that needs no I/O (static keys, the in-memory store) to its end, once.
fn rt_poll<F: Future<Output = Result<http::Response<Body>, std::convert::Infallible>>>(fut: F) -> http::Response<Body> {
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("a DPoP request with the in-memory store must not wait"),
    }
}

/// The metrics feature's cost (run with `--features metrics`): a request through the layer with
/// a Prometheus recorder vs with none; and a cache-hit request through the layer (recorder on)
/// vs the same axum route without the layer.
#[cfg(feature = "metrics")]
fn metrics_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let a = &algs()[1];
    let keys = KeySet::from_pem(Some(a.kid), a.public_pem).unwrap();
    let token = mint(a, a.kid, &claims(0));
    let header = format!("Bearer {token}");
    let request = || {
        Request::get("/")
            .header("authorization", &header)
            .body(Body::empty())
            .unwrap()
    };
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let mut g = c.benchmark_group("metrics");
    let uncached: Router = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(step_up(keys.clone(), false).authenticate());
    let mut run = |name: &str, app: &Router, with_recorder: bool| {
        let mut bench = || {
            g.bench_function(name, |b| {
                b.iter(|| {
                    let res = rt.block_on(app.clone().oneshot(request())).unwrap();
                    assert_eq!(res.status(), 200);
                })
            });
        };
        if with_recorder {
            metrics::with_local_recorder(&recorder, bench);
        } else {
            bench();
        }
    };
    run("ES256_new_token/layer_no_recorder", &uncached, false);
    run("ES256_new_token/layer_prometheus_recorder", &uncached, true);
    let cached: Router = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(step_up(keys, true).authenticate());
    let bare: Router = Router::new().route("/", get(|| async { "ok" }));
    // The floor of any layer added with `Router::layer`: one that does nothing.
    let identity: Router = bare
        .clone()
        .layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r));
    run("cache_hit/layer_prometheus_recorder", &cached, true);
    run("cache_hit/layer_no_recorder", &cached, false);
    run("cache_hit/axum_route_without_the_layer", &bare, false);
    run("cache_hit/axum_route_with_an_identity_layer", &identity, false);
    // The same two routes served over loopback HTTP/1.1 (keep-alive), as a hot route is: one
    // request to each per iteration, the order flipped every iteration, each bench timing its
    // own; both therefore run under the same machine load.
    let serve = |app: Router| {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    };
    let urls = [serve(bare.clone()), serve(cached.clone()), serve(identity)];
    let http = reqwest::Client::new();
    let send = |url: &str| {
        let res = rt
            .block_on(http.get(url).header("authorization", &header).send())
            .unwrap();
        assert_eq!(res.status(), 200);
    };
    let timed = |own: usize, iters: u64| {
        let mut spent = Duration::ZERO;
        for i in 0..iters {
            let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let start = Instant::now();
                send(&urls[which]);
                if which == own {
                    spent += start.elapsed();
                }
            }
        }
        spent
    };
    metrics::with_local_recorder(&recorder, || {
        g.bench_function("hot_route_over_http/axum_route_without_the_layer", |b| {
            b.iter_custom(|iters| timed(0, iters))
        });
        g.bench_function("hot_route_over_http/layer_cache_hit_prometheus_recorder", |b| {
            b.iter_custom(|iters| timed(1, iters))
        });
        // The ratio itself, from paired rounds of the same run: alternating batches, the order
        // flipped every round; the median of the per-round ratios.
        // An identity layer on the same route is measured in the same rounds: the part of the
        // cost that any `Router::layer` adds.
        let (rounds, batch) = (42u32, 400u32);
        let mut per = [Vec::new(), Vec::new(), Vec::new()];
        let (mut ratios, mut floor) = (Vec::new(), Vec::new());
        let orders = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1], [2, 0, 1], [1, 0, 2]];
        for round in 0..rounds {
            let mut times = [Duration::ZERO; 3];
            for which in orders[round as usize % orders.len()] {
                let start = Instant::now();
                for _ in 0..batch {
                    send(&urls[which]);
                }
                times[which] = start.elapsed() / batch;
            }
            for (v, t) in per.iter_mut().zip(times) {
                v.push(t);
            }
            ratios.push(times[1].as_secs_f64() / times[0].as_secs_f64());
            floor.push(times[2].as_secs_f64() / times[0].as_secs_f64());
        }
        for v in &mut per {
            v.sort();
        }
        ratios.sort_by(f64::total_cmp);
        floor.sort_by(f64::total_cmp);
        let mid = |v: &[Duration]| v[v.len() / 2];
        println!(
            "metrics/hot_route_over_http side by side ({rounds} rounds × {batch} requests, medians, \
             token {} bytes): bare {:?}/request, layer {:?}/request, identity layer {:?}/request; \
             layer ÷ bare {:.3} (paired median; per-round {:.3}..{:.3}), identity ÷ bare {:.3}",
            token.len(),
            mid(&per[0]),
            mid(&per[1]),
            mid(&per[2]),
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1],
            floor[floor.len() / 2],
        );
    });
    g.finish();
    // What the recorder saw, so that the run shows it was on.
    let handle = recorder.handle();
    let text = handle.render();
    assert!(text.contains("stepup_decisions_total"), "{text}");
}

#[cfg(not(feature = "metrics"))]
fn metrics_overhead(_: &mut Criterion) {}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
}

criterion_group! { name = benches; config = config(); targets = per_algorithm, key_set_sizes, token_sizes, dpop, metrics_overhead }
criterion_main!(benches);
