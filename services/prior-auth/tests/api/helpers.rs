use careloop_prior_auth::settings::PriorAuthSettings;
use careloop_proto::priorauth::v1::prior_auth_service_client::PriorAuthServiceClient;
use careloop_runtime::auth::PrincipalKind;
use careloop_runtime::config::EventSettings;
use careloop_testkit::services::{self, Bearer, PlansService};
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

pub use careloop_testkit::cases::bad_field;
pub use careloop_testkit::{in_hours, key, ts};

pub type Client = PriorAuthServiceClient<InterceptedService<Channel, Bearer>>;

pub struct TestApp {
    /// Admin access to this service's test database (search_path = its schema).
    pub db: PgPool,
    pub org_id: Uuid,
    /// The organization of payer `payer-acme` in the payer directory.
    pub acme_org: Uuid,
    plans: PlansService,
    channel: Channel,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(None).await
}

/// Counts calendar days in `zone` instead of the default.
pub async fn spawn_app_in_zone(zone: &str) -> TestApp {
    spawn(None, Some(zone)).await
}

/// Spawns plans (for access checks) and this service; with `events`, it publishes to that stream.
pub async fn spawn_app_with(events: Option<EventSettings>) -> TestApp {
    spawn(events, None).await
}

async fn spawn(events: Option<EventSettings>, zone: Option<&str>) -> TestApp {
    careloop_runtime::telemetry::init_for_tests();
    let plans = services::spawn_plans().await;
    let db = careloop_testkit::fresh_database("prior_auth")
        .await
        .expect("test database");
    let mut settings = careloop_testkit::service_settings(&db);
    if let Some(e) = &events {
        settings.events = e.clone();
    }
    let mut own = PriorAuthSettings::defaults();
    own.plans_addr = format!("http://{}", plans.addr);
    let acme_org = Uuid::now_v7();
    own.payers.insert("payer-acme".into(), acme_org.to_string());
    // Tests call the sweeper themselves.
    own.sweep_interval_ms = 3_600_000;
    if let Some(zone) = zone {
        own.time_zone = zone.to_owned();
    }
    let app = careloop_prior_auth::Application::build(settings, own)
        .await
        .expect("service builds");
    let addr = app.addr();
    let stop = services::run_until_dropped(|shutdown| app.run_until_stopped(shutdown));
    TestApp {
        db: db.admin,
        org_id: Uuid::now_v7(),
        acme_org,
        plans,
        channel: services::connect(addr).await,
        _stop: stop,
    }
}

impl TestApp {
    pub fn client_as(&self, kind: PrincipalKind, org_id: Uuid, subject: &str) -> Client {
        self.client_with_roles(kind, org_id, subject, &["rn"])
    }

    pub fn client_with_roles(
        &self,
        kind: PrincipalKind,
        org_id: Uuid,
        subject: &str,
        roles: &[&str],
    ) -> Client {
        PriorAuthServiceClient::with_interceptor(
            self.channel.clone(),
            Bearer(services::token_with_roles(kind, org_id, subject, roles)),
        )
    }

    /// The managing organization's prior-auth coordinator, who also types in payer answers
    /// received by phone or fax.
    pub fn client(&self) -> Client {
        self.client_with_roles(
            PrincipalKind::Staff,
            self.org_id,
            "coordinator-1",
            &["prior_auth_coordinator"],
        )
    }

    /// A nurse of the managing organization (not a coordinator).
    pub fn nurse(&self) -> Client {
        self.client_as(PrincipalKind::Staff, self.org_id, "nurse-1")
    }

    pub fn outsider(&self) -> Client {
        self.client_as(PrincipalKind::Partner, Uuid::now_v7(), "stranger")
    }

    /// The authorization circle around `patient` (see `PlansService::circle`).
    pub async fn circle(
        &self,
        patient: &careloop_proto::plans::v1::Patient,
        team_org: Uuid,
        family_org: Uuid,
        payer_org: Uuid,
    ) {
        self.plans
            .circle(patient, team_org, family_org, payer_org)
            .await
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub async fn patient(&self) -> careloop_proto::plans::v1::Patient {
        self.plans.patient(self.org_id).await
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        careloop_testkit::count(&self.db, sql).await
    }

    /// Rows a write could leave behind.
    pub async fn footprint(&self) -> i64 {
        self.count(
            "SELECT (SELECT count(*) FROM requests) + coalesce((SELECT sum(version) FROM requests), 0)::bigint
                  + (SELECT count(*) FROM outbox) + (SELECT count(*) FROM idempotency_keys)",
        )
        .await
    }
}
