//! Retried writes return the first result and never write twice.

use crate::helpers::*;
use careloop_proto::common::v1::CareRole;
use careloop_proto::plans::v1::*;
use uuid::Uuid;

#[tokio::test]
async fn a_retried_create_with_the_same_key_returns_the_same_record() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let request = CreateTaskRequest {
        idempotency_key: key(),
        patient_id: patient.id.clone(),
        title: "Confirm pickup time with the patient".into(),
        owner_role: CareRole::CareManager as i32,
        due_at: in_hours(4),
        ..Default::default()
    };
    let first = c
        .create_task(request.clone())
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let second = c
        .create_task(request.clone())
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(app.count("SELECT count(*) FROM tasks").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'plans.task.created'")
            .await,
        1
    );
}

#[tokio::test]
async fn concurrent_retries_with_one_key_write_once() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let request = SendHandoffRequest {
        idempotency_key: key(),
        patient_id: patient.id.clone(),
        from_role: CareRole::Hospitalist as i32,
        to_role: CareRole::Pcp as i32,
        situation: "discharged today".into(),
        background: "admitted for CHF".into(),
        assessment: "stable".into(),
        recommendation: "see within 7 days".into(),
        ..Default::default()
    };
    let calls = (0..6).map(|_| {
        let mut c = app.client();
        let r = request.clone();
        tokio::spawn(async move {
            c.send_handoff(r)
                .await
                .map(|r| r.into_inner().handoff.unwrap().id)
        })
    });
    let mut ids = Vec::new();
    for call in calls {
        ids.push(call.await.unwrap().expect("every retry succeeds"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every retry sees the same handoff");
    assert_eq!(app.count("SELECT count(*) FROM handoffs").await, 1);
}

#[tokio::test]
async fn a_key_reused_for_a_different_request_is_refused() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let shared_key = key();
    let request = CreateTaskRequest {
        idempotency_key: shared_key.clone(),
        patient_id: patient.id.clone(),
        title: "First".into(),
        owner_role: CareRole::Rn as i32,
        due_at: in_hours(4),
        ..Default::default()
    };
    c.create_task(request.clone()).await.unwrap();
    let status = c
        .create_task(CreateTaskRequest {
            title: "Second".into(),
            ..request
        })
        .await
        .unwrap_err();
    assert_eq!(bad_field(&status), "idempotency_key");
    assert_eq!(app.count("SELECT count(*) FROM tasks").await, 1);
}

#[tokio::test]
async fn a_replay_checks_access_again_and_is_audited_either_way() {
    use careloop_runtime::auth::PrincipalKind;
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    app.create_plan(&mut c, &patient.id).await;
    // A home-health agency writes under a read-write consent.
    let agency_org = Uuid::now_v7();
    let consent = c
        .grant_consent(GrantConsentRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            grantee_org_id: agency_org.to_string(),
            purpose: ConsentPurpose::Treatment as i32,
            scope: ConsentScope::ReadWrite as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    let mut agency = app.client_with(Some(app.token(
        PrincipalKind::Partner,
        agency_org,
        "hh-nurse",
    )));
    let request = CreateTaskRequest {
        idempotency_key: key(),
        patient_id: patient.id.clone(),
        title: "Start of care visit".into(),
        owner_role: CareRole::Rn as i32,
        due_at: in_hours(24),
        ..Default::default()
    };
    let first = agency
        .create_task(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = agency
        .create_task(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first, again,
        "a retry while allowed gets the first response"
    );

    c.revoke_consent(RevokeConsentRequest {
        idempotency_key: key(),
        consent_id: consent.id.clone(),
        reason: "care episode ended".into(),
        expected_version: consent.version,
    })
    .await
    .unwrap();
    let refused = agency.create_task(request).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::NotFound,
        "without consent the agency no longer sees the patient at all"
    );

    let outcomes: Vec<String> = sqlx::query_scalar(
        "SELECT outcome FROM audit_log WHERE action = 'CreateTask' AND subject = 'hh-nurse' ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(outcomes, vec!["ok", "replayed", "denied"]);
    assert_eq!(
        app.count("SELECT count(*) FROM tasks").await,
        1,
        "one task, however often it was asked for"
    );
}
