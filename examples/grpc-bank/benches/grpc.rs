//! One unary gRPC call (`bank.v1.Bank/GetBalance`) over loopback, real tonic client and server
//! in one tokio runtime, measured side by side in one run:
//!
//! - `no_layer`: the same service and handler with no StepUp layer (the verified token is put
//!   in the request extensions by `axum::Extension`, so the handler does the same work);
//! - `layer_token_cache`: the full `grpc-bank` router (`grpc_bank::build`), the token verified
//!   by the layer with the verified-token cache on (the bank demo's default).
//!
//! Both servers get the same request bytes (the same `authorization` metadata). After the
//! criterion runs, an interleaved A/B pass (alternating batches, medians) prints both per-call
//! times and their ratio: the layer's cost must stay ≤ 1.10×.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout,
    missing_docs
)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::{Extension, Router};
use bank_demo::Config;
use criterion::{Criterion, criterion_group, criterion_main};
use dev_provider::PASSWORD_ACR;
use grpc_bank::pb::bank_client::BankClient;
use grpc_bank::pb::{GetBalanceRequest, bank_server::BankServer};
use grpc_bank::{BankService, SERVICE_NAME};
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

fn config() -> Config {
    Config {
        audience: "bank-api".into(),
        client_id: "bank-spa".into(),
        scope: "openid accounts".into(),
        // `STEPUP_TOKEN_CACHE`'s default (`Config::default()` has 0: off).
        token_cache: 10_000,
        ..Config::default()
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

struct Setup {
    with_layer: BankClient<Channel>,
    without: BankClient<Channel>,
    auth: MetadataValue<tonic::metadata::Ascii>,
    step_up: stepup_tower::StepUp,
}

async fn setup() -> Setup {
    // Through the layer: the whole application as `grpc-bank` serves it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = grpc_bank::build(&config(), &base).await.unwrap();
    let provider = app.bank.provider.clone().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let token = provider.mint_access_token("alice", PASSWORD_ACR, &["pwd"], now);
    let step_up = app.bank.auth.clone();
    // What the layer would leave in the extensions, verified once up front.
    let verified = step_up.verify(&token).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app.router).await.unwrap() });

    // Without the layer: the same bank router and the same handlers, the gRPC route unguarded.
    let mut plain = bank_demo::build(&config(), "http://127.0.0.1:1").await.unwrap();
    let service = BankService::new(plain.ledger.clone());
    let grpc = Router::new()
        .route_service(&format!("/{SERVICE_NAME}/{{*method}}"), BankServer::new(service))
        .route_layer(Extension(stepup_tower::Token(verified)));
    let base_plain = serve(std::mem::take(&mut plain.router).merge(grpc)).await;

    let connect = |b: String| async move { BankClient::new(Channel::from_shared(b).unwrap().connect().await.unwrap()) };
    Setup {
        with_layer: connect(base).await,
        without: connect(base_plain).await,
        auth: format!("Bearer {token}").parse().unwrap(),
        step_up,
    }
}

async fn call(client: &mut BankClient<Channel>, auth: &MetadataValue<tonic::metadata::Ascii>) {
    let mut req = Request::new(GetBalanceRequest {});
    req.metadata_mut().insert("authorization", auth.clone());
    let balance = client.get_balance(req).await.unwrap().into_inner();
    black_box(balance);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup());
    // Both answer before anything is measured.
    rt.block_on(async {
        call(&mut s.with_layer.clone(), &s.auth).await;
        call(&mut s.without.clone(), &s.auth).await;
    });

    let mut g = c.benchmark_group("grpc_get_balance");
    g.bench_function("no_layer", |b| {
        b.to_async(&rt).iter(|| {
            let mut client = s.without.clone();
            let auth = &s.auth;
            async move { call(&mut client, auth).await }
        });
    });
    g.bench_function("layer_token_cache", |b| {
        b.to_async(&rt).iter(|| {
            let mut client = s.with_layer.clone();
            let auth = &s.auth;
            async move { call(&mut client, auth).await }
        });
    });
    g.finish();

    // Interleaved A/B: short alternating batches, the order flipped every round, so that both
    // see the same machine load; the ratio is the median of the per-round (paired) ratios.
    let (rounds, batch) = (40u32, 250u32);
    let (mut plain, mut layered, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        let (mut a, mut b) = (s.without.clone(), s.with_layer.clone());
        for round in 0..rounds {
            let mut times = [Duration::ZERO; 2];
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let client = if which == 0 { &mut a } else { &mut b };
                let start = Instant::now();
                for _ in 0..batch {
                    call(client, &s.auth).await;
                }
                times[which] = start.elapsed() / batch;
            }
            plain.push(times[0]);
            layered.push(times[1]);
            ratios.push(times[1].as_secs_f64() / times[0].as_secs_f64());
        }
    });
    plain.sort();
    layered.sort();
    ratios.sort_by(f64::total_cmp);
    let (p, l, r) = (
        plain[plain.len() / 2],
        layered[layered.len() / 2],
        ratios[ratios.len() / 2],
    );
    let metrics = s.step_up.token_cache_metrics();
    println!(
        "grpc_get_balance side by side ({rounds} rounds × {batch} calls, medians): no_layer {p:?}/call, \
         layer_token_cache {l:?}/call, ratio {r:.3} (paired median; token cache: {} hits, {} misses)",
        metrics.hits, metrics.misses
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
