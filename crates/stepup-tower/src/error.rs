//! [`ConfigError`]: why the builder refused a configuration.

use std::fmt;

/// A configuration the builder refused: what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// No [`Issuer`](crate::Issuer) was configured.
    NoIssuer,
    /// An issuer with an empty `iss`.
    EmptyIssuer,
    /// Two issuers with the same `iss`.
    DuplicateIssuer(String),
    /// An issuer without an audience (or with an empty one).
    NoAudience(String),
    /// An ID-token issuer with an empty client id.
    EmptyClientId(String),
    /// An issuer without a key source.
    NoKeySource(String),
    /// An issuer whose algorithm allow-list is empty.
    NoAlgorithm(String),
    /// A setting for access tokens only, on an ID-token issuer.
    AccessTokensOnly {
        /// The issuer.
        issuer: String,
        /// The setting, e.g. `also_accept_typ`.
        setting: &'static str,
    },
    /// `omits_claims` named a claim that is always required or unknown.
    NotOmittable {
        /// The issuer.
        issuer: String,
        /// The claim.
        claim: String,
    },
    /// `client_id_claim` with an empty name.
    EmptyClientClaim(String),
    /// `client_id_claim` naming a claim that never names the client (`sub`, `aud`, `nonce`, …).
    UnfitClientClaim {
        /// The issuer.
        issuer: String,
        /// The claim.
        claim: String,
    },
    /// A relaxed `typ` and no client claim: nothing would tell access tokens from ID tokens.
    /// Name the provider's client claim with
    /// [`Issuer::client_id_claim`](crate::Issuer::client_id_claim).
    IndistinctTokenTypes(String),
    /// A requirement or ladder value that a challenge cannot carry (an acr value with a space,
    /// a scope with a quote).
    UnsendableValue(String),
    /// The leeway does not fit in seconds as an `i64`.
    LeewayTooLarge,
    /// [`StepUpBuilder::dpop`](crate::StepUpBuilder::dpop) was called but no issuer accepts
    /// DPoP ([`Issuer::dpop`](crate::Issuer::dpop)).
    DpopUnused,
    /// The DPoP proof algorithm list is empty (symmetric algorithms are never accepted).
    NoProofAlgorithm,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid stepup-tower configuration: ")?;
        match self {
            Self::NoIssuer => f.write_str("no issuer configured"),
            Self::EmptyIssuer => f.write_str("an issuer needs a non-empty `iss`"),
            Self::DuplicateIssuer(i) => write!(f, "issuer {i:?} configured twice"),
            Self::NoAudience(i) => write!(f, "issuer {i:?} needs at least one non-empty audience"),
            Self::EmptyClientId(i) => write!(f, "issuer {i:?} needs a non-empty client id"),
            Self::NoKeySource(i) => write!(f, "issuer {i:?} has no key source"),
            Self::NoAlgorithm(i) => write!(f, "issuer {i:?} allows no algorithm"),
            Self::AccessTokensOnly { issuer, setting } => {
                write!(f, "issuer {issuer:?}: {setting} applies to access tokens only")
            }
            Self::NotOmittable { issuer, claim } => write!(
                f,
                "issuer {issuer:?}: omits_claims takes sub, iat, jti or client_id, not {claim:?} (iss, exp and aud are always required)"
            ),
            Self::EmptyClientClaim(i) => write!(f, "issuer {i:?}: client_id_claim needs a claim name"),
            Self::UnfitClientClaim { issuer, claim } => {
                write!(
                    f,
                    "issuer {issuer:?}: {claim:?} never names the client; client_id_claim takes e.g. azp or cid"
                )
            }
            Self::IndistinctTokenTypes(i) => write!(
                f,
                "issuer {i:?} accepts a relaxed typ and omits client_id: then nothing tells its access tokens from its ID tokens; name the provider's client claim with client_id_claim (e.g. \"azp\") instead"
            ),
            Self::UnsendableValue(why) => f.write_str(why),
            Self::LeewayTooLarge => f.write_str("leeway too large"),
            Self::DpopUnused => f.write_str("DPoP proof rules are set but no issuer accepts DPoP (Issuer::dpop)"),
            Self::NoProofAlgorithm => f.write_str("no asymmetric algorithm is allowed for DPoP proofs"),
        }
    }
}

impl std::error::Error for ConfigError {}
