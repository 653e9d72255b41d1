//! The referrals domain as plain Rust with no I/O: the referral and order state machines, stage due
//! times, result routing, and pathway rule matching.

pub mod due;
pub mod order;
pub mod pathway;
pub mod referral;
pub mod routing;
