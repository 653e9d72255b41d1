//! Service tests: the real plans service on a port-0 server against a fresh database on the real
//! local Postgres, called through the generated tonic client.

mod abuse;
mod access;
mod audit_outbox;
mod audit_trail;
mod bad_input;
mod concurrency;
mod events;
mod helpers;
mod idempotency;
mod lifecycle;
mod matrix;
mod overdue;
mod tokens;
mod transport;
