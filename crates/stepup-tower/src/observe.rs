//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`): the
//! application installs the recorder (exporter) it wants; without one, or without the feature,
//! every call here is a no-op.
//!
//! Every name starts with `stepup_`. Labels are fixed sets or configuration (route patterns,
//! acr values, issuer URLs): never a subject, a token, or a raw request path.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `stepup_decisions_total` | counter | `outcome` (`accepted`, `refused`), `reason`, `error` | one per request: `reason` is `ok`, `anonymous` (optional layer, no token) or the refusal (`missing_token`, `invalid_request`, `invalid_token`, `insufficient_scope`, `step_up`, `keys_unavailable`, `invalid_dpop_proof`, `use_dpop_nonce`, `replay_unavailable`); `error` says why a token or proof was refused (`expired`, `bad_signature`, …; `none` otherwise) |
//! | `stepup_challenges_total` | counter | `route`, `acr` | step-up challenges (`insufficient_user_authentication`) per route and acr values asked |
//! | `stepup_completions_total` | counter | `route` | requests that met a route's requirement after the same subject was challenged on that route within 10 minutes |
//! | `stepup_completion_seconds` | histogram | `route` | time from that challenge to the completion |
//! | `stepup_verify_seconds` | histogram | — | time to verify a token (signature and claims) that the token cache did not hold; hits are counted by `stepup_token_cache_hits_total` |
//! | `stepup_token_cache_hits_total`, `stepup_token_cache_misses_total` | counter | — | the verified-token cache |
//! | `stepup_key_fetches_total` | counter | `issuer`, `result` (`ok`, `error`) | JWKS fetches of a remote key set |
//! | `stepup_key_fetch_failures_total` | counter | `issuer`, `reason` (`transport`, `status`, `too_large`, `not_a_jwk_set`, `redirect`, …) | why fetches failed |
//! | `stepup_key_refetches_suppressed_total` | counter | `issuer` | refetches asked for (unknown `kid`) but held back by the cooldown |
//! | `stepup_key_set_age_seconds` | gauge | `issuer` | age of the key set in use |
//!
//! `route` is axum's `MatchedPath` (the route pattern, e.g. `/api/transfers`) when the layer
//! runs inside a router, else the label set with
//! [`StepUpLayer::route_label`](crate::StepUpLayer::route_label), else `unlabeled`.

use crate::response::RefusalKind;

/// The `reason` and `error` of a refusal: fixed names (metrics labels, log fields).
pub(crate) fn labels(kind: &RefusalKind) -> (&'static str, &'static str) {
    match kind {
        RefusalKind::MissingToken => ("missing_token", "none"),
        RefusalKind::InvalidRequest(_) => ("invalid_request", "none"),
        RefusalKind::InvalidToken(e) => ("invalid_token", e.code()),
        RefusalKind::KeysUnavailable(e) => ("keys_unavailable", e.code()),
        RefusalKind::InsufficientScope(_) => ("insufficient_scope", "none"),
        RefusalKind::StepUp(_) => ("step_up", "none"),
        RefusalKind::InvalidDpopProof(e) => ("invalid_dpop_proof", e.code()),
        RefusalKind::UseDpopNonce => ("use_dpop_nonce", "none"),
        RefusalKind::ReplayUnavailable(_) => ("replay_unavailable", "none"),
    }
}

#[cfg(feature = "metrics")]
mod enabled {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::{Duration, Instant};

    use quick_cache::sync::Cache;

    use crate::response::Refusal;

    /// How long after a challenge a success still counts as its completion.
    const COMPLETION_WINDOW: Duration = Duration::from_secs(600);
    /// Challenges remembered at once (LRU): bounded memory under any traffic.
    const COMPLETION_ENTRIES: usize = 100_000;

    /// Open challenges by SHA-256(issuer ‖ subject ‖ route ‖ the challenging layer).
    pub(crate) struct Completions {
        open: Cache<[u8; 32], Instant>,
        /// When (the layer's clock, seconds) the last challenge was remembered: while none is
        /// younger than the window, a met requirement has nothing to look up.
        last: AtomicI64,
    }

    impl Default for Completions {
        fn default() -> Self {
            Self {
                open: Cache::new(COMPLETION_ENTRIES),
                last: AtomicI64::new(i64::MIN),
            }
        }
    }

    /// `layer` tells apart the layers a request passes on one route (a scope rule and the
    /// step-up rule both see the route pattern): only the layer that challenged completes.
    fn key(iss: &str, sub: &str, route: &str, layer: usize) -> [u8; 32] {
        let mut input = Vec::with_capacity(iss.len() + sub.len() + route.len() + 11);
        for (i, part) in [iss, sub, route].into_iter().enumerate() {
            if i > 0 {
                input.push(0);
            }
            input.extend_from_slice(part.as_bytes());
        }
        input.push(0);
        input.extend_from_slice(&layer.to_be_bytes());
        crate::crypto::sha256(&input)
    }

    impl Completions {
        /// A step-up challenge was sent to `sub` on `route` at `now`.
        pub(crate) fn challenged(&self, iss: &str, sub: &str, route: &str, layer: usize, now: i64) {
            self.last.fetch_max(now, Ordering::Relaxed);
            self.open.insert(key(iss, sub, route, layer), Instant::now());
        }

        /// Whether a challenge may still wait for its completion at `now`: one atomic load,
        /// so that a hot route with no step-up going on pays nothing more.
        pub(crate) fn any_open(&self, now: i64) -> bool {
            let window = i64::try_from(COMPLETION_WINDOW.as_secs()).unwrap_or(i64::MAX);
            now <= self.last.load(Ordering::Relaxed).saturating_add(window)
        }

