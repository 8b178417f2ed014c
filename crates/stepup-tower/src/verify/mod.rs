//! Raw token → [`VerifiedToken`].
//!
//! The checks run cheapest first, so that a garbage token costs no signature verification and
//! an unknown issuer costs no key lookup (and no fetch):
//!
//! 1. length bound;
//! 2. compact serialization: exactly three non-empty segments of base64url characters
//!    (`[A-Za-z0-9_-]`, no padding); JWE (five segments) and JSON serialization are refused;
//! 3. header: size bound, base64url, a JSON object without duplicate members at any depth; `alg` is a known
//!    algorithm and never `none` in any case; `crit` is refused (we understand no extension);
//!    `cty` (nested JWT) is refused; `jku`, `x5u`, `x5c` and `jwk` are ignored;
//! 4. payload: base64url, a JSON object without duplicate members at any depth;
//! 5. `iss` selects one of the configured issuers (exact match) — anything else stops here;
//! 6. `alg` is in that issuer's allow-list, `typ` fits its token profile;
//! 7. key lookup by `kid` in the issuer's current key set (an unknown `kid` asks the key source
//!    to refresh once); the key must permit `alg` (type, and the JWK's own `alg`);
//! 8. signature (a failure under a known `kid` asks the key source once whether that `kid`'s
//!    material changed);
//! 9. token type, for the access-token profile: no claim only ID or logout tokens carry, and
//!    the client claim present (see [`Issuer::also_accept_typ`]);
//! 10. claims: `exp` (required), `nbf`, `iat`, `aud`, `azp`, RFC 9068 §2.2's `sub`, `iat`, `jti`
//!     for access tokens, and the types of `sub`, `acr`, `amr`, `auth_time`, `scope`/`scp`.
//!     Judged only after the signature verified, so that an unsigned caller cannot probe the
//!     accepted audience, lifetime or leeway.
//!
//! Duplicate members: a header or payload in which any object, at any depth, has the same
//! member name twice is refused (RFC 7515 §4 and RFC 7519 §4 allow refusing or keeping the
//! last; keeping one would let two parsers of the same signed token disagree).

