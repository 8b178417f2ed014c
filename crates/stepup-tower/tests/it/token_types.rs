//! Access tokens against ID tokens, with the token shapes of real providers.
//!
//! Each provider's shapes follow its public documentation (Keycloak, Okta, Auth0, Microsoft
//! Entra ID) or what it was seen to issue (LemonLDAP::NG 2.16: ID and access tokens with the
//! same `typ`, key and `aud` list). For each provider: its access tokens pass with the settings
//! the README gives for it; its ID tokens — as issued, and stripped of `nonce`/`at_hash` — are
//! refused as `WrongType` on every route, with `typ` relaxed and without.

use serde_json::{Value, json};
use stepup_tower::{Issuer, StepUp, VerifyError};

use crate::support::*;
use jsonwebtoken::Algorithm;

const SPA: &str = "bank-spa";

struct Shape {
    provider: &'static str,
    /// The settings the README gives for this provider.
    configure: fn(Issuer) -> Issuer,
    /// Header `typ` of its access tokens and ID tokens (`None`: no `typ`).
    at_typ: Option<&'static str>,
    id_typ: Option<&'static str>,
    access: Value,
    id: Value,
}

fn shapes() -> Vec<Shape> {
    let now = now();
    vec![
        Shape {
            provider: "LemonLDAP::NG",
            configure: |i| i.also_accept_typ("JWT"),
            at_typ: Some("JWT"),
            id_typ: Some("JWT"),
            access: json!({
                "iss": ISS, "aud": [SPA, AUD], "sub": "alice", "client_id": SPA, "jti": "a1b2",
                "iat": now, "exp": now + 600, "scope": "openid accounts",
                "acr": "loa1", "amr": ["pwd"], "auth_time": now - 5,
            }),
            id: json!({
                "iss": ISS, "aud": [SPA, AUD], "sub": "alice", "azp": SPA, "nonce": "n-0S6",
                "at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "iat": now, "exp": now + 600,
                "acr": "loa1", "amr": ["pwd"], "auth_time": now - 5,
            }),
        },
        Shape {
            provider: "Keycloak",
            configure: |i| i.also_accept_typ("JWT").client_id_claim("azp"),
            at_typ: Some("JWT"),
            id_typ: Some("JWT"),
            access: json!({
                "exp": now + 300, "iat": now, "auth_time": now - 5, "jti": "onrtac:3f1e",
                "iss": ISS, "aud": AUD, "sub": "f2a9c1", "typ": "Bearer", "azp": SPA,
                "sid": "8c1d", "acr": "1", "scope": "openid accounts",
            }),
            // The audience mapper can add the API to ID tokens as well.
            id: json!({
                "exp": now + 300, "iat": now, "auth_time": now - 5, "jti": "ofrtid:77aa",
                "iss": ISS, "aud": [SPA, AUD], "sub": "f2a9c1", "typ": "ID", "azp": SPA,
                "nonce": "n-0S6", "sid": "8c1d", "at_hash": "jHkWEdUXMU1BwAsC4vtUsZ", "acr": "1",
            }),
        },
        Shape {
            provider: "Okta",
            configure: |i| i.allow_missing_typ().client_id_claim("cid"),
            at_typ: None,
            id_typ: None,
            access: json!({
                "ver": 1, "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE", "iss": ISS,
                "aud": AUD, "iat": now, "exp": now + 3600, "cid": SPA, "uid": "00u1", "sub": "alice",
                "scp": ["openid", "accounts"], "auth_time": now - 5,
            }),
            id: json!({
                "ver": 1, "sub": "00u1", "iss": ISS, "aud": [SPA, AUD], "iat": now, "exp": now + 3600,
                "jti": "ID.4eAWJOCMB3SX8XewDfVR", "amr": ["pwd"], "idp": "00o1", "nonce": "n-0S6",
                "auth_time": now - 5, "at_hash": "preview_at_hash",
            }),
        },
        Shape {
            provider: "Auth0 (RFC 9068 profile)",
            configure: |i| i,
            at_typ: Some("at+jwt"),
            id_typ: Some("JWT"),
            access: json!({
                "iss": ISS, "sub": "auth0|123", "aud": [AUD, "https://tenant.example/userinfo"],
                "iat": now, "exp": now + 86400, "scope": "openid accounts", "jti": "3b1c",
                "client_id": SPA, "acr": MFA, "amr": ["mfa"], "auth_time": now - 5,
            }),
            id: json!({
                "iss": ISS, "aud": [SPA, AUD], "iat": now, "exp": now + 36000, "sub": "auth0|123",
                "sid": "a1", "nonce": "n-0S6", "amr": ["mfa"], "auth_time": now - 5,
            }),
        },
        Shape {
            provider: "Microsoft Entra ID (v2)",
            configure: |i| i.also_accept_typ("JWT").client_id_claim("azp").omits_claims(["jti"]),
            at_typ: Some("JWT"),
            id_typ: Some("JWT"),
            access: json!({
                "aud": AUD, "iss": ISS, "iat": now, "nbf": now, "exp": now + 3600, "aio": "AWQAm",
                "azp": SPA, "azpacr": "0", "name": "Alice", "oid": "690222be", "rh": "I",
                "scp": "accounts", "sub": "HKZpfaHyWadeOouYlitjrI", "tid": "72f988bf",
                "uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": "2.0", "acrs": ["c1"],
            }),
            id: json!({
                "aud": [SPA, AUD], "iss": ISS, "iat": now, "nbf": now, "exp": now + 3600,
                "aio": "AWQAm", "name": "Alice", "nonce": "n-0S6", "oid": "690222be", "rh": "I",
                "sub": "HKZpfaHyWadeOouYlitjrI", "tid": "72f988bf", "uti": "fqiBqXLPj0eQa82S",
                "ver": "2.0",
            }),
        },
    ]
}

