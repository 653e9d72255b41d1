//! The metrics service's own settings (section `[metrics]`).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    /// The plans service, asked who may read a patient's audit trail here.
    pub plans_addr: String,
    /// Whether this replica consumes events (keeping what the measures read).
    pub recorder_enabled: bool,
    /// How often the measure gauges on `/metrics` are recomputed.
    pub gauge_interval_ms: u64,
}

pub const DEFAULTS: &str = r#"
[metrics]
plans_addr = "http://127.0.0.1:50051"
recorder_enabled = true
gauge_interval_ms = 60000
"#;

impl MetricsSettings {
    pub fn load(file: Option<&str>) -> Result<Self, config::ConfigError> {
        careloop_runtime::config::Settings::load_section(file, "metrics", DEFAULTS)
    }

    pub fn defaults() -> Self {
        careloop_runtime::config::Settings::section_defaults("metrics", DEFAULTS)
    }
}
