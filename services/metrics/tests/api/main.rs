//! Service tests of metrics: the real service on a fresh database; events handed to its recorder
//! in the consumer's transaction, as the durable consumer would.

mod coordination;
mod priorauth;
