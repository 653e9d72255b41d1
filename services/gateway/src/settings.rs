//! The gateway's own settings (section `[gateway]`): where each downstream is, how long a call may
//! take, how much a caller may ask, and which browser origins may call through gRPC-Web.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct GatewaySettings {
    /// Each downstream's address. A DNS name resolving to several addresses (a headless Service)
    /// gets one connection per replica, balanced round robin and re-resolved every
    /// `resolve_interval_ms`.
    pub plans_addr: String,
    pub referrals_addr: String,
    pub prior_auth_addr: String,
    pub notifications_addr: String,
    pub resolve_interval_ms: u64,
    /// The longest one downstream call may take, within the caller's own deadline.
    pub call_timeout_ms: u64,
    /// The deadline given to calls whose caller set none.
    pub default_deadline_ms: u64,
    /// Kept back from the caller's deadline so the gateway can still answer in time.
    pub deadline_margin_ms: u64,
    /// Requests per second and burst per organization and per principal (issuer, organization,
    /// subject); per-organization overrides live in the `api_clients` table.
    pub org_rate_per_sec: f64,
    pub org_burst: u32,
    pub principal_rate_per_sec: f64,
    pub principal_burst: u32,
    /// How long an access decision from plans is reused (care-team and consent events drop it sooner).
    pub access_cache_ttl_ms: u64,
    /// Reads are retried once on UNAVAILABLE while retries stay under this share of calls.
    pub retry_budget_ratio: f64,
    /// Consecutive failures that open a downstream's circuit, and how long it stays open.
    pub breaker_failures: u32,
    pub breaker_open_ms: u64,
    /// Browser origins allowed to call through gRPC-Web (`*` for any; empty for none).
    pub cors_allowed_origins: Vec<String>,
    /// Where channel providers' HTTP callbacks are received (`POST /callbacks/sms`); empty: off.
    pub callbacks_addr: String,
    /// The Standard Webhooks secret agreed with the SMS provider ("whsec_" + base64).
    pub sms_callback_secret: careloop_runtime::secret::Secret,
}

pub const DEFAULTS: &str = r#"
[gateway]
plans_addr = "http://127.0.0.1:50051"
referrals_addr = "http://127.0.0.1:50052"
prior_auth_addr = "http://127.0.0.1:50053"
notifications_addr = "http://127.0.0.1:50054"
resolve_interval_ms = 15000
call_timeout_ms = 3000
default_deadline_ms = 10000
deadline_margin_ms = 50
org_rate_per_sec = 500.0
org_burst = 1000
principal_rate_per_sec = 100.0
principal_burst = 200
access_cache_ttl_ms = 10000
retry_budget_ratio = 0.2
breaker_failures = 5
breaker_open_ms = 5000
cors_allowed_origins = []
callbacks_addr = ""
sms_callback_secret = ""
"#;

impl GatewaySettings {
    pub fn load(file: Option<&str>) -> Result<Self, config::ConfigError> {
        careloop_runtime::config::Settings::load_section(file, "gateway", DEFAULTS)
    }

    pub fn defaults() -> Self {
        careloop_runtime::config::Settings::section_defaults("gateway", DEFAULTS)
    }
}
