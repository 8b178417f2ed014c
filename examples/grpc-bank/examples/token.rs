//! Prints an access token of a running `grpc-bank` (or `bank-demo`) with its embedded dev
//! provider, for grpcurl: logs a demo user in (authorization code + PKCE, password, and the
//! TOTP code from the user's printed secret with `--mfa`). Development only.
//!
//! ```text
//! cargo run -p grpc-bank --example token -- [--mfa] [--user alice] [--url http://127.0.0.1:8080]
//! ```
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const VERIFIER: &str = "ZGV2LW9ubHktdG9rZW4taGVscGVyLXBrY2UtdmVyaWZpZXI";

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("token: {e}");
        std::process::exit(1);
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn param(location: &str, name: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| dec(v))
}

fn dec(s: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(c) = bytes.next() {
        let hex = (c == b'%')
            .then(|| bytes.clone().take(2).map(char::from).collect::<String>())
            .and_then(|h| u8::from_str_radix(&h, 16).ok());
        match (c, hex) {
            (_, Some(h)) => {
                out.push(h);
                bytes.nth(1);
            }
            (b'+', None) => out.push(b' '),
            (c, None) => out.push(c),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Browser {
    /// Sends `req` with the cookies kept so far; keeps the new ones; returns `Location`.
    async fn send(&mut self, req: reqwest::RequestBuilder) -> Res<(reqwest::StatusCode, String, String)> {
        let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let res = req.header(COOKIE, jar.join("; ")).send().await?;
        for sc in res.headers().get_all(SET_COOKIE) {
            if let Some((k, v)) = sc.to_str()?.split(';').next().and_then(|kv| kv.split_once('=')) {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let location = res
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok((res.status(), location, res.text().await?))
    }

    async fn form(&mut self, url: &str, form: &[(&str, &str)]) -> Res<(reqwest::StatusCode, String, String)> {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
        let req = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.join("&"));
        self.send(req).await
    }
}

async fn run() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut user, mut mfa) = ("http://127.0.0.1:8080".to_string(), "alice".to_string(), false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mfa" => mfa = true,
            "--user" => user = args.next().ok_or("--user needs a name")?,
            "--url" => {
                url = args
                    .next()
                    .ok_or("--url needs a URL")?
                    .trim_end_matches('/')
                    .to_string()
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let demo = dev_provider::demo_users()
        .into_iter()
        .find(|u| u.username == user)
        .ok_or_else(|| format!("no demo user {user:?}"))?;
    let mut b = Browser {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        cookies: HashMap::new(),
    };
    let redirect_uri = format!("{url}/");
    let challenge =
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()).as_ref());
    let mut q = format!(
        "response_type=code&client_id=bank-spa&redirect_uri={}&scope=openid%20accounts&state=cli\
         &code_challenge={challenge}&code_challenge_method=S256",
        enc(&redirect_uri)
    );
    if mfa {
        q.push_str(&format!("&acr_values={}", enc(dev_provider::MFA_ACR)));
    }
    let (_, mut location, _) = b.send(b.http.get(format!("{url}/idp/authorize?{q}"))).await?;
    for _ in 0..4 {
        if location.starts_with(&format!("{redirect_uri}?")) {
            break;
        }
        let req = param(&location, "req").ok_or_else(|| format!("unexpected redirect {location:?}"))?;
        let (status, next, body) = if location.contains("/idp/login") {
            b.form(
                &format!("{url}/idp/login"),
                &[
                    ("req", &req),
                    ("username", &demo.username),
                    ("password", &demo.password),
                ],
            )
            .await?
        } else if location.contains("/idp/mfa") {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let code = dev_provider::totp_for(&demo.totp_secret, &demo.username)?
                .generate(now)
                .to_string();
            b.form(&format!("{url}/idp/mfa"), &[("req", &req), ("code", &code)])
                .await?
        } else {
            return Err(format!("unexpected redirect {location:?}").into());
        };
        if next.is_empty() {
            return Err(format!("{status}: {}", body.chars().take(200).collect::<String>()).into());
        }
        location = next;
    }
    let code = param(&location, "code").ok_or_else(|| format!("no code in {location:?}"))?;
    let (status, _, body) = b
        .form(
            &format!("{url}/idp/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect_uri),
                ("client_id", "bank-spa"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await?;
    let tokens: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}"))?;
    let token = tokens
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("{status}: no access_token"))?;
    println!("{token}");
    Ok(())
}
