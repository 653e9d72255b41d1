//! Test support shared by every crate's integration tests: fresh databases with per-service roles,
//! private NATS servers that tests may stop and restart, and isolated event streams.

pub mod callers;
pub mod cases;
mod database;
mod nats;
pub mod pki;
pub mod postgres;
#[cfg(feature = "plans")]
pub mod services;

/// The built-in defaults with dev mode asked for, as `make run` and the tests do.
pub fn dev_settings() -> careloop_runtime::config::Settings {
    let mut settings = careloop_runtime::config::Settings::defaults();
    settings.auth.dev_mode = true;
    settings
}

pub use database::{TestDatabase, admin_url, fresh_database};
pub use nats::{NatsServer, event_settings, remove_streams};
pub use pki::TestCa;
pub use postgres::PostgresServer;
