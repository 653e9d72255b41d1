//! The gateway: the one door for partner organizations and apps. It composes the services (the
//! one-screen patient summary, a role's worklist across services), forwards a curated set of writes
//! to the owning service for the caller, and keeps the door: authentication, scopes per kind of
//! caller, plans' access decisions, rate limits, audit, and gRPC-Web for callers without HTTP/2.
//! `Application` is what main and the tests both run.

pub mod access;
pub mod api;
pub mod audit;
pub mod callbacks;
pub mod downstream;
pub mod forward;
pub mod gate;
pub mod items;
pub mod settings;
pub mod summary;
pub mod worklist;

use careloop_proto::gateway::v1::gateway_service_server::GatewayServiceServer;
use careloop_runtime::config::Settings;
use careloop_runtime::service::Host;
use downstream::{BreakerSettings, Downstream};
use settings::GatewaySettings;
use sqlx::PgPool;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::Layer;

pub const SCHEMA: &str = "gateway";
pub const SERVICE_NAME: &str = "gateway";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Application {
    host: Host,
    callbacks_addr: Option<SocketAddr>,
}

impl Application {
    pub async fn build(settings: Settings, own: GatewaySettings) -> anyhow::Result<Self> {
        let mut host = Host::start(&settings, SERVICE_NAME, SCHEMA, &MIGRATOR).await?;
        let breaker = BreakerSettings {
            failures: own.breaker_failures,
            open_for: Duration::from_millis(own.breaker_open_ms),
        };
        let downstream = |name: &'static str, addr: &str| {
            Downstream::new(
                name,
                addr,
                &settings.tls,
                Arc::clone(&host.auth),
                breaker,
                own.retry_budget_ratio,
                Duration::from_millis(own.call_timeout_ms),
            )
        };
        let plans = downstream("plans", &own.plans_addr)?;
        let referrals = downstream("referrals", &own.referrals_addr)?;
        let prior_auth = downstream("prior-auth", &own.prior_auth_addr)?;
        let notifications = downstream("notifications", &own.notifications_addr)?;
        let access = access::AccessCache::new(
            Arc::clone(&plans),
            Duration::from_millis(own.access_cache_ttl_ms),
        );
        let limiter = Arc::new(gate::RateLimiter::new(
            gate::Rate {
                per_sec: own.org_rate_per_sec,
                burst: own.org_burst,
            },
            gate::Rate {
                per_sec: own.principal_rate_per_sec,
                burst: own.principal_burst,
            },
        ));
        let api = api::Gateway {
            pool: host.pool.clone(),
            settings: Arc::new(own.clone()),
            plans: Arc::clone(&plans),
            referrals: Arc::clone(&referrals),
            prior_auth: Arc::clone(&prior_auth),
            notifications: Arc::clone(&notifications),
            access: Arc::clone(&access),
        };
        let gate = gate::GateLayer::new(
            Arc::clone(&limiter),
            host.pool.clone(),
            Arc::clone(&host.metrics),
        );
        let service = tonic::service::interceptor::InterceptedService::new(
            gate.layer(
                GatewayServiceServer::new(api)
                    .max_decoding_message_size(settings.grpc.max_message_bytes),
            ),
            host.interceptor(),
        );
        host.server.routes().add_service(service);
        host.server
            .enable_web(web::cors(&own.cors_allowed_origins)?);
        let audit_scope = careloop_runtime::access::PlansAccess::new(
            &own.plans_addr,
            &settings.tls,
            Arc::clone(&host.auth),
            SERVICE_NAME,
        )?;
        host.serve_audit(Arc::new(audit_scope));
        host.server
            .mark_serving(&[
                "careloop.gateway.v1.GatewayService",
                "careloop.audit.v1.AuditService",
            ])
            .await;

