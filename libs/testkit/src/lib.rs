//! Test support shared by every crate's integration tests: fresh databases with per-service roles,
//! private NATS servers that tests may stop and restart, and isolated event streams.

mod database;
mod nats;
#[cfg(feature = "plans")]
pub mod services;

pub use database::{TestDatabase, admin_url, fresh_database};
pub use nats::{NatsServer, event_settings, remove_streams};
