//! The HTTP side of the remote key cache: OIDC / RFC 8414 discovery, the JWKS request
//! (rustls, timeouts, a body cap, same-origin redirects only, `200` with a JSON body only) and
//! the TTL from `Cache-Control`.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use reqwest::{Client, StatusCode, Url};
use tokio::time::Instant;

use super::cache::Source;
use super::{CacheSettings, FetchError};
use crate::keys::{BoxFuture, KeySet};

/// Where the keys are.
#[derive(Debug, Clone)]
pub(super) enum Location {
    JwksUri(String),
    Discovery { issuer: String },
}

impl Location {
    /// The configured URL (the JWKS URL, or the issuer).
    pub(super) fn url(&self) -> &str {
        match self {
            Self::JwksUri(u) | Self::Discovery { issuer: u } => u,
        }
    }
}

/// Fetches a JWK Set over HTTP, discovering its URL first when needed.
pub(super) struct HttpSource {
    location: Location,
    client: Client,
    settings: CacheSettings,
    jwks_uri: ArcSwapOption<Url>,
}

impl HttpSource {
    pub(super) fn new(location: Location, client: Client, settings: CacheSettings) -> Result<Self, FetchError> {
        let jwks_uri = match &location {
            Location::JwksUri(u) => Some(Arc::new(parse_http_url(u)?)),
            Location::Discovery { issuer } => {
                parse_http_url(issuer)?;
                None
            }
        };
        Ok(Self {
            location,
            client,
            settings,
            jwks_uri: ArcSwapOption::new(jwks_uri),
        })
    }

    /// The JWKS URL in use (after discovery).
    pub(super) fn jwks_uri(&self) -> Option<String> {
        self.jwks_uri.load_full().map(|u| u.to_string())
    }

    async fn resolve(&self) -> Result<Arc<Url>, FetchError> {
        if let Some(u) = self.jwks_uri.load_full() {
            return Ok(u);
        }
        let Location::Discovery { issuer } = &self.location else {
            return Err(FetchError::NoJwksUri);
        };
        let url = Arc::new(discover(&self.client, issuer, &self.settings).await?);
        self.jwks_uri.store(Some(url.clone()));
        Ok(url)
    }

    async fn fetch_now(&self) -> Result<(KeySet, Duration), FetchError> {
        let url = self.resolve().await?;
        tracing::debug!(target: "stepup_tower", url = %url, "JWKS fetch started");
        let fetched = fetch_jwks(&self.client, &url, &self.settings).await;
        if fetched.is_err() && matches!(self.location, Location::Discovery { .. }) {
            // The provider may have moved its JWKS: discover again next time.
            self.jwks_uri.store(None);
        }
        fetched
    }
}

impl Source for HttpSource {
    fn fetch(&self) -> BoxFuture<'_, Result<(KeySet, Duration), FetchError>> {
        Box::pin(self.fetch_now())
    }

    fn name(&self) -> &str {
        self.location.url()
    }
}

/// The default HTTP client: connect and total timeouts, same-origin redirects only.
pub(super) fn default_client(settings: &CacheSettings) -> Result<Client, reqwest::Error> {
    Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .redirect(same_origin_redirects())
        .user_agent(concat!("stepup-tower/", env!("CARGO_PKG_VERSION")))
        .build()
}

pub(super) fn parse_http_url(u: &str) -> Result<Url, FetchError> {
    let url = Url::parse(u).map_err(|_| FetchError::InvalidUrl(u.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(FetchError::InvalidUrl(u.to_string()));
    }
    Ok(url)
}

pub(super) fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(Url::origin);
        if attempt.previous().len() > 5 {
            attempt.error("too many redirects")
        } else if first.is_some_and(|o| o != attempt.url().origin()) {
            let to = attempt.url().origin().ascii_serialization();
            attempt.error(FetchError::CrossOriginRedirect(to))
        } else {
            attempt.follow()
        }
    })
}

fn classify(e: &reqwest::Error) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout;
    }
    if e.is_redirect() {
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        while let Some(s) = source {
            if let Some(f) = s.downcast_ref::<FetchError>() {
                return f.clone();
            }
            source = s.source();
        }
        return FetchError::CrossOriginRedirect("unknown".into());
    }
    if e.is_connect() {
        return FetchError::Connect(e.to_string());
    }
    FetchError::Http(e.to_string())
}

