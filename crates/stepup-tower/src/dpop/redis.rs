//! [`RedisReplayStore`]: the spent-proof store shared by every replica (feature `redis`).
//!
//! RFC 9449 §11.1 asks the resource server to reject a proof whose `jti` it has seen within the
//! proof window. Behind a load balancer a replayed proof may reach a replica other than the one
//! that accepted it first, so the replicas must share the memory of spent proofs. This store
//! keeps it in Redis (or Valkey) with one atomic command per proof:
//!
//! ```text
//! SET <prefix><key> 1 NX PX <ttl in ms>      "OK" → Insert::Fresh     nil → Insert::Replayed
//! ```
//!
//! The key is the 43-character base64url [`ReplayKey`]; the stored value is `1`. Nothing else
//! is written and nothing is ever read back, so the store holds neither tokens nor proofs.

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, RedisError, Value};

use super::replay::{Insert, InsertFuture, ReplayError, ReplayKey, ReplayStore};

/// Default number of connections of a [`RedisReplayStore`]: 4.
pub const DEFAULT_REDIS_POOL_SIZE: usize = 4;
/// Largest pool a [`RedisReplayStoreBuilder`] accepts: 64.
pub const MAX_REDIS_POOL_SIZE: usize = 64;
/// Default time one insert may take, connecting included: 250 ms.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// Default prefix of the keys written: `stepup:dpop:`.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "stepup:dpop:";

/// Longest expiry written, in milliseconds (about 34 years): a `PX` beyond what Redis can add
/// to its clock would be refused, and no proof window comes near it.
const MAX_TTL_MS: u64 = 1 << 40;
/// Longest failure text kept in [`ReplayError::Unavailable`].
const MAX_ERROR_TEXT: usize = 200;

/// A [`ReplayStore`] in Redis, shared by every replica that points at the same server.
///
/// - **Atomic**: one `SET key 1 NX PX ttl` per proof, so of two replicas inserting one key at
///   the same moment exactly one sees [`Insert::Fresh`].
/// - **A small pool**: `pool_size` connections (default 4), used in turn. Each is a
///   *multiplexed* connection: any number of callers write their commands on it at once and
///   the replies come back in order (Redis answers a connection's commands in the order it
///   received them), so one connection carries many concurrent inserts without waiting for a
///   free connection. A few connections only spread the (de)serialisation over the runtime's
///   threads and keep one slow reply from delaying all the others; a large pool adds server
///   connections and gains nothing.
/// - **Bounded time**: each insert, connecting included, gets `timeout` (default 250 ms), then
///   fails with [`ReplayError::Timeout`]. Any Redis or I/O failure is
///   [`ReplayError::Unavailable`], naming the failure and the server's address, never its
///   password. The layer answers both with 503 and `Retry-After` (fail-closed) unless
///   [`Dpop::replay_fail_open`](crate::dpop::Dpop::replay_fail_open) was chosen.
/// - **Lazy, self-healing connections**: building the store connects to nothing, so a replica
///   starts while Redis is down. A connection is made by the first insert that needs it; a
///   connection that fails, or leaves a command unanswered past the timeout (a peer gone
///   without a reset), is dropped and the next insert makes a new one. While the server
///   refuses connections each insert fails at once; once it is back, inserts succeed again
///   without a restart.
///
/// An insert that meets a connection which died while idle (e.g. after the server restarted)
/// retries once on a new connection, within the same `timeout`. Should the first `SET` have
/// reached the server after all, the retry answers [`Insert::Replayed`]: a rare false refusal,
/// never a replay let through.
///
/// Use it from a Tokio runtime with the time driver enabled (as axum servers are).
///
/// ```no_run
/// use std::time::Duration;
/// use stepup_tower::dpop::{Insert, RedisReplayStore, ReplayKey, ReplayStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisReplayStore::builder("redis://127.0.0.1:6379/0")
///     .pool_size(4)
///     .timeout(Duration::from_millis(250))
///     .key_prefix("bank:dpop:")
///     .build()?;
/// // Needs a running server from here on.
/// let key = ReplayKey::new("thumbprint", "jti-1");
/// assert_eq!(store.insert_if_absent(key, Duration::from_secs(300)).await?, Insert::Fresh);
/// assert_eq!(store.insert_if_absent(key, Duration::from_secs(300)).await?, Insert::Replayed);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisReplayStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    connection: AsyncConnectionConfig,
    slots: Box<[Slot]>,
    next: AtomicUsize,
    timeout: Duration,
    prefix: String,
    /// `host:port/db`: what failures name (never the password).
    target: String,
    /// The password of the URL, scrubbed from any failure text that might echo it.
    password: Option<String>,
}

