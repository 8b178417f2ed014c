//! Verification keys and where they come from.
//!
//! A [`KeySet`] is an immutable snapshot of pre-parsed keys: built once when a set is loaded,
//! then only read. A [`KeySource`] hands the request path the current snapshot (an `Arc`
//! clone, no lock a writer can hold) and may be asked to refresh when a token names a `kid`
//! the snapshot lacks. [`StaticKeys`] serves a fixed set (a JWK Set document, PEM public keys,
//! or an HMAC secret configured for one issuer); the remote JWKS cache plugs into the same
//! trait.
//!
//! ```
//! use stepup_tower::keys::KeySet;
//!
//! let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
//!     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
//! let set = KeySet::from_jwks_json(jwks.as_bytes()).unwrap();
//! assert_eq!(set.len(), 1);
//! ```

pub(crate) mod jwk;
#[cfg(feature = "remote")]
pub mod remote;

#[cfg(feature = "remote")]
pub use remote::{
    BuildError, CacheMetrics, CacheSettings, CacheStatus, FetchError, MIN_INTERVAL, RemoteJwks, RemoteJwksBuilder,
};

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};

/// The kind of a verification key, which fixes the algorithms it may verify
/// (RFC 8725 §3.1: the algorithm is bound to the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// RSA public key (RS256/384/512, PS256/384/512).
    Rsa {
        /// Modulus size in bits.
        bits: usize,
    },
    /// EC P-256 public key (ES256).
    P256,
    /// EC P-384 public key (ES384).
    P384,
    /// Ed25519 public key (EdDSA).
    Ed25519,
    /// HMAC secret configured explicitly for an issuer (HS256/384/512).
    Hmac,
}

/// Parses a JOSE `alg` name (header or JWK).
///
/// Besides the names jsonwebtoken knows, `Ed25519` — the fully-specified name RFC 9864
/// gives EdDSA over Ed25519, which providers such as `oidc-provider` already emit — is read
/// as EdDSA: Ed25519 is the only EdDSA curve this crate verifies (an Ed448 key is refused
/// when the key set is loaded), so the two names mean the same signature here. `Ed448` and
/// other names stay unknown.
pub(crate) fn parse_alg(name: &str) -> Option<Algorithm> {
    match name {
        "Ed25519" => Some(Algorithm::EdDSA),
        other => other.parse().ok(),
    }
}

impl KeyKind {
    /// Whether a key of this kind may verify `alg`.
    pub fn supports(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Rsa { .. } => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Self::P256 => alg == ES256,
            Self::P384 => alg == ES384,
            Self::Ed25519 => alg == EdDSA,
            Self::Hmac => matches!(alg, HS256 | HS384 | HS512),
        }
    }
}

/// One pre-parsed verification key.
#[derive(Clone)]
pub struct Key {
    kid: Option<String>,
    kind: KeyKind,
    alg: Option<Algorithm>,
    decoding: DecodingKey,
}

impl Key {
    pub(crate) fn new(kid: Option<String>, kind: KeyKind, alg: Option<Algorithm>, decoding: DecodingKey) -> Self {
        Self {
            kid,
            kind,
            alg,
            decoding,
        }
    }

    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The JWK's own `alg`, when it declared one.
    pub fn alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// Whether this key may verify a token whose header says `alg`: the key type must support
    /// it and a JWK's own `alg` (when present) must be equal to it.
    pub fn permits(&self, alg: Algorithm) -> bool {
        self.kind.supports(alg) && self.alg.is_none_or(|a| a == alg) && self.secret_long_enough(alg)
    }

    /// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
    fn secret_long_enough(&self, alg: Algorithm) -> bool {
        let need = match alg {
            Algorithm::HS256 => 32,
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => return true,
        };
        matches!(self.decoding.kind(), jsonwebtoken::DecodingKeyKind::SecretOrDer(b) if b.len() >= need)
    }

    /// Verifies `signature` (raw bytes) over `message` with `alg`, if this key permits `alg`.
    #[cfg(test)]
    pub(crate) fn verify_message(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !self.permits(alg) {
            return false;
        }
        let sig = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature);
        self.verify_b64(alg, message, &sig)
    }

    /// Verifies a base64url signature, as it appears in a compact JWS.
    pub(crate) fn verify_b64(&self, alg: Algorithm, message: &[u8], signature_b64: &str) -> bool {
        self.permits(alg) && jsonwebtoken::crypto::verify(signature_b64, message, &self.decoding, alg) == Ok(true)
    }

    pub(crate) fn same_material(&self, other: &Key) -> bool {
        self.kind == other.kind && self.alg == other.alg && key_bytes(&self.decoding) == key_bytes(&other.decoding)
    }
}

