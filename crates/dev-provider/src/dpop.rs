//! DPoP at the token endpoint (RFC 9449): the proof of a token request is checked as §4.3
//! says, and the access token is bound to the proof's key by its JWK thumbprint (RFC 9449
//! §6.1 `cnf.jkt`, RFC 7638).
//!
//! The provider asks for no server nonce (RFC 9449 §8); replays are caught by the proof's
//! `jti`, kept (as a SHA-256 digest) for as long as its `iat` is acceptable.

use axum::http::{HeaderMap, Method};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::store::bound;
use crate::{Provider, split_url};

/// The proof algorithms accepted (RFC 9449 §5.1 `dpop_signing_alg_values_supported`): asymmetric
/// only, never `none` or a MAC (RFC 9449 §4.3, check 5).
pub(crate) const DPOP_ALGS: [&str; 5] = ["ES256", "ES384", "EdDSA", "RS256", "PS256"];
/// How far a proof's `iat` may be from the provider's clock, seconds (RFC 9449 §11.1).
const IAT_WINDOW: i64 = 60;
/// A longer `DPoP` header is refused before it is parsed (an RSA-4096 proof is about 1.5 KB).
const MAX_PROOF_LEN: usize = 8 * 1024;
/// JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4;
/// RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof was refused: the fixed `error_description` of the `invalid_dpop_proof` answer
/// (never anything taken from the proof).
pub(crate) type Refusal = &'static str;

/// The RFC 7638 thumbprint of a public JWK: SHA-256 over the JSON object of its required members
/// in lexicographic order without whitespace (§3.2, §3.3), base64url without padding. EC keys
/// use `crv`, `kty`, `x`, `y`; RSA keys `e`, `kty`, `n`; OKP keys (RFC 8037 §2) `crv`, `kty`, `x`.
/// `None` for another key type or a missing (or non-string) member.
pub fn jwk_thumbprint(jwk: &Value) -> Option<String> {
    let member = |name: &str| -> Option<String> {
        let value = jwk.get(name)?.as_str()?;
        serde_json::to_string(value).ok()
    };
    let canonical = match jwk.get("kty")?.as_str()? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            member("crv")?,
            member("x")?,
            member("y")?
        ),
        "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, member("e")?, member("n")?),
        "OKP" => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, member("crv")?, member("x")?),
        _ => return None,
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    Some(URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

/// A JSON object from one base64url part of a compact JWS.
fn json_part(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Whether `jwk` is a public key of the type `alg` signs with (RFC 7518 §3.1, RFC 8037 §3.1).
fn key_fits(alg: Algorithm, jwk: &Map<String, Value>) -> bool {
    let kty = jwk.get("kty").and_then(Value::as_str);
    let crv = jwk.get("crv").and_then(Value::as_str);
    match alg {
        Algorithm::ES256 => kty == Some("EC") && crv == Some("P-256"),
        Algorithm::ES384 => kty == Some("EC") && crv == Some("P-384"),
        Algorithm::EdDSA => kty == Some("OKP") && crv == Some("Ed25519"),
        Algorithm::RS256 | Algorithm::PS256 => kty == Some("RSA"),
        _ => false,
    }
}

/// `htu` (RFC 9449 §4.3, check 9): the same URL as `expected` without query and fragment, the
/// scheme and host compared case-insensitively and a default port ignored (RFC 3986 §6.2.2,
/// §6.2.3).
fn same_htu(htu: &str, expected: &str) -> bool {
    let without_query = |u: &str| -> String { u.split(['?', '#']).next().unwrap_or_default().to_string() };
    let normalized = |u: &str| -> (String, String) {
        let (origin, path) = split_url(&without_query(u));
        let origin = origin
            .strip_suffix(":443")
            .filter(|o| o.starts_with("https://"))
            .or_else(|| origin.strip_suffix(":80").filter(|o| o.starts_with("http://")))
            .map_or(origin.clone(), str::to_string);
        (origin, path)
    };
    htu.contains("://") && normalized(htu) == normalized(expected)
}

/// A proof's `iat` as whole seconds (a NumericDate may have a fraction, RFC 7519 §2).
fn numeric_date(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    })
}

