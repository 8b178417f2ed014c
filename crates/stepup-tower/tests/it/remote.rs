//! The remote JWKS cache against a real HTTP server on 127.0.0.1 (tests/it/jwks_server.rs).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use stepup_tower::keys::{FetchError, RemoteJwks};
use stepup_tower::{Issuer, StepUp, VerifyError};

use crate::jwks_server::{JwksServer, Mode, jwk};
use crate::support::*;

fn es_key() -> &'static EncodingKey {
    &signer(Algorithm::ES256).key
}

fn token_for(iss: &str, key: &EncodingKey, alg: Algorithm, kid: &str) -> String {
    let mut c = pwd_claims();
    c["iss"] = json!(iss);
    sign_raw(
        &header(alg, Some("at+jwt"), Some(kid)).to_string(),
        &c.to_string(),
        key,
        alg,
    )
}

fn auth_for(iss: &str, keys: RemoteJwks) -> StepUp {
    StepUp::builder()
        .issuer(Issuer::access_tokens(iss).audience(AUD).key_source(keys))
        .realm("bank")
        .build()
        .unwrap()
}

/// Short bounds so the tests run in seconds, not minutes.
fn fast(server: &JwksServer) -> stepup_tower::keys::RemoteJwksBuilder {
    RemoteJwks::from_jwks_uri(server.url("/jwks"))
        .ttl_bounds(Duration::from_millis(300), Duration::from_secs(3600))
        .cooldown(Duration::from_millis(50))
        .timeout(Duration::from_secs(8))
}

/// Everything the crate logs, from every test of this binary (one global subscriber:
/// tracing caches callsite interest globally, so per-thread subscribers miss events).
fn global_logs() -> &'static Mutex<Vec<u8>> {
    static BUF: std::sync::OnceLock<&'static Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    BUF.get_or_init(|| {
        let buf: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        struct W(&'static Mutex<Vec<u8>>);
        impl std::io::Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sub = tracing_subscriber::fmt()
            .with_writer(move || W(buf))
            .with_ansi(false)
            .with_env_filter("stepup_tower=debug")
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
        buf
    })
}

