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
    pub tls: TlsSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GrpcSettings {
    /// Address to bind, e.g. "0.0.0.0:50051"; port 0 picks a free port (tests).
    pub addr: String,
    pub request_timeout_ms: u64,
    pub concurrency_limit: usize,
    /// Calls one principal may have in flight; more are refused RESOURCE_EXHAUSTED.
    pub per_principal_concurrency: usize,
    /// The largest request message a service decodes.
    pub max_message_bytes: usize,
    /// After SIGTERM, health reports NOT_SERVING this long before in-flight calls drain, so load
    /// balancers and probes stop sending traffic first.
    pub shutdown_grace_ms: u64,
    /// Serve TLS with the workload certificate of `[tls]`.
    pub tls: bool,
    /// Whether callers are asked for a certificate (verified against `tls.ca_file`): services
    /// present one and are known by it; users authenticate with bearer tokens.
    pub client_auth: crate::tls::ClientAuth,
}

/// This workload's identity for every TLS hop: served to gRPC callers and presented to other
/// services and NATS. The files are re-read every `reload_secs` (0 disables), so a renewed
/// certificate applies without a restart.
#[derive(Debug, Clone, Deserialize)]
pub struct TlsSettings {
    pub cert_file: String,
    pub key_file: String,
    /// The CA bundle that signs CareLoop workload certificates; verifies peers.
    pub ca_file: String,
    pub reload_secs: u64,
}

