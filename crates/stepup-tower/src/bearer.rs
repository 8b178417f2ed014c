//! Finding the bearer token in a request (RFC 6750 §2).
//!
//! Only the `Authorization` header is read. The scheme name is case-insensitive and is followed
//! by one or more spaces and exactly one `b64token`. Tokens in the query string are not accepted;
//! one that is sent *together with* a header is a malformed request (RFC 6750 §2: a client
//! MUST NOT use more than one method).

use std::fmt;

use http::{HeaderMap, Uri, header::AUTHORIZATION};

use crate::challenge::AuthScheme;

/// Why the `Authorization` header could not be read (answered with 400 `invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerError {
    /// More than one `Authorization` header.
    MultipleHeaders,
    /// The token is sent both in the header and in the query string.
    MultipleMethods,
    /// The header is longer than the configured bound.
    TooLarge {
        /// Length of the header value in bytes.
        len: usize,
        /// The configured bound.
        max: usize,
    },
    /// The value has the Bearer scheme but no token, or a token with characters outside
    /// RFC 6750's `b64token`, or more than one token.
    Malformed(&'static str),
}

impl BearerError {
    /// Short, fixed text for the wire (`error_description`).
    pub fn description(&self) -> &'static str {
        match self {
            Self::MultipleHeaders => "more than one Authorization header",
            Self::MultipleMethods => "token sent by more than one method",
            Self::TooLarge { .. } => "Authorization header too large",
            Self::Malformed(_) => "malformed Authorization header",
        }
    }
}

impl fmt::Display for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => write!(f, "Authorization header of {len} bytes exceeds {max}"),
            Self::Malformed(why) => write!(f, "malformed Authorization header: {why}"),
            other => f.write_str(other.description()),
        }
    }
}

impl std::error::Error for BearerError {}

/// The b64token characters (RFC 6750 §2.1) without the trailing `=`, as a byte table: the
/// check runs on every request over the whole token, so one load per byte.
#[allow(clippy::indexing_slicing)] // const evaluation, i < 256
static B64TOKEN_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        i += 1;
    }
    t
};

/// RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
///
/// The trailing `=` run is stripped first (`=` is not a body character, so this is the same
/// grammar); the body check then has no early exit, one table load and one AND per byte.
#[allow(clippy::indexing_slicing)] // a u8 always indexes a 256-entry table
fn is_b64token(s: &[u8]) -> bool {
    let pad = s.iter().rev().take_while(|&&b| b == b'=').count();
    let body = s.get(..s.len() - pad).unwrap_or_default();
    !body.is_empty() && body.iter().fold(true, |ok, &b| ok & B64TOKEN_CHAR[usize::from(b)])
}

/// Reads the bearer token of a request.
///
/// `Ok(None)`: no bearer credentials at all (no header, or another scheme such as `Basic`).
/// `Err`: a malformed request.
pub fn extract<'h>(headers: &'h HeaderMap, uri: &Uri, max_len: usize) -> Result<Option<&'h str>, BearerError> {
    credentials(headers, uri, max_len, false).map(|c| c.map(|(_, token)| token))
}

/// Reads the access token of a request and the scheme it came under: `Bearer`, or `DPoP`
/// (RFC 9449 §7.1, same token syntax) when `dpop` is true. With `dpop` false the `DPoP`
/// scheme is "another scheme", i.e. no credentials.
pub fn credentials<'h>(
    headers: &'h HeaderMap,
    uri: &Uri,
    max_len: usize,
    dpop: bool,
) -> Result<Option<(AuthScheme, &'h str)>, BearerError> {
    match raw_credentials(headers, uri, max_len, dpop)? {
        Some((scheme, token)) => checked_token(token).map(|t| Some((scheme, t))),
        None => Ok(None),
    }
}

