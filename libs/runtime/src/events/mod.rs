//! The event backbone: the JetStream stream, the outbox relay that publishes committed events, and
//! the consumer framework that applies each event's effect exactly once.

pub mod bus;
pub mod catalogue;
pub mod consumer;
pub mod fields;
pub mod relay;

pub use bus::EventBus;
pub use consumer::{Consumer, ConsumerConfig, Handler};
pub use relay::Relay;

use crate::config::EventSettings;
use crate::metrics::Metrics;
use sqlx::PgPool;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The event tasks a service runs beside its gRPC server (relay, consumers), stopped together.
pub struct Background {
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    pub fn new() -> Self {
        Self {
            shutdown: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    pub fn signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn push(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Runs `tick` every `interval` until the tasks are stopped (sweepers, housekeeping).
    pub fn every<F, Fut>(&mut self, interval: std::time::Duration, mut tick: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let mut shutdown = self.signal();
        self.push(tokio::spawn(async move {
            let mut timer = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = timer.tick() => tick().await,
                    _ = shutdown.changed() => return,
                }
            }
        }));
    }

    /// Runs a report-once sweeper every `interval`: `sweep` returns how many loops it reported;
    /// reports are logged under `what`, failures logged (redacted) and retried at the next tick.
    pub fn sweep_every<F, Fut>(
        &mut self,
        interval: std::time::Duration,
        what: &'static str,
        sweep: F,
    ) where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<usize>> + Send,
    {
        self.every(interval, move || {
            let run = sweep();
            async move {
                match run.await {
                    Ok(0) => {}
                    Ok(reported) => tracing::info!(reported, what, "sweep reported"),
                    Err(error) => {
                        tracing::warn!(what, error = %crate::error::redacted(&error), "sweep failed")
                    }
                }
            }
        });
    }

    /// Asks every task to stop and waits for them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

impl Default for Background {
    fn default() -> Self {
        Self::new()
    }
}

/// Connects to the bus, makes sure the streams exist (in the background if NATS is not up yet) and
/// starts the outbox relay for this service's schema. None when events are disabled.
pub async fn start_publishing(
    pool: &PgPool,
    settings: &EventSettings,
    metrics: &Arc<Metrics>,
    background: &mut Background,
) -> anyhow::Result<Option<EventBus>> {
    if !settings.enabled {
        return Ok(None);
    }
    let bus = EventBus::connect(settings).await?;
    let relay = Relay::new(pool.clone(), bus.clone(), Arc::clone(metrics));
    let mut shutdown = background.signal();
    let streams = bus.clone();
    background.push(tokio::spawn(async move {
        // Publishing before the stream exists only fails; NATS may also still be down.
        tokio::select! {
            _ = streams.ensure_streams_with_retry() => {}
            _ = shutdown.changed() => return,
        }
        relay.spawn(shutdown).await.ok();
    }));
    Ok(Some(bus))
}
