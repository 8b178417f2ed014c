//! Known attacks replayed through the real layer (the table in SECURITY.md lists them). Each
//! gets 400/401 with a well-formed challenge, never 200 or 500, and [`StepUp::verify`] names the
//! exact [`VerifyError`] that refused it, so that a test cannot pass on another check's refusal.

use axum::Router;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use stepup_tower::keys::KeySet;
use stepup_tower::{Issuer, StepUp, VerifyError};

use crate::support::*;

/// Over HTTP: 401 `invalid_token` with a well-formed challenge.
async fn refused(app: &Router, token: &str) {
    let a = call(app, "/balance", token).await;
    a.assert_refused(401, Some("invalid_token"));
}

/// Why `auth` refuses `token`.
async fn refusal(auth: &StepUp, token: &str) -> VerifyError {
    auth.verify(token).await.unwrap_err()
}

fn es256_header_with(extra: serde_json::Value) -> String {
    let mut h = header(Algorithm::ES256, Some("at+jwt"), Some("p256a"));
    for (k, v) in extra.as_object().unwrap() {
        h[k] = v.clone();
    }
    h.to_string()
}

/// An issuer of access tokens with `keys`, realm `bank`.
fn step_up_with(keys: KeySet, algorithms: Option<&[Algorithm]>) -> StepUp {
    let mut issuer = Issuer::access_tokens(ISS).audience(AUD).static_keys(keys);
    if let Some(algs) = algorithms {
        issuer = issuer.algorithms(algs.iter().copied());
    }
    StepUp::builder().issuer(issuer).realm("bank").build().unwrap()
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let auth = step_up();
    let app = app(&auth);
    let payload = b64(pwd_claims().to_string().as_bytes());
    for alg in ["none", "NONE", "None", "nOnE"] {
        let h = b64(json!({"alg": alg, "typ": "at+jwt", "kid": "p256a"})
            .to_string()
            .as_bytes());
        let with_signature = format!("{h}.{payload}.AAAA");
        refused(&app, &with_signature).await;
        assert_eq!(refusal(&auth, &with_signature).await, VerifyError::AlgNone, "{alg}");
        // The Unsecured JWS form (RFC 7515 Appendix A.5: empty signature) is named as such.
        let unsecured = format!("{h}.{payload}.");
        refused(&app, &unsecured).await;
        assert_eq!(refusal(&auth, &unsecured).await, VerifyError::AlgNone, "{alg}");
    }
}

#[tokio::test]
async fn cve_2015_9235_hs256_with_rsa_public_key() {
    let auth = step_up();
    let key = EncodingKey::from_secret(rsa1_public_pem());
    let t = sign_raw(
        &json!({"alg": "HS256", "typ": "at+jwt", "kid": "rsa1"}).to_string(),
        &pwd_claims().to_string(),
        &key,
        Algorithm::HS256,
    );
    refused(&app(&auth), &t).await;
    assert_eq!(
        refusal(&auth, &t).await,
        VerifyError::AlgorithmNotAllowed("HS256".into())
    );
    // Even with HS256 on the allow-list, no HMAC key comes from public keys: without a
    // configured secret, HS256 finds no key, whatever the kid.
    let auth = step_up_with(issuer_keys(), Some(&[Algorithm::RS256, Algorithm::HS256]));
    let a = call(&app(&auth), "/balance", &t).await;
    a.assert_refused(401, Some("invalid_token"));
    assert_eq!(
        refusal(&auth, &t).await,
        VerifyError::KeyNotFound {
            kid: Some("rsa1".into())
        }
    );
}