        let callbacks_addr = if own.callbacks_addr.is_empty() {
            None
        } else {
            if own.sms_callback_secret.expose().is_empty() {
                anyhow::bail!(
                    "gateway.callbacks_addr is set but gateway.sms_callback_secret is empty"
                );
            }
            let listener = tokio::net::TcpListener::bind(&own.callbacks_addr).await?;
            let addr = listener.local_addr()?;
            let router = callbacks::Callbacks {
                sms_secret: own.sms_callback_secret.clone(),
                notifications: Arc::clone(&notifications),
                timeout: Duration::from_millis(own.call_timeout_ms),
                metrics: Arc::clone(&host.metrics),
            }
            .router();
            let mut stop = host.background.signal();
            host.background.push(tokio::spawn(async move {
                let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                });
                if let Err(error) = serve.await {
                    tracing::warn!(%error, "provider callbacks stopped");
                }
            }));
            tracing::info!(%addr, "provider callbacks");
            Some(addr)
        };
        let replicas = [plans, referrals, prior_auth, notifications];
        host.background.every(
            Duration::from_millis(own.resolve_interval_ms.max(1000)),
            move || {
                let replicas = replicas.clone();
                async move {
                    for downstream in &replicas {
                        downstream.refresh().await;
                    }
                }
            },
        );
        {
            let pool = host.pool.clone();
            host.background
                .every(Duration::from_secs(30), move || {
                    let pool = pool.clone();
                    let limiter = Arc::clone(&limiter);
                    async move {
                        match api_clients(&pool).await {
                            Ok(rates) => limiter.set_overrides(rates),
                            Err(error) => tracing::warn!(error = %careloop_runtime::error::redacted(&error.into()), "api client limits not loaded"),
                        }
                    }
                });
        }
        if settings.events.enabled {
            let bus = careloop_runtime::events::EventBus::connect(&settings.events).await?;
            let task = access.listen(
                bus.client.clone(),
                &settings.events.subject_prefix,
                host.background.signal(),
            );
            host.background.push(task);
        }
        Ok(Self {
            host,
            callbacks_addr,
        })
    }

    /// Migrates the schema and returns (`--migrate-only`, the chart's init container).
    pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
        Host::migrate_only(settings, SCHEMA, &MIGRATOR).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.host.addr()
    }

    /// Where providers' callbacks are received, when on.
    pub fn callbacks_addr(&self) -> Option<SocketAddr> {
        self.callbacks_addr
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

/// Per-organization rate limits of the API clients the gateway knows.
async fn api_clients(pool: &PgPool) -> Result<HashMap<uuid::Uuid, gate::Rate>, sqlx::Error> {
    let rows: Vec<(uuid::Uuid, f64, i32)> =
        sqlx::query_as("SELECT org_id, requests_per_second, burst FROM api_clients")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(org, per_sec, burst)| {
            (
                org,
                gate::Rate {
                    per_sec,
                    burst: u32::try_from(burst).unwrap_or(1),
                },
            )
        })
        .collect())
}

pub mod web {
    //! gRPC-Web's browser side: which origins may call, and the headers a gRPC-Web client sends
    //! and must be able to read back.
    use http::{HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};

    pub fn cors(origins: &[String]) -> anyhow::Result<CorsLayer> {
        let allow = if origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            let list = origins
                .iter()
                .map(|o| HeaderValue::from_str(o))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    anyhow::anyhow!("gateway.cors_allowed_origins holds an invalid origin")
                })?;
            AllowOrigin::list(list)
        };
        let names = |list: &[&'static str]| {
            list.iter()
                .map(|n| HeaderName::from_static(n))
                .collect::<Vec<_>>()
        };
        Ok(CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers(names(&[
                "authorization",
                "content-type",
                "x-grpc-web",
                "x-user-agent",
                "grpc-timeout",
            ]))
            .expose_headers(names(&[
                "grpc-status",
                "grpc-message",
                "grpc-status-details-bin",
            ]))
            .max_age(std::time::Duration::from_secs(600)))
    }
}
