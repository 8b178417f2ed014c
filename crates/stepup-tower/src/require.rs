//! What a route asks of a verified token: acr, amr, `max_age`, scope, any claim.
//!
//! A [`Requirement`] is all-of: every condition added must hold. Evaluation order is scope
//! first (stepping up cannot grant a scope, so 403 `insufficient_scope` wins), then the
//! authentication conditions, which all answer with the RFC 9470 challenge naming *everything*
//! the route needs (`acr_values` and `max_age`), so one re-authentication satisfies it.
//!
//! ```
//! use stepup_tower::{Requirement, AcrLadder};
//!
//! const MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
//! let transfer = Requirement::new().acr([MFA]).max_age(300);
//! let ladder = AcrLadder::new().level(["loa1"]).level(["loa2", MFA]).level(["loa3"]);
//! # let _ = (transfer, ladder);
//! ```

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::verify::VerifiedToken;

/// An ordered scale of acr values, configured once: a token at a higher level satisfies a
/// requirement for a lower one. Neither OIDC nor RFC 9470 orders acr values; this is
/// deployment configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct AcrLadder {
    levels: Vec<Vec<String>>,
}

impl AcrLadder {
    /// An empty ladder (acr values match only exactly).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next, higher level, holding one or more equivalent acr values.
    pub fn level<I, S>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.levels.push(values.into_iter().map(Into::into).collect());
        self
    }

    /// The level of an acr value (0-based), if it is on the ladder.
    pub fn level_of(&self, acr: &str) -> Option<usize> {
        self.levels.iter().position(|l| l.iter().any(|v| v == acr))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &String> {
        self.levels.iter().flatten()
    }
}

/// A predicate over the claims, for deployments that mark strength in a custom claim.
type ClaimPredicate = Arc<dyn Fn(Option<&Value>) -> bool + Send + Sync>;

#[derive(Clone)]
struct ClaimCheck {
    name: String,
    predicate: ClaimPredicate,
}

/// Conditions a verified token must meet on a route. All of them must hold.
#[derive(Clone, Default)]
#[must_use]
pub struct Requirement {
    /// Each group is any-of; every group must hold (so `and` only ever narrows).
    acr: Vec<Vec<String>>,
    amr_any: Vec<Vec<String>>,
    max_age: Option<u64>,
    scopes: Vec<String>,
    claims: Vec<ClaimCheck>,
    hint_acr: Vec<String>,
}

impl fmt::Debug for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Requirement")
            .field("acr", &self.acr)
            .field("amr_any", &self.amr_any)
            .field("max_age", &self.max_age)
            .field("scopes", &self.scopes)
            .field("claims", &self.claims.iter().map(|c| &c.name).collect::<Vec<_>>())
            .finish()
    }
}

/// Why a verified token does not meet a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unmet {
    /// Scopes missing (403 `insufficient_scope`).
    Scope {
        /// The scopes the route needs.
        required: Vec<String>,
    },
    /// `acr` missing or not accepted.
    Acr {
        /// The token's acr.
        got: Option<String>,
    },
    /// `amr` contains none of the accepted methods.
    Amr,
    /// `auth_time` missing.
    AuthTimeMissing,
    /// The authentication is older than `max_age`.
    TooOld {
        /// Seconds since `auth_time`.
        age: i64,
        /// The route's `max_age`.
        max_age: u64,
    },
    /// A claim predicate returned false.
    Claim {
        /// The claim's name.
        name: String,
    },
}

impl Unmet {
    /// Short fixed text for `error_description`.
    pub fn description(&self) -> &'static str {
        match self {
            Self::Scope { .. } => "insufficient scope",
            Self::Acr { .. } => "a stronger authentication is required",
            Self::Amr => "a different authentication method is required",
            Self::AuthTimeMissing => "auth_time missing: the token does not say when the user authenticated",
            Self::TooOld { .. } => "a more recent authentication is required (auth_time older than max_age)",
            Self::Claim { .. } => "a stronger authentication is required",
        }
    }
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scope { required } => write!(f, "scopes {required:?} required"),
            Self::Acr { got } => write!(f, "acr {got:?} not accepted"),
            Self::Amr => f.write_str("amr has none of the accepted methods"),
            Self::AuthTimeMissing => f.write_str("auth_time missing"),
            Self::TooOld { age, max_age } => write!(f, "authentication {age} s old exceeds max_age {max_age}"),
            Self::Claim { name } => write!(f, "claim `{name}` does not satisfy the requirement"),
        }
    }
}

/// What a failed requirement asks of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Demand {
    pub(crate) unmet: Unmet,
    pub(crate) acr_values: Vec<String>,
    pub(crate) max_age: Option<u64>,
}

impl Requirement {
    /// A requirement that any verified token meets.
    pub fn new() -> Self {
        Self::default()
    }

