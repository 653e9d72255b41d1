//! The audit row and the outbox event commit with the change, and not without it.

use crate::helpers::*;
use careloop_proto::common::v1::CareRole;
use careloop_proto::events::v1::{Event, event::Payload};
use careloop_proto::plans::v1::*;
use prost::Message;

#[tokio::test]
async fn a_change_writes_its_audit_row_and_its_event_in_the_same_transaction() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let task = c
        .create_task(CreateTaskRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            title: "Reconcile medications".into(),
            owner_role: CareRole::Pharmacist as i32,
            due_at: in_hours(8),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let (event_type, payload): (String, Vec<u8>) =
        sqlx::query_as("SELECT event_type, payload FROM outbox WHERE aggregate_id = $1::uuid")
            .bind(&task.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(event_type, "plans.task.created");
    let event = Event::decode(payload.as_slice()).unwrap();
    assert_eq!(event.patient_id, patient.id);
    assert_eq!(event.aggregate_version, 1);
    assert_eq!(
        event.traceparent.len(),
        55,
        "events carry the W3C trace context"
    );
    match event.payload {
        Some(Payload::TaskCreated(t)) => assert_eq!(t.owner_role, CareRole::Pharmacist as i32),
        other => panic!("unexpected payload {other:?}"),
    }
    let raw = String::from_utf8_lossy(&payload).to_string();
    assert!(
        !raw.contains("Lovelace") && !raw.contains("Reconcile"),
        "events carry ids, not patient data"
    );
    let audited: i64 = sqlx::query_as::<_, (i64,)>(
        "SELECT count(*) FROM audit_log WHERE action = 'CreateTask' AND target_id = $1::uuid AND outcome = 'ok'",
    )
    .bind(&task.id)
    .fetch_one(&app.db)
    .await
    .unwrap()
    .0;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn a_refused_change_leaves_neither_audit_row_nor_event() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let task = c
        .create_task(CreateTaskRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            title: "Call patient".into(),
            owner_role: CareRole::Rn as i32,
            due_at: in_hours(8),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let before = app.footprint().await;
    // The state machine refuses completing a task that was never started: the transaction rolls back.
    let status = c
        .transition_task(TransitionTaskRequest {
            idempotency_key: key(),
            task_id: task.id.clone(),
            expected_version: task.version,
            action: TaskAction::Complete as i32,
            reason: "".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        status.message(),
        "task cannot move from requested to completed"
    );
    // A stale version is refused the same way.
    let status = c
        .transition_task(TransitionTaskRequest {
            idempotency_key: key(),
            task_id: task.id.clone(),
            expected_version: 7,
            action: TaskAction::Accept as i32,
            reason: "".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Aborted);
    assert_eq!(app.footprint().await, before);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'plans.task.status_changed'")
            .await,
        0
    );
}

#[tokio::test]
async fn the_audit_log_is_append_only() {
    let app = spawn_app().await;
    let mut c = app.client();
    app.create_patient(&mut c).await;
    let err = sqlx::query("DELETE FROM audit_log")
        .execute(&app.db)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"));
    let err = sqlx::query("UPDATE audit_log SET outcome = 'x'")
        .execute(&app.db)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"));
}

#[tokio::test]
async fn a_transaction_that_fails_after_the_change_leaves_no_task_no_event_and_no_audit_row() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    // The audit row is the last write before commit: make it fail, after the task row and the
    // outbox row were already inserted in the same transaction.
    sqlx::raw_sql(
        "CREATE FUNCTION fail_task_audit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'audit store unavailable'; END $$;
         CREATE TRIGGER fail_task_audit BEFORE INSERT ON audit_log FOR EACH ROW
         WHEN (NEW.action = 'CreateTask') EXECUTE FUNCTION fail_task_audit();",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let before = app.footprint().await;
    let status = c
        .create_task(CreateTaskRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            title: "Arrange home oxygen".into(),
            owner_role: CareRole::CareManager as i32,
            due_at: in_hours(8),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert!(
        !status.message().contains("audit store"),
        "causes are logged, never sent"
    );
    assert_eq!(app.count("SELECT count(*) FROM tasks").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'plans.task.created'")
            .await,
        0
    );
    assert_eq!(app.footprint().await, before);
}
