//! Outside channels for notices: email through SMTP and SMS through an HTTP provider, each behind
//! the `Sender` trait so the dispatcher does not care which; the real adapters live here, and the
//! tests run them against servers they start themselves.

pub mod sms;
pub mod smtp;

use futures::future::BoxFuture;

/// One notice to one address.
#[derive(Debug, Clone)]
pub struct Notice {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// A channel that takes a notice: Ok with the provider's receipt (a message id; empty when the
/// channel gives none), or the reason it was not taken.
pub trait Sender: Send + Sync + 'static {
    fn send<'a>(&'a self, notice: &'a Notice) -> BoxFuture<'a, anyhow::Result<String>>;
}
