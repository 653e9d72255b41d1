//! What every CareLoop service shares: configuration, telemetry, the database, the gRPC server
//! bootstrap, the one error-to-status mapping, authentication, audit, the outbox, idempotency,
//! input validation, paging and operational metrics.

pub mod access;
pub mod audit;
pub mod audit_service;
pub mod auth;
pub mod client;
pub mod config;
pub mod conn;
pub mod db;
pub mod error;
pub mod events;
pub mod http;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod paging;
pub mod secret;
pub mod server;
pub mod service;
pub mod signing;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod validate;
pub mod write;

pub use error::ApiError;
