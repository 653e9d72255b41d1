//! The notifications service's own settings (section `[notifications]`), beside the shared ones.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct NotificationSettings {
    /// The plans service, asked who may read a patient's audit trail here.
    pub plans_addr: String,
    /// How often the escalation sweeper looks.
    pub sweep_interval_ms: u64,
    /// Whether this replica consumes events (routing them to inboxes).
    pub router_enabled: bool,
    /// Most events the router applies in one transaction.
    pub router_batch: usize,
    /// Watchers re-read the feed at least this often, should a wake-up be lost.
    pub watch_poll_ms: u64,
    pub webhooks: WebhookSettings,
    pub email: EmailSettings,
    pub sms: SmsSettings,
    /// An urgent or critical item nobody holding its role opened within this long of reaching the
    /// inbox gets the fallback text to the role's on-duty members.
    pub fallback_after_minutes: u32,
    /// How often queued email and SMS notices are sent, tries per notice, and the first wait.
    pub message_dispatch_interval_ms: u64,
    pub message_max_attempts: i32,
    pub message_first_backoff_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmailSettings {
    /// Off: email notices are recorded as failed ("not configured").
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub from: String,
    /// STARTTLS before anything else (required when on; never falls back to plain text).
    pub starttls: bool,
    pub username: String,
    pub password: careloop_runtime::secret::Secret,
    /// CA bundle for the SMTP server's certificate (empty: the system's roots).
    pub ca_file: String,
    pub timeout_ms: u64,
    /// The name given in EHLO.
    pub helo: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SmsSettings {
    pub enabled: bool,
    /// The provider's send endpoint (JSON POST {"to", "text"}, bearer token).
    pub url: String,
    pub token: careloop_runtime::secret::Secret,
    pub ca_file: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// How often due deliveries are sent.
    pub dispatch_interval_ms: u64,
    /// Tries per delivery before it is failed (a resend grants as many again).
    pub max_attempts: i32,
    /// Failed deliveries in a row (each having used up its tries) after which an endpoint is
    /// disabled until re-enabled.
    pub disable_after: i32,
    pub first_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// One POST, connection to answer.
    pub timeout_ms: u64,
    /// CA bundle for endpoints' certificates (empty: the system's roots).
    pub ca_file: String,
    /// Plain http endpoints (local tests only; never in production).
    pub allow_http: bool,
}

pub const DEFAULTS: &str = r#"
[notifications]
plans_addr = "http://127.0.0.1:50051"
sweep_interval_ms = 15000
router_enabled = true
router_batch = 100
watch_poll_ms = 1000

fallback_after_minutes = 10
message_dispatch_interval_ms = 1000
message_max_attempts = 5
message_first_backoff_ms = 10000

[notifications.email]
enabled = false
host = "127.0.0.1"
port = 587
from = "careloop@localhost"
starttls = true
username = ""
password = ""
ca_file = ""
timeout_ms = 15000
helo = "careloop"

[notifications.sms]
enabled = false
url = ""
token = ""
ca_file = ""
timeout_ms = 10000

[notifications.webhooks]
dispatch_interval_ms = 1000
max_attempts = 8
disable_after = 5
first_backoff_ms = 5000
max_backoff_ms = 3600000
timeout_ms = 10000
ca_file = ""
allow_http = false
"#;

impl NotificationSettings {
    pub fn load(file: Option<&str>) -> Result<Self, config::ConfigError> {
        careloop_runtime::config::Settings::load_section(file, "notifications", DEFAULTS)
    }

    /// The built-in defaults alone (tests adjust them).
    pub fn defaults() -> Self {
        careloop_runtime::config::Settings::section_defaults("notifications", DEFAULTS)
    }
}
