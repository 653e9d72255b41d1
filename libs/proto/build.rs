//! Compiles every proto under /proto with protox (no system protoc) and writes the descriptor set
//! that services hand to gRPC reflection.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "careloop/audit/v1/audit.proto",
        "careloop/common/v1/common.proto",
        "careloop/events/v1/events.proto",
        "careloop/plans/v1/plans.proto",
        "careloop/referrals/v1/referrals.proto",
        "careloop/priorauth/v1/priorauth.proto",
        "careloop/notifications/v1/notifications.proto",
        "careloop/metrics/v1/metrics.proto",
        "careloop/gateway/v1/gateway.proto",
    ];
    let paths: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    let fds = protox::compile(&paths, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("careloop_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // Type names (`prost::Name`) let clients print any message through reflection (the CLI's
    // JSON and human views).
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds_with_config(fds, config)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
