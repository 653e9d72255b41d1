//! The referrals service's own settings (section `[referrals]`), beside the shared ones.

use crate::domain::due::ReferralDue;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct ReferralSettings {
    /// The plans service, asked whether a caller may read or write a patient.
    pub plans_addr: String,
    /// A lab or imaging order repeating the same test within this many days needs an override reason.
    pub duplicate_window_days: i64,
    /// How often the overdue sweeper runs.
    pub sweep_interval_ms: u64,
    /// Whether this replica consumes events for pathway rules.
    pub pathways_enabled: bool,
    pub due: ReferralDue,
}

pub const DEFAULTS: &str = r#"
[referrals]
plans_addr = "http://127.0.0.1:50051"
duplicate_window_days = 30
sweep_interval_ms = 30000
pathways_enabled = true

[referrals.due]
accept_hours = [72, 48, 24]
schedule_hours = [336, 72, 24]
note_hours = [168, 72, 24]
visit_grace_hours = 24
no_show_hours = 48
"#;

impl ReferralSettings {
    pub fn load(file: Option<&str>) -> Result<Self, config::ConfigError> {
        careloop_runtime::config::Settings::load_section(file, "referrals", DEFAULTS)
    }

    /// The built-in defaults alone (tests adjust them).
    pub fn defaults() -> Self {
        careloop_runtime::config::Settings::section_defaults("referrals", DEFAULTS)
    }
}
