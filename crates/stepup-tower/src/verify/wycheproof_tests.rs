//! Project Wycheproof vectors (vendored under tests/vectors/wycheproof) driven through our key
//! loading and verification path. Every case gets its expected verdict, or is listed in
//! `DIFFERENCES` with the reason we differ. Unit tests: they drive `verify_jws` and
//! `Key::verify_message`, which are not public API.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout
)]

use super::{DEFAULT_ALGORITHMS, verify_jws};
use crate::keys::KeySet;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/wycheproof/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// (file, tcId, why our verdict differs).
const DIFFERENCES: &[(&str, u64, &str)] = &[
    (
        "json_web_key_test.json",
        2,
        "a JWK Set of symmetric (`oct`) keys: we never take HMAC keys from a key set (RFC 8725 §3.1: \
         a key is bound to its algorithm; a kid never selects a secret); \
         HMAC needs a secret configured explicitly for the issuer",
    ),
    (
        "json_web_signature_test.json",
        346,
        "RFC 7520 key declares alg PS256, token says PS384: a JWK's own alg must equal the header's (RFC 8725 §3.1)",
    ),
    ("json_web_signature_test.json", 350, "same as 346"),
    (
        "json_web_signature_test.json",
        347,
        "ES512 (P-521) is not supported by jsonwebtoken",
    ),
    ("json_web_signature_test.json", 351, "same as 347"),
    (
        "json_web_signature_test.json",
        367,
        "the vector's JWS is byte-identical to tcId 357 (valid); the padding it names is absent from the file",
    ),
    (
        "json_web_signature_test.json",
        370,
        "byte-identical to tcId 357 (valid), as 367",
    ),
    (
        "json_web_signature_test.json",
        372,
        "a `?` inside a segment: we accept only base64url characters (RFC 7515 §2, RFC 4648 §5)",
    ),
    ("json_web_signature_test.json", 373, "same as 372, in the payload"),
];

fn known(file: &str, id: u64) -> bool {
    DIFFERENCES.iter().any(|(f, i, _)| *f == file && *i == id)
}

/// The key material of a group as our users would configure it: asymmetric keys as a JWK (Set),
/// a lone `oct` key as an explicit HMAC secret bound to its `alg`.
fn keys_for(jwk_or_set: &Value) -> (Option<KeySet>, Vec<Algorithm>) {
    let keys: Vec<Value> = match jwk_or_set.get("keys") {
        Some(Value::Array(k)) => k.clone(),
        _ => vec![jwk_or_set.clone()],
    };
    if keys.len() == 1 && keys[0]["kty"] == "oct" {
        let k = &keys[0];
        let alg = k["alg"].as_str().and_then(|a| a.parse::<Algorithm>().ok());
        let secret = k["k"].as_str().and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
        let usable = k.get("use").is_none_or(|u| u == "sig");
        return match (alg, secret) {
            (Some(alg @ (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)), Some(secret)) if usable => {
                (KeySet::from_hmac_secret(&secret).ok(), vec![alg])
            }
            _ => (None, vec![]),
        };
    }
    // Public parts only: a verifier is configured with public keys.
    let public: Vec<Value> = keys
        .into_iter()
        .map(|mut k| {
            if let Some(o) = k.as_object_mut() {
                for private in ["d", "p", "q", "dp", "dq", "qi"] {
                    o.remove(private);
                }
            }
            k
        })
        .collect();
    let doc = serde_json::json!({ "keys": public });
    (
        KeySet::from_jwks_json(doc.to_string().as_bytes()).ok(),
        DEFAULT_ALGORITHMS.to_vec(),
    )
}

fn token_text(jws: &Value) -> String {
    match jws {
        Value::String(s) => s.clone(),
        other => other.to_string(), // JSON serialization: must be refused
    }
}

fn run_jws_file(file: &str) -> (usize, Vec<String>) {
    let doc = load(file);
    let mut ran = 0;
    let mut wrong = Vec::new();
    for group in doc["testGroups"].as_array().unwrap() {
        let material = group.get("public").or_else(|| group.get("private"));
        let (keys, algs) = material.map(keys_for).unwrap_or((None, vec![]));
        for t in group["tests"].as_array().unwrap() {
            let id = t["tcId"].as_u64().unwrap();
            let expected_valid = match t["result"].as_str().unwrap() {
                "valid" => true,
                "invalid" => false,
                _ => continue,
            };
            ran += 1;
            let token = token_text(&t["jws"]);
            let got = match &keys {
                Some(k) => verify_jws(&token, k, &algs),
                None => Err(crate::VerifyError::KeyNotFound { kid: None }),
            };
            if got.is_ok() != expected_valid && !known(file, id) {
                wrong.push(format!(
                    "{file} tcId {id} ({}): expected {}, got {got:?}",
                    t["comment"], t["result"]
                ));
            }
            if known(file, id) {
                assert_ne!(
                    got.is_ok(),
                    expected_valid,
                    "{file} tcId {id} is listed as a difference but now agrees"
                );
            }
        }
    }
    (ran, wrong)
}

#[test]
fn json_web_signature_vectors() {
    let (ran, wrong) = run_jws_file("json_web_signature_test.json");
    assert!(ran >= 400, "ran {ran}");
    assert!(wrong.is_empty(), "{} disagreements:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn json_web_key_vectors() {
    let (ran, wrong) = run_jws_file("json_web_key_test.json");
    assert_eq!(ran, 26);
    assert!(wrong.is_empty(), "{} disagreements:\n{}", wrong.len(), wrong.join("\n"));
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn raw_signature_vectors() {
    let files = [
        ("ecdsa_secp256r1_sha256_p1363_test.json", Algorithm::ES256),
        ("ecdsa_secp384r1_sha384_p1363_test.json", Algorithm::ES384),
        ("ed25519_test.json", Algorithm::EdDSA),
        ("rsa_signature_2048_sha256_test.json", Algorithm::RS256),
        ("rsa_pss_2048_sha256_mgf1_32_test.json", Algorithm::PS256),
    ];
    let mut wrong = Vec::new();
    let mut summary = Vec::new();
    for (file, alg) in files {
        let doc = load(file);
        let (mut ran, mut groups_without_jwk) = (0, 0);
        for group in doc["testGroups"].as_array().unwrap() {
            let Some(jwk) = group.get("publicKeyJwk").or_else(|| group.get("keyJwk")) else {
                groups_without_jwk += 1;
                continue;
            };
            let (keys, _) = keys_for(jwk);
            let keys = keys.unwrap_or_else(|| panic!("{file}: group key did not load: {jwk}"));
            let key = keys
                .keys()
                .next()
                .unwrap_or_else(|| panic!("{file}: key skipped: {:?}", keys.skipped()));
            for t in group["tests"].as_array().unwrap() {
                let expected_valid = match t["result"].as_str().unwrap() {
                    "valid" => true,
                    "invalid" => false,
                    _ => continue,
                };
                ran += 1;
                let ok = key.verify_message(alg, &hex(t["msg"].as_str().unwrap()), &hex(t["sig"].as_str().unwrap()));
                if ok != expected_valid {
                    wrong.push(format!(
                        "{file} tcId {} ({}): expected {}",
                        t["tcId"], t["comment"], t["result"]
                    ));
                }
            }
        }
        assert!(ran > 50, "{file}: only {ran} cases ran");
        summary.push(format!(
            "{file}: {ran} cases, {groups_without_jwk} groups without a JWK"
        ));
    }
    println!("{}", summary.join("\n"));
    assert!(wrong.is_empty(), "{} disagreements:\n{}", wrong.len(), wrong.join("\n"));
}
