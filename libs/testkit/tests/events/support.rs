use careloop_proto::events::v1::Event;
use careloop_proto::events::v1::{PatientCreated, event::Payload};
use careloop_runtime::config::EventSettings;
use careloop_runtime::events::{Consumer, ConsumerConfig, EventBus, Handler, Relay};
use careloop_runtime::metrics::Metrics;
use careloop_runtime::outbox::{self, NewEvent};
use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

pub struct Fixture {
    pub pool: PgPool,
    pub bus: EventBus,
    pub settings: EventSettings,
}

/// A fresh schema with the shared tables (outbox, handled_events) and an `effects` table the test
/// handlers write to, plus an isolated stream on the given NATS server.
pub async fn fixture(nats_url: &str) -> Fixture {
    careloop_runtime::telemetry::init_for_tests();
    let db = careloop_testkit::fresh_database("evt")
        .await
        .expect("database");
    let mut db_settings = careloop_runtime::config::Settings::defaults().database;
    // The backbone harness creates its own tables too: it works as the schema owner.
    db_settings.url = careloop_runtime::secret::Secret::new(db.migration_url.clone());
    let pool = careloop_runtime::db::connect(&db_settings, "evt")
        .await
        .expect("pool");
    careloop_runtime::db::migrate(&pool, "evt", &sqlx::migrate::Migrator::DEFAULT)
        .await
        .expect("migrations");
    sqlx::query(
        "CREATE TABLE effects (seq bigserial PRIMARY KEY, consumer text NOT NULL, event_id uuid NOT NULL,
                               aggregate_id uuid NOT NULL, version bigint NOT NULL, same_trace boolean NOT NULL)",
    )
    .execute(&pool)
    .await
    .expect("effects table");
    let settings = careloop_testkit::event_settings(nats_url);
    let bus = EventBus::connect(&settings).await.expect("bus");
    bus.ensure_streams().await.expect("streams");
    Fixture {
        pool,
        bus,
        settings,
    }
}

impl Fixture {
    /// Commits one event per transaction, as services do, inside a traced span.
    pub async fn write(&self, aggregate_id: Uuid, version: i64) -> Uuid {
        async {
            let mut tx = self.pool.begin().await.unwrap();
            let id = outbox::enqueue(
                &mut tx,
                NewEvent {
                    source: "test",
                    patient_id: Some(aggregate_id),
                    org_id: Uuid::nil(),
                    aggregate_id,
                    aggregate_version: version,
                    occurred_at: chrono::Utc::now(),
                    payload: Payload::PatientCreated(PatientCreated {
                        managing_org_id: Uuid::nil().to_string(),
                    }),
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            id
        }
        .instrument(tracing::info_span!("write"))
        .await
    }

    pub fn relay(&self) -> (Relay, Arc<Metrics>) {
        let metrics = Metrics::new("test");
        (
            Relay::new(self.pool.clone(), self.bus.clone(), Arc::clone(&metrics)),
            metrics,
        )
    }

    /// Publishes until the outbox is empty.
    pub async fn drain(&self, relay: &Relay) {
        wait_until("outbox drained", || async {
            let _ = relay.publish_round().await;
            self.unpublished().await == 0
        })
        .await;
    }

    pub async fn unpublished(&self) -> i64 {
        count(
            &self.pool,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
        )
        .await
    }

    pub fn consumer_config(&self, name: &str) -> ConsumerConfig {
        let mut config = ConsumerConfig::new(name, format!("{}.>", self.settings.subject_prefix));
        config.retry_delays = vec![Duration::from_millis(50)];
        config.ack_wait = Duration::from_secs(1);
        config
    }

    pub fn consumer<H: Handler>(
        &self,
        config: ConsumerConfig,
        handler: H,
    ) -> (Consumer<H>, Arc<Metrics>) {
        let metrics = Metrics::new("test");
        (
            Consumer::new(
                self.pool.clone(),
                self.bus.clone(),
                config,
                handler,
                Arc::clone(&metrics),
            ),
            metrics,
        )
    }

    pub async fn effects(&self) -> i64 {
        count(&self.pool, "SELECT count(*) FROM effects").await
    }

    pub async fn distinct_effects(&self) -> i64 {
        count(&self.pool, "SELECT count(DISTINCT event_id) FROM effects").await
    }

    pub async fn stream_messages(&self) -> u64 {
        let mut stream = self
            .bus
            .jetstream
            .get_stream(&self.settings.stream)
            .await
            .unwrap();
        stream.info().await.unwrap().state.messages
    }

    pub async fn dead_letters(&self) -> u64 {
        let mut stream = self
            .bus
            .jetstream
            .get_stream(format!("{}_DLQ", self.settings.stream))
            .await
            .unwrap();
        stream.info().await.unwrap().state.messages
    }

    pub async fn cleanup(self) {
        careloop_testkit::remove_streams(&self.settings).await;
    }
}

pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(pool).await.unwrap();
    n
}

/// Polls `condition` until it holds; panics after a generous bound so a broken backbone fails the
/// test instead of hanging it. Not a timing assertion: only liveness.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..1200 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting: {what}");
}

/// Records every handled event in `effects`; can fail on one event id (always, or its first n
/// tries), or block forever at the n-th event (a consumer that crashes mid-batch).
#[derive(Clone, Default)]
pub struct Recorder {
    pub name: String,
    pub fail_on: Option<String>,
    /// Fails the event's first n tries, counting them.
    pub fail_first: Option<(String, usize, Arc<std::sync::atomic::AtomicUsize>)>,
    pub block_at: Option<(usize, Arc<std::sync::atomic::AtomicUsize>)>,
}

impl Handler for Recorder {
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            if self.fail_on.as_deref() == Some(event.id.as_str()) {
                anyhow::bail!("handler refuses event {}", event.id);
            }
            if let Some((id, n, tries)) = &self.fail_first
                && id == &event.id
                && tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < *n
            {
                anyhow::bail!("handler not ready for event {}", event.id);
            }
            if let Some((n, seen)) = &self.block_at {
                let k = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if k == *n {
                    std::future::pending::<()>().await;
                }
            }
            let here = careloop_runtime::telemetry::current_traceparent().unwrap_or_default();
            let same_trace = here.len() == 55 && event.traceparent.get(3..35) == here.get(3..35);
            sqlx::query(
                "INSERT INTO effects (consumer, event_id, aggregate_id, version, same_trace)
                 VALUES ($1, $2::uuid, $3::uuid, $4, $5)",
            )
            .bind(&self.name)
            .bind(&event.id)
            .bind(&event.aggregate_id)
            .bind(event.aggregate_version)
            .bind(same_trace)
            .execute(conn)
            .await?;
            Ok(())
        })
    }
}

pub fn shutdown() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}
