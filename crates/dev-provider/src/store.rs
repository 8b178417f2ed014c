//! What the provider keeps and what the browser carries: the sealed pending login, SSO
//! sessions, authorization codes, the failure counters behind factor throttling, and the
//! `jti` of the DPoP proofs accepted. Every
//! table is bounded ([`MAX_ENTRIES`]).

use std::collections::HashMap;

use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
use aws_lc_rs::rand::SecureRandom;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::web::{constant_time_eq, cookie};
use crate::{Provider, pages};

pub(crate) const SESSION_COOKIE: &str = "dev_idp_session";
pub(crate) const PRE_LOGIN_COOKIE: &str = "dev_idp_pre";
/// How long a pending login (the sealed request) stays usable.
const REQUEST_TTL: i64 = 600;
/// Bound of every table the provider keeps (codes, sessions, failure counters).
const MAX_ENTRIES: usize = 10_000;
/// First wait after a lockout; doubles per lockout up to [`MAX_BACKOFF`].
const BASE_BACKOFF: i64 = 30;
const MAX_BACKOFF: i64 = 15 * 60;
const SEAL_AAD: &[u8] = b"dev-provider pending login v1";

/// A pending login: carried by the browser, sealed, bound to the pre-login cookie.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// Names this pending login in the failure counters.
    pub(crate) id: String,
    /// The pre-login cookie it is bound to.
    pub(crate) pre: String,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) code_challenge: String,
    /// The granted scope.
    pub(crate) scope: String,
    pub(crate) mfa: bool,
    pub(crate) max_age: Option<i64>,
    pub(crate) force_login: bool,
    pub(crate) created: i64,
}

#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) pwd_at: i64,
    pub(crate) mfa_at: Option<i64>,
    pub(crate) created: i64,
    pub(crate) last_seen: i64,
    /// Order of creation (sessions opened in the same second).
    pub(crate) seq: u64,
}

pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: String,
    pub(crate) nonce: Option<String>,
    pub(crate) sub: String,
    pub(crate) acr: &'static str,
    pub(crate) amr: Vec<&'static str>,
    pub(crate) auth_time: i64,
    pub(crate) scope: String,
    pub(crate) expires: i64,
}

/// Failed factor checks of one user. The counters only go back to zero when that factor
/// succeeds, so a password login cannot wipe out the backoff earned by wrong codes.
#[derive(Default, Clone, Copy)]
struct Throttle {
    password: u32,
    code: u32,
    lockouts: u32,
    /// Each factor has its own lock: wrong passwords (which anyone can send) never block the
    /// second factor of a user who is already signed in.
    password_locked_until: i64,
    code_locked_until: i64,
}

/// Which factor was checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Factor {
    Password,
    Code,
}

#[derive(Default)]
pub(crate) struct Store {
    pub(crate) sessions: HashMap<String, Session>,
    next_seq: u64,
    pub(crate) codes: HashMap<String, Grant>,
    pub(crate) last_totp_step: HashMap<String, u64>,
    /// DPoP proofs accepted at the token endpoint (RFC 9449 §11.1): SHA-256 of the `jti` →
    /// the last second its proof could be accepted.
    pub(crate) dpop_jtis: HashMap<String, i64>,
    /// Known users only (a fixed set).
    throttle: HashMap<String, Throttle>,
    /// Failures per pending login: (count, expiry). Made only when a credential check failed.
    request_failures: HashMap<String, (u32, i64)>,
    /// Pending logins that were used, cancelled or ended by failures: id → expiry.
    ended: HashMap<String, i64>,
    /// When expired entries were last dropped (at most once a second: the scans are O(n)
    /// under the one lock, and anonymous requests reach them).
    last_prune: i64,
}

