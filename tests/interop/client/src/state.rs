//! The state file through which a phase hands over to the next one.

use serde_json::{Value, json};

use crate::Res;
use crate::oidc::{PublicKey, kids};

/// What a phase hands over to the next one through the state file.
#[derive(Debug, Clone)]
pub(crate) struct Handover {
    /// The provider's signing keys during the phase.
    pub keys: Vec<PublicKey>,
    /// The balance after the phase's transfer.
    pub balance: Option<String>,
    /// An access token signed with one of `keys` that read the balance.
    pub token: Option<String>,
}

impl Handover {
    pub(crate) fn save(&self, path: &str) -> Res<()> {
        let material: serde_json::Map<String, Value> =
            self.keys.iter().map(|k| (k.kid.clone(), json!(k.material))).collect();
        let state = json!({
            "kids": kids(&self.keys),
            "material": material,
            "balance": self.balance,
            "old_token": self.token,
        });
        std::fs::write(path, state.to_string()).map_err(|e| format!("{path}: {e}"))
    }

    pub(crate) fn load(path: &str) -> Res<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let state: Value = serde_json::from_str(&text).map_err(|e| format!("state file {path}: {e}"))?;
        let text_of = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let keys = state
            .get("kids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|kid| PublicKey {
                        kid: kid.to_string(),
                        material: text_of(state.get("material").and_then(|m| m.get(kid))).unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            keys,
            balance: text_of(state.get("balance")),
            token: text_of(state.get("old_token")),
        })
    }
}
