//! JWK Set parsing never panics; every usable key permits at least one algorithm.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stepup_tower::keys::KeySet;

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = KeySet::from_jwks_json(data) {
        for key in set.keys() {
            let _ = key.kid();
            let _ = set.find(key.kid(), stepup_tower::Algorithm::ES256);
        }
    }
});