#[tokio::test]
async fn cve_2022_21449_ecdsa_zero_signature() {
    let auth = step_up();
    let app = app(&auth);
    let good = mint(&pwd_claims());
    let (input, _) = good.rsplit_once('.').unwrap();
    let zero = format!("{input}.{}", b64(&[0u8; 64]));
    refused(&app, &zero).await;
    assert_eq!(refusal(&auth, &zero).await, VerifyError::BadSignature);
    // r = s = n (the group order) is the same attack in another form.
    let n = hex_bytes("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let order = format!("{input}.{}", b64(&[n.clone(), n].concat()));
    refused(&app, &order).await;
    assert_eq!(refusal(&auth, &order).await, VerifyError::BadSignature);
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn cve_2018_0114_embedded_jwk_is_ignored() {
    let auth = step_up();
    let app = app(&auth);
    let attacker = stranger_p256();
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&attacker, Algorithm::ES256).unwrap();
    let jwk = serde_json::to_value(jwk).unwrap();
    let not_found = VerifyError::KeyNotFound {
        kid: Some("attacker".into()),
    };
    // The key always comes from the issuer's set: the only P-256 key there (p256a) does not
    // verify the attacker's signature, and a kid the set lacks is not found.
    for (h, expected) in [
        (
            json!({"alg": "ES256", "typ": "at+jwt", "jwk": jwk}),
            VerifyError::BadSignature,
        ),
        (
            json!({"alg": "ES256", "typ": "at+jwt", "jwk": jwk, "kid": "p256a"}),
            VerifyError::BadSignature,
        ),
        (
            json!({"alg": "ES256", "typ": "at+jwt", "jku": "http://127.0.0.1:1/jwks", "kid": "attacker"}),
            not_found.clone(),
        ),
        (
            json!({"alg": "ES256", "typ": "at+jwt", "x5u": "http://127.0.0.1:1/cert", "kid": "attacker"}),
            not_found,
        ),
    ] {
        let t = sign_raw(&h.to_string(), &pwd_claims().to_string(), &attacker, Algorithm::ES256);
        refused(&app, &t).await;
        assert_eq!(refusal(&auth, &t).await, expected, "{h}");
    }
}

#[tokio::test]
async fn cve_2020_26160_aud_array_bypass() {
    let auth = step_up();
    let app = app(&auth);
    for (aud, expected) in [
        (json!([]), VerifyError::WrongAudience),
        (json!(["evil"]), VerifyError::WrongAudience),
        (json!([["bank-api"]]), VerifyError::InvalidClaim("aud")),
        (json!({"aud": "bank-api"}), VerifyError::InvalidClaim("aud")),
        (json!([1, 2]), VerifyError::InvalidClaim("aud")),
        (json!(null), VerifyError::InvalidClaim("aud")),
    ] {
        let mut c = pwd_claims();
        c["aud"] = aud.clone();
        let t = mint(&c);
        let a = call(&app, "/balance", &t).await;
        assert_eq!(a.status, 401, "aud {aud}");
        a.assert_refused(401, Some("invalid_token"));
        assert_eq!(refusal(&auth, &t).await, expected, "aud {aud}");
    }
}

#[tokio::test]
async fn cve_2022_39227_json_serialization_refused() {
    let auth = step_up();
    let good = mint(&pwd_claims());
    let mut parts = good.split('.');
    let (h, p, s) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let json_form = json!({"protected": h, "payload": p, "signature": s}).to_string();
    assert_eq!(refusal(&auth, &json_form).await, VerifyError::UnsupportedSerialization);
    // Mixed: a compact token with a JSON tail is four segments.
    let mixed = format!("{good}.{{\"payload\":\"{p}\"}}");
    let e = refusal(&auth, &mixed).await;
    assert!(matches!(e, VerifyError::Malformed(_)), "{e:?}");
    // Over HTTP the JSON form is not a b64token at all: 400.
    let a = send(&app(&auth), get_with("/balance", Some(&format!("Bearer {json_form}")))).await;
    a.assert_refused(400, Some("invalid_request"));
    // Five segments (JWE) are refused.
    let jwe = format!("{good}.{p}.{s}");
    refused(&app(&auth), &jwe).await;
    assert_eq!(refusal(&auth, &jwe).await, VerifyError::UnsupportedSerialization);
}

#[tokio::test]
async fn cve_2025_65945_kid_never_selects_hmac_secret() {
    // The attacker names a kid of a public key and signs with HMAC over that key's bytes (its
    // kid, or its public PEM).
    let forged = |kid: &str, secret: &[u8]| {
        sign_raw(
            &json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}).to_string(),
            &pwd_claims().to_string(),
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
        )
    };
    let public_keys = ALL_ASYMMETRIC.map(signer);
    // Without a configured secret, HS256 is not even allowed.
    let auth = step_up();
    let default_app = app(&auth);
    for s in &public_keys {
        let t = forged(s.kid, s.kid.as_bytes());
        refused(&default_app, &t).await;
        assert_eq!(
            refusal(&auth, &t).await,
            VerifyError::AlgorithmNotAllowed("HS256".into()),
            "{}",
            s.kid
        );
    }
    // With an HMAC secret next to the public keys (HS256 then allowed), a kid still selects
    // nothing: HS256 is checked with the configured secret only.
    let mut keys = KeySet::from_hmac_secret(HMAC_SECRET).unwrap();
    for s in &public_keys {
        keys = keys.with_pem(Some(s.kid), s.public_pem).unwrap();
    }
    let auth = step_up_with(keys, None);
    let app = app(&auth);
    for s in &public_keys {
        for secret in [s.kid.as_bytes(), s.public_pem] {
            let t = forged(s.kid, secret);
            refused(&app, &t).await;
            assert_eq!(refusal(&auth, &t).await, VerifyError::BadSignature, "{}", s.kid);
        }
        // The configured secret verifies whatever kid the token names.
        let t = forged(s.kid, HMAC_SECRET);
        assert_eq!(call(&app, "/balance", &t).await.status, 200, "{}", s.kid);
    }
}

