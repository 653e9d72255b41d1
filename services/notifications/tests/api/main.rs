//! Service tests of notifications: the real service with plans and referrals beside it, on fresh
//! databases and a private stream of the real NATS.

mod bad_input;
mod escalation;
mod helpers;
mod inbox;
mod notices;
mod rosters;
mod rules;
mod webhooks;
