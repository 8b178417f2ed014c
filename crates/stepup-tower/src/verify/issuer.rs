//! Per-issuer verification rules.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::Algorithm;

use crate::keys::{KeySet, KeySource, StaticKeys};

/// Which kind of JWT an issuer's tokens are validated as. The two are mutually exclusive
/// (RFC 9068 §4, RFC 8725 §3.11): an ID token never passes as an access token, nor the reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenProfile {
    /// RFC 9068 JWT access tokens: header `typ` is `at+jwt` or `application/at+jwt` (any case).
    AccessToken,
    /// OpenID Connect ID tokens used as bearer credentials: `aud` contains the client id, `azp`
    /// (when present) equals it, and `typ` (when present) is `JWT`, never `at+jwt`.
    IdToken {
        /// The OAuth client id the tokens were issued to.
        client_id: String,
    },
}

/// Algorithms accepted when none are configured: every asymmetric algorithm jsonwebtoken
/// verifies. Each is further bound to the key type, so a P-256 key only ever verifies ES256.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// One trusted token issuer: its exact `iss`, the audiences we accept, the token profile, the
/// algorithm allow-list and where its keys come from.
///
/// ```
/// use stepup_tower::{Issuer, keys::KeySet};
///
/// let keys = KeySet::from_jwks_json(br#"{"keys":[]}"#).unwrap();
/// let issuer = Issuer::access_tokens("https://id.example.com")
///     .audience("bank-api")
///     .static_keys(keys);
/// ```
#[derive(Clone)]
pub struct Issuer {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) profile: TokenProfile,
    pub(crate) algorithms: Option<Vec<Algorithm>>,
    pub(crate) keys: Option<Arc<dyn KeySource>>,
    pub(crate) required_claims: Vec<String>,
    pub(crate) extra_typs: Vec<String>,
    pub(crate) typ_optional: bool,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("profile", &self.profile)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer of RFC 9068 JWT access tokens. `issuer` is compared exactly with `iss`.
    pub fn access_tokens(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: Vec::new(),
            profile: TokenProfile::AccessToken,
            algorithms: None,
            keys: None,
            required_claims: Vec::new(),
            extra_typs: Vec::new(),
            typ_optional: false,
        }
    }

    /// An OpenID provider whose ID tokens, issued to `client_id`, are used as bearer
    /// credentials. The accepted audience is the client id.
    pub fn id_tokens(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        let client_id = client_id.into();
        Self {
            issuer: issuer.into(),
            audiences: vec![client_id.clone()],
            profile: TokenProfile::IdToken { client_id },
            algorithms: None,
            keys: None,
            required_claims: Vec::new(),
            extra_typs: Vec::new(),
            typ_optional: false,
        }
    }

    /// Adds an accepted audience: a token passes when its `aud` (string or array) contains any
    /// of the accepted ones.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// Replaces the algorithm allow-list (default: [`DEFAULT_ALGORITHMS`], plus HS256 when the
    /// keys hold an HMAC secret).
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// Claims a token must carry besides `iss`, `aud` and `exp` (always required). For strict
    /// RFC 9068 §2.2: `["sub", "client_id", "iat", "jti"]`.
    pub fn require_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_claims.extend(names.into_iter().map(Into::into));
        self
    }

    /// Access-token profile only: also accept this header `typ` (compared case-insensitively),
    /// for providers that cannot send RFC 9068's `at+jwt` (e.g. `JWT` from Microsoft Entra ID).
    /// This weakens the separation from ID tokens, which then rests on `aud`: make sure the
    /// accepted audience is never an OAuth client id of the same provider.
    pub fn also_accept_typ(mut self, typ: impl Into<String>) -> Self {
        self.extra_typs.push(typ.into());
        self
    }

    /// Access-token profile only: accept tokens without a header `typ` (same caveat as
    /// [`Issuer::also_accept_typ`]).
    pub fn allow_missing_typ(mut self) -> Self {
        self.typ_optional = true;
        self
    }

    /// Verifies with a fixed key set.
    pub fn static_keys(self, set: KeySet) -> Self {
        self.key_source(StaticKeys::new(set))
    }

    /// Verifies with keys from any [`KeySource`] (e.g. a remote JWKS cache).
    pub fn key_source(mut self, source: impl KeySource) -> Self {
        self.keys = Some(Arc::new(source));
        self
    }

    /// Verifies with a shared key source.
    pub fn shared_key_source(mut self, source: Arc<dyn KeySource>) -> Self {
        self.keys = Some(source);
        self
    }

    /// The configured `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token profile.
    pub fn profile(&self) -> &TokenProfile {
        &self.profile
    }
}

/// An issuer after validation by the builder.
pub(crate) struct IssuerRules {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) profile: TokenProfile,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) keys: Arc<dyn KeySource>,
    pub(crate) required_claims: Vec<String>,
    pub(crate) extra_typs: Vec<String>,
    pub(crate) typ_optional: bool,
}

/// Why an issuer configuration was refused by the builder.
pub(crate) fn validate(issuer: Issuer) -> Result<IssuerRules, String> {
    if issuer.issuer.is_empty() {
        return Err("an issuer needs a non-empty `iss`".into());
    }
    if issuer.audiences.is_empty() || issuer.audiences.iter().any(String::is_empty) {
        return Err(format!(
            "issuer {:?} needs at least one non-empty audience",
            issuer.issuer
        ));
    }
    if let TokenProfile::IdToken { client_id } = &issuer.profile
        && client_id.is_empty()
    {
        return Err(format!("issuer {:?} needs a non-empty client id", issuer.issuer));
    }
    let keys = issuer
        .keys
        .ok_or_else(|| format!("issuer {:?} has no key source", issuer.issuer))?;
    let has_hmac = keys
        .current()
        .map(|set| set.find(None, Algorithm::HS256).is_ok())
        .unwrap_or(false);
    let algorithms = match issuer.algorithms {
        Some(list) => list,
        None => {
            let mut list = DEFAULT_ALGORITHMS.to_vec();
            if has_hmac {
                list.push(Algorithm::HS256);
            }
            list
        }
    };
    if algorithms.is_empty() {
        return Err(format!("issuer {:?} allows no algorithm", issuer.issuer));
    }
    Ok(IssuerRules {
        issuer: issuer.issuer,
        audiences: issuer.audiences,
        profile: issuer.profile,
        algorithms,
        keys,
        required_claims: issuer.required_claims,
        extra_typs: issuer.extra_typs,
        typ_optional: issuer.typ_optional,
    })
}
