//! DPoP (RFC 9449) on the client side, independent of the crate under test: a P-256 key
//! (AWS-LC), its RFC 7638 thumbprint, proofs signed with `jsonwebtoken`, and the reading of
//! `DPoP` challenges.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters, EllipticCurveKeyType, Jwk,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use serde_json::{Map, json};
use stepup_tower::challenge::{AuthScheme, BearerChallenge, Challenge, parse_challenges};

use crate::Res;
use crate::oidc::random_b64;

/// A DPoP key pair: ES256 over P-256.
pub(crate) struct DpopKey {
    encoding: EncodingKey,
    jwk: Jwk,
    thumbprint: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A new random key.
    pub(crate) fn generate() -> Res<Self> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| "P-256 key generation failed".to_string())?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| "the generated P-256 key does not load".to_string())?;
        // SEC 1 §2.3.3 uncompressed point: 0x04 || X || Y, 32 bytes each on P-256.
        let (x, y) = pair
            .public_key()
            .as_ref()
            .strip_prefix(&[4u8])
            .filter(|xy| xy.len() == 64)
            .map(|xy| xy.split_at(32))
            .ok_or("the P-256 public key is not an uncompressed point")?;
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // RFC 7638 §3.2: the required members (RFC 7518 §6.2.1 for EC) in lexicographic order,
        // no whitespace; §3.1: SHA-256, base64url.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ));
        let jwk = Jwk {
            common: CommonParameters::default(),
            algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x,
                y,
            }),
        };
        Ok(Self {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
            thumbprint,
        })
    }

    /// The RFC 7638 JWK SHA-256 thumbprint (what `cnf.jkt` and `dpop_jkt` carry).
    pub(crate) fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A fresh proof (RFC 9449 §4.2): header `typ` `dpop+jwt`, `alg` ES256, the public `jwk`;
    /// claims `jti` (random), `htm`, `htu` (no query or fragment), `iat`, and `ath` (the
    /// access token's SHA-256, base64url) and `nonce` when given.
    pub(crate) fn proof(&self, htm: &str, url: &str, access_token: Option<&str>, nonce: Option<&str>) -> Res<String> {
        let mut claims = Map::new();
        claims.insert("jti".into(), json!(random_b64(16)?));
        claims.insert("htm".into(), json!(htm));
        claims.insert("htu".into(), json!(htu(url)?));
        claims.insert("iat".into(), json!(crate::now()));
        if let Some(token) = access_token {
            claims.insert("ath".into(), json!(ath(token)));
        }
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|e| format!("signing a DPoP proof: {e}"))
    }
}

/// RFC 9449 §4.2 `htu`: the request URI without query and fragment.
pub(crate) fn htu(url: &str) -> Res<String> {
    let mut u = Url::parse(url).map_err(|e| format!("htu {url}: {e}"))?;
    u.set_query(None);
    u.set_fragment(None);
    Ok(u.to_string())
}

/// RFC 9449 §4.2 `ath`: base64url of the SHA-256 of the access token's ASCII.
pub(crate) fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        access_token.as_bytes(),
    ))
}

/// Every challenge of every `WWW-Authenticate` header, read with the crate's parser.
pub(crate) fn challenges(headers: &HeaderMap) -> Res<Vec<Challenge>> {
    let mut all = Vec::new();
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let text = value
            .to_str()
            .map_err(|_| format!("non-ASCII WWW-Authenticate {value:?}"))?;
        let parsed = parse_challenges(text).map_err(|e| format!("our parser refused {text:?}: {e}"))?;
        all.extend(parsed);
    }
    Ok(all)
}

/// The `DPoP` challenge (RFC 9449 §7.1) of a response, read with the crate's parser (the
/// parameters of a Bearer challenge plus `algs`); `Ok(None)` without one.
pub(crate) fn dpop_challenge(headers: &HeaderMap) -> Res<Option<BearerChallenge>> {
    BearerChallenge::from_headers_for(headers, AuthScheme::DPoP)
        .map_err(|e| format!("our parser refused the challenges ({}): {e}", schemes(headers)))
}

/// The `error` code of a challenge as sent, or "".
pub(crate) fn error_of(c: &BearerChallenge) -> &str {
    c.error.as_ref().map_or("", |e| e.as_str())
}

/// The auth-schemes of a response's challenges, for check lines (e.g. `Bearer, DPoP`).
pub(crate) fn schemes(headers: &HeaderMap) -> String {
    match challenges(headers) {
        Ok(all) if all.is_empty() => "no challenge".into(),
        Ok(all) => all.iter().map(|c| c.scheme.as_str()).collect::<Vec<_>>().join(", "),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_drops_query_and_fragment() {
        assert_eq!(
            htu("http://127.0.0.1:8080/api/balance?x=1#f").ok().as_deref(),
            Some("http://127.0.0.1:8080/api/balance")
        );
    }

    /// RFC 9449 §7.1's example: `ath` of the access token `Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU`.
    #[test]
    fn ath_matches_the_rfc_example() {
        assert_eq!(
            ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}
