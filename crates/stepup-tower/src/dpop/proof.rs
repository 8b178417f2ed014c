//! Proof JWT checks (RFC 9449 §4.2–4.3) and the RFC 7638 thumbprint.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use quick_cache::sync::Cache;
use serde_json::{Map, Value};

use crate::keys::Key;
use crate::verify::{VerifyError, is_b64url, parse_object};

/// Why a DPoP proof was refused (answered 401 `invalid_dpop_proof`, RFC 9449 §7.1).
///
/// The wire only gets the fixed text of [`DpopError::description`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopError {
    /// `Authorization: DPoP` without a `DPoP` header.
    Missing,
    /// More than one `DPoP` header (RFC 9449 §4.3 check 1).
    MultipleProofs,
    /// The header is longer than the configured bound.
    TooLarge,
    /// Not a compact JWS, bad base64url, not JSON, a claim or header member of the wrong type.
    Malformed(&'static str),
    /// A header or payload object has the same member twice.
    DuplicateMember,
    /// Header `typ` is not `dpop+jwt`.
    WrongType,
    /// `alg` is not an accepted asymmetric algorithm.
    AlgorithmNotAllowed,
    /// The header lists `crit` extensions (none are understood).
    UnsupportedCrit,
    /// `jwk` is missing, carries private key material, or is not a usable public key for `alg`.
    InvalidKey(String),
    /// The signature does not verify with `jwk`.
    BadSignature,
    /// A required claim is missing.
    MissingClaim(&'static str),
    /// `htm` is not the request method.
    MethodMismatch,
    /// `htu` is not the request URL.
    UrlMismatch,
    /// `iat` is outside the proof window.
    IatOutsideWindow {
        /// `iat`.
        iat: i64,
        /// The current time.
        now: i64,
    },
    /// `ath` is not the hash of the access token.
    AthMismatch,
    /// The (`jkt`, `jti`) pair was already spent.
    Replayed,
}

impl DpopError {
    /// A fixed, short name of the reason (a metrics label, a log field).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::MultipleProofs => "multiple_proofs",
            Self::TooLarge => "too_large",
            Self::Malformed(_) => "malformed",
            Self::DuplicateMember => "duplicate_member",
            Self::WrongType => "wrong_type",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedCrit => "unsupported_crit",
            Self::InvalidKey(_) => "invalid_key",
            Self::BadSignature => "bad_signature",
            Self::MissingClaim(_) => "missing_claim",
            Self::MethodMismatch => "htm_mismatch",
            Self::UrlMismatch => "htu_mismatch",
            Self::IatOutsideWindow { .. } => "iat_outside_window",
            Self::AthMismatch => "ath_mismatch",
            Self::Replayed => "replayed",
        }
    }

    /// Short, fixed text for `error_description`: never echoes proof content.
    pub fn description(&self) -> &'static str {
        match self {
            Self::Missing => "DPoP proof missing",
            Self::MultipleProofs => "more than one DPoP proof",
            Self::TooLarge => "DPoP proof too large",
            Self::Malformed(_) => "malformed DPoP proof",
            Self::DuplicateMember => "duplicate JSON member in DPoP proof",
            Self::WrongType => "DPoP proof typ must be dpop+jwt",
            Self::AlgorithmNotAllowed => "DPoP proof algorithm not allowed",
            Self::UnsupportedCrit => "unsupported critical header in DPoP proof",
            Self::InvalidKey(_) => "DPoP proof key is not a usable public key",
            Self::BadSignature => "invalid DPoP proof signature",
            Self::MissingClaim(c) => match *c {
                "jti" => "DPoP proof claim jti missing",
                "htm" => "DPoP proof claim htm missing",
                "htu" => "DPoP proof claim htu missing",
                "iat" => "DPoP proof claim iat missing",
                "ath" => "DPoP proof claim ath missing",
                _ => "DPoP proof claim missing",
            },
            Self::MethodMismatch => "DPoP proof htm does not match the request method",
            Self::UrlMismatch => "DPoP proof htu does not match the request URL",
            Self::IatOutsideWindow { .. } => "DPoP proof iat outside the acceptable window",
            Self::AthMismatch => "DPoP proof ath does not match the access token",
            Self::Replayed => "DPoP proof already used",
        }
    }
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed DPoP proof: {why}"),
            Self::InvalidKey(why) => write!(f, "DPoP proof key unusable: {why}"),
            Self::IatOutsideWindow { iat, now } => write!(f, "DPoP proof iat {iat} outside the window (now {now})"),
            other => f.write_str(other.description()),
        }
    }
}

