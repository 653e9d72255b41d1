//! Services known by their certificates, users carried on-behalf-of: a gateway-like caller asks
//! referrals for a patient's loops for a user; referrals asks plans for that user's access over
//! mutual TLS. The decision follows the user, and each service's audit row names the user and the
//! service that carried the call.

use careloop_proto::plans::v1::CreatePatientRequest;
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::referrals::v1::referrals_service_client::ReferralsServiceClient;
use careloop_proto::referrals::v1::{ListOpenLoopsRequest, list_open_loops_request};
use careloop_referrals::settings::ReferralSettings;
use careloop_runtime::auth::{ON_BEHALF_OF, Principal, PrincipalKind, on_behalf_of_header};
use careloop_runtime::config::TlsSettings;
use careloop_runtime::tls::ClientAuth;
use careloop_testkit::TestCa;
use careloop_testkit::service_settings;
use careloop_testkit::services::{Bearer, run_until_dropped, token};
use tonic::Code;
use uuid::Uuid;

fn user(org: Uuid, subject: &str) -> Principal {
    Principal {
        issuer: "https://idp.hospital.test".into(),
        subject: subject.into(),
        org_id: org,
        roles: vec!["rn".into()],
        kind: PrincipalKind::Staff,
        via: None,
    }
}

fn with_user(
    channel: tonic::transport::Channel,
    who: &Principal,
) -> ReferralsServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        impl tonic::service::Interceptor + use<>,
    >,
> {
    let header = on_behalf_of_header(who);
    ReferralsServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
        req.metadata_mut()
            .insert(ON_BEHALF_OF, header.parse().unwrap());
        Ok(req)
    })
}

#[tokio::test]
async fn referrals_asks_plans_for_the_user_it_acts_for_and_both_audits_name_user_and_service() {
    careloop_runtime::telemetry::init_for_tests();
    let ca = TestCa::new("careloop test ca");

    let plans_db = careloop_testkit::fresh_database("plans").await.unwrap();
    let mut plans_settings = service_settings(&plans_db);
    plans_settings.grpc.tls = true;
    plans_settings.grpc.client_auth = ClientAuth::Optional;
    plans_settings.tls = ca.workload("plans");
    plans_settings.auth.callers = vec!["referrals".into()];
    let plans = careloop_plans::Application::build(plans_settings)
        .await
        .unwrap();
    let plans_port = plans.addr().port();
    let _plans = run_until_dropped(|shutdown| plans.run_until_stopped(shutdown));

    let referrals_db = careloop_testkit::fresh_database("referrals").await.unwrap();
    let mut settings = service_settings(&referrals_db);
    settings.grpc.tls = true;
    settings.grpc.client_auth = ClientAuth::Required;
    settings.tls = ca.workload("referrals");
    settings.auth.callers = vec!["gateway".into()];
    let mut own = ReferralSettings::defaults();
    own.plans_addr = format!("https://localhost:{plans_port}");
    own.sweep_interval_ms = 3_600_000;
    let referrals = careloop_referrals::Application::build(settings, own)
        .await
        .unwrap();
    let referrals_port = referrals.addr().port();
    let _referrals = run_until_dropped(|shutdown| referrals.run_until_stopped(shutdown));

    // A patient managed by `org`, registered by its staff (a user over TLS, no certificate).
    let org = Uuid::now_v7();
    let ca_only = TlsSettings::ca_only(ca.ca_file.display().to_string());
    let plans_channel =
        careloop_runtime::client::channel(&format!("https://localhost:{plans_port}"), &ca_only)
            .unwrap();
    let patient = PlansServiceClient::with_interceptor(
        plans_channel,
        Bearer(token(PrincipalKind::Staff, org, "nurse-1")),
    )
    .create_patient(CreatePatientRequest {
        idempotency_key: Uuid::now_v7().to_string(),
        mrn: "MRN-OBO-1".into(),
        given_name: "Ada".into(),
        family_name: "Lovelace".into(),
        birth_date: "1950-03-04".into(),
        managing_org_id: org.to_string(),
    })
    .await
    .unwrap()
    .into_inner()
    .patient
    .unwrap()
    .id;

    let gateway = careloop_runtime::client::channel(
        &format!("https://localhost:{referrals_port}"),
        &ca.workload("gateway"),
    )
    .unwrap();
    let loops = |who: &Principal| {
        let mut client = with_user(gateway.clone(), who);
        let patient = patient.clone();
        async move {
            client
                .list_open_loops(ListOpenLoopsRequest {
                    filter: Some(list_open_loops_request::Filter::PatientId(patient)),
                    page_size: 0,
                    page_token: String::new(),
                })
                .await
                .map(|_| Code::Ok)
                .unwrap_or_else(|s| s.code())
        }
    };
    let member = user(org, "nurse-1");
    let stranger = user(Uuid::now_v7(), "nurse-1");
    assert_eq!(
        loops(&member).await,
        Code::Ok,
        "staff of the managing organization"
    );
    assert_eq!(
        loops(&stranger).await,
        Code::NotFound,
        "the same subject in another organization, carried by the same services"
    );

    let in_referrals: Vec<(String, Uuid, Option<String>)> = sqlx::query_as(
        "SELECT subject, org_id, via_service FROM audit_log WHERE action = 'ListOpenLoops' AND outcome = 'ok'",
    )
    .fetch_all(&referrals_db.admin)
    .await
    .unwrap();
    assert_eq!(
        in_referrals,
        vec![("nurse-1".into(), org, Some("gateway".into()))]
    );

    let in_plans: Vec<(String, Uuid, Option<String>, String)> = sqlx::query_as(
        "SELECT subject, org_id, via_service, outcome FROM audit_log WHERE action = 'CheckAccess' ORDER BY id",
    )
    .fetch_all(&plans_db.admin)
    .await
    .unwrap();
    assert_eq!(
        in_plans,
        vec![
            ("nurse-1".into(), org, Some("referrals".into()), "ok".into()),
            (
                "nurse-1".into(),
                stranger.org_id,
                Some("referrals".into()),
                "denied".into()
            ),
        ]
    );
}
