//! The prior-auth service: prior authorizations tracked like any open loop, with CMS-0057-F
//! decision deadlines and sweepers for overdue decisions and expiring approvals. `Application` is what main and
//! the tests both run.

pub mod api;
pub mod domain;
pub mod settings;
pub mod store;
pub mod sweeper;

use careloop_proto::priorauth::v1::prior_auth_service_server::PriorAuthServiceServer;
use careloop_runtime::auth::{AuthInterceptor, Authenticator};
use careloop_runtime::config::Settings;
use careloop_runtime::events::Background;
use careloop_runtime::metrics::Metrics;
use careloop_runtime::server::GrpcServer;
use settings::PriorAuthSettings;
use sqlx::PgPool;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub const SCHEMA: &str = "prior_auth";
pub const SERVICE_NAME: &str = "prior-auth";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Application {
    server: GrpcServer,
    background: Background,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    pool: PgPool,
}

impl Application {
    pub async fn build(settings: Settings, own: PriorAuthSettings) -> anyhow::Result<Self> {
        let pool = careloop_runtime::db::connect(&settings.database, SCHEMA).await?;
        careloop_runtime::db::migrate(&pool, SCHEMA, &MIGRATOR).await?;
        let metrics = Metrics::new(SERVICE_NAME);
        metrics.watch_outbox(pool.clone());
        let metrics_addr = if settings.metrics.addr.is_empty() {
            None
        } else {
            let listener = TcpListener::bind(&settings.metrics.addr).await?;
            let addr = listener.local_addr()?;
            careloop_runtime::metrics::serve(listener, Arc::clone(&metrics));
            Some(addr)
        };
        let listener = TcpListener::bind(&settings.grpc.addr).await?;
        let addr = listener.local_addr()?;
        let auth = Arc::new(Authenticator::from_settings(&settings.auth)?);
        let access = careloop_runtime::access::PlansAccess::new(
            &own.plans_addr,
            Arc::clone(&auth),
            SERVICE_NAME,
        )?;
        let own = Arc::new(own);
        let mut server =
            GrpcServer::new(listener, settings.grpc.clone(), Arc::clone(&metrics)).await?;
        let api = api::PriorAuthApi::new(pool.clone(), access, Arc::clone(&own))?;
        server
            .routes()
            .add_service(PriorAuthServiceServer::with_interceptor(
                api,
                AuthInterceptor::new(auth),
            ));
        server
            .mark_serving(&["careloop.priorauth.v1.PriorAuthService"])
            .await;

        // Background work starts last, once nothing else in build can fail.
        let mut background = Background::new();
        background.push(sweeper::spawn(
            pool.clone(),
            Duration::from_millis(own.sweep_interval_ms),
            chrono::Duration::days(own.expiring_within_days),
            background.signal(),
        ));
        careloop_runtime::events::start_publishing(
            &pool,
            &settings.events,
            &metrics,
            &mut background,
        )
        .await?;
        Ok(Self {
            server,
            background,
            addr,
            metrics_addr,
            pool,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    /// Serves until `shutdown` resolves, drains in-flight calls, stops background work, closes the pool.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "prior-auth serving");
        let result = self.server.serve(shutdown).await;
        self.background.stop().await;
        self.pool.close().await;
        result
    }
}