fn key_bytes(k: &DecodingKey) -> Option<Vec<u8>> {
    match k.kind() {
        jsonwebtoken::DecodingKeyKind::SecretOrDer(b) => Some(b.clone()),
        jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, e } => {
            let mut v = n.clone();
            v.push(0xff);
            v.extend_from_slice(e);
            Some(v)
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish()
    }
}

/// A key of a set that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Its `kid`, if it had a readable one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}

#[derive(Debug, Clone)]
enum KidEntry {
    One(Arc<Key>),
    /// RFC 7517 §4.5 leaves `kid` uniqueness to the producer; two different keys under one kid
    /// are ambiguous, so a token naming that kid is refused.
    Ambiguous,
}

/// Why a key could not be found for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupError {
    /// No key with this `kid` (or, without a kid, no key for the algorithm).
    NotFound,
    /// Several different keys share this `kid`.
    Ambiguous,
    /// The token has no `kid` and several keys could verify it.
    KidRequired,
    /// The key exists but may not verify this algorithm (key type or its JWK `alg`).
    AlgorithmMismatch,
}

/// An immutable set of pre-parsed verification keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    by_kid: HashMap<String, KidEntry>,
    all: Vec<Arc<Key>>,
    hmac: Option<Arc<Key>>,
    skipped: Vec<SkippedKey>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a JWK Set document (`{"keys": [...]}`).
    ///
    /// Keys that cannot be used are skipped one by one (see [`KeySet::skipped`]); only a
    /// document that is not a JWK Set at all is an error.
    pub fn from_jwks_json(json: &[u8]) -> Result<Self, KeyError> {
        let (keys, skipped) = jwk::parse_set(json)?;
        let mut set = Self {
            skipped,
            ..Self::default()
        };
        for key in keys {
            set.insert(key);
        }
        Ok(set)
    }

    /// Parses a single public JWK (a JSON object).
    pub fn from_jwk_json(json: &[u8]) -> Result<Self, KeyError> {
        let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| KeyError::InvalidJwk(e.to_string()))?;
        let key = jwk::parse_key(&value).map_err(KeyError::InvalidJwk)?;
        let mut set = Self::default();
        set.insert(key);
        Ok(set)
    }

    /// Adds a PEM public key (`-----BEGIN PUBLIC KEY-----` SPKI, or `BEGIN RSA PUBLIC KEY`),
    /// RSA, EC P-256/P-384 or Ed25519, under an optional `kid`.
    pub fn with_pem(mut self, kid: Option<&str>, pem: &[u8]) -> Result<Self, KeyError> {
        let decoding = DecodingKey::from_rsa_pem(pem)
            .or_else(|_| DecodingKey::from_ec_pem(pem))
            .or_else(|_| DecodingKey::from_ed_pem(pem))
            .map_err(|e| KeyError::InvalidPem(e.to_string()))?;
        let jwk = jsonwebtoken::jwk::Jwk::from_decoding_key(&decoding, None)
            .map_err(|e| KeyError::InvalidPem(e.to_string()))?;
        let mut value = serde_json::to_value(&jwk).map_err(|e| KeyError::InvalidPem(e.to_string()))?;
        if let (Some(kid), Some(obj)) = (kid, value.as_object_mut()) {
            obj.insert("kid".into(), serde_json::Value::String(kid.to_string()));
        }
        let key = jwk::parse_key(&value).map_err(KeyError::InvalidPem)?;
        self.insert(key);
        Ok(self)
    }

    /// Adds a PEM public key; see [`KeySet::with_pem`].
    pub fn from_pem(kid: Option<&str>, pem: &[u8]) -> Result<Self, KeyError> {
        Self::default().with_pem(kid, pem)
    }

    /// A set holding one HMAC secret (HS256/384/512), for an issuer that signs with a shared
    /// secret such as the OIDC client secret. The secret is used whatever `kid` a token names:
    /// a `kid` never selects a secret (CVE-2025-65945).
    pub fn from_hmac_secret(secret: &[u8]) -> Result<Self, KeyError> {
        // RFC 7518 §3.2: a key of the same size as the hash output (or larger) MUST be used.
        if secret.len() < 32 {
            return Err(KeyError::WeakHmacSecret { len: secret.len() });
        }
        let key = Key::new(None, KeyKind::Hmac, None, DecodingKey::from_secret(secret));
        Ok(Self {
            hmac: Some(Arc::new(key)),
            ..Self::default()
        })
    }

    fn insert(&mut self, key: Key) {
        let key = Arc::new(key);
        if let Some(kid) = key.kid.clone() {
            let entry = match self.by_kid.remove(&kid) {
                None => KidEntry::One(key.clone()),
                Some(KidEntry::One(existing)) if existing.same_material(&key) => KidEntry::One(existing),
                Some(_) => KidEntry::Ambiguous,
            };
            self.by_kid.insert(kid, entry);
        }
        self.all.push(key);
    }

    /// Number of usable keys (the HMAC secret included).
    pub fn len(&self) -> usize {
        self.all.len() + usize::from(self.hmac.is_some())
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys of the source document that were skipped, with the reason.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// The usable asymmetric keys.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.all.iter().map(AsRef::as_ref)
    }

    /// The one key under `kid` (none when absent or ambiguous), whatever its algorithm.
    pub(crate) fn by_kid(&self, kid: &str) -> Option<&Arc<Key>> {
        match self.by_kid.get(kid) {
            Some(KidEntry::One(k)) => Some(k),
            _ => None,
        }
    }

    /// Whether the set holds this `kid` (ambiguous kids included).
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Finds the key that may verify a token with this `kid` and `alg`.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Key, LookupError> {
        self.find_shared(kid, alg).map(AsRef::as_ref)
    }

    pub(crate) fn find_shared(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Arc<Key>, LookupError> {
        if KeyKind::Hmac.supports(alg) {
            // The issuer's configured secret, never chosen by `kid`.
            return match self.hmac.as_ref() {
                None => Err(LookupError::NotFound),
                Some(k) if k.permits(alg) => Ok(k),
                Some(_) => Err(LookupError::AlgorithmMismatch),
            };
        }
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                None => Err(LookupError::NotFound),
                Some(KidEntry::Ambiguous) => Err(LookupError::Ambiguous),
                Some(KidEntry::One(k)) if k.permits(alg) => Ok(k),
                Some(KidEntry::One(_)) => Err(LookupError::AlgorithmMismatch),
            },
            None => {
                let mut it = self.all.iter().filter(|k| k.permits(alg));
                match (it.next(), it.next()) {
                    (Some(k), None) => Ok(k),
                    (None, _) => Err(LookupError::NotFound),
                    (Some(_), Some(_)) => Err(LookupError::KidRequired),
                }
            }
        }
    }
}

