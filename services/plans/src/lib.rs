//! The plans service: the one-screen shared care plan, the care team and its roles, consents,
//! tasks, SBAR handoffs and care transitions. `Application` is what main and the tests both run.

pub mod api;
pub mod domain;
pub mod store;
pub mod sweeper;

use careloop_proto::plans::v1::plans_service_server::PlansServiceServer;
use careloop_runtime::config::Settings;
use careloop_runtime::service::Host;
use sqlx::PgPool;
use std::future::Future;
use std::net::SocketAddr;

pub const SCHEMA: &str = "plans";
pub const SERVICE_NAME: &str = "plans";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Application {
    host: Host,
}

impl Application {
    /// Connects, migrates, binds the listeners and marks health SERVING; serving starts in
    /// `run_until_stopped`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let mut host = Host::start(&settings, SERVICE_NAME, SCHEMA, &MIGRATOR).await?;
        let api = api::PlansApi::new(host.pool.clone());
        let auth = host.interceptor();
        host.server
            .routes()
            .add_service(tonic::service::interceptor::InterceptedService::new(
                PlansServiceServer::new(api)
                    .max_decoding_message_size(settings.grpc.max_message_bytes),
                auth,
            ));
        host.serve_audit(std::sync::Arc::new(api::ManagingScope::new(
            host.pool.clone(),
        )));
        host.server
            .mark_serving(&[
                "careloop.plans.v1.PlansService",
                "careloop.audit.v1.AuditService",
            ])
            .await;
        // Background work starts last, once nothing else in build can fail.
        host.start_publishing(&settings).await?;
        sweeper::schedule(
            &mut host.background,
            host.pool.clone(),
            sweeper::SWEEP_EVERY,
        );
        Ok(Self { host })
    }

    /// Migrates the schema and returns (`--migrate-only`, the chart's init container).
    pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
        Host::migrate_only(settings, SCHEMA, &MIGRATOR).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.host.addr()
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.host.metrics_addr()
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
