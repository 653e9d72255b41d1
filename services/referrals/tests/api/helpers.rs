use careloop_proto::referrals::v1::referrals_service_client::ReferralsServiceClient;
use careloop_referrals::settings::ReferralSettings;
use careloop_runtime::auth::PrincipalKind;
use careloop_runtime::config::EventSettings;
use careloop_testkit::services::{self, Bearer, PlansService};
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

pub use careloop_testkit::cases::bad_field;
pub use careloop_testkit::{in_hours, key, ts};

pub type Client = ReferralsServiceClient<InterceptedService<Channel, Bearer>>;

pub struct TestApp {
    /// Admin access to this service's test database (search_path = its schema).
    pub db: PgPool,
    pub org_id: Uuid,
    pub events: Option<EventSettings>,
    plans: PlansService,
    channel: Channel,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(None).await
}

/// Spawns plans (for access checks) and this service; with `events`, it publishes to that stream.
pub async fn spawn_app_with(events: Option<EventSettings>) -> TestApp {
    careloop_runtime::telemetry::init_for_tests();
    let plans = services::spawn_plans().await;
    let db = careloop_testkit::fresh_database("referrals")
        .await
        .expect("test database");
    let mut settings = careloop_testkit::service_settings(&db);
    if let Some(e) = &events {
        settings.events = e.clone();
    }
    let mut own = ReferralSettings::defaults();
    own.plans_addr = format!("http://{}", plans.addr);
    // Tests call the sweeper themselves.
    own.sweep_interval_ms = 3_600_000;
    let app = careloop_referrals::Application::build(settings, own)
        .await
        .expect("service builds");
    let addr = app.addr();
    let stop = services::run_until_dropped(|shutdown| app.run_until_stopped(shutdown));
    TestApp {
        db: db.admin,
        org_id: Uuid::now_v7(),
        events,
        plans,
        channel: services::connect(addr).await,
        _stop: stop,
    }
}

impl TestApp {
    /// Plans as this service reaches it (for handlers that create tasks there).
    pub fn plans_access(&self) -> careloop_runtime::access::PlansAccess {
        let auth = careloop_runtime::auth::Authenticator::new(
            &careloop_testkit::dev_settings().auth,
            "referrals",
        )
        .expect("auth");
        careloop_runtime::access::PlansAccess::new(
            &format!("http://{}", self.plans.addr),
            &careloop_runtime::config::TlsSettings::ca_only(""),
            std::sync::Arc::new(auth),
            "referrals",
        )
        .expect("plans access")
    }

    /// Plans, as staff of the managing organization.
    pub fn plans_client(
        &self,
    ) -> careloop_proto::plans::v1::plans_service_client::PlansServiceClient<
        InterceptedService<Channel, Bearer>,
    > {
        careloop_proto::plans::v1::plans_service_client::PlansServiceClient::with_interceptor(
            self.plans.channel.clone(),
            Bearer(services::token(
                PrincipalKind::Staff,
                self.org_id,
                "nurse-1",
            )),
        )
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn client_as(&self, kind: PrincipalKind, org_id: Uuid, subject: &str) -> Client {
        ReferralsServiceClient::with_interceptor(
            self.channel.clone(),
            Bearer(services::token(kind, org_id, subject)),
        )
    }

    /// Staff of the managing organization.
    pub fn client(&self) -> Client {
        self.client_as(PrincipalKind::Staff, self.org_id, "nurse-1")
    }

    /// An internal service (the gateway), allowed cross-patient worklists.
    pub fn service_client(&self) -> Client {
        self.client_as(PrincipalKind::Service, Uuid::now_v7(), "gateway")
    }

    pub fn outsider(&self) -> Client {
        self.client_as(PrincipalKind::Partner, Uuid::now_v7(), "stranger")
    }

    pub async fn patient(&self) -> careloop_proto::plans::v1::Patient {
        self.plans.patient(self.org_id).await
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

    /// Shares the patient with another organization (treatment, read and write).
    pub async fn share(&self, patient: &careloop_proto::plans::v1::Patient, org: Uuid) {
        self.plans.share(patient, org).await
    }

    /// Staff of `org`.
    pub fn staff_of(&self, org: Uuid, subject: &str) -> Client {
        self.client_as(PrincipalKind::Staff, org, subject)
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        careloop_testkit::count(&self.db, sql).await
    }

    /// Rows a write could leave behind.
    pub async fn footprint(&self) -> i64 {
        self.count(
            "SELECT (SELECT count(*) FROM referrals) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM results)
                  + (SELECT count(*) FROM pathway_rules) + (SELECT count(*) FROM outbox)
                  + (SELECT count(*) FROM idempotency_keys) + (SELECT count(*) FROM referral_timeline)
                  + (SELECT count(*) FROM audit_log WHERE outcome = 'ok' AND action NOT LIKE 'Get%'
                        AND action NOT LIKE 'List%')",
        )
        .await
    }
}
