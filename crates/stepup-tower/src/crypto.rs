//! The crypto backend of jsonwebtoken, chosen by exactly one of our features.
//!
//! Cargo unifies features: if another crate in the build enables the other jsonwebtoken
//! backend, jsonwebtoken alone cannot pick one (it would panic at the first verification).
//! We install the provider matching *our* feature as the process default, so verification
//! always has a backend.

#[cfg(all(feature = "aws-lc-rs", feature = "rust-crypto"))]
compile_error!(
    "stepup-tower: enable exactly one crypto backend. Both `aws-lc-rs` (default) and \
     `rust-crypto` are on; to use rust-crypto, set `default-features = false, \
     features = [\"rust-crypto\"]`."
);

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!("stepup-tower: enable exactly one crypto backend: `aws-lc-rs` (default) or `rust-crypto`.");

/// Installs our backend as jsonwebtoken's process default (a no-op when one is installed).
pub(crate) fn install_provider() {
    #[cfg(all(feature = "aws-lc-rs", not(feature = "rust-crypto")))]
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(&jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER);
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(&jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER);
}

/// HMAC-SHA-256 (RFC 2104).
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    #[cfg(feature = "aws-lc-rs")]
    {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
        let tag = aws_lc_rs::hmac::sign(&key, message);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        use hmac::Mac as _;
        // HMAC takes keys of any length: `new_from_slice` cannot fail.
        match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
            Ok(mut mac) => {
                mac.update(message);
                mac.finalize().into_bytes().into()
            }
            Err(_) => [0u8; 32],
        }
    }
}

/// Fills `out` from the operating system's random source. `false` if it failed.
pub(crate) fn random(out: &mut [u8]) -> bool {
    #[cfg(feature = "aws-lc-rs")]
    {
        aws_lc_rs::rand::fill(out).is_ok()
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        getrandom::getrandom(out).is_ok()
    }
}

/// AES-256-GCM with a 96-bit nonce: `ciphertext || tag`.
pub(crate) fn seal(key: &[u8; 32], iv: &[u8; 12], plaintext: &[u8]) -> Option<Vec<u8>> {
    #[cfg(feature = "aws-lc-rs")]
    {
        use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?);
        let mut data = plaintext.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(*iv), Aad::empty(), &mut data)
            .ok()?;
        Some(data)
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        use aes_gcm::aead::{Aead as _, KeyInit as _};
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).ok()?;
        cipher.encrypt(iv.into(), plaintext).ok()
    }
}

/// Opens what [`seal`] made; `None` if it was not made with this key and IV.
pub(crate) fn open(key: &[u8; 32], iv: &[u8; 12], sealed: &[u8]) -> Option<Vec<u8>> {
    #[cfg(feature = "aws-lc-rs")]
    {
        use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?);
        let mut data = sealed.to_vec();
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(*iv), Aad::empty(), &mut data)
            .ok()?;
        Some(plain.to_vec())
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        use aes_gcm::aead::{Aead as _, KeyInit as _};
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).ok()?;
        cipher.decrypt(iv.into(), sealed).ok()
    }
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    #[cfg(feature = "aws-lc-rs")]
    {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        use sha2::Digest as _;
        sha2::Sha256::digest(data).into()
    }
}