#[tokio::test]
async fn crit_is_not_ignored() {
    let auth = step_up();
    let app = app(&auth);
    let s = signer(Algorithm::ES256);
    for crit in [json!(["exp"]), json!(["b64"]), json!([]), json!("x")] {
        let h = es256_header_with(json!({"crit": crit, "b64": true, "exp": 1}));
        let t = sign_raw(&h, &pwd_claims().to_string(), &s.key, Algorithm::ES256);
        refused(&app, &t).await;
        assert_eq!(refusal(&auth, &t).await, VerifyError::UnsupportedCrit, "crit {crit}");
    }
}

#[tokio::test]
async fn non_base64url_signature_characters() {
    let auth = step_up();
    let app = app(&auth);
    let good = mint(&pwd_claims());
    let (input, sig) = good.rsplit_once('.').unwrap();
    for bad in [
        format!("{sig}="),
        sig.replace('-', "+").replace('_', "/") + "+",
        format!("{}/", &sig[1..]),
    ] {
        let t = format!("{input}.{bad}");
        let a = call(&app, "/balance", &t).await;
        a.assert_refused(401, Some("invalid_token"));
        let e = refusal(&auth, &t).await;
        assert!(matches!(e, VerifyError::Malformed(_)), "{bad}: {e:?}");
    }
}

#[tokio::test]
async fn wrong_typ_and_id_token_as_access_token() {
    let auth = step_up();
    let app = app(&auth);
    let s = signer(Algorithm::ES256);
    for typ in [Some("JWT"), Some("id_token+jwt"), Some("at+jwt+x"), None, Some("jwt")] {
        let h = header(Algorithm::ES256, typ, Some(s.kid)).to_string();
        let t = sign_raw(&h, &pwd_claims().to_string(), &s.key, Algorithm::ES256);
        refused(&app, &t).await;
        let e = refusal(&auth, &t).await;
        assert!(matches!(e, VerifyError::WrongType { .. }), "typ {typ:?}: {e:?}");
    }
    // An ID token (audience the client, a nonce), with its own typ or with the access token's.
    let mut id_token = pwd_claims();
    id_token["aud"] = json!("spa");
    id_token["nonce"] = json!("n-0S6_WzA2Mj");
    for typ in ["JWT", "at+jwt"] {
        let h = header(Algorithm::ES256, Some(typ), Some(s.kid)).to_string();
        let t = sign_raw(&h, &id_token.to_string(), &s.key, Algorithm::ES256);
        refused(&app, &t).await;
        let e = refusal(&auth, &t).await;
        assert!(matches!(e, VerifyError::WrongType { .. }), "ID token, typ {typ}: {e:?}");
    }
}

#[tokio::test]
async fn huge_header_and_token() {
    let auth = step_up();
    let app = app(&auth);
    let s = signer(Algorithm::ES256);
    let h = es256_header_with(json!({"pad": "x".repeat(8 * 1024)}));
    let t = sign_raw(&h, &pwd_claims().to_string(), &s.key, Algorithm::ES256);
    refused(&app, &t).await;
    let e = refusal(&auth, &t).await;
    assert!(matches!(e, VerifyError::Malformed(_)), "{e:?}");
    let mut c = pwd_claims();
    c["pad"] = json!("y".repeat(17 * 1024));
    let t = mint(&c);
    let a = call(&app, "/balance", &t).await;
    a.assert_refused(400, Some("invalid_request"));
    let e = refusal(&auth, &t).await;
    assert!(matches!(e, VerifyError::TooLarge { .. }), "{e:?}");
}