/// Log lines that mention `needle` (e.g. a test server's port).
fn log_lines_with(needle: &str) -> String {
    String::from_utf8_lossy(&global_logs().lock().unwrap())
        .lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn rotation_new_key_passes_at_once_removed_key_stops_after_refresh() {
    let old = jwk(es_key(), Algorithm::ES256, "old");
    let server = JwksServer::start(vec![old.clone()]).await;
    let keys = fast(&server).build().unwrap();
    keys.load().await.unwrap();
    let app = app(&auth_for(ISS, keys.clone()));
    let old_token = token_for(ISS, es_key(), Algorithm::ES256, "old");
    assert_eq!(call(&app, "/balance", &old_token).await.status, 200);

    // The provider rotates: a new key appears. The first request signed with it passes.
    let new_key = stranger_p256();
    server.set_keys(vec![old.clone(), jwk(&new_key, Algorithm::ES256, "new")]);
    let new_token = token_for(ISS, &new_key, Algorithm::ES256, "new");
    let a = call(&app, "/balance", &new_token).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(keys.metrics().forced_refetches, 1);

    // The old key is removed; after the next (background) refresh it stops verifying.
    server.set_keys(vec![jwk(&new_key, Algorithm::ES256, "new")]);
    server.set_cache_control(Some("max-age=0"));
    keys.refresh_now().await.unwrap(); // picks up the short TTL
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let a = call(&app, "/balance", &old_token).await;
        if a.status == 401 {
            a.assert_refused(401, Some("invalid_token"));
            break;
        }
        assert!(Instant::now() < deadline, "removed key still verifies");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(call(&app, "/balance", &new_token).await.status, 200);
}

#[tokio::test]
async fn storm_of_unknown_kids_causes_one_fetch() {
    let server = JwksServer::start(vec![jwk(es_key(), Algorithm::ES256, "k1")]).await;
    let keys = RemoteJwks::from_jwks_uri(server.url("/jwks")).build().unwrap(); // default 30 s cooldown
    keys.load().await.unwrap();
    assert_eq!(server.hits(), 1);
    let app = app(&auth_for(ISS, keys.clone()));
    let attacker = stranger_p256();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let app = app.clone();
        let t = token_for(ISS, &attacker, Algorithm::ES256, &format!("unknown-{i}"));
        tasks.push(tokio::spawn(async move { call(&app, "/balance", &t).await }));
    }
    for t in tasks {
        let a = t.await.unwrap();
        a.assert_refused(401, Some("invalid_token"));
    }
    assert!(server.hits() <= 2, "{} fetches for the storm", server.hits() - 1);
    assert!(keys.metrics().forced_refetches <= 1);
    // The concurrent ones shared the in-flight fetch; later ones inside the cooldown window are
    // suppressed without any fetch.
    for i in 0..100 {
        let t = token_for(ISS, &attacker, Algorithm::ES256, &format!("later-{i}"));
        call(&app, "/balance", &t)
            .await
            .assert_refused(401, Some("invalid_token"));
    }
    assert!(server.hits() <= 2, "{} fetches", server.hits());
    assert!(keys.metrics().suppressed_refetches >= 100, "{:?}", keys.metrics());
    // Valid traffic still passes.
    assert_eq!(
        call(&app, "/balance", &token_for(ISS, es_key(), Algorithm::ES256, "k1"))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_server_does_not_hold_up_known_kids() {
    let server = JwksServer::start(vec![jwk(es_key(), Algorithm::ES256, "k1")]).await;
    let keys = fast(&server).build().unwrap();
    keys.load().await.unwrap();
    let app = app(&auth_for(ISS, keys.clone()));
    server.set_mode(Mode::Hang(Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(60)).await; // past the cooldown
    // An unknown kid starts a fetch that hangs for 5 s.
    let slow = {
        let app = app.clone();
        let t = token_for(ISS, &stranger_p256(), Algorithm::ES256, "rotated");
        tokio::spawn(async move {
            let started = Instant::now();
            let a = call(&app, "/balance", &t).await;
            (a.status, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let known = token_for(ISS, es_key(), Algorithm::ES256, "k1");
    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(call(&app, "/balance", &known).await.status, 200);
    }
    let known_elapsed = started.elapsed();
    let (status, slow_elapsed) = slow.await.unwrap();
    assert_eq!(status, 401);
    assert!(
        slow_elapsed >= Duration::from_secs(4),
        "the fetch really hung: {slow_elapsed:?}"
    );
    assert!(
        known_elapsed < Duration::from_secs(1),
        "50 known-kid requests took {known_elapsed:?} during a hanging fetch"
    );
}

#[tokio::test]
async fn outage_keeps_cached_keys_and_logs_each_reason() {
    global_logs();
    let server = JwksServer::start(vec![jwk(es_key(), Algorithm::ES256, "k1")]).await;
    let elsewhere = JwksServer::start(vec![jwk(&stranger_p256(), Algorithm::ES256, "evil")]).await;
    let keys = fast(&server).build().unwrap();
    keys.load().await.unwrap();
    let app = app(&auth_for(ISS, keys.clone()));
    let known = token_for(ISS, es_key(), Algorithm::ES256, "k1");
    let unknown = token_for(ISS, &stranger_p256(), Algorithm::ES256, "evil");
    let cases = [
        (Mode::Status(500), "HTTP status 500"),
        (Mode::Status(404), "HTTP status 404"),
        (Mode::Close, "HTTP error"),
        (Mode::Garbage, "not JSON"),
        (Mode::Html, "content-type"),
        (Mode::Huge, "larger than 262144 bytes"),
        (Mode::RedirectTo(elsewhere.url("/jwks")), "another origin"),
        (Mode::EmptySet, "no usable key"),
    ];
    for (mode, reason) in cases {
        server.set_mode(mode.clone());
        tokio::time::sleep(Duration::from_millis(60)).await;
        let failures = keys.metrics().failures;
        call(&app, "/balance", &unknown)
            .await
            .assert_refused(401, Some("invalid_token"));
        assert_eq!(keys.metrics().failures, failures + 1, "{mode:?} counted as a failure");
        assert_eq!(
            call(&app, "/balance", &known).await.status,
            200,
            "{mode:?}: cached key still verifies"
        );
        let text = log_lines_with(&server.url("/jwks"));
        assert!(text.contains(reason), "{mode:?}: log lacks {reason:?}:\n{text}");
    }
    assert_eq!(elsewhere.hits(), 0, "the cross-origin redirect was not followed");
    assert!(log_lines_with(&server.url("/jwks")).contains("JWKS fetch failed"));
    assert!(!log_lines_with("eyJ").contains("eyJ"), "a token reached the log");
}

#[tokio::test]
async fn no_keys_at_all_is_401_or_503_and_unknown_issuer_fetches_nothing() {
    let server = JwksServer::start(vec![jwk(es_key(), Algorithm::ES256, "k1")]).await;
    server.set_mode(Mode::Status(503));
    let keys = fast(&server).build().unwrap();
    assert!(matches!(keys.load().await, Err(FetchError::Status(503))));
    let token = token_for(ISS, es_key(), Algorithm::ES256, "k1");
    call(&app(&auth_for(ISS, keys.clone())), "/balance", &token)
        .await
        .assert_refused(401, Some("invalid_token"));
    let auth503 = StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).audience(AUD).key_source(keys.clone()))
        .realm("bank")
        .unavailable_keys_as_503(true)
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let a = call(&app(&auth503), "/balance", &token).await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert!(a.challenge.is_none(), "no challenge: the token is not at fault");
    assert_eq!(a.body["error"], "temporarily_unavailable");
    // Unknown issuer: refused before any key lookup, so no fetch.
    let hits = server.hits();
    let other = token_for("https://unknown.example", es_key(), Algorithm::ES256, "zzz");
    call(&app(&auth_for(ISS, keys.clone())), "/balance", &other)
        .await
        .assert_refused(401, Some("invalid_token"));
    assert_eq!(server.hits(), hits);
    // Once the server recovers, the next request after the cooldown loads the keys.
    server.set_mode(Mode::Ok);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(call(&app(&auth_for(ISS, keys)), "/balance", &token).await.status, 200);
}

#[tokio::test]
async fn discovery_finds_jwks_and_refuses_another_issuer() {
    let server = JwksServer::start(vec![jwk(es_key(), Algorithm::ES256, "k1")]).await;
    let iss = server.issuer();
    server.serve_discovery(&iss);
    let keys = RemoteJwks::discover(iss.clone()).build().unwrap();
    keys.load().await.unwrap();
    assert_eq!(
        keys.status().unwrap().jwks_uri.as_deref(),
        Some(server.url("/jwks").as_str())
    );
    let router = app(&auth_for(&iss, keys));
    assert_eq!(
        call(&router, "/balance", &token_for(&iss, es_key(), Algorithm::ES256, "k1"))
            .await
            .status,
        200
    );

    server.serve_discovery("https://impostor.example");
    let keys = RemoteJwks::discover(iss.clone()).build().unwrap();
    let err = keys.load().await.unwrap_err();
    assert!(
        matches!(&err, FetchError::IssuerMismatch { found, .. } if found == "https://impostor.example"),
        "{err}"
    );
    // Requests get 401, never a 500.
    let app = app(&auth_for(&iss, keys));
    call(&app, "/balance", &token_for(&iss, es_key(), Algorithm::ES256, "k1"))
        .await
        .assert_refused(401, Some("invalid_token"));
}

#[tokio::test]
async fn cache_control_honoured_within_bounds() {
    let server = JwksServer::start(vec![jwk(es_key(), Algorithm::ES256, "k1")]).await;
    let bounded = || {
        RemoteJwks::from_jwks_uri(server.url("/jwks"))
            .ttl_bounds(Duration::from_secs(60), Duration::from_secs(3600))
            .default_ttl(Duration::from_secs(600))
            .build()
            .unwrap()
    };
    for (cc, want) in [
        (Some("public, max-age=120"), 120),
        (Some("max-age=5"), 60),
        (Some("max-age=86400"), 3600),
        (None, 600),
        (Some("no-store"), 60),
    ] {
        server.set_cache_control(cc);
        let keys = bounded();
        keys.load().await.unwrap();
        assert_eq!(keys.status().unwrap().ttl, Duration::from_secs(want), "{cc:?}");
    }
}

#[tokio::test]
async fn multiple_remote_issuers_each_with_own_keys() {
    let key_b = stranger_p256();
    let a = JwksServer::start(vec![jwk(es_key(), Algorithm::ES256, "a1")]).await;
    let b = JwksServer::start(vec![jwk(&key_b, Algorithm::ES256, "b1")]).await;
    let (iss_a, iss_b) = ("https://a.example.test", "https://b.example.test");
    let auth = StepUp::builder()
        .issuer(
            Issuer::access_tokens(iss_a)
                .audience(AUD)
                .key_source(fast(&a).build().unwrap()),
        )
        .issuer(
            Issuer::access_tokens(iss_b)
                .audience(AUD)
                .algorithms([Algorithm::ES256])
                .key_source(fast(&b).build().unwrap()),
        )
        .realm("bank")
        .build()
        .unwrap();
    let app: Router = app(&auth);
    assert_eq!(
        call(&app, "/balance", &token_for(iss_a, es_key(), Algorithm::ES256, "a1"))
            .await
            .status,
        200
    );
    assert_eq!(
        call(&app, "/balance", &token_for(iss_b, &key_b, Algorithm::ES256, "b1"))
            .await
            .status,
        200
    );
    // A token of issuer A signed with B's key (and kid) fails.
    call(&app, "/balance", &token_for(iss_a, &key_b, Algorithm::ES256, "b1"))
        .await
        .assert_refused(401, Some("invalid_token"));
    // B allows only ES256.
    let rs = signer(Algorithm::RS256);
    call(&app, "/balance", &token_for(iss_b, &rs.key, Algorithm::RS256, "b1"))
        .await
        .assert_refused(401, Some("invalid_token"));
    let _ = VerifyError::UnknownIssuer;
}
