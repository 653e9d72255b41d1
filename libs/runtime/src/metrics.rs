//! Operational metrics in Prometheus text format on their own HTTP port: requests, latency and
//! errors per RPC, and the outbox backlog.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
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
}

impl Metrics {
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
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
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