fn sign(typ: Option<&str>, claims: &Value) -> String {
    let s = signer(Algorithm::RS256);
    sign_raw(
        &header(Algorithm::RS256, typ, Some(s.kid)).to_string(),
        &claims.to_string(),
        &s.key,
        Algorithm::RS256,
    )
}

fn auth(configure: impl FnOnce(Issuer) -> Issuer) -> StepUp {
    StepUp::builder()
        .issuer(configure(
            Issuer::access_tokens(ISS).audience(AUD).static_keys(issuer_keys()),
        ))
        .realm("bank")
        .build()
        .unwrap()
}

/// The ID token as issued and stripped of the claims that only sometimes appear.
fn id_variants(id: &Value) -> Vec<(&'static str, Value)> {
    let mut stripped = id.clone();
    for c in ["nonce", "at_hash", "c_hash", "s_hash"] {
        stripped.as_object_mut().unwrap().remove(c);
    }
    vec![("as issued", id.clone()), ("without nonce/at_hash", stripped)]
}

#[tokio::test]
async fn each_providers_access_tokens_pass_and_id_tokens_are_wrong_type() {
    for shape in shapes() {
        let recommended = auth(shape.configure);
        let strict = auth(|i| i);
        let access = sign(shape.at_typ, &shape.access);
        let a = call(&app(&recommended), "/balance", &access).await;
        assert_eq!(a.status, 200, "{}: access token refused: {}", shape.provider, a.text);
        assert!(recommended.verify(&access).await.is_ok(), "{}", shape.provider);

        for (variant, id) in id_variants(&shape.id) {
            let token = sign(shape.id_typ, &id);
            for (setting, auth) in [("recommended settings", &recommended), ("strict typ", &strict)] {
                let what = format!("{} ID token {variant}, {setting}", shape.provider);
                let err = auth.verify(&token).await.unwrap_err();
                assert!(matches!(err, VerifyError::WrongType { .. }), "{what}: {err:?}");
                let app = app(auth);
                for route in ["/balance", "/transfer", "/scoped"] {
                    let a = call(&app, route, &token).await;
                    a.assert_refused(401, Some("invalid_token"));
                    assert_eq!(a.body["error_description"], err.description(), "{what} on {route}");
                    let c = a.challenge.as_ref().unwrap();
                    let desc = c.error_description.as_deref().unwrap();
                    assert!(desc.starts_with("wrong token type: "), "{what}: {desc}");
                }
            }
        }
    }
}

#[tokio::test]
async fn with_relaxed_typ_the_client_claim_proves_an_access_token() {
    let lenient = auth(|i| i.also_accept_typ("JWT"));
    let strict = auth(|i| i);
    let mut c = pwd_claims();
    c.as_object_mut().unwrap().remove("client_id");
    // Relaxed typ: no client claim means it may be an ID token.
    let err = lenient.verify(&sign(Some("JWT"), &c)).await.unwrap_err();
    assert_eq!(
        err.description(),
        "wrong token type: an access token names its client (client_id)"
    );
    // at+jwt: the type is settled by the header; the claim is simply missing.
    assert_eq!(
        strict.verify(&sign(Some("at+jwt"), &c)).await.unwrap_err(),
        VerifyError::MissingClaim("client_id")
    );
    // A client claim of the wrong type is invalid.
    c["client_id"] = json!(["spa"]);
    assert_eq!(
        strict.verify(&sign(Some("at+jwt"), &c)).await.unwrap_err(),
        VerifyError::InvalidClaim("client_id")
    );
    // ID-token-only claims are refused whatever the typ.
    for marker in ["nonce", "at_hash", "c_hash", "s_hash", "events"] {
        let mut c = pwd_claims();
        c[marker] = json!("x");
        let err = strict.verify(&sign(Some("at+jwt"), &c)).await.unwrap_err();
        assert_eq!(
            err.description(),
            "wrong token type: an ID token is not an access token",
            "{marker}"
        );
    }
}