#[tokio::test]
async fn deeply_nested_json() {
    let auth = step_up();
    let app = app(&auth);
    let s = signer(Algorithm::ES256);
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let payload = pwd_claims()
        .to_string()
        .replacen('{', &format!("{{\"deep\":{deep},"), 1);
    let t = sign_raw(&es256_header_with(json!({})), &payload, &s.key, Algorithm::ES256);
    refused(&app, &t).await;
    let e = refusal(&auth, &t).await;
    assert!(matches!(e, VerifyError::Malformed(_)), "payload: {e:?}");
    let header = format!("{{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"x\":{}}}", deep);
    let t = format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(pwd_claims().to_string().as_bytes()),
        b64(&[1; 64])
    );
    refused(&app, &t).await;
    let e = refusal(&auth, &t).await;
    assert!(matches!(e, VerifyError::Malformed(_)), "header: {e:?}");
}

#[tokio::test]
async fn key_bound_to_algorithm() {
    let auth = step_up();
    let default_app = app(&auth);
    // The RSA key under kid rsa1 (RS256 signer) used with PS256 is fine by key type...
    let s = signer(Algorithm::RS256);
    let t = sign_raw(
        &header(Algorithm::PS256, Some("at+jwt"), Some(s.kid)).to_string(),
        &pwd_claims().to_string(),
        &s.key,
        Algorithm::PS256,
    );
    assert_eq!(call(&default_app, "/balance", &t).await.status, 200);
    // ...but an EC key named with an RSA alg, or a P-256 key with ES384, is not.
    let e = signer(Algorithm::ES256);
    let t = sign_raw(
        &header(Algorithm::ES384, Some("at+jwt"), Some(e.kid)).to_string(),
        &pwd_claims().to_string(),
        &signer(Algorithm::ES384).key,
        Algorithm::ES384,
    );
    refused(&default_app, &t).await;
    assert_eq!(refusal(&auth, &t).await, VerifyError::KeyAlgorithmMismatch);
    let t = sign_raw(
        &header(Algorithm::RS256, Some("at+jwt"), Some(e.kid)).to_string(),
        &pwd_claims().to_string(),
        &s.key,
        Algorithm::RS256,
    );
    refused(&default_app, &t).await;
    assert_eq!(refusal(&auth, &t).await, VerifyError::KeyAlgorithmMismatch);
    // A JWK that declares its alg binds it.
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&s.key, Algorithm::RS256).unwrap();
    let mut jwk = serde_json::to_value(jwk).unwrap();
    jwk["kid"] = json!("bound");
    let set = KeySet::from_jwks_json(json!({"keys": [jwk]}).to_string().as_bytes()).unwrap();
    let auth = step_up_with(set, None);
    let app = app(&auth);
    let ok = sign_raw(
        &header(Algorithm::RS256, Some("at+jwt"), Some("bound")).to_string(),
        &pwd_claims().to_string(),
        &s.key,
        Algorithm::RS256,
    );
    assert_eq!(call(&app, "/balance", &ok).await.status, 200);
    let ps = sign_raw(
        &header(Algorithm::PS256, Some("at+jwt"), Some("bound")).to_string(),
        &pwd_claims().to_string(),
        &s.key,
        Algorithm::PS256,
    );
    refused(&app, &ps).await;
    assert_eq!(refusal(&auth, &ps).await, VerifyError::KeyAlgorithmMismatch);
}

