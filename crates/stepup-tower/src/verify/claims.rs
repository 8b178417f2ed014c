//! Claim validation (RFC 7519 §4.1, RFC 9068 §4, OIDC Core §3.1.3.7) and the typed
//! authentication context handlers read.

use serde_json::{Map, Value};

use super::issuer::{IssuerRules, TokenProfile};
use super::{VerifyError, wrong_type};

/// What a verified token says about the authentication behind it.
///
/// Every field was type-checked during verification: a token whose `acr` is not a string, whose
/// `amr` is not an array of strings or whose `auth_time` is not a number never gets this far.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthContext {
    /// `iss`, equal to a configured issuer.
    pub iss: String,
    /// `sub`, the subject.
    pub sub: Option<String>,
    /// `aud`, always as a list.
    pub aud: Vec<String>,
    /// `acr`, the authentication context class reference.
    pub acr: Option<String>,
    /// `amr`, the authentication methods references (RFC 8176).
    pub amr: Vec<String>,
    /// `auth_time`, seconds since the epoch of the last active authentication.
    pub auth_time: Option<i64>,
    /// Scopes, from `scope` (space-separated string) or `scp` (array or string).
    pub scopes: Vec<String>,
    /// `client_id` (RFC 9068) or, for ID tokens, `azp`.
    pub client_id: Option<String>,
    /// `exp`.
    pub exp: i64,
    /// `iat`, when present.
    pub iat: Option<i64>,
}

impl AuthContext {
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether `amr` contains `method`.
    pub fn has_amr(&self, method: &str) -> bool {
        self.amr.iter().any(|m| m == method)
    }
}

/// RFC 7519 §2 NumericDate: a JSON number of seconds, possibly non-integer. Strings, booleans
/// and the like are refused; out-of-range values saturate.
pub(crate) fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, VerifyError> {
    numeric_date_rounded(claims, name, false)
}

/// As [`numeric_date`]; `up` rounds a fractional value up (for `nbf`/`iat`, so rounding never
/// makes a not-yet-valid token valid), otherwise down (for `exp`).
fn numeric_date_rounded(claims: &Map<String, Value>, name: &'static str, up: bool) -> Result<Option<i64>, VerifyError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if n.as_u64().is_some() {
                Ok(Some(i64::MAX))
            } else {
                match n.as_f64() {
                    // `as` saturates for floats.
                    Some(f) if f.is_finite() => Ok(Some(if up { f.ceil() } else { f.floor() } as i64)),
                    _ => Err(VerifyError::InvalidClaim(name)),
                }
            }
        }
        Some(_) => Err(VerifyError::InvalidClaim(name)),
    }
}

fn opt_string(claims: &Map<String, Value>, name: &'static str) -> Result<Option<String>, VerifyError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(VerifyError::InvalidClaim(name)),
    }
}

fn string_list(v: &Value, name: &'static str) -> Result<Vec<String>, VerifyError> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or(VerifyError::InvalidClaim(name)))
            .collect(),
        _ => Err(VerifyError::InvalidClaim(name)),
    }
}

/// Claims only ever found in an ID token (OIDC Core §2, §3.3.2.11) or a logout token (OIDC
/// Back-Channel Logout 1.0 §2.4), never in an access token.
const ID_TOKEN_ONLY: [&str; 5] = ["nonce", "at_hash", "c_hash", "s_hash", "events"];