/// One pooled connection, made on demand.
struct Slot {
    /// The live connection and its generation (so a late failure report cannot drop a newer
    /// connection).
    live: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Held while connecting, so a burst of inserts makes one connection, not one each.
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

/// Builds a [`RedisReplayStore`]: see [`RedisReplayStore::builder`].
#[derive(Clone)]
#[must_use]
pub struct RedisReplayStoreBuilder {
    url: String,
    pool_size: usize,
    timeout: Duration,
    key_prefix: String,
}

/// Why [`RedisReplayStoreBuilder::build`] refused its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfigError(String);

impl fmt::Display for RedisConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid Redis replay store configuration: {}", self.0)
    }
}

impl std::error::Error for RedisConfigError {}

impl RedisReplayStore {
    /// A builder for a store at `url`: `redis://[[user]:password@]host[:port][/db]` or
    /// `redis+unix:///path/to/socket[?db=N]` (TLS, `rediss://`, is not built in).
    pub fn builder(url: impl Into<String>) -> RedisReplayStoreBuilder {
        RedisReplayStoreBuilder {
            url: url.into(),
            pool_size: DEFAULT_REDIS_POOL_SIZE,
            timeout: DEFAULT_REDIS_TIMEOUT,
            key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_string(),
        }
    }

    /// The server's address and database, `host:port/db`, without credentials: safe to log.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// The prefix of every key written.
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The time one insert may take.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The number of pooled connections.
    pub fn pool_size(&self) -> usize {
        self.inner.slots.len()
    }
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("target", &self.inner.target)
            .field("key_prefix", &self.inner.prefix)
            .field("pool_size", &self.inner.slots.len())
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisReplayStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: only whether it parses is shown.
        f.debug_struct("RedisReplayStoreBuilder")
            .field(
                "target",
                &Client::open(self.url.as_str())
                    .map(|c| describe_target(&c))
                    .unwrap_or_else(|_| "<unparsable URL>".into()),
            )
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

impl RedisReplayStoreBuilder {
    /// Number of multiplexed connections used in turn (default 4, from 1 to 64). See
    /// [`RedisReplayStore`] for why a few are enough.
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections;
        self
    }

    /// Time one insert may take, connecting included (default 250 ms, at least 1 ms); then
    /// [`ReplayError::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Prefix of every key written (default `stepup:dpop:`): lets several services share a
    /// server, or one service keep apart its environments.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The store. Connects to nothing yet (see [`RedisReplayStore`]); fails only on settings:
    /// a URL that does not parse, a pool size out of range, a zero timeout.
    pub fn build(self) -> Result<RedisReplayStore, RedisConfigError> {
        if !(1..=MAX_REDIS_POOL_SIZE).contains(&self.pool_size) {
            return Err(RedisConfigError(format!(
                "pool_size must be from 1 to {MAX_REDIS_POOL_SIZE}, not {}",
                self.pool_size
            )));
        }
        if self.timeout < Duration::from_millis(1) {
            return Err(RedisConfigError("timeout must be at least 1 ms".into()));
        }
        // The parser's message never quotes the URL; it is reported as is, scrubbed anyway.
        let client = Client::open(self.url.as_str()).map_err(|e| {
            RedisConfigError(format!(
                "the Redis URL does not parse ({})",
                scrub(&e.to_string(), password_in(&self.url).as_deref())
            ))
        })?;
        let password = client
            .get_connection_info()
            .redis_settings()
            .password()
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        let target = describe_target(&client);
        // One clock for the whole insert: the store's own deadline (see `Inner::insert`).
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let slots = (0..self.pool_size)
            .map(|_| Slot {
                live: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
            })
            .collect();
        Ok(RedisReplayStore {
            inner: Arc::new(Inner {
                client,
                connection,
                slots,
                next: AtomicUsize::new(0),
                timeout: self.timeout,
                prefix: self.key_prefix,
                target,
                password,
            }),
        })
    }
}

