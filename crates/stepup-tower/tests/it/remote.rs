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

/// The shortest bounds the builder accepts (1 s), so the tests run in seconds, not minutes.
fn fast(server: &JwksServer) -> stepup_tower::keys::RemoteJwksBuilder {
    RemoteJwks::from_jwks_uri(server.url("/jwks"))
        .ttl_bounds(COOLDOWN, Duration::from_secs(3600))
        .cooldown(COOLDOWN)
        .timeout(Duration::from_secs(8))
}

const COOLDOWN: Duration = Duration::from_secs(1);

/// A key server serving `keys`, and a loaded cache of it with the shortest bounds.
async fn loaded(keys: Vec<serde_json::Value>) -> (JwksServer, RemoteJwks) {
    let server = JwksServer::start(keys).await;
    let cache = fast(&server).build().unwrap();
    cache.load().await.unwrap();
    (server, cache)
}

/// Sleeps until a forced refetch is allowed again.
async fn past_cooldown() {
    tokio::time::sleep(COOLDOWN + Duration::from_millis(50)).await;
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
    let (server, keys) = loaded(vec![old.clone()]).await;
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
    let (server, keys) = loaded(vec![jwk(es_key(), Algorithm::ES256, "k1")]).await;
    let app = app(&auth_for(ISS, keys.clone()));
    server.set_mode(Mode::Hang(Duration::from_secs(5)));
    past_cooldown().await;
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
    let keys = fast(&server).timeout(Duration::from_millis(500)).build().unwrap();
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
        (Mode::Hang(Duration::from_secs(3)), "timed out"),
        (Mode::NotAJwkSet, "not a JWK Set"),
    ];
    for (mode, reason) in cases {
        server.set_mode(mode.clone());
        past_cooldown().await;
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
    let auth503 = auth_503(&keys);
    past_cooldown().await;
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
    past_cooldown().await;
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

/// As `auth_for`, answering 503 when the keys cannot be had.
fn auth_503(keys: &RemoteJwks) -> StepUp {
    StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).audience(AUD).key_source(keys.clone()))
        .realm("bank")
        .unavailable_keys_as_503()
        .build()
        .unwrap()
}

fn auth_cached(keys: RemoteJwks) -> StepUp {
    StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).audience(AUD).key_source(keys))
        .realm("bank")
        .token_cache(1000, Duration::from_secs(300))
        .build()
        .unwrap()
}

