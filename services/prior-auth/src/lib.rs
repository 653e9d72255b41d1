//! The prior-auth service: prior authorizations tracked like any open loop, with CMS-0057-F
//! decision deadlines and sweepers for overdue decisions and expiring approvals. `Application` is what main and
//! the tests both run.

pub mod api;
pub mod domain;
pub mod settings;
pub mod store;
pub mod sweeper;

use careloop_proto::priorauth::v1::prior_auth_service_server::PriorAuthServiceServer;
use careloop_runtime::config::Settings;
use careloop_runtime::service::Host;
use settings::PriorAuthSettings;
use sqlx::PgPool;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const SCHEMA: &str = "prior_auth";
pub const SERVICE_NAME: &str = "prior-auth";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Application {
    host: Host,
}

impl Application {
    pub async fn build(settings: Settings, own: PriorAuthSettings) -> anyhow::Result<Self> {
        let mut host = Host::start(&settings, SERVICE_NAME, SCHEMA, &MIGRATOR).await?;
        let access = careloop_runtime::access::PlansAccess::new(
            &own.plans_addr,
            &settings.tls,
            Arc::clone(&host.auth),
            SERVICE_NAME,
        )?;
        let own = Arc::new(own);
        let api = api::PriorAuthApi::new(host.pool.clone(), access.clone(), Arc::clone(&own))?;
        let auth = host.interceptor();
        host.server
            .routes()
            .add_service(tonic::service::interceptor::InterceptedService::new(
                PriorAuthServiceServer::new(api)
                    .max_decoding_message_size(settings.grpc.max_message_bytes),
                auth,
            ));
        host.serve_audit(Arc::new(access.clone()));
        host.server
            .mark_serving(&[
                "careloop.priorauth.v1.PriorAuthService",
                "careloop.audit.v1.AuditService",
            ])
            .await;
        // Background work starts last, once nothing else in build can fail.
        host.start_publishing(&settings).await?;
        let interval = Duration::from_millis(own.sweep_interval_ms);
        let within = chrono::Duration::days(own.expiring_within_days);
        sweeper::schedule(&mut host.background, host.pool.clone(), interval, within);
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
