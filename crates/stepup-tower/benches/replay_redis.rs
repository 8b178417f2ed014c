//! Latency of one DPoP replay insert in Redis (`SET key 1 NX PX ttl` through
//! `RedisReplayStore`): 20,000 sequential inserts, then 20,000 from 32 concurrent tasks, over
//! loopback. Prints one Markdown table row per mode (microseconds) for BENCHMARKS.md.
//!
//! ```sh
//! STEPUP_BENCH_REDIS=redis://127.0.0.1:6379 cargo bench -p stepup-tower --features redis --bench replay_redis
//! ```
//!
//! `tests/replicas/run.sh` starts a throw-away redis-server and runs it. Keys are written under
//! a prefix of their own and expire after 30 s.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stepup_tower::dpop::{Insert, RedisReplayStore, ReplayKey, ReplayStore};

const INSERTS: usize = 20_000;
const TASKS: usize = 32;
const WARM_UP: usize = 1_000;
const TTL: Duration = Duration::from_secs(30);

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probing
    }
    let Ok(url) = std::env::var("STEPUP_BENCH_REDIS") else {
        println!("replay_redis: STEPUP_BENCH_REDIS is not set (e.g. redis://127.0.0.1:6379); nothing measured");
        return;
    };
    let run = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let store = Arc::new(
        RedisReplayStore::builder(url)
            .key_prefix(format!("stepup:bench:{run}:"))
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    println!(
        "replay_redis: {} (pool {}), ttl {} s",
        store.target(),
        store.pool_size(),
        TTL.as_secs()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Warm-up: connect every pooled connection, fill the allocator.
        for i in 0..WARM_UP {
            insert(&store, &format!("warm-{i}")).await;
        }

        let mut sequential = Vec::with_capacity(INSERTS);
        let t0 = Instant::now();
        for i in 0..INSERTS {
            let start = Instant::now();
            insert(&store, &format!("seq-{i}")).await;
            sequential.push(start.elapsed());
        }
        let sequential_wall = t0.elapsed();

        let t0 = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let mut own = Vec::with_capacity(INSERTS / TASKS);
                    for i in 0..INSERTS / TASKS {
                        let start = Instant::now();
                        insert(&store, &format!("par-{t}-{i}")).await;
                        own.push(start.elapsed());
                    }
                    own
                })
            })
            .collect();
        let mut concurrent = Vec::with_capacity(INSERTS);
        for t in tasks {
            concurrent.extend(t.await.unwrap());
        }
        let concurrent_wall = t0.elapsed();

        println!();
        println!("| Redis insert (loopback) | count | p50 | p99 | p99.9 | max | inserts/s |");
        println!("|---|---|---|---|---|---|---|");
        row("sequential", sequential, sequential_wall);
        row(&format!("{TASKS} concurrent tasks"), concurrent, concurrent_wall);
    });
}

async fn insert(store: &RedisReplayStore, jti: &str) {
    let r = store.insert_if_absent(ReplayKey::new("bench-jkt", jti), TTL).await;
    assert_eq!(r, Ok(Insert::Fresh), "{jti}");
}

fn row(mode: &str, mut samples: Vec<Duration>, wall: Duration) {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_micros()
    };
    let rate = samples.len() as f64 / wall.as_secs_f64();
    println!(
        "| {mode} | {} | {} µs | {} µs | {} µs | {} µs | {rate:.0} |",
        samples.len(),
        at(0.50),
        at(0.99),
        at(0.999),
        samples.last().unwrap().as_micros()
    );
}