        /// `sub` met `route`'s requirement: a completion if it was challenged there lately.
        pub(crate) fn met(&self, iss: &str, sub: &str, route: &str, layer: usize) {
            if self.open.is_empty() {
                return;
            }
            let k = key(iss, sub, route, layer);
            if let Some((_, at)) = self.open.remove(&k) {
                let elapsed = at.elapsed();
                if elapsed <= COMPLETION_WINDOW {
                    metrics::counter!("stepup_completions_total", "route" => route.to_string()).increment(1);
                    metrics::histogram!("stepup_completion_seconds", "route" => route.to_string())
                        .record(elapsed.as_secs_f64());
                }
            }
        }
    }

    /// Handles of the label-free metrics on the request path, registered at first use (so a
    /// recorder must be installed before the first request; `with_local_recorder` scopes work
    /// when the `StepUp` is built inside them). Saves a registry lookup per metric per request.
    #[derive(Default)]
    pub(crate) struct Hot(std::sync::OnceLock<HotHandles>);

    pub(crate) struct HotHandles {
        verify: metrics::Histogram,
        ok: metrics::Counter,
        anonymous: metrics::Counter,
        hits: metrics::Counter,
        misses: metrics::Counter,
    }

    impl Hot {
        fn get(&self) -> &HotHandles {
            self.0.get_or_init(|| HotHandles {
                verify: metrics::histogram!("stepup_verify_seconds"),
                ok: metrics::counter!("stepup_decisions_total", "outcome" => "accepted", "reason" => "ok", "error" => "none"),
                anonymous: metrics::counter!("stepup_decisions_total", "outcome" => "accepted", "reason" => "anonymous", "error" => "none"),
                hits: metrics::counter!("stepup_token_cache_hits_total"),
                misses: metrics::counter!("stepup_token_cache_misses_total"),
            })
        }

        pub(crate) fn verify_time(&self, started: Instant) {
            self.get().verify.record(started.elapsed().as_secs_f64());
        }

        pub(crate) fn token_cache(&self, hit: bool) {
            let h = self.get();
            if hit {
                h.hits.increment(1)
            } else {
                h.misses.increment(1)
            }
        }

        /// What the layer that let a request through owes the decision count.
        pub(crate) fn owed(&self, anonymous: bool, step_up: u64) -> Owed {
            let h = self.get();
            Owed(Some((
                if anonymous { h.anonymous.clone() } else { h.ok.clone() },
                step_up,
            )))
        }
    }

    /// A request that the first layer of a [`StepUp`](crate::StepUp) let through is counted
    /// "accepted" once, when its response comes back, unless a later layer of the same
    /// `StepUp` refused it (that layer counted the refusal and marked its response with
    /// [`Refused`]). Nothing is allocated per request.
    pub(crate) struct Owed(Option<(metrics::Counter, u64)>);

    impl Owed {
        /// Owes nothing (a later layer: the first one counts).
        pub(crate) fn none() -> Self {
            Self(None)
        }

        pub(crate) fn is_none(&self) -> bool {
            self.0.is_none()
        }

        /// The response (or the inner service's error) came back: count it, once.
        pub(crate) fn settle<B, E>(&mut self, out: &mut Result<http::Response<B>, E>) {
            let Some((accepted, step_up)) = self.0.take() else {
                return;
            };
            if let Ok(res) = out
                && res.extensions().get::<Refused>().is_some_and(|r| r.0 == step_up)
            {
                res.extensions_mut().remove::<Refused>();
                return;
            }
            accepted.increment(1);
        }
    }

    /// Marks the response of a refusal (counted where it was made) with the `StepUp` it came
    /// from.
    #[derive(Clone, Copy)]
    pub(crate) struct Refused(pub(crate) u64);

    /// A refusal, counted at once.
    pub(crate) fn refusal(refusal: &Refusal) {
        let (reason, error) = super::labels(refusal.kind());
        metrics::counter!("stepup_decisions_total", "outcome" => "refused", "reason" => reason, "error" => error)
            .increment(1);
    }

    pub(crate) fn challenge(route: String, acr: String) {
        metrics::counter!("stepup_challenges_total", "route" => route, "acr" => acr).increment(1);
    }

    pub(crate) fn key_fetch(issuer: &Arc<str>, failure: Option<&'static str>) {
        let issuer = metrics::SharedString::from(issuer.clone());
        match failure {
            None => metrics::counter!("stepup_key_fetches_total", "issuer" => issuer, "result" => "ok").increment(1),
            Some(reason) => {
                metrics::counter!("stepup_key_fetches_total", "issuer" => issuer.clone(), "result" => "error")
                    .increment(1);
                metrics::counter!("stepup_key_fetch_failures_total", "issuer" => issuer, "reason" => reason)
                    .increment(1);
            }
        }
    }

    pub(crate) fn key_refetch_suppressed(issuer: &Arc<str>) {
        metrics::counter!("stepup_key_refetches_suppressed_total", "issuer" => metrics::SharedString::from(issuer.clone()))
            .increment(1);
    }

    pub(crate) fn key_set_age_gauge(issuer: &Arc<str>) -> metrics::Gauge {
        metrics::gauge!("stepup_key_set_age_seconds", "issuer" => metrics::SharedString::from(issuer.clone()))
    }
}

#[cfg(feature = "metrics")]
pub(crate) use enabled::*;

/// Without the `metrics` feature: nothing is owed.
#[cfg(not(feature = "metrics"))]
pub(crate) struct Owed;

#[cfg(not(feature = "metrics"))]
impl Owed {
    pub(crate) fn none() -> Self {
        Self
    }

    pub(crate) fn is_none(&self) -> bool {
        true
    }

    #[inline]
    pub(crate) fn settle<B, E>(&mut self, _: &mut Result<http::Response<B>, E>) {}
}
