//! Compiles `proto/bank.proto` with protox (a pure-Rust protobuf compiler: no system `protoc`)
//! into prost messages and the tonic service, and keeps the encoded descriptor set for the
//! reflection service.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/bank.proto");
    let fds = protox::compile(["bank.proto"], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("bank_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure()
        // No `connect` helper: it needs tonic's transport; clients pass their own channel.
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
