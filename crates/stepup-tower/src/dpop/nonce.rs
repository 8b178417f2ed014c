//! Stateless server nonces (RFC 9449 §8–9).
//!
//! A nonce is the time it was issued, sealed with AES-256-GCM under a key that rotates every
//! lifetime: key(epoch) = HMAC-SHA-256(secret, label ‖ epoch), epoch = ⌊now / lifetime⌋. Any
//! replica holding the same secret checks any nonce without shared state; a nonce is accepted
//! under the current or the previous epoch's key, and only while its sealed time is at most
//! one lifetime old. Tampered or foreign nonces fail to open.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto;

/// Default nonce lifetime: 5 minutes.
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);

const LABEL: &[u8] = b"stepup-tower DPoP nonce key v1";
/// A nonce issued "in the future" by a replica whose clock runs ahead is accepted up to this.
const CLOCK_SKEW: i64 = 5;

/// Server nonces for DPoP proofs, turned on with [`Dpop::nonces`](crate::dpop::Dpop::nonces).
///
/// ```
/// use stepup_tower::dpop::{Dpop, DpopNonces};
/// // Replicas behind one load balancer share the secret (e.g. from a secret store).
/// let secret = [7u8; 32];
/// let dpop = Dpop::new().nonces(DpopNonces::new(secret));
/// # let _ = dpop;
/// ```
#[derive(Clone)]
pub struct DpopNonces {
    secret: Arc<[u8; 32]>,
    lifetime: i64,
}

impl fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopNonces")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl DpopNonces {
    /// Nonces under `secret`: give every replica the same 32 random bytes.
    pub fn new(secret: [u8; 32]) -> Self {
        Self {
            secret: Arc::new(secret),
            lifetime: DEFAULT_NONCE_LIFETIME.as_secs().cast_signed(),
        }
    }

    /// Nonces under a secret drawn now: right for a single process (other replicas would not
    /// recognise them). `None` if the system's random source failed.
    pub fn random() -> Option<Self> {
        let mut secret = [0u8; 32];
        crypto::random(&mut secret).then(|| Self::new(secret))
    }

    /// How long a nonce stays valid (default 5 minutes, at least 1 s).
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX).max(1);
        self
    }

    fn key(&self, epoch: i64) -> [u8; 32] {
        let mut message = LABEL.to_vec();
        message.extend_from_slice(&epoch.to_be_bytes());
        crypto::hmac_sha256(self.secret.as_slice(), &message)
    }

    /// A fresh nonce for `now`. `None` only if the random source failed.
    pub(crate) fn issue(&self, now: i64) -> Option<String> {
        let mut iv = [0u8; 12];
        if !crypto::random(&mut iv) {
            return None;
        }
        let sealed = crypto::seal(&self.key(now.div_euclid(self.lifetime)), &iv, &now.to_be_bytes())?;
        let mut out = iv.to_vec();
        out.extend_from_slice(&sealed);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// Whether `nonce` was issued by a holder of the secret within the lifetime.
    pub(crate) fn check(&self, nonce: &str, now: i64) -> bool {
        // 12-byte IV, 8-byte time, 16-byte tag: 48 base64url characters.
        if nonce.len() != 48 {
            return false;
        }
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Some((iv, sealed)) = bytes.split_first_chunk::<12>() else {
            return false;
        };
        let epoch = now.div_euclid(self.lifetime);
        [epoch, epoch.saturating_sub(1)].into_iter().any(|e| {
            crypto::open(&self.key(e), iv, sealed)
                .and_then(|plain| <[u8; 8]>::try_from(plain.as_slice()).ok())
                .map(i64::from_be_bytes)
                .is_some_and(|issued| {
                    issued <= now.saturating_add(CLOCK_SKEW) && now.saturating_sub(issued) <= self.lifetime
                })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn issued_nonce_checks_until_its_lifetime_ends() {
        let n = DpopNonces::new([1; 32]).lifetime(Duration::from_secs(100));
        let t = 1_000_050;
        let nonce = n.issue(t).unwrap();
        assert_eq!(nonce.len(), 48);
        assert!(n.check(&nonce, t));
        // Across the epoch boundary (1_000_100), under the previous key.
        assert!(n.check(&nonce, t + 99));
        assert!(n.check(&nonce, t + 100));
        assert!(!n.check(&nonce, t + 101));
        // Issued in the future beyond the skew.
        assert!(!n.check(&nonce, t - 6));
    }

    #[test]
    fn another_secret_or_a_changed_byte_fails() {
        let a = DpopNonces::new([1; 32]);
        let b = DpopNonces::new([2; 32]);
        let nonce = a.issue(5_000).unwrap();
        assert!(!b.check(&nonce, 5_000));
        // A replica with the same secret accepts it.
        assert!(DpopNonces::new([1; 32]).check(&nonce, 5_001));
        let mut bytes = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        if let Some(last) = bytes.last_mut() {
            *last ^= 1;
        }
        assert!(!a.check(&URL_SAFE_NO_PAD.encode(bytes), 5_000));
        assert!(!a.check("short", 5_000));
        assert!(!a.check(&"A".repeat(48), 5_000));
    }
}
