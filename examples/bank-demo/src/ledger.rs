//! The in-memory ledger: accounts keyed by the token's `sub`, amounts in cents, every transfer
//! applied under one lock so money is never lost or duplicated.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Every account opens with 1,000.00 EUR.
pub const OPENING_BALANCE_CENTS: i64 = 100_000;

/// A transfer as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Transfer {
    /// Ledger-wide id.
    pub id: u64,
    /// `out` for the payer, `in` for an internal payee.
    pub direction: &'static str,
    /// Payer IBAN.
    pub from: String,
    /// Payee IBAN.
    pub to: String,
    /// Amount, e.g. `25.00`.
    pub amount: String,
    /// Seconds since the epoch.
    pub created_at: u64,
}

struct Account {
    iban: String,
    cents: i64,
    history: Vec<Transfer>,
}

/// A stored result of an idempotent request.
#[derive(Debug, Clone)]
pub struct Stored {
    fingerprint: String,
    /// The response body that was sent.
    pub body: serde_json::Value,
}

#[derive(Default)]
struct State {
    accounts: HashMap<String, Account>,
    by_iban: HashMap<String, String>,
    idempotent: HashMap<(String, String), Stored>,
    next_id: u64,
    external_out_cents: i64,
}

/// No account could be opened for a subject: the number derived for it already belongs to
/// another subject's account. Refused, never merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberTaken;

/// Why a transfer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    /// The payer has no account and none can be opened ([`NumberTaken`]).
    NoAccount,
    /// Not enough money.
    InsufficientFunds,
    /// Payer and payee are the same account.
    SelfTransfer,
    /// The idempotency key was used for another request.
    KeyReused,
}

/// The result of [`Ledger::transfer`].
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A new transfer and the payer's new balance.
    Done(Transfer, String),
    /// The same idempotent request again: the first answer.
    Replayed(serde_json::Value),
}

/// Derives an account number (an IBAN) from a subject.
pub type Numbering = fn(&str) -> String;

/// The bank's books.
pub struct Ledger {
    state: Mutex<State>,
    numbering: Numbering,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("accounts", &self.accounts())
            .finish_non_exhaustive()
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Self::with_numbering(iban_for)
    }
}

/// `12345` cents → `"123.45"`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// A positive amount with at most two decimals and at most 1,000,000,000.00: `"25"`, `"25.5"`,
/// `"25.00"`.
pub fn parse_amount(s: &str) -> Result<i64, &'static str> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || int.len() > 10 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err("amount must be a positive decimal number such as \"25.00\"");
    }
    if frac.len() > 2 || (s.contains('.') && frac.is_empty()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err("amount must have at most two decimals");
    }
    let units: i64 = int.parse().map_err(|_| "amount is too large")?;
    let cents_part: i64 = format!("{frac:0<2}")
        .parse()
        .map_err(|_| "amount must have at most two decimals")?;
    let cents = units
        .checked_mul(100)
        .and_then(|c| c.checked_add(cents_part))
        .ok_or("amount is too large")?;
    if cents <= 0 {
        return Err("amount must be greater than zero");
    }
    if cents > 100_000_000_000 {
        return Err("amount is too large");
    }
    Ok(cents)
}

/// An IBAN-like account id: two letters, two check digits, 11–30 letters or digits, and the
/// ISO 13616 mod-97 check. Spaces are ignored; letters are upper-cased.
pub fn normalize_iban(s: &str) -> Result<String, &'static str> {
    let iban: String = s.chars().filter(|c| *c != ' ').collect::<String>().to_ascii_uppercase();
    let b = iban.as_bytes();
    let ok_shape = (15..=34).contains(&b.len())
        && b.iter().take(2).all(u8::is_ascii_uppercase)
        && b.iter().skip(2).take(2).all(u8::is_ascii_digit)
        && b.iter().skip(4).all(u8::is_ascii_alphanumeric);
    if !ok_shape {
        return Err("to must be an IBAN such as DE89370400440532013000");
    }
    if mod97(&iban) != Some(1) {
        return Err("to has a wrong IBAN check digit");
    }
    Ok(iban)
}

fn mod97(iban: &str) -> Option<u32> {
    let rearranged = format!("{}{}", iban.get(4..)?, iban.get(..4)?);
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let v = c.to_digit(36)?;
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    Some(rem)
}

