//! The plans domain as plain Rust with no I/O: the task state machine, the care-team lead rule,
//! the transition checklist and the access decision.

pub mod access;
pub mod task;
pub mod team;
pub mod transition;
