//! Per-issuer verification rules.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::Algorithm;

use crate::error::ConfigError;
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
#[must_use]
pub struct Issuer {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) profile: TokenProfile,
    pub(crate) algorithms: Option<Vec<Algorithm>>,
    pub(crate) keys: Option<Arc<dyn KeySource>>,
    pub(crate) required_claims: Vec<String>,
    pub(crate) extra_typs: Vec<String>,
    pub(crate) typ_optional: bool,
    pub(crate) client_claim: Option<String>,
    pub(crate) omitted: Vec<String>,
    pub(crate) dpop: crate::dpop::DpopMode,
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
            client_claim: None,
            omitted: Vec::new(),
            dpop: crate::dpop::DpopMode::Off,
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
            client_claim: None,
            omitted: Vec::new(),
            dpop: crate::dpop::DpopMode::Off,
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

    /// Further claims a token must carry (their presence is checked, any value passes).
    ///
    /// An access token must always carry RFC 9068 §2.2's `iss`, `exp`, `aud`, `sub`,
    /// `client_id`, `iat` and `jti` (see [`Issuer::omits_claims`] for providers that leave
    /// some out); an ID token `iss`, `aud` and `exp`.
    pub fn require_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_claims.extend(names.into_iter().map(Into::into));
        self
    }

    /// Access-token profile only: RFC 9068 §2.2 claims this provider leaves out of its access
    /// tokens, from `sub`, `iat`, `jti` and `client_id` (`iss`, `exp` and `aud` are always
    /// required). A claim named here is still type-checked when a token carries it.
    ///
    /// Omitting `client_id` is refused by [`StepUpBuilder::build`](crate::StepUpBuilder::build)
    /// while the header `typ` is relaxed ([`Issuer::also_accept_typ`],
    /// [`Issuer::allow_missing_typ`]): the client claim is then what tells an access token from
    /// an ID token, so name the provider's own with [`Issuer::client_id_claim`] instead.
    ///
    /// ```
    /// use stepup_tower::{Issuer, keys::KeySet};
    /// # let keys = KeySet::new();
    /// // Microsoft Entra ID v2 access tokens: typ JWT, the client in `azp`, `uti` instead of `jti`.
    /// let entra = Issuer::access_tokens("https://login.microsoftonline.com/TENANT/v2.0")
    ///     .audience("api://bank")
    ///     .also_accept_typ("JWT")
    ///     .client_id_claim("azp")
    ///     .omits_claims(["jti"])
    ///     .static_keys(keys);
    /// ```
    pub fn omits_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.omitted.extend(names.into_iter().map(Into::into));
        self
    }

    /// Access-token profile only: the claim that names the OAuth client in this provider's
    /// access tokens, where it is not RFC 9068's `client_id` — `azp` for Microsoft Entra ID v2
    /// and Keycloak, `cid` for Okta. It is required in its place (and read into
    /// [`AuthContext::client_id`](crate::AuthContext::client_id)).
    pub fn client_id_claim(mut self, name: impl Into<String>) -> Self {
        self.client_claim = Some(name.into());
        self
    }

    /// Access-token profile only: also accept this header `typ` (compared case-insensitively),
    /// for providers that cannot send RFC 9068's `at+jwt` (e.g. `JWT` from Keycloak, Microsoft
    /// Entra ID or LemonLDAP::NG).
    ///
    /// An ID token of the same provider may then carry the same `typ`, key and even `aud`, so
    /// the separation never rests on those: an access token must carry its client claim
    /// (`client_id`, or the one named by [`Issuer::client_id_claim`]) and no ID-token claim
    /// (`nonce`, `at_hash`, `c_hash`, `s_hash`, Keycloak's `"typ": "ID"`); otherwise it is
    /// refused as [`VerifyError::WrongType`](crate::VerifyError::WrongType).
    pub fn also_accept_typ(mut self, typ: impl Into<String>) -> Self {
        self.extra_typs.push(typ.into());
        self
    }

    /// Access-token profile only: accept tokens without a header `typ` (e.g. Okta), with the
    /// same separation from ID tokens as [`Issuer::also_accept_typ`].
    pub fn allow_missing_typ(mut self) -> Self {
        self.typ_optional = true;
        self
    }

    /// Whether this issuer's tokens may, or must, be sender-constrained with DPoP (RFC 9449).
    /// Default [`DpopMode::Off`](crate::dpop::DpopMode::Off): a token with `cnf` is refused.
    /// The proof rules (algorithms, window, public URL, replay store, nonces) are set once for
    /// the layer with [`StepUpBuilder::dpop`](crate::StepUpBuilder::dpop).
    pub fn dpop(mut self, mode: crate::dpop::DpopMode) -> Self {
        self.dpop = mode;
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
    /// The claim naming the client in an access token (default `client_id`).
    pub(crate) client_claim: String,
    /// RFC 9068 §2.2 claims that must be present in an access token.
    pub(crate) rfc9068_required: Vec<&'static str>,
    /// DPoP off, allowed or required.
    pub(crate) dpop: crate::dpop::DpopMode,
}

