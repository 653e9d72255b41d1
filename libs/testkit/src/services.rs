//! Spawning real services for the tests of services that depend on them: plans answers every other
//! service's access checks, so their tests start it beside themselves.

use crate::dev_settings;
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::plans::v1::{CreatePatientRequest, Patient};
use careloop_runtime::auth::{Authenticator, Principal, PrincipalKind};
use std::future::Future;
use std::net::SocketAddr;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use uuid::Uuid;

/// Adds a bearer token to every call.
#[derive(Clone)]
pub struct Bearer(pub String);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let value = format!("Bearer {}", self.0)
            .parse()
            .map_err(|_| tonic::Status::unauthenticated("token is not ascii"))?;
        req.metadata_mut().insert("authorization", value);
        Ok(req)
    }
}

/// Runs `serve` (an application's `run_until_stopped`) until the returned sender is dropped.
pub fn run_until_dropped<F, Fut>(serve: F) -> tokio::sync::oneshot::Sender<()>
where
    F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
        let _ = rx.await;
    });
    tokio::spawn(serve(stop));
    tx
}

/// A running plans service on a fresh database.
pub struct PlansService {
    pub addr: SocketAddr,
    pub channel: Channel,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn spawn_plans() -> PlansService {
    let db = crate::fresh_database("plans")
        .await
        .expect("plans database");
    let app = careloop_plans::Application::build(crate::service_settings(&db))
        .await
        .expect("plans builds");
    let addr = app.addr();
    let stop = run_until_dropped(|shutdown| app.run_until_stopped(shutdown));
    PlansService {
        addr,
        channel: connect(addr).await,
        _stop: stop,
    }
}

pub async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects")
}

/// Signs test tokens with the dev key every test service in dev mode accepts (role `rn`).
pub fn token(kind: PrincipalKind, org_id: Uuid, subject: &str) -> String {
    token_with_roles(kind, org_id, subject, &["rn"])
}

/// A dev-key test token carrying these roles.
pub fn token_with_roles(
    kind: PrincipalKind,
    org_id: Uuid,
    subject: &str,
    roles: &[&str],
) -> String {
    let auth = Authenticator::new(&dev_settings().auth, "test").expect("auth");
    let p = Principal {
        issuer: "careloop-dev".into(),
        subject: subject.into(),
        org_id,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        kind,
        via: None,
    };
    auth.issue(&p, chrono::Duration::hours(1)).expect("token")
}

impl PlansService {
    /// Registers a patient managed by `org_id`, as its staff.
    pub async fn patient(&self, org_id: Uuid) -> Patient {
        let mut plans = PlansServiceClient::with_interceptor(
            self.channel.clone(),
            Bearer(token(PrincipalKind::Staff, org_id, "nurse-1")),
        );
        plans
            .create_patient(CreatePatientRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                mrn: format!("MRN-{}", &Uuid::now_v7().simple().to_string()[20..]),
                given_name: "Ada".into(),
                family_name: "Lovelace".into(),
                birth_date: "1950-03-04".into(),
                managing_org_id: org_id.to_string(),
            })
            .await
            .expect("patient")
            .into_inner()
            .patient
            .expect("patient")
    }

    /// Shares `patient` with `grantee_org` for treatment, read and write, as the managing
    /// organization's staff (how a receiving organization gets to see a referred patient).
    pub async fn share(&self, patient: &Patient, grantee_org: Uuid) {
        use careloop_proto::plans::v1::{ConsentPurpose, ConsentScope, GrantConsentRequest};
        let managing = Uuid::parse_str(&patient.managing_org_id).expect("managing org");
        let mut plans = PlansServiceClient::with_interceptor(
            self.channel.clone(),
            Bearer(token(PrincipalKind::Staff, managing, "nurse-1")),
        );
        plans
            .grant_consent(GrantConsentRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                patient_id: patient.id.clone(),
                grantee_org_id: grantee_org.to_string(),
                purpose: ConsentPurpose::Treatment as i32,
                scope: ConsentScope::ReadWrite as i32,
                ..Default::default()
            })
            .await
            .expect("consent");
    }

    /// Sets up the circle around `patient` that authorization tests need, as the managing
    /// organization's staff: a plan led by the managing organization, `team_org` on the care team,
    /// the caregiver `daughter` of `family_org` (a member with a read-write treatment consent)
    /// and `son` (a member without consent), and a read-write payment consent for `payer_org`.
    pub async fn circle(
        &self,
        patient: &Patient,
        team_org: Uuid,
        family_org: Uuid,
        payer_org: Uuid,
    ) {
        use careloop_proto::common::v1::CareRole;
        use careloop_proto::plans::v1::{
            AddCareTeamMemberRequest, CarePlanContent, ConsentPurpose, ConsentScope,
            CreateCarePlanRequest, GrantConsentRequest, MemberKind, NewCareTeamMember,
        };
        let managing = Uuid::parse_str(&patient.managing_org_id).expect("managing org");
        let mut plans = PlansServiceClient::with_interceptor(
            self.channel.clone(),
            Bearer(token(PrincipalKind::Staff, managing, "nurse-1")),
        );
        let key = || Uuid::now_v7().to_string();
        let mut plan = plans
            .create_care_plan(CreateCarePlanRequest {
                idempotency_key: key(),
                patient_id: patient.id.clone(),
                content: Some(CarePlanContent {
                    summary: "Home safely".into(),
                    ..Default::default()
                }),
                lead: Some(NewCareTeamMember {
                    kind: MemberKind::Organization as i32,
                    display_name: "Primary care".into(),
                    role: CareRole::Pcp as i32,
                    organization_id: managing.to_string(),
                    is_lead: true,
                    ..Default::default()
                }),
            })
            .await
            .expect("plan")
            .into_inner()
            .plan
            .expect("plan");
        let members = [
            (
                MemberKind::Organization,
                "Sunrise Home Health",
                CareRole::HomeHealth,
                team_org,
                "",
            ),
            (
                MemberKind::Person,
                "Daughter",
                CareRole::FamilyCaregiver,
                family_org,
                "daughter",
            ),
            (
                MemberKind::Person,
                "Son",
                CareRole::FamilyCaregiver,
                family_org,
                "son",
            ),
        ];
        for (kind, name, role, org, subject) in members {
            plan = plans
                .add_care_team_member(AddCareTeamMemberRequest {
                    idempotency_key: key(),
                    patient_id: patient.id.clone(),
                    expected_version: plan.version,
                    member: Some(NewCareTeamMember {
                        kind: kind as i32,
                        display_name: name.into(),
                        role: role as i32,
                        organization_id: org.to_string(),
                        subject: subject.into(),
                        ..Default::default()
                    }),
                })
                .await
                .expect("member")
                .into_inner()
                .plan
                .expect("plan");
        }
        let daughter = plan
            .care_team
            .iter()
            .find(|m| m.subject == "daughter")
            .expect("daughter")
            .id
            .clone();
        for (member, org, purpose) in [
            (daughter, String::new(), ConsentPurpose::Treatment),
            (
                String::new(),
                payer_org.to_string(),
                ConsentPurpose::Payment,
            ),
        ] {
            plans
                .grant_consent(GrantConsentRequest {
                    idempotency_key: key(),
                    patient_id: patient.id.clone(),
                    grantee_member_id: member,
                    grantee_org_id: org,
                    purpose: purpose as i32,
                    scope: ConsentScope::ReadWrite as i32,
                    ..Default::default()
                })
                .await
                .expect("consent");
        }
    }
}
