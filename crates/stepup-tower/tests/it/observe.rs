//! Metrics (feature `metrics`), read back from a recorder after scripted traffic.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;
use stepup_tower::{Issuer, StepUp};

use crate::support::*;

type Metric = (String, Vec<(String, String)>, DebugValue);

/// Runs `traffic` on this thread with a recorder of its own (tests run in parallel), then
/// returns every metric recorded.
fn recorded<F: std::future::Future<Output = ()>>(traffic: impl FnOnce() -> F) -> Vec<Metric> {
    let recorder = DebuggingRecorder::new();
    let snapshotter: Snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(traffic());
    });
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (_kind, k) = key.into_parts();
            let labels = k
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            (k.name().to_string(), labels, value)
        })
        .collect()
}

fn counter(all: &[Metric], name: &str, labels: &[(&str, &str)]) -> u64 {
    all.iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|(_, _, v)| match v {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

fn decisions(all: &[Metric], outcome: &str, reason: &str) -> u64 {
    counter(
        all,
        "stepup_decisions_total",
        &[("outcome", outcome), ("reason", reason)],
    )
}

#[test]
fn each_refusal_reason_is_counted_once_per_request() {
    let mut expired = pwd_claims();
    expired["exp"] = json!(now() - 3600);
    let all = recorded(|| async move {
        let app = app(&step_up());
        send(&app, get_with("/balance", None)).await;
        send(&app, get_with("/balance", Some("Bearer a b"))).await;
        call(&app, "/balance", &mint(&expired)).await;
        call(&app, "/scoped", &mint(&pwd_claims())).await;
        call(&app, "/transfer", &mint(&pwd_claims())).await;
        // Accepted after passing two layers (authenticate, then the requirement): once.
        call(&app, "/transfer", &mint(&mfa_claims())).await;
        call(&app, "/balance", &mint(&pwd_claims())).await;
    });
    assert_eq!(decisions(&all, "refused", "missing_token"), 1);
    assert_eq!(decisions(&all, "refused", "invalid_request"), 1);
    assert_eq!(
        counter(
            &all,
            "stepup_decisions_total",
            &[("reason", "invalid_token"), ("error", "expired")]
        ),
        1
    );
    assert_eq!(decisions(&all, "refused", "insufficient_scope"), 1);
    assert_eq!(decisions(&all, "refused", "step_up"), 1);
    assert_eq!(decisions(&all, "accepted", "ok"), 2);
    assert_eq!(
        counter(&all, "stepup_decisions_total", &[]),
        7,
        "one decision per request"
    );
    assert_eq!(
        counter(&all, "stepup_challenges_total", &[("route", "/transfer"), ("acr", MFA)]),
        1
    );
    let verify = all.iter().find(|(n, _, _)| n == "stepup_verify_seconds").unwrap();
    assert!(
        matches!(&verify.2, DebugValue::Histogram(v) if v.len() == 5),
        "{:?}",
        verify.2
    );
}

/// With the token cache: a hit is counted once, as a hit and as one accepted decision, and
/// is not a verification; a token the cache never held is still checked for its syntax; a
/// step-up refusal on a hit is counted once (refused), never also as accepted; a request
/// through an optional layer without a token is one anonymous acceptance.
#[test]
fn cache_hits_and_anonymous_requests_are_counted_once() {
    let all = recorded(|| async move {
        let auth = StepUp::builder()
            .issuer(Issuer::access_tokens(ISS).audience(AUD).static_keys(issuer_keys()))
            .realm("bank")
            .token_cache(100, Duration::from_secs(60))
            .build()
            .unwrap();
        let app = app(&auth);
        let pwd = mint(&pwd_claims());
        for _ in 0..3 {
            assert_eq!(call(&app, "/balance", &pwd).await.status, 200);
        }
        // Cached, but not enough for /transfer: refused on the hit.
        call(&app, "/transfer", &pwd)
            .await
            .assert_refused(401, Some("insufficient_user_authentication"));
        // A cached token with a character outside b64token appended is another token.
        let bad = format!("Bearer {pwd}!");
        send(&app, get_with("/balance", Some(&bad)))
            .await
            .assert_refused(400, Some("invalid_request"));
        let optional: axum::Router = axum::Router::new()
            .route("/", axum::routing::get(|| async { "hi" }))
            .layer(auth.optional());
        assert_eq!(send(&optional, get_with("/", None)).await.status, 200);
    });
    assert_eq!(counter(&all, "stepup_token_cache_hits_total", &[]), 3);
    assert_eq!(decisions(&all, "accepted", "ok"), 3);
    assert_eq!(decisions(&all, "refused", "step_up"), 1);
    assert_eq!(decisions(&all, "refused", "invalid_request"), 1);
    assert_eq!(decisions(&all, "accepted", "anonymous"), 1);
    assert_eq!(
        counter(&all, "stepup_decisions_total", &[]),
        6,
        "one decision per request"
    );
    let verify = all.iter().find(|(n, _, _)| n == "stepup_verify_seconds").unwrap();
    assert!(
        matches!(&verify.2, DebugValue::Histogram(v) if v.len() == 1),
        "only the first request verifies: {:?}",
        verify.2
    );
}

#[test]
fn a_challenge_then_a_successful_step_up_is_one_completion() {
    let all = recorded(|| async move {
        // Two requirement layers on one route: a scope rule around the step-up rule.
        let auth = step_up();
        let app: axum::Router = axum::Router::new()
            .route(
                "/transfer",
                axum::routing::post(|| async { "sent" })
                    .route_layer(auth.require(stepup_tower::Requirement::new().acr([MFA]).max_age(300))),
            )
            .route_layer(auth.require(stepup_tower::Requirement::new().scope(["accounts"])))
            .layer(auth.authenticate());
        let post = |token: String| {
            let app = app.clone();
            async move {
                let req = http::Request::post("/transfer")
                    .header("authorization", format!("Bearer {token}"))
                    .body(axum::body::Body::empty())
                    .unwrap();
                send(&app, req).await.status
            }
        };
        assert_eq!(post(mint(&pwd_claims())).await, 401);
        // Passing the scope layer again (and being challenged again) completes nothing.
        assert_eq!(post(mint(&pwd_claims())).await, 401);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Another subject meeting the requirement completes nothing.
        let mut carol = mfa_claims();
        carol["sub"] = json!("carol");
        assert_eq!(post(mint(&carol)).await, 200);
        assert_eq!(post(mint(&mfa_claims())).await, 200);
        // Only the first success after the challenge counts.
        assert_eq!(post(mint(&mfa_claims())).await, 200);
    });
    assert_eq!(counter(&all, "stepup_completions_total", &[("route", "/transfer")]), 1);
    let (_, _, value) = all.iter().find(|(n, _, _)| n == "stepup_completion_seconds").unwrap();
    let DebugValue::Histogram(values) = value else {
        panic!("{value:?}")
    };
    assert_eq!(values.len(), 1);
    let secs = values[0].into_inner();
    assert!((0.04..5.0).contains(&secs), "{secs} s from challenge to completion");
}

#[test]
fn no_label_ever_holds_a_subject_or_a_token() {
    let token = mint(&pwd_claims());
    let t = token.clone();
    let all = recorded(|| async move {
        let auth = StepUp::builder()
            .issuer(Issuer::access_tokens(ISS).audience(AUD).static_keys(issuer_keys()))
            .token_cache(100, Duration::from_secs(60))
            .build()
            .unwrap();
        let app = app(&auth);
        for path in ["/balance", "/transfer", "/scoped", "/balance?sub=alice", "/nope/alice"] {
            call(&app, path, &t).await;
            call(&app, path, "garbage.alice.token").await;
        }
    });
    assert!(counter(&all, "stepup_token_cache_hits_total", &[]) >= 1);
    assert!(counter(&all, "stepup_token_cache_misses_total", &[]) >= 1);
    for (name, labels, _) in &all {
        assert!(name.starts_with("stepup_"), "{name}");
        for (k, v) in labels {
            for secret in ["alice", &token, "eyJ", "garbage", "sub="] {
                assert!(!v.contains(secret), "{name} {k}={v}");
            }
        }
    }
}