/// Claims that never name the OAuth client, so cannot stand in for `client_id`.
const NOT_A_CLIENT: [&str; 14] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "nonce",
    "at_hash",
    "c_hash",
    "s_hash",
    "auth_time",
    "acr",
    "amr",
];

/// RFC 9068 §2.2 claims an operator may declare absent from a provider's access tokens.
const OMITTABLE: [&str; 4] = ["sub", "iat", "jti", "client_id"];

/// Validates an issuer configuration for the builder.
pub(crate) fn validate(issuer: Issuer) -> Result<IssuerRules, ConfigError> {
    let name = || issuer.issuer.clone();
    if issuer.issuer.is_empty() {
        return Err(ConfigError::EmptyIssuer);
    }
    if issuer.audiences.is_empty() || issuer.audiences.iter().any(String::is_empty) {
        return Err(ConfigError::NoAudience(name()));
    }
    if let TokenProfile::IdToken { client_id } = &issuer.profile
        && client_id.is_empty()
    {
        return Err(ConfigError::EmptyClientId(name()));
    }
    let Some(keys) = issuer.keys.clone() else {
        return Err(ConfigError::NoKeySource(name()));
    };
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
        return Err(ConfigError::NoAlgorithm(name()));
    }
    let access = issuer.profile == TokenProfile::AccessToken;
    let relaxed = !issuer.extra_typs.is_empty() || issuer.typ_optional;
    if !access {
        let setting = if !issuer.extra_typs.is_empty() {
            Some("also_accept_typ")
        } else if issuer.typ_optional {
            Some("allow_missing_typ")
        } else if issuer.client_claim.is_some() {
            Some("client_id_claim")
        } else if !issuer.omitted.is_empty() {
            Some("omits_claims")
        } else {
            None
        };
        if let Some(setting) = setting {
            return Err(ConfigError::AccessTokensOnly {
                issuer: name(),
                setting,
            });
        }
    }
    if let Some(bad) = issuer.omitted.iter().find(|c| !OMITTABLE.contains(&c.as_str())) {
        return Err(ConfigError::NotOmittable {
            issuer: name(),
            claim: bad.clone(),
        });
    }
    if issuer.client_claim.as_deref().is_some_and(str::is_empty) {
        return Err(ConfigError::EmptyClientClaim(name()));
    }
    if let Some(claim) = issuer.client_claim.as_deref().filter(|c| NOT_A_CLIENT.contains(c)) {
        return Err(ConfigError::UnfitClientClaim {
            issuer: name(),
            claim: claim.to_string(),
        });
    }
    let omits = |c: &str| issuer.omitted.iter().any(|o| o == c);
    if relaxed && omits("client_id") {
        return Err(ConfigError::IndistinctTokenTypes(name()));
    }
    let client_claim = issuer.client_claim.unwrap_or_else(|| "client_id".into());
    let rfc9068_required = if access {
        OMITTABLE
            .into_iter()
            // `client_id` stands for the configured client claim.
            .filter(|c| !omits(c))
            .collect()
    } else {
        Vec::new()
    };
    Ok(IssuerRules {
        issuer: issuer.issuer,
        audiences: issuer.audiences,
        profile: issuer.profile,
        algorithms,
        keys,
        required_claims: issuer.required_claims,
        extra_typs: issuer.extra_typs,
        typ_optional: issuer.typ_optional,
        client_claim,
        rfc9068_required,
        dpop: issuer.dpop,
    })
}
