//! The gRPC bank end to end over loopback: a real tonic client against the real server
//! (HTTP/1.1 and HTTP/2 on one port), tokens from the embedded provider's login (password, then
//! TOTP only for the step-up), refusals as gRPC statuses with the challenge in the metadata.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bank_demo::ledger::Ledger;
use bytes::Bytes;
use dev_provider::{MFA_ACR, Provider};
use grpc_bank::pb;
use grpc_bank::pb::bank_client::BankClient;
use http_body_util::{BodyExt, Full};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::Value;
use stepup_tower::challenge::{BearerChallenge, ErrorCode};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

struct Server {
    base: String,
    addr: std::net::SocketAddr,
    provider: Provider,
    ledger: Arc<Ledger>,
    handled: Arc<AtomicU64>,
    http: reqwest::Client,
    _task: tokio::task::JoinHandle<()>,
}

async fn start() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let app = grpc_bank::build(&config(), &base).await.unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app.router).await.unwrap();
    });
    Server {
        base,
        addr,
        provider: app.bank.provider.unwrap(),
        ledger: app.bank.ledger,
        handled: app.handled,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _task: task,
    }
}

impl Server {
    async fn client(&self) -> BankClient<Channel> {
        let channel = Channel::from_shared(self.base.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        BankClient::new(channel)
    }

    fn handled(&self) -> u64 {
        self.handled.load(Ordering::SeqCst)
    }
}

/// The embedded provider's test user, shared with the bank demo's e2e tests.
#[path = "../../bank-demo/tests/e2e/login.rs"]
mod login;

use login::{Site, User, config, now};

impl Site for Server {
    fn base(&self) -> &str {
        &self.base
    }
    fn http(&self) -> &reqwest::Client {
        &self.http
    }
    fn provider(&self) -> &Provider {
        &self.provider
    }
}

/// Alice at the embedded provider.
fn alice(server: &Server) -> User<'_, Server> {
    User::new(server, "alice", "alice-demo-pw")
}

/// An authorization-code flow with PKCE to the end; the access token and the pages shown.
async fn login(user: &mut User<'_, Server>, extra: &[(&str, String)]) -> (String, Vec<&'static str>) {
    let (tokens, pages) = user.authorize(extra).await;
    (tokens["access_token"].as_str().unwrap().to_string(), pages)
}

fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

const EXTERNAL: &str = "DE89370400440532013000";

fn transfer(amount: &str, key: &str) -> pb::TransferRequest {
    pb::TransferRequest {
        to: EXTERNAL.into(),
        amount: amount.into(),
        idempotency_key: key.into(),
    }
}

/// The parsed `Bearer` challenge of a status; there must be one.
fn challenge(status: &Status) -> BearerChallenge {
    stepup_tower::grpc::challenge(status).unwrap_or_else(|| panic!("no Bearer challenge in {:?}", status.metadata()))
}

#[tokio::test]
async fn no_token_is_unauthenticated_with_a_bare_challenge() {
    let server = start().await;
    let mut client = server.client().await;
    for status in [
        client.get_balance(pb::GetBalanceRequest {}).await.unwrap_err(),
        client.transfer(transfer("1.00", "")).await.unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        let c = challenge(&status);
        // RFC 6750 §3.1: no error code when no credentials were sent.
        assert_eq!(c.error, None);
        assert_eq!(c.realm.as_deref(), Some("bank"));
        assert!(c.acr_values.is_empty());
        assert_eq!(
            c.resource_metadata,
            Some(format!("{}/.well-known/oauth-protected-resource", server.base))
        );
    }
    assert_eq!(server.handled(), 0);
}

#[tokio::test]
async fn a_bad_token_is_unauthenticated_invalid_token() {
    let server = start().await;
    let mut client = server.client().await;
    let expired = server
        .provider
        .mint_access_token("alice", MFA_ACR, &["pwd", "otp"], now() as i64);
    // Signature broken: the last character of the signature changed.
    let mut forged = expired.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for token in ["not-a-jwt", forged.as_str()] {
        let status = client
            .get_balance(authed(pb::GetBalanceRequest {}, token))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(challenge(&status).error, Some(ErrorCode::InvalidToken));
    }
    assert_eq!(server.handled(), 0);
}

