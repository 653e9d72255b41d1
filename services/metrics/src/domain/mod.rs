//! Pure measures over per-loop timelines: no database, no clock.

pub mod coordination;
pub mod priorauth;
pub mod stats;
