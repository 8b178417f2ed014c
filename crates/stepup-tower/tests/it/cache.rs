//! The verified-token cache: hits skip verification, but never outlive the token, the
//! TTL or the key; requirements are evaluated on every request; memory is bounded.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::json;
use stepup_tower::keys::{KeyError, KeySet, KeySource};
use stepup_tower::{Issuer, StepUp};

use crate::support::*;

/// A key source the test can change.
#[derive(Clone)]
struct Swappable(Arc<Mutex<Arc<KeySet>>>);

impl KeySource for Swappable {
    fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

fn cached(keys: Swappable, clock: Arc<AtomicI64>, entries: usize) -> StepUp {
    StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).audience(AUD).key_source(keys))
        .realm("bank")
        .clock(move || clock.load(Ordering::SeqCst))
        .token_cache(entries, Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test]
async fn repeated_token_hits_and_time_and_requirements_are_rechecked() {
    let clock = Arc::new(AtomicI64::new(now()));
    let keys = Swappable(Arc::new(Mutex::new(Arc::new(issuer_keys()))));
    let auth = cached(keys.clone(), clock.clone(), 1000);
    let app = app(&auth);
    let token = mint(&pwd_claims()); // exp = now + 600
    assert_eq!(call(&app, "/balance", &token).await.status, 200);
    assert_eq!(call(&app, "/balance", &token).await.status, 200);
    let s = auth.token_cache_metrics();
    assert_eq!((s.entries, s.hits), (1, 1), "{s:?}");
    // Requirements are not cached: the same (cached) token still must step up for a transfer.
    call(&app, "/transfer", &token)
        .await
        .assert_refused(401, Some("insufficient_user_authentication"));
    assert_eq!(auth.token_cache_metrics().hits, 2);
    // Past the cache TTL (60 s): verified again, not served from the cache.
    clock.fetch_add(61, Ordering::SeqCst);
    let misses = auth.token_cache_metrics().misses;
    assert_eq!(call(&app, "/balance", &token).await.status, 200);
    assert_eq!(auth.token_cache_metrics().misses, misses + 1);
    // Past exp (+ leeway): refused even though the token was cached a moment ago.
    assert_eq!(call(&app, "/balance", &token).await.status, 200);
    clock.fetch_add(600 + 60, Ordering::SeqCst);
    call(&app, "/balance", &token)
        .await
        .assert_refused(401, Some("invalid_token"));
}

#[tokio::test]
async fn removing_the_key_invalidates_what_it_verified() {
    let clock = Arc::new(AtomicI64::new(now()));
    let keys = Swappable(Arc::new(Mutex::new(Arc::new(issuer_keys()))));
    let auth = cached(keys.clone(), clock, 1000);
    let app = app(&auth);
    let token = mint(&pwd_claims());
    assert_eq!(call(&app, "/balance", &token).await.status, 200);
    assert_eq!(call(&app, "/balance", &token).await.status, 200);
    // The issuer drops p256a (kid of the ES256 signer): the cached entry must die with it.
    let mut without = KeySet::new();
    for alg in [Algorithm::RS256, Algorithm::EdDSA] {
        let s = signer(alg);
        without = without.with_pem(Some(s.kid), s.public_pem).unwrap();
    }
    *keys.0.lock().unwrap() = Arc::new(without);
    call(&app, "/balance", &token)
        .await
        .assert_refused(401, Some("invalid_token"));
    // Same kid, another key: also refused.
    let other = jsonwebtoken::jwk::Jwk::from_encoding_key(&stranger_p256(), Algorithm::ES256).unwrap();
    let mut other = serde_json::to_value(other).unwrap();
    other["kid"] = json!("p256a");
    *keys.0.lock().unwrap() =
        Arc::new(KeySet::from_jwks_json(json!({"keys": [other]}).to_string().as_bytes()).unwrap());
    call(&app, "/balance", &token)
        .await
        .assert_refused(401, Some("invalid_token"));
    // Key back: verifies again.
    *keys.0.lock().unwrap() = Arc::new(issuer_keys());
    assert_eq!(call(&app, "/balance", &token).await.status, 200);
}

#[tokio::test]
async fn flood_of_distinct_tokens_stays_bounded() {
    let clock = Arc::new(AtomicI64::new(now()));
    let keys = Swappable(Arc::new(Mutex::new(Arc::new(issuer_keys()))));
    let auth = cached(keys, clock, 100);
    let app = app(&auth);
    let key = &signer(Algorithm::EdDSA).key; // cheapest to sign
    for i in 0..2000 {
        let mut c = pwd_claims();
        c["jti"] = json!(format!("j{i}"));
        let t = sign_raw(
            &header(Algorithm::EdDSA, Some("at+jwt"), Some("ed1")).to_string(),
            &c.to_string(),
            key,
            Algorithm::EdDSA,
        );
        assert_eq!(call(&app, "/balance", &t).await.status, 200);
    }
    let s = auth.token_cache_metrics();
    assert!(s.entries <= 110, "{s:?}");
    // Refused tokens are never cached.
    let mut c = pwd_claims();
    c["aud"] = json!("other");
    let bad = mint(&c);
    for _ in 0..3 {
        call(&app, "/balance", &bad)
            .await
            .assert_refused(401, Some("invalid_token"));
    }
    assert_eq!(auth.token_cache_metrics().hits, s.hits);
}