pub(crate) mod cache;
pub(crate) mod claims;
pub(crate) mod issuer;
#[cfg(test)]
mod wycheproof_tests;

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::{Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

pub use cache::TokenCacheMetrics;
pub use claims::AuthContext;
pub use issuer::{DEFAULT_ALGORITHMS, Issuer, TokenProfile};

use crate::keys::{Key, KeyError, KeyKind, KeySet, LookupError};
use issuer::IssuerRules;

/// Default bound on the `Authorization` header and on a token, in bytes. Generous for a JWT
/// (providers that embed group lists reach 8 KiB), small enough to bound the work.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 16 * 1024;
/// Default bound on the encoded JOSE header, in bytes.
pub const DEFAULT_MAX_HEADER_LEN: usize = 4 * 1024;

/// Why a token was refused (answered with 401 `invalid_token`).
///
/// The variants say what went wrong for logs and metrics; the wire only ever gets the short
/// fixed text of [`VerifyError::description`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is longer than the configured bound.
    TooLarge {
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Not a compact JWS (wrong number of segments, bad characters, bad base64url, not JSON).
    Malformed(&'static str),
    /// A JWE or a JSON-serialized JWS.
    UnsupportedSerialization,
    /// `alg` is `none` (any letter case).
    AlgNone,
    /// `alg` is unknown or not allowed for this issuer.
    AlgorithmNotAllowed(String),
    /// The header lists `crit` extensions (none are understood).
    UnsupportedCrit,
    /// The header says the payload is a nested JWT (`cty`).
    NestedToken,
    /// The token is not of the issuer's token profile (e.g. an ID token offered as an access
    /// token): its header `typ`, or claims only the other kind carries.
    WrongType {
        /// Fixed text saying what was expected, e.g. `wrong token type: expected typ at+jwt`.
        expected: &'static str,
    },
    /// A header or payload object has the same member twice.
    DuplicateMember,
    /// `iss` is not one of the configured issuers.
    UnknownIssuer,
    /// A required claim is missing.
    MissingClaim(&'static str),
    /// A claim has the wrong type or an impossible value.
    InvalidClaim(&'static str),
    /// `exp` has passed.
    Expired {
        /// `exp`.
        exp: i64,
        /// The current time.
        now: i64,
    },
    /// `nbf` is in the future.
    NotYetValid {
        /// `nbf`.
        nbf: i64,
        /// The current time.
        now: i64,
    },
    /// `auth_time` is in the future.
    AuthTimeInFuture {
        /// `auth_time`.
        auth_time: i64,
        /// The current time.
        now: i64,
    },
    /// `iat` is in the future.
    IssuedInFuture {
        /// `iat`.
        iat: i64,
        /// The current time.
        now: i64,
    },
    /// `aud` does not contain an accepted audience.
    WrongAudience,
    /// `azp` is present and is not our client id.
    WrongAuthorizedParty,
    /// No key has this `kid` (after one refresh).
    KeyNotFound {
        /// The `kid`, truncated to 64 characters.
        kid: Option<String>,
    },
    /// Several different keys share the `kid`.
    AmbiguousKey,
    /// No `kid`, and several keys could verify the token.
    KidRequired,
    /// The key named by `kid` may not verify this `alg`.
    KeyAlgorithmMismatch,
    /// The issuer's key source has no keys.
    KeysUnavailable(KeyError),
    /// The signature does not verify.
    BadSignature,
    /// The token is sender-constrained (`cnf`, RFC 9449 / RFC 8705) and was presented without
    /// its proof of possession.
    SenderConstrained,
    /// The token was presented with a DPoP proof but is not bound to a key (`cnf.jkt`).
    NotDpopBound,
    /// The token's `cnf.jkt` is not the thumbprint of the proof's key.
    DpopKeyMismatch,
    /// The token's issuer does not accept DPoP.
    DpopNotAccepted,
    /// The token's issuer requires DPoP and the token came as a bearer token.
    DpopRequired,
}

impl VerifyError {
    /// A fixed, short name of the reason (a metrics label, a log field).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed(_) => "malformed",
            Self::UnsupportedSerialization => "unsupported_serialization",
            Self::AlgNone => "alg_none",
            Self::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Self::UnsupportedCrit => "unsupported_crit",
            Self::NestedToken => "nested_token",
            Self::WrongType { .. } => "wrong_type",
            Self::DuplicateMember => "duplicate_member",
            Self::UnknownIssuer => "unknown_issuer",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidClaim(_) => "invalid_claim",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::AuthTimeInFuture { .. } => "auth_time_in_future",
            Self::IssuedInFuture { .. } => "issued_in_future",
            Self::WrongAudience => "wrong_audience",
            Self::WrongAuthorizedParty => "wrong_authorized_party",
            Self::KeyNotFound { .. } => "key_not_found",
            Self::AmbiguousKey => "ambiguous_key",
            Self::KidRequired => "kid_required",
            Self::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Self::KeysUnavailable(_) => "keys_unavailable",
            Self::BadSignature => "bad_signature",
            Self::SenderConstrained => "sender_constrained",
            Self::NotDpopBound => "not_dpop_bound",
            Self::DpopKeyMismatch => "dpop_key_mismatch",
            Self::DpopNotAccepted => "dpop_not_accepted",
            Self::DpopRequired => "dpop_required",
        }
    }

    /// Short, fixed text for `error_description`: never echoes token content.
    pub fn description(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "token too large",
            Self::Malformed(_) => "malformed token",
            Self::UnsupportedSerialization => "only compact JWS tokens are accepted",
            Self::AlgNone => "unsigned tokens are not accepted",
            Self::AlgorithmNotAllowed(_) => "signing algorithm not allowed",
            Self::UnsupportedCrit => "unsupported critical header",
            Self::NestedToken => "nested tokens are not accepted",
            Self::WrongType { expected } => expected,
            Self::DuplicateMember => "duplicate JSON member",
            Self::UnknownIssuer => "untrusted issuer",
            Self::MissingClaim(c) => missing_text(c),
            Self::InvalidClaim(c) => invalid_text(c),
            Self::AuthTimeInFuture { .. } => "auth_time is in the future",
            Self::Expired { .. } => "token expired",
            Self::NotYetValid { .. } => "token not yet valid",
            Self::IssuedInFuture { .. } => "token issued in the future",
            Self::WrongAudience => "token not intended for this resource",
            Self::WrongAuthorizedParty => "token issued to another client",
            Self::KeyNotFound { .. } => "signing key not found",
            Self::AmbiguousKey => "signing key is ambiguous",
            Self::KidRequired => "token does not name its signing key",
            Self::KeyAlgorithmMismatch => "signing key does not match the algorithm",
            Self::KeysUnavailable(_) => "signing keys unavailable",
            Self::BadSignature => "invalid signature",
            Self::SenderConstrained => "a sender-constrained token (cnf) is not accepted as a bearer token",
            Self::NotDpopBound => "the token is not bound to a DPoP key",
            Self::DpopKeyMismatch => "invalid DPoP key binding",
            Self::DpopNotAccepted => "DPoP is not accepted for this token's issuer",
            Self::DpopRequired => "a DPoP-bound token and proof are required",
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => write!(f, "token of {len} bytes exceeds {max}"),
            Self::Malformed(why) => write!(f, "malformed token: {why}"),
            Self::AlgorithmNotAllowed(alg) => write!(f, "algorithm {alg:?} not allowed"),
            Self::MissingClaim(c) => write!(f, "claim `{c}` missing"),
            Self::InvalidClaim(c) => write!(f, "claim `{c}` invalid"),
            Self::Expired { exp, now } => write!(f, "token expired at {exp} (now {now})"),
            Self::NotYetValid { nbf, now } => write!(f, "token not valid before {nbf} (now {now})"),
            Self::IssuedInFuture { iat, now } => write!(f, "token issued at {iat}, in the future (now {now})"),
            Self::AuthTimeInFuture { auth_time, now } => {
                write!(f, "auth_time {auth_time} is in the future (now {now})")
            }
            Self::KeyNotFound { kid } => write!(f, "no key with kid {kid:?}"),
            Self::KeysUnavailable(e) => write!(f, "{e}"),
            other => f.write_str(other.description()),
        }
    }
}

impl std::error::Error for VerifyError {}

/// `error_description` of a missing claim: fixed texts that name it.
fn missing_text(claim: &str) -> &'static str {
    match claim {
        "iss" => "claim iss missing",
        "exp" => "claim exp missing",
        "aud" => "claim aud missing",
        "sub" => "claim sub missing",
        "iat" => "claim iat missing",
        "jti" => "claim jti missing",
        "client_id" => "claim client_id missing",
        "azp" => "claim azp missing",
        _ => "a required claim is missing",
    }
}