impl std::error::Error for DpopError {}

/// A proof that passed every check of its own (the token binding and replay come after).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof's `jwk` (base64url SHA-256).
    pub jkt: Arc<str>,
    /// `jti`.
    pub jti: String,
    /// `iat`.
    pub iat: i64,
    /// `nonce`, when present.
    pub nonce: Option<String>,
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK: the required members of its
/// `kty`, in lexicographic order, without whitespace.
///
/// ```
/// // RFC 7638 §3.1's example key.
/// let jwk = serde_json::json!({"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
///   "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
/// assert_eq!(stepup_tower::dpop::jwk_thumbprint(&jwk).as_deref(),
///            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
/// ```
///
/// `None` when `kty` is not `EC`, `RSA` or `OKP` or a required member is not a string.
pub fn jwk_thumbprint(jwk: &Value) -> Option<String> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let members: &[&str] = match member("kty")? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = String::from("{");
    for (i, name) in members.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        // serde_json writes a JSON string with exactly the escapes RFC 7638 §3.3 asks for.
        canonical.push_str(&serde_json::to_string(name).ok()?);
        canonical.push(':');
        canonical.push_str(&serde_json::to_string(member(name)?).ok()?);
    }
    canonical.push('}');
    Some(URL_SAFE_NO_PAD.encode(crate::crypto::sha256(canonical.as_bytes())))
}

/// Private members of RSA, EC, OKP and `oct` JWKs (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A proof header that passed its checks: the key, its thumbprint and the algorithm.
struct ProofKey {
    key: Key,
    jkt: Arc<str>,
    alg: Algorithm,
}

/// The URL clients call, parsed once: scheme, host (lower case), port (explicit), path prefix
/// (no trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicUrl {
    scheme: String,
    host: String,
    port: u16,
    prefix: String,
}

impl PublicUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, super::InvalidPublicUrl> {
        if url.contains(['?', '#']) {
            return Err(super::InvalidPublicUrl("no query or fragment"));
        }
        let n = Normalized::parse(url).ok_or(super::InvalidPublicUrl("an absolute http or https URL"))?;
        Ok(Self {
            scheme: n.scheme,
            host: n.host,
            port: n.port,
            prefix: n.path.trim_end_matches('/').to_string(),
        })
    }
}

/// What `htu` must name for one request.
#[derive(Debug)]
pub(crate) struct ExpectedUrl<'a> {
    /// The configured public URL, if any.
    pub(crate) public: Option<&'a PublicUrl>,
    /// The request URI's scheme, when it has one.
    pub(crate) scheme: Option<&'a str>,
    /// The request's authority (`Host`, or the URI's authority).
    pub(crate) authority: Option<&'a str>,
    /// The request path.
    pub(crate) path: &'a str,
}

/// An `http(s)` URL reduced to what RFC 9449 §4.3 compares.
#[derive(Debug, PartialEq, Eq)]
struct Normalized {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl Normalized {
    /// Scheme and host lower-cased, the default port made explicit, query and fragment
    /// dropped, an empty path made `/` (RFC 3986 §6.2.2–6.2.3).
    fn parse(url: &str) -> Option<Self> {
        let url = url.split(['#', '?']).next().unwrap_or_default();
        let uri: http::Uri = url.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default = default_port(&scheme)?;
        let authority = uri.authority()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let host = authority.host().to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        let path = match uri.path() {
            "" => "/".to_string(),
            p => p.to_string(),
        };
        Some(Self {
            scheme,
            host,
            port: authority.port_u16().unwrap_or(default),
            path,
        })
    }

    fn matches(&self, expected: &ExpectedUrl<'_>) -> bool {
        let path = if expected.path.is_empty() { "/" } else { expected.path };
        if let Some(public) = expected.public {
            return self.scheme == public.scheme
                && self.host == public.host
                && self.port == public.port
                && self.path.strip_prefix(public.prefix.as_str()) == Some(path);
        }
        let Some(authority) = expected.authority.and_then(|a| a.parse::<http::uri::Authority>().ok()) else {
            return false;
        };
        let scheme_ok = match expected.scheme {
            Some(s) => s.eq_ignore_ascii_case(&self.scheme),
            // The service does not know its own scheme (TLS may end in a proxy or in the
            // server): either, with that scheme's default port.
            None => true,
        };
        let port = authority.port_u16().or_else(|| default_port(&self.scheme));
        scheme_ok && authority.host().eq_ignore_ascii_case(&self.host) && port == Some(self.port) && self.path == path
    }
}

/// Verifies proofs; holds the cache of parsed proof headers.
pub(crate) struct ProofVerifier {
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) window: i64,
    pub(crate) max_len: usize,
    keys: Cache<Box<str>, Arc<ProofKey>>,
}

