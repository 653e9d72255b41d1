//! The metrics service: keeps the events the coordination measures read and answers them. This
//! first part measures prior authorizations: the CMS-0057-F report and each payer against its
//! clocks. `Application` is what main and the tests both run.

pub mod api;
pub mod domain;
pub mod gauges;
pub mod recorder;
pub mod settings;
pub mod store;

use careloop_proto::metrics::v1::metrics_service_server::MetricsServiceServer;
use careloop_runtime::config::Settings;
use careloop_runtime::events::{Consumer, ConsumerConfig, EventBus};
use careloop_runtime::service::Host;
use settings::MetricsSettings;
use sqlx::PgPool;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub const SCHEMA: &str = "metrics";
pub const SERVICE_NAME: &str = "metrics";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Application {
    host: Host,
}

impl Application {
    pub async fn build(settings: Settings, own: MetricsSettings) -> anyhow::Result<Self> {
        let mut host = Host::start(&settings, SERVICE_NAME, SCHEMA, &MIGRATOR).await?;
        let api = api::MetricsApi::new(host.pool.clone());
        let auth = host.interceptor();
        host.server
            .routes()
            .add_service(tonic::service::interceptor::InterceptedService::new(
                MetricsServiceServer::new(api)
                    .max_decoding_message_size(settings.grpc.max_message_bytes),
                auth,
            ));
        let access = careloop_runtime::access::PlansAccess::new(
            &own.plans_addr,
            &settings.tls,
            Arc::clone(&host.auth),
            SERVICE_NAME,
        )?;
        host.serve_audit(Arc::new(access));
        host.server
            .mark_serving(&[
                "careloop.metrics.v1.MetricsService",
                "careloop.audit.v1.AuditService",
            ])
            .await;
        let recorder = if settings.events.enabled && own.recorder_enabled {
            let bus = EventBus::connect(&settings.events).await?;
            let config = ConsumerConfig::new(
                "metrics-recorder",
                format!("{}.>", settings.events.subject_prefix),
            );
            Some(Consumer::new(
                host.pool.clone(),
                bus,
                config,
                recorder::Recorder,
                Arc::clone(&host.metrics),
            ))
        } else {
            None
        };
        let gauges = gauges::Gauges::new(&host.metrics)?;
        host.start_publishing(&settings).await?;
        {
            let pool = host.pool.clone();
            host.background.every(
                std::time::Duration::from_millis(own.gauge_interval_ms),
                move || {
                    let pool = pool.clone();
                    let gauges = Arc::clone(&gauges);
                    async move {
                        if let Err(error) = gauges.refresh(&pool).await {
                            tracing::warn!(error = %careloop_runtime::error::redacted(&error), "measure gauges not refreshed");
                        }
                    }
                },
            );
        }
        if let Some(consumer) = recorder {
            let task = consumer.spawn(host.background.signal());
            host.background.push(task);
        }
        Ok(Self { host })
    }

    /// Migrates the schema and returns (`--migrate-only`, the chart's init container).
    pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
        Host::migrate_only(settings, SCHEMA, &MIGRATOR).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.host.addr()
    }

    pub fn pool(&self) -> PgPool {
        self.host.pool.clone()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        self.host.run_until_stopped(shutdown).await
    }
}
