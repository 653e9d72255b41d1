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
    pub events: EventSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GrpcSettings {
    /// Address to bind, e.g. "0.0.0.0:50051"; port 0 picks a free port (tests).
    pub addr: String,
    pub request_timeout_ms: u64,
    pub concurrency_limit: usize,
    /// After SIGTERM, health reports NOT_SERVING this long before in-flight calls drain, so load
    /// balancers and probes stop sending traffic first.
    pub shutdown_grace_ms: u64,
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

#[derive(Debug, Clone, Deserialize)]
pub struct EventSettings {
    /// Whether this process runs its outbox relay (and consumers) at all.
    pub enabled: bool,
    /// NATS server URL(s), comma separated.
    pub nats_url: String,
    /// The JetStream stream every CareLoop event goes to.
    pub stream: String,
    /// Subjects are "<prefix>.<service>.<aggregate>.<event>"; dead letters go to "<prefix>_dlq.<consumer>".
    pub subject_prefix: String,
    pub duplicate_window_secs: u64,
    pub max_age_hours: u64,
    /// -1 means unlimited.
    pub max_bytes: i64,
    pub replicas: usize,
    /// Outbox rows the relay publishes per round.
    pub relay_batch: i64,
    /// The relay polls this often even without a NOTIFY.
    pub relay_poll_ms: u64,
    pub publish_timeout_ms: u64,
    /// Published outbox rows, remembered idempotency keys and handled event ids are kept this long.
    pub outbox_retention_hours: u64,
    pub idempotency_retention_hours: u64,
    pub handled_retention_hours: u64,
}

/// The development signing key: printed tokens are signed with it. Production overrides it.
pub const DEV_HS256_SECRET: &str = "careloop-dev-signing-key-not-for-production";

const DEFAULTS: &str = r#"
[grpc]
addr = "127.0.0.1:50051"
request_timeout_ms = 10000
concurrency_limit = 256
shutdown_grace_ms = 2000

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

[events]
enabled = true
nats_url = "nats://127.0.0.1:4222"
stream = "CARELOOP"
subject_prefix = "careloop"
duplicate_window_secs = 600
max_age_hours = 720
max_bytes = -1
replicas = 1
relay_batch = 500
relay_poll_ms = 1000
publish_timeout_ms = 5000
outbox_retention_hours = 168
idempotency_retention_hours = 168
handled_retention_hours = 720

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

    /// A service's own section (e.g. `[referrals]`), layered like the shared settings: the service's
    /// defaults, then the file, then `CARELOOP__<SECTION>__<KEY>` variables.
    pub fn load_section<T: serde::de::DeserializeOwned>(
        file: Option<&str>,
        section: &str,
        defaults: &str,
    ) -> Result<T, config::ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(defaults, config::FileFormat::Toml));
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
            .get::<T>(section)
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
