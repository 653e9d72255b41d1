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
    /// Watchers re-read the feed at least this often, should a wake-up be lost.
    pub watch_poll_ms: u64,
}

pub const DEFAULTS: &str = r#"
[notifications]
plans_addr = "http://127.0.0.1:50051"
sweep_interval_ms = 15000
router_enabled = true
watch_poll_ms = 1000
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