/// The access-token profile's type rules, judged before any other claim so that an ID token
/// is always refused as [`VerifyError::WrongType`], whatever its `aud` or lifetime.
///
/// `typ_strict`: the header `typ` was RFC 9068's `at+jwt`. When it was not (a relaxed `typ`),
/// the client claim is what proves an access token, so its absence is a wrong type too.
fn access_token_type(claims: &Map<String, Value>, rules: &IssuerRules, typ_strict: bool) -> Result<(), VerifyError> {
    let id_token = VerifyError::WrongType {
        expected: wrong_type::ID_CLAIMS,
    };
    if ID_TOKEN_ONLY.iter().any(|c| claims.contains_key(*c)) {
        return Err(id_token);
    }
    // Keycloak marks its ID tokens with a payload claim `"typ": "ID"` (its access tokens say
    // "Bearer").
    if matches!(claims.get("typ"), Some(Value::String(t)) if t.eq_ignore_ascii_case("id")) {
        return Err(id_token);
    }
    // With a relaxed typ and `azp` as the client claim, an ID token (which may carry `azp`
    // too, OIDC Core §2) is the one that names its client as its audience.
    if !typ_strict
        && rules.client_claim == "azp"
        && let Some(Value::String(azp)) = claims.get("azp")
        && match claims.get("aud") {
            Some(Value::String(a)) => a == azp,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(azp.as_str())),
            _ => false,
        }
    {
        return Err(id_token);
    }
    if rules.rfc9068_required.contains(&"client_id") && !claims.contains_key(rules.client_claim.as_str()) {
        return Err(if typ_strict {
            VerifyError::MissingClaim("client_id")
        } else {
            VerifyError::WrongType {
                expected: wrong_type::NO_CLIENT,
            }
        });
    }
    Ok(())
}

/// Claims only access tokens carry (RFC 9068 §2.2, Okta's `cid`, RFC 8693 `scope`/`scp`), or
/// Keycloak's payload `"typ": "Bearer"`: an ID token has none of them.
fn id_token_type(claims: &Map<String, Value>) -> Result<(), VerifyError> {
    let access = ["client_id", "cid", "scope", "scp"]
        .iter()
        .any(|c| claims.contains_key(*c))
        || matches!(claims.get("typ"), Some(Value::String(t)) if !t.eq_ignore_ascii_case("id"));
    if access {
        return Err(VerifyError::WrongType {
            expected: wrong_type::ACCESS_CLAIMS,
        });
    }
    Ok(())
}

/// How a token is bound to its holder (`cnf`, RFC 7800).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Binding {
    /// No `cnf`: a bearer token.
    None,
    /// `cnf.jkt` (RFC 9449 §6.1): bound to the key with this RFC 7638 thumbprint.
    Jkt(String),
    /// A confirmation method we cannot check (e.g. mTLS `x5t#S256`, RFC 8705 §3): never
    /// accepted, since the proof of possession cannot be verified here.
    Other,
}

/// Reads `cnf`: an object; `jkt`, when present, a string.
pub(crate) fn binding(claims: &Map<String, Value>) -> Result<Binding, VerifyError> {
    match claims.get("cnf") {
        None => Ok(Binding::None),
        Some(Value::Object(cnf)) => match cnf.get("jkt") {
            Some(Value::String(jkt)) if !jkt.is_empty() => Ok(Binding::Jkt(jkt.clone())),
            Some(_) => Err(VerifyError::InvalidClaim("cnf")),
            None => Ok(Binding::Other),
        },
        Some(_) => Err(VerifyError::InvalidClaim("cnf")),
    }
}

