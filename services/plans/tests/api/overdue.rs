//! Overdue detection on plans' loops: a task past its due time is reported once per stage and a
//! handoff not acknowledged by its acknowledge-by time once, however many sweepers race; the event
//! names the loop, its owner role, its due time and the patient's managing organization.

use crate::helpers::*;
use careloop_plans::sweeper::sweep_overdue;
use careloop_proto::common::v1::{CareRole, LoopKind};
use careloop_proto::events::v1::{Event, event::Payload};
use careloop_proto::plans::v1::*;
use prost::Message;

async fn overdue_events(app: &TestApp) -> Vec<Event> {
    let payloads: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE event_type = 'plans.loop.overdue' ORDER BY seq",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    payloads
        .iter()
        .map(|p| Event::decode(p.as_slice()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_sweepers_report_each_task_stage_and_each_unacknowledged_handoff_once() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(
            c.create_task(CreateTaskRequest {
                idempotency_key: key(),
                patient_id: patient.id.clone(),
                title: "Call within 72 h".into(),
                owner_role: CareRole::Rn as i32,
                backup_role: CareRole::CareManager as i32,
                due_at: in_hours(1),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .task
            .unwrap(),
        );
    }
    let handoff = |acknowledge_by| SendHandoffRequest {
        idempotency_key: key(),
        patient_id: patient.id.clone(),
        from_role: CareRole::Hospitalist as i32,
        to_role: CareRole::Pcp as i32,
        situation: "discharged".into(),
        background: "heart failure".into(),
        assessment: "stable".into(),
        recommendation: "see in 7 days".into(),
        acknowledge_by,
        ..Default::default()
    };
    let waiting = c
        .send_handoff(handoff(in_hours(2)))
        .await
        .unwrap()
        .into_inner()
        .handoff
        .unwrap();
    assert_eq!(
        waiting.acknowledge_by,
        in_hours(2).map(|_| waiting.acknowledge_by.unwrap())
    );
    let answered = c
        .send_handoff(handoff(None))
        .await
        .unwrap()
        .into_inner()
        .handoff
        .unwrap();
    assert_eq!(
        ts(&answered.acknowledge_by) - ts(&answered.sent_at),
        chrono::Duration::hours(24),
        "acknowledged within a day unless the sender says otherwise"
    );
    c.acknowledge_handoff(AcknowledgeHandoffRequest {
        idempotency_key: key(),
        handoff_id: answered.id.clone(),
        expected_version: answered.version,
    })
    .await
    .unwrap();
    let refused = c.send_handoff(handoff(in_hours(-1))).await.unwrap_err();
    assert_eq!(bad_field(&refused), "acknowledge_by");

    // Two days on: every task and the unanswered handoff are overdue. Four sweepers race.
    let later = chrono::Utc::now() + chrono::Duration::days(2);
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(4));
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let pool = app.db.clone();
            let start = std::sync::Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                sweep_overdue(&pool, later, 2).await.unwrap()
            })
        })
        .collect();
    let mut reported = 0;
    for r in racers {
        reported += r.await.unwrap();
    }
    loop {
        let n = sweep_overdue(&app.db, later, 2).await.unwrap();
        if n == 0 {
            break;
        }
        reported += n;
    }
    assert_eq!(reported, 4, "three tasks and one handoff, once each");
    let events = overdue_events(&app).await;
    assert_eq!(events.len(), 4);
    let mut handoffs = 0;
    for event in &events {
        assert_eq!(
            event.org_id,
            app.org_id.to_string(),
            "the managing organization"
        );
        let Some(Payload::PlansLoopOverdue(overdue)) = &event.payload else {
            panic!("unexpected payload");
        };
        if overdue.loop_kind == LoopKind::Handoff as i32 {
            handoffs += 1;
            assert_eq!(overdue.loop_id, waiting.id);
            assert_eq!(overdue.owner_role, CareRole::Pcp as i32);
            assert_eq!(overdue.due_at, waiting.acknowledge_by);
        } else {
            assert_eq!(overdue.loop_kind, LoopKind::Task as i32);
            assert_eq!(overdue.stage, "requested");
            assert_eq!(
                (overdue.owner_role, overdue.backup_role),
                (CareRole::Rn as i32, CareRole::CareManager as i32)
            );
        }
    }
    assert_eq!(handoffs, 1, "the acknowledged handoff is not overdue");

    // Each report is a change of its loop: a version of its own (no two events share an aggregate
    // and version), audited as the sweeper for the managing organization.
    assert_eq!(
        app.count("SELECT count(DISTINCT (aggregate_id, aggregate_version)) FROM outbox")
            .await,
        app.count("SELECT count(*) FROM outbox").await
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'plans.loop.overdue' \
             AND subject = 'plans-sweeper' AND principal_kind = 'service'"
        )
        .await,
        4
    );
    let reported = c
        .get_task(GetTaskRequest {
            task_id: tasks[0].id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(reported.version, tasks[0].version + 1);
    let stale = c
        .transition_task(TransitionTaskRequest {
            idempotency_key: key(),
            task_id: tasks[0].id.clone(),
            expected_version: tasks[0].version,
            action: TaskAction::Accept as i32,
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        stale.code(),
        tonic::Code::Aborted,
        "read again after a report"
    );

    // A task that moves on to a new stage, still late, is reported again for that stage.
    c.transition_task(TransitionTaskRequest {
        idempotency_key: key(),
        task_id: tasks[0].id.clone(),
        expected_version: reported.version,
        action: TaskAction::Accept as i32,
        reason: String::new(),
    })
    .await
    .unwrap();
    assert_eq!(sweep_overdue(&app.db, later, 10).await.unwrap(), 1);
    assert_eq!(sweep_overdue(&app.db, later, 10).await.unwrap(), 0);
}

#[tokio::test]
async fn a_high_risk_discharge_without_its_follow_up_call_is_reported_once() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let start = |risk: RiskLevel| StartTransitionRequest {
        idempotency_key: key(),
        patient_id: patient.id.clone(),
        from_setting: CareSetting::Hospital as i32,
        to_setting: CareSetting::Home as i32,
        reason: "discharge".into(),
        success_criteria: "no readmission".into(),
        risk_level: risk as i32,
    };
    let started = |r: StartTransitionResponse| r.transition.unwrap();
    let uncalled = started(
        c.start_transition(start(RiskLevel::High))
            .await
            .unwrap()
            .into_inner(),
    );
    let called = started(
        c.start_transition(start(RiskLevel::High))
            .await
            .unwrap()
            .into_inner(),
    );
    let low_risk = started(
        c.start_transition(start(RiskLevel::Low))
            .await
            .unwrap()
            .into_inner(),
    );
    drop(low_risk);
    c.update_checklist_item(UpdateChecklistItemRequest {
        idempotency_key: key(),
        transition_id: called.id.clone(),
        expected_version: called.version,
        item: ChecklistItemKind::FollowUpCall as i32,
        state: ChecklistItemState::Done as i32,
        waive_reason: String::new(),
    })
    .await
    .unwrap();

    let before_due = chrono::Utc::now() + chrono::Duration::hours(71);
    assert_eq!(sweep_overdue(&app.db, before_due, 10).await.unwrap(), 0);
    let after_due = chrono::Utc::now() + chrono::Duration::hours(73);
    assert_eq!(sweep_overdue(&app.db, after_due, 10).await.unwrap(), 1);
    assert_eq!(
        sweep_overdue(&app.db, after_due, 10).await.unwrap(),
        0,
        "once"
    );
    let events = overdue_events(&app).await;
    let Some(Payload::PlansLoopOverdue(overdue)) = &events[0].payload else {
        panic!("unexpected payload");
    };
    assert_eq!(overdue.loop_kind, LoopKind::Transition as i32);
    assert_eq!(overdue.loop_id, uncalled.id);
    assert_eq!(overdue.stage, "follow_up_call");
    assert_eq!(overdue.owner_role, CareRole::Rn as i32);
    assert_eq!(
        ts(&overdue.due_at) - ts(&uncalled.started_at),
        chrono::Duration::hours(72)
    );
}

#[tokio::test]
async fn a_task_event_carries_its_owner_role_and_due_time() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let task = c
        .create_task(CreateTaskRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            title: "Confirm pickup time".into(),
            owner_role: CareRole::Rn as i32,
            due_at: in_hours(6),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    c.transition_task(TransitionTaskRequest {
        idempotency_key: key(),
        task_id: task.id.clone(),
        expected_version: task.version,
        action: TaskAction::Accept as i32,
        reason: String::new(),
    })
    .await
    .unwrap();
    let payload: Vec<u8> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE event_type = 'plans.task.status_changed'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let Some(Payload::TaskStatusChanged(changed)) =
        Event::decode(payload.as_slice()).unwrap().payload
    else {
        panic!("unexpected payload");
    };
    assert_eq!(changed.owner_role, CareRole::Rn as i32);
    assert_eq!(
        changed.due_at, task.due_at,
        "consumers need not call back for the due time"
    );
}