#[tokio::test]
async fn claim_types_are_checked() {
    let auth = step_up();
    let app = app(&auth);
    let now = now();
    let cases = [
        ("exp", json!(format!("{}", now + 600)), VerifyError::InvalidClaim("exp")),
        ("exp", json!(null), VerifyError::InvalidClaim("exp")),
        ("nbf", json!("0"), VerifyError::InvalidClaim("nbf")),
        ("iat", json!(true), VerifyError::InvalidClaim("iat")),
        ("iss", json!([ISS]), VerifyError::InvalidClaim("iss")),
        ("acr", json!(["loa1"]), VerifyError::InvalidClaim("acr")),
        ("acr", json!({"v": "loa1"}), VerifyError::InvalidClaim("acr")),
        ("amr", json!("pwd"), VerifyError::InvalidClaim("amr")),
        ("amr", json!([1]), VerifyError::InvalidClaim("amr")),
        ("auth_time", json!("yesterday"), VerifyError::InvalidClaim("auth_time")),
        ("sub", json!(42), VerifyError::InvalidClaim("sub")),
        ("scope", json!({"a": 1}), VerifyError::InvalidClaim("scope")),
    ];
    for (claim, value, expected) in cases {
        let mut c = pwd_claims();
        c[claim] = value.clone();
        let t = mint(&c);
        let a = call(&app, "/balance", &t).await;
        assert_eq!(a.status, 401, "{claim} = {value}: {}", a.text);
        a.assert_refused(401, Some("invalid_token"));
        assert_eq!(refusal(&auth, &t).await, expected, "{claim} = {value}");
    }
    // A well-typed auth_time in the future.
    let mut c = pwd_claims();
    c["auth_time"] = json!(now + 3600);
    let t = mint(&c);
    refused(&app, &t).await;
    let e = refusal(&auth, &t).await;
    assert!(matches!(e, VerifyError::AuthTimeInFuture { .. }), "{e:?}");
    // Floats and huge numbers are numbers: a float exp in the future is fine; a huge nbf is not.
    let mut c = pwd_claims();
    c["exp"] = json!((now + 600) as f64 + 0.5);
    assert_eq!(call(&app, "/balance", &mint(&c)).await.status, 200);
    let mut c = pwd_claims();
    c["nbf"] = json!(1e300);
    let t = mint(&c);
    refused(&app, &t).await;
    let e = refusal(&auth, &t).await;
    assert!(matches!(e, VerifyError::NotYetValid { .. }), "{e:?}");
}

#[tokio::test]
async fn duplicate_members_are_refused() {
    let auth = step_up();
    let app = app(&auth);
    let s = signer(Algorithm::ES256);
    let payload = pwd_claims().to_string().replacen('{', "{\"sub\":\"mallory\",", 1);
    let t = sign_raw(&es256_header_with(json!({})), &payload, &s.key, Algorithm::ES256);
    refused(&app, &t).await;
    assert_eq!(refusal(&auth, &t).await, VerifyError::DuplicateMember);
    let header = r#"{"alg":"ES256","typ":"at+jwt","kid":"p256a","alg":"none"}"#;
    let t = sign_raw(header, &pwd_claims().to_string(), &s.key, Algorithm::ES256);
    refused(&app, &t).await;
    assert_eq!(refusal(&auth, &t).await, VerifyError::DuplicateMember);
}

