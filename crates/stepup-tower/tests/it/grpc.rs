//! gRPC calls refused in gRPC's terms (trailers-only, the challenge in metadata), the verified
//! token for non-axum services, and the login redirect for browser navigations. The real tonic
//! client and server run in examples/grpc-bank/tests.

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use stepup_tower::challenge::BearerChallenge;
use stepup_tower::keys::{KeySource, RemoteJwks};
use stepup_tower::navigation::LoginRedirect;
use stepup_tower::{Issuer, StepUp, Token};
use tower::ServiceExt as _;

use crate::support::*;

struct GrpcAnswer {
    http_status: StatusCode,
    grpc_status: Option<String>,
    grpc_message: Option<String>,
    content_type: Option<String>,
    challenge: Option<BearerChallenge>,
    body_len: usize,
}

async fn grpc_call(app: &axum::Router, path: &str, content_type: &str, token: Option<&str>) -> GrpcAnswer {
    let mut b = Request::post(path)
        .header("content-type", content_type)
        .header("te", "trailers");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    // A length-prefixed message frame: flag 0, length 0.
    let res = app
        .clone()
        .oneshot(b.body(Body::from(vec![0u8; 5])).unwrap())
        .await
        .unwrap();
    let h = res.headers().clone();
    let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string());
    GrpcAnswer {
        http_status: res.status(),
        grpc_status: get("grpc-status"),
        grpc_message: get("grpc-message"),
        content_type: get("content-type"),
        challenge: BearerChallenge::from_headers(&h).unwrap(),
        body_len: res.into_body().collect().await.unwrap().to_bytes().len(),
    }
}

#[tokio::test]
async fn grpc_refusals_are_trailers_only_with_the_challenge_in_metadata() {
    let app = app(&step_up());
    // No token: UNAUTHENTICATED, the bare challenge.
    for ct in ["application/grpc", "application/grpc+proto", "application/grpc+json"] {
        let a = grpc_call(&app, "/balance", ct, None).await;
        assert_eq!(a.http_status, 200, "{ct}");
        assert_eq!(a.grpc_status.as_deref(), Some("16"));
        assert_eq!(a.content_type.as_deref(), Some("application/grpc"));
        assert_eq!(a.body_len, 0, "trailers-only: no message");
        let c = a.challenge.unwrap();
        assert_eq!(c.error, None);
        assert_eq!(c.realm.as_deref(), Some("bank"));
    }
    // Step-up: UNAUTHENTICATED with the RFC 9470 challenge, message percent-encoded text.
    let a = grpc_call(&app, "/transfer", "application/grpc", Some(&mint(&pwd_claims()))).await;
    assert_eq!(a.grpc_status.as_deref(), Some("16"));
    let c = a.challenge.unwrap();
    assert!(c.is_step_up());
    assert_eq!(c.acr_values, [MFA]);
    assert_eq!(c.max_age, Some(300));
    assert_eq!(a.grpc_message.as_deref(), c.error_description.as_deref());
    // Missing scope: PERMISSION_DENIED.
    let a = grpc_call(&app, "/scoped", "application/grpc", Some(&mint(&pwd_claims()))).await;
    assert_eq!(a.grpc_status.as_deref(), Some("7"));
    assert_eq!(a.challenge.unwrap().scope, ["transfer"]);
    // A bad token: UNAUTHENTICATED invalid_token.
    let a = grpc_call(&app, "/balance", "application/grpc", Some("a.b.c")).await;
    assert_eq!(a.grpc_status.as_deref(), Some("16"));
    assert_eq!(a.challenge.unwrap().error.unwrap().as_str(), "invalid_token");
    // The same requests without the gRPC content type: HTTP as before.
    let r = call(&app, "/transfer", &mint(&pwd_claims())).await;
    r.assert_refused(401, Some("insufficient_user_authentication"));
    // A grpc-web request is not gRPC over HTTP/2: answered over HTTP.
    let a = grpc_call(&app, "/balance", "application/grpc-web", None).await;
    assert_eq!(a.http_status, 401);
    assert_eq!(a.grpc_status, None);
}

