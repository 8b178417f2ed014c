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
