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
    let (listener, local, origin) = bank_demo::listen_from_env().await?;
    let app = grpc_bank::build(&config, &origin).await?;
    println!();
    println!("  stepup-tower demo bank: {origin}/  (HTTP/1.1 and HTTP/2)");
    println!(
        "  gRPC:                   {} on {local} (plaintext h2c, reflection on)",
        grpc_bank::SERVICE_NAME
    );
    println!("  issuer:                 {}", app.bank.issuer);
    print!("{}", bank_demo::demo_users_text(app.bank.provider.as_ref()));
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
