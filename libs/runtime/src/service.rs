//! What every service's `Application` is made of: the pool with migrations run, the metrics endpoint,
//! the gRPC server with health and reflection, the authenticator, and the background tasks, started
//! in that order and stopped in reverse.

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::conn::Acceptor;
use crate::events::Background;
use crate::metrics::Metrics;
use crate::server::GrpcServer;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Host {
    pub name: &'static str,
    pub pool: PgPool,
    pub metrics: Arc<Metrics>,
    pub server: GrpcServer,
    pub auth: Arc<Authenticator>,
    limiter: Arc<crate::limits::PrincipalLimiter>,
    pub background: Background,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
}

impl Host {
    /// Connects to the service's schema and migrates it, binds the metrics and gRPC listeners and
    /// prepares the server. Health stays NOT_SERVING until `mark_serving`.
    pub async fn start(
        settings: &Settings,
        name: &'static str,
        schema: &str,
        migrator: &Migrator,
    ) -> anyhow::Result<Self> {
        let pool = crate::db::connect(&settings.database, schema).await?;
        if settings.database.migrate_at_start {
            crate::db::prepare(&settings.database, schema, migrator, &pool).await?;
        } else {
            tracing::info!(
                schema,
                "migrations are run before start (migrate_at_start = false)"
            );
        }
        let metrics = Metrics::new(name);
        metrics.watch_outbox(pool.clone());
        let metrics_addr = if settings.metrics.addr.is_empty() {
            None
        } else {
            let listener = TcpListener::bind(&settings.metrics.addr).await?;
            let addr = listener.local_addr()?;
            crate::metrics::serve(listener, Arc::clone(&metrics));
            Some(addr)
        };
        let listener = TcpListener::bind(&settings.grpc.addr).await?;
        let addr = listener.local_addr()?;
        let auth = Arc::new(Authenticator::new(&settings.auth, name)?);
        let limiter = Arc::new(crate::limits::PrincipalLimiter::new(
            settings.grpc.per_principal_concurrency,
        ));
        crate::auth::announce_dev_token(&auth)?;
        let acceptor = Acceptor {
            tls: if settings.grpc.tls {
                let config = crate::tls::server_config(&settings.tls, settings.grpc.client_auth)?;
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
            } else {
                None
            },
            trust_domain: Arc::from(settings.auth.trust_domain.as_str()),
        };
        let server = GrpcServer::new(
            listener,
            acceptor,
            settings.grpc.clone(),
            Arc::clone(&metrics),
        )
        .await?;
        Ok(Self {
            name,
            pool,
            metrics,
            server,
            auth,
            limiter,
            background: Background::new(),
            addr,
            metrics_addr,
        })
    }

    /// Migrates the schema (as the owner when `database.migration_url` is set) and returns: what
    /// `<service> --migrate-only` does in the chart's init container.
    pub async fn migrate_only(
        settings: &Settings,
        schema: &str,
        migrator: &Migrator,
    ) -> anyhow::Result<()> {
        let pool = crate::db::connect(&settings.database, schema).await?;
        let result = crate::db::prepare(&settings.database, schema, migrator, &pool).await;
        pool.close().await;
        result?;
        tracing::info!(schema, "migrated");
        Ok(())
    }

    /// Starts the outbox relay (when events are enabled); call last in `build`.
    pub async fn start_publishing(&mut self, settings: &Settings) -> anyhow::Result<()> {
        crate::events::start_publishing(
            &self.pool,
            &settings.events,
            &self.metrics,
            &mut self.background,
        )
        .await?;
        Ok(())
    }

    /// Serves `careloop.audit.v1.AuditService` from this service's audit log, with `scope`
    /// deciding who belongs to a patient's managing organization.
    pub fn serve_audit(&mut self, scope: Arc<dyn crate::audit_service::PatientScope>) {
        let api = crate::audit_service::AuditApi::new(self.pool.clone(), self.name, scope);
        let service = tonic::service::interceptor::InterceptedService::new(
            careloop_proto::audit::v1::audit_service_server::AuditServiceServer::new(api),
            self.interceptor(),
        );
        self.server.routes().add_service(service);
    }

    /// The authentication interceptor for this service's API, with its per-principal limit.
    pub fn interceptor(&self) -> crate::auth::AuthInterceptor {
        crate::auth::AuthInterceptor::new(Arc::clone(&self.auth))
            .with_limiter(Arc::clone(&self.limiter))
            .with_metrics(Arc::clone(&self.metrics))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Serves until `shutdown` resolves, drains in-flight calls, stops background work, closes the pool.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        tracing::info!(service = self.name, addr = %self.addr, "serving");
        let result = self.server.serve(shutdown).await;
        self.background.stop().await;
        self.pool.close().await;
        result
    }
}