/// RFC 7515 §4 / RFC 7519 §4 allow refusing duplicates or keeping the last: we refuse them at
/// every depth of the header and the payload, members we do not read included.
#[tokio::test]
async fn duplicate_members_are_refused_at_every_depth() {
    let auth = step_up();
    let s = signer(Algorithm::ES256);
    let claims = pwd_claims().to_string();
    let body = claims.trim_start_matches('{');
    let payloads = [
        format!(r#"{{"cnf":{{"jkt":"a","jkt":"b"}},{body}"#),
        format!(r#"{{"realm_access":{{"roles":["user"],"roles":["admin"]}},{body}"#),
        format!(r#"{{"groups":[{{"id":1,"id":2}}],{body}"#),
        format!(r#"{{"x":{{"y":{{"z":{{"w":1,"w":1}}}}}},{body}"#),
        format!(r#"{{"unread":1,"unread":1,{body}"#),
    ];
    for p in &payloads {
        let t = sign_raw(&es256_header_with(json!({})), p, &s.key, Algorithm::ES256);
        assert_eq!(refusal(&auth, &t).await, VerifyError::DuplicateMember, "{p}");
    }
    let headers = [
        r#"{"alg":"ES256","typ":"at+jwt","kid":"p256a","x5t":"a","x5t":"a"}"#,
        r#"{"alg":"ES256","typ":"at+jwt","kid":"p256a","jwk":{"kty":"EC","kty":"RSA"}}"#,
        r#"{"alg":"ES256","typ":"at+jwt","kid":"p256a","kid":"p256a"}"#,
    ];
    for h in headers {
        let t = sign_raw(h, &claims, &s.key, Algorithm::ES256);
        assert_eq!(refusal(&auth, &t).await, VerifyError::DuplicateMember, "{h}");
    }
    // The same shapes without the duplicate pass.
    let ok = format!(r#"{{"org":{{"tier":"a"}},"groups":[{{"id":1}},{{"id":1}}],{body}"#);
    let t = sign_raw(
        r#"{"alg":"ES256","typ":"at+jwt","kid":"p256a","jwk":{"kty":"EC"}}"#,
        &ok,
        &s.key,
        Algorithm::ES256,
    );
    assert!(auth.verify(&t).await.is_ok());
}

/// A corpus of hostile tokens: odd `kid`s, odd `alg`s, odd encodings and shapes. Every item gets
/// 400 or 401 with a well-formed challenge; none gets 200 or 500.
#[tokio::test]
async fn hostile_corpus_never_200_or_500() {
    let app = app(&step_up());
    let s = signer(Algorithm::ES256);
    let claims = pwd_claims().to_string();
    let sign_h = |h: serde_json::Value| sign_raw(&h.to_string(), &claims, &s.key, Algorithm::ES256);
    let mut tokens: Vec<(String, String)> = Vec::new();
    for kid in [
        json!("../../../../etc/passwd"),
        json!("' OR 1=1 --"),
        json!("http://127.0.0.1:1/jwks"),
        json!("x".repeat(10 * 1024)),
        json!(42),
        json!({"kid": "p256a"}),
        json!(null),
        json!(["p256a"]),
        json!(""),
        json!("p256a\u{0000}"),
    ] {
        tokens.push((
            format!("kid {kid:.40}"),
            sign_h(json!({"alg": "ES256", "typ": "at+jwt", "kid": kid})),
        ));
    }
    for alg in [
        json!("es256"),
        json!("Es256"),
        json!("ES256 "),
        json!("ES256K"),
        json!("RS1"),
        json!(""),
        json!(null),
        json!(256),
        json!(["ES256"]),
    ] {
        tokens.push((
            format!("alg {alg}"),
            sign_h(json!({"alg": alg, "typ": "at+jwt", "kid": "p256a"})),
        ));
    }
    for typ in [json!(null), json!(1), json!(["at+jwt"]), json!("at+jwt\u{0000}")] {
        tokens.push((
            format!("typ {typ}"),
            sign_h(json!({"alg": "ES256", "typ": typ, "kid": "p256a"})),
        ));
    }
    let good = mint(&pwd_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let (h, p, sig) = (parts[0], parts[1], parts[2]);
    tokens.push(("padding in header".into(), format!("{h}==.{p}.{sig}")));
    tokens.push(("padding in payload".into(), format!("{h}.{p}=.{sig}")));
    tokens.push(("standard alphabet +".into(), format!("{h}.{p}.+{}", &sig[1..])));
    tokens.push((
        "standard alphabet /".into(),
        format!("{h}.{p}.{}/", &sig[..sig.len() - 1]),
    ));
    tokens.push(("four segments".into(), format!("{h}.{p}.{sig}.{sig}")));
    tokens.push(("five segments (JWE)".into(), format!("{h}.{p}.{sig}.{sig}.{sig}")));
    tokens.push(("empty segments".into(), "..".into()));
    tokens.push(("only dots".into(), "....".into()));
    tokens.push(("header not JSON".into(), format!("{}.{p}.{sig}", b64(b"not json"))));
    tokens.push(("header JSON array".into(), format!("{}.{p}.{sig}", b64(b"[1,2]"))));
    tokens.push(("payload JSON string".into(), format!("{h}.{}.{sig}", b64(b"\"x\""))));
    tokens.push((
        "payload not UTF-8".into(),
        format!("{h}.{}.{sig}", b64(&[0xff, 0xfe, 0x7b])),
    ));
    tokens.push((
        "huge JOSE header".into(),
        sign_h(json!({"alg": "ES256", "typ": "at+jwt", "kid": "p256a", "x": "y".repeat(8 * 1024)})),
    ));
    let now = now();
    for (claim, value) in [
        ("exp", json!(-1)),
        ("exp", json!("NaN")),
        ("exp", json!("1e400")),
        ("nbf", json!(i64::MAX)),
        ("iat", json!(u64::MAX)),
        ("auth_time", json!([1])),
        ("aud", json!({"0": AUD})),
        ("aud", json!([[AUD]])),
        ("iss", json!(null)),
        ("exp", json!(now as f64 - 1e9)),
    ] {
        let mut c = pwd_claims();
        c[claim] = value.clone();
        tokens.push((format!("{claim} = {value}"), mint(&c)));
    }
    for (what, token) in &tokens {
        for path in ["/balance", "/transfer"] {
            let a = call(&app, path, token).await;
            assert!(
                a.status == 400 || a.status == 401,
                "{what} on {path}: {} {}",
                a.status,
                a.text
            );
            let c = a.challenge.as_ref().unwrap_or_else(|| panic!("{what}: no challenge"));
            assert!(c.acr_values.is_empty(), "{what}: step-up hint before validation");
            assert_eq!(c.realm.as_deref(), Some("bank"));
        }
    }
    // Authorization headers of odd shapes.
    let good = mint(&pwd_claims());
    for (header, want) in [
        (format!("Bearer   {good}"), 200),
        (format!("bearer {good}"), 200),
        (format!("Bearer\t{good}"), 400),
        (format!("Bearer {good},"), 400),
        (format!("Bearer {good}, Bearer {good}"), 400),
        (format!("Bearer {good}\u{e9}"), 400),
        (format!("Bearer \"{good}\""), 400),
    ] {
        let a = send(
            &app,
            http::Request::get("/balance")
                .header(
                    "authorization",
                    http::HeaderValue::from_bytes(header.as_bytes()).unwrap(),
                )
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, want, "{header:.30}");
    }
}

#[tokio::test]
async fn claims_are_not_judged_before_the_signature() {
    // An unsigned caller cannot learn the accepted audience or lifetime from the description.
    let auth = step_up();
    let app = app(&auth);
    let s = signer(Algorithm::ES256);
    for (claim, value) in [
        ("aud", json!("other-api")),
        ("exp", json!(1)),
        ("nbf", json!(now() + 3600)),
    ] {
        let mut c = pwd_claims();
        c[claim] = value;
        let good = sign_raw(
            &header(Algorithm::ES256, Some("at+jwt"), Some(s.kid)).to_string(),
            &c.to_string(),
            &s.key,
            Algorithm::ES256,
        );
        let forged = format!("{}.{}", good.rsplit_once('.').unwrap().0, b64(&[7u8; 64]));
        let a = call(&app, "/balance", &forged).await;
        a.assert_refused(401, Some("invalid_token"));
        assert_eq!(refusal(&auth, &forged).await, VerifyError::BadSignature, "{claim}");
        assert_eq!(
            a.challenge.unwrap().error_description.as_deref(),
            Some(VerifyError::BadSignature.description()),
            "{claim}"
        );
    }
}

#[test]
fn unusable_rsa_jwks_are_skipped_not_fatal() {
    // Regression: an empty or all-zero modulus used to underflow; e = 1 used to load.
    let n = b64(&[0xc5; 256]);
    let doc = json!({"keys": [
        {"kty": "RSA", "kid": "empty", "n": "", "e": "AQAB"},
        {"kty": "RSA", "kid": "zero", "n": "AAAA", "e": "AQAB"},
        {"kty": "RSA", "kid": "e1", "n": n, "e": "AQ"},
        {"kty": "RSA", "kid": "e2", "n": n, "e": "Ag"},
        {"kty": "RSA", "kid": "ok", "n": n, "e": "AQAB"}
    ]});
    let set = stepup_tower::keys::KeySet::from_jwks_json(doc.to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 1);
    let skipped: Vec<_> = set.skipped().iter().map(|k| k.kid.clone().unwrap()).collect();
    assert_eq!(skipped, ["empty", "zero", "e1", "e2"]);
}

/// ECDSA signatures are malleable: (r, s) and (r, n − s) both verify (RFC 7518 §3.4 does not
/// ask for low-S, and neither aws-lc-rs nor RustCrypto enforce it). So one token has two valid
/// strings. Documented in SECURITY.md: the verified-token cache keys by the token string (the
/// second form is simply verified again), and nothing in this crate keys replay or revocation
/// on it.
#[tokio::test]
async fn ecdsa_high_s_twin_verifies_too() {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6,
        0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    ];
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let auth = step_up();
    let token = mint(&pwd_claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let (r, s) = sig.split_at(32);
    // n − s, big-endian.
    let mut twin_s = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = N[i] as i16 - s[i] as i16 - borrow;
        borrow = i16::from(d < 0);
        twin_s[i] = (d + if d < 0 { 256 } else { 0 }) as u8;
    }
    let twin = format!("{input}.{}", URL_SAFE_NO_PAD.encode([r, &twin_s[..]].concat()));
    assert_ne!(twin, token);
    assert!(auth.verify(&token).await.is_ok());
    assert!(auth.verify(&twin).await.is_ok(), "the high-S twin verifies as well");
}
