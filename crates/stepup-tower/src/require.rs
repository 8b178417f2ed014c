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
        // An empty group can never be met, and a challenge could not say what would meet it.
        if self.acr.iter().chain(&self.amr_any).any(Vec::is_empty) {
            return Err("an empty acr or amr_any group can never be met".into());
        }
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

#[cfg(test)]
mod tests {
    //! Table-driven: each row is the claims of a token, a requirement, and what
    //! [`Requirement::check`] answers: `Ok`, or the [`Unmet`] with the `acr_values` and `max_age`
    //! the RFC 9470 challenge would carry.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::{Map, json};

    use super::*;
    use crate::keys::KeySet;
    use crate::verify::claims::validate as validate_claims;
    use crate::verify::{Issuer, VerifyError, issuer};

    const ISS: &str = "https://id.example.test";
    const AUD: &str = "bank-api";
    const MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
    const NOW: i64 = 1_700_000_000;
    const LEEWAY: i64 = 60;

    /// An RFC 9068 access token's claims plus `extra`, through the claim validation of
    /// `verify/claims.rs`, so that the context is the one the layer would build.
    fn try_token(extra: Value) -> Result<VerifiedToken, VerifyError> {
        let mut claims = json!({
            "iss": ISS, "aud": AUD, "sub": "alice", "client_id": "spa",
            "iat": NOW - 5, "exp": NOW + 600, "jti": "j1",
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let claims: Map<String, Value> = claims.as_object().unwrap().clone();
        let rules = issuer::validate(Issuer::access_tokens(ISS).audience(AUD).static_keys(KeySet::new())).unwrap();
        let context = validate_claims(&claims, &rules, NOW, LEEWAY, true)?;
        Ok(VerifiedToken::for_tests(context, claims))
    }

    fn token(extra: &Value) -> VerifiedToken {
        try_token(extra.clone()).expect("the test claims verify")
    }

    fn refused(unmet: Unmet, acr_values: &[&str], max_age: Option<u64>) -> Answer {
        Err(Demand {
            unmet,
            acr_values: acr_values.iter().map(|v| v.to_string()).collect(),
            max_age,
        })
    }

    fn acr(got: Option<&str>) -> Unmet {
        Unmet::Acr {
            got: got.map(str::to_string),
        }
    }

    fn scope(required: &[&str]) -> Unmet {
        Unmet::Scope {
            required: required.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn claim(name: &str) -> Unmet {
        Unmet::Claim { name: name.into() }
    }

    fn too_old(age: i64, max_age: u64) -> Unmet {
        Unmet::TooOld { age, max_age }
    }

    /// What `check` answers.
    type Answer = Result<(), Demand>;
    /// Name, token claims, requirement, expected answer.
    type Row = (&'static str, Value, Requirement, Answer);
    /// Name, token claims, ladder, requirement, expected answer.
    type LadderRow<'l> = (&'static str, Value, Option<&'l AcrLadder>, Requirement, Answer);
    /// Name, token claims, requirement, leeway, expected answer.
    type LeewayRow = (&'static str, Value, Requirement, i64, Answer);
    /// Name, token claims, left, right, expected answer of `left.and(right)`.
    type AndRow = (&'static str, Value, Requirement, Requirement, Answer);

    fn run(rows: &[Row], ladder: Option<&AcrLadder>) {
        for (name, claims, requirement, expected) in rows {
            let got = requirement.check(&token(claims), ladder, NOW, LEEWAY);
            assert_eq!(&got, expected, "{name}");
        }
    }

    fn is_mfa(v: Option<&Value>) -> bool {
        v.and_then(Value::as_str) == Some("mfa")
    }

    #[test]
    fn acr_in_preference_order() {
        let r = || Requirement::new().acr(["loa2", "loa3"]);
        let rows: Vec<Row> = vec![
            ("first value", json!({"acr": "loa2"}), r(), Ok(())),
            ("second value", json!({"acr": "loa3"}), r(), Ok(())),
            (
                "other value: the challenge names the values in the route's order",
                json!({"acr": "loa1"}),
                r(),
                refused(acr(Some("loa1")), &["loa2", "loa3"], None),
            ),
            (
                "the order is the route's, not sorted",
                json!({"acr": "loa1"}),
                Requirement::new().acr(["loa3", "loa2"]),
                refused(acr(Some("loa1")), &["loa3", "loa2"], None),
            ),
            (
                "no acr claim",
                json!({}),
                Requirement::new().acr([MFA]),
                refused(acr(None), &[MFA], None),
            ),
            (
                "compared exactly (letter case)",
                json!({"acr": "LOA2"}),
                r(),
                refused(acr(Some("LOA2")), &["loa2", "loa3"], None),
            ),
            (
                "no acr condition: any acr",
                json!({"acr": "loa1"}),
                Requirement::new(),
                Ok(()),
            ),
            ("no acr condition: no acr", json!({}), Requirement::new(), Ok(())),
            (
                "the challenge carries max_age as well",
                json!({"acr": "loa1", "auth_time": NOW}),
                Requirement::new().acr([MFA]).max_age(300),
                refused(acr(Some("loa1")), &[MFA], Some(300)),
            ),
            (
                "two acr conditions: the unmet one is named",
                json!({"acr": "loa2"}),
                Requirement::new().acr(["loa1", "loa2"]).acr(["loa3"]),
                refused(acr(Some("loa2")), &["loa3"], None),
            ),
            (
                "a hint never replaces the route's acr values",
                json!({"acr": "loa1"}),
                Requirement::new().acr([MFA]).hint_acr_values(["loa3"]),
                refused(acr(Some("loa1")), &[MFA], None),
            ),
        ];
        run(&rows, None);
    }

    #[test]
    fn acr_ladder() {
        let ladder = AcrLadder::new().level(["loa1"]).level(["loa2", MFA]).level(["loa3"]);
        assert_eq!(ladder.level_of("loa1"), Some(0));
        assert_eq!(ladder.level_of(MFA), Some(1));
        assert_eq!(ladder.level_of("loa3"), Some(2));
        assert_eq!(ladder.level_of("loa9"), None);
        let empty = AcrLadder::new();
        let rows: Vec<LadderRow<'_>> = vec![
            (
                "higher level passes",
                json!({"acr": "loa3"}),
                Some(&ladder),
                Requirement::new().acr(["loa2"]),
                Ok(()),
            ),
            (
                "higher level passes a group of lower ones",
                json!({"acr": "loa3"}),
                Some(&ladder),
                Requirement::new().acr(["loa1", "loa2"]),
                Ok(()),
            ),
            (
                "equal level, same value",
                json!({"acr": "loa2"}),
                Some(&ladder),
                Requirement::new().acr(["loa2"]),
                Ok(()),
            ),
            (
                "equal level, equivalent value",
                json!({"acr": MFA}),
                Some(&ladder),
                Requirement::new().acr(["loa2"]),
                Ok(()),
            ),
            (
                "equal level, equivalent value the other way",
                json!({"acr": "loa2"}),
                Some(&ladder),
                Requirement::new().acr([MFA]),
                Ok(()),
            ),
            (
                "lower level refused",
                json!({"acr": "loa1"}),
                Some(&ladder),
                Requirement::new().acr(["loa2"]),
                refused(acr(Some("loa1")), &["loa2"], None),
            ),
            (
                "lower than every value of the group",
                json!({"acr": "loa2"}),
                Some(&ladder),
                Requirement::new().acr(["loa3"]),
                refused(acr(Some("loa2")), &["loa3"], None),
            ),
            (
                "token acr not on the ladder",
                json!({"acr": "loa9"}),
                Some(&ladder),
                Requirement::new().acr(["loa1"]),
                refused(acr(Some("loa9")), &["loa1"], None),
            ),
            (
                "required value not on the ladder: exact match only",
                json!({"acr": "loa3"}),
                Some(&ladder),
                Requirement::new().acr(["custom"]),
                refused(acr(Some("loa3")), &["custom"], None),
            ),
            (
                "required value not on the ladder, matched exactly",
                json!({"acr": "custom"}),
                Some(&ladder),
                Requirement::new().acr(["custom"]),
                Ok(()),
            ),
            (
                "one value of the group on the ladder is enough",
                json!({"acr": "loa3"}),
                Some(&ladder),
                Requirement::new().acr(["custom", "loa2"]),
                Ok(()),
            ),
            (
                "no acr",
                json!({}),
                Some(&ladder),
                Requirement::new().acr(["loa1"]),
                refused(acr(None), &["loa1"], None),
            ),
            (
                "without a ladder a higher level is just another value",
                json!({"acr": "loa3"}),
                None,
                Requirement::new().acr(["loa2"]),
                refused(acr(Some("loa3")), &["loa2"], None),
            ),
            (
                "an empty ladder orders nothing",
                json!({"acr": "loa3"}),
                Some(&empty),
                Requirement::new().acr(["loa2"]),
                refused(acr(Some("loa3")), &["loa2"], None),
            ),
        ];
        for (name, claims, ladder, requirement, expected) in &rows {
            let got = requirement.check(&token(claims), *ladder, NOW, LEEWAY);
            assert_eq!(&got, expected, "{name}");
        }
    }

    #[test]
    fn amr_any_of() {
        let r = || Requirement::new().amr_any(["otp", "hwk"]);
        let rows: Vec<Row> = vec![
            ("one of the methods", json!({"amr": ["pwd", "otp"]}), r(), Ok(())),
            ("another of the methods", json!({"amr": ["hwk"]}), r(), Ok(())),
            (
                "none of the methods",
                json!({"amr": ["pwd"]}),
                r(),
                refused(Unmet::Amr, &[], None),
            ),
            ("no amr claim", json!({}), r(), refused(Unmet::Amr, &[], None)),
            ("empty amr", json!({"amr": []}), r(), refused(Unmet::Amr, &[], None)),
            (
                "compared exactly (letter case)",
                json!({"amr": ["OTP"]}),
                r(),
                refused(Unmet::Amr, &[], None),
            ),
            (
                "two conditions, both met",
                json!({"amr": ["pwd", "otp"]}),
                Requirement::new().amr_any(["pwd"]).amr_any(["otp", "hwk"]),
                Ok(()),
            ),
            (
                "two conditions, the second unmet",
                json!({"amr": ["pwd"]}),
                Requirement::new().amr_any(["pwd"]).amr_any(["otp", "hwk"]),
                refused(Unmet::Amr, &[], None),
            ),
            (
                "the challenge carries the hint",
                json!({"amr": ["pwd"]}),
                Requirement::new().amr_any(["mfa"]).hint_acr_values([MFA]),
                refused(Unmet::Amr, &[MFA], None),
            ),
            (
                "the challenge keeps the route's acr rather than the hint",
                json!({"acr": "loa1", "amr": ["pwd"]}),
                Requirement::new().acr(["loa1"]).amr_any(["mfa"]).hint_acr_values([MFA]),
                refused(Unmet::Amr, &["loa1"], None),
            ),
            (
                "the challenge carries max_age",
                json!({"amr": ["pwd"], "auth_time": NOW}),
                Requirement::new().amr_any(["mfa"]).max_age(300),
                refused(Unmet::Amr, &[], Some(300)),
            ),
        ];
        run(&rows, None);
    }

    #[test]
    fn max_age_edges() {
        let r = || Requirement::new().max_age(300);
        let rows: Vec<LeewayRow> = vec![
            ("just authenticated", json!({"auth_time": NOW}), r(), LEEWAY, Ok(())),
            (
                "exactly max_age old",
                json!({"auth_time": NOW - 300}),
                r(),
                LEEWAY,
                Ok(()),
            ),
            (
                "max_age plus leeway old",
                json!({"auth_time": NOW - 360}),
                r(),
                LEEWAY,
                Ok(()),
            ),
            (
                "one second past max_age plus leeway",
                json!({"auth_time": NOW - 361}),
                r(),
                LEEWAY,
                refused(too_old(361, 300), &[], Some(300)),
            ),
            (
                "no leeway: exactly max_age old",
                json!({"auth_time": NOW - 300}),
                r(),
                0,
                Ok(()),
            ),
            (
                "no leeway: one second past max_age",
                json!({"auth_time": NOW - 301}),
                r(),
                0,
                refused(too_old(301, 300), &[], Some(300)),
            ),
            (
                "auth_time missing",
                json!({}),
                r(),
                LEEWAY,
                refused(Unmet::AuthTimeMissing, &[], Some(300)),
            ),
            (
                "auth_time in the future, within the leeway (verification lets it through)",
                json!({"auth_time": NOW + LEEWAY}),
                r(),
                LEEWAY,
                Ok(()),
            ),
            (
                "fractional auth_time is rounded down (older)",
                json!({"auth_time": (NOW - 360) as f64 - 0.5}),
                r(),
                LEEWAY,
                refused(too_old(361, 300), &[], Some(300)),
            ),
            (
                "an auth_time far in the past saturates the age",
                json!({"auth_time": -1e300}),
                r(),
                LEEWAY,
                refused(too_old(i64::MAX, 300), &[], Some(300)),
            ),
            (
                "max_age 0: just authenticated",
                json!({"auth_time": NOW}),
                Requirement::new().max_age(0),
                LEEWAY,
                Ok(()),
            ),
            (
                "max_age 0: within the leeway",
                json!({"auth_time": NOW - LEEWAY}),
                Requirement::new().max_age(0),
                LEEWAY,
                Ok(()),
            ),
            (
                "max_age 0: one second past the leeway",
                json!({"auth_time": NOW - LEEWAY - 1}),
                Requirement::new().max_age(0),
                LEEWAY,
                refused(too_old(LEEWAY + 1, 0), &[], Some(0)),
            ),
            (
                "huge max_age does not overflow",
                json!({"auth_time": 0}),
                Requirement::new().max_age(u64::MAX),
                LEEWAY,
                Ok(()),
            ),
            (
                "max_age twice: the smaller wins",
                json!({"auth_time": NOW - 361}),
                Requirement::new().max_age(600).max_age(300),
                LEEWAY,
                refused(too_old(361, 300), &[], Some(300)),
            ),
            (
                "max_age twice: the smaller wins in either order",
                json!({"auth_time": NOW - 361}),
                Requirement::new().max_age(300).max_age(600),
                LEEWAY,
                refused(too_old(361, 300), &[], Some(300)),
            ),
            (
                "no max_age: auth_time not needed",
                json!({}),
                Requirement::new(),
                LEEWAY,
                Ok(()),
            ),
            (
                "no max_age: any age",
                json!({"auth_time": 0}),
                Requirement::new(),
                LEEWAY,
                Ok(()),
            ),
            (
                "too old: the challenge keeps the route's acr",
                json!({"acr": MFA, "auth_time": NOW - 361}),
                Requirement::new().acr([MFA]).max_age(300),
                LEEWAY,
                refused(too_old(361, 300), &[MFA], Some(300)),
            ),
            (
                "auth_time missing: the challenge keeps the route's acr",
                json!({"acr": MFA}),
                Requirement::new().acr([MFA]).max_age(300),
                LEEWAY,
                refused(Unmet::AuthTimeMissing, &[MFA], Some(300)),
            ),
            (
                "too old: the challenge carries the hint",
                json!({"auth_time": NOW - 361}),
                r().hint_acr_values([MFA]),
                LEEWAY,
                refused(too_old(361, 300), &[MFA], Some(300)),
            ),
        ];
        for (name, claims, requirement, leeway, expected) in &rows {
            let got = requirement.check(&token(claims), None, NOW, *leeway);
            assert_eq!(&got, expected, "{name}");
        }
        // Beyond the leeway, a future auth_time never reaches the requirement: verification
        // refuses the token (`verify/claims.rs`).
        assert_eq!(
            try_token(json!({"auth_time": NOW + LEEWAY + 1})).unwrap_err(),
            VerifyError::AuthTimeInFuture {
                auth_time: NOW + LEEWAY + 1,
                now: NOW
            }
        );
    }

    #[test]
    fn scope_all_of() {
        let r = || Requirement::new().scope(["accounts", "transfer"]);
        let rows: Vec<Row> = vec![
            ("all of them", json!({"scope": "openid accounts transfer"}), r(), Ok(())),
            (
                "one missing: the challenge names every scope the route needs",
                json!({"scope": "openid accounts"}),
                r(),
                refused(scope(&["accounts", "transfer"]), &[], None),
            ),
            (
                "no scope claim",
                json!({}),
                r(),
                refused(scope(&["accounts", "transfer"]), &[], None),
            ),
            (
                "empty scope",
                json!({"scope": ""}),
                r(),
                refused(scope(&["accounts", "transfer"]), &[], None),
            ),
            ("scp as an array", json!({"scp": ["accounts", "transfer"]}), r(), Ok(())),
            ("scp as a string", json!({"scp": "accounts transfer"}), r(), Ok(())),
            (
                "scope and scp together",
                json!({"scope": "accounts", "scp": ["transfer"]}),
                r(),
                Ok(()),
            ),
            (
                "repeated spaces",
                json!({"scope": "  accounts   transfer "}),
                r(),
                Ok(()),
            ),
            (
                "whole scope tokens only",
                json!({"scope": "accounts transfers"}),
                r(),
                refused(scope(&["accounts", "transfer"]), &[], None),
            ),
            (
                "compared exactly (letter case)",
                json!({"scope": "accounts Transfer"}),
                r(),
                refused(scope(&["accounts", "transfer"]), &[], None),
            ),
            (
                "scope called twice: all of both",
                json!({"scope": "a"}),
                Requirement::new().scope(["a"]).scope(["b"]),
                refused(scope(&["a", "b"]), &[], None),
            ),
            (
                "judged first: 403 without acr_values or max_age",
                json!({"acr": "loa1", "auth_time": NOW - 1000}),
                Requirement::new().scope(["transfer"]).acr([MFA]).max_age(300),
                refused(scope(&["transfer"]), &[], None),
            ),
            (
                "scope met, then the acr",
                json!({"acr": "loa1", "scope": "transfer", "auth_time": NOW}),
                Requirement::new().scope(["transfer"]).acr([MFA]).max_age(300),
                refused(acr(Some("loa1")), &[MFA], Some(300)),
            ),
            ("no scope condition", json!({}), Requirement::new(), Ok(())),
        ];
        run(&rows, None);
    }

    #[test]
    fn claim_predicates() {
        let level = || Requirement::new().claim("authentication_level", is_mfa);
        let rows: Vec<Row> = vec![
            (
                "predicate holds",
                json!({"authentication_level": "mfa"}),
                level(),
                Ok(()),
            ),
            (
                "predicate fails",
                json!({"authentication_level": "pwd"}),
                level(),
                refused(claim("authentication_level"), &[], None),
            ),
            (
                "absent claim: the predicate gets None",
                json!({}),
                level(),
                refused(claim("authentication_level"), &[], None),
            ),
            (
                "other JSON type",
                json!({"authentication_level": 3}),
                level(),
                refused(claim("authentication_level"), &[], None),
            ),
            (
                "a predicate may accept absence",
                json!({}),
                Requirement::new().claim("blocked", |v| v.is_none()),
                Ok(()),
            ),
            (
                "and refuse presence",
                json!({"blocked": true}),
                Requirement::new().claim("blocked", |v| v.is_none()),
                refused(claim("blocked"), &[], None),
            ),
            (
                "nested values",
                json!({"org": {"tier": "gold"}}),
                Requirement::new().claim("org", |v| v.and_then(|c| c.get("tier")).is_some()),
                Ok(()),
            ),
            (
                "standard claims too",
                json!({}),
                Requirement::new().claim("sub", |v| v == Some(&json!("alice"))),
                Ok(()),
            ),
            (
                "standard claims too, refused",
                json!({"sub": "bob"}),
                Requirement::new().claim("sub", |v| v == Some(&json!("alice"))),
                refused(claim("sub"), &[], None),
            ),
            (
                "two failing: the first is named",
                json!({}),
                Requirement::new().claim("a", |_| false).claim("b", |_| false),
                refused(claim("a"), &[], None),
            ),
            (
                "the second failing is named",
                json!({}),
                Requirement::new().claim("a", |_| true).claim("b", |_| false),
                refused(claim("b"), &[], None),
            ),
            (
                "the challenge carries the hint",
                json!({"authentication_level": "pwd"}),
                level().hint_acr_values([MFA]),
                refused(claim("authentication_level"), &[MFA], None),
            ),
            (
                "the challenge carries max_age",
                json!({"authentication_level": "pwd", "auth_time": NOW}),
                level().max_age(300),
                refused(claim("authentication_level"), &[], Some(300)),
            ),
        ];
        run(&rows, None);
    }

    /// Scope first (403), then acr, amr, claims and `max_age`: one row per condition met.
    #[test]
    fn conditions_are_judged_in_order() {
        let all = || {
            Requirement::new()
                .scope(["transfer"])
                .acr([MFA])
                .amr_any(["otp"])
                .claim("level", is_mfa)
                .max_age(300)
        };
        let rows: Vec<Row> = vec![
            (
                "nothing met: scope",
                json!({"acr": "loa1", "amr": ["pwd"], "level": "pwd", "auth_time": NOW - 1000}),
                all(),
                refused(scope(&["transfer"]), &[], None),
            ),
            (
                "scope met: acr",
                json!({"scope": "transfer", "acr": "loa1", "amr": ["pwd"], "level": "pwd", "auth_time": NOW - 1000}),
                all(),
                refused(acr(Some("loa1")), &[MFA], Some(300)),
            ),
            (
                "acr met: amr",
                json!({"scope": "transfer", "acr": MFA, "amr": ["pwd"], "level": "pwd", "auth_time": NOW - 1000}),
                all(),
                refused(Unmet::Amr, &[MFA], Some(300)),
            ),
            (
                "amr met: claim",
                json!({"scope": "transfer", "acr": MFA, "amr": ["otp"], "level": "pwd", "auth_time": NOW - 1000}),
                all(),
                refused(claim("level"), &[MFA], Some(300)),
            ),
            (
                "claim met: max_age",
                json!({"scope": "transfer", "acr": MFA, "amr": ["otp"], "level": "mfa", "auth_time": NOW - 1000}),
                all(),
                refused(too_old(1000, 300), &[MFA], Some(300)),
            ),
            (
                "all met",
                json!({"scope": "transfer", "acr": MFA, "amr": ["otp"], "level": "mfa", "auth_time": NOW}),
                all(),
                Ok(()),
            ),
        ];
        run(&rows, None);
    }

    #[test]
    fn and_only_narrows() {
        let present = |v: Option<&Value>| v.is_some();
        let rows: Vec<AndRow> = vec![
            (
                "acr and amr, both met",
                json!({"acr": "loa1", "amr": ["pwd", "otp"]}),
                Requirement::new().acr(["loa1"]),
                Requirement::new().amr_any(["otp"]),
                Ok(()),
            ),
            (
                "acr and amr, amr unmet",
                json!({"acr": "loa1", "amr": ["pwd"]}),
                Requirement::new().acr(["loa1"]),
                Requirement::new().amr_any(["otp"]),
                refused(Unmet::Amr, &["loa1"], None),
            ),
            (
                "two acr groups: in both",
                json!({"acr": "loa2"}),
                Requirement::new().acr(["loa1", "loa2"]),
                Requirement::new().acr(["loa2", "loa3"]),
                Ok(()),
            ),
            (
                "two acr groups: the right one unmet is named",
                json!({"acr": "loa1"}),
                Requirement::new().acr(["loa1", "loa2"]),
                Requirement::new().acr(["loa2", "loa3"]),
                refused(acr(Some("loa1")), &["loa2", "loa3"], None),
            ),
            (
                "two acr groups: the left one unmet is named",
                json!({"acr": "loa3"}),
                Requirement::new().acr(["loa1", "loa2"]),
                Requirement::new().acr(["loa2", "loa3"]),
                refused(acr(Some("loa3")), &["loa1", "loa2"], None),
            ),
            (
                "max_age: the smaller wins",
                json!({"auth_time": NOW - 400}),
                Requirement::new().max_age(600),
                Requirement::new().max_age(300),
                refused(too_old(400, 300), &[], Some(300)),
            ),
            (
                "max_age: never widened",
                json!({"auth_time": NOW - 400}),
                Requirement::new().max_age(300),
                Requirement::new().max_age(600),
                refused(too_old(400, 300), &[], Some(300)),
            ),
            (
                "max_age from the right only",
                json!({"auth_time": NOW - 400}),
                Requirement::new(),
                Requirement::new().max_age(300),
                refused(too_old(400, 300), &[], Some(300)),
            ),
            (
                "scopes: all of both",
                json!({"scope": "a"}),
                Requirement::new().scope(["a"]),
                Requirement::new().scope(["b"]),
                refused(scope(&["a", "b"]), &[], None),
            ),
            (
                "scopes: all of both, met",
                json!({"scope": "a b"}),
                Requirement::new().scope(["a"]),
                Requirement::new().scope(["b"]),
                Ok(()),
            ),
            (
                "claims: both must hold",
                json!({"x": 1}),
                Requirement::new().claim("x", present),
                Requirement::new().claim("z", present),
                refused(claim("z"), &[], None),
            ),
            (
                "the hint comes along",
                json!({"amr": ["pwd"]}),
                Requirement::new().amr_any(["mfa"]),
                Requirement::new().hint_acr_values([MFA]),
                refused(Unmet::Amr, &[MFA], None),
            ),
            (
                "empty and empty",
                json!({}),
                Requirement::new(),
                Requirement::new(),
                Ok(()),
            ),
            (
                "empty and an acr",
                json!({}),
                Requirement::new(),
                Requirement::new().acr(["loa1"]),
                refused(acr(None), &["loa1"], None),
            ),
        ];
        for (name, claims, left, right, expected) in &rows {
            let t = token(claims);
            let check = |r: &Requirement| r.check(&t, None, NOW, LEEWAY);
            let both = check(&left.clone().and(right.clone()));
            assert_eq!(&both, expected, "{name}");
            // Narrowing: what the conjunction lets through, each side lets through.
            assert_eq!(
                both.is_ok(),
                check(left).is_ok() && check(right).is_ok(),
                "{name}: `and` widened or over-narrowed"
            );
        }
    }
}
