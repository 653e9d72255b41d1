//! Encrypted transport to the real components, each a private server started for the test with a
//! throwaway CA: PostgreSQL that requires TLS, reached with `sslmode=verify-full`; NATS that requires
//! TLS and gives each service a user whose publish permission covers only its own subjects; an OTLP collector over TLS.

mod nats;
mod otlp;
mod postgres;
