//! The prior-authorization domain as plain Rust: the state machine, the CMS-0057-F decision
//! deadlines, and the completeness check of the clinical packet.

pub mod deadline;
pub mod deciders;
pub mod packet;
pub mod status;