/// `error_description` of a claim of the wrong type or value.
fn invalid_text(claim: &str) -> &'static str {
    match claim {
        "iss" => "claim iss invalid",
        "exp" => "claim exp invalid",
        "nbf" => "claim nbf invalid",
        "iat" => "claim iat invalid",
        "aud" => "claim aud invalid",
        "azp" => "claim azp invalid",
        "sub" => "claim sub invalid",
        "jti" => "claim jti invalid",
        "client_id" => "claim client_id invalid",
        "acr" => "claim acr invalid",
        "amr" => "claim amr invalid",
        "auth_time" => "claim auth_time invalid",
        "scope" => "claim scope invalid",
        "scp" => "claim scp invalid",
        "cnf" => "claim cnf invalid",
        _ => "a claim is invalid",
    }
}

/// The `WrongType` texts.
pub(crate) mod wrong_type {
    /// An access token's header `typ` is not RFC 9068's.
    pub(crate) const ACCESS_TYP: &str = "wrong token type: expected typ at+jwt";
    /// An ID token's header `typ` is not `JWT` (or absent).
    pub(crate) const ID_TYP: &str = "wrong token type: expected typ JWT or no typ (an ID token)";
    /// A claim only ID or logout tokens carry, in an access token.
    pub(crate) const ID_CLAIMS: &str = "wrong token type: an ID token is not an access token";
    /// Relaxed `typ` and no client claim.
    pub(crate) const NO_CLIENT: &str = "wrong token type: an access token names its client (client_id)";
    /// Claims only access tokens carry, in an ID token.
    pub(crate) const ACCESS_CLAIMS: &str = "wrong token type: an access token is not an ID token";
    /// A logout token offered as an ID token.
    pub(crate) const LOGOUT: &str = "wrong token type: a logout token is not a bearer credential";
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    context: AuthContext,
    claims: Arc<Map<String, Value>>,
    alg: Algorithm,
    kid: Option<String>,
    binding: claims::Binding,
    issuer: usize,
}