#[tokio::test]
async fn rfc9068_claims_required_by_default_with_a_named_escape_hatch() {
    let strict = auth(|i| i);
    for missing in ["sub", "client_id", "iat", "jti"] {
        let mut c = pwd_claims();
        c.as_object_mut().unwrap().remove(missing);
        let err = strict.verify(&mint(&c)).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::MissingClaim(m) if m == missing),
            "{missing}: {err:?}"
        );
        call(&app(&strict), "/balance", &mint(&c))
            .await
            .assert_refused(401, Some("invalid_token"));
        // The provider is declared to omit it: the token passes.
        let declared = auth(|i| i.omits_claims([missing]));
        assert!(declared.verify(&mint(&c)).await.is_ok(), "{missing}");
    }
    // A `jti` that is not a string is invalid.
    let mut c = pwd_claims();
    c["jti"] = json!(7);
    assert_eq!(
        strict.verify(&mint(&c)).await.unwrap_err(),
        VerifyError::InvalidClaim("jti")
    );
}

#[tokio::test]
async fn escape_hatch_cannot_silently_remove_the_separation() {
    let build = |configure: fn(Issuer) -> Issuer| {
        StepUp::builder()
            .issuer(configure(
                Issuer::access_tokens(ISS).audience(AUD).static_keys(issuer_keys()),
            ))
            .build()
    };
    // Relaxed typ and no client claim at all: refused, with the way out in the message.
    for configure in [
        (|i: Issuer| i.also_accept_typ("JWT").omits_claims(["client_id"])) as fn(Issuer) -> Issuer,
        |i| i.allow_missing_typ().omits_claims(["client_id"]),
        |i| {
            i.also_accept_typ("JWT")
                .client_id_claim("azp")
                .omits_claims(["client_id"])
        },
    ] {
        let err = build(configure).unwrap_err().to_string();
        assert!(err.contains("client_id_claim"), "{err}");
    }
    // iss, exp and aud can never be omitted; unknown names are refused.
    for name in ["iss", "exp", "aud", "nonce"] {
        let err = StepUp::builder()
            .issuer(
                Issuer::access_tokens(ISS)
                    .audience(AUD)
                    .static_keys(issuer_keys())
                    .omits_claims([name]),
            )
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("omits_claims"), "{name}: {err}");
    }
    // These settings are for access tokens only.
    let err = StepUp::builder()
        .issuer(
            Issuer::id_tokens(ISS, SPA)
                .static_keys(issuer_keys())
                .also_accept_typ("JWT"),
        )
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("access tokens only"), "{err}");
    // Strict typ: omitting client_id is allowed (the header settles the type).
    assert!(build(|i| i.omits_claims(["client_id"])).is_ok());
}

/// The reverse: an ID-token issuer never takes any provider's access token, and an ID token
/// must name our client in `aud` (OIDC Core §3.1.3.7 (3)).
#[tokio::test]
async fn id_token_issuers_refuse_every_providers_access_tokens() {
    let id_auth = StepUp::builder()
        .issuer(Issuer::id_tokens(ISS, SPA).audience(AUD).static_keys(issuer_keys()))
        .realm("bank")
        .build()
        .unwrap();
    for shape in shapes() {
        let token = sign(Some("JWT"), &shape.access);
        let err = id_auth.verify(&token).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::WrongType { .. }),
            "{}: {err:?}",
            shape.provider
        );
    }
    // An ID token issued to another client, even one we trust as an audience.
    let now = now();
    let other = json!({"iss": ISS, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 60});
    assert_eq!(
        id_auth.verify(&sign(Some("JWT"), &other)).await.unwrap_err(),
        VerifyError::WrongAudience
    );
}

/// With a relaxed typ and `azp` as the client claim, an ID token that carries `azp` but no
/// `nonce`/`at_hash` still names its client as its audience, and is refused for it.
#[tokio::test]
async fn azp_as_client_claim_refuses_tokens_whose_audience_is_their_client() {
    let auth = auth(|i| i.also_accept_typ("JWT").client_id_claim("azp"));
    let now = now();
    let id_like = json!({
        "iss": ISS, "aud": [SPA, AUD], "azp": SPA, "sub": "alice", "jti": "x",
        "iat": now, "exp": now + 60,
    });
    let err = auth.verify(&sign(Some("JWT"), &id_like)).await.unwrap_err();
    assert!(matches!(err, VerifyError::WrongType { .. }), "{err:?}");
    // Claims that never name a client cannot stand in for client_id.
    for claim in ["sub", "aud", "nonce", "jti"] {
        let err = StepUp::builder()
            .issuer(
                Issuer::access_tokens(ISS)
                    .audience(AUD)
                    .static_keys(issuer_keys())
                    .client_id_claim(claim),
            )
            .build()
            .unwrap_err();
        assert!(
            matches!(err, stepup_tower::ConfigError::UnfitClientClaim { .. }),
            "{claim}: {err:?}"
        );
    }
}

/// A sender-constrained token (RFC 9449 `cnf.jkt`, RFC 8705 `cnf.x5t#S256`) presented as a
/// bearer token is refused: it may have been stolen.
#[tokio::test]
async fn sender_constrained_tokens_are_not_bearer_tokens() {
    let strict = auth(|i| i);
    for cnf in [
        json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
    ] {
        let mut c = pwd_claims();
        c["cnf"] = cnf;
        assert_eq!(
            strict.verify(&mint(&c)).await.unwrap_err(),
            VerifyError::SenderConstrained
        );
        call(&app(&strict), "/balance", &mint(&c))
            .await
            .assert_refused(401, Some("invalid_token"));
    }
}