impl Provider {
    /// The DPoP proof of a token request (RFC 9449 §4.3, §5): `Ok(None)` without a `DPoP`
    /// header, `Ok(Some(jkt))` for a valid proof (its key's RFC 7638 thumbprint), `Err` with the
    /// reason otherwise. A valid proof's `jti` is remembered, so that it is accepted once.
    pub(crate) fn dpop_proof(&self, method: &Method, headers: &HeaderMap) -> Result<Option<String>, Refusal> {
        let mut values = headers.get_all("dpop").iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err("more than one DPoP header");
        }
        let proof = value.to_str().map_err(|_| "the DPoP header is not a JWT")?;
        if proof.len() > MAX_PROOF_LEN {
            return Err("the DPoP proof is too long");
        }
        let mut parts = proof.split('.');
        let (Some(header_part), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the DPoP proof is not a compact JWS");
        };
        // The JOSE header as sent: jsonwebtoken's own Header would drop private JWK members.
        let header = json_part(header_part).ok_or("the DPoP proof's header is not a JSON object")?;
        let typ = header.get("typ").and_then(Value::as_str).unwrap_or_default();
        if !typ.eq_ignore_ascii_case("dpop+jwt") {
            return Err("the DPoP proof's typ is not dpop+jwt");
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .filter(|a| DPOP_ALGS.contains(a))
            .and_then(|a| a.parse::<Algorithm>().ok())
            .ok_or("the DPoP proof's alg is not supported")?;
        let jwk = header
            .get("jwk")
            .and_then(Value::as_object)
            .ok_or("the DPoP proof has no jwk header")?;
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err("the DPoP proof's jwk is not a public key");
        }
        if !key_fits(alg, jwk) {
            return Err("the DPoP proof's jwk does not fit its alg");
        }
        let jwk_value = Value::Object(jwk.clone());
        let jkt = jwk_thumbprint(&jwk_value).ok_or("the DPoP proof's jwk is incomplete")?;
        let key = serde_json::from_value::<Jwk>(jwk_value)
            .ok()
            .and_then(|k| DecodingKey::from_jwk(&k).ok())
            .ok_or("the DPoP proof's jwk is not a usable key")?;
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(proof, &key, &validation)
            .map_err(|_| "the DPoP proof's signature does not verify")?
            .claims;
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty())
            .ok_or("the DPoP proof has no jti")?;
        if claims.get("htm").and_then(Value::as_str) != Some(method.as_str()) {
            return Err("the DPoP proof's htm is not the request's method");
        }
        let token_endpoint = self.url("/token");
        if !claims
            .get("htu")
            .and_then(Value::as_str)
            .is_some_and(|htu| same_htu(htu, &token_endpoint))
        {
            return Err("the DPoP proof's htu is not the token endpoint");
        }
        let now = self.now();
        let iat = claims
            .get("iat")
            .and_then(numeric_date)
            .ok_or("the DPoP proof has no iat")?;
        if (iat - now).abs() > IAT_WINDOW {
            return Err("the DPoP proof's iat is too far from now");
        }
        // RFC 9449 §11.1: a proof is accepted once while its iat is acceptable.
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, jti.as_bytes());
        let seen_key = URL_SAFE_NO_PAD.encode(digest.as_ref());
        let mut store = self.store();
        store.prune(now);
        if store.dpop_jtis.get(&seen_key).is_some_and(|exp| *exp >= now) {
            return Err("the DPoP proof was already used");
        }
        bound(&mut store.dpop_jtis, now, |exp| *exp);
        store.dpop_jtis.insert(seen_key, iat + IAT_WINDOW);
        Ok(Some(jkt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_comparison() {
        let expected = "https://Op.Example/idp/token";
        assert!(same_htu("https://op.example/idp/token", expected));
        assert!(same_htu("HTTPS://OP.EXAMPLE:443/idp/token?x=1#f", expected));
        assert!(!same_htu("https://op.example/idp/Token", expected));
        assert!(!same_htu("http://op.example/idp/token", expected));
        assert!(!same_htu("https://op.example:8443/idp/token", expected));
        assert!(!same_htu("/idp/token", expected));
        assert!(same_htu("http://127.0.0.1:80/token", "http://127.0.0.1/token"));
    }

    #[test]
    fn iat_as_numeric_date() {
        assert_eq!(numeric_date(&Value::from(10)), Some(10));
        assert_eq!(numeric_date(&Value::from(10.7)), Some(10));
        assert_eq!(numeric_date(&Value::from("10")), None);
        assert_eq!(numeric_date(&Value::from(f64::MAX)), None);
    }
}
