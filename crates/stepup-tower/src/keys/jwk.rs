//! JWK and JWK Set parsing (RFC 7517, RFC 7518 §6, RFC 8037).
//!
//! Parsing is tolerant per key and strict per field: a key we cannot use (unknown `kty` or `crv`,
//! `use` other than `sig`, `key_ops` without `verify`, a symmetric `oct` key, a malformed or weak
//! key) is skipped with its reason, and the rest of the set still loads.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde_json::Value;

use super::{Key, KeyError, KeyKind, SkippedKey};

/// Smallest RSA modulus we accept (RFC 7518 §3.3: 2048 bits or larger).
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus we accept: bounds the cost of a verification.
pub(crate) const MAX_RSA_BITS: usize = 8192;

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<Value>,
}

/// Parses a JWK Set document. Fails only when the document itself is not a JWK Set; keys that
/// cannot be used are returned in the second list with the reason.
pub(crate) fn parse_set(json: &[u8]) -> Result<(Vec<Key>, Vec<SkippedKey>), KeyError> {
    let raw: RawSet = serde_json::from_slice(json).map_err(|e| KeyError::InvalidJwkSet(e.to_string()))?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for value in raw.keys {
        let kid = value.get("kid").and_then(Value::as_str).map(str::to_string);
        match parse_key(&value) {
            Ok(k) => keys.push(k),
            Err(reason) => skipped.push(SkippedKey { kid, reason }),
        }
    }
    Ok((keys, skipped))
}

fn str_field<'a>(v: &'a Value, name: &str) -> Result<Option<&'a str>, String> {
    match v.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{name}` is not a string")),
    }
}

fn required<'a>(v: &'a Value, name: &str) -> Result<&'a str, String> {
    str_field(v, name)?.ok_or_else(|| format!("`{name}` is missing"))
}

fn b64(v: &Value, name: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(required(v, name)?)
        .map_err(|_| format!("`{name}` is not base64url"))
}

/// Parses one public JWK into a verification key.
pub(crate) fn parse_key(v: &Value) -> Result<Key, String> {
    if !v.is_object() {
        return Err("not a JSON object".into());
    }
    let kty = required(v, "kty")?;
    let kid = str_field(v, "kid")?.map(str::to_string);
    if let Some(u) = str_field(v, "use")?
        && u != "sig"
    {
        return Err(format!("`use` is {u:?}, not \"sig\""));
    }
    if let Some(ops) = v.get("key_ops") {
        let ops = ops.as_array().ok_or("`key_ops` is not an array")?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Err("`key_ops` does not allow \"verify\"".into());
        }
    }
    let alg = match str_field(v, "alg")? {
        None => None,
        Some(a) => Some(super::parse_alg(a).ok_or_else(|| format!("unsupported `alg` {a:?}"))?),
    };
    // A public key set must not carry private material (RFC 7517 §8.1.1 hygiene): refuse
    // rather than hold secrets we have no use for.
    if v.get("d").is_some() {
        return Err("private key material (`d`) in a public key set".into());
    }
    let (kind, decoding) = match kty {
        "RSA" => {
            let n = b64(v, "n")?;
            let e = b64(v, "e")?;
            let n_trim = strip_zeros(&n);
            let Some(first) = n_trim.first() else {
                return Err("RSA modulus is zero".into());
            };
            let bits = n_trim.len() * 8 - first.leading_zeros() as usize;
            if bits < MIN_RSA_BITS {
                return Err(format!("RSA modulus of {bits} bits is below {MIN_RSA_BITS}"));
            }
            if bits > MAX_RSA_BITS {
                return Err(format!("RSA modulus of {bits} bits is above {MAX_RSA_BITS}"));
            }
            if roca_fingerprint(n_trim) {
                return Err("RSA modulus has the ROCA fingerprint (CVE-2017-15361)".into());
            }
            let e_trim = strip_zeros(&e);
            // An odd exponent of at least 3 that fits in 64 bits (e = 1 makes "signatures" trivial).
            let e_value = e_trim.iter().take(9).fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
            if e_trim.len() > 8 || e_value < 3 || e_value % 2 == 0 {
                return Err("RSA exponent is not an odd number of at least 3".into());
            }
            (
                KeyKind::Rsa { bits },
                DecodingKey::from_rsa_raw_components(n_trim, e_trim),
            )
        }
        "EC" => {
            let crv = required(v, "crv")?;
            let (kind, len) = match crv {
                "P-256" => (KeyKind::P256, 32),
                "P-384" => (KeyKind::P384, 48),
                other => return Err(format!("unsupported EC curve {other:?}")),
            };
            let x = b64(v, "x")?;
            let y = b64(v, "y")?;
            // RFC 7518 §6.2.1.2: coordinates are the full field length.
            if x.len() != len || y.len() != len {
                return Err(format!("{crv} coordinates must be {len} bytes"));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (kind, DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            let crv = required(v, "crv")?;
            if crv != "Ed25519" {
                return Err(format!("unsupported OKP curve {crv:?}"));
            }
            let x = b64(v, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 public key must be 32 bytes".into());
            }
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&x))
        }
        "oct" => return Err("symmetric (`oct`) keys are never taken from a key set".into()),
        other => return Err(format!("unsupported kty {other:?}")),
    };
    if let Some(alg) = alg
        && !kind.supports(alg)
    {
        return Err(format!("`alg` {alg:?} does not match the key type"));
    }
    Ok(Key::new(kid, kind, alg, decoding))
}

/// The ROCA test (Nemec et al., CCS 2017): moduli generated by the vulnerable Infineon library
/// are, modulo each of these small primes, in the subgroup generated by 65537. A random modulus
/// passes all of them with negligible probability.
fn roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107,
        109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let residue = n.iter().fold(0u32, |acc, b| (acc * 256 + u32::from(*b)) % p);
        // Walk the subgroup generated by 65537 mod p.
        let g = 65537 % p;
        let mut x = 1u32;
        for _ in 0..p {
            if x == residue {
                return true;
            }
            x = x * g % p;
        }
        false
    })
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|x| **x == 0).count();
    b.get(n..).unwrap_or_default()
}
