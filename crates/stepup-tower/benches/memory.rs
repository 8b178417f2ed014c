//! Memory under a flood of distinct valid tokens: peak RSS after 10,000 and after 1,000,000
//! verifications through the verified-token cache (bounded at 10,000 entries). Run with
//! `cargo bench -p stepup-tower --bench memory`; Linux only (reads /proc/self/status).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    missing_docs
)]

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use stepup_tower::keys::KeySet;
use stepup_tower::{Issuer, StepUp};

const SECRET: &[u8] = b"a-benchmark-secret-of-at-least-32-bytes!";

fn status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probing
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let auth = StepUp::builder()
        .issuer(
            Issuer::id_tokens("https://id.example.test", "client")
                .static_keys(KeySet::from_hmac_secret(SECRET).unwrap()),
        )
        .token_cache(10_000, Duration::from_secs(300))
        .build()
        .unwrap();
    let key = EncodingKey::from_secret(SECRET);
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let started = Instant::now();
    let mut at_10k = 0;
    for i in 0..1_000_000u64 {
        let claims = format!(
            r#"{{"iss":"https://id.example.test","aud":"client","sub":"user-{i}","exp":{},"iat":{now},"acr":"loa1","amr":["pwd"],"jti":"{i}"}}"#,
            now + 3600
        );
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap();
        let token = format!("{input}.{sig}");
        let mut fut = std::pin::pin!(auth.verify(&token));
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(_)) => {}
            other => panic!("token {i}: {:?}", other.map(|r| r.map(|_| ()))),
        }
        if i + 1 == 10_000 {
            at_10k = status("VmHWM:");
            println!(
                "after 10,000 distinct tokens: peak RSS {at_10k} KiB, cache {:?}",
                auth.token_cache_metrics()
            );
        }
    }
    let at_1m = status("VmHWM:");
    println!(
        "after 1,000,000 distinct tokens: peak RSS {at_1m} KiB, cache {:?}",
        auth.token_cache_metrics()
    );
    println!(
        "peak RSS ratio 1,000,000 / 10,000 = {:.3} (target within 1.10); {:.1} s",
        at_1m as f64 / at_10k.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    replay_flood();
}

/// A flood of distinct DPoP proofs (valid ones from an attacker's own key are cheap to make):
/// the in-memory replay store holds at most its capacity and refuses the rest (503,
/// fail-closed) rather than grow.
fn replay_flood() {
    use stepup_tower::dpop::{MemoryReplayStore, ReplayError, ReplayKey, ReplayStore};
    let store = MemoryReplayStore::new(200_000);
    let ttl = Duration::from_secs(60);
    let mut full = 0u64;
    let mut insert = |i: u64| {
        let mut fut = std::pin::pin!(store.insert_if_absent(ReplayKey::new("flood", &i.to_string()), ttl));
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(ReplayError::Full { .. })) => full += 1,
            other => panic!("{:?}", other.map(|r| r.map(|_| ()))),
        }
    };
    let before = status("VmRSS:");
    for i in 0..200_000 {
        insert(i);
    }
    let at_capacity = status("VmRSS:");
    for i in 200_000..5_000_000 {
        insert(i);
    }
    let after = status("VmRSS:");
    println!(
        "replay store (capacity 200,000): RSS +{} KiB at capacity, +{} KiB after 5,000,000 distinct proofs; {full} refused as full; ratio {:.3} (target within 1.10)",
        at_capacity.saturating_sub(before),
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / at_capacity.saturating_sub(before).max(1) as f64
    );
}