/// [`credentials`] without the token's character check ([`checked_token`]), which is the one
/// step that reads the whole token: the layer first looks the raw bytes up in its
/// verified-token cache (a token found there passed this check when it was stored) and runs
/// the check only on a miss.
pub(crate) fn raw_credentials<'h>(
    headers: &'h HeaderMap,
    uri: &Uri,
    max_len: usize,
    dpop: bool,
) -> Result<Option<(AuthScheme, &'h [u8])>, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => None,
        (Some(v), None) => Some(v),
        (Some(_), Some(_)) => return Err(BearerError::MultipleHeaders),
    };
    let in_query = uri.query().is_some_and(query_has_access_token);
    let Some(value) = value else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    // Bound what is read before any parsing.
    if bytes.len() > max_len {
        return Err(BearerError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let scheme_len = bytes.iter().take_while(|b| **b != b' ').count();
    let (scheme_name, rest) = bytes.split_at(scheme_len);
    let scheme = if scheme_name.eq_ignore_ascii_case(b"bearer") {
        AuthScheme::Bearer
    } else if dpop && scheme_name.eq_ignore_ascii_case(b"dpop") {
        AuthScheme::DPoP
    } else {
        if scheme_name.is_empty() || !scheme_name.iter().all(u8::is_ascii_graphic) {
            return Err(BearerError::Malformed("no auth-scheme"));
        }
        let bad_separator = |name: &[u8]| {
            scheme_name.len() > name.len()
                && scheme_name
                    .get(..name.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(name))
        };
        if bad_separator(b"bearer") || (dpop && bad_separator(b"dpop")) {
            // `Bearer\ttoken`, `Bearer,token`: the scheme with a bad separator.
            return Err(BearerError::Malformed("the scheme must be followed by a space"));
        }
        // Another scheme (Basic, …): no bearer credentials.
        return if in_query {
            Err(BearerError::MultipleMethods)
        } else {
            Ok(None)
        };
    };
    if in_query {
        return Err(BearerError::MultipleMethods);
    }
    // RFC 6750 §2.1: "Bearer" 1*SP b64token; trailing whitespace is not part of the field value.
    let token = trim_spaces(rest);
    if token.is_empty() {
        return Err(BearerError::Malformed("no token after the scheme"));
    }
    Ok(Some((scheme, token)))
}

/// The token's characters are RFC 6750's `b64token`; as text.
pub(crate) fn checked_token(token: &[u8]) -> Result<&str, BearerError> {
    if !is_b64token(token) {
        return Err(BearerError::Malformed("token has characters outside b64token"));
    }
    // b64token characters are ASCII, so this cannot fail.
    std::str::from_utf8(token).map_err(|_| BearerError::Malformed("not ASCII"))
}

fn trim_spaces(s: &[u8]) -> &[u8] {
    let start = s.iter().take_while(|b| **b == b' ').count();
    let end = s.len() - s.iter().rev().take_while(|b| **b == b' ' || **b == b'\t').count();
    s.get(start..end.max(start)).unwrap_or_default()
}

fn query_has_access_token(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("access_token"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    fn hdrs(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn ex(values: &[&[u8]]) -> Result<Option<String>, BearerError> {
        let h = hdrs(values);
        extract(&h, &Uri::from_static("/"), 100).map(|t| t.map(str::to_string))
    }

    #[test]
    fn reads_bearer_any_case() {
        assert_eq!(ex(&[b"Bearer abc.def.ghi"]).unwrap().as_deref(), Some("abc.def.ghi"));
        assert_eq!(ex(&[b"bEaReR   abc"]).unwrap().as_deref(), Some("abc"));
        assert_eq!(ex(&[b"Bearer abc=="]).unwrap().as_deref(), Some("abc=="));
    }

    #[test]
    fn no_credentials() {
        assert_eq!(ex(&[]).unwrap(), None);
        assert_eq!(ex(&[b"Basic dXNlcjpwYXNz"]).unwrap(), None);
    }

    #[test]
    fn malformed() {
        assert_eq!(ex(&[b"Bearer a", b"Bearer b"]), Err(BearerError::MultipleHeaders));
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer a b",
            b"Bearer\ta",
            b"Bearer,a",
            b"Bearer a,b",
            b"Bearer \xc3\xa9",
            b"Bearer a=b",
            b"  ",
        ] {
            assert!(matches!(ex(&[bad]), Err(BearerError::Malformed(_))), "{bad:?}");
        }
        assert!(matches!(ex(&[&[b'a'; 101]]), Err(BearerError::TooLarge { .. })));
    }

    #[test]
    fn dpop_scheme_only_when_asked() {
        let h = hdrs(&[b"DPoP abc.def"]);
        let uri = Uri::from_static("/");
        assert_eq!(extract(&h, &uri, 100), Ok(None));
        assert_eq!(
            credentials(&h, &uri, 100, true),
            Ok(Some((AuthScheme::DPoP, "abc.def")))
        );
        let h = hdrs(&[b"dpop,abc"]);
        assert!(matches!(
            credentials(&h, &uri, 100, true),
            Err(BearerError::Malformed(_))
        ));
        let h = hdrs(&[b"DPoP "]);
        assert!(matches!(
            credentials(&h, &uri, 100, true),
            Err(BearerError::Malformed(_))
        ));
    }

    #[test]
    fn query_and_header_is_invalid_request() {
        let h = hdrs(&[b"Bearer abc"]);
        let uri = Uri::from_static("/x?a=1&access_token=abc");
        assert_eq!(extract(&h, &uri, 100), Err(BearerError::MultipleMethods));
        assert_eq!(extract(&HeaderMap::new(), &uri, 100), Ok(None));
    }

    /// The grammar as written in RFC 6750, byte by byte: the reference for the fast check.
    fn reference(s: &[u8]) -> bool {
        let body = s
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
            .count();
        body > 0 && s.iter().skip(body).all(|b| *b == b'=')
    }

    proptest::proptest! {
        #[test]
        fn b64token_check_matches_the_grammar(
            s in proptest::collection::vec(proptest::sample::select(b"aZ09-._~+/= \t,\"\x80\x00".to_vec()), 0..12)
        ) {
            proptest::prop_assert_eq!(is_b64token(&s), reference(&s), "{:?}", String::from_utf8_lossy(&s));
        }
    }

    #[test]
    fn b64token_every_byte() {
        for b in 0..=255u8 {
            for s in [vec![b], vec![b'a', b], vec![b, b'='], vec![b'a', b, b'=']] {
                assert_eq!(is_b64token(&s), reference(&s), "{s:?}");
            }
        }
    }
}
