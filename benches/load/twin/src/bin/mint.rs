//! Token minter for benches/load/run.sh.
//!
//! ```text
//! mint kid JWKS_FILE
//!     prints the `kid` of the first key of a JWK Set document
//! mint tokens --key KEY.pem --kid KID --iss ISSUER --count N --sub-prefix P [--aud bank-api]
//!             [--unknown-kid]
//!     prints N RFC 9068 access tokens, one a line: header {"alg":"ES256","typ":"at+jwt","kid":KID}
//!     (with --unknown-kid: a distinct kid "unknown-<i>-<nonce>" per token, absent from the JWKS),
//!     claims iss, aud, sub = P<i>, exp = now + 3600, iat, auth_time, acr "loa1", amr ["pwd"],
//!     scope "openid accounts", client_id "bank-spa", jti (distinct per token and per run).
//! ```
//! KEY.pem is a PKCS#8 P-256 private key (`openssl genpkey -algorithm EC -pkeyopt
//! ec_paramgen_curve:P-256`), the same file given to the demo as DEV_PROVIDER_KEY_FILE.

use std::io::{BufWriter, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

fn usage() -> ! {
    eprintln!(
        "usage: mint kid JWKS_FILE\n       mint tokens --key KEY.pem --kid KID --iss ISSUER --count N --sub-prefix P [--aud AUD] [--unknown-kid]"
    );
    std::process::exit(2)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("mint: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("kid") => {
            let path = args.get(1).unwrap_or_else(|| usage());
            let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
            let kid = doc["keys"][0]["kid"]
                .as_str()
                .ok_or("the JWK Set's first key has no kid")?;
            println!("{kid}");
            Ok(())
        }
        Some("tokens") => tokens(&args[1..]),
        _ => usage(),
    }
}

fn tokens(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let (mut key, mut kid, mut iss, mut count, mut prefix) = (None, None, None, None, None);
    let mut aud = "bank-api".to_string();
    let mut unknown_kid = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--key" => key = Some(value()),
            "--kid" => kid = Some(value()),
            "--iss" => iss = Some(value()),
            "--aud" => aud = value(),
            "--count" => count = Some(value().parse::<usize>()?),
            "--sub-prefix" => prefix = Some(value()),
            "--unknown-kid" => unknown_kid = true,
            _ => usage(),
        }
    }
    let (Some(key), Some(kid), Some(iss), Some(count), Some(prefix)) = (key, kid, iss, count, prefix) else {
        usage()
    };
    let key = EncodingKey::from_ec_pem(&std::fs::read(&key)?)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let (secs, nonce) = (now.as_secs(), now.as_nanos() % 1_000_000_000_000);
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    for i in 0..count {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(if unknown_kid {
            format!("unknown-{i}-{nonce}")
        } else {
            kid.clone()
        });
        let claims = json!({
            "iss": iss,
            "aud": aud,
            "sub": format!("{prefix}{i}"),
            "exp": secs + 3600,
            "iat": secs,
            "auth_time": secs,
            "acr": "loa1",
            "amr": ["pwd"],
            "scope": "openid accounts",
            "client_id": "bank-spa",
            "jti": format!("{prefix}{i}-{nonce}"),
        });
        writeln!(out, "{}", encode(&header, &claims, &key)?)?;
    }
    out.flush()?;
    Ok(())
}
