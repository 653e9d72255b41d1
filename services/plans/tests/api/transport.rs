//! gRPC over TLS against the real service with a throwaway CA: plaintext is refused, a server that
//! requires client certificates refuses a caller without one, a service is known by its certificate
//! alone (never by what it claims), only the configured callers get in, and a service acting for a
//! user gets the decision on that user, audited with both.

use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::plans::v1::{
    CheckAccessRequest, CreatePatientRequest, PrincipalKind as ProtoKind, PrincipalRef,
};
use careloop_runtime::auth::Authenticator;
use careloop_runtime::auth::{Principal, PrincipalKind, on_behalf_of_header};
use careloop_runtime::config::TlsSettings;
use careloop_runtime::tls::ClientAuth;
use careloop_testkit::TestCa;
use sqlx::PgPool;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

/// A dev token (the server runs in dev mode for user tokens; services come by certificate).
fn token(kind: PrincipalKind, org_id: Uuid, subject: &str) -> String {
    let auth = Authenticator::new(&careloop_testkit::dev_settings().auth, "test").unwrap();
    let mut principal = user(kind, org_id, subject);
    principal.issuer = "careloop-dev".into();
    auth.issue(&principal, chrono::Duration::minutes(10))
        .unwrap()
}

struct TlsPlans {
    port: u16,
    db: PgPool,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn spawn_tls_plans(ca: &TestCa, client_auth: ClientAuth, callers: &[&str]) -> TlsPlans {
    careloop_runtime::telemetry::init_for_tests();
    let db = careloop_testkit::fresh_database("plans").await.unwrap();
    let mut settings = careloop_testkit::service_settings(&db);
    settings.grpc.tls = true;
    settings.grpc.client_auth = client_auth;
    settings.tls = ca.workload("plans");
    settings.auth.callers = callers.iter().map(|c| (*c).to_owned()).collect();
    let app = careloop_plans::Application::build(settings).await.unwrap();
    let port = app.addr().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TlsPlans {
        port,
        db: db.admin,
        _stop: stop,
    }
}

impl TlsPlans {
    fn https(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// A client presenting `tls`'s certificate, with optional bearer token and on-behalf-of user.
    fn client(
        &self,
        tls: &TlsSettings,
        bearer: Option<String>,
        on_behalf_of: Option<&Principal>,
    ) -> PlansServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            impl tonic::service::Interceptor + use<>,
        >,
    > {
        let channel = careloop_runtime::client::channel(&self.https(), tls).unwrap();
        let obo = on_behalf_of.map(on_behalf_of_header);
        PlansServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            if let Some(token) = &bearer {
                req.metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            if let Some(user) = &obo {
                req.metadata_mut()
                    .insert(careloop_runtime::auth::ON_BEHALF_OF, user.parse().unwrap());
            }
            Ok(req)
        })
    }

    async fn patient(&self, ca: &TestCa, org: Uuid) -> String {
        let staff = token(PrincipalKind::Staff, org, "nurse-1");
        let mut client = self.client(&ca.workload("gateway"), Some(staff), None);
        client
            .create_patient(CreatePatientRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                mrn: format!("MRN-{}", &Uuid::now_v7().simple().to_string()[20..]),
                given_name: "Ada".into(),
                family_name: "Lovelace".into(),
                birth_date: "1950-03-04".into(),
                managing_org_id: org.to_string(),
            })
            .await
            .expect("patient")
            .into_inner()
            .patient
            .unwrap()
            .id
    }
}

fn user(kind: PrincipalKind, org: Uuid, subject: &str) -> Principal {
    Principal {
        issuer: "https://idp.hospital.test".into(),
        subject: subject.into(),
        org_id: org,
        roles: vec![],
        kind,
        via: None,
    }
}

fn check(patient_id: &str) -> CheckAccessRequest {
    CheckAccessRequest {
        principal: None,
        patient_id: patient_id.into(),
    }
}

fn ca_only(ca: &TestCa) -> TlsSettings {
    TlsSettings::ca_only(ca.ca_file.display().to_string())
}

#[tokio::test]
async fn a_tls_server_refuses_plaintext_and_a_required_client_certificate_is_required() {
    let ca = TestCa::new("careloop test ca");
    let plans = spawn_tls_plans(&ca, ClientAuth::Required, &["referrals"]).await;

    let plaintext = careloop_runtime::client::channel(
        &format!("http://127.0.0.1:{}", plans.port),
        &TlsSettings::ca_only(String::new()),
    )
    .unwrap();
    let answer = HealthClient::new(plaintext)
        .check(HealthCheckRequest::default())
        .await;
    assert!(answer.is_err(), "a plaintext client gets no answer");

    let no_certificate = careloop_runtime::client::channel(&plans.https(), &ca_only(&ca)).unwrap();
    let answer = HealthClient::new(no_certificate)
        .check(HealthCheckRequest::default())
        .await;
    assert!(
        answer.is_err(),
        "mTLS refuses a client without a certificate"
    );

    let stranger = TestCa::new("another ca");
    let forged = careloop_runtime::client::channel(&plans.https(), &{
        let mut s = stranger.workload("referrals");
        s.ca_file = ca.ca_file.display().to_string();
        s
    })
    .unwrap();
    let answer = HealthClient::new(forged)
        .check(HealthCheckRequest::default())
        .await;
    assert!(answer.is_err(), "a certificate from another CA is refused");

    let referrals =
        careloop_runtime::client::channel(&plans.https(), &ca.workload("referrals")).unwrap();
    let answer = HealthClient::new(referrals)
        .check(HealthCheckRequest::default())
        .await
        .expect("a workload certificate of the CA is served");
    assert_eq!(answer.into_inner().status, 1, "SERVING");
}