#[tokio::test]
async fn unavailable_keys_are_grpc_unavailable_without_a_challenge() {
    // A key server that is not there.
    let remote = RemoteJwks::from_jwks_uri("http://127.0.0.1:9/jwks")
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let auth = StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).audience(AUD).key_source(remote.clone()))
        .realm("bank")
        .unavailable_keys_as_503()
        .build()
        .unwrap();
    assert!(remote.current().is_err());
    let a = grpc_call(&app(&auth), "/balance", "application/grpc", Some(&mint(&pwd_claims()))).await;
    assert_eq!(a.http_status, 200);
    assert_eq!(a.grpc_status.as_deref(), Some("14"));
    assert!(a.challenge.is_none(), "the token is not at fault");
}

#[tokio::test]
async fn a_plain_tower_service_reads_the_verified_token_from_the_extensions() {
    use tower::Layer as _;
    let auth = step_up();
    let svc = auth
        .authenticate()
        .layer(tower::service_fn(|req: Request<Body>| async move {
            let sub = req
                .extensions()
                .get::<Token>()
                .and_then(|t| t.0.context().sub.clone())
                .unwrap_or_default();
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::from(sub)))
        }));
    let res = svc
        .oneshot(get_with("/", Some(&format!("Bearer {}", mint(&pwd_claims())))))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "alice");
}

const CHROME_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";

async fn navigate(app: &axum::Router, path: &str, accept: &str, token: Option<&str>) -> (u16, Option<String>) {
    let mut b = Request::get(path).header("accept", accept);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let res = app.clone().oneshot(b.body(Body::empty()).unwrap()).await.unwrap();
    let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_string());
    (res.status().as_u16(), location)
}

#[tokio::test]
async fn browser_navigations_are_sent_to_log_in_and_api_calls_keep_the_401() {
    let auth = StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).audience(AUD).static_keys(issuer_keys()))
        .realm("bank")
        .login_redirect(LoginRedirect::new("/login?app=bank").unwrap())
        .build()
        .unwrap();
    let app = app(&auth);
    let weak = mint(&pwd_claims());
    let (status, location) = navigate(&app, "/transfer?to=bob&amount=5", CHROME_ACCEPT, Some(&weak)).await;
    assert_eq!(status, 303);
    let mfa = MFA.replace(':', "%3A").replace('/', "%2F");
    assert_eq!(
        location.unwrap(),
        format!("/login?app=bank&acr_values={mfa}&max_age=300&return_to=%2Ftransfer%3Fto%3Dbob%26amount%3D5")
    );
    // API calls: the 401 and its challenge.
    for accept in ["application/json", "*/*", "text/html, application/json"] {
        let (status, location) = navigate(&app, "/transfer", accept, Some(&weak)).await;
        assert_eq!((status, location), (401, None), "{accept}");
    }
    // Without a token, only when the app chose so.
    assert_eq!(navigate(&app, "/balance", CHROME_ACCEPT, None).await.0, 401);
    // Bad tokens are not redirected (nothing to log in again for on this page's behalf).
    assert_eq!(navigate(&app, "/transfer", CHROME_ACCEPT, Some("a.b.c")).await.0, 401);
}

#[tokio::test]
async fn return_to_can_never_become_an_open_redirect() {
    let auth = StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).audience(AUD).static_keys(issuer_keys()))
        .login_redirect(
            LoginRedirect::new("https://app.example.test/login")
                .unwrap()
                .also_without_token(),
        )
        .build()
        .unwrap();
    let app = axum::Router::new()
        .fallback(|| async { "page" })
        .layer(auth.authenticate());
    for (path, want) in [
        ("/accounts", "%2Faccounts"),
        ("//evil.example/x", "%2Fevil.example%2Fx"),
        ("/%2F%2Fevil.example", "%2F%252F%252Fevil.example"),
        ("/\\evil.example", "%2Fevil.example"),
        ("http://evil.example/x?y=1", "%2Fx%3Fy%3D1"),
    ] {
        let (status, location) = navigate(&app, path, CHROME_ACCEPT, None).await;
        assert_eq!(status, 303, "{path}");
        let location = location.unwrap();
        assert_eq!(
            location,
            format!("https://app.example.test/login?return_to={want}"),
            "{path}"
        );
    }
}
