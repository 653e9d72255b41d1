use careloop_notifications::settings::NotificationSettings;
use careloop_proto::common::v1::CareRole;
use careloop_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use careloop_proto::notifications::v1::*;
use careloop_proto::referrals::v1::referrals_service_client::ReferralsServiceClient;
use careloop_proto::referrals::v1::*;
use careloop_runtime::auth::PrincipalKind;
use careloop_runtime::config::EventSettings;
use careloop_testkit::services::{self, Bearer, PlansService};
use sqlx::PgPool;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

pub use careloop_testkit::{in_hours, key, ts};

pub type Client = NotificationsServiceClient<InterceptedService<Channel, Bearer>>;
pub type Referrals = ReferralsServiceClient<InterceptedService<Channel, Bearer>>;

pub const NATS: &str = "nats://127.0.0.1:4222";

pub struct TestApp {
    /// Admin access to this service's test database (search_path = its schema).
    pub db: PgPool,
    /// Referrals' test database.
    pub referrals_db: PgPool,
    pub org_id: Uuid,
    pub events: Option<EventSettings>,
    plans: PlansService,
    channel: Channel,
    referrals: Channel,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// Notifications alone, with its router off (tests hand it events).
pub async fn spawn_app() -> TestApp {
    spawn(None).await
}

/// Plans, referrals and notifications on one private stream: referrals publishes, notifications
/// routes.
pub async fn spawn_with_events() -> TestApp {
    spawn(Some(careloop_testkit::event_settings(NATS))).await
}

async fn spawn(events: Option<EventSettings>) -> TestApp {
    careloop_runtime::telemetry::init_for_tests();
    let plans = services::spawn_plans().await;
    let mut stops = Vec::new();

    let referrals_db = careloop_testkit::fresh_database("referrals")
        .await
        .expect("referrals database");
    let mut settings = careloop_testkit::service_settings(&referrals_db);
    if let Some(e) = &events {
        settings.events = e.clone();
    }
    let mut own = careloop_referrals::settings::ReferralSettings::defaults();
    own.plans_addr = format!("http://{}", plans.addr);
    own.sweep_interval_ms = 3_600_000;
    own.pathways_enabled = false;
    let referrals = careloop_referrals::Application::build(settings, own)
        .await
        .expect("referrals builds");
    let referrals_addr = referrals.addr();
    stops.push(services::run_until_dropped(|s| {
        referrals.run_until_stopped(s)
    }));

    let db = careloop_testkit::fresh_database("notifications")
        .await
        .expect("notifications database");
    let mut settings = careloop_testkit::service_settings(&db);
    if let Some(e) = &events {
        settings.events = e.clone();
    }
    let mut own = NotificationSettings::defaults();
    own.plans_addr = format!("http://{}", plans.addr);
    // Tests step the escalation clock themselves.
    own.sweep_interval_ms = 3_600_000;
    own.watch_poll_ms = 200;
    // Tests dispatch webhooks themselves, to endpoints they serve on loopback.
    own.webhooks.dispatch_interval_ms = 3_600_000;
    own.webhooks.allow_http = true;
    let app = careloop_notifications::Application::build(settings, own)
        .await
        .expect("notifications builds");
    let addr = app.addr();
    stops.push(services::run_until_dropped(|s| app.run_until_stopped(s)));
    TestApp {
        db: db.admin,
        referrals_db: referrals_db.admin,
        org_id: Uuid::now_v7(),
        events,
        plans,
        channel: services::connect(addr).await,
        referrals: services::connect(referrals_addr).await,
        _stops: stops,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(events) = self.events.take() {
            // Streams are per test; remove them in the background.
            tokio::spawn(async move { careloop_testkit::remove_streams(&events).await });
        }
    }
}

impl TestApp {
    pub fn client_as(
        &self,
        kind: PrincipalKind,
        org_id: Uuid,
        subject: &str,
        roles: &[&str],
    ) -> Client {
        NotificationsServiceClient::with_interceptor(
            self.channel.clone(),
            Bearer(services::token_with_roles(kind, org_id, subject, roles)),
        )
    }