/// Polls `path` with `token` until the status is `want`, for at most `limit`; returns how long
/// it took.
async fn until_status(app: &Router, token: &str, want: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let a = call(app, "/balance", token).await;
        if a.status.as_u16() == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "still {} after {limit:?} (wanted {want}): {}",
            a.status,
            a.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn emptied_set_revokes_cached_tokens_too_and_republished_keys_pass_again() {
    let key_a = jwk(es_key(), Algorithm::ES256, "a");
    let (server, keys) = loaded(vec![key_a.clone()]).await;
    let auth = auth_cached(keys.clone());
    let app = app(&auth);
    let token = token_for(ISS, es_key(), Algorithm::ES256, "a");
    assert_eq!(call(&app, "/balance", &token).await.status, 200);
    assert_eq!(call(&app, "/balance", &token).await.status, 200);
    assert_eq!(
        auth.token_cache_metrics().hits,
        1,
        "the token sits in the verified-token cache"
    );

    // The provider empties its set. The next allowed fetch (forced here by an unknown kid)
    // swaps the empty set in.
    server.set_keys(vec![]);
    past_cooldown().await;
    let probe = token_for(ISS, &stranger_p256(), Algorithm::ES256, "probe");
    call(&app, "/balance", &probe)
        .await
        .assert_refused(401, Some("invalid_token"));
    assert_eq!(keys.metrics().empty_sets, 1, "{:?}", keys.metrics());
    assert_eq!(keys.metrics().failures, 0, "an empty set is an answer, not a failure");
    assert_eq!(keys.status().unwrap().keys, 0);
    let hits = auth.token_cache_metrics().hits;
    let a = call(&app, "/balance", &token).await;
    a.assert_refused(401, Some("invalid_token"));
    assert_eq!(auth.token_cache_metrics().hits, hits, "the cached copy was not used");
    // `unavailable_keys_as_503` turns "no keys" into 503, as documented.
    let auth503 = auth_503(&keys);
    assert_eq!(
        call(&crate::support::app(&auth503), "/balance", &token).await.status,
        503
    );
    // `load`/`refresh_now` report the empty answer.
    assert!(matches!(
        keys.refresh_now().await,
        Err(FetchError::NoUsableKeys { skipped: 0 })
    ));

    // Key A is published again: the next allowed fetch (the request itself) loads it.
    server.set_keys(vec![key_a]);
    let took = until_status(&app, &token, 200, COOLDOWN * 3).await;
    assert!(took <= COOLDOWN + Duration::from_millis(500), "took {took:?}");
}

#[tokio::test]
async fn a_set_of_only_unusable_keys_revokes_like_an_empty_one() {
    let unusable = [
        (
            "oct",
            json!({"kty": "oct", "kid": "a", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}),
        ),
        ("use enc", {
            let mut k = jwk(es_key(), Algorithm::ES256, "a");
            k["use"] = json!("enc");
            k
        }),
        ("unknown kty", json!({"kty": "PQC", "kid": "a", "pub": "AAAA"})),
    ];
    for (what, key) in unusable {
        let server = JwksServer::start(vec![jwk(es_key(), Algorithm::ES256, "a")]).await;
        let keys = fast(&server).build().unwrap();
        keys.load().await.unwrap();
        let app = app(&auth_cached(keys.clone()));
        let token = token_for(ISS, es_key(), Algorithm::ES256, "a");
        assert_eq!(call(&app, "/balance", &token).await.status, 200, "{what}");
        server.set_keys(vec![key]);
        let err = keys.refresh_now().await.unwrap_err();
        assert!(
            matches!(err, FetchError::NoUsableKeys { skipped: 1 }),
            "{what}: {err:?}"
        );
        call(&app, "/balance", &token)
            .await
            .assert_refused(401, Some("invalid_token"));
        // The refused request itself may refetch (nothing was forced yet): still empty.
        assert!(keys.metrics().empty_sets >= 1, "{what}");
        assert_eq!(keys.metrics().failures, 0, "{what}");
    }
}

#[tokio::test]
async fn reused_kid_with_new_material_is_picked_up_and_the_old_material_refused() {
    let old = es_key();
    let new = stranger_p256();
    let (server, keys) = loaded(vec![jwk(old, Algorithm::ES256, "k1")]).await;
    let auth = auth_cached(keys.clone());
    let app = app(&auth);
    let old_token = token_for(ISS, old, Algorithm::ES256, "k1");
    assert_eq!(call(&app, "/balance", &old_token).await.status, 200);
    assert_eq!(call(&app, "/balance", &old_token).await.status, 200); // now cached

    // The provider restarts with new material under the same kid. The snapshot is older than
    // the cooldown: the first request signed with the new key passes.
    server.set_keys(vec![jwk(&new, Algorithm::ES256, "k1")]);
    past_cooldown().await;
    let new_token = token_for(ISS, &new, Algorithm::ES256, "k1");
    let a = call(&app, "/balance", &new_token).await;
    assert_eq!(a.status, 200, "first request with the new material: {}", a.text);
    assert_eq!(keys.metrics().forced_refetches, 1);
    // The old material is refused, its cached copy included.
    call(&app, "/balance", &old_token)
        .await
        .assert_refused(401, Some("invalid_token"));

    // Again, but right after a fetch: the snapshot is younger than the cooldown, so the first
    // request is refused without a fetch, and one passes within one cooldown.
    let newer = EncodingKey::from_ec_pem(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/p256a.pem"
    )))
    .unwrap();
    keys.refresh_now().await.unwrap();
    let hits = server.hits();
    server.set_keys(vec![jwk(&newer, Algorithm::ES256, "k1")]);
    let newer_token = token_for(ISS, &newer, Algorithm::ES256, "k1");
    call(&app, "/balance", &newer_token)
        .await
        .assert_refused(401, Some("invalid_token"));
    assert_eq!(server.hits(), hits, "a young snapshot is not refetched");
    let took = until_status(&app, &newer_token, 200, COOLDOWN * 3).await;
    assert!(took <= COOLDOWN + Duration::from_millis(500), "took {took:?}");
    call(&app, "/balance", &new_token)
        .await
        .assert_refused(401, Some("invalid_token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_bad_signatures_on_a_known_kid_costs_one_fetch_per_cooldown() {
    let (server, keys) = loaded(vec![jwk(es_key(), Algorithm::ES256, "k1")]).await;
    let app = app(&auth_for(ISS, keys.clone()));
    let attacker = stranger_p256();
    let forged = token_for(ISS, &attacker, Algorithm::ES256, "k1");
    past_cooldown().await;
    for round in 0..2 {
        let before = server.hits();
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (app, t) = (app.clone(), forged.clone());
            tasks.push(tokio::spawn(async move { call(&app, "/balance", &t).await }));
        }
        for t in tasks {
            t.await.unwrap().assert_refused(401, Some("invalid_token"));
        }
        assert!(
            server.hits() - before <= 1,
            "round {round}: {} fetches",
            server.hits() - before
        );
        // Valid traffic still passes.
        let valid = token_for(ISS, es_key(), Algorithm::ES256, "k1");
        assert_eq!(call(&app, "/balance", &valid).await.status, 200);
        past_cooldown().await;
    }
    let m = keys.metrics();
    assert!(m.forced_refetches <= 2, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_published_during_a_flood_of_made_up_kids_passes_within_one_cooldown() {
    let (server, keys) = loaded(vec![jwk(es_key(), Algorithm::ES256, "k1")]).await;
    let app = app(&auth_for(ISS, keys.clone()));
    past_cooldown().await;
    // The flood: made-up kids, one request every 10 ms, for 4 s.
    let flood = {
        let app = app.clone();
        let attacker = stranger_p256();
        tokio::spawn(async move {
            for i in 0..400 {
                let t = token_for(ISS, &attacker, Algorithm::ES256, &format!("made-up-{i}"));
                let _ = call(&app, "/balance", &t).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // Once the flood's first forced refetch is done and the flood is being suppressed (the
    // worst moment: a whole cooldown ahead), the provider publishes a new key.
    let deadline = Instant::now() + Duration::from_secs(3);
    while keys.metrics().suppressed_refetches == 0 {
        assert!(Instant::now() < deadline, "the flood made no refetch");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let fresh = EncodingKey::from_ed_pem(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ed1.pem"
    )))
    .unwrap();
    server.set_keys(vec![
        jwk(es_key(), Algorithm::ES256, "k1"),
        jwk(&fresh, Algorithm::EdDSA, "fresh"),
    ]);
    let published = Instant::now();
    let token = token_for(ISS, &fresh, Algorithm::EdDSA, "fresh");
    until_status(&app, &token, 200, COOLDOWN * 3).await;
    let after = published.elapsed();
    assert!(
        after <= COOLDOWN + Duration::from_millis(300),
        "the new key passed {after:?} after its publication"
    );
    assert_eq!(keys.metrics().forced_refetches, 2, "{:?}", keys.metrics());
    flood.abort();
}

#[test]
fn builder_refuses_each_looping_setting_with_its_own_error() {
    use stepup_tower::keys::BuildError;
    let b = || RemoteJwks::from_jwks_uri("https://id.example.test/jwks");
    let ms = Duration::from_millis;
    let err = |r: Result<RemoteJwks, BuildError>| r.unwrap_err();
    assert_eq!(
        err(b().ttl_bounds(Duration::ZERO, Duration::from_secs(60)).build()),
        BuildError::MinTtlTooShort(Duration::ZERO)
    );
    assert_eq!(
        err(b().ttl_bounds(ms(999), Duration::from_secs(60)).build()),
        BuildError::MinTtlTooShort(ms(999))
    );
    assert_eq!(
        err(b().cooldown(Duration::ZERO).build()),
        BuildError::CooldownTooShort(Duration::ZERO)
    );
    assert_eq!(
        err(b().retry_backoff(ms(10)).build()),
        BuildError::RetryBackoffTooShort(ms(10))
    );
    let mut settings = stepup_tower::keys::CacheSettings::default();
    settings.retry_backoff = Duration::ZERO;
    assert_eq!(
        err(b().settings(settings).build()),
        BuildError::RetryBackoffTooShort(Duration::ZERO)
    );
    assert!(matches!(
        err(b().ttl_bounds(Duration::from_secs(60), Duration::from_secs(10)).build()),
        BuildError::TtlBoundsInverted { .. }
    ));
    let text = err(b().cooldown(ms(5)).build()).to_string();
    assert!(text.contains("cooldown"), "{text}");
    assert!(
        b().ttl_bounds(COOLDOWN, COOLDOWN)
            .cooldown(COOLDOWN)
            .retry_backoff(COOLDOWN)
            .build()
            .is_ok()
    );
}

/// A kid reused for a key of another type (EC → Ed25519): the first token of the new key
/// refetches like a bad signature would, and passes.
#[tokio::test]
async fn reused_kid_with_a_key_of_another_type_is_picked_up() {
    let (server, keys) = loaded(vec![jwk(es_key(), Algorithm::ES256, "k1")]).await;
    let app = app(&auth_for(ISS, keys.clone()));
    let ed = EncodingKey::from_ed_pem(include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ed1.pem"
    )))
    .unwrap();
    server.set_keys(vec![jwk(&ed, Algorithm::EdDSA, "k1")]);
    past_cooldown().await;
    let a = call(&app, "/balance", &token_for(ISS, &ed, Algorithm::EdDSA, "k1")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(keys.metrics().forced_refetches, 1);
    // A token of the old type under that kid is now a key/algorithm mismatch.
    call(&app, "/balance", &token_for(ISS, es_key(), Algorithm::ES256, "k1"))
        .await
        .assert_refused(401, Some("invalid_token"));
}
