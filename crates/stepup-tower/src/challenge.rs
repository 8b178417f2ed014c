//! `WWW-Authenticate` challenges: formatting on the server, parsing on the client.
//!
//! One grammar for both directions (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9470 §3):
//!
//! ```text
//! WWW-Authenticate = [ challenge *( OWS "," OWS challenge ) ]
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! ```
//!
//! Formatting never trusts its input: `error` and `error_description` are reduced to the
//! characters RFC 6750 §3 allows (`%x20-21 / %x23-5B / %x5D-7E`), scope tokens and acr values
//! to visible ASCII, and every quoted value escapes `"` and `\`. Whatever the strings contain,
//! the result is one well-formed challenge that a parser reads back to the same (sanitised)
//! values.
//!
//! ```
//! use stepup_tower::challenge::{BearerChallenge, ErrorCode};
//!
//! let header = "Bearer error=\"insufficient_user_authentication\", \
//!               error_description=\"A different authentication level is required\", \
//!               acr_values=\"myACR\", max_age=5";
//! let c = BearerChallenge::parse(header).unwrap().unwrap();
//! assert_eq!(c.error, Some(ErrorCode::InsufficientUserAuthentication));
//! assert_eq!(c.acr_values, vec!["myACR".to_string()]);
//! assert_eq!(c.max_age, Some(5));
//! ```

use std::fmt;

use http::HeaderValue;

/// The `error` code of a Bearer challenge (RFC 6750 §3.1, RFC 9470 §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request` (400): the request is malformed.
    InvalidRequest,
    /// `invalid_token` (401): the token is expired, revoked, malformed or invalid.
    InvalidToken,
    /// `insufficient_scope` (403): the token lacks a required scope.
    InsufficientScope,
    /// `insufficient_user_authentication` (401, RFC 9470): authenticate again, more strongly
    /// or more recently.
    InsufficientUserAuthentication,
    /// Any other code a server sent (kept verbatim by the parser).
    Other(String),
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InsufficientUserAuthentication => "insufficient_user_authentication",
            Self::Other(s) => s,
        }
    }

    /// Reads a wire code; unknown codes become [`ErrorCode::Other`].
    pub fn from_wire(s: &str) -> Self {
        match s {
            "invalid_request" => Self::InvalidRequest,
            "invalid_token" => Self::InvalidToken,
            "insufficient_scope" => Self::InsufficientScope,
            "insufficient_user_authentication" => Self::InsufficientUserAuthentication,
            other => Self::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scheme of a token challenge: `Bearer` (RFC 6750) or `DPoP` (RFC 9449 §7.1), which
/// carries the same parameters plus `algs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthScheme {
    /// `Bearer`.
    #[default]
    Bearer,
    /// `DPoP`.
    DPoP,
}

impl AuthScheme {
    /// The scheme name as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::DPoP => "DPoP",
        }
    }

    /// Reads a scheme name (case-insensitive); other schemes are `None`.
    pub fn from_wire(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("bearer") {
            Some(Self::Bearer)
        } else if s.eq_ignore_ascii_case("dpop") {
            Some(Self::DPoP)
        } else {
            None
        }
    }
}

/// A `Bearer` (or `DPoP`) challenge with the parameters of RFC 6750, RFC 9470, RFC 9728 and
/// RFC 9449.
///
/// Build one to answer a request, or get one from [`BearerChallenge::parse`] (or
/// [`BearerChallenge::parse_scheme`]) to react to an answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BearerChallenge {
    /// The scheme: `Bearer` unless built or parsed as `DPoP`.
    pub scheme: AuthScheme,
    /// `realm`.
    pub realm: Option<String>,
    /// `error`.
    pub error: Option<ErrorCode>,
    /// `error_description`: human-readable, ASCII.
    pub error_description: Option<String>,
    /// `error_uri`.
    pub error_uri: Option<String>,
    /// `scope`: the scopes needed (space-separated on the wire).
    pub scope: Vec<String>,
    /// `acr_values` (RFC 9470): acceptable acr values in order of preference.
    pub acr_values: Vec<String>,
    /// `max_age` (RFC 9470): the maximum allowed seconds since the last active authentication.
    pub max_age: Option<u64>,
    /// `resource_metadata` (RFC 9728): URL of the protected resource metadata.
    pub resource_metadata: Option<String>,
    /// `algs` (RFC 9449 §7.1, `DPoP` challenges): the proof algorithms accepted.
    pub algs: Vec<String>,
}

