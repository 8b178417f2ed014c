//! Observability of the demo: `GET /metrics` (Prometheus text of the `stepup_*` metrics of
//! stepup-tower's feature `metrics`) and `GET /ops`, a page that polls it and plots refusals,
//! step-up challenges and completions.
//!
//! Both are served without a token here; a real deployment keeps them on an internal port or
//! network.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process's Prometheus recorder: installed once, whatever number of times
/// [`crate::build`] runs (tests build many banks in one process). `None` when another
/// recorder was installed first.
static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often histogram samples are folded into their summaries when nobody scrapes
/// `/metrics` (a render does it too): their memory stays bounded.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The Content-Security-Policy of `/ops`: its own script, style and `/metrics`, nothing else.
const OPS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Installs the Prometheus recorder on first use and returns its handle.
pub(crate) fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => {
                let upkeep = handle.clone();
                let spawned = std::thread::Builder::new()
                    .name("metrics-upkeep".into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(UPKEEP_EVERY);
                            upkeep.run_upkeep();
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "no metrics upkeep thread; histograms are folded when /metrics is read");
                }
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the Prometheus recorder could not be installed (another metrics recorder is installed?); /metrics answers 503");
                None
            }
        })
        .as_ref()
}

/// `GET /metrics`: the Prometheus text exposition format.
pub(crate) async fn metrics() -> Response {
    match prometheus() {
        Some(handle) => (
            [
                (header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            "metrics unavailable: another metrics recorder was installed in this process before the demo's Prometheus recorder\n",
        )
            .into_response(),
    }
}

/// `GET /ops`: the page (its script is `/ops.mjs`, its style `/ops.css`).
pub(crate) async fn page() -> Response {
    let mut res = crate::web("text/html; charset=utf-8", include_str!("../web/ops.html"));
    res.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(OPS_CSP));
    res
}