impl VerifiedToken {
    /// The authentication context (`sub`, `acr`, `amr`, `auth_time`, scopes, …).
    pub fn context(&self) -> &AuthContext {
        &self.context
    }

    /// All claims of the payload.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// One claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// Deserializes the claims into the caller's type.
    pub fn deserialize_claims<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(Value::Object((*self.claims).clone()))
    }

    /// The algorithm the token was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The `kid` of the key that verified it.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// `cnf.jkt`: the RFC 7638 thumbprint of the key this token is bound to (RFC 9449 §6.1),
    /// when it is DPoP-bound.
    pub fn dpop_jkt(&self) -> Option<&str> {
        match &self.binding {
            claims::Binding::Jkt(jkt) => Some(jkt),
            _ => None,
        }
    }

    /// Whether the token carries `cnf` at all (DPoP or another confirmation method).
    pub fn is_sender_constrained(&self) -> bool {
        self.binding != claims::Binding::None
    }

    pub(crate) fn binding(&self) -> &claims::Binding {
        &self.binding
    }

    /// Index of the issuer that verified it.
    pub(crate) fn issuer_index(&self) -> usize {
        self.issuer
    }
}

#[cfg(test)]
impl VerifiedToken {
    /// A token with this context (as [`claims::validate`] builds it) and these claims, without
    /// a signature: for unit tests of what reads a verified token (`require.rs`).
    pub(crate) fn for_tests(context: AuthContext, claims: Map<String, Value>) -> Self {
        Self {
            context,
            claims: Arc::new(claims),
            alg: Algorithm::ES256,
            kid: None,
            binding: claims::Binding::None,
            issuer: 0,
        }
    }
}

/// A JSON value in which no object, at any depth, has the same member name twice.
///
/// RFC 7515 §4 and RFC 7519 §4 let a parser either refuse duplicate member names or keep the
/// lexically last one. We refuse: a handler deserializing the claims again (`Claims<T>`), a
/// proxy or a log pipeline might keep the first, and two readers of one signed token must
/// never see different claims. Building a `serde_json::Value` already looks every member up
/// in its map, so the check costs nothing extra.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Unique(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let Unique(value) = access.next_value()?;
            if map.insert(key, value).is_some() {
                return Err(A::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(map))
    }
}

const DUPLICATE: &str = "stepup-duplicate-member";

/// Parses a JSON object, refusing duplicate member names at every depth.
pub(crate) fn parse_object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, VerifyError> {
    match serde_json::from_slice::<Unique>(bytes) {
        Ok(Unique(Value::Object(o))) => Ok(o),
        Ok(_) => Err(VerifyError::Malformed(what)),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(VerifyError::DuplicateMember),
        Err(_) => Err(VerifyError::Malformed(what)),
    }
}

