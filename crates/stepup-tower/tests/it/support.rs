//! Real keys, real tokens, real requests.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use stepup_tower::challenge::BearerChallenge;
use stepup_tower::keys::KeySet;
use stepup_tower::{AuthContext, Issuer, Requirement, StepUp};
use tower::ServiceExt as _;

pub const ISS: &str = "https://id.example.test";
pub const AUD: &str = "bank-api";
pub const MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
pub const HMAC_SECRET: &[u8] = b"client-secret-of-at-least-32-bytes-long!!";

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/", $name))
    };
}

/// A signing key of the test issuer.
pub struct Signer {
    pub kid: &'static str,
    pub alg: Algorithm,
    pub key: EncodingKey,
    pub public_pem: &'static [u8],
}

pub fn signer(alg: Algorithm) -> &'static Signer {
    static ALL: OnceLock<Vec<Signer>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let rsa = |pem| EncodingKey::from_rsa_pem(pem).unwrap();
        vec![
            Signer {
                kid: "rsa1",
                alg: Algorithm::RS256,
                key: rsa(fixture!("rsa1.pem")),
                public_pem: fixture!("rsa1.pub.pem"),
            },
            Signer {
                kid: "rsa2",
                alg: Algorithm::PS256,
                key: rsa(fixture!("rsa2.pem")),
                public_pem: fixture!("rsa2.pub.pem"),
            },
            Signer {
                kid: "p256a",
                alg: Algorithm::ES256,
                key: EncodingKey::from_ec_pem(fixture!("p256a.pem")).unwrap(),
                public_pem: fixture!("p256a.pub.pem"),
            },
            Signer {
                kid: "p384",
                alg: Algorithm::ES384,
                key: EncodingKey::from_ec_pem(fixture!("p384.pem")).unwrap(),
                public_pem: fixture!("p384.pub.pem"),
            },
            Signer {
                kid: "ed1",
                alg: Algorithm::EdDSA,
                key: EncodingKey::from_ed_pem(fixture!("ed1.pem")).unwrap(),
                public_pem: fixture!("ed1.pub.pem"),
            },
        ]
    });
    all.iter().find(|s| s.alg == alg).unwrap()
}

/// The second P-256 key: not in the issuer's set.
pub fn stranger_p256() -> EncodingKey {
    EncodingKey::from_ec_pem(fixture!("p256b.pem")).unwrap()
}

pub fn rsa1_public_pem() -> &'static [u8] {
    fixture!("rsa1.pub.pem")
}

pub const ALL_ASYMMETRIC: [Algorithm; 5] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The issuer's key set: every asymmetric test key, loaded from PEM under its kid.
pub fn issuer_keys() -> KeySet {
    let mut set = KeySet::new();
    for alg in ALL_ASYMMETRIC {
        let s = signer(alg);
        set = set.with_pem(Some(s.kid), s.public_pem).unwrap();
    }
    set
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs raw header and payload JSON text: any header, any payload, real signature.
pub fn sign_raw(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a valid access token after a password login.
pub fn pwd_claims() -> Value {
    let now = now();
    json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "client_id": "spa",
        "iat": now, "exp": now + 600, "auth_time": now - 10,
        "acr": "loa1", "amr": ["pwd"], "scope": "openid accounts", "jti": "j1"
    })
}

/// Claims after MFA (the seeds' `amr: ["pwd","otp","mfa"]`).
pub fn mfa_claims() -> Value {
    let mut c = pwd_claims();
    c["acr"] = json!(MFA);
    c["amr"] = json!(["pwd", "otp", "mfa"]);
    c
}

pub fn header(alg: Algorithm, typ: Option<&str>, kid: Option<&str>) -> Value {
    let mut h = json!({ "alg": format!("{alg:?}") });
    if let Some(t) = typ {
        h["typ"] = json!(t);
    }
    if let Some(k) = kid {
        h["kid"] = json!(k);
    }
    h
}

/// An RFC 9068 access token signed with the test key of `alg`.
pub fn mint_with(alg: Algorithm, claims: &Value) -> String {
    let s = signer(alg);
    sign_raw(
        &header(alg, Some("at+jwt"), Some(s.kid)).to_string(),
        &claims.to_string(),
        &s.key,
        alg,
    )
}

pub fn mint(claims: &Value) -> String {
    mint_with(Algorithm::ES256, claims)
}

pub fn step_up() -> StepUp {
    StepUp::builder()
        .issuer(Issuer::access_tokens(ISS).audience(AUD).static_keys(issuer_keys()))
        .realm("bank")
        .resource_metadata("https://bank.example.test/.well-known/oauth-protected-resource")
        .build()
        .unwrap()
}

async fn whoami(ctx: AuthContext) -> String {
    ctx.sub.unwrap_or_default()
}

/// `/balance`: any valid token; `/transfer`: MFA within 300 s; `/scoped`: scope `transfer`.
pub fn app(auth: &StepUp) -> Router {
    // `MethodRouter::route_layer`: the requirement applies to this route only.
    Router::new()
        .route(
            "/transfer",
            get(whoami)
                .post(whoami)
                .route_layer(auth.require(Requirement::new().acr([MFA]).max_age(300))),
        )
        .route(
            "/scoped",
            get(whoami)
                .post(whoami)
                .route_layer(auth.require(Requirement::new().scope(["transfer"]))),
        )
        .route("/balance", get(whoami).post(whoami))
        .layer(auth.authenticate())
}

pub struct Answer {
    pub status: StatusCode,
    pub challenge: Option<BearerChallenge>,
    pub raw_challenge: Option<String>,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// Asserts a refusal: status, a well-formed Bearer challenge with this `error`, and the
    /// same `error` in the JSON body.
    #[track_caller]
    pub fn assert_refused(&self, status: u16, error: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text);
        let c = self.challenge.as_ref().expect("a Bearer challenge");
        assert_eq!(
            c.error.as_ref().map(|e| e.as_str()),
            error,
            "challenge {:?}",
            self.raw_challenge
        );
        assert_eq!(c.realm.as_deref(), Some("bank"));
        match error {
            Some(e) => assert_eq!(self.body["error"], e),
            None => assert!(
                self.body.get("error").is_none(),
                "no error code without one in the header"
            ),
        }
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let raw = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let challenge = BearerChallenge::from_headers(res.headers()).unwrap();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        challenge,
        raw_challenge: raw,
        body,
        text,
    }
}

pub fn get_with(path: &str, authorization: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(a) = authorization {
        b = b.header("authorization", a);
    }
    b.body(Body::empty()).unwrap()
}

pub async fn call(app: &Router, path: &str, token: &str) -> Answer {
    send(app, get_with(path, Some(&format!("Bearer {token}")))).await
}
