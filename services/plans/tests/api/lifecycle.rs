//! Whole flows: health and reflection, the care team lead, tasks on a role worklist, handoffs,
//! and a transition that completes only when its checklist is done.

use crate::helpers::*;
use careloop_proto::common::v1::CareRole;
use careloop_proto::plans::v1::list_open_tasks_request::Filter;
use careloop_proto::plans::v1::*;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

#[tokio::test]
async fn health_reports_serving_and_metrics_are_exported() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel());
    for service in ["", "careloop.plans.v1.PlansService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }
    let mut c = app.client();
    app.create_patient(&mut c).await;
    let body = http_get(app.metrics_addr, "/metrics").await;
    assert!(body.contains("careloop_grpc_requests_total"), "{body}");
    assert!(body.contains("CreatePatient"));
}

#[tokio::test]
async fn on_shutdown_health_turns_not_serving_before_calls_drain() {
    let mut app = spawn_app_with(|s| {
        s.events.enabled = false;
        s.grpc.shutdown_grace_ms = 3_000;
    })
    .await;
    let mut health = HealthClient::new(app.channel());
    app.begin_shutdown();
    let mut seen = None;
    for _ in 0..100 {
        let status = health
            .check(HealthCheckRequest {
                service: "careloop.plans.v1.PlansService".into(),
            })
            .await
            .map(|r| r.into_inner().status)
            .ok();
        if status == Some(ServingStatus::NotServing as i32) {
            seen = status;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen,
        Some(ServingStatus::NotServing as i32),
        "probes see NOT_SERVING during the grace period"
    );
    // Still answering calls while load balancers take it out of rotation.
    let mut c = app.client();
    app.create_patient(&mut c).await;
}

#[tokio::test]
async fn reflection_lists_what_plans_serves_and_nothing_else() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let app = spawn_app().await;
    let mut client = ServerReflectionClient::new(app.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "careloop.audit.v1.AuditService",
            "careloop.plans.v1.PlansService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ],
        "not referrals' or prior-auth's services"
    );
}

pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn the_team_always_has_exactly_one_lead() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let plan = app.create_plan(&mut c, &patient.id).await;
    let first_lead = plan.care_team[0].id.clone();
    let added = c
        .add_care_team_member(AddCareTeamMemberRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            expected_version: plan.version,
            member: Some(NewCareTeamMember {
                kind: MemberKind::Person as i32,
                display_name: "Case manager".into(),
                role: CareRole::CareManager as i32,
                is_lead: true,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let plan = added.plan.unwrap();
    let leads: Vec<_> = plan.care_team.iter().filter(|m| m.is_lead).collect();
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0].id, added.member.unwrap().id);
    let new_lead = leads[0].id.clone();
    let status = c
        .remove_care_team_member(RemoveCareTeamMemberRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            expected_version: plan.version,
            member_id: new_lead,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let plan = c
        .remove_care_team_member(RemoveCareTeamMemberRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            expected_version: plan.version,
            member_id: first_lead,
        })
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(plan.care_team.len(), 1);
    assert!(plan.care_team[0].is_lead);
}

#[tokio::test]
async fn reconciling_medications_stamps_who_and_when() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let plan = app.create_plan(&mut c, &patient.id).await;
    let mut meds = plan.content.unwrap().medications;
    meds[0].dose = "20 mg".into();
    let plan = c
        .reconcile_medications(ReconcileMedicationsRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            expected_version: plan.version,
            medications: meds,
            reconciled_by_role: CareRole::Pharmacist as i32,
            note: "reconciled with patient present".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    let stamp = plan.last_reconciliation.unwrap();
    assert_eq!(stamp.reconciled_by, "nurse-1");
    assert_eq!(stamp.reconciled_by_role, CareRole::Pharmacist as i32);
    assert!(stamp.reconciled_at.is_some());
    assert_eq!(plan.content.unwrap().medications[0].dose, "20 mg");
    assert_eq!(plan.version, 2);
}

