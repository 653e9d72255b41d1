//! Layered configuration: built-in defaults, then an optional file (`--config` or `CARELOOP_CONFIG`),
//! then environment variables `CARELOOP__SECTION__KEY`.

use crate::secret::Secret;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub grpc: GrpcSettings,
    pub metrics: MetricsSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub telemetry: TelemetrySettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GrpcSettings {
    /// Address to bind, e.g. "0.0.0.0:50051"; port 0 picks a free port (tests).
    pub addr: String,
    pub request_timeout_ms: u64,
    pub concurrency_limit: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    /// Address of the Prometheus text endpoint; empty disables it.
    pub addr: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// Connection URL of the service's own Postgres role.
    pub url: Secret,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub issuer: String,
    pub audience: String,
    /// Shared HS256 key (dev mode and service-to-service in small installs).
    pub hs256_secret: Secret,
    /// PEM public key for RS256 tokens from the identity provider; empty when unused.
    pub rs256_public_key_pem: String,
    /// Dev mode prints a dev token at start; never enable in production.
    pub dev_mode: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    /// "json" or "pretty".
    pub log_format: String,
    pub log_level: String,
    /// OTLP gRPC endpoint such as "http://otel-collector:4317"; empty disables export.
    pub otlp_endpoint: String,
}

/// The development signing key: printed tokens are signed with it. Production overrides it.
pub const DEV_HS256_SECRET: &str = "careloop-dev-signing-key-not-for-production";

const DEFAULTS: &str = r#"
[grpc]
addr = "127.0.0.1:50051"
request_timeout_ms = 10000
concurrency_limit = 256

[metrics]
addr = ""

[database]
url = "postgres://postgres@127.0.0.1:5432/careloop"
max_connections = 10
acquire_timeout_ms = 5000

[auth]
issuer = "careloop-dev"
audience = "careloop"
hs256_secret = "careloop-dev-signing-key-not-for-production"
rs256_public_key_pem = ""
dev_mode = true

[telemetry]
log_format = "pretty"
log_level = "info"
otlp_endpoint = ""
"#;

impl Settings {
    /// Loads defaults, then `file` (or `CARELOOP_CONFIG`), then `CARELOOP__*` variables.
    pub fn load(file: Option<&str>) -> Result<Self, config::ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        let file = file
            .map(str::to_owned)
            .or_else(|| std::env::var("CARELOOP_CONFIG").ok());
        if let Some(path) = file {
            builder = builder.add_source(config::File::with_name(&path));
        }
        builder
            .add_source(
                config::Environment::with_prefix("CARELOOP")
                    .prefix_separator("__")
                    .separator("__"),
            )
            .build()?
            .try_deserialize()
    }

    /// The built-in defaults alone, for tests that then override fields.
    pub fn defaults() -> Self {
        config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("built-in defaults are valid")
    }
}

/// The value of `--config <file>` on the command line, if given.
pub fn config_flag() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--config=").map(str::to_owned))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_keep_the_dev_key_secret() {
        let s = Settings::defaults();
        assert_eq!(s.auth.hs256_secret.expose(), DEV_HS256_SECRET);
        assert!(!format!("{s:?}").contains(DEV_HS256_SECRET));
    }
}
