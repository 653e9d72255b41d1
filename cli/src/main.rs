//! `careloop`: the command-line client over the same gRPC API, for people, demos and SREs.

mod commands;
mod demo;
mod metrics;
mod notifications;
mod priorauth;
mod referrals;

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = commands::Cli::parse();
    if let Err(err) = commands::run(cli).await {
        if let Some(status) = err.downcast_ref::<tonic::Status>() {
            eprintln!("error: {:?}: {}", status.code(), status.message());
            std::process::exit(1);
        }
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
