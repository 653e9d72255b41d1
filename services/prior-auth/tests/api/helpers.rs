use careloop_prior_auth::settings::PriorAuthSettings;
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::plans::v1::{CreatePatientRequest, Patient};
use careloop_proto::priorauth::v1::prior_auth_service_client::PriorAuthServiceClient;
use careloop_runtime::auth::{Authenticator, Principal, PrincipalKind};
use careloop_runtime::config::{EventSettings, Settings};
use careloop_runtime::secret::Secret;
use sqlx::PgPool;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

#[derive(Clone)]
pub struct Bearer(String);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.0).parse().expect("ascii token"),
        );
        Ok(req)
    }
}

pub type Client = PriorAuthServiceClient<InterceptedService<Channel, Bearer>>;

pub struct TestApp {
    /// Admin access to the prior-auth test database (search_path = prior_auth).
    pub db: PgPool,
    pub org_id: Uuid,
    auth: Authenticator,
    service: Channel,
    plans: Channel,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

fn base_settings(url: &str) -> Settings {
    let mut s = Settings::defaults();
    s.database.url = Secret::new(url.to_owned());
    s.database.max_connections = 8;
    s.grpc.addr = "127.0.0.1:0".into();
    s.grpc.shutdown_grace_ms = 0;
    s.events.enabled = false;
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(None).await
}

/// Spawns plans and prior-auth; with `events`, prior-auth publishes to that stream.
pub async fn spawn_app_with(events: Option<EventSettings>) -> TestApp {
    careloop_runtime::telemetry::init_for_tests();
    let plans_db = careloop_testkit::fresh_database("plans")
        .await
        .expect("plans database");
    let pa_db = careloop_testkit::fresh_database("prior_auth")
        .await
        .expect("prior-auth database");
    let mut stops = Vec::new();

    let plans = careloop_plans::Application::build(base_settings(&plans_db.service_url))
        .await
        .expect("plans builds");
    let plans_addr = plans.addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    stops.push(tx);
    tokio::spawn(plans.run_until_stopped(async move {
        let _ = rx.await;
    }));

    let mut settings = base_settings(&pa_db.service_url);
    if let Some(e) = &events {
        settings.events = e.clone();
    }
    let mut own = PriorAuthSettings::defaults();
    own.plans_addr = format!("http://{plans_addr}");
    // Tests call the sweeper themselves.
    own.sweep_interval_ms = 3_600_000;
    let auth = Authenticator::from_settings(&settings.auth).expect("auth");
    let app = careloop_prior_auth::Application::build(settings, own)
        .await
        .expect("prior-auth builds");
    let addr = app.addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    stops.push(tx);
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let connect = |a: std::net::SocketAddr| async move {
        Channel::from_shared(format!("http://{a}"))
            .unwrap()
            .connect()
            .await
            .expect("connects")
    };
    TestApp {
        db: pa_db.admin,
        org_id: Uuid::now_v7(),
        auth,
        service: connect(addr).await,
        plans: connect(plans_addr).await,
        _stops: stops,
    }
}

impl TestApp {
    pub fn token(&self, kind: PrincipalKind, org_id: Uuid, subject: &str) -> String {
        let p = Principal {
            subject: subject.into(),
            org_id,
            roles: vec!["rn".into()],
            kind,
        };
        self.auth
            .issue(&p, chrono::Duration::hours(1))
            .expect("token")
    }

    /// Staff of the managing organization.
    pub fn client(&self) -> Client {
        PriorAuthServiceClient::with_interceptor(
            self.service.clone(),
            Bearer(self.token(PrincipalKind::Staff, self.org_id, "nurse-1")),
        )
    }

    pub fn outsider(&self) -> Client {
        PriorAuthServiceClient::with_interceptor(
            self.service.clone(),
            Bearer(self.token(PrincipalKind::Partner, Uuid::now_v7(), "stranger")),
        )
    }

    pub async fn patient(&self) -> Patient {
        let mut plans = PlansServiceClient::with_interceptor(
            self.plans.clone(),
            Bearer(self.token(PrincipalKind::Staff, self.org_id, "nurse-1")),
        );
        plans
            .create_patient(CreatePatientRequest {
                idempotency_key: key(),
                mrn: format!("MRN-{}", &Uuid::now_v7().simple().to_string()[20..]),
                given_name: "Ada".into(),
                family_name: "Lovelace".into(),
                birth_date: "1950-03-04".into(),
                managing_org_id: self.org_id.to_string(),
            })
            .await
            .expect("patient")
            .into_inner()
            .patient
            .expect("patient")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(sql)
            .fetch_one(&self.db)
            .await
            .expect("count");
        n
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

pub fn key() -> String {
    Uuid::now_v7().to_string()
}

pub fn in_hours(h: i64) -> Option<prost_types::Timestamp> {
    Some(careloop_runtime::time::to_timestamp(
        chrono::Utc::now() + chrono::Duration::hours(h),
    ))
}

pub fn bad_field(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

pub fn ts(t: &Option<prost_types::Timestamp>) -> chrono::DateTime<chrono::Utc> {
    careloop_runtime::time::from_timestamp(t.as_ref().expect("timestamp")).expect("in range")
}
