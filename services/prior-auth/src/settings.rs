//! The prior-auth service's own settings (section `[prior_auth]`), beside the shared ones.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct PriorAuthSettings {
    /// The plans service, asked whether a caller may read or write a patient.
    pub plans_addr: String,
    /// Calendar days (standard decisions) are counted in this IANA time zone.
    pub time_zone: String,
    /// Approvals whose validity ends within this many days are reported once as expiring.
    pub expiring_within_days: i64,
    pub sweep_interval_ms: u64,
    /// How long the owner role has to act on a draft, a pended request or a denial.
    pub owner_due_hours: i64,
    /// When an appeal decision is due: [standard, expedited] hours.
    pub appeal_due_hours: [i64; 2],
    /// The payer directory: payer id (as requests name it) -> the organization id its principals
    /// carry. Only that organization's payer principals record the payer's decisions.
    #[serde(default)]
    pub payers: std::collections::HashMap<String, String>,
}

impl PriorAuthSettings {
    /// The organization of the payer a request names, from the payer directory.
    pub fn payer_org(&self, payer_id: &str) -> Option<uuid::Uuid> {
        self.payers
            .get(payer_id)
            .and_then(|org| uuid::Uuid::parse_str(org).ok())
    }
}

pub const DEFAULTS: &str = r#"
[prior_auth]
plans_addr = "http://127.0.0.1:50051"
time_zone = "America/New_York"
expiring_within_days = 14
sweep_interval_ms = 60000
owner_due_hours = 48
appeal_due_hours = [720, 72]
"#;

impl PriorAuthSettings {
    pub fn load(file: Option<&str>) -> Result<Self, config::ConfigError> {
        careloop_runtime::config::Settings::load_section(file, "prior_auth", DEFAULTS)
    }

    pub fn defaults() -> Self {
        careloop_runtime::config::Settings::section_defaults("prior_auth", DEFAULTS)
    }

    pub fn zone(&self) -> anyhow::Result<chrono_tz::Tz> {
        self.time_zone.parse().map_err(|_| {
            anyhow::anyhow!(
                "prior_auth.time_zone {:?} is not an IANA time zone",
                self.time_zone
            )
        })
    }
}