/// Validates the claims against an issuer's rules and builds the context.
pub(crate) fn validate(
    claims: &Map<String, Value>,
    rules: &IssuerRules,
    now: i64,
    leeway: i64,
    typ_strict: bool,
) -> Result<AuthContext, VerifyError> {
    match rules.profile {
        TokenProfile::AccessToken => access_token_type(claims, rules, typ_strict)?,
        TokenProfile::IdToken { .. } => id_token_type(claims)?,
    }
    let iss = opt_string(claims, "iss")?.ok_or(VerifyError::MissingClaim("iss"))?;
    // RFC 7519 §4.1.4: exp is required here; the token must not be used at or after it.
    let exp = numeric_date(claims, "exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
    if now >= exp.saturating_add(leeway) {
        return Err(VerifyError::Expired { exp, now });
    }
    if let Some(nbf) = numeric_date_rounded(claims, "nbf", true)?
        && nbf > now.saturating_add(leeway)
    {
        return Err(VerifyError::NotYetValid { nbf, now });
    }
    let iat = numeric_date_rounded(claims, "iat", true)?;
    if let Some(iat) = iat
        && iat > now.saturating_add(leeway)
    {
        return Err(VerifyError::IssuedInFuture { iat, now });
    }
    // RFC 7519 §4.1.3: a string or an array of strings; we need one of ours in it.
    let aud = match claims.get("aud") {
        None => return Err(VerifyError::MissingClaim("aud")),
        Some(Value::String(s)) => vec![s.clone()],
        Some(v @ Value::Array(_)) => string_list(v, "aud")?,
        Some(_) => return Err(VerifyError::InvalidClaim("aud")),
    };
    if !aud.iter().any(|a| rules.audiences.iter().any(|ours| ours == a)) {
        return Err(VerifyError::WrongAudience);
    }
    let azp = opt_string(claims, "azp")?;
    let mut client_id = opt_string(claims, "client_id")?;
    if rules.profile == TokenProfile::AccessToken {
        client_id = match claims.get(rules.client_claim.as_str()) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(VerifyError::InvalidClaim("client_id")),
        };
        // RFC 9068 §2.2: every required claim not declared omitted (the client claim was
        // checked above).
        if let Some(missing) = rules
            .rfc9068_required
            .iter()
            .find(|c| **c != "client_id" && !claims.contains_key(**c))
        {
            return Err(VerifyError::MissingClaim(missing));
        }
        if claims.get("jti").is_some_and(|j| !j.is_string()) {
            return Err(VerifyError::InvalidClaim("jti"));
        }
    }
    if let TokenProfile::IdToken { client_id: ours } = &rules.profile {
        // OIDC Core §3.1.3.7 (3): aud contains our client id; audiences we do not trust are
        // refused.
        if !aud.iter().any(|a| a == ours) || !aud.iter().all(|a| rules.audiences.iter().any(|t| t == a)) {
            return Err(VerifyError::WrongAudience);
        }
        // (4)/(5): several audiences need azp; when present, azp is our client id.
        match &azp {
            Some(azp) if azp != ours => return Err(VerifyError::WrongAuthorizedParty),
            None if aud.len() > 1 => return Err(VerifyError::MissingClaim("azp")),
            _ => {}
        }
        // A logout token (OIDC Back-Channel Logout 1.0 §2.4) is not a bearer credential.
        if claims.contains_key("events") {
            return Err(VerifyError::WrongType {
                expected: wrong_type::LOGOUT,
            });
        }
        client_id = client_id.or(azp);
    }
    if rules
        .required_claims
        .iter()
        .any(|name| !claims.contains_key(name.as_str()))
    {
        return Err(VerifyError::MissingClaim("required claim"));
    }
    let sub = opt_string(claims, "sub")?;
    let acr = opt_string(claims, "acr")?;
    let amr = match claims.get("amr") {
        None => Vec::new(),
        Some(v) => string_list(v, "amr")?,
    };
    let auth_time = numeric_date(claims, "auth_time")?;
    if let Some(t) = auth_time
        && t > now.saturating_add(leeway)
    {
        return Err(VerifyError::AuthTimeInFuture { auth_time: t, now });
    }
    // RFC 8693 §4.2 / RFC 9068: a space-separated string; some providers send an array.
    let mut scopes = match claims.get("scope") {
        None => Vec::new(),
        Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        Some(v) => string_list(v, "scope")?,
    };
    match claims.get("scp") {
        None => {}
        Some(Value::String(s)) => scopes.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_string)),
        Some(v) => scopes.extend(string_list(v, "scp")?),
    }
    Ok(AuthContext {
        iss,
        sub,
        aud,
        acr,
        amr,
        auth_time,
        scopes,
        client_id,
        exp,
        iat,
    })
}
