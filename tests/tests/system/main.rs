//! System tests: every service and the gateway in one process, against the real PostgreSQL and
//! NATS, driven through the gateway as partners and apps use it.

mod authorization;
mod bad_input;
mod callbacks;
mod resilience;
mod scenario;
mod web;
