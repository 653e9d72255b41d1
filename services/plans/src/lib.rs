//! The plans service: the one-screen shared care plan, the care team and its roles, consents,
//! tasks, SBAR handoffs and care transitions. `Application` is what main and the tests both run.

pub mod api;
pub mod domain;
pub mod store;

use careloop_proto::plans::v1::plans_service_server::PlansServiceServer;
use careloop_runtime::auth::{AuthInterceptor, Authenticator};
use careloop_runtime::config::Settings;
use careloop_runtime::metrics::Metrics;
use careloop_runtime::server::GrpcServer;
use sqlx::PgPool;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub const SCHEMA: &str = "plans";
pub const SERVICE_NAME: &str = "plans";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Application {
    server: GrpcServer,
    background: careloop_runtime::events::Background,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    pool: PgPool,
}

impl Application {
    /// Connects, migrates, binds the listeners and marks health SERVING; serving starts in
    /// `run_until_stopped`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
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
        // Background work starts last, once nothing else in build can fail.
        let mut background = careloop_runtime::events::Background::new();
        careloop_runtime::events::start_publishing(
            &pool,
            &settings.events,
            &metrics,
            &mut background,
        )
        .await?;
        let mut server =
            GrpcServer::new(listener, settings.grpc.clone(), Arc::clone(&metrics)).await?;
        let api = api::PlansApi::new(pool.clone());
        server
            .routes()
            .add_service(PlansServiceServer::with_interceptor(
                api,
                AuthInterceptor::new(auth),
            ));
        server
            .mark_serving(&["careloop.plans.v1.PlansService"])
            .await;
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

    /// Serves until `shutdown` resolves, drains in-flight calls, stops the relay, then closes the pool.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "plans serving");
        let result = self.server.serve(shutdown).await;
        self.background.stop().await;
        self.pool.close().await;
        result
    }
}
