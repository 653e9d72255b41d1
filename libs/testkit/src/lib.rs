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
mod values;

/// The built-in defaults with dev mode asked for, as `make run` and the tests do.
pub fn dev_settings() -> careloop_runtime::config::Settings {
    let mut settings = careloop_runtime::config::Settings::defaults();
    settings.auth.dev_mode = true;
    settings
}

/// Settings for a service under test: its own database, port 0, no events, no shutdown grace, and
/// dev mode (dev tokens accepted), which tests ask for explicitly like `make run`.
pub fn service_settings(database: &TestDatabase) -> careloop_runtime::config::Settings {
    let mut s = dev_settings();
    s.database.url = careloop_runtime::secret::Secret::new(database.service_url.clone());
    s.database.migration_url =
        careloop_runtime::secret::Secret::new(database.migration_url.clone());
    s.database.max_connections = 8;
    // A loaded 2-core CI machine may be slow; timeouts here are not what the tests measure.
    s.database.acquire_timeout_ms = 30_000;
    s.grpc.request_timeout_ms = 60_000;
    s.grpc.addr = "127.0.0.1:0".into();
    s.grpc.shutdown_grace_ms = 0;
    s.events.enabled = false;
    s
}

pub use database::{TestDatabase, admin_url, fresh_database};
pub use nats::{NatsServer, event_settings, remove_streams};
pub use pki::TestCa;
pub use postgres::PostgresServer;
pub use values::{count, in_hours, key, ts};
