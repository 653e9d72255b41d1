//! Service tests: the real referrals service and the real plans service (which answers access
//! checks) on port-0 servers, each with a fresh database on the local Postgres.

mod bad_input;
mod errors;
mod helpers;
mod matrix;
mod on_behalf;
mod orders;
mod pathways;
mod referrals;
mod sweeper;
