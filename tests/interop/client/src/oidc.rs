//! The OpenID Connect client the checks drive: discovery (OpenID Connect Discovery 1.0 §4), the
//! provider's JWK Set, and the authorization code flow with PKCE (RFC 7636, S256) through the
//! provider's auto-completing interaction, with a minimal cookie jar ([`Browser`]).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode, Url};
use serde_json::Value;

use crate::Res;

/// Redirect URI registered for the test clients in `provider.mjs`; nobody serves it.
pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";

/// A user agent's cookie jar, reduced to what the provider's interaction needs: every cookie
/// goes back on every request to the provider (paths and expiry are not tracked).
#[derive(Debug, Default)]
pub(crate) struct Browser {
    cookies: BTreeMap<String, String>,
}

impl Browser {
    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) fn keep(&mut self, res: &Response) {
        for value in res.headers().get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let name = name.trim();
            let value = value.trim();
            // oidc-provider clears a cookie by sending it empty with an expiry in the past.
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
    }
}

/// Token endpoint answer.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a DPoP-bound token (RFC 9449 §5).
    pub token_type: String,
    pub id_token: Option<String>,
}

/// A signing key the provider publishes: its `kid` and its public material (the JWK's `n`, or
/// `x` and `y`), enough to tell new key material under an old `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicKey {
    pub kid: String,
    pub material: String,
}

impl PublicKey {
    pub(crate) fn from_jwk(jwk: &Value) -> Option<Self> {
        let kid = jwk.get("kid").and_then(Value::as_str)?.to_string();
        let material = ["n", "x", "y"]
            .iter()
            .filter_map(|m| jwk.get(m).and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(".");
        Some(Self { kid, material })
    }
}

/// The `kid`s of `keys`, in order.
pub(crate) fn kids(keys: &[PublicKey]) -> Vec<&str> {
    keys.iter().map(|k| k.kid.as_str()).collect()
}

/// The provider's endpoints, from discovery.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub authorization: String,
    pub token: String,
    pub jwks: String,
    /// `dpop_signing_alg_values_supported` (RFC 9449 §5.1); empty when absent.
    pub dpop_algs: Vec<String>,
}

/// A client of one OpenID provider (the issuer), over a shared HTTP client that does not
/// follow redirects.
#[derive(Debug, Clone)]
pub(crate) struct OidcClient {
    http: Client,
    issuer: String,
}

impl OidcClient {
    pub(crate) fn new(http: Client, issuer: String) -> Self {
        Self { http, issuer }
    }

