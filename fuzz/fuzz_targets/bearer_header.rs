//! Authorization header → token: never panics; a token, when found, is a b64token.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = http::HeaderValue::from_bytes(data) else { return };
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    let uri = http::Uri::from_static("/");
    if let Ok(Some(token)) = stepup_tower::bearer::extract(&headers, &uri, 16 * 1024) {
        assert!(!token.is_empty());
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)));
    }
});
