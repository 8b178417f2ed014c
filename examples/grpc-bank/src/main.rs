//! `cargo run -p grpc-bank`: the demo bank's HTTP API and its gRPC service (`bank.v1.Bank`)
//! on one port, HTTP/1.1 and HTTP/2 (h2c), with the embedded OpenID provider unless
//! `STEPUP_ISSUER` names another. The same environment as `examples/bank-demo`.
#![allow(clippy::print_stdout)]

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    if let Err(e) = run().await {
        eprintln!("grpc-bank: {e}");
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
    let app = grpc_bank::build(&config, &origin).await?;
    println!();
    println!("  stepup-tower demo bank: {origin}/  (HTTP/1.1 and HTTP/2)");
    println!(
        "  gRPC:                   {} on {local} (plaintext h2c, reflection on)",
        grpc_bank::SERVICE_NAME
    );
    println!("  issuer:                 {}", app.bank.issuer);
    if let Some(p) = &app.bank.provider {
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
    println!("  GetBalance needs any login; Transfer needs a second factor within 300 s.");
    println!("  grpcurl -plaintext {local} list");
    println!();
    // axum's server speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one listener.
    axum::serve(listener, app.router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