impl BearerChallenge {
    /// An empty challenge (`Bearer`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Formats the challenge as it goes into `WWW-Authenticate`.
    ///
    /// The output always satisfies RFC 9110 and RFC 6750, whatever the fields hold:
    /// characters that cannot be carried are dropped (never echoed raw).
    pub fn format(&self) -> String {
        let mut out = String::from(self.scheme.as_str());
        let mut first = true;
        let mut push = |out: &mut String, name: &str, value: &str, quoted: bool| {
            out.push_str(if first { " " } else { ", " });
            first = false;
            out.push_str(name);
            out.push('=');
            if quoted {
                push_quoted(out, value);
            } else {
                out.push_str(value);
            }
        };
        if let Some(realm) = &self.realm {
            push(&mut out, "realm", &clean_quoted(realm), true);
        }
        if let Some(error) = &self.error {
            let code = clean_error_text(error.as_str());
            if !code.is_empty() {
                push(&mut out, "error", &code, true);
            }
        }
        if let Some(desc) = &self.error_description {
            push(&mut out, "error_description", &clean_error_text(desc), true);
        }
        if let Some(uri) = &self.error_uri {
            // RFC 6750 §3: error-uri = *( %x21 / %x23-5B / %x5D-7E ), no space.
            let uri: String = uri.chars().filter(|c| is_scope_char(*c)).collect();
            push(&mut out, "error_uri", &uri, true);
        }
        let scope = join_tokens(&self.scope, is_scope_char);
        if !scope.is_empty() {
            push(&mut out, "scope", &scope, true);
        }
        let acr = join_tokens(&self.acr_values, is_acr_char);
        if !acr.is_empty() {
            push(&mut out, "acr_values", &acr, true);
        }
        if let Some(max_age) = self.max_age {
            // RFC 9470 §3: max_age is a non-negative integer, sent as a token.
            push(&mut out, "max_age", &max_age.to_string(), false);
        }
        if let Some(rm) = &self.resource_metadata {
            push(&mut out, "resource_metadata", &clean_quoted(rm), true);
        }
        let algs = join_tokens(&self.algs, is_scope_char);
        if !algs.is_empty() {
            push(&mut out, "algs", &algs, true);
        }
        out
    }

