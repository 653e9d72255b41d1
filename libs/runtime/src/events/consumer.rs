//! The consumer framework: a durable pull consumer per consuming service and purpose, explicit ack,
//! bounded redelivery with a delay per try, and a dead-letter subject after the last try. The
//! handler's effect and the "handled" mark for the event id commit in one transaction in the
//! consumer's own schema, so a redelivered or duplicated event has no second effect.
//!
//! Each aggregate's events are applied in stream order, also across retries: an event whose
//! handler failed is recorded in `consumer_waiting`, and a later event of the same aggregate waits
//! behind it (recorded too, redelivered after a short delay, not counted as a try) until the earlier
//! one is applied or dead-lettered. Tries are counted there as well, so waiting never uses one up.
//! Replicas sharing a durable consumer keep this order for failures; two replicas applying two
//! events of one aggregate at the same instant are not ordered with each other.

use super::EventBus;
use crate::metrics::Metrics;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{AckKind, Message};
use careloop_proto::events::v1::Event;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use prost::Message as _;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

/// What a consumer does with one event, inside the transaction that records it as handled.
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Whether events of this type concern the handler at all. Others are acknowledged without a
    /// transaction (nothing is applied, so nothing needs recording): one subject filter per
    /// consumer on NATS 2.9 brings a consumer every type, its own events included.
    fn wants(&self, _event_type: &str) -> bool {
        true
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Durable name, also the key of handled event ids: "<service>-<purpose>".
    pub name: String,
    /// One subject filter (NATS 2.9 has no multi-filter consumers), e.g. "careloop.plans.>".
    pub filter_subject: String,
    /// Deliveries before the event goes to the dead-letter subject.
    pub max_deliver: i64,
    /// Delay before try n+1 after try n failed; the last delay repeats.
    pub retry_delays: Vec<Duration>,
    /// Unacknowledged deliveries come back after this long (a crashed consumer's batch).
    pub ack_wait: Duration,
    pub batch: usize,
}