/// `host:port/db` (or `socket-path/db`) of a client.
fn describe_target(client: &Client) -> String {
    let info = client.get_connection_info();
    format!("{}/{}", info.addr(), info.redis_settings().db())
}

/// The password part of a URL that did not parse as a Redis URL, if one can be seen.
fn password_in(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':').unwrap_or(("", userinfo));
    (!password.is_empty()).then(|| password.to_string())
}

/// `text` without `secret`, cut to [`MAX_ERROR_TEXT`] characters.
fn scrub(text: &str, secret: Option<&str>) -> String {
    let text = match secret {
        Some(s) if !s.is_empty() => text.replace(s, "***"),
        _ => text.to_string(),
    };
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((end, _)) => format!("{}…", text.get(..end).unwrap_or_default()),
        None => text,
    }
}

/// Whether a failed command says the connection itself is gone (then it is replaced).
fn connection_is_broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_timeout()
}

impl Slot {
    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        // A poisoned lock only means a panic elsewhere while it was held; the Option is sound.
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Drops the connection of `generation`, unless it was already replaced.
    fn discard(&self, generation: u64) {
        let mut live = self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if live.as_ref().is_some_and(|(g, _)| *g == generation) {
            *live = None;
        }
    }
}

impl Inner {
    fn slot(&self) -> Option<&Slot> {
        let n = self.slots.len().max(1);
        self.slots.get(self.next.fetch_add(1, Ordering::Relaxed) % n)
    }

    fn unavailable(&self, what: &str, e: &RedisError) -> ReplayError {
        let text = format!("{what} {}: {e}", self.target);
        ReplayError::Unavailable(scrub(&text, self.password.as_deref()))
    }

    /// The slot's connection, made now if it has none. `true` with a connection made now.
    async fn connection(&self, slot: &Slot) -> Result<(u64, MultiplexedConnection, bool), ReplayError> {
        if let Some((generation, conn)) = slot.current() {
            return Ok((generation, conn, false));
        }
        let _connecting = slot.connecting.lock().await;
        // Another insert may have connected while this one waited.
        if let Some((generation, conn)) = slot.current() {
            return Ok((generation, conn, false));
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.connection)
            .await
            .map_err(|e| self.unavailable("cannot connect to redis", &e))?;
        let generation = slot.generation.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        *slot.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((generation, conn.clone()));
        Ok((generation, conn, true))
    }

    /// One insert, all of it (waiting to connect included) before `deadline`.
    async fn insert(&self, key: ReplayKey, ttl: Duration, deadline: Instant) -> Result<Insert, ReplayError> {
        let timed_out = ReplayError::Timeout(self.timeout);
        let Some(slot) = self.slot() else {
            return Err(ReplayError::Unavailable(
                "redis replay store has no connection slot".into(),
            ));
        };
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).clamp(1, MAX_TTL_MS);
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(format!("{}{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms);
        let mut retried = false;
        loop {
            let (generation, mut conn, fresh) = timeout_at(deadline, self.connection(slot))
                .await
                .map_err(|_| timed_out.clone())??;
            let reply = match timeout_at(deadline, cmd.query_async::<Value>(&mut conn)).await {
                Ok(reply) => reply,
                Err(_) => {
                    // No answer in time: the connection may be half-open (a peer gone without
                    // a reset); the next insert on this slot starts a new one.
                    slot.discard(generation);
                    return Err(timed_out);
                }
            };
            match reply {
                Ok(Value::Okay) => return Ok(Insert::Fresh),
                Ok(Value::SimpleString(s)) if s == "OK" => return Ok(Insert::Fresh),
                Ok(Value::Nil) => return Ok(Insert::Replayed),
                Ok(_) => {
                    return Err(ReplayError::Unavailable(format!(
                        "unexpected reply to SET NX from redis {}",
                        self.target
                    )));
                }
                Err(e) => {
                    let broken = connection_is_broken(&e);
                    if broken {
                        slot.discard(generation);
                    }
                    // A connection that died while idle: once more on a new one.
                    if broken && !fresh && !retried && (e.is_io_error() || e.is_connection_dropped()) {
                        retried = true;
                        continue;
                    }
                    return Err(self.unavailable("SET NX failed on redis", &e));
                }
            }
        }
    }
}

impl ReplayStore for RedisReplayStore {
    fn insert_if_absent(&self, key: ReplayKey, ttl: Duration) -> InsertFuture<'_> {
        let deadline = Instant::now() + self.inner.timeout;
        Box::pin(self.inner.insert(key, ttl, deadline))
    }
}

