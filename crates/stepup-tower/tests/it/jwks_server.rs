//! A JWKS / discovery server on 127.0.0.1 that the tests control: what it serves, how it fails.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
#[allow(dead_code)]
pub enum Mode {
    Ok,
    Status(u16),
    Close,
    Garbage,
    Html,
    Huge,
    RedirectTo(String),
    Hang(Duration),
    /// JSON, but not a JWK Set.
    NotAJwkSet,
}

pub struct State {
    pub mode: Mode,
    pub jwks: Value,
    pub cache_control: Option<String>,
    pub discovery: Option<Value>,
}

pub struct JwksServer {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut v = serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(key, alg).unwrap()).unwrap();
    v["kid"] = json!(kid);
    v["use"] = json!("sig");
    v
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Ok,
            jwks: json!({ "keys": keys }),
            cache_control: None,
            discovery: None,
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (state.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (s, h) = (s.clone(), h.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, s, h).await;
                });
            }
        });
        Self {
            addr,
            state,
            hits,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    pub fn issuer(&self) -> String {
        self.url("")
    }

    /// JWKS requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        self.state.lock().unwrap().jwks = json!({ "keys": keys });
    }

    pub fn set_cache_control(&self, v: Option<&str>) {
        self.state.lock().unwrap().cache_control = v.map(str::to_string);
    }

    pub fn serve_discovery(&self, issuer: &str) {
        self.state.lock().unwrap().discovery = Some(json!({
            "issuer": issuer,
            "jwks_uri": self.url("/jwks"),
            "authorization_endpoint": self.url("/authorize"),
        }));
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>, hits: Arc<AtomicUsize>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (mode, jwks, cc, discovery) = {
        let s = state.lock().unwrap();
        (
            s.mode.clone(),
            s.jwks.clone(),
            s.cache_control.clone(),
            s.discovery.clone(),
        )
    };
    if path == "/.well-known/openid-configuration" {
        return match discovery {
            Some(d) => respond(&mut stream, 200, "application/json", None, d.to_string().as_bytes()).await,
            None => respond(&mut stream, 404, "text/plain", None, b"not found").await,
        };
    }
    if path != "/jwks" {
        return respond(&mut stream, 404, "text/plain", None, b"not found").await;
    }
    hits.fetch_add(1, Ordering::SeqCst);
    if let Mode::Hang(d) = mode {
        tokio::time::sleep(d).await;
    }
    match mode {
        Mode::Ok | Mode::Hang(_) => {
            respond(
                &mut stream,
                200,
                "application/json",
                cc.as_deref(),
                jwks.to_string().as_bytes(),
            )
            .await
        }
        Mode::NotAJwkSet => respond(&mut stream, 200, "application/json", None, br#"{"keys":"none"}"#).await,
        Mode::Status(code) => respond(&mut stream, code, "application/json", None, b"{}").await,
        Mode::Close => Ok(()),
        Mode::Garbage => respond(&mut stream, 200, "application/json", None, b"<<<not json>>>").await,
        Mode::Html => respond(&mut stream, 200, "text/html", None, b"<html>login</html>").await,
        Mode::Huge => {
            // No Content-Length: the client must cap what it reads.
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
                .await?;
            stream.write_all(b"{\"keys\":[").await?;
            let filler = vec![b' '; 64 * 1024];
            for _ in 0..160 {
                stream.write_all(&filler).await?;
            }
            Ok(())
        }
        Mode::RedirectTo(to) => {
            let r = format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            stream.write_all(r.as_bytes()).await
        }
    }
}

async fn respond(stream: &mut TcpStream, status: u16, ct: &str, cc: Option<&str>, body: &[u8]) -> std::io::Result<()> {
    let cc = cc.map(|v| format!("Cache-Control: {v}\r\n")).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n{cc}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}