#[tokio::test]
async fn a_role_worklist_lists_open_tasks_by_due_time_with_overdue_flags_and_pages() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let mut ids = Vec::new();
    for hours in [5, -2, 1] {
        let t = c
            .create_task(CreateTaskRequest {
                idempotency_key: key(),
                patient_id: patient.id.clone(),
                title: format!("task due in {hours}h"),
                owner_role: CareRole::Rn as i32,
                backup_role: CareRole::CareManager as i32,
                due_at: in_hours(hours),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .task
            .unwrap();
        ids.push((hours, t));
    }
    // The task due in 1 h is completed: it leaves the worklist.
    let done = ids[2].1.clone();
    let mut version = done.version;
    for action in [TaskAction::Accept, TaskAction::Start, TaskAction::Complete] {
        version = c
            .transition_task(TransitionTaskRequest {
                idempotency_key: key(),
                task_id: done.id.clone(),
                expected_version: version,
                action: action as i32,
                reason: "".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .task
            .unwrap()
            .version;
    }
    let page1 = c
        .list_open_tasks(ListOpenTasksRequest {
            filter: Some(Filter::OwnerRole(CareRole::Rn as i32)),
            page_size: 1,
            page_token: "".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page1.tasks.len(), 1);
    assert_eq!(
        page1.tasks[0].id, ids[1].1.id,
        "the overdue task comes first"
    );
    assert!(page1.tasks[0].overdue);
    let page2 = c
        .list_open_tasks(ListOpenTasksRequest {
            filter: Some(Filter::OwnerRole(CareRole::Rn as i32)),
            page_size: 1,
            page_token: page1.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page2.tasks.len(), 1);
    assert_eq!(page2.tasks[0].id, ids[0].1.id);
    assert!(!page2.tasks[0].overdue);
    assert!(page2.next_page_token.is_empty());
    // An outsider's worklist does not show this patient's tasks.
    let theirs = app
        .outsider()
        .list_open_tasks(ListOpenTasksRequest {
            filter: Some(Filter::OwnerRole(CareRole::Rn as i32)),
            page_size: 10,
            page_token: "".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.tasks.is_empty());
}

#[tokio::test]
async fn a_held_task_resumes_where_it_was_and_a_closed_task_cannot_move() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let task = c
        .create_task(CreateTaskRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            title: "Order DME".into(),
            owner_role: CareRole::CareManager as i32,
            due_at: in_hours(10),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let act = |t: &Task, action: TaskAction, reason: &str| TransitionTaskRequest {
        idempotency_key: key(),
        task_id: t.id.clone(),
        expected_version: t.version,
        action: action as i32,
        reason: reason.into(),
    };
    let t = c
        .transition_task(act(&task, TaskAction::Accept, ""))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let t = c
        .transition_task(act(&t, TaskAction::Hold, "waiting on payer"))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(
        (t.status, t.held_from),
        (TaskStatus::OnHold as i32, TaskStatus::Accepted as i32)
    );
    let t = c
        .transition_task(act(&t, TaskAction::Resume, ""))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(t.status, TaskStatus::Accepted as i32);
    let t = c
        .transition_task(act(&t, TaskAction::Cancel, "no longer needed"))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let status = c
        .transition_task(act(&t, TaskAction::Start, ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        status.message(),
        "task cannot move from cancelled to in_progress"
    );
}

#[tokio::test]
async fn a_handoff_stays_on_the_role_list_until_acknowledged() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let handoff = c
        .send_handoff(SendHandoffRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            from_role: CareRole::Hospitalist as i32,
            to_role: CareRole::Pcp as i32,
            situation: "discharged home today".into(),
            background: "CHF admission".into(),
            assessment: "euvolemic".into(),
            recommendation: "visit within 7 days".into(),
            pending_items: vec!["BNP pending".into()],
            red_flags: vec!["weight gain".into()],
            acknowledge_by: None,
        })
        .await
        .unwrap()
        .into_inner()
        .handoff
        .unwrap();
    let list = |mut c: Client| async move {
        c.list_unacknowledged_handoffs(ListUnacknowledgedHandoffsRequest {
            to_role: CareRole::Pcp as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .handoffs
    };
    assert_eq!(list(c.clone()).await.len(), 1);
    let acked = c
        .acknowledge_handoff(AcknowledgeHandoffRequest {
            idempotency_key: key(),
            handoff_id: handoff.id.clone(),
            expected_version: handoff.version,
        })
        .await
        .unwrap()
        .into_inner()
        .handoff
        .unwrap();
    assert_eq!(acked.acknowledged_by, "nurse-1");
    assert!(list(c.clone()).await.is_empty());
    let again = c
        .acknowledge_handoff(AcknowledgeHandoffRequest {
            idempotency_key: key(),
            handoff_id: handoff.id,
            expected_version: acked.version,
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn a_transition_completes_only_when_every_required_item_is_done_or_waived() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let mut t = c
        .start_transition(StartTransitionRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            from_setting: CareSetting::Hospital as i32,
            to_setting: CareSetting::Home as i32,
            reason: "discharge after CHF".into(),
            success_criteria: "no readmission in 30 days".into(),
            risk_level: RiskLevel::High as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .transition
        .unwrap();
    let complete = |t: &CareTransition| CompleteTransitionRequest {
        idempotency_key: key(),
        transition_id: t.id.clone(),
        expected_version: t.version,
    };
    let status = c.complete_transition(complete(&t)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains("follow_up_call"));
    for (item, state, reason) in [
        (
            ChecklistItemKind::MedicationsReconciled,
            ChecklistItemState::Done,
            "",
        ),
        (
            ChecklistItemKind::NextAppointmentBooked,
            ChecklistItemState::Done,
            "",
        ),
        (ChecklistItemKind::HandoffSent, ChecklistItemState::Done, ""),
        (
            ChecklistItemKind::OnePagePlanGiven,
            ChecklistItemState::Waived,
            "patient has the portal version",
        ),
    ] {
        t = c
            .update_checklist_item(UpdateChecklistItemRequest {
                idempotency_key: key(),
                transition_id: t.id.clone(),
                expected_version: t.version,
                item: item as i32,
                state: state as i32,
                waive_reason: reason.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .transition
            .unwrap();
    }
    let status = c.complete_transition(complete(&t)).await.unwrap_err();
    assert_eq!(
        status.message(),
        "transition cannot complete: pending required items follow_up_call"
    );
    t = c
        .update_checklist_item(UpdateChecklistItemRequest {
            idempotency_key: key(),
            transition_id: t.id.clone(),
            expected_version: t.version,
            item: ChecklistItemKind::FollowUpCall as i32,
            state: ChecklistItemState::Done as i32,
            waive_reason: "".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .transition
        .unwrap();
    let done = c
        .complete_transition(complete(&t))
        .await
        .unwrap()
        .into_inner()
        .transition
        .unwrap();
    assert_eq!(done.status, TransitionStatus::Completed as i32);
    assert!(done.completed_at.is_some());
}