/// The whole RFC 9470 loop over gRPC: a password login reads the balance; its transfer is
/// refused with the step-up challenge in the metadata; the client reads it from the status,
/// logs in again with what it asks (only the second factor is prompted), and the transfer goes
/// through.
#[tokio::test]
async fn transfer_is_challenged_then_succeeds_after_step_up() {
    let server = start().await;
    let mut client = server.client().await;
    let mut alice = alice(&server);
    let (password_token, pages) = login(&mut alice, &[]).await;
    assert_eq!(pages, ["login"]);

    let balance = client
        .get_balance(authed(pb::GetBalanceRequest {}, &password_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(balance.balance, "1000.00");
    assert_eq!(balance.currency, "EUR");
    assert_eq!(balance.account, bank_demo::ledger::iban_for("alice"));

    let status = client
        .transfer(authed(transfer("25.00", "k-1"), &password_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let c = challenge(&status);
    assert_eq!(c.error, Some(ErrorCode::InsufficientUserAuthentication));
    assert!(c.is_step_up());
    assert_eq!(c.acr_values, vec![MFA_ACR.to_string()]);
    assert_eq!(c.max_age, Some(300));
    assert_eq!(c.realm.as_deref(), Some("bank"));
    // The raw metadata is the HTTP challenge, byte for byte parseable by the HTTP parser.
    let raw = status.metadata().get("www-authenticate").unwrap().to_str().unwrap();
    assert!(raw.starts_with("Bearer "), "{raw}");
    assert!(raw.contains(r#"error="insufficient_user_authentication""#), "{raw}");
    assert_eq!(server.ledger.balance("alice").unwrap().1, "1000.00");
    let before = server.handled();

    // Step up with exactly what the challenge asked.
    let (mfa_token, pages) = login(
        &mut alice,
        &[
            ("acr_values", c.acr_values.join(" ")),
            ("max_age", c.max_age.unwrap().to_string()),
        ],
    )
    .await;
    assert_eq!(pages, ["mfa"]);
    let done = client
        .transfer(authed(transfer("25.00", "k-1"), &mfa_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.balance, "975.00");
    assert!(!done.replayed);
    let t = done.transfer.unwrap();
    assert_eq!(
        (t.to.as_str(), t.amount.as_str(), t.direction.as_str()),
        (EXTERNAL, "25.00", "out")
    );
    assert_eq!(t.from, balance.account);
    assert_eq!(server.handled(), before + 1);

    // The same idempotency key again: the first answer, nothing moved.
    let again = client
        .transfer(authed(transfer("25.00", "k-1"), &mfa_token))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    assert_eq!(again.transfer.unwrap().id, t.id);
    assert_eq!(again.balance, "975.00");
    assert_eq!(server.ledger.balance("alice").unwrap().1, "975.00");
    // The same key for another transfer is refused; the HTTP API shares the keys.
    let reused = client
        .transfer(authed(transfer("26.00", "k-1"), &mfa_token))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn a_stale_mfa_login_is_challenged_with_max_age() {
    let server = start().await;
    let mut client = server.client().await;
    let old = server
        .provider
        .mint_access_token("alice", MFA_ACR, &["pwd", "otp"], now() as i64 - 3600);
    let status = client.transfer(authed(transfer("1.00", ""), &old)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let c = challenge(&status);
    assert_eq!(c.error, Some(ErrorCode::InsufficientUserAuthentication));
    assert_eq!(c.max_age, Some(300));
    // Balance needs no recent login.
    assert!(client.get_balance(authed(pb::GetBalanceRequest {}, &old)).await.is_ok());
}

#[tokio::test]
async fn a_missing_scope_is_permission_denied() {
    let server = start().await;
    let mut client = server.client().await;
    let mut alice = alice(&server);
    let (token, _) = login(&mut alice, &[("scope", "openid".to_string())]).await;
    for status in [
        client
            .get_balance(authed(pb::GetBalanceRequest {}, &token))
            .await
            .unwrap_err(),
        client.transfer(authed(transfer("1.00", ""), &token)).await.unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        let c = challenge(&status);
        assert_eq!(c.error, Some(ErrorCode::InsufficientScope));
        assert_eq!(c.scope, vec!["accounts".to_string()]);
    }
    assert_eq!(server.handled(), 0);
}

#[tokio::test]
async fn ledger_errors_are_grpc_statuses() {
    let server = start().await;
    let mut client = server.client().await;
    let mfa = server
        .provider
        .mint_access_token("alice", MFA_ACR, &["pwd", "otp"], now() as i64);
    let own = bank_demo::ledger::iban_for("alice");
    let cases = [
        (
            pb::TransferRequest {
                to: "DE00".into(),
                amount: "1".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            pb::TransferRequest {
                to: EXTERNAL.into(),
                amount: "1.234".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            pb::TransferRequest {
                to: EXTERNAL.into(),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            pb::TransferRequest {
                to: own,
                amount: "1".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            pb::TransferRequest {
                to: EXTERNAL.into(),
                amount: "5000".into(),
                ..Default::default()
            },
            Code::FailedPrecondition,
        ),
        (
            pb::TransferRequest {
                to: EXTERNAL.into(),
                amount: "1".into(),
                idempotency_key: "k".repeat(256),
            },
            Code::InvalidArgument,
        ),
    ];
    for (req, code) in cases {
        let status = client.transfer(authed(req.clone(), &mfa)).await.unwrap_err();
        assert_eq!(status.code(), code, "{req:?}: {status:?}");
        assert!(
            stepup_tower::grpc::challenge(&status).is_none(),
            "not an authentication error"
        );
    }
    assert_eq!(server.ledger.balance("alice").unwrap().1, "1000.00");
}

/// An unknown method of the service needs a token too, and then is UNIMPLEMENTED.
#[tokio::test]
async fn unknown_methods_are_authenticated_then_unimplemented() {
    let server = start().await;
    let mfa = server
        .provider
        .mint_access_token("alice", MFA_ACR, &["pwd", "otp"], now() as i64);
    let (status, headers, _) = raw(&server, "/bank.v1.Bank/Close", None, frame(&[])).await;
    assert_eq!(status, 200);
    assert_eq!(headers["grpc-status"], "16");
    let (_, headers, trailers) = raw(&server, "/bank.v1.Bank/Close", Some(&mfa), frame(&[])).await;
    let grpc_status = headers.get("grpc-status").or(trailers.get("grpc-status")).unwrap();
    assert_eq!(grpc_status, "12");
}

/// A gRPC request over a raw HTTP/2 connection (h2c, prior knowledge): status, headers and
/// trailers of the answer.
async fn raw(
    server: &Server,
    path: &str,
    token: Option<&str>,
    body: Bytes,
) -> (http::StatusCode, http::HeaderMap, http::HeaderMap) {
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::post(format!("{}{path}", server.base))
        .header(CONTENT_TYPE, "application/grpc")
        .header("te", "trailers");
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = send.send_request(req.body(Full::new(body)).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    (parts.status, parts.headers, trailers)
}

/// A gRPC length-prefixed message (uncompressed).
fn frame(message: &[u8]) -> Bytes {
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// Garbage, truncated and oversized-length frames, a compressed flag without an encoding, and
/// an empty body: without a (valid) token none reaches a handler; each is answered with a
/// trailers-only `UNAUTHENTICATED` carrying the challenge.
#[tokio::test]
async fn malformed_frames_never_reach_the_handler_unauthenticated() {
    let server = start().await;
    let total = server.ledger.total_cents();
    let valid = prost::Message::encode_to_vec(&transfer("1.00", ""));
    let mut truncated = frame(&valid).to_vec();
    truncated.truncate(truncated.len() - 3);
    let bodies: Vec<Bytes> = vec![
        Bytes::new(),
        Bytes::from_static(b"\xff\xff\xff\xff\xff\xff\xff\xff garbage"),
        Bytes::from(truncated),
        Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
        Bytes::from(vec![1u8, 0, 0, 0, 1, 0]),
        frame(&valid),
        frame(b"\x0a\xff\xff\xff\xff\x0f"),
    ];
    let password = server
        .provider
        .mint_access_token("alice", "loa1", &["pwd"], now() as i64);
    for path in [grpc_bank::TRANSFER_PATH, grpc_bank::GET_BALANCE_PATH] {
        for token in [None, Some("garbage"), Some("a.b.c")] {
            for body in &bodies {
                let (status, headers, _) = raw(&server, path, token, body.clone()).await;
                assert_eq!(status, 200, "{path} {token:?} {body:?}");
                assert_eq!(headers["grpc-status"], "16", "{path} {token:?} {body:?}");
                assert!(
                    headers["content-type"]
                        .to_str()
                        .unwrap()
                        .starts_with("application/grpc")
                );
                let c = BearerChallenge::from_headers(&headers).unwrap().unwrap();
                assert_eq!(c.error.is_some(), token.is_some());
            }
        }
        // A valid token without the step-up: the transfer handler never runs either.
        if path == grpc_bank::TRANSFER_PATH {
            for body in &bodies {
                let (_, headers, _) = raw(&server, path, Some(&password), body.clone()).await;
                assert_eq!(headers["grpc-status"], "16");
                let c = BearerChallenge::from_headers(&headers).unwrap().unwrap();
                assert!(c.is_step_up());
            }
        }
    }
    assert_eq!(server.handled(), 0);
    assert_eq!(server.ledger.total_cents(), total);
    assert_eq!(server.ledger.accounts(), 2);
    assert_eq!(server.ledger.balance("alice").unwrap().1, "1000.00");

    // Authenticated but malformed: tonic refuses the frame before the handler (not 0, not 16).
    let mfa = server
        .provider
        .mint_access_token("alice", MFA_ACR, &["pwd", "otp"], now() as i64);
    for body in bodies.iter().skip(1).take(4) {
        let (_, headers, trailers) = raw(&server, grpc_bank::TRANSFER_PATH, Some(&mfa), body.clone()).await;
        let code = headers.get("grpc-status").or(trailers.get("grpc-status")).unwrap();
        assert_ne!(code, "0", "{body:?}");
        assert_ne!(code, "16", "{body:?}");
    }
    assert_eq!(server.handled(), 0);
    assert_eq!(server.ledger.balance("alice").unwrap().1, "1000.00");
}

/// The bank demo's HTTP routes answer on the same port as before.
#[tokio::test]
async fn http_routes_are_unchanged_on_the_same_port() {
    let server = start().await;
    let token = server
        .provider
        .mint_access_token("alice", "loa1", &["pwd"], now() as i64);
    let res = server
        .http
        .get(format!("{}/api/balance", server.base))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["balance"], "1000.00");
    assert_eq!(body["currency"], "EUR");

    let res = server
        .http
        .get(format!("{}/api/balance", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let c = BearerChallenge::parse(res.headers()[WWW_AUTHENTICATE].to_str().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(c.error, None);
    assert_eq!(c.realm.as_deref(), Some("bank"));

    let res = server
        .http
        .post(format!("{}/api/transfers", server.base))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .body(format!(r#"{{"to":"{EXTERNAL}","amount":"1.00"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let c = BearerChallenge::from_headers(res.headers()).unwrap().unwrap();
    assert!(c.is_step_up());

    for (path, status) in [
        ("/healthz", 200),
        ("/", 200),
        ("/nope", 404),
        ("/idp/.well-known/openid-configuration", 200),
    ] {
        let res = server.http.get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(res.status(), status, "{path}");
    }
}

/// The reflection service needs no token and lists `bank.v1.Bank`.
#[tokio::test]
async fn reflection_lists_the_service_without_a_token() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = start().await;
    let channel = Channel::from_shared(server.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("bank.v1.Bank".into()),
    ]
    .map(|m| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    });
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list")
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"bank.v1.Bank"), "{names:?}");
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no file descriptor")
    };
    assert!(!files.file_descriptor_proto.is_empty());
}
