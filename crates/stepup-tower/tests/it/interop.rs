//! Regressions found against independent providers (tests/interop runs them for real).

use jsonwebtoken::Algorithm;
use serde_json::json;
use stepup_tower::keys::KeySet;
use stepup_tower::{Issuer, StepUp};

use crate::jwks_server::jwk;
use crate::support::*;

fn app_for(set: KeySet, algorithms: Option<&[Algorithm]>) -> axum::Router {
    let mut issuer = Issuer::access_tokens(ISS).audience(AUD).static_keys(set);
    if let Some(algs) = algorithms {
        issuer = issuer.algorithms(algs.iter().copied());
    }
    let auth = StepUp::builder().issuer(issuer).realm("bank").build().unwrap();
    app(&auth)
}

fn ed25519_token(alg_name: &str, kid: &str) -> String {
    let s = signer(Algorithm::EdDSA);
    let header = json!({ "alg": alg_name, "typ": "at+jwt", "kid": kid });
    sign_raw(&header.to_string(), &pwd_claims().to_string(), &s.key, Algorithm::EdDSA)
}

/// `oidc-provider` signs with `"alg":"Ed25519"` (RFC 9864's fully-specified name) when a
/// client or resource asks for it, and publishes JWKs with that `alg`. Both must be read as
/// EdDSA over Ed25519: a JWKS with such a key loads it, and its tokens verify.
#[tokio::test]
async fn rfc9864_ed25519_alg_name_is_eddsa() {
    let s = signer(Algorithm::EdDSA);
    let mut key = jwk(&s.key, Algorithm::EdDSA, "okp1");
    key["alg"] = json!("Ed25519");
    let set = KeySet::from_jwks_json(json!({ "keys": [key] }).to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 1, "the Ed25519-named JWK is loaded, not skipped");
    let app = app_for(set.clone(), None);

    let answer = call(&app, "/balance", &ed25519_token("Ed25519", "okp1")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    // The older name verifies against the same key.
    let answer = call(&app, "/balance", &ed25519_token("EdDSA", "okp1")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    // The alias does not widen the allow-list: an issuer without EdDSA refuses it.
    let rsa_only = app_for(set, Some(&[Algorithm::RS256]));
    call(&rsa_only, "/balance", &ed25519_token("Ed25519", "okp1"))
        .await
        .assert_refused(401, Some("invalid_token"));
}

/// The alias is exactly `Ed25519`: Ed448 (which we do not verify), other letter cases and an
/// Ed25519 name on a key of another type are refused as invalid tokens, never a 500.
#[tokio::test]
async fn rfc9864_alias_is_narrow() {
    let app = app_for(issuer_keys(), None);
    let ed_kid = signer(Algorithm::EdDSA).kid;
    for name in ["Ed448", "ed25519", "ED25519", "Ed25519 "] {
        call(&app, "/balance", &ed25519_token(name, ed_kid))
            .await
            .assert_refused(401, Some("invalid_token"));
    }
    // `Ed25519` naming an RSA key: the key type does not permit it.
    let rsa_kid = signer(Algorithm::RS256).kid;
    call(&app, "/balance", &ed25519_token("Ed25519", rsa_kid))
        .await
        .assert_refused(401, Some("invalid_token"));
    // A JWK that says Ed448 is skipped, not fatal to the set.
    let s = signer(Algorithm::EdDSA);
    let mut bad = jwk(&s.key, Algorithm::EdDSA, "okp448");
    bad["alg"] = json!("Ed448");
    let good = jwk(&s.key, Algorithm::EdDSA, "okp1");
    let set = KeySet::from_jwks_json(json!({ "keys": [bad, good] }).to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 1);
}
