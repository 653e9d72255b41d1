//! The outbox relay: publishes committed outbox rows to JetStream with `Nats-Msg-Id` = event id,
//! waits for each publish ack, then marks the rows published. It wakes on LISTEN/NOTIFY and also
//! polls; replicas share the work with `FOR UPDATE SKIP LOCKED`. One aggregate's events are
//! published one after another in commit order (a relay never publishes an event while an earlier
//! event of the same aggregate is unpublished elsewhere); different aggregates are pipelined.
//! While NATS is unreachable it backs off and writes keep committing into the outbox.

use super::EventBus;
use crate::metrics::Metrics;
use async_nats::jetstream::message::PublishMessage;
use sqlx::{FromRow, PgPool};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

pub const NOTIFY_CHANNEL: &str = "careloop_outbox";

#[derive(Debug, FromRow)]
struct OutboxRow {
    id: Uuid,
    aggregate_id: Uuid,
    event_type: String,
    payload: Vec<u8>,
}

/// Claims up to $1 unpublished rows in commit order, skipping rows another relay holds and rows whose
/// aggregate has an earlier unpublished event this relay did not claim.
const CLAIM: &str = "
WITH claimed AS (
    SELECT id, seq, aggregate_id, event_type, payload FROM outbox
    WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
)
SELECT c.id, c.aggregate_id, c.event_type, c.payload FROM claimed c
WHERE NOT EXISTS (
    SELECT 1 FROM outbox e
    WHERE e.aggregate_id = c.aggregate_id AND e.published_at IS NULL AND e.seq < c.seq
      AND e.id NOT IN (SELECT id FROM claimed)
)
ORDER BY c.seq";

#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    bus: EventBus,
    metrics: Arc<Metrics>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub claimed: usize,
    pub published: usize,
}

impl Relay {
    pub fn new(pool: PgPool, bus: EventBus, metrics: Arc<Metrics>) -> Self {
        Self { pool, bus, metrics }
    }

    /// Publishes one batch. Rows whose publish failed stay unpublished; the error is returned after
    /// the acknowledged rows are marked.
    pub async fn publish_round(&self) -> anyhow::Result<Round> {
        let batch = self.bus.settings.relay_batch;
        let mut tx = self.pool.begin().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(CLAIM)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(Round {
                claimed: 0,
                published: 0,
            });
        }
        let claimed = rows.len();
        let mut order: HashMap<Uuid, usize> = HashMap::new();
        let mut groups: Vec<Vec<OutboxRow>> = Vec::new();
        for row in rows {
            let slot = *order.entry(row.aggregate_id).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[slot].push(row);
        }
        let results =
            futures::future::join_all(groups.into_iter().map(|g| self.publish_in_order(g))).await;
        let mut acked = Vec::with_capacity(claimed);
        let mut failure = None;
        for (ids, error) in results {
            acked.extend(ids);
            if let Some(e) = error {
                failure.get_or_insert(e);
            }
        }
        if !acked.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                .bind(&acked)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.metrics.events_published.inc_by(acked.len() as u64);
        match failure {
            Some(e) => Err(e),
            None => Ok(Round {
                claimed,
                published: acked.len(),
            }),
        }
    }

    /// Publishes one aggregate's rows one after another; stops at the first failure so a later
    /// event never overtakes an earlier one.
    async fn publish_in_order(&self, rows: Vec<OutboxRow>) -> (Vec<Uuid>, Option<anyhow::Error>) {
        let mut acked = Vec::with_capacity(rows.len());
        for row in rows {
            let subject = self.bus.subject(&row.event_type);
            let message = PublishMessage::build()
                .payload(row.payload.into())
                .message_id(row.id.to_string());
            let result = async {
                let ack = self.bus.jetstream.send_publish(subject, message).await?;
                ack.await?;
                Ok::<_, anyhow::Error>(())
            }
            .await;
            if let Err(e) = result {
                self.metrics.events_publish_errors.inc();
                return (acked, Some(e));
            }
            acked.push(row.id);
        }
        (acked, None)
    }

    /// Deletes published rows and idempotency keys past their retention.
    pub async fn prune(&self) -> anyhow::Result<()> {
        let s = &self.bus.settings;
        sqlx::query("DELETE FROM outbox WHERE published_at < now() - make_interval(hours => $1)")
            .bind(s.outbox_retention_hours as i32)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
        )
        .bind(s.idempotency_retention_hours as i32)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs until `shutdown` turns true.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.bus.settings.relay_poll_ms);
        let batch = usize::try_from(self.bus.settings.relay_batch).unwrap_or(usize::MAX);
        let mut listener = None;
        let mut backoff = Duration::from_millis(100);
        let mut last_prune = Instant::now();
        while !*shutdown.borrow() {
            if listener.is_none() {
                listener = self.listen().await;
            }
            if last_prune.elapsed() > Duration::from_secs(60) {
                last_prune = Instant::now();
                if let Err(error) = self.prune().await {
                    tracing::warn!(error = %error, "outbox pruning failed");
                }
            }
            match self.publish_round().await {
                Ok(round) if round.claimed >= batch => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    wait_for_wakeup(&mut listener, poll, &mut shutdown).await;
                }
                Err(error) => {
                    tracing::warn!(error = %error, retry_in_ms = backoff.as_millis() as u64, "outbox relay could not publish");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::info!("outbox relay stopped");
    }

    async fn listen(&self) -> Option<sqlx::postgres::PgListener> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool)
            .await
            .ok()?;
        listener.listen(NOTIFY_CHANNEL).await.ok()?;
        Some(listener)
    }
}

async fn wait_for_wakeup(
    listener: &mut Option<sqlx::postgres::PgListener>,
    poll: Duration,
    shutdown: &mut watch::Receiver<bool>,
) {
    match listener {
        Some(l) => {
            tokio::select! {
                received = l.recv() => {
                    if received.is_err() {
                        *listener = None;
                    }
                }
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
        None => {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
