//! RFC 9728 OAuth 2.0 Protected Resource Metadata: the document clients read to learn which
//! authorization servers issue tokens for this API, and the `resource_metadata` parameter every
//! challenge points to it with (RFC 9728 §5.1).
//!
//! ```
//! use axum::Router;
//! use stepup_tower::{Issuer, StepUp, keys::KeySet, metadata::ResourceMetadata};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let metadata = ResourceMetadata::new("https://bank.example.com")
//!     .authorization_server("https://id.example.com")
//!     .scopes_supported(["accounts"])
//!     .resource_name("Example bank");
//! let auth = StepUp::builder()
//!     .issuer(Issuer::access_tokens("https://id.example.com").audience("bank-api")
//!         .static_keys(KeySet::new()))
//!     .protected_resource(&metadata) // every challenge carries resource_metadata="…"
//!     .build()?;
//! let app: Router = Router::new()
//!     .route_service(&metadata.well_known_path(), metadata.service());
//! assert_eq!(metadata.url(), "https://bank.example.com/.well-known/oauth-protected-resource");
//! # let _ = (auth, app); Ok(())
//! # }
//! ```

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use serde_json::{Map, Value, json};
use tower_service::Service;

/// The well-known path segment of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// An RFC 9728 protected-resource metadata document, built once.
#[derive(Debug, Clone)]
#[must_use]
pub struct ResourceMetadata {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    bearer_methods_supported: Vec<String>,
    resource_name: Option<String>,
    extra: Map<String, Value>,
}

impl ResourceMetadata {
    /// Metadata of the resource identified by `resource` (RFC 9728 §1.2: an https URL without
    /// query or fragment, e.g. `https://bank.example.com`). Bearer tokens are accepted in the
    /// `Authorization` header (RFC 6750 §2.1) unless [`ResourceMetadata::bearer_methods`] says
    /// otherwise.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            // RFC 9728 §3.3: the document's `resource` is the identifier, verbatim.
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".into()],
            resource_name: None,
            extra: Map::new(),
        }
    }

    /// Adds an issuer whose tokens the resource accepts (`authorization_servers`).
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// The scopes the resource uses in authorization requests (`scopes_supported`).
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// How bearer tokens may be sent (`bearer_methods_supported`; default `["header"]`).
    pub fn bearer_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.bearer_methods_supported = methods.into_iter().map(Into::into).collect();
        self
    }

    /// A human-readable name (`resource_name`).
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Any other member (RFC 9728 §2), e.g. `dpop_signing_alg_values_supported`.
    pub fn member(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra.insert(name.into(), value);
        self
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The path the document is served at (RFC 9728 §3.1): the well-known segment, then the
    /// path of the resource identifier, if any.
    pub fn well_known_path(&self) -> String {
        format!("{WELL_KNOWN}{}", split(&self.resource).1)
    }

    /// The document's URL, for `resource_metadata` in challenges (RFC 9728 §5.1).
    pub fn url(&self) -> String {
        let (origin, path) = split(&self.resource);
        format!("{origin}{WELL_KNOWN}{path}")
    }

    /// The JSON document.
    pub fn document(&self) -> Value {
        let mut doc = json!({
            "resource": self.resource,
            "bearer_methods_supported": self.bearer_methods_supported,
        });
        if let Some(o) = doc.as_object_mut() {
            if !self.authorization_servers.is_empty() {
                o.insert("authorization_servers".into(), json!(self.authorization_servers));
            }
            if !self.scopes_supported.is_empty() {
                o.insert("scopes_supported".into(), json!(self.scopes_supported));
            }
            if let Some(n) = &self.resource_name {
                o.insert("resource_name".into(), json!(n));
            }
            for (k, v) in &self.extra {
                o.insert(k.clone(), v.clone());
            }
        }
        doc
    }

    /// A service answering every request with the document (`application/json`), to mount at
    /// [`ResourceMetadata::well_known_path`] (e.g. with axum's `Router::route_service`).
    pub fn service(&self) -> MetadataService {
        let body = Bytes::from(serde_json::to_vec(&self.document()).unwrap_or_default());
        MetadataService { body: Arc::new(body) }
    }
}

/// `scheme://authority` and the path (without a trailing slash, query or fragment) of a URL.
fn split(url: &str) -> (&str, &str) {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url.get(after_scheme..).and_then(|rest| rest.find('/')) {
        Some(i) => {
            let cut = after_scheme + i;
            (
                url.get(..cut).unwrap_or(url),
                url.get(cut..).unwrap_or("").trim_end_matches('/'),
            )
        }
        None => (url, ""),
    }
}

/// Serves a [`ResourceMetadata`] document; made by [`ResourceMetadata::service`].
#[derive(Debug, Clone)]
pub struct MetadataService {
    body: Arc<Bytes>,
}

impl<B> Service<Request<B>> for MetadataService {
    type Response = Response<axum_core::body::Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        let mut res = Response::new(axum_core::body::Body::from((*self.body).clone()));
        *res.status_mut() = StatusCode::OK;
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn well_known_url_inserts_the_segment_before_the_path() {
        for (resource, url) in [
            (
                "https://bank.example",
                "https://bank.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://bank.example/",
                "https://bank.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example/v1/bank",
                "https://api.example/.well-known/oauth-protected-resource/v1/bank",
            ),
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/.well-known/oauth-protected-resource",
            ),
        ] {
            assert_eq!(ResourceMetadata::new(resource).url(), url, "{resource}");
        }
    }

    #[test]
    fn document_has_the_members_set() {
        let d = ResourceMetadata::new("https://bank.example")
            .authorization_server("https://id.example")
            .scopes_supported(["accounts"])
            .resource_name("Bank")
            .member("dpop_bound_access_tokens_required", json!(false))
            .document();
        assert_eq!(d["resource"], "https://bank.example");
        assert_eq!(d["authorization_servers"], json!(["https://id.example"]));
        assert_eq!(d["scopes_supported"], json!(["accounts"]));
        assert_eq!(d["bearer_methods_supported"], json!(["header"]));
        assert_eq!(d["resource_name"], "Bank");
        assert_eq!(d["dpop_bound_access_tokens_required"], false);
        let bare = ResourceMetadata::new("https://bank.example").document();
        assert!(bare.get("scopes_supported").is_none());
    }
}