/// GET a JSON document: 200 only, same origin after redirects, JSON content type, bounded body.
async fn get_json(
    client: &Client,
    url: &Url,
    settings: &CacheSettings,
    accept: &'static str,
) -> Result<(Vec<u8>, reqwest::header::HeaderMap), FetchError> {
    let mut res = client
        .get(url.clone())
        .header(ACCEPT, accept)
        .timeout(settings.timeout)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    if res.url().origin() != url.origin() {
        return Err(FetchError::CrossOriginRedirect(
            res.url().origin().ascii_serialization(),
        ));
    }
    if res.status() != StatusCode::OK {
        return Err(FetchError::Status(res.status().as_u16()));
    }
    if let Some(ct) = res.headers().get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !ct.contains("json") {
            return Err(FetchError::NotJson(format!("content-type {ct:?}")));
        }
    }
    let max = settings.max_body_bytes;
    if res.content_length().is_some_and(|l| l > max as u64) {
        return Err(FetchError::TooLarge { max });
    }
    let headers = res.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| classify(&e))? {
        if body.len() + chunk.len() > max {
            return Err(FetchError::TooLarge { max });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, headers))
}

async fn fetch_jwks(client: &Client, url: &Url, settings: &CacheSettings) -> Result<(KeySet, Duration), FetchError> {
    let (body, headers) = get_json(client, url, settings, "application/jwk-set+json, application/json").await?;
    serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| FetchError::NotJson(e.to_string()))?;
    // A well-formed JWK Set is the provider's word, even without a usable key: the caller
    // swaps it in (revocation by emptying the set).
    let set = KeySet::from_jwks_json(&body).map_err(|e| FetchError::InvalidJwkSet(e.to_string()))?;
    let ttl = ttl_from(&headers, settings);
    Ok((set, ttl))
}

/// RFC 9111 §5.2.2.1 `max-age`, clamped; `no-cache`/`no-store` mean the minimum.
fn ttl_from(headers: &reqwest::header::HeaderMap, s: &CacheSettings) -> Duration {
    let mut ttl = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',') {
            let d = directive.trim().to_ascii_lowercase();
            if d == "no-cache" || d == "no-store" {
                ttl = Some(Duration::ZERO);
            } else if let Some(v) = d.strip_prefix("max-age=")
                && let Ok(secs) = v.trim_matches('"').parse::<u64>()
            {
                ttl = Some(ttl.map_or(Duration::from_secs(secs), |t: Duration| {
                    t.min(Duration::from_secs(secs))
                }));
            }
        }
    }
    ttl.unwrap_or(s.default_ttl).clamp(s.min_ttl, s.max_ttl)
}

async fn discover(client: &Client, issuer: &str, settings: &CacheSettings) -> Result<Url, FetchError> {
    let base = parse_http_url(issuer)?;
    let oidc = parse_http_url(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))?;
    // RFC 8414 §3: the well-known segment goes between the host and the issuer's path.
    let path = base.path().trim_end_matches('/');
    let oauth = parse_http_url(&format!(
        "{}/.well-known/oauth-authorization-server{path}",
        base.origin().ascii_serialization()
    ))?;
    let mut last = FetchError::NoJwksUri;
    for url in [oidc, oauth] {
        let started = Instant::now();
        match get_json(client, &url, settings, "application/json").await {
            Ok((body, _)) => {
                let doc: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| FetchError::NotJson(e.to_string()))?;
                let found = doc.get("issuer").and_then(|v| v.as_str()).unwrap_or_default();
                if found != issuer {
                    let e = FetchError::IssuerMismatch {
                        expected: issuer.to_string(),
                        found: found.to_string(),
                    };
                    tracing::error!(target: "stepup_tower", url = %url, error = %e, "discovery refused");
                    return Err(e);
                }
                let jwks = doc
                    .get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .ok_or(FetchError::NoJwksUri)?;
                let jwks = parse_http_url(jwks).map_err(|_| FetchError::NoJwksUri)?;
                // An https issuer must not send us to plain http for its keys.
                if base.scheme() == "https" && jwks.scheme() != "https" {
                    return Err(FetchError::NoJwksUri);
                }
                tracing::info!(target: "stepup_tower", url = %url, jwks_uri = %jwks, elapsed_ms = started.elapsed().as_millis(), "discovery done");
                return Ok(jwks);
            }
            Err(e @ FetchError::Status(404)) => last = e,
            Err(e) => {
                tracing::warn!(target: "stepup_tower", url = %url, error = %e, "discovery failed");
                return Err(e);
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn cc(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn ttl_is_clamped() {
        let s = CacheSettings::default();
        assert_eq!(ttl_from(&HeaderMap::new(), &s), Duration::from_secs(600));
        assert_eq!(ttl_from(&cc("public, max-age=3600"), &s), Duration::from_secs(3600));
        assert_eq!(ttl_from(&cc("max-age=5"), &s), Duration::from_secs(60));
        assert_eq!(ttl_from(&cc("max-age=9999999"), &s), Duration::from_secs(86400));
        assert_eq!(ttl_from(&cc("no-store"), &s), Duration::from_secs(60));
        assert_eq!(ttl_from(&cc("max-age=abc"), &s), Duration::from_secs(600));
    }
}