/// Keeps a table under [`MAX_ENTRIES`]: drops expired entries, then the tenth expiring first,
/// so that a full table costs one scan per tenth of its size, not one per insert.
pub(crate) fn bound<V>(map: &mut HashMap<String, V>, now: i64, expiry: impl Fn(&V) -> i64) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, v| expiry(v) > now);
    if map.len() < MAX_ENTRIES {
        return;
    }
    let mut expiries: Vec<i64> = map.values().map(&expiry).collect();
    let tenth = MAX_ENTRIES / 10;
    expiries.select_nth_unstable(tenth);
    let cut = expiries.get(tenth).copied().unwrap_or(i64::MAX);
    map.retain(|_, v| expiry(v) > cut);
}

impl Store {
    /// Drops expired codes and pending-login records, at most once a second.
    pub(crate) fn prune(&mut self, now: i64) {
        if now <= self.last_prune {
            return;
        }
        self.last_prune = now;
        self.codes.retain(|_, g| g.expires > now);
        self.request_failures.retain(|_, (_, exp)| *exp > now);
        self.ended.retain(|_, exp| *exp > now);
        self.dpop_jtis.retain(|_, exp| *exp >= now);
    }
}
impl Provider {
    /// Seals a pending login: base64url(nonce ‖ AES-256-GCM ciphertext and tag).
    pub(crate) fn seal(&self, pending: &Pending) -> Option<String> {
        let mut data = serde_json::to_vec(pending).ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.inner.rng.fill(&mut nonce).ok()?;
        self.inner
            .seal
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(SEAL_AAD), &mut data)
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    fn unseal(&self, sealed: &str) -> Option<Pending> {
        if sealed.len() > 4096 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let (nonce, rest) = bytes.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = rest.to_vec();
        let plain = self
            .inner
            .seal
            .open_in_place(nonce, Aad::from(SEAL_AAD), &mut data)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }

