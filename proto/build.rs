//! Compiles `proto/porta/v1/porta.proto` (the network API) and
//! `proto/porta/local/v1/local.proto` (the tunnel service's local API) with protox (a pure-Rust protobuf
//! compiler), so building Porta needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/porta/v1/porta.proto";
    let local = "proto/porta/local/v1/local.proto";
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-changed={local}");
    let descriptors = protox::compile([proto, local], ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("porta_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .server_mod_attribute("porta.v1", "#[cfg(feature = \"server\")]")
        .compile_fds(descriptors)?;
    Ok(())
}