    /// Discovery: the document must name this issuer and list `acr` in `acr_values_supported`.
    pub(crate) async fn discover(&self, acr: &str) -> Res<Endpoints> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
        let doc = get_json(&self.http, &url).await?;
        let field = |name: &str| {
            doc.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("discovery document has no {name}"))
        };
        if field("issuer")? != self.issuer {
            return Err(format!("issuer {:?} != {:?}", field("issuer")?, self.issuer));
        }
        let acrs = doc.get("acr_values_supported").and_then(Value::as_array);
        if !acrs.is_some_and(|a| a.iter().any(|v| v == acr)) {
            return Err(format!("acr_values_supported lacks {acr}: {acrs:?}"));
        }
        Ok(Endpoints {
            authorization: field("authorization_endpoint")?,
            token: field("token_endpoint")?,
            jwks: field("jwks_uri")?,
            dpop_algs: doc
                .get("dpop_signing_alg_values_supported")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
        })
    }

    /// The provider's signing keys that have a `kid`; none is an error.
    pub(crate) async fn jwks_keys(&self, endpoints: &Endpoints) -> Res<Vec<PublicKey>> {
        let jwks = get_json(&self.http, &endpoints.jwks).await?;
        let keys: Vec<PublicKey> = jwks
            .get("keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(PublicKey::from_jwk).collect())
            .unwrap_or_default();
        if keys.is_empty() {
            Err(format!("{}: no keys with a kid", endpoints.jwks))
        } else {
            Ok(keys)
        }
    }

    /// Authorization code + PKCE through the provider's auto-completing interaction, then the
    /// token request. `acr_values`/`max_age` go into the authorization request when given.
    pub(crate) async fn authorize(
        &self,
        endpoints: &Endpoints,
        browser: &mut Browser,
        client_id: &str,
        resource: &str,
        acr_values: Option<&str>,
        max_age: Option<u64>,
    ) -> Res<Tokens> {
        let request = AuthRequest {
            client_id,
            resource,
            acr_values,
            max_age,
            dpop_jkt: None,
        };
        let code = self.authorization_code(endpoints, browser, &request).await?;
        self.token_request(endpoints, &code, None).await?.tokens(&code)
    }

    /// The authorization request through the provider's auto-completing interaction, up to the
    /// code at the redirect URI (checked: `state`, and `iss` per RFC 9207).
    pub(crate) async fn authorization_code(
        &self,
        endpoints: &Endpoints,
        browser: &mut Browser,
        request: &AuthRequest<'_>,
    ) -> Res<Code> {
        let verifier = random_b64(32)?;
        let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            verifier.as_bytes(),
        ));
        let state = random_b64(16)?;
        let nonce = random_b64(16)?;
        let mut url = Url::parse(&endpoints.authorization)
            .map_err(|e| format!("authorization_endpoint {}: {e}", endpoints.authorization))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", request.client_id)
                .append_pair("response_type", "code")
                .append_pair("scope", "openid accounts")
                .append_pair("redirect_uri", REDIRECT_URI)
                .append_pair("resource", request.resource)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", &state)
                .append_pair("nonce", &nonce);
            if let Some(acr) = request.acr_values {
                q.append_pair("acr_values", acr);
            }
            if let Some(max_age) = request.max_age {
                q.append_pair("max_age", &max_age.to_string());
            }
            if let Some(jkt) = request.dpop_jkt {
                // RFC 9449 §10: binds the code to the key of the token request's proof.
                q.append_pair("dpop_jkt", jkt);
            }
        }
        let mut hops = Vec::new();
        let mut code = None;
        for _ in 0..12 {
            let res = self
                .http
                .get(url.clone())
                .header(COOKIE, browser.cookie_header())
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            browser.keep(&res);
            let status = res.status();
            let location = res
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let Some(location) = location.filter(|_| status.is_redirection()) else {
                let body = res.text().await.unwrap_or_default();
                return Err(format!(
                    "GET {} -> {status} (after {}): {}",
                    url.path(),
                    hops.join(" -> "),
                    excerpt(&body)
                ));
            };
            url = url
                .join(&location)
                .map_err(|e| format!("bad Location {location:?}: {e}"))?;
            hops.push(format!("{} {}", status.as_u16(), url.path()));
            if url.as_str().starts_with(REDIRECT_URI) {
                let params: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
                if let Some(err) = params.get("error") {
                    return Err(format!(
                        "authorization error {err}: {}",
                        params.get("error_description").map_or("", String::as_str)
                    ));
                }
                if params.get("state") != Some(&state) {
                    return Err(format!("state mismatch in {url}"));
                }
                if params.get("iss") != Some(&self.issuer) {
                    return Err(format!("iss mismatch in {url} (RFC 9207)"));
                }
                code = params.get("code").cloned();
                break;
            }
        }
        let code = code.ok_or_else(|| format!("no code after {}", hops.join(" -> ")))?;
        Ok(Code {
            code,
            verifier,
            nonce,
            client_id: request.client_id.to_string(),
            resource: request.resource.to_string(),
        })
    }

    /// The token request redeeming `code`, with a `DPoP` proof header when given (RFC 9449
    /// §5). Any answer is returned; [`TokenAnswer::tokens`] reads a successful one.
    pub(crate) async fn token_request(
        &self,
        endpoints: &Endpoints,
        code: &Code,
        dpop_proof: Option<&str>,
    ) -> Res<TokenAnswer> {
        let mut form = Url::parse("form:x").map_err(|e| e.to_string())?;
        form.query_pairs_mut()
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &code.code)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("client_id", &code.client_id)
            .append_pair("code_verifier", &code.verifier)
            .append_pair("resource", &code.resource);
        let body = form.query().unwrap_or_default().to_string();
        let mut req = self
            .http
            .post(&endpoints.token)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some(proof) = dpop_proof {
            req = req.header("DPoP", proof);
        }
        let res = req.send().await.map_err(|e| format!("POST {}: {e}", endpoints.token))?;
        let status = res.status();
        let dpop_nonce = res
            .headers()
            .get("DPoP-Nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = res.text().await.map_err(|e| format!("token response: {e}"))?;
        Ok(TokenAnswer {
            status,
            dpop_nonce,
            body,
        })
    }
}

