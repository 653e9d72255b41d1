//! "Who saw this patient": the privacy office of the managing organization reads the patient's
//! audit trail (reads, writes, refusals, with the carrying service and trace), newest first and
//! paged; the query is itself audited; nobody else reads it.

use crate::helpers::*;
use careloop_proto::audit::v1::ListPatientAuditRequest;
use careloop_proto::audit::v1::audit_service_client::AuditServiceClient;
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::PrincipalKind;
use tonic::Code;
use uuid::Uuid;

#[tokio::test]
async fn the_privacy_office_reads_who_saw_the_patient_and_nobody_else_does() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    c.get_patient(GetPatientRequest {
        patient_id: patient.id.clone(),
    })
    .await
    .unwrap();
    let refused = app
        .outsider()
        .get_patient(GetPatientRequest {
            patient_id: patient.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);

    let audit = |kind, org, subject: &str, roles: &[&str]| {
        AuditServiceClient::with_interceptor(
            app.channel(),
            Bearer(Some(app.token_with_roles(kind, org, subject, roles))),
        )
    };
    let ask = |page_token: String| ListPatientAuditRequest {
        patient_id: patient.id.clone(),
        page_size: 2,
        page_token,
    };
    let mut officer = audit(
        PrincipalKind::Staff,
        app.org_id,
        "privacy-1",
        &["privacy_officer"],
    );
    let first = officer
        .list_patient_audit(ask(String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.events.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = officer
        .list_patient_audit(ask(first.next_page_token.clone()))
        .await
        .unwrap()
        .into_inner();
    // Newest first: the outsider's refusal, the nurse's read, then the registration.
    let seen: Vec<(String, String, String)> = first
        .events
        .iter()
        .chain(second.events.iter())
        .map(|e| (e.subject.clone(), e.action.clone(), e.outcome.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("stranger".into(), "GetPatient".into(), "denied".into()),
            ("nurse-1".into(), "GetPatient".into(), "ok".into()),
            ("nurse-1".into(), "CreatePatient".into(), "ok".into()),
        ]
    );
    assert!(
        first
            .events
            .iter()
            .all(|e| e.service == "plans" && e.issuer == "careloop-dev")
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'ListPatientAudit' AND subject = 'privacy-1'"
        )
        .await,
        2,
        "each query of the trail is itself audited"
    );

    // A nurse of the managing organization, and a privacy officer elsewhere, may not.
    let nurse = audit(PrincipalKind::Staff, app.org_id, "nurse-1", &["rn"])
        .list_patient_audit(ask(String::new()))
        .await
        .unwrap_err();
    assert_eq!(nurse.code(), Code::PermissionDenied);
    let elsewhere = audit(
        PrincipalKind::Staff,
        Uuid::now_v7(),
        "privacy-2",
        &["privacy_officer"],
    )
    .list_patient_audit(ask(String::new()))
    .await
    .unwrap_err();
    assert_eq!(elsewhere.code(), Code::NotFound);
}

#[tokio::test]
async fn the_services_own_database_role_cannot_rewrite_or_disable_the_audit_log() {
    use sqlx::Connection;
    let app = spawn_app().await;
    let mut c = app.client();
    app.create_patient(&mut c).await;
    let mut runtime = sqlx::PgConnection::connect(&app.service_url).await.unwrap();
    sqlx::query("SET search_path = plans")
        .execute(&mut runtime)
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&mut runtime)
        .await
        .expect("the service reads its audit log");
    assert!(rows > 0);
    for tamper in [
        "UPDATE audit_log SET outcome = 'ok'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change",
        "DROP TRIGGER audit_log_no_change ON audit_log",
        "DROP TABLE audit_log",
    ] {
        let refused = sqlx::raw_sql(tamper).execute(&mut runtime).await;
        assert!(refused.is_err(), "the runtime role may not: {tamper}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log").await,
        rows,
        "the log is intact"
    );
    // What the service needs still works: it appends.
    sqlx::query(
        "INSERT INTO audit_log (subject, org_id, principal_kind, action, outcome)
         VALUES ('probe', gen_random_uuid(), 'service', 'Probe', 'ok')",
    )
    .execute(&mut runtime)
    .await
    .expect("the runtime role appends");
}
