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
    let (listener, _, origin) = bank_demo::listen_from_env().await?;
    let bank = bank_demo::build(&config, &origin).await?;
    println!();
    println!("  stepup-tower demo bank: {origin}/");
    println!("  issuer:                 {}", bank.issuer);
    print!("{}", bank_demo::demo_users_text(bank.provider.as_ref()));
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
