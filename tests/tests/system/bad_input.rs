//! Bad input through the gateway: the gateway's own reads name the field; a forwarded write is
//! refused by the owning service with its field and reason passed through unchanged; nothing is
//! written either way.

use careloop_proto::common::v1::CareRole;
use careloop_proto::gateway::v1::*;
use careloop_proto::plans::v1::*;
use careloop_system_tests::{System, key};
use careloop_testkit::cases::CaseReport;
use careloop_testkit::refused;
use tonic_types::StatusExt;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_fields_are_named_and_change_nothing() {
    let system = System::start().await;
    let org = Uuid::now_v7();
    let mut g = system.staff(org, "nurse-1", &["rn"]);
    let _report = CaseReport;

    refused!(
        g.get_patient_summary(GetPatientSummaryRequest {
            patient_id: "not-a-uuid".into()
        }),
        "patient_id"
    );
    refused!(
        g.get_patient_summary(GetPatientSummaryRequest {
            patient_id: String::new()
        }),
        "patient_id"
    );
    refused!(
        g.list_worklist(ListWorklistRequest {
            role: 0,
            ..Default::default()
        }),
        "role"
    );
    refused!(
        g.list_worklist(ListWorklistRequest {
            role: 999,
            ..Default::default()
        }),
        "role"
    );
    refused!(
        g.list_worklist(ListWorklistRequest {
            role: CareRole::Rn as i32,
            page_size: -1,
            ..Default::default()
        }),
        "page_size"
    );
    refused!(
        g.list_worklist(ListWorklistRequest {
            role: CareRole::Rn as i32,
            page_token: "garbage".into(),
            ..Default::default()
        }),
        "page_token"
    );
    refused!(
        g.create_patient(CreatePatientRequest {
            idempotency_key: key(),
            mrn: "MRN-1".into(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: "1950-13-40".into(),
            managing_org_id: org.to_string(),
        }),
        "birth_date"
    );
    refused!(
        g.create_patient(CreatePatientRequest {
            idempotency_key: String::new(),
            mrn: "MRN-1".into(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: "1950-03-04".into(),
            managing_org_id: org.to_string(),
        }),
        "idempotency_key"
    );

    // The owning service's machine-readable reason comes through the gateway unchanged.
    let status = g
        .create_patient(CreatePatientRequest {
            idempotency_key: key(),
            mrn: "MRN-1".into(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: "1950-13-40".into(),
            managing_org_id: org.to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "INVALID_FIELD"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM patients WHERE mrn = 'MRN-1'")
        .fetch_one(&system.plans_db)
        .await
        .unwrap();
    assert_eq!(stored, 0, "plans stored nothing");
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'CreatePatient' AND outcome = 'failed'",
    )
    .fetch_one(&system.gateway_db)
    .await
    .unwrap();
    assert_eq!(failed, 3, "each refused write is in the gateway's audit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_through_the_gateway_returns_the_first_result() {
    let system = System::start().await;
    let org = Uuid::now_v7();
    let mut g = system.staff(org, "nurse-1", &["rn"]);
    let request = CreatePatientRequest {
        idempotency_key: key(),
        mrn: "MRN-RETRY".into(),
        given_name: "Ada".into(),
        family_name: "Lovelace".into(),
        birth_date: "1950-03-04".into(),
        managing_org_id: org.to_string(),
    };
    let first = g
        .create_patient(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = g.create_patient(request).await.unwrap().into_inner();
    assert_eq!(first.patient.unwrap().id, again.patient.unwrap().id);
}