pub(crate) fn is_b64url(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The verification rules of one layer: issuers, leeway and bounds.
pub(crate) struct Verifier {
    pub(crate) issuers: Vec<IssuerRules>,
    pub(crate) leeway: i64,
    pub(crate) max_token_len: usize,
    pub(crate) max_header_len: usize,
    pub(crate) cache: Option<cache::TokenCache>,
}

enum Step {
    Refused(VerifyError),
    NeedsKeys {
        issuer: usize,
        kid: Option<String>,
        failed: Option<Arc<Key>>,
    },
}

impl From<VerifyError> for Step {
    fn from(e: VerifyError) -> Self {
        Self::Refused(e)
    }
}

#[allow(clippy::large_enum_variant)] // built and matched at once, never stored
pub(crate) enum Outcome {
    Done(Result<Arc<VerifiedToken>, VerifyError>),
    /// The `kid` is not in the issuer's current set (`failed` is `None`), or its key did not
    /// verify the signature (`failed` is that key): ask the issuer's source to refresh.
    NeedsKeys {
        issuer: usize,
        kid: Option<String>,
        failed: Option<Arc<Key>>,
    },
}

/// The JOSE header members we read. Unknown members are ignored (`jku`, `x5u`, `x5c`, `jwk`
/// included: keys only ever come from the issuer's key source), once the header passed the
/// duplicate check. A member of the wrong type is a parse error.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default, deserialize_with = "string")]
    kid: Option<String>,
    #[serde(default, deserialize_with = "string")]
    typ: Option<String>,
    #[serde(default, deserialize_with = "present")]
    crit: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    cty: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    enc: Option<Value>,
}

/// A string when the member is there (`null` is not a string).
fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// `Some` whenever the member is there, even as `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

struct Jws<'t> {
    header: JoseHeader,
    alg: Algorithm,
    payload: &'t str,
    signing_input: &'t str,
    signature: &'t str,
}

/// Steps 1–3: serialization and header rules.
fn parse_jws(token: &str, max_token_len: usize, max_header_len: usize) -> Result<Jws<'_>, VerifyError> {
    if token.len() > max_token_len {
        return Err(VerifyError::TooLarge {
            len: token.len(),
            max: max_token_len,
        });
    }
    if token.starts_with('{') {
        return Err(VerifyError::UnsupportedSerialization);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(if token.split('.').count() == 5 {
            VerifyError::UnsupportedSerialization
        } else {
            VerifyError::Malformed("not three segments")
        });
    };
    // An empty payload is a valid JWS (it then fails as JWT claims). An empty signature is
    // refused below, once the header is read, so that the unsecured form (RFC 7515 A.5,
    // `alg: none` with no signature) is reported as what it is.
    if !is_b64url(h) || !(p.is_empty() || is_b64url(p)) || !(s.is_empty() || is_b64url(s)) {
        return Err(VerifyError::Malformed("segment is empty or not base64url"));
    }
    if h.len() > max_header_len {
        return Err(VerifyError::Malformed("header too large"));
    }
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| VerifyError::Malformed("header is not base64url"))?;
    // An object without duplicate members at any depth, then the members we read.
    let header_object = parse_object(&header_bytes, "header is not a JSON object")?;
    let header = JoseHeader::deserialize(Value::Object(header_object))
        .map_err(|_| VerifyError::Malformed("header is not a valid JOSE header"))?;
    if header.alg.eq_ignore_ascii_case("none") {
        return Err(VerifyError::AlgNone);
    }
    let alg =
        crate::keys::parse_alg(&header.alg).ok_or_else(|| VerifyError::AlgorithmNotAllowed(truncate(&header.alg)))?;
    if s.is_empty() {
        return Err(VerifyError::Malformed("empty signature"));
    }
    // RFC 7515 §4.1.11: we understand no extension, so any `crit` is refused.
    if header.crit.is_some() {
        return Err(VerifyError::UnsupportedCrit);
    }
    if header.cty.is_some() || header.enc.is_some() {
        return Err(VerifyError::NestedToken);
    }
    let signing_input = token
        .get(..h.len() + 1 + p.len())
        .ok_or(VerifyError::Malformed("segments"))?;
    Ok(Jws {
        header,
        alg,
        payload: p,
        signing_input,
        signature: s,
    })
}

impl Jws<'_> {
    fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// Steps 7–8: key lookup and signature.
    fn check_signature(&self, keys: &KeySet) -> Result<Arc<Key>, VerifyError> {
        let kid = self.kid();
        match keys.find_shared(kid, self.alg) {
            Ok(key) if key.verify_b64(self.alg, self.signing_input.as_bytes(), self.signature) => Ok(key.clone()),
            Ok(_) => Err(VerifyError::BadSignature),
            Err(LookupError::NotFound) => Err(VerifyError::KeyNotFound { kid: kid.map(truncate) }),
            Err(LookupError::Ambiguous) => Err(VerifyError::AmbiguousKey),
            Err(LookupError::KidRequired) => Err(VerifyError::KidRequired),
            Err(_) => Err(VerifyError::KeyAlgorithmMismatch),
        }
    }
}