    /// The formatted challenge as a header value.
    pub fn to_header_value(&self) -> HeaderValue {
        // `format` only emits visible ASCII and spaces, which `HeaderValue` always accepts.
        HeaderValue::from_str(&self.format()).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    /// Parses a `WWW-Authenticate` value and returns its first `Bearer` challenge, if any.
    ///
    /// Accepts `max_age` both as a token (`max_age=300`) and as a quoted string
    /// (`max_age="300"`).
    /// A Bearer challenge that parsed completely is returned even when a later challenge of
    /// the same header is malformed.
    pub fn parse(header: &str) -> Result<Option<Self>, ChallengeParseError> {
        Self::parse_scheme(header, AuthScheme::Bearer)
    }

    /// As [`BearerChallenge::parse`], for the first challenge of `scheme` (e.g. the `DPoP`
    /// challenge of a response to a DPoP request, RFC 9449 §7.1).
    ///
    /// ```
    /// use stepup_tower::challenge::{AuthScheme, BearerChallenge};
    /// let h = r#"Bearer realm="bank", DPoP error="insufficient_user_authentication", acr_values="mfa", max_age=300, algs="ES256 EdDSA""#;
    /// let c = BearerChallenge::parse_scheme(h, AuthScheme::DPoP).unwrap().unwrap();
    /// assert!(c.is_step_up());
    /// assert_eq!(c.algs, ["ES256", "EdDSA"]);
    /// ```
    pub fn parse_scheme(header: &str, scheme: AuthScheme) -> Result<Option<Self>, ChallengeParseError> {
        let (all, err) = parse_prefix(header);
        if let Some(challenge) = all.iter().find(|c| AuthScheme::from_wire(&c.scheme) == Some(scheme)) {
            return Self::from_challenge(challenge).map(Some);
        }
        match err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Looks through every `WWW-Authenticate` header of a response for a `Bearer` challenge.
    pub fn from_headers(headers: &http::HeaderMap) -> Result<Option<Self>, ChallengeParseError> {
        Self::from_headers_for(headers, AuthScheme::Bearer)
    }

    /// Looks through every `WWW-Authenticate` header of a response for a challenge of `scheme`.
    pub fn from_headers_for(
        headers: &http::HeaderMap,
        scheme: AuthScheme,
    ) -> Result<Option<Self>, ChallengeParseError> {
        let mut first_err = None;
        for value in headers.get_all(http::header::WWW_AUTHENTICATE) {
            // A value that is not visible ASCII, or does not parse, does not hide the others.
            let Ok(text) = value.to_str() else {
                first_err.get_or_insert(ChallengeParseError::new("non-ASCII header", 0));
                continue;
            };
            match Self::parse_scheme(text, scheme) {
                Ok(Some(c)) => return Ok(Some(c)),
                Ok(None) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Reads the Bearer parameters out of a generic challenge.
    pub fn from_challenge(challenge: &Challenge) -> Result<Self, ChallengeParseError> {
        let mut out = Self {
            scheme: AuthScheme::from_wire(&challenge.scheme).unwrap_or_default(),
            ..Self::default()
        };
        for (name, value) in &challenge.params {
            match name.as_str() {
                "realm" => out.realm = Some(value.clone()),
                "error" => out.error = Some(ErrorCode::from_wire(value)),
                "error_description" => out.error_description = Some(value.clone()),
                "error_uri" => out.error_uri = Some(value.clone()),
                "scope" => out.scope = split_list(value),
                "acr_values" => out.acr_values = split_list(value),
                "max_age" => {
                    let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                    let parsed = if digits_only { value.parse::<u64>().ok() } else { None };
                    match parsed {
                        Some(v) => out.max_age = Some(v),
                        None => return Err(ChallengeParseError::new("max_age is not a non-negative integer", 0)),
                    }
                }
                "resource_metadata" => out.resource_metadata = Some(value.clone()),
                "algs" => out.algs = split_list(value),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Whether this challenge asks the client to authenticate again (RFC 9470).
    pub fn is_step_up(&self) -> bool {
        self.error == Some(ErrorCode::InsufficientUserAuthentication)
    }
}

impl fmt::Display for BearerChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format())
    }
}

fn split_list(value: &str) -> Vec<String> {
    value.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// RFC 6750 §3: `error`, `error_description`, `error_uri` use `%x20-21 / %x23-5B / %x5D-7E`.
fn is_error_char(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

/// RFC 6750 §3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
fn is_scope_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

/// An acr value is carried inside a quoted string as one space-free item: any visible ASCII.
fn is_acr_char(c: char) -> bool {
    c.is_ascii_graphic()
}

fn clean_error_text(s: &str) -> String {
    s.chars().filter(|c| is_error_char(*c)).collect()
}

/// Quoted-string content we are willing to send: visible ASCII and spaces (quoted-pair escapes
/// `"` and `\`); control characters and non-ASCII are dropped.
fn clean_quoted(s: &str) -> String {
    s.chars().filter(|c| *c == ' ' || c.is_ascii_graphic()).collect()
}

fn join_tokens(items: &[String], allowed: fn(char) -> bool) -> String {
    let mut out = String::new();
    for item in items {
        let clean: String = item.chars().filter(|c| allowed(*c)).collect();
        if clean.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&clean);
    }
    out
}

fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// One challenge of a `WWW-Authenticate` header, scheme-agnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Challenge {
    /// The auth-scheme as sent (compare case-insensitively).
    pub scheme: String,
    /// The token68 form (`Basic abc==`), when used instead of parameters.
    pub token68: Option<String>,
    /// Parameters in order, names lower-cased, quoted values unescaped.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of a parameter, by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A `WWW-Authenticate` value that does not follow RFC 9110 §11.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeParseError {
    reason: &'static str,
    at: usize,
}

impl ChallengeParseError {
    fn new(reason: &'static str, at: usize) -> Self {
        Self { reason, at }
    }

    /// What was wrong.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for ChallengeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed WWW-Authenticate at byte {}: {}", self.at, self.reason)
    }
}

impl std::error::Error for ChallengeParseError {}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §11.2 token68 characters (without the trailing `=`).
fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Scanner<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn skip_ows_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        // Only ASCII bytes pass the predicates used here.
        std::str::from_utf8(self.s.get(start..self.pos).unwrap_or_default()).unwrap_or_default()
    }

    fn err(&self, reason: &'static str) -> ChallengeParseError {
        ChallengeParseError::new(reason, self.pos)
    }

    fn quoted_string(&mut self) -> Result<String, ChallengeParseError> {
        // Caller saw the opening quote.
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated quoted-string")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b) if b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80 => {
                            out.push(b);
                            self.pos += 1;
                        }
                        _ => return Err(self.err("bad quoted-pair")),
                    }
                }
                Some(b) if b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80 => {
                    out.push(b);
                    self.pos += 1;
                }
                Some(_) => return Err(self.err("control character in quoted-string")),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("quoted-string is not UTF-8"))
    }
}

