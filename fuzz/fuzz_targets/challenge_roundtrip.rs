//! Formatting any field values gives a valid header that parses back to the same values, once
//! sanitised (formatting is idempotent on its own output).
#![no_main]
use libfuzzer_sys::fuzz_target;
use stepup_tower::challenge::{BearerChallenge, ErrorCode};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\u{1}');
    let mut next = || fields.next().unwrap_or("").to_string();
    let mut c = BearerChallenge::new();
    c.realm = Some(next());
    c.error = Some(ErrorCode::from_wire(&next()));
    c.error_description = Some(next());
    c.scope = next().split('\u{2}').map(str::to_string).collect();
    c.acr_values = next().split('\u{2}').map(str::to_string).collect();
    c.max_age = next().parse().ok();
    c.resource_metadata = Some(next());
    let header = c.format();
    assert!(http::HeaderValue::from_str(&header).is_ok(), "{header:?}");
    let parsed = BearerChallenge::parse(&header).expect("formatted challenge parses").expect("a Bearer challenge");
    assert_eq!(parsed.format(), header, "format(parse(format(x))) == format(x)");
    assert_eq!(parsed.max_age, c.max_age);
});