impl TlsSettings {
    /// A client that verifies servers with `ca_file` and presents no certificate (a user's client,
    /// a probe of a public endpoint); an empty `ca_file` means none configured.
    pub fn ca_only(ca_file: impl Into<String>) -> Self {
        Self {
            cert_file: String::new(),
            key_file: String::new(),
            ca_file: ca_file.into(),
            reload_secs: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    /// Address of the Prometheus text endpoint; empty disables it.
    pub addr: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// Connection URL of the service's own (runtime) Postgres role.
    pub url: Secret,
    /// Connection URL of the role that owns the schema and runs migrations. When set, the runtime
    /// role gets only the rights it needs (on the audit log: insert and select, never update,
    /// delete, truncate or disabling its trigger); when empty, the runtime role migrates (dev).
    pub migration_url: Secret,
    /// Run migrations when the service starts. The chart turns it off and runs
    /// `<service> --migrate-only` in an init container instead, so the serving container never
    /// holds the owner's credential.
    pub migrate_at_start: bool,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    /// Every statement of a service session is cancelled after this long (0 disables).
    pub statement_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// Dev mode trusts the published development key (HS256) for every principal kind and prints a
    /// dev token. Off unless asked for: `make run` and the tests turn it on.
    pub dev_mode: bool,
    /// The issuer of dev tokens (dev mode only).
    pub dev_issuer: String,
    /// The dev signing key (dev mode only; never accepted otherwise).
    pub hs256_secret: Secret,
    /// The audience tokens must name for this service; empty means `careloop-<service>`.
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway_secs: u64,
    /// Tokens living longer than this (`exp - iat`) are refused, whoever signed them.
    pub max_token_lifetime_secs: u64,
    /// Workload identities are certificate SAN URIs `spiffe://<trust_domain>/service/<name>`.
    pub trust_domain: String,
    /// The services (by certificate identity) allowed to call this one, for themselves or on
    /// behalf of a user.
    pub callers: Vec<String>,
    /// Identity providers whose user tokens are trusted, and what each may assert.
    #[serde(default)]
    pub issuers: Vec<IssuerSettings>,
}

/// One trusted identity provider: where its keys are, which principal kinds it may assert and how
/// the organization and roles are read from its tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct IssuerSettings {
    /// The `iss` value of its tokens.
    pub issuer: String,
    /// Fetch `<issuer>/.well-known/openid-configuration` for the `jwks_uri`.
    #[serde(default)]
    pub discovery: bool,
    #[serde(default)]
    pub jwks_url: String,
    #[serde(default)]
    pub jwks_file: String,
    /// Principal kinds this issuer may assert (staff, partner, caregiver, payer; never service).
    pub kinds: Vec<crate::auth::PrincipalKind>,
    /// The claim naming the kind when `kinds` has several; with one kind it is that kind.
    #[serde(default)]
    pub kind_claim: String,
    /// A fixed organization for every token of this issuer (a partner's own IdP), or ...
    #[serde(default)]
    pub org_id: String,
    /// ... the claim holding the organization id (a hospital IdP serving several organizations).
    #[serde(default)]
    pub org_claim: String,
    /// With `org_claim`: the organizations this issuer may assert; empty means any.
    #[serde(default)]
    pub allowed_orgs: Vec<String>,
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Overrides `auth.max_token_lifetime_secs` downwards for this issuer.
    #[serde(default)]
    pub max_token_lifetime_secs: Option<u64>,
    /// Keys are fetched again this often, and at once (at most every 10 s) on an unknown `kid`.
    #[serde(default = "default_refresh_secs")]
    pub refresh_secs: u64,
    /// The CA of the issuer's HTTPS endpoint; empty uses the system's roots.
    #[serde(default)]
    pub ca_file: String,
}

fn default_roles_claim() -> String {
    "roles".into()
}

fn default_refresh_secs() -> u64 {
    300
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    /// "json" or "pretty".
    pub log_format: String,
    pub log_level: String,
    /// OTLP gRPC endpoint such as "https://otel-collector:4317" (TLS) or "http://127.0.0.1:4317";
    /// empty disables export.
    pub otlp_endpoint: String,
    /// The CA of an https collector; empty uses `tls.ca_file`, or the system's roots without one.
    pub otlp_ca_file: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventSettings {
    /// Whether this process runs its outbox relay (and consumers) at all.
    pub enabled: bool,
    /// NATS server URL(s), comma separated.
    pub nats_url: String,
    /// Require TLS to NATS: its certificate verified with `ca_file` (or `tls.ca_file`), the
    /// workload certificate presented when there is one.
    pub tls: bool,
    /// Empty takes `tls.ca_file`.
    pub ca_file: String,
    /// The client certificate presented to NATS; empty takes the workload's `[tls]` pair.
    pub cert_file: String,
    pub key_file: String,
    /// This service's NATS user; its permissions cover only its own subjects.
    pub user: String,
    pub password: Secret,
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

/// The development signing key: published, so accepted only in dev mode, where printed tokens and
/// test tokens are signed with it.
pub const DEV_HS256_SECRET: &str = "careloop-dev-signing-key-not-for-production";

const DEFAULTS: &str = r#"
[grpc]
addr = "127.0.0.1:50051"
request_timeout_ms = 10000
concurrency_limit = 256
per_principal_concurrency = 32
max_message_bytes = 1048576
shutdown_grace_ms = 2000
tls = false
client_auth = "optional"

[tls]
cert_file = ""
key_file = ""
ca_file = ""
reload_secs = 60

[metrics]
addr = ""

[database]
url = "postgres://postgres@127.0.0.1:5432/careloop"
migration_url = ""
migrate_at_start = true
max_connections = 10
acquire_timeout_ms = 5000
statement_timeout_ms = 15000

[auth]
dev_mode = false
dev_issuer = "careloop-dev"
hs256_secret = ""
audience = ""
leeway_secs = 30
max_token_lifetime_secs = 3600
trust_domain = "careloop"
callers = ["plans", "referrals", "prior-auth", "notifications", "metrics", "gateway"]
issuers = []

[events]
enabled = true
nats_url = "nats://127.0.0.1:4222"
tls = false
ca_file = ""
cert_file = ""
key_file = ""
user = ""
password = ""
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
otlp_ca_file = ""
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
            .try_deserialize::<Self>()
            .map(Self::resolved)
    }

    /// Fills the per-hop TLS files left empty from the workload's `[tls]` section, so one
    /// certificate and one CA serve every hop unless a hop says otherwise.
    pub fn resolved(mut self) -> Self {
        if self.events.ca_file.is_empty() {
            self.events.ca_file = self.tls.ca_file.clone();
        }
        if self.events.cert_file.is_empty() && self.events.key_file.is_empty() {
            self.events.cert_file = self.tls.cert_file.clone();
            self.events.key_file = self.tls.key_file.clone();
        }
        if self.telemetry.otlp_ca_file.is_empty() {
            self.telemetry.otlp_ca_file = self.tls.ca_file.clone();
        }
        self
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

    /// A service section's built-in defaults alone (tests adjust them); panics if the service's
    /// own defaults do not parse, which its tests catch at once.
    pub fn section_defaults<T: serde::de::DeserializeOwned>(section: &str, defaults: &str) -> T {
        config::Config::builder()
            .add_source(config::File::from_str(defaults, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.get(section))
            .unwrap_or_else(|e| panic!("built-in [{section}] defaults are invalid: {e}"))
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

/// Whether the command line asks only to migrate the schema and exit (`--migrate-only`).
pub fn migrate_only_flag() -> bool {
    std::env::args().any(|a| a == "--migrate-only")
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
    fn defaults_parse_with_dev_mode_off_and_no_signing_key() {
        let s = Settings::defaults();
        assert!(!s.auth.dev_mode);
        assert!(s.auth.hs256_secret.expose().is_empty());
        assert!(s.auth.issuers.is_empty());
    }

    #[test]
    fn an_empty_caller_list_in_the_file_means_no_caller_not_the_default() {
        let path =
            std::env::temp_dir().join(format!("careloop-config-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, "[auth]\ncallers = []\n").unwrap();
        let settings = Settings::load(Some(path.to_str().unwrap())).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(settings.auth.callers.is_empty());
    }

    #[test]
    fn per_hop_tls_files_default_to_the_workload_certificate() {
        let mut s = Settings::defaults();
        s.tls.ca_file = "/etc/careloop/tls/ca.crt".into();
        s.tls.cert_file = "/etc/careloop/tls/tls.crt".into();
        s.tls.key_file = "/etc/careloop/tls/tls.key".into();
        let s = s.resolved();
        assert_eq!(s.events.ca_file, "/etc/careloop/tls/ca.crt");
        assert_eq!(s.events.cert_file, "/etc/careloop/tls/tls.crt");
        assert_eq!(s.telemetry.otlp_ca_file, "/etc/careloop/tls/ca.crt");
    }

    #[test]
    fn a_configured_key_never_prints() {
        let mut s = Settings::defaults();
        s.auth.hs256_secret = Secret::new(DEV_HS256_SECRET);
        assert!(!format!("{s:?}").contains(DEV_HS256_SECRET));
    }
}