    /// The valid session of this browser (idle and absolute expiry checked; use recorded).
    pub(crate) fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let sid = cookie(headers, SESSION_COOKIE)?;
        let now = self.now();
        let c = &self.inner.config;
        let mut store = self.store();
        let s = store.sessions.get_mut(&sid)?;
        if now - s.last_seen > c.session_idle || now - s.created > c.session_absolute {
            let user = s.user.clone();
            store.sessions.remove(&sid);
            tracing::info!(target: "dev_provider", user = %user, "session expired");
            return None;
        }
        s.last_seen = now;
        Some((sid, s.clone()))
    }

    /// Opens a new session for `user`, ending its oldest ones beyond the per-user bound.
    pub(crate) fn open_session(&self, user: &str, now: i64) -> String {
        let sid = self.random(32);
        let c = &self.inner.config;
        let max = c.max_sessions_per_user.max(1);
        let mut store = self.store();
        store
            .sessions
            .retain(|_, s| now - s.last_seen <= c.session_idle && now - s.created <= c.session_absolute);
        let mut mine: Vec<(String, u64)> = store
            .sessions
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(k, s)| (k.clone(), s.seq))
            .collect();
        mine.sort_by_key(|(_, seq)| *seq);
        let excess = (mine.len() + 1).saturating_sub(max);
        for (old, _) in mine.into_iter().take(excess) {
            store.sessions.remove(&old);
        }
        let idle = c.session_idle;
        bound(&mut store.sessions, now, |s| s.last_seen + idle);
        store.next_seq += 1;
        let seq = store.next_seq;
        store.sessions.insert(
            sid.clone(),
            Session {
                user: user.to_string(),
                pwd_at: now,
                mfa_at: None,
                created: now,
                last_seen: now,
                seq,
            },
        );
        sid
    }

    /// Seconds `user` must still wait before `factor` is checked again, if locked out.
    pub(crate) fn locked_for(&self, user: &str, factor: Factor, now: i64) -> Option<i64> {
        let t = self.store().throttle.get(user).copied()?;
        let until = match factor {
            Factor::Password => t.password_locked_until,
            Factor::Code => t.code_locked_until,
        };
        (until > now).then_some(until - now)
    }

    /// Counts a failed password or code. Returns the wait in seconds when this failure ended
    /// the pending login.
    pub(crate) fn failed(&self, user: Option<&str>, factor: Factor, pending: &Pending, now: i64) -> Option<i64> {
        let max = self.inner.config.max_failures.max(1);
        let mut store = self.store();
        store.prune(now);
        let mut wait = None;
        if let Some(user) = user.filter(|u| self.inner.users.contains_key(*u)) {
            let t = store.throttle.entry(user.to_string()).or_default();
            let count = match factor {
                Factor::Password => &mut t.password,
                Factor::Code => &mut t.code,
            };
            *count = count.saturating_add(1);
            if *count % max == 0 {
                t.lockouts = t.lockouts.saturating_add(1);
                let backoff = BASE_BACKOFF
                    .saturating_mul(1i64 << t.lockouts.saturating_sub(1).min(10))
                    .min(MAX_BACKOFF);
                match factor {
                    Factor::Password => t.password_locked_until = now + backoff,
                    Factor::Code => t.code_locked_until = now + backoff,
                }
                wait = Some(backoff);
                tracing::info!(target: "dev_provider", user, backoff_s = backoff, "too many failures: user locked out");
            }
        }
        bound(&mut store.request_failures, now, |(_, exp)| *exp);
        let expires = pending.created + REQUEST_TTL;
        let count = {
            let e = store.request_failures.entry(pending.id.clone()).or_insert((0, expires));
            e.0 += 1;
            e.0
        };
        if count >= max || wait.is_some() {
            store.request_failures.remove(&pending.id);
            bound(&mut store.ended, now, |exp| *exp);
            store.ended.insert(pending.id.clone(), expires);
            return Some(wait.unwrap_or(BASE_BACKOFF));
        }
        None
    }

    /// A factor succeeded: its counter starts again; with no failure left, so does the backoff.
    pub(crate) fn succeeded(&self, user: &str, factor: Factor) {
        let mut store = self.store();
        if let Some(t) = store.throttle.get_mut(user) {
            match factor {
                Factor::Password => t.password = 0,
                Factor::Code => t.code = 0,
            }
            let now = self.now();
            if t.password == 0 && t.code == 0 && t.password_locked_until <= now && t.code_locked_until <= now {
                store.throttle.remove(user);
            }
        }
    }

    pub(crate) fn end_pending(&self, pending: &Pending, now: i64) {
        let mut store = self.store();
        store.prune(now);
        store.request_failures.remove(&pending.id);
        bound(&mut store.ended, now, |exp| *exp);
        store.ended.insert(pending.id.clone(), pending.created + REQUEST_TTL);
    }

    /// The pending login named by `sealed`, if it is genuine, fresh, not ended, and bound to
    /// this browser's pre-login cookie.
    pub(crate) fn pending(&self, headers: &HeaderMap, sealed: Option<&str>) -> Result<Pending, Box<Response>> {
        let expired = || {
            pages::error(
                StatusCode::BAD_REQUEST,
                "This login request is unknown, expired or already used. Start again from the application.",
            )
        };
        let Some(pending) = sealed.and_then(|s| self.unseal(s)) else {
            tracing::debug!(target: "dev_provider", "pending login refused: not a sealed request of ours");
            return Err(Box::new(expired()));
        };
        let now = self.now();
        if now - pending.created >= REQUEST_TTL || pending.created > now + 60 {
            return Err(Box::new(expired()));
        }
        let bound_here = cookie(headers, PRE_LOGIN_COOKIE).is_some_and(|pre| constant_time_eq(&pre, &pending.pre));
        if !bound_here {
            tracing::info!(target: "dev_provider", "pending login refused: not bound to this browser (pre-login cookie)");
            return Err(Box::new(pages::error(
                StatusCode::FORBIDDEN,
                "This login was started in another browser. Start again from the application.",
            )));
        }
        if self.store().ended.contains_key(&pending.id) {
            return Err(Box::new(expired()));
        }
        Ok(pending)
    }
}
