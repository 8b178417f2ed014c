//! `/metrics` and `/ops`: the layer's `stepup_*` metrics in Prometheus text, without a subject
//! or a token in them.
//!
//! The recorder is global to the process and the tests run in parallel, so the numbers are
//! everybody's: this checks what is there, not how many.

use super::*;

#[tokio::test]
async fn metrics_endpoint_serves_prometheus_text_without_subjects_or_tokens() {
    let demo = start().await;
    let mut alice = User::new(&demo, "alice", "alice-demo-pw");
    let (tokens, _) = alice.authorize(&[]).await;
    let at = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(api(&demo, "GET", "/api/balance", &at, None, None).await.status, 200);
    // A step-up challenge and its completion, a refusal without a token.
    let transfer = json!({"to": EXTERNAL, "amount": "1.00"});
    let a = api(&demo, "POST", "/api/transfers", &at, Some(transfer.clone()), None).await;
    assert_eq!(a.status, 401);
    let c = a.challenge.unwrap();
    let (tokens, _) = alice
        .authorize(&[
            ("acr_values", c.acr_values.join(" ")),
            ("max_age", c.max_age.unwrap().to_string()),
        ])
        .await;
    let mfa_at = tokens["access_token"].as_str().unwrap().to_string();
    let a = api(&demo, "POST", "/api/transfers", &mfa_at, Some(transfer), Some("m-1")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let res = demo
        .http
        .get(format!("{}/api/balance", demo.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // No token needed here (the README: a real deployment keeps it internal).
    let res = demo.http.get(format!("{}/metrics", demo.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = res.text().await.unwrap();
    for wanted in [
        "stepup_decisions_total{",
        r#"outcome="accepted",reason="ok""#,
        r#"outcome="refused",reason="missing_token""#,
        r#"outcome="refused",reason="step_up""#,
        r#"stepup_challenges_total{route="/api/transfers",acr=""#,
        r#"stepup_completions_total{route="/api/transfers"}"#,
        r#"stepup_completion_seconds_count{route="/api/transfers"}"#,
    ] {
        assert!(text.contains(wanted), "no {wanted} in\n{text}");
    }
    for line in text.lines() {
        assert!(
            !line.contains("alice") && !line.contains("eyJ"),
            "a subject or a token in /metrics: {line}"
        );
        // Every route label is a route pattern: MatchedPath reaches the layers.
        assert!(!line.contains(r#"route="unlabeled""#), "{line}");
    }

    // The page and what it loads, same origin, under a CSP without inline script.
    let res = demo.http.get(format!("{}/ops", demo.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/ops.mjs">"#));
    for (path, kind) in [
        ("/ops.mjs", "text/javascript"),
        ("/ops-model.mjs", "text/javascript"),
        ("/ops.css", "text/css"),
    ] {
        let res = demo.http.get(format!("{}{path}", demo.base)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            res.headers()[CONTENT_TYPE].to_str().unwrap().starts_with(kind),
            "{path}"
        );
    }
}