    /// `acr` must be one of `values` (in order of preference; this order becomes the
    /// challenge's `acr_values`), or above one of them on the [`AcrLadder`]. Calling it again
    /// (or [`Requirement::and`]) adds another condition that must hold too.
    pub fn acr<I, S>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.acr.push(values.into_iter().map(Into::into).collect());
        self
    }

    /// `amr` must contain at least one of `methods` (RFC 8176 values such as `mfa`, `otp`).
    /// Calling it again adds another condition that must hold too.
    pub fn amr_any<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.amr_any.push(methods.into_iter().map(Into::into).collect());
        self
    }

    /// The last active authentication (`auth_time`) must be at most `seconds` old (plus the
    /// leeway). A token without `auth_time` does not meet it.
    pub fn max_age(mut self, seconds: u64) -> Self {
        self.max_age = Some(self.max_age.map_or(seconds, |m| m.min(seconds)));
        self
    }

    /// The token's scopes must include all of `scopes` (otherwise 403 `insufficient_scope`).
    pub fn scope<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// `predicate` must hold for claim `name` (it receives `None` when the claim is absent).
    ///
    /// ```
    /// use stepup_tower::Requirement;
    /// let mfa = Requirement::new().claim("authentication_level", |v| v.and_then(|v| v.as_str()) == Some("mfa"));
    /// # let _ = mfa;
    /// ```
    pub fn claim(
        mut self,
        name: impl Into<String>,
        predicate: impl Fn(Option<&Value>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.claims.push(ClaimCheck {
            name: name.into(),
            predicate: Arc::new(predicate),
        });
        self
    }

    /// `acr_values` to put in the challenge when the route has no acr condition of its own but
    /// an amr or claim condition fails (e.g. the multi-factor acr for an `amr: mfa` rule).
    pub fn hint_acr_values<I, S>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hint_acr.extend(values.into_iter().map(Into::into));
        self
    }

    /// All conditions of `self` and of `other`.
    pub fn and(mut self, other: Requirement) -> Self {
        self.acr.extend(other.acr);
        self.amr_any.extend(other.amr_any);
        if let Some(m) = other.max_age {
            self = self.max_age(m);
        }
        self.scopes.extend(other.scopes);
        self.claims.extend(other.claims);
        self.hint_acr.extend(other.hint_acr);
        self
    }

    /// Checks the values a challenge would carry; called by the builder.
    pub(crate) fn validate(&self) -> Result<(), String> {
        for v in self.acr.iter().flatten().chain(&self.hint_acr) {
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_graphic()) {
                return Err(format!(
                    "acr value {v:?} cannot be sent in acr_values (visible ASCII, no spaces)"
                ));
            }
        }
        for s in &self.scopes {
            if s.is_empty() || !s.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\') {
                return Err(format!("scope {s:?} is not an RFC 6749 scope token"));
            }
        }
        Ok(())
    }

    /// The first acr group the token's acr does not satisfy.
    fn unmet_acr_group(&self, acr: Option<&str>, ladder: Option<&AcrLadder>) -> Option<&Vec<String>> {
        self.acr.iter().find(|group| !Self::acr_group_ok(group, acr, ladder))
    }

    fn acr_group_ok(group: &[String], acr: Option<&str>, ladder: Option<&AcrLadder>) -> bool {
        let Some(acr) = acr else { return false };
        if group.iter().any(|a| a == acr) {
            return true;
        }
        let Some(ladder) = ladder else { return false };
        let Some(have) = ladder.level_of(acr) else { return false };
        group.iter().filter_map(|a| ladder.level_of(a)).any(|need| have >= need)
    }

    /// Evaluates the requirement against a verified token at time `now`.
    pub(crate) fn check(
        &self,
        token: &VerifiedToken,
        ladder: Option<&AcrLadder>,
        now: i64,
        leeway: i64,
    ) -> Result<(), Demand> {
        let ctx = token.context();
        let missing: Vec<String> = self.scopes.iter().filter(|s| !ctx.has_scope(s)).cloned().collect();
        if !missing.is_empty() {
            return Err(Demand {
                unmet: Unmet::Scope {
                    required: self.scopes.clone(),
                },
                acr_values: Vec::new(),
                max_age: None,
            });
        }
        let unmet_group = self.unmet_acr_group(ctx.acr.as_deref(), ladder);
        let unmet = if unmet_group.is_some() {
            Some(Unmet::Acr { got: ctx.acr.clone() })
        } else if self.amr_any.iter().any(|group| !group.iter().any(|m| ctx.has_amr(m))) {
            Some(Unmet::Amr)
        } else if let Some(name) = self
            .claims
            .iter()
            .find(|c| !(c.predicate)(token.claim(&c.name)))
            .map(|c| c.name.clone())
        {
            Some(Unmet::Claim { name })
        } else if let Some(max_age) = self.max_age {
            match ctx.auth_time {
                None => Some(Unmet::AuthTimeMissing),
                Some(t) => {
                    let age = now.saturating_sub(t);
                    let limit = i64::try_from(max_age).unwrap_or(i64::MAX).saturating_add(leeway);
                    (age > limit).then_some(Unmet::TooOld { age, max_age })
                }
            }
        } else {
            None
        };
        match unmet {
            None => Ok(()),
            Some(unmet) => Err(Demand {
                unmet,
                // The acr values that would satisfy what failed: the unmet group, else the first
                // group (to keep the acr through a re-authentication), else the hint.
                acr_values: unmet_group
                    .or(self.acr.first())
                    .cloned()
                    .unwrap_or_else(|| self.hint_acr.clone()),
                max_age: self.max_age,
            }),
        }
    }
}