/// A stable, valid German-style IBAN for a `sub`: 18 digits from SHA-256 of the subject, so
/// that nobody can choose a `sub` to land on another's number (a collision is still checked
/// and refused when an account is opened).
pub fn iban_for(sub: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, sub.as_bytes());
    let mut first = [0u8; 8];
    for (d, s) in first.iter_mut().zip(digest.as_ref()) {
        *d = *s;
    }
    iban_from_number(u64::from_be_bytes(first))
}

/// The German-style IBAN whose 18-digit account part is `n` modulo 10^18.
pub fn iban_from_number(n: u64) -> String {
    let bban = format!("{:018}", n % 1_000_000_000_000_000_000);
    let check = 98 - mod97(&format!("DE00{bban}")).unwrap_or(0);
    format!("DE{check:02}{bban}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Ledger {
    /// An empty ledger numbering accounts with `numbering` (tests force collisions with it).
    pub fn with_numbering(numbering: Numbering) -> Self {
        Self {
            state: Mutex::new(State::default()),
            numbering,
        }
    }

    /// A ledger with the given users' accounts opened.
    pub fn with_users<'a>(subs: impl IntoIterator<Item = &'a str>) -> Self {
        Self::default().open(subs)
    }

    /// Opens the given users' accounts (a number already taken is left unopened).
    #[must_use]
    pub fn open<'a>(self, subs: impl IntoIterator<Item = &'a str>) -> Self {
        {
            let mut st = self.lock();
            for sub in subs {
                let _ = open(&mut st, sub, self.numbering);
            }
        }
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// IBAN and balance of `sub` (an account is opened for a new `sub`).
    pub fn balance(&self, sub: &str) -> Result<(String, String), NumberTaken> {
        let mut st = self.lock();
        let a = open(&mut st, sub, self.numbering)?;
        Ok((a.iban.clone(), format_cents(a.cents)))
    }

    /// Transfers of `sub`, newest first.
    pub fn history(&self, sub: &str) -> Result<Vec<Transfer>, NumberTaken> {
        let mut st = self.lock();
        let a = open(&mut st, sub, self.numbering)?;
        Ok(a.history.iter().rev().cloned().collect())
    }

    /// Sum of all balances plus money sent outside the bank, in cents (constant for a given
    /// set of accounts).
    pub fn total_cents(&self) -> i64 {
        let st = self.lock();
        st.accounts.values().map(|a| a.cents).sum::<i64>() + st.external_out_cents
    }

    /// Number of open accounts.
    pub fn accounts(&self) -> usize {
        self.lock().accounts.len()
    }

    /// Moves `cents` from `sub` to `to` (an IBAN; internal when it belongs to an account here,
    /// external otherwise). With an idempotency key, a repeated identical request returns the
    /// first answer and moves nothing.
    pub fn transfer(
        &self,
        sub: &str,
        to: &str,
        cents: i64,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, TransferError> {
        let mut st = self.lock();
        let fingerprint = format!("{to}|{cents}");
        if let Some(key) = idempotency_key
            && let Some(stored) = st.idempotent.get(&(sub.to_string(), key.to_string()))
        {
            return if stored.fingerprint == fingerprint {
                Ok(Outcome::Replayed(stored.body.clone()))
            } else {
                Err(TransferError::KeyReused)
            };
        }
        let numbering = self.numbering;
        let (from_iban, payer_cents) = match open(&mut st, sub, numbering) {
            Ok(a) => (a.iban.clone(), a.cents),
            Err(NumberTaken) => return Err(TransferError::NoAccount),
        };
        if from_iban == to {
            return Err(TransferError::SelfTransfer);
        }
        if payer_cents < cents {
            return Err(TransferError::InsufficientFunds);
        }
        st.next_id += 1;
        let id = st.next_id;
        let t = Transfer {
            id,
            direction: "out",
            from: from_iban,
            to: to.to_string(),
            amount: format_cents(cents),
            created_at: now(),
        };
        let payee = st.by_iban.get(to).cloned();
        let new_balance = match st.accounts.get_mut(sub) {
            Some(payer) => {
                payer.cents -= cents;
                payer.history.push(t.clone());
                format_cents(payer.cents)
            }
            None => return Err(TransferError::NoAccount),
        };
        match payee.and_then(|p| st.accounts.get_mut(&p)) {
            Some(p) => {
                p.cents += cents;
                p.history.push(Transfer {
                    direction: "in",
                    ..t.clone()
                });
            }
            None => st.external_out_cents += cents,
        }
        if let Some(key) = idempotency_key {
            let body = serde_json::json!({ "transfer": t, "balance": new_balance });
            st.idempotent
                .insert((sub.to_string(), key.to_string()), Stored { fingerprint, body });
        }
        Ok(Outcome::Done(t, new_balance))
    }
}

/// The account of `sub`, opened (with the opening balance) when missing. An account number
/// that already belongs to another subject is refused: never overwritten, never shared.
fn open<'a>(st: &'a mut State, sub: &str, numbering: Numbering) -> Result<&'a mut Account, NumberTaken> {
    if !st.accounts.contains_key(sub) {
        let iban = numbering(sub);
        if st.by_iban.contains_key(&iban) {
            tracing::error!(iban = %iban, "account number collision: no account opened for a new subject");
            return Err(NumberTaken);
        }
        st.by_iban.insert(iban.clone(), sub.to_string());
        st.accounts.insert(
            sub.to_string(),
            Account {
                iban,
                cents: OPENING_BALANCE_CENTS,
                history: Vec::new(),
            },
        );
    }
    st.accounts.get_mut(sub).ok_or(NumberTaken)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("25.00"), Ok(2500));
        assert_eq!(parse_amount("25"), Ok(2500));
        assert_eq!(parse_amount("0.5"), Ok(50));
        for bad in [
            "0",
            "0.00",
            "-1",
            "1.234",
            "abc",
            "",
            ".5",
            "5.",
            "1e3",
            " 5",
            "99999999999",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ibans() {
        assert_eq!(
            normalize_iban("DE89 3704 0044 0532 0130 00"),
            Ok("DE89370400440532013000".into())
        );
        assert!(normalize_iban("DE88370400440532013000").is_err());
        assert!(normalize_iban("12345").is_err());
        for sub in ["alice", "bob", "auth0|5f7c8ec7c33c6c004bbafe82", ""] {
            assert!(normalize_iban(&iban_for(sub)).is_ok(), "{sub}");
        }
    }

    #[test]
    fn transfers_conserve_money() {
        let l = Ledger::with_users(["alice", "bob"]);
        let bob = iban_for("bob");
        assert!(matches!(l.transfer("alice", &bob, 2500, None), Ok(Outcome::Done(_, ref b)) if b == "975.00"));
        assert_eq!(l.balance("bob").unwrap().1, "1025.00");
        assert_eq!(
            l.transfer("alice", &iban_for("alice"), 1, None).unwrap_err(),
            TransferError::SelfTransfer
        );
        assert_eq!(
            l.transfer("alice", &bob, 1_000_000, None).unwrap_err(),
            TransferError::InsufficientFunds
        );
        assert!(matches!(
            l.transfer("alice", "DE89370400440532013000", 100, Some("k")),
            Ok(Outcome::Done(..))
        ));
        assert!(matches!(
            l.transfer("alice", "DE89370400440532013000", 100, Some("k")),
            Ok(Outcome::Replayed(_))
        ));
        assert_eq!(
            l.transfer("alice", "DE89370400440532013000", 200, Some("k"))
                .unwrap_err(),
            TransferError::KeyReused
        );
        assert_eq!(l.total_cents(), 2 * OPENING_BALANCE_CENTS);
    }

    #[test]
    fn a_number_collision_is_refused_not_merged() {
        fn same(_: &str) -> String {
            iban_from_number(42)
        }
        let l = Ledger::with_numbering(same);
        let (iban, balance) = l.balance("alice").unwrap();
        assert_eq!(balance, "1000.00");
        // Another subject lands on the same number: refused, alice's account untouched.
        assert_eq!(l.balance("mallory"), Err(NumberTaken));
        assert_eq!(l.history("mallory"), Err(NumberTaken));
        assert_eq!(
            l.transfer("mallory", &iban, 100, None).unwrap_err(),
            TransferError::NoAccount
        );
        assert_eq!(l.accounts(), 1);
        assert_eq!(l.balance("alice").unwrap(), (iban, "1000.00".to_string()));
    }
}
