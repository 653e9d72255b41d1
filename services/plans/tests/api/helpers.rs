use careloop_proto::common::v1::CareRole;
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::{Authenticator, Principal, PrincipalKind};
use careloop_runtime::config::Settings;
use sqlx::PgPool;
use std::net::SocketAddr;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

pub use careloop_testkit::cases::bad_field;
pub use careloop_testkit::{in_hours, key, ts};

pub type Client = PlansServiceClient<InterceptedService<Channel, Bearer>>;

#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value: MetadataValue<_> =
                format!("Bearer {token}").parse().expect("token is ascii");
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
    }
}

pub struct TestApp {
    pub metrics_addr: SocketAddr,
    /// The service's own (runtime) role's connection URL, for tests of what it may do.
    pub service_url: String,
    /// Admin access to the test database for assertions (search_path = plans).
    pub db: PgPool,
    pub org_id: Uuid,
    auth: Authenticator,
    channel: Channel,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|settings| settings.events.enabled = false).await
}

/// Spawns the service with settings adjusted by `adjust` (e.g. events on a private NATS server).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    careloop_runtime::telemetry::init_for_tests();
    let database = careloop_testkit::fresh_database("plans")
        .await
        .expect("fresh test database");
    let mut settings = careloop_testkit::service_settings(&database);
    settings.metrics.addr = "127.0.0.1:0".into();
    adjust(&mut settings);
    let auth = Authenticator::new(&settings.auth, "plans").expect("auth settings");
    let app = careloop_plans::Application::build(settings)
        .await
        .expect("application builds");
    let addr = app.addr();
    let metrics_addr = app.metrics_addr().expect("metrics enabled");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    TestApp {
        metrics_addr,
        service_url: database.service_url.clone(),
        db: database.admin,
        org_id: Uuid::now_v7(),
        auth,
        channel,
        shutdown: Some(tx),
    }
}

impl TestApp {
    pub fn token(&self, kind: PrincipalKind, org_id: Uuid, subject: &str) -> String {
        let principal = Principal {
            issuer: "careloop-dev".into(),
            subject: subject.into(),
            org_id,
            roles: vec![],
            kind,
            via: None,
        };
        self.auth
            .issue(&principal, chrono::Duration::hours(1))
            .expect("token")
    }

    pub fn token_with_roles(
        &self,
        kind: PrincipalKind,
        org_id: Uuid,
        subject: &str,
        roles: &[&str],
    ) -> String {
        let principal = Principal {
            issuer: "careloop-dev".into(),
            subject: subject.into(),
            org_id,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            kind,
            via: None,
        };
        self.auth
            .issue(&principal, chrono::Duration::hours(1))
            .expect("token")
    }

    pub fn client_with(&self, token: Option<String>) -> Client {
        PlansServiceClient::with_interceptor(self.channel.clone(), Bearer(token))
    }

    /// Staff of the patient's managing organization.
    pub fn client(&self) -> Client {
        self.client_with(Some(self.token(
            PrincipalKind::Staff,
            self.org_id,
            "nurse-1",
        )))
    }

    /// Staff of an organization that is neither managing nor on the team.
    pub fn outsider(&self) -> Client {
        self.client_with(Some(self.token(
            PrincipalKind::Partner,
            Uuid::now_v7(),
            "stranger",
        )))
    }

    /// Sends the service the shutdown signal (as SIGTERM would).
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        careloop_testkit::count(&self.db, sql).await
    }

    /// Rows across every table a write could touch: nothing-written checks compare this.
    pub async fn footprint(&self) -> i64 {
        self.count(
            "SELECT (SELECT count(*) FROM patients) + (SELECT count(*) FROM care_plans)
                  + (SELECT count(*) FROM care_team_members) + (SELECT count(*) FROM consents)
                  + (SELECT count(*) FROM tasks) + (SELECT count(*) FROM handoffs)
                  + (SELECT count(*) FROM transitions) + (SELECT count(*) FROM outbox)
                  + (SELECT count(*) FROM idempotency_keys)
                  + (SELECT count(*) FROM audit_log WHERE outcome = 'ok'
                        AND action NOT LIKE 'Get%' AND action NOT LIKE 'List%' AND action <> 'FindPatientByMrn')",
        )
        .await
    }

    pub async fn create_patient(&self, client: &mut Client) -> Patient {
        client
            .create_patient(CreatePatientRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                mrn: format!("MRN-{}", &Uuid::now_v7().simple().to_string()[20..]),
                given_name: "Ada".into(),
                family_name: "Lovelace".into(),
                birth_date: "1950-03-04".into(),
                managing_org_id: self.org_id.to_string(),
            })
            .await
            .expect("create patient")
            .into_inner()
            .patient
            .expect("patient")
    }

    pub async fn create_plan(&self, client: &mut Client, patient_id: &str) -> CarePlan {
        client
            .create_care_plan(CreateCarePlanRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                patient_id: patient_id.into(),
                content: Some(plan_content("Home safely after heart failure admission")),
                lead: Some(NewCareTeamMember {
                    kind: MemberKind::Person as i32,
                    display_name: "Dr. Grace".into(),
                    role: CareRole::Pcp as i32,
                    organization_id: self.org_id.to_string(),
                    subject: "dr-grace".into(),
                    preferred_contact: None,
                    is_lead: true,
                    subject_issuer: String::new(),
                }),
            })
            .await
            .expect("create plan")
            .into_inner()
            .plan
            .expect("plan")
    }
}

pub fn plan_content(summary: &str) -> CarePlanContent {
    CarePlanContent {
        summary: summary.into(),
        goals: vec![Goal {
            text: "Walk 10 minutes daily".into(),
            target_date: "2027-01-31".into(),
            status: GoalStatus::Active as i32,
        }],
        medications: vec![Medication {
            name: "furosemide".into(),
            dose: "40 mg".into(),
            route: "oral".into(),
            frequency: "daily".into(),
            status: MedicationStatus::Active as i32,
        }],
        allergies: vec![],
        red_flags: vec!["weight gain over 2 kg in 3 days".into()],
        who_to_call: vec![],
        next_touchpoint: None,
    }
}
