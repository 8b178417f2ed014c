//! WWW-Authenticate parsing: never panics; whatever parses re-formats into something that
//! parses again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stepup_tower::challenge::{BearerChallenge, parse_challenges};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_challenges(text);
    if let Ok(Some(c)) = BearerChallenge::parse(text) {
        let again = c.format();
        assert!(http::HeaderValue::from_str(&again).is_ok(), "{again:?}");
        assert!(BearerChallenge::parse(&again).is_ok(), "{again:?}");
    }
});