/// Verifies a compact JWS against a key set, without any claim rules: serialization, header
/// rules (`alg` allow-list, never `none`, no `crit`, key binding), key lookup and signature.
/// Returns the decoded payload. The JWS layer of the full verification, for test vectors.
#[cfg(test)]
pub(crate) fn verify_jws(token: &str, keys: &KeySet, algorithms: &[Algorithm]) -> Result<Vec<u8>, VerifyError> {
    crate::crypto::install_provider();
    let jws = parse_jws(token, DEFAULT_MAX_TOKEN_LEN, DEFAULT_MAX_HEADER_LEN)?;
    if !algorithms.contains(&jws.alg) {
        return Err(VerifyError::AlgorithmNotAllowed(format!("{:?}", jws.alg)));
    }
    let _key = jws.check_signature(keys)?;
    URL_SAFE_NO_PAD
        .decode(jws.payload)
        .map_err(|_| VerifyError::Malformed("payload is not base64url"))
}

impl Verifier {
    /// A token found in the verified-token cache, still fresh and still under its key; `None`
    /// on a miss or when the cache is off. `token` is the raw credential, unchecked: only a
    /// token that passed every check is ever stored, and a compact JWS that verifies is made of
    /// base64url segments and dots, so it also passed RFC 6750's `b64token` check.
    pub(crate) fn cached(&self, token: &[u8], now: i64) -> Option<Arc<VerifiedToken>> {
        let cache = self.cache.as_ref()?;
        let current = |i: usize| self.issuers.get(i).and_then(|r| r.keys.current().ok());
        cache.get(token, now, self.leeway, current)
    }

    /// Runs every check (after a [`Verifier::cached`] miss) and stores a token that passes;
    /// `keys` overrides the issuer's current set (after a refresh).
    pub(crate) fn verify(&self, token: &str, now: i64, keys: Option<Arc<KeySet>>, may_refresh: bool) -> Outcome {
        Outcome::Done(match self.verify_inner(token, now, keys, may_refresh) {
            Ok((token_, issuer, key, set)) => {
                let verified = Arc::new(token_);
                if let Some(cache) = &self.cache {
                    let nbf = claims::numeric_date(verified.claims(), "nbf").ok().flatten();
                    cache.insert(
                        token.as_bytes(),
                        cache::Entry {
                            token: verified.clone(),
                            issuer,
                            key,
                            set,
                            nbf,
                            stored_at: now,
                        },
                    );
                }
                Ok(verified)
            }
            Err(Step::Refused(e)) => Err(e),
            Err(Step::NeedsKeys { issuer, kid, failed }) => return Outcome::NeedsKeys { issuer, kid, failed },
        })
    }

    pub(crate) fn cache_metrics(&self) -> TokenCacheMetrics {
        self.cache.as_ref().map(cache::TokenCache::metrics).unwrap_or_default()
    }