#[cfg(test)]
mod tests {
    //! Unit tests of the settings, and `#[ignore]`d tests against a real server: run them with
    //! `tests/replicas/run.sh`, or by hand with `STEPUP_TEST_REDIS_URL=redis://127.0.0.1:PORT`
    //! and `cargo test -p stepup-tower --features redis --lib -- --ignored redis`.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    #[test]
    fn bad_settings_are_build_errors() {
        assert!(RedisReplayStore::builder("not a url").build().is_err());
        assert!(RedisReplayStore::builder("http://127.0.0.1:6379").build().is_err());
        let e = RedisReplayStore::builder("redis://127.0.0.1:6379").pool_size(0).build();
        assert!(e.unwrap_err().to_string().contains("pool_size"));
        assert!(
            RedisReplayStore::builder("redis://127.0.0.1:6379")
                .pool_size(MAX_REDIS_POOL_SIZE + 1)
                .build()
                .is_err()
        );
        assert!(
            RedisReplayStore::builder("redis://127.0.0.1:6379")
                .timeout(Duration::ZERO)
                .build()
                .is_err()
        );
    }

    #[test]
    fn builds_without_a_server_and_never_shows_the_password() {
        let url = "redis://user:s3cret-pw@127.0.0.1:1/2";
        let builder = RedisReplayStore::builder(url);
        assert!(!format!("{builder:?}").contains("s3cret-pw"));
        let store = builder.build().unwrap();
        assert_eq!(store.target(), "127.0.0.1:1/2");
        assert_eq!(store.key_prefix(), DEFAULT_REDIS_KEY_PREFIX);
        assert_eq!(store.pool_size(), DEFAULT_REDIS_POOL_SIZE);
        assert_eq!(store.timeout(), DEFAULT_REDIS_TIMEOUT);
        assert!(!format!("{store:?}").contains("s3cret-pw"));
        let e = RedisReplayStore::builder("redis://u:s3cret-pw@[::1:bad/")
            .build()
            .unwrap_err();
        assert!(!e.to_string().contains("s3cret-pw"), "{e}");
    }

    #[test]
    fn failure_text_is_scrubbed_and_short() {
        assert_eq!(scrub("auth pw123 failed", Some("pw123")), "auth *** failed");
        assert_eq!(scrub("x", Some("")), "x");
        let long = "é".repeat(500);
        assert_eq!(scrub(&long, None).chars().count(), MAX_ERROR_TEXT + 1);
        assert_eq!(password_in("redis://:pw@h/0").as_deref(), Some("pw"));
        assert_eq!(password_in("redis://u:p@ss@h").as_deref(), Some("p@ss"));
        assert_eq!(password_in("redis://h:6379"), None);
    }