/// Parses every challenge of a `WWW-Authenticate` value (RFC 9110 §11.6.1).
///
/// Parameter names are lower-cased; a parameter that appears twice in one challenge is an
/// error (RFC 9110 §11.2).
pub fn parse_challenges(header: &str) -> Result<Vec<Challenge>, ChallengeParseError> {
    match parse_prefix(header) {
        (all, None) => Ok(all),
        (_, Some(e)) => Err(e),
    }
}

impl Scanner<'_> {
    /// Whether an auth-param (`token BWS "="`) starts here; the position is left unchanged.
    fn at_auth_param(&mut self) -> bool {
        let save = self.pos;
        let name_len = self.take_while(is_tchar).len();
        self.skip_ows();
        let yes = name_len > 0 && self.peek() == Some(b'=');
        self.pos = save;
        yes
    }
}

/// The challenges parsed before the first error, and that error.
fn parse_prefix(header: &str) -> (Vec<Challenge>, Option<ChallengeParseError>) {
    let mut sc = Scanner {
        s: header.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    let err = loop {
        sc.skip_ows_and_commas();
        if sc.peek().is_none() {
            break None;
        }
        let scheme = sc.take_while(is_tchar).to_string();
        if scheme.is_empty() {
            break Some(sc.err("expected an auth-scheme"));
        }
        let mut challenge = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        let had_space = matches!(sc.peek(), Some(b' '));
        while matches!(sc.peek(), Some(b' ')) {
            sc.pos += 1;
        }
        match sc.peek() {
            None => {
                out.push(challenge);
                break None;
            }
            Some(b',') => {
                // RFC 9110 §5.6.1: empty list elements are allowed, so `Bearer , realm="x"`
                // still gives Bearer its parameter; anything else starts the next challenge.
                let save = sc.pos;
                sc.skip_ows_and_commas();
                if !(had_space && sc.at_auth_param()) {
                    sc.pos = save;
                    out.push(challenge);
                    continue;
                }
            }
            Some(_) if !had_space => break Some(sc.err("expected a space after the auth-scheme")),
            Some(_) => {
                // token68?
                let start = sc.pos;
                let t68_body = sc.take_while(is_token68_char).len();
                let mut end = sc.pos;
                while sc.peek() == Some(b'=') {
                    sc.pos += 1;
                    end = sc.pos;
                }
                sc.skip_ows();
                if t68_body > 0 && matches!(sc.peek(), None | Some(b',')) {
                    challenge.token68 = header.get(start..end).map(str::to_string);
                    out.push(challenge);
                    continue;
                }
                sc.pos = start;
            }
        }
        // #auth-param
        match parse_params(&mut sc, &mut challenge) {
            Ok(more) => {
                out.push(challenge);
                if !more {
                    break None;
                }
            }
            Err(e) => break Some(e),
        }
    };
    (out, err)
}

/// Reads the auth-params of one challenge. `Ok(true)` when another challenge follows.
fn parse_params(sc: &mut Scanner<'_>, challenge: &mut Challenge) -> Result<bool, ChallengeParseError> {
    loop {
        let name = sc.take_while(is_tchar).to_ascii_lowercase();
        if name.is_empty() {
            return Err(sc.err("expected an auth-param name"));
        }
        sc.skip_ows();
        if sc.peek() != Some(b'=') {
            return Err(sc.err("expected '=' after an auth-param name"));
        }
        sc.pos += 1;
        sc.skip_ows();
        let value = match sc.peek() {
            Some(b'"') => sc.quoted_string()?,
            _ => {
                let v = sc.take_while(is_tchar).to_string();
                if v.is_empty() {
                    return Err(sc.err("expected a token or quoted-string value"));
                }
                v
            }
        };
        if challenge.params.iter().any(|(n, _)| *n == name) {
            return Err(sc.err("duplicate auth-param"));
        }
        challenge.params.push((name, value));
        sc.skip_ows();
        match sc.peek() {
            None => return Ok(false),
            Some(b',') => {}
            Some(_) => return Err(sc.err("expected ',' between auth-params")),
        }
        sc.skip_ows_and_commas();
        if sc.peek().is_none() {
            return Ok(false);
        }
        // Another param of this challenge, or the scheme of the next one?
        if !sc.at_auth_param() {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_step_up_challenge() {
        let c = BearerChallenge {
            realm: Some("bank".into()),
            error: Some(ErrorCode::InsufficientUserAuthentication),
            error_description: Some("stronger authentication required".into()),
            acr_values: vec!["http://schemas.openid.net/pape/policies/2007/06/multi-factor".into()],
            max_age: Some(300),
            ..Default::default()
        };
        assert_eq!(
            c.format(),
            "Bearer realm=\"bank\", error=\"insufficient_user_authentication\", \
             error_description=\"stronger authentication required\", \
             acr_values=\"http://schemas.openid.net/pape/policies/2007/06/multi-factor\", max_age=300"
        );
    }

    #[test]
    fn bare_challenge_has_no_error() {
        let c = BearerChallenge {
            realm: Some("api".into()),
            ..Default::default()
        };
        assert_eq!(c.format(), "Bearer realm=\"api\"");
        assert_eq!(BearerChallenge::new().format(), "Bearer");
    }

    #[test]
    fn attacker_text_cannot_forge_parameters() {
        let c = BearerChallenge {
            error: Some(ErrorCode::InvalidToken),
            error_description: Some("x\", error=\"none\r\nSet-Cookie: a=b\\".into()),
            realm: Some("r\"e\\alm\u{7f}\u{e9}".into()),
            ..Default::default()
        };
        let text = c.format();
        assert!(HeaderValue::from_str(&text).is_ok());
        let parsed = parse_challenges(&text).unwrap();
        assert_eq!(parsed.len(), 1);
        let p = BearerChallenge::from_challenge(&parsed[0]).unwrap();
        assert_eq!(p.error, Some(ErrorCode::InvalidToken));
        assert_eq!(p.error_description.as_deref(), Some("x, error=noneSet-Cookie: a=b"));
        assert_eq!(p.realm.as_deref(), Some("r\"e\\alm"));
    }

    #[test]
    fn parses_several_challenges_and_case() {
        let h = "Basic realm=\"x\", BEARER Realm=api,ERROR=\"invalid_token\" , Newauth abc==, DPoP algs=\"ES256\"";
        let all = parse_challenges(h).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[1].param("realm"), Some("api"));
        assert_eq!(all[2].token68.as_deref(), Some("abc=="));
        assert_eq!(all[3].param("algs"), Some("ES256"));
        let b = BearerChallenge::parse(h).unwrap().unwrap();
        assert_eq!(b.error, Some(ErrorCode::InvalidToken));
    }

    #[test]
    fn empty_list_elements_and_later_garbage() {
        let c = BearerChallenge::parse("Bearer , realm=\"x\", ,error=invalid_token")
            .unwrap()
            .unwrap();
        assert_eq!(c.realm.as_deref(), Some("x"));
        assert_eq!(c.error, Some(ErrorCode::InvalidToken));
        let all = parse_challenges("Bearer , Basic realm=x").unwrap();
        assert_eq!(all.len(), 2);
        let c = BearerChallenge::parse(
            "Bearer error=\"insufficient_user_authentication\", max_age=5, Foo a=\"unterminated",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.max_age, Some(5));
        assert!(parse_challenges("Bearer error=x, Foo a=\"unterminated").is_err());
        let mut h = http::HeaderMap::new();
        h.append(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_bytes(b"Foo \xe9").unwrap(),
        );
        h.append(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=r"),
        );
        assert_eq!(
            BearerChallenge::from_headers(&h).unwrap().unwrap().realm.as_deref(),
            Some("r")
        );
    }

    #[test]
    fn error_uri_has_no_spaces() {
        let c = BearerChallenge {
            error_uri: Some("https://e x/\"".into()),
            ..Default::default()
        };
        assert_eq!(c.format(), "Bearer error_uri=\"https://ex/\"");
    }

    #[test]
    fn max_age_token_or_quoted() {
        let a = BearerChallenge::parse("Bearer max_age=300").unwrap().unwrap();
        let b = BearerChallenge::parse("Bearer max_age=\"300\"").unwrap().unwrap();
        assert_eq!(a.max_age, Some(300));
        assert_eq!(b.max_age, Some(300));
        assert!(BearerChallenge::parse("Bearer max_age=\"-1\"").is_err());
        assert!(BearerChallenge::parse("Bearer max_age=abc").is_err());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "Bearer realm=\"unterminated",
            "Bearer a=1, =2",
            "Bearer a=1 b=2",
            "Bearer realm=a, realm=b",
            "Bearer realm=\"a\x01\"",
            "=x",
        ] {
            assert!(parse_challenges(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_challenges("").unwrap(), vec![]);
        assert_eq!(parse_challenges("Bearer").unwrap().len(), 1);
    }

    fn acr_value() -> impl Strategy<Value = String> {
        "[!-~]{1,40}"
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(
            acr in proptest::collection::vec(acr_value(), 0..4),
            desc in "[ -~]{0,60}",
            scope in proptest::collection::vec("[!#-\\[\\]-~]{1,20}", 0..4),
            realm in proptest::option::of("[ -~]{0,30}"),
            rm in proptest::option::of("[!-~]{1,60}"),
            max_age in proptest::option::of(any::<u64>()),
        ) {
            let c = BearerChallenge {
                realm,
                error: Some(ErrorCode::InsufficientUserAuthentication),
                error_description: Some(desc.clone()),
                error_uri: None,
                scope,
                acr_values: acr,
                max_age,
                resource_metadata: rm,
                ..BearerChallenge::default()
            };
            let parsed = BearerChallenge::parse(&c.format()).unwrap().unwrap();
            let mut want = c.clone();
            want.error_description = Some(clean_error_text(&desc));
            prop_assert_eq!(parsed, want);
        }

        #[test]
        fn header_always_valid(
            desc in any::<String>(),
            realm in any::<String>(),
            acr in proptest::collection::vec(any::<String>(), 0..3),
            scope in proptest::collection::vec(any::<String>(), 0..3),
        ) {
            let c = BearerChallenge {
                realm: Some(realm),
                error: Some(ErrorCode::Other(desc.clone())),
                error_description: Some(desc),
                scope,
                acr_values: acr,
                ..Default::default()
            };
            let text = c.format();
            prop_assert!(HeaderValue::from_str(&text).is_ok());
            let all = parse_challenges(&text).unwrap();
            prop_assert_eq!(all.len(), 1);
            let p = BearerChallenge::from_challenge(&all[0]).unwrap();
            if let Some(d) = p.error_description {
                prop_assert!(d.chars().all(is_error_char));
            }
            for s in p.scope {
                prop_assert!(s.chars().all(is_scope_char));
            }
        }

        #[test]
        fn parser_never_panics(s in any::<String>()) {
            let _ = parse_challenges(&s);
        }
    }
}