    fn verify_inner(
        &self,
        token: &str,
        now: i64,
        keys: Option<Arc<KeySet>>,
        may_refresh: bool,
    ) -> Result<(VerifiedToken, usize, Arc<Key>, Arc<KeySet>), Step> {
        let jws = parse_jws(token, self.max_token_len, self.max_header_len)?;
        // Step 4: the payload.
        let payload = URL_SAFE_NO_PAD
            .decode(jws.payload)
            .map_err(|_| VerifyError::Malformed("payload is not base64url"))?;
        let claims = parse_object(&payload, "payload is not a JSON object")?;
        // Step 5: `iss` picks the issuer; nothing else is looked up for an unknown one.
        let iss = match claims.get("iss") {
            Some(Value::String(s)) => s,
            Some(_) => return Err(VerifyError::InvalidClaim("iss").into()),
            None => return Err(VerifyError::MissingClaim("iss").into()),
        };
        let Some((index, rules)) = self.issuers.iter().enumerate().find(|(_, r)| r.issuer == *iss) else {
            return Err(VerifyError::UnknownIssuer.into());
        };
        // Step 6: the header fits this issuer.
        let typ_strict = Self::check_header(rules, &jws)?;
        // Steps 7–8: key and signature, before any claim is judged, so that an unsigned caller
        // learns nothing about the accepted audience, lifetime or leeway.
        let set = match keys.map(Ok).unwrap_or_else(|| rules.keys.current()) {
            Ok(set) => set,
            Err(_) if may_refresh => {
                return Err(Step::NeedsKeys {
                    issuer: index,
                    kid: jws.kid().map(truncate),
                    failed: None,
                });
            }
            Err(e) => return Err(VerifyError::KeysUnavailable(e).into()),
        };
        let key = match jws.check_signature(&set) {
            Ok(key) => key,
            Err(VerifyError::KeyNotFound { kid }) if may_refresh => {
                return Err(Step::NeedsKeys {
                    issuer: index,
                    kid,
                    failed: None,
                });
            }
            // The provider may have put new material (or a key of another type) under a known
            // kid: ask once.
            // (HMAC secrets are configured, never fetched.)
            Err(e @ (VerifyError::BadSignature | VerifyError::KeyAlgorithmMismatch))
                if may_refresh && jws.kid().is_some() && !KeyKind::Hmac.supports(jws.alg) =>
            {
                let failed = match e {
                    VerifyError::BadSignature => set.find_shared(jws.kid(), jws.alg).ok().cloned(),
                    _ => jws.kid().and_then(|k| set.by_kid(k)).cloned(),
                };
                return Err(Step::NeedsKeys {
                    issuer: index,
                    kid: jws.kid().map(str::to_string),
                    failed,
                });
            }
            Err(e) => return Err(e.into()),
        };
        // Step 9: claims.
        let context = claims::validate(&claims, rules, now, self.leeway, typ_strict)?;
        let binding = claims::binding(&claims)?;
        let token = VerifiedToken {
            context,
            binding,
            issuer: index,
            alg: jws.alg,
            kid: jws.kid().map(str::to_string),
            claims: Arc::new(claims),
        };
        Ok((token, index, key, set))
    }

    /// `alg` allow-list and `typ`. Returns whether `typ` was RFC 9068's own `at+jwt` (rather
    /// than a relaxed one the issuer also accepts).
    fn check_header(rules: &IssuerRules, jws: &Jws<'_>) -> Result<bool, VerifyError> {
        if !rules.algorithms.contains(&jws.alg) {
            return Err(VerifyError::AlgorithmNotAllowed(format!("{:?}", jws.alg)));
        }
        let typ = jws.header.typ.as_deref();
        match &rules.profile {
            // RFC 9068 §4: at+jwt or application/at+jwt, compared case-insensitively.
            TokenProfile::AccessToken => match typ {
                Some(t) if t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt") => Ok(true),
                Some(t) if rules.extra_typs.iter().any(|x| x.eq_ignore_ascii_case(t)) => Ok(false),
                None if rules.typ_optional => Ok(false),
                _ => Err(VerifyError::WrongType {
                    expected: wrong_type::ACCESS_TYP,
                }),
            },
            // ID tokens carry no typ or `JWT`; never the access-token type.
            TokenProfile::IdToken { .. } => {
                if typ.is_none_or(|t| t.eq_ignore_ascii_case("jwt") || t.eq_ignore_ascii_case("application/jwt")) {
                    Ok(false)
                } else {
                    Err(VerifyError::WrongType {
                        expected: wrong_type::ID_TYP,
                    })
                }
            }
        }
    }

    /// The `alg` of a token's header (already parsed once; cheap).
    pub(crate) fn header_alg(&self, token: &str) -> Option<Algorithm> {
        parse_jws(token, self.max_token_len, self.max_header_len)
            .ok()
            .map(|j| j.alg)
    }

    pub(crate) fn issuer(&self, index: usize) -> Option<&IssuerRules> {
        self.issuers.get(index)
    }
}
