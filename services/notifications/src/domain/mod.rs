//! Pure rules of the notifications service: which loop and stage an event is about, when a loop
//! moved on, and how a rule's ladder resolves against an event.

pub mod ladder;
pub mod loops;
pub mod roster;
