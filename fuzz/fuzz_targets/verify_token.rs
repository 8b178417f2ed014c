//! Token verification with a fixed key set: never panics, never accepts (the fuzzer cannot
//! sign), answers without awaiting anything.
#![no_main]
use std::future::Future;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use stepup_tower::{Issuer, StepUp, keys::KeySet};

const JWKS: &str = include_str!("../seeds/jwks.json");
/// Valid tokens (seeds): the only inputs that may verify.
const SEEDS: &str = include_str!("../seeds/tokens.txt");

fn step_up() -> &'static StepUp {
    static S: OnceLock<StepUp> = OnceLock::new();
    S.get_or_init(|| {
        let keys = KeySet::from_jwks_json(JWKS.as_bytes()).expect("seed JWKS");
        StepUp::builder()
            .issuer(Issuer::access_tokens("https://id.example.test").audience("bank-api").static_keys(keys))
            .clock(|| 1_800_000_000)
            .build()
            .expect("config")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let mut fut = std::pin::pin!(step_up().verify(token));
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(_)) => assert!(SEEDS.lines().any(|t| t == token), "an input the fuzzer made verified"),
        Poll::Ready(Err(_)) => {}
        Poll::Pending => panic!("verification with static keys must not wait"),
    }
});