    #[tokio::test]
    async fn server_down_at_start_is_an_error_not_a_hang() {
        // A port nothing listens on: refused at once.
        let port = free_port();
        let store = RedisReplayStore::builder(format!("redis://127.0.0.1:{port}"))
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let t0 = Instant::now();
        let r = store
            .insert_if_absent(ReplayKey::new("k", "j"), Duration::from_secs(1))
            .await;
        assert!(
            matches!(&r, Err(ReplayError::Unavailable(why)) if why.contains(&format!("127.0.0.1:{port}"))),
            "{r:?}"
        );
        assert!(t0.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout() {
        // Accepts connections and holds them, silent: the handshake never completes.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                held.push(stream);
            }
        });
        let timeout = Duration::from_millis(100);
        let store = RedisReplayStore::builder(format!("redis://127.0.0.1:{port}"))
            .pool_size(2)
            .timeout(timeout)
            .build()
            .unwrap();
        for i in 0..4 {
            let t0 = Instant::now();
            let r = store
                .insert_if_absent(ReplayKey::new("k", &i.to_string()), Duration::from_secs(1))
                .await;
            assert_eq!(r, Err(ReplayError::Timeout(timeout)));
            assert!(
                t0.elapsed() < timeout + Duration::from_millis(150),
                "{:?}",
                t0.elapsed()
            );
        }
    }

    // ---- against a real redis-server ---------------------------------------------------------

    const NEEDS: &str = "STEPUP_TEST_REDIS_URL (tests/replicas/run.sh sets it)";

    fn url() -> String {
        std::env::var("STEPUP_TEST_REDIS_URL").unwrap_or_else(|_| panic!("set {NEEDS}"))
    }

    /// A prefix no other test (or earlier run) uses.
    fn unique_prefix(name: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("stepup:test:{name}:{nanos}:")
    }

    fn store(prefix: &str) -> RedisReplayStore {
        RedisReplayStore::builder(url())
            .key_prefix(prefix)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    }

    async fn raw(url: &str) -> MultiplexedConnection {
        Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    #[tokio::test]
    #[ignore = "needs redis-server: tests/replicas/run.sh runs it"]
    async fn redis_fresh_then_replayed_with_prefix_and_ttl() {
        let prefix = unique_prefix("fresh");
        let store = store(&prefix);
        let key = ReplayKey::new("jkt", "jti-1");
        let ttl = Duration::from_secs(30);
        assert_eq!(store.insert_if_absent(key, ttl).await, Ok(Insert::Fresh));
        assert_eq!(store.insert_if_absent(key, ttl).await, Ok(Insert::Replayed));
        assert_eq!(
            store.insert_if_absent(ReplayKey::new("jkt", "jti-2"), ttl).await,
            Ok(Insert::Fresh)
        );
        // What is stored: `<prefix><43 base64url chars>` = "1", expiring within the TTL.
        let mut conn = raw(&url()).await;
        let name = format!("{prefix}{key}");
        let value: Option<String> = ::redis::cmd("GET").arg(&name).query_async(&mut conn).await.unwrap();
        assert_eq!(value.as_deref(), Some("1"));
        let pttl: i64 = ::redis::cmd("PTTL").arg(&name).query_async(&mut conn).await.unwrap();
        assert!(pttl > 25_000 && pttl <= 30_000, "PTTL {pttl}");
    }

    #[tokio::test]
    #[ignore = "needs redis-server: tests/replicas/run.sh runs it"]
    async fn redis_entry_expires_after_its_ttl() {
        let store = store(&unique_prefix("expiry"));
        let key = ReplayKey::new("jkt", "expiring");
        let ttl = Duration::from_millis(150);
        assert_eq!(store.insert_if_absent(key, ttl).await, Ok(Insert::Fresh));
        assert_eq!(store.insert_if_absent(key, ttl).await, Ok(Insert::Replayed));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(store.insert_if_absent(key, ttl).await, Ok(Insert::Fresh));
        // A zero TTL is stored for 1 ms, not refused by the server.
        let zero = ReplayKey::new("jkt", "zero");
        assert_eq!(store.insert_if_absent(zero, Duration::ZERO).await, Ok(Insert::Fresh));
    }

    #[tokio::test]
    #[ignore = "needs redis-server: tests/replicas/run.sh runs it"]
    async fn redis_two_replicas_see_each_others_proofs() {
        let prefix = unique_prefix("replicas");
        let (a, b) = (store(&prefix), store(&prefix));
        let ttl = Duration::from_secs(30);
        for i in 0..20 {
            let key = ReplayKey::new("jkt", &format!("jti-{i}"));
            let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            assert_eq!(first.insert_if_absent(key, ttl).await, Ok(Insert::Fresh));
            assert_eq!(second.insert_if_absent(key, ttl).await, Ok(Insert::Replayed));
        }
        // Another prefix is another namespace.
        let other = store(&unique_prefix("other"));
        let key = ReplayKey::new("jkt", "jti-0");
        assert_eq!(other.insert_if_absent(key, ttl).await, Ok(Insert::Fresh));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs redis-server: tests/replicas/run.sh runs it"]
    async fn redis_concurrent_inserts_of_one_key_give_one_fresh() {
        let prefix = unique_prefix("race");
        let stores = [store(&prefix), store(&prefix)];
        for round in 0..10 {
            let key = ReplayKey::new("jkt", &format!("raced-{round}"));
            let mut tasks = Vec::new();
            for i in 0..64 {
                let s = stores[i % 2].clone();
                tasks.push(tokio::spawn(async move {
                    s.insert_if_absent(key, Duration::from_secs(30)).await
                }));
            }
            let mut fresh = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(Insert::Fresh) => fresh += 1,
                    Ok(Insert::Replayed) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(fresh, 1, "round {round}");
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A redis-server of this test's own (the shared one must not stop under other tests).
    struct OwnServer {
        child: Child,
    }

    impl OwnServer {
        async fn start(port: u16, dir: &std::path::Path) -> Self {
            let bin = std::env::var("STEPUP_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
            let child = Command::new(&bin)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
            let server = Self { child };
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            server
        }

        fn stop(mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Drop for OwnServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[tokio::test]
    #[ignore = "needs redis-server: tests/replicas/run.sh runs it"]
    async fn redis_down_at_start_then_stopped_then_restarted() {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("stepup-redis-test-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let timeout = Duration::from_millis(250);
        let store = RedisReplayStore::builder(format!("redis://127.0.0.1:{port}"))
            .timeout(timeout)
            .build()
            .unwrap();
        let ttl = Duration::from_secs(30);
        let mut n = 0;
        let mut next_key = || {
            n += 1;
            ReplayKey::new("jkt", &format!("k{n}"))
        };

        // Down at start: the store was built; every insert fails within the timeout.
        for _ in 0..8 {
            let t0 = Instant::now();
            let r = store.insert_if_absent(next_key(), ttl).await;
            assert!(
                matches!(r, Err(ReplayError::Unavailable(_) | ReplayError::Timeout(_))),
                "{r:?}"
            );
            assert!(
                t0.elapsed() <= timeout + Duration::from_millis(100),
                "{:?}",
                t0.elapsed()
            );
        }

        // Up: every slot connects on demand.
        let server = OwnServer::start(port, &dir).await;
        for _ in 0..8 {
            assert_eq!(store.insert_if_absent(next_key(), ttl).await, Ok(Insert::Fresh));
        }

        // Stopped: errors, not hangs, on every slot (live connections died while idle).
        server.stop();
        for _ in 0..8 {
            let t0 = Instant::now();
            let r = store.insert_if_absent(next_key(), ttl).await;
            match &r {
                Err(ReplayError::Unavailable(why)) => assert!(why.contains("redis"), "{why}"),
                Err(ReplayError::Timeout(_)) => {}
                other => panic!("{other:?}"),
            }
            assert!(
                t0.elapsed() <= timeout + Duration::from_millis(100),
                "{:?}",
                t0.elapsed()
            );
        }

        // Restarted on the same port: fresh again, no new store needed.
        let server = OwnServer::start(port, &dir).await;
        for _ in 0..8 {
            assert_eq!(store.insert_if_absent(next_key(), ttl).await, Ok(Insert::Fresh));
        }
        let key = next_key();
        assert_eq!(store.insert_if_absent(key, ttl).await, Ok(Insert::Fresh));
        assert_eq!(store.insert_if_absent(key, ttl).await, Ok(Insert::Replayed));

        // Restarted while the connections were idle: the first insert on each still succeeds.
        server.stop();
        let _server = OwnServer::start(port, &dir).await;
        for _ in 0..8 {
            assert_eq!(store.insert_if_absent(next_key(), ttl).await, Ok(Insert::Fresh));
        }

        // Alive but not answering writes: a timeout, then inserts succeed again.
        let mut admin = raw(&format!("redis://127.0.0.1:{port}")).await;
        let () = ::redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(600)
            .arg("WRITE")
            .query_async(&mut admin)
            .await
            .unwrap();
        let t0 = Instant::now();
        assert_eq!(
            store.insert_if_absent(next_key(), ttl).await,
            Err(ReplayError::Timeout(timeout))
        );
        assert!(
            t0.elapsed() <= timeout + Duration::from_millis(100),
            "{:?}",
            t0.elapsed()
        );
        let () = ::redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query_async(&mut admin)
            .await
            .unwrap();
        for _ in 0..8 {
            assert_eq!(store.insert_if_absent(next_key(), ttl).await, Ok(Insert::Fresh));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