#[tokio::test]
async fn a_service_is_known_by_its_certificate_and_only_configured_callers_get_in() {
    let ca = TestCa::new("careloop test ca");
    let plans = spawn_tls_plans(&ca, ClientAuth::Optional, &["referrals", "gateway"]).await;
    let org = Uuid::now_v7();
    let patient = plans.patient(&ca, org).await;
    let staff = user(PrincipalKind::Staff, org, "nurse-1");

    let code = |r: Result<tonic::Response<_>, tonic::Status>| {
        r.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
    };

    // Referrals acting for a staff member of the managing organization: allowed.
    let mut referrals = plans.client(&ca.workload("referrals"), None, Some(&staff));
    assert_eq!(
        code(referrals.check_access(check(&patient)).await),
        Code::Ok
    );

    // prior-auth is a CareLoop workload, but not a configured caller of this server.
    let mut prior_auth = plans.client(&ca.workload("prior-auth"), None, Some(&staff));
    assert_eq!(
        code(prior_auth.check_access(check(&patient)).await),
        Code::PermissionDenied
    );

    // The referrals certificate cannot call as plans: a token or on-behalf-of naming a service
    // is refused, whatever it says.
    let as_plans = token(PrincipalKind::Service, Uuid::nil(), "plans");
    let mut laundering = plans.client(&ca.workload("referrals"), Some(as_plans.clone()), None);
    assert_eq!(
        code(laundering.check_access(check(&patient)).await),
        Code::Unauthenticated
    );
    let mut laundering = plans.client(
        &ca.workload("referrals"),
        None,
        Some(&careloop_runtime::auth::Principal::service("plans")),
    );
    assert_eq!(
        code(laundering.check_access(check(&patient)).await),
        Code::Unauthenticated
    );

    // A certificate naming "referrals" in another trust domain names no CareLoop service.
    let mut foreign = plans.client(
        &ca.workload_in_domain("referrals", "evil"),
        None,
        Some(&staff),
    );
    assert_eq!(
        code(foreign.check_access(check(&patient)).await),
        Code::Unauthenticated
    );

    // A user cannot pretend to be carried by a service.
    let staff_token = token(PrincipalKind::Staff, org, "nurse-1");
    let mut pretender = plans.client(&ca_only(&ca), Some(staff_token), Some(&staff));
    assert_eq!(
        code(pretender.check_access(check(&patient)).await),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn on_behalf_of_the_decision_follows_the_user_and_audit_names_user_and_service() {
    let ca = TestCa::new("careloop test ca");
    let plans = spawn_tls_plans(&ca, ClientAuth::Optional, &["referrals", "gateway"]).await;
    let org = Uuid::now_v7();
    let patient = plans.patient(&ca, org).await;

    let member = user(PrincipalKind::Staff, org, "nurse-1");
    let stranger = user(PrincipalKind::Staff, Uuid::now_v7(), "nurse-1");
    let mut for_member = plans.client(&ca.workload("referrals"), None, Some(&member));
    let mut for_stranger = plans.client(&ca.workload("referrals"), None, Some(&stranger));
    let allowed = for_member
        .check_access(check(&patient))
        .await
        .unwrap()
        .into_inner();
    let refused = for_stranger
        .check_access(check(&patient))
        .await
        .unwrap()
        .into_inner();
    assert!(allowed.can_read && allowed.can_write);
    assert!(
        !refused.can_read && !refused.can_write,
        "the service's own rights do not leak to the user"
    );

    // A body naming someone other than the carried user is refused.
    let mut mismatch = check(&patient);
    mismatch.principal = Some(PrincipalRef {
        subject: "someone-else".into(),
        org_id: org.to_string(),
        kind: ProtoKind::Staff as i32,
    });
    let status = for_member.check_access(mismatch).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let rows: Vec<(String, uuid::Uuid, String, Option<String>, String)> = sqlx::query_as(
        "SELECT subject, org_id, issuer, via_service, outcome FROM audit_log
          WHERE action = 'CheckAccess' ORDER BY id",
    )
    .fetch_all(&plans.db)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                "nurse-1".into(),
                org,
                "https://idp.hospital.test".into(),
                Some("referrals".into()),
                "ok".into()
            ),
            (
                "nurse-1".into(),
                stranger.org_id,
                "https://idp.hospital.test".into(),
                Some("referrals".into()),
                "denied".into()
            ),
        ]
    );
}