/// What an authorization request asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthRequest<'a> {
    pub client_id: &'a str,
    pub resource: &'a str,
    pub acr_values: Option<&'a str>,
    pub max_age: Option<u64>,
    /// RFC 9449 §10 `dpop_jkt`: the thumbprint of the key the code is bound to.
    pub dpop_jkt: Option<&'a str>,
}

/// An authorization code and what its token request needs.
#[derive(Debug, Clone)]
pub(crate) struct Code {
    code: String,
    verifier: String,
    /// The `nonce` of the authorization request, expected back in the ID token.
    nonce: String,
    client_id: String,
    resource: String,
}

/// A token endpoint answer, successful or not.
#[derive(Debug, Clone)]
pub(crate) struct TokenAnswer {
    pub status: StatusCode,
    /// The `DPoP-Nonce` response header (RFC 9449 §8).
    pub dpop_nonce: Option<String>,
    pub body: String,
}

impl TokenAnswer {
    /// The `error` of an error response (RFC 6749 §5.2), if the body has one.
    pub(crate) fn error(&self) -> Option<String> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        v.get("error").and_then(Value::as_str).map(str::to_string)
    }

    /// The tokens of a 200 answer to the token request for `code`.
    pub(crate) fn tokens(&self, code: &Code) -> Res<Tokens> {
        if self.status != StatusCode::OK {
            return Err(format!("token endpoint -> {}: {}", self.status, excerpt(&self.body)));
        }
        let v: Value = serde_json::from_str(&self.body).map_err(|e| format!("token response: {e}"))?;
        let access_token = v
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or("token response has no access_token")?
            .to_string();
        let token_type = v
            .get("token_type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let id_token = v.get("id_token").and_then(Value::as_str).map(str::to_string);
        if let Some(id) = &id_token {
            let claims = jwt_part(id, 1)?;
            if claims.get("nonce").and_then(Value::as_str) != Some(code.nonce.as_str()) {
                return Err("ID token nonce mismatch".into());
            }
        }
        Ok(Tokens {
            access_token,
            token_type,
            id_token,
        })
    }
}

/// `GET url`, which must answer 200 with JSON.
pub(crate) async fn get_json(http: &Client, url: &str) -> Res<Value> {
    let res = http.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = res.status();
    let body = res.text().await.map_err(|e| format!("{url}: {e}"))?;
    if status != StatusCode::OK {
        return Err(format!("{url} -> {status}: {}", excerpt(&body)));
    }
    serde_json::from_str(&body).map_err(|e| format!("{url}: not JSON: {e}"))
}

/// Decodes part `index` (0 header, 1 payload) of a compact JWS.
pub(crate) fn jwt_part(token: &str, index: usize) -> Res<Value> {
    let part = token
        .split('.')
        .nth(index)
        .ok_or_else(|| format!("not a compact JWS (part {index} missing)"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("JWS part {index}: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("JWS part {index}: {e}"))
}

/// `len` random bytes, base64url.
pub(crate) fn random_b64(len: usize) -> Res<String> {
    let mut buf = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| "no randomness".to_string())?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The start of a response body on one line, for check lines.
pub(crate) fn excerpt(s: &str) -> String {
    let s: String = s.chars().take(300).collect();
    s.replace('\n', " ")
}