impl ConsumerConfig {
    pub fn new(name: impl Into<String>, filter_subject: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            filter_subject: filter_subject.into(),
            max_deliver: 5,
            retry_delays: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(120),
            ],
            ack_wait: Duration::from_secs(30),
            batch: 100,
        }
    }

    fn delay_after(&self, delivered: i64) -> Duration {
        let i = usize::try_from(delivered.saturating_sub(1)).unwrap_or(0);
        self.retry_delays
            .get(i)
            .or(self.retry_delays.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

pub struct Consumer<H> {
    pool: PgPool,
    bus: EventBus,
    config: ConsumerConfig,
    handler: Arc<H>,
    metrics: Arc<Metrics>,
}

enum Applied {
    Done,
    Duplicate,
    /// An earlier event of the same aggregate is still waiting to be applied.
    Behind,
}

impl<H: Handler> Consumer<H> {
    pub fn new(
        pool: PgPool,
        bus: EventBus,
        config: ConsumerConfig,
        handler: H,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            pool,
            bus,
            config,
            handler: Arc::new(handler),
            metrics,
        }
    }

    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    /// Creates the durable consumer, or finds it.
    pub async fn durable(&self) -> anyhow::Result<PullConsumer> {
        let stream = self
            .bus
            .jetstream
            .get_stream(&self.bus.settings.stream)
            .await?;
        let consumer = stream
            .get_or_create_consumer(
                &self.config.name,
                pull::Config {
                    durable_name: Some(self.config.name.clone()),
                    filter_subject: self.config.filter_subject.clone(),
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: DeliverPolicy::All,
                    ack_wait: self.config.ack_wait,
                    // The try limit is enforced here, not by the server: a message whose dead letter
                    // could not be stored must still come back.
                    max_deliver: -1,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await?;
        Ok(consumer)
    }

    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        let consumer = loop {
            if *shutdown.borrow() {
                return;
            }
            match self.durable().await {
                Ok(c) => break c,
                Err(error) => {
                    tracing::warn!(consumer = %self.config.name, error = %error, "consumer not ready; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        let mut housekeeping = tokio::time::interval(Duration::from_secs(5));
        'outer: while !*shutdown.borrow() {
            // A continuous pull: the server pushes up to a batch ahead while we work through it.
            let stream = consumer
                .stream()
                .max_messages_per_batch(self.config.batch)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await;
            let mut messages = match stream {
                Ok(m) => m,
                Err(error) => {
                    tracing::warn!(consumer = %self.config.name, error = %error, "pull failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            loop {
                tokio::select! {
                    next = messages.next() => match next {
                        Some(Ok(first)) => {
                            // Take whatever else is already buffered, up to a batch, and commit it
                            // in one transaction: one fsync for many events.
                            let mut batch = vec![first];
                            while batch.len() < self.config.batch {
                                match messages.next().now_or_never() {
                                    Some(Some(Ok(m))) => batch.push(m),
                                    _ => break,
                                }
                            }
                            self.process_batch(batch).await;
                        }
                        Some(Err(error)) => {
                            // Missed heartbeats or a reconnect: start a fresh pull.
                            tracing::warn!(consumer = %self.config.name, error = %error, "pull interrupted");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue 'outer;
                        }
                        None => continue 'outer,
                    },
                    _ = housekeeping.tick() => self.housekeeping(&consumer).await,
                    _ = shutdown.changed() => break 'outer,
                }
            }
        }
        tracing::info!(consumer = %self.config.name, "consumer stopped");
    }

    async fn housekeeping(&self, consumer: &PullConsumer) {
        let mut consumer = consumer.clone();
        if let Ok(info) = consumer.info().await {
            self.metrics
                .consumer_lag
                .with_label_values(&[self.config.name.as_str()])
                .set(i64::try_from(info.num_pending).unwrap_or(i64::MAX));
        }
        let _ = sqlx::query(
            "DELETE FROM handled_events WHERE consumer = $1 AND handled_at < now() - make_interval(hours => $2)",
        )
        .bind(&self.config.name)
        .bind(self.bus.settings.handled_retention_hours as i32)
        .execute(&self.pool)
        .await;
        // A waiting row whose event left the stream (retention) would hold its aggregate forever.
        let _ = sqlx::query(
            "DELETE FROM consumer_waiting WHERE consumer = $1 AND since < now() - make_interval(hours => $2)",
        )
        .bind(&self.config.name)
        .bind(self.bus.settings.handled_retention_hours as i32)
        .execute(&self.pool)
        .await;
    }

    /// Applies several deliveries in one transaction (each event's effect and its handled mark stay
    /// together), then acks them. If any handler fails, the transaction is rolled back and every
    /// delivery is processed on its own, so only the failing event is retried.
    pub async fn process_batch(&self, batch: Vec<Message>) {
        let mut batch = batch;
        let mut wanted = Vec::with_capacity(batch.len());
        for message in batch.drain(..) {
            let skip = Event::decode(message.payload.as_ref())
                .map(|e| !self.handler.wants(&e.r#type))
                .unwrap_or(false);
            if skip {
                if let Err(error) = message.ack().await {
                    tracing::warn!(consumer = %self.config.name, error = %error, "ack failed");
                }
            } else {
                wanted.push(message);
            }
        }
        let batch = wanted;
        if batch.is_empty() {
            return;
        }
        if batch.len() == 1 {
            for message in batch {
                self.process(message).await;
            }
            return;
        }
        let name = self.config.name.as_str();
        let mut decoded = Vec::with_capacity(batch.len());
        for message in &batch {
            match Event::decode(message.payload.as_ref())
                .ok()
                .and_then(|e| Uuid::parse_str(&e.id).ok().map(|id| (id, e)))
            {
                Some(pair) => decoded.push(pair),
                None => break,
            }
        }
        let outcome = if decoded.len() == batch.len() {
            self.apply_all(&decoded).await
        } else {
            Err(anyhow::anyhow!("undecodable event in batch"))
        };
        match outcome {
            Ok(applied) => {
                for (message, was) in batch.iter().zip(applied) {
                    if message.info().map(|i| i.delivered).unwrap_or(1) > 1 {
                        self.metrics
                            .consumer_redeliveries
                            .with_label_values(&[name])
                            .inc();
                    }
                    match was {
                        Applied::Done => self
                            .metrics
                            .consumer_handled
                            .with_label_values(&[name])
                            .inc(),
                        Applied::Duplicate | Applied::Behind => self
                            .metrics
                            .consumer_duplicates
                            .with_label_values(&[name])
                            .inc(),
                    }
                    if let Err(error) = message.ack().await {
                        tracing::warn!(consumer = name, error = %error, "ack failed");
                    }
                }
            }
            Err(_) => {
                for message in batch {
                    self.process(message).await;
                }
            }
        }
    }

    async fn apply_all(&self, events: &[(Uuid, Event)]) -> anyhow::Result<Vec<Applied>> {
        let mut tx = self.pool.begin().await?;
        let aggregates: Vec<Uuid> = events
            .iter()
            .filter_map(|(_, e)| Uuid::parse_str(&e.aggregate_id).ok())
            .collect();
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM consumer_waiting WHERE consumer = $1 AND aggregate_id = ANY($2))",
        )
        .bind(&self.config.name)
        .bind(&aggregates)
        .fetch_one(&mut *tx)
        .await?;
        if waiting {
            // One by one, so the waiting aggregate's events keep their order.
            anyhow::bail!("an aggregate of the batch has events waiting");
        }
        let mut applied = Vec::with_capacity(events.len());
        for (event_id, event) in events {
            let span = tracing::info_span!("consume", consumer = %self.config.name, event.id = %event_id, event.r#type = %event.r#type, otel.kind = "consumer");
            crate::telemetry::continue_trace(&span, &event.traceparent);
            let inserted = sqlx::query(
                "INSERT INTO handled_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&self.config.name)
            .bind(event_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                applied.push(Applied::Duplicate);
                continue;
            }
            self.handler.handle(&mut tx, event).instrument(span).await?;
            applied.push(Applied::Done);
        }
        tx.commit().await?;
        Ok(applied)
    }

    /// Handles one delivery: apply once, ack; wait behind an earlier event of the same aggregate;
    /// on failure retry later, or dead-letter after the last try.
    pub async fn process(&self, message: Message) {
        let name = self.config.name.as_str();
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        if delivered > 1 {
            self.metrics
                .consumer_redeliveries
                .with_label_values(&[name])
                .inc();
        }
        let event = match Event::decode(message.payload.as_ref()) {
            Ok(event) => event,
            Err(_) => {
                self.dead_letter(&message, "undecodable event envelope", "")
                    .await;
                return;
            }
        };
        let Ok(event_id) = Uuid::parse_str(&event.id) else {
            self.dead_letter(&message, "event id is not a uuid", &event.id)
                .await;
            return;
        };
        let place = Place {
            aggregate: Uuid::parse_str(&event.aggregate_id).ok(),
            seq: message.info().map(|i| i.stream_sequence).unwrap_or(0),
            event_id,
        };
        let span = tracing::info_span!("consume", consumer = name, event.id = %event_id, event.r#type = %event.r#type, otel.kind = "consumer");
        crate::telemetry::continue_trace(&span, &event.traceparent);
        let result = self.apply(&place, &event).instrument(span).await;
        match result {
            Ok(Applied::Behind) => {
                let _ = message
                    .ack_with(AckKind::Nak(Some(self.config.delay_after(1))))
                    .await;
            }
            Ok(applied) => {
                if matches!(applied, Applied::Duplicate) {
                    self.metrics
                        .consumer_duplicates
                        .with_label_values(&[name])
                        .inc();
                } else {
                    self.metrics
                        .consumer_handled
                        .with_label_values(&[name])
                        .inc();
                }
                if let Err(error) = message.ack().await {
                    // The effect is committed; a redelivery will be recognised as a duplicate.
                    tracing::warn!(consumer = name, event_id = %event_id, error = %error, "ack failed");
                }
            }
            Err(error) => {
                // Tries are counted in the consumer's schema (waiting behind another event is no
                // try); if that count cannot be kept, the server's delivery count stands in.
                let tries = self.failed(&place).await.unwrap_or(delivered);
                if tries >= self.config.max_deliver {
                    let reason = crate::error::redacted(&error);
                    if self.dead_letter(&message, &reason, &event.id).await {
                        self.release(&place).await;
                    }
                } else {
                    let delay = self.config.delay_after(tries);
                    tracing::warn!(consumer = name, event_id = %event_id, tries, error = %crate::error::redacted(&error), "handler failed; will retry");
                    let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
                }
            }
        }
    }

    async fn apply(&self, place: &Place, event: &Event) -> anyhow::Result<Applied> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO handled_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&self.config.name)
        .bind(place.event_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            self.release(place).await;
            return Ok(Applied::Duplicate);
        }
        if let Some(aggregate) = place.aggregate {
            let behind: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM consumer_waiting
                                 WHERE consumer = $1 AND aggregate_id = $2 AND stream_seq < $3)",
            )
            .bind(&self.config.name)
            .bind(aggregate)
            .bind(seq_value(place.seq))
            .fetch_one(&mut *tx)
            .await?;
            if behind {
                tx.rollback().await?;
                sqlx::query(
                    "INSERT INTO consumer_waiting (consumer, aggregate_id, stream_seq, event_id)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(&self.config.name)
                .bind(aggregate)
                .bind(seq_value(place.seq))
                .bind(place.event_id)
                .execute(&self.pool)
                .await?;
                return Ok(Applied::Behind);
            }
        }
        self.handler.handle(&mut tx, event).await?;
        if let Some(aggregate) = place.aggregate {
            sqlx::query(
                "DELETE FROM consumer_waiting WHERE consumer = $1 AND aggregate_id = $2 AND stream_seq = $3",
            )
            .bind(&self.config.name)
            .bind(aggregate)
            .bind(seq_value(place.seq))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Applied::Done)
    }

    /// Records a failed try of the event (holding its aggregate's later events behind it) and
    /// returns how many tries have failed.
    async fn failed(&self, place: &Place) -> anyhow::Result<i64> {
        let Some(aggregate) = place.aggregate else {
            anyhow::bail!("no aggregate to hold");
        };
        let failures: i32 = sqlx::query_scalar(
            "INSERT INTO consumer_waiting (consumer, aggregate_id, stream_seq, event_id, failures)
             VALUES ($1, $2, $3, $4, 1)
             ON CONFLICT (consumer, aggregate_id, stream_seq)
             DO UPDATE SET failures = consumer_waiting.failures + 1
             RETURNING failures",
        )
        .bind(&self.config.name)
        .bind(aggregate)
        .bind(seq_value(place.seq))
        .bind(place.event_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(i64::from(failures))
    }

    /// Lets the aggregate's later events go: this one is dead-lettered or was handled before.
    async fn release(&self, place: &Place) {
        let Some(aggregate) = place.aggregate else {
            return;
        };
        let released = sqlx::query(
            "DELETE FROM consumer_waiting WHERE consumer = $1 AND aggregate_id = $2 AND stream_seq = $3",
        )
        .bind(&self.config.name)
        .bind(aggregate)
        .bind(seq_value(place.seq))
        .execute(&self.pool)
        .await;
        if let Err(error) = released {
            // Housekeeping removes the row after the retention period at the latest.
            tracing::warn!(consumer = %self.config.name, error = %error, "waiting row not released");
        }
    }

    /// Publishes the delivery to the dead-letter subject with the reason, then stops redelivery.
    /// If the dead letter cannot be stored, the message is left for redelivery: nothing is dropped.
    /// Returns whether the dead letter was stored.
    async fn dead_letter(&self, message: &Message, reason: &str, event_id: &str) -> bool {
        let name = self.config.name.as_str();
        let reason: String = reason
            .replace(['\r', '\n'], " ")
            .chars()
            .take(500)
            .collect();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("CareLoop-Consumer", name);
        headers.insert("CareLoop-Reason", reason.as_str());
        headers.insert("CareLoop-Original-Subject", message.subject.as_str());
        headers.insert("CareLoop-Event-Id", event_id);
        let dedupe = format!(
            "{name}:{}",
            message.info().map(|i| i.stream_sequence).unwrap_or(0)
        );
        headers.insert("Nats-Msg-Id", dedupe.as_str());
        let subject = self.bus.dead_letter_subject(name);
        let published = async {
            let ack = self
                .bus
                .jetstream
                .publish_with_headers(subject, headers, message.payload.clone())
                .await?;
            ack.await?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        match published {
            Ok(()) => {
                self.metrics
                    .consumer_dead_letters
                    .with_label_values(&[name])
                    .inc();
                tracing::error!(consumer = name, event_id, reason = %reason, "event sent to dead letters");
                let _ = message.ack_with(AckKind::Term).await;
                true
            }
            Err(error) => {
                tracing::warn!(consumer = name, error = %error, "dead letter not stored; will retry");
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                    .await;
                false
            }
        }
    }
}

/// Where a delivery stands: its aggregate (events without a uuid aggregate are not ordered), its
/// position in the stream and its id.
struct Place {
    aggregate: Option<Uuid>,
    seq: u64,
    event_id: Uuid,
}

fn seq_value(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}
