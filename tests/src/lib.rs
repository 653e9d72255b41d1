//! The whole of CareLoop in one test process: plans, referrals, prior-auth, notifications, metrics
//! and the gateway, each on its own fresh database and port 0, all on one private event stream of
//! the machine's NATS. Tests talk to the gateway only, as partners do; they reach into a service's
//! database only to step a sweeper's clock (escalations) or to count what was stored.

use careloop_gateway::settings::GatewaySettings;
use careloop_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use careloop_runtime::auth::PrincipalKind;
use careloop_runtime::config::EventSettings;
use careloop_testkit::services::{Bearer, connect, run_until_dropped, token_with_roles};
use sqlx::PgPool;
use std::collections::HashMap;
use std::net::SocketAddr;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

pub const NATS: &str = "nats://127.0.0.1:4222";

pub type Gateway = GatewayServiceClient<InterceptedService<Channel, Bearer>>;

pub struct System {
    pub gateway_addr: SocketAddr,
    /// The gateway's HTTP door for providers' callbacks, when a test turned it on.
    pub callbacks_addr: Option<SocketAddr>,
    pub gateway_channel: Channel,
    pub gateway_db: PgPool,
    pub plans_db: PgPool,
    /// Plans itself, for the changes no curated write makes (a member removed, a consent revoked).
    pub plans_channel: Channel,
    pub notifications_db: PgPool,
    pub referrals_db: PgPool,
    pub prior_auth_db: PgPool,
    pub events: EventSettings,
    stops: HashMap<&'static str, tokio::sync::oneshot::Sender<()>>,
}

/// A change to the gateway's settings.
pub type GatewayTuning = Box<dyn FnOnce(&mut GatewaySettings) + Send>;

/// What a test changes before the system starts.
#[derive(Default)]
pub struct Tuning {
    /// Applied to the gateway's settings last (rate limits, deadlines, a downstream's address).
    pub gateway: Option<GatewayTuning>,
}

impl System {
    pub async fn start() -> Self {
        Self::start_tuned(Tuning::default()).await
    }

    pub async fn start_tuned(tuning: Tuning) -> Self {
        careloop_runtime::telemetry::init_for_tests();
        let events = careloop_testkit::event_settings(NATS);
        let mut stops = HashMap::new();
        let settings_for = |db: &careloop_testkit::TestDatabase| {
            let mut s = careloop_testkit::service_settings(db);
            s.events = events.clone();
            s
        };

        let db = careloop_testkit::fresh_database("plans")
            .await
            .expect("plans db");
        let plans = careloop_plans::Application::build(settings_for(&db))
            .await
            .expect("plans builds");
        let plans_db = db.admin.clone();
        let plans_socket = plans.addr();
        let plans_addr = format!("http://{plans_socket}");
        stops.insert("plans", run_until_dropped(|s| plans.run_until_stopped(s)));

        let referrals_db = careloop_testkit::fresh_database("referrals")
            .await
            .expect("referrals db");
        let mut own = careloop_referrals::settings::ReferralSettings::defaults();
        own.plans_addr = plans_addr.clone();
        own.sweep_interval_ms = 3_600_000;
        let referrals = careloop_referrals::Application::build(settings_for(&referrals_db), own)
            .await
            .expect("referrals builds");
        let referrals_addr = format!("http://{}", referrals.addr());
        stops.insert(
            "referrals",
            run_until_dropped(|s| referrals.run_until_stopped(s)),
        );

        let prior_auth_db = careloop_testkit::fresh_database("prior_auth")
            .await
            .expect("prior-auth db");
        let mut own = careloop_prior_auth::settings::PriorAuthSettings::defaults();
        own.plans_addr = plans_addr.clone();
        own.sweep_interval_ms = 3_600_000;
        let prior_auth = careloop_prior_auth::Application::build(settings_for(&prior_auth_db), own)
            .await
            .expect("prior-auth builds");
        let prior_auth_addr = format!("http://{}", prior_auth.addr());
        stops.insert(
            "prior-auth",
            run_until_dropped(|s| prior_auth.run_until_stopped(s)),
        );

        let notifications_db = careloop_testkit::fresh_database("notifications")
            .await
            .expect("notifications db");
        let mut own = careloop_notifications::settings::NotificationSettings::defaults();
        own.plans_addr = plans_addr.clone();
        // Tests step the escalation clock themselves.
        own.sweep_interval_ms = 3_600_000;
        own.watch_poll_ms = 200;
        let notifications =
            careloop_notifications::Application::build(settings_for(&notifications_db), own)
                .await
                .expect("notifications builds");
        let notifications_addr = format!("http://{}", notifications.addr());
        stops.insert(
            "notifications",
            run_until_dropped(|s| notifications.run_until_stopped(s)),
        );

        let metrics_db = careloop_testkit::fresh_database("metrics")
            .await
            .expect("metrics db");
        let mut own = careloop_metrics::settings::MetricsSettings::defaults();
        own.plans_addr = plans_addr.clone();
        own.gauge_interval_ms = 3_600_000;
        let metrics = careloop_metrics::Application::build(settings_for(&metrics_db), own)
            .await
            .expect("metrics builds");
        stops.insert(
            "metrics",
            run_until_dropped(|s| metrics.run_until_stopped(s)),
        );

        let gateway_db = careloop_testkit::fresh_database("gateway")
            .await
            .expect("gateway db");
        let mut own = GatewaySettings::defaults();
        own.plans_addr = plans_addr;
        own.referrals_addr = referrals_addr;
        own.prior_auth_addr = prior_auth_addr;
        own.notifications_addr = notifications_addr;
        own.cors_allowed_origins = vec!["https://partner.example".into()];
        if let Some(tune) = tuning.gateway {
            tune(&mut own);
        }
        let gateway = careloop_gateway::Application::build(settings_for(&gateway_db), own)
            .await
            .expect("gateway builds");
        let gateway_addr = gateway.addr();
        let callbacks_addr = gateway.callbacks_addr();
        stops.insert(
            "gateway",
            run_until_dropped(|s| gateway.run_until_stopped(s)),
        );

        Self {
            gateway_addr,
            callbacks_addr,
            gateway_channel: connect(gateway_addr).await,
            gateway_db: gateway_db.admin,
            plans_db,
            plans_channel: connect(plans_socket).await,
            notifications_db: notifications_db.admin,
            referrals_db: referrals_db.admin,
            prior_auth_db: prior_auth_db.admin,
            events,
            stops,
        }
    }

    /// Stops one service (graceful shutdown: it stops listening).
    pub fn stop(&mut self, service: &str) {
        self.stops.remove(service);
    }

    /// The gateway as someone: a dev-key token of `kind` in `org` with `roles`.
    pub fn as_(&self, kind: PrincipalKind, org: Uuid, subject: &str, roles: &[&str]) -> Gateway {
        GatewayServiceClient::with_interceptor(
            self.gateway_channel.clone(),
            Bearer(token_with_roles(kind, org, subject, roles)),
        )
    }

    /// Staff of `org` holding `roles`.
    pub fn staff(&self, org: Uuid, subject: &str, roles: &[&str]) -> Gateway {
        self.as_(PrincipalKind::Staff, org, subject, roles)
    }
}

impl Drop for System {
    fn drop(&mut self) {
        let events = self.events.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { careloop_testkit::remove_streams(&events).await });
        }
    }
}

/// A new idempotency key.
pub fn key() -> String {
    careloop_testkit::key()
}

/// Retries `check` until it returns `Some` (events travel through NATS); liveness only, never
/// timing: gives up after a generous number of tries.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("gave up waiting for {what}");
}
