//! `cargo run -p bank-demo`: the demo bank with its embedded OpenID provider.
#![allow(clippy::print_stdout)]

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    if let Err(e) = run().await {
        eprintln!("bank-demo: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let config = bank_demo::Config::from_env()?;
    let addr = std::env::var("BANK_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let origin = std::env::var("BANK_PUBLIC_URL").unwrap_or_else(|_| format!("http://{local}"));
    let bank = bank_demo::build(&config, &origin).await?;
    println!();
    println!("  stepup-tower demo bank: {origin}/");
    println!("  issuer:                 {}", bank.issuer);
    if let Some(p) = &bank.provider {
        println!();
        println!("  Demo users (embedded dev provider; development only):");
        for u in dev_provider::demo_users() {
            println!(
                "    {:<6} password {:<14} TOTP secret {}",
                u.username, u.password, u.totp_secret
            );
            if let Some(uri) = p.otpauth_uri(&u.username) {
                println!("           {uri}");
            }
        }
        println!("  Current code: cargo run -p dev-provider --example totp -- alice");
    }
    println!();
    println!("  Balance needs any login; a transfer needs a second factor within 300 s.");
    println!();
    axum::serve(listener, bank.router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
