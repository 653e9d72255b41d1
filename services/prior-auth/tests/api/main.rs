//! Service tests: the real prior-auth service and the real plans service (which answers access
//! checks) on port-0 servers, each with a fresh database on the local Postgres.

mod bad_input;
mod helpers;
mod lifecycle;
mod matrix;
mod sweeper;
