//! Operational metrics in Prometheus text format on their own HTTP port: requests, latency and
//! errors per RPC, the outbox backlog, publishing, and consumer handling, lag and dead letters.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct Metrics {
    registry: Registry,
    pub grpc_requests: IntCounterVec,
    pub grpc_latency: HistogramVec,
    pub outbox_backlog: IntGauge,
    pub outbox_oldest_age_seconds: IntGauge,
    pub events_published: IntCounter,
    pub events_publish_errors: IntCounter,
    pub consumer_handled: IntCounterVec,
    pub consumer_duplicates: IntCounterVec,
    pub consumer_redeliveries: IntCounterVec,
    pub consumer_dead_letters: IntCounterVec,
    pub consumer_lag: IntGaugeVec,
    /// Calls refused before any handler: bad or missing tokens, unknown callers (by fixed reason).
    pub auth_refusals: IntCounterVec,
}

impl Metrics {
    /// Adds a service's own collector (its gauges) to the registry `/metrics` serves.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    pub fn new(service: &str) -> Arc<Self> {
        let registry = Registry::new_custom(
            None,
            Some([("service".to_owned(), service.to_owned())].into()),
        )
        .expect("static registry labels are valid");
        let grpc_requests = IntCounterVec::new(
            Opts::new(
                "careloop_grpc_requests_total",
                "gRPC requests by method and status code",
            ),
            &["method", "code"],
        )
        .expect("static metric");
        let grpc_latency = HistogramVec::new(
            HistogramOpts::new(
                "careloop_grpc_request_duration_seconds",
                "gRPC request latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["method"],
        )
        .expect("static metric");
        let outbox_backlog =
            IntGauge::new("careloop_outbox_backlog", "outbox rows not yet published")
                .expect("static metric");
        let outbox_oldest_age_seconds = IntGauge::new(
            "careloop_outbox_oldest_unpublished_age_seconds",
            "age of the oldest unpublished outbox row",
        )
        .expect("static metric");
        let events_published = IntCounter::new(
            "careloop_events_published_total",
            "outbox events published and acknowledged",
        )
        .expect("static metric");
        let events_publish_errors = IntCounter::new(
            "careloop_events_publish_errors_total",
            "failed event publishes",
        )
        .expect("static metric");
        let per_consumer = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["consumer"]).expect("static metric")
        };
        let consumer_handled = per_consumer(
            "careloop_consumer_handled_total",
            "events whose effect was applied",
        );
        let consumer_duplicates = per_consumer(
            "careloop_consumer_duplicates_total",
            "deliveries of events already handled",
        );
        let consumer_redeliveries = per_consumer(
            "careloop_consumer_redeliveries_total",
            "redelivered messages",
        );
        let consumer_dead_letters = per_consumer(
            "careloop_consumer_dead_letters_total",
            "events sent to dead letters",
        );
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "careloop_consumer_lag",
                "messages not yet delivered to the consumer",
            ),
            &["consumer"],
        )
        .expect("static metric");
        let auth_refusals = IntCounterVec::new(
            Opts::new(
                "careloop_auth_refusals_total",
                "calls refused by authentication, by reason",
            ),
            &["reason"],
        )
        .expect("static metric");
        for collector in [
            Box::new(auth_refusals.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(events_published.clone()),
            Box::new(events_publish_errors.clone()),
            Box::new(consumer_handled.clone()),
            Box::new(consumer_duplicates.clone()),
            Box::new(consumer_redeliveries.clone()),
            Box::new(consumer_dead_letters.clone()),
            Box::new(consumer_lag.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        for collector in [
            Box::new(grpc_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(grpc_latency.clone()),
            Box::new(outbox_backlog.clone()),
            Box::new(outbox_oldest_age_seconds.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Arc::new(Self {
            registry,
            grpc_requests,
            grpc_latency,
            outbox_backlog,
            outbox_oldest_age_seconds,
            events_published,
            events_publish_errors,
            consumer_handled,
            consumer_duplicates,
            consumer_redeliveries,
            consumer_dead_letters,
            consumer_lag,
            auth_refusals,
        })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Refreshes the outbox gauges from the database every few seconds until the pool closes.
    pub fn watch_outbox(self: &Arc<Self>, pool: PgPool) {
        let metrics = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            while !pool.is_closed() {
                tick.tick().await;
                let row: Result<(i64, Option<f64>), _> = sqlx::query_as(
                    "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8
                     FROM outbox WHERE published_at IS NULL",
                )
                .fetch_one(&pool)
                .await;
                if let Ok((backlog, age)) = row {
                    metrics.outbox_backlog.set(backlog);
                    metrics
                        .outbox_oldest_age_seconds
                        .set(age.unwrap_or(0.0) as i64);
                }
            }
        });
    }
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = Arc::clone(&metrics);
            async move { metrics.render() }
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "metrics endpoint stopped");
        }
    });
}