/// Proof headers (one per client key) remembered after their checks.
const PROOF_KEY_CACHE: usize = 4096;
/// Longest `jti` accepted: RFC 9449 §4.2 asks for 96 bits of randomness, a UUID is 36 bytes.
const MAX_JTI_LEN: usize = 256;

impl ProofVerifier {
    pub(crate) fn new(algorithms: Vec<Algorithm>, window: i64, max_len: usize) -> Self {
        Self {
            algorithms,
            window,
            max_len,
            keys: Cache::new(PROOF_KEY_CACHE),
        }
    }

    /// Every check of the proof itself. `access_token`: the token it must hash (`ath`).
    pub(crate) fn verify(
        &self,
        proof: &str,
        method: &str,
        url: &ExpectedUrl<'_>,
        access_token: &str,
        now: i64,
    ) -> Result<VerifiedProof, DpopError> {
        if proof.len() > self.max_len {
            return Err(DpopError::TooLarge);
        }
        let mut parts = proof.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(DpopError::Malformed("not three segments"));
        };
        if !is_b64url(h) || !is_b64url(p) || !is_b64url(s) {
            return Err(DpopError::Malformed("segment is empty or not base64url"));
        }
        let key = match self.keys.get(h) {
            Some(k) => k,
            None => {
                let k = Arc::new(self.header(h)?);
                self.keys.insert(h.into(), k.clone());
                k
            }
        };
        let signing_input = proof
            .get(..h.len() + 1 + p.len())
            .ok_or(DpopError::Malformed("segments"))?;
        if !key.key.verify_b64(key.alg, signing_input.as_bytes(), s) {
            return Err(DpopError::BadSignature);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| DpopError::Malformed("payload is not base64url"))?;
        let claims = parse_object(&payload, "payload is not a JSON object").map_err(json_error)?;
        let jti = string(&claims, "jti")?;
        if jti.is_empty() || jti.len() > MAX_JTI_LEN {
            return Err(DpopError::Malformed("jti is empty or too long"));
        }
        if string(&claims, "htm")? != method {
            return Err(DpopError::MethodMismatch);
        }
        let htu = string(&claims, "htu")?;
        if !Normalized::parse(htu).is_some_and(|n| n.matches(url)) {
            return Err(DpopError::UrlMismatch);
        }
        let iat = match claims.get("iat") {
            None => return Err(DpopError::MissingClaim("iat")),
            Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => i,
                // `as` saturates; a fractional iat is compared as its floor.
                (None, Some(f)) if f.is_finite() => f.floor() as i64,
                _ => return Err(DpopError::Malformed("iat is not a number")),
            },
            Some(_) => return Err(DpopError::Malformed("iat is not a number")),
        };
        if iat.abs_diff(now) > self.window.unsigned_abs() {
            return Err(DpopError::IatOutsideWindow { iat, now });
        }
        let ath = string(&claims, "ath")?;
        let expected = URL_SAFE_NO_PAD.encode(crate::crypto::sha256(access_token.as_bytes()));
        if ath != expected {
            return Err(DpopError::AthMismatch);
        }
        let nonce = match claims.get("nonce") {
            None => None,
            Some(Value::String(n)) => Some(n.clone()),
            Some(_) => return Err(DpopError::Malformed("nonce is not a string")),
        };
        Ok(VerifiedProof {
            jkt: key.jkt.clone(),
            jti: jti.to_string(),
            iat,
            nonce,
        })
    }

    /// The header checks, once per distinct header.
    fn header(&self, h: &str) -> Result<ProofKey, DpopError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| DpopError::Malformed("header is not base64url"))?;
        let header = parse_object(&bytes, "header is not a JSON object").map_err(json_error)?;
        // RFC 9449 §4.3 check 4: explicitly typed. Media type names compare case-insensitively.
        match header.get("typ") {
            Some(Value::String(t)) if t.eq_ignore_ascii_case("dpop+jwt") => {}
            _ => return Err(DpopError::WrongType),
        }
        if header.contains_key("crit") {
            return Err(DpopError::UnsupportedCrit);
        }
        let alg = match header.get("alg") {
            Some(Value::String(a)) => crate::keys::parse_alg(a).ok_or(DpopError::AlgorithmNotAllowed)?,
            _ => return Err(DpopError::Malformed("alg is not a string")),
        };
        if !self.algorithms.contains(&alg) {
            return Err(DpopError::AlgorithmNotAllowed);
        }
        let jwk = match header.get("jwk") {
            Some(jwk @ Value::Object(o)) => {
                if PRIVATE_MEMBERS.iter().any(|m| o.contains_key(*m)) {
                    return Err(DpopError::InvalidKey("private key material in jwk".into()));
                }
                jwk
            }
            Some(_) => return Err(DpopError::InvalidKey("jwk is not an object".into())),
            None => return Err(DpopError::InvalidKey("no jwk".into())),
        };
        let key = crate::keys::jwk::parse_key(jwk).map_err(DpopError::InvalidKey)?;
        if !key.permits(alg) {
            return Err(DpopError::InvalidKey("the key type does not fit alg".into()));
        }
        let jkt = jwk_thumbprint(jwk).ok_or_else(|| DpopError::InvalidKey("no thumbprint".into()))?;
        Ok(ProofKey {
            key,
            jkt: jkt.into(),
            alg,
        })
    }
}