/// A key set could not be built or fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The document is not a JWK Set.
    InvalidJwkSet(String),
    /// The JWK cannot be used.
    InvalidJwk(String),
    /// The PEM document is not a supported public key.
    InvalidPem(String),
    /// An HMAC secret shorter than 256 bits.
    WeakHmacSecret {
        /// Its length in bytes.
        len: usize,
    },
    /// The source has no keys to offer (never loaded, or too stale to trust).
    Unavailable(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidJwkSet(e) => write!(f, "not a JWK Set: {e}"),
            Self::InvalidJwk(e) => write!(f, "unusable JWK: {e}"),
            Self::InvalidPem(e) => write!(f, "unusable PEM public key: {e}"),
            Self::WeakHmacSecret { len } => write!(f, "HMAC secret of {len} bytes is shorter than 32"),
            Self::Unavailable(e) => write!(f, "no keys available: {e}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A boxed future, as returned by [`KeySource::refresh`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where an issuer's keys come from.
///
/// [`KeySource::current`] is on every request's path: it must return at once, without waiting
/// on I/O or on a lock a writer can hold. [`KeySource::refresh`] is called when a token names a
/// `kid` that the current set lacks, [`KeySource::refresh_after_bad_signature`] when the key of
/// a known `kid` did not verify; a source that can fetch keys should do so (rate-limited and
/// shared between concurrent callers: these calls are driven by what clients send) and return
/// the new set.
pub trait KeySource: Send + Sync + 'static {
    /// The current key set.
    fn current(&self) -> Result<Arc<KeySet>, KeyError>;

    /// Called when `kid` is not in the current set. The default returns the current set.
    fn refresh(&self, kid: Option<&str>) -> BoxFuture<'_, Result<Arc<KeySet>, KeyError>> {
        let _ = kid;
        let current = self.current();
        Box::pin(std::future::ready(current))
    }

    /// Called when the current set's key for `kid` did not verify a token's signature: the
    /// provider may have put new key material under an old `kid` (a restart that regenerates
    /// its keys). When the material of `kid` differs in the set returned, the token is verified
    /// once more. The default returns the current set.
    fn refresh_after_bad_signature(&self, kid: &str) -> BoxFuture<'_, Result<Arc<KeySet>, KeyError>> {
        let _ = kid;
        let current = self.current();
        Box::pin(std::future::ready(current))
    }
}

/// A fixed key set.
#[derive(Debug, Clone)]
pub struct StaticKeys(Arc<KeySet>);

impl StaticKeys {
    /// Serves `set` for ever.
    pub fn new(set: KeySet) -> Self {
        Self(Arc::new(set))
    }
}

impl KeySource for StaticKeys {
    fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        Ok(self.0.clone())
    }
}

impl From<KeySet> for StaticKeys {
    fn from(set: KeySet) -> Self {
        Self::new(set)
    }
}
