//! The event backbone against the real Postgres and the real NATS JetStream: the relay loses
//! nothing and doubles nothing, consumers apply each event once, order holds per aggregate.

mod support;

mod backbone;
