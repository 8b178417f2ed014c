//! Prints the current TOTP code (RFC 6238: SHA-1, 6 digits, 30 s) of a demo user or of a base32
//! secret, the way the dev provider checks it — no authenticator app or `oathtool` needed:
//!
//! ```sh
//! cargo run -p dev-provider --example totp -- alice
//! cargo run -p dev-provider --example totp -- JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP
//! ```
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let Some(arg) = std::env::args().nth(1) else {
        eprintln!("usage: totp <demo user | base32 secret>   (demo users: alice, bob)");
        return ExitCode::from(2);
    };
    let secret = dev_provider::demo_users()
        .into_iter()
        .find(|u| u.username == arg)
        .map_or(arg.clone(), |u| u.totp_secret);
    let totp = match dev_provider::totp_for(&secret, "demo") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("totp: {e}");
            return ExitCode::from(2);
        }
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    println!("{}  (valid for {} more s)", totp.generate(now), 30 - now % 30);
    ExitCode::SUCCESS
}