fn json_error(e: VerifyError) -> DpopError {
    match e {
        VerifyError::DuplicateMember => DpopError::DuplicateMember,
        VerifyError::Malformed(why) => DpopError::Malformed(why),
        _ => DpopError::Malformed("not JSON"),
    }
}

fn string<'c>(claims: &'c Map<String, Value>, name: &'static str) -> Result<&'c str, DpopError> {
    match claims.get(name) {
        None => Err(DpopError::MissingClaim(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(DpopError::Malformed("a claim is not a string")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn expect<'a>(public: Option<&'a PublicUrl>, authority: Option<&'a str>, path: &'a str) -> ExpectedUrl<'a> {
        ExpectedUrl {
            public,
            scheme: None,
            authority,
            path,
        }
    }

    #[test]
    fn htu_normalisation() {
        let ok = |htu: &str, e: &ExpectedUrl<'_>| Normalized::parse(htu).is_some_and(|n| n.matches(e));
        let e = expect(None, Some("bank.example:8080"), "/api/x");
        assert!(ok("http://bank.example:8080/api/x", &e));
        assert!(ok("HTTP://Bank.Example:8080/api/x?q=1#f", &e));
        assert!(!ok("http://bank.example:8081/api/x", &e));
        assert!(!ok("http://bank.example:8080/api/X", &e));
        assert!(!ok("http://other:8080/api/x", &e));
        assert!(!ok("http://user@bank.example:8080/api/x", &e));
        assert!(!ok("ftp://bank.example:8080/api/x", &e));
        let e = expect(None, Some("bank.example"), "/");
        assert!(ok("https://bank.example", &e));
        assert!(ok("https://bank.example:443/", &e));
        assert!(ok("http://bank.example:80/", &e));
        assert!(!ok("https://bank.example:80/", &e));
        let public = PublicUrl::parse("https://EXAMPLE.com:443/bank/").unwrap();
        let e = expect(Some(&public), Some("10.0.0.7:8080"), "/api/x");
        assert!(ok("https://example.com/bank/api/x", &e));
        assert!(!ok("https://example.com/api/x", &e));
        assert!(!ok("http://example.com/bank/api/x", &e));
        assert!(!ok("http://10.0.0.7:8080/api/x", &e));
        assert!(PublicUrl::parse("https://example.com/?a").is_err());
        assert!(PublicUrl::parse("/relative").is_err());
    }

    #[test]
    fn thumbprints_of_each_key_type() {
        // RFC 8037 Appendix A.3.
        let okp = serde_json::json!({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert_eq!(
            jwk_thumbprint(&okp).as_deref(),
            Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
        );
        assert_eq!(jwk_thumbprint(&serde_json::json!({"kty":"oct","k":"AA"})), None);
        assert_eq!(
            jwk_thumbprint(&serde_json::json!({"kty":"EC","crv":"P-256","x":"a"})),
            None
        );
    }
}
