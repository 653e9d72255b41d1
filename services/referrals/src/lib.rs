//! The referrals service: closed-loop referrals and orders, results routed by responsibility,
//! duplicate-test checks, the overdue sweeper and pathway triggers. `Application` is what main and
//! the tests both run.

pub mod api;
pub mod domain;
pub mod loops;
pub mod pathways;
pub mod settings;
pub mod store;
pub mod sweeper;

use careloop_proto::referrals::v1::referrals_service_server::ReferralsServiceServer;
use careloop_runtime::config::Settings;
use careloop_runtime::events::{Consumer, ConsumerConfig, EventBus};
use careloop_runtime::service::Host;
use settings::ReferralSettings;
use sqlx::PgPool;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const SCHEMA: &str = "referrals";
pub const SERVICE_NAME: &str = "referrals";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Application {
    host: Host,
}

impl Application {
    pub async fn build(settings: Settings, own: ReferralSettings) -> anyhow::Result<Self> {
        let mut host = Host::start(&settings, SERVICE_NAME, SCHEMA, &MIGRATOR).await?;
        let access = careloop_runtime::access::PlansAccess::new(
            &own.plans_addr,
            &settings.tls,
            Arc::clone(&host.auth),
            SERVICE_NAME,
        )?;
        let own = Arc::new(own);
        let api = api::ReferralsApi::new(host.pool.clone(), access.clone(), Arc::clone(&own));
        let auth = host.interceptor();
        host.server
            .routes()
            .add_service(tonic::service::interceptor::InterceptedService::new(
                ReferralsServiceServer::new(api)
                    .max_decoding_message_size(settings.grpc.max_message_bytes),
                auth,
            ));
        host.serve_audit(Arc::new(access.clone()));
        host.server
            .mark_serving(&[
                "careloop.referrals.v1.ReferralsService",
                "careloop.audit.v1.AuditService",
            ])
            .await;
        // Background work starts last, once nothing else in build can fail.
        let pathways = if settings.events.enabled && own.pathways_enabled {
            let bus = EventBus::connect(&settings.events).await?;
            let config = ConsumerConfig::new(
                "referrals-pathways",
                format!("{}.>", settings.events.subject_prefix),
            );
            let handler = pathways::Pathways {
                due: own.due.clone(),
                plans: Some(access.clone()),
            };
            Some(Consumer::new(
                host.pool.clone(),
                bus,
                config,
                handler,
                Arc::clone(&host.metrics),
            ))
        } else {
            None
        };
        host.start_publishing(&settings).await?;
        if let Some(consumer) = pathways {
            let task = consumer.spawn(host.background.signal());
            host.background.push(task);
        }
        let interval = Duration::from_millis(own.sweep_interval_ms);
        sweeper::schedule(&mut host.background, host.pool.clone(), interval);
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