    /// Staff of the organization holding `role`.
    pub fn staff(&self, role: &str) -> Client {
        self.client_as(
            PrincipalKind::Staff,
            self.org_id,
            &format!("{role}-1"),
            &[role],
        )
    }

    /// An administrator of the organization.
    pub fn admin(&self) -> Client {
        self.client_as(PrincipalKind::Staff, self.org_id, "admin-1", &["admin"])
    }

    /// Referrals, as staff of the organization.
    pub fn referrals(&self) -> Referrals {
        ReferralsServiceClient::with_interceptor(
            self.referrals.clone(),
            Bearer(services::token(
                PrincipalKind::Staff,
                self.org_id,
                "nurse-1",
            )),
        )
    }

    pub async fn patient(&self) -> careloop_proto::plans::v1::Patient {
        self.plans.patient(self.org_id).await
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

    /// Plans as this service reaches it (caregivers' contacts).
    pub fn plans_access(&self) -> careloop_runtime::access::PlansAccess {
        let auth = careloop_runtime::auth::Authenticator::new(
            &careloop_testkit::dev_settings().auth,
            "notifications",
        )
        .expect("auth");
        careloop_runtime::access::PlansAccess::new(
            &format!("http://{}", self.plans.addr),
            &careloop_runtime::config::TlsSettings::ca_only(""),
            std::sync::Arc::new(auth),
            "notifications",
        )
        .expect("plans access")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        careloop_testkit::count(&self.db, sql).await
    }

    /// Rows a write could leave behind.
    pub async fn footprint(&self) -> i64 {
        self.count(
            "SELECT (SELECT count(*) FROM routing_rules) + (SELECT count(*) FROM items)
                  + coalesce((SELECT sum(version) FROM items), 0)::bigint
                  + (SELECT count(*) FROM outbox) + (SELECT count(*) FROM idempotency_keys)
                  + (SELECT count(*) FROM webhook_endpoints) + (SELECT count(*) FROM webhook_deliveries)
                  + (SELECT count(*) FROM rosters)",
        )
        .await
    }

    /// Places an outpatient lab order for the patient and records a result with `flag` (routed to
    /// the PCP, backup RN).
    pub async fn result(
        &self,
        patient_id: &str,
        flag: ResultFlag,
    ) -> careloop_proto::referrals::v1::LabResult {
        let mut r = self.referrals();
        let order = r
            .place_order(PlaceOrderRequest {
                idempotency_key: key(),
                patient_id: patient_id.into(),
                kind: OrderKind::Lab as i32,
                test_code: format!("T{}", Uuid::now_v7().simple()),
                description: "panel".into(),
                setting: OrderSetting::Outpatient as i32,
                owner_role: CareRole::Rn as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        r.record_result(RecordResultRequest {
            idempotency_key: key(),
            order_id: order.id,
            flag: flag as i32,
            code: "K".into(),
            summary: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
    }

    /// Waits until the role's inbox holds `n` items (open or closed); liveness only, never timing.
    pub async fn inbox_of(&self, role: &str, n: usize) -> Vec<InboxItem> {
        let mut c = self.staff(role);
        let role_value = careloop_notifications::domain::ladder::role_named(role).unwrap() as i32;
        for _ in 0..600 {
            let items = c
                .list_inbox(ListInboxRequest {
                    role: role_value,
                    include_closed: true,
                    page_size: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .items;
            if items.len() >= n {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gave up waiting for {n} items in the {role} inbox");
    }

    /// Waits until an item reaches `status`.
    pub async fn item_until(&self, id: &str, status: ItemStatus) -> InboxItem {
        let mut c = self.client_as(PrincipalKind::Service, Uuid::now_v7(), "gateway", &[]);
        for _ in 0..600 {
            let item = c
                .get_item(GetItemRequest { item_id: id.into() })
                .await
                .unwrap()
                .into_inner()
                .item
                .unwrap();
            if item.status == status as i32 {
                return item;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gave up waiting for item {id} to be {status:?}");
    }
}
