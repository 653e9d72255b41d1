//! Every RPC refuses malformed input with INVALID_ARGUMENT naming the field, and writes nothing.

use crate::helpers::*;
use careloop_proto::common::v1::{CareRole, LoopKind, LoopRef};
use careloop_proto::plans::v1::list_open_tasks_request::Filter;
use careloop_proto::plans::v1::*;

use careloop_testkit::refused;

#[tokio::test]
async fn every_rpc_names_the_bad_field_and_writes_nothing() {
    // Every case is checked; the report lists all that failed, not only the first.
    let _cases = careloop_testkit::cases::CaseReport;
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let plan = app.create_plan(&mut c, &patient.id).await;
    let pid = patient.id.clone();
    let task = c
        .create_task(CreateTaskRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            title: "Call with echo results".into(),
            owner_role: CareRole::Rn as i32,
            due_at: in_hours(24),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let transition = c
        .start_transition(StartTransitionRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            from_setting: CareSetting::Hospital as i32,
            to_setting: CareSetting::Home as i32,
            reason: "discharge".into(),
            success_criteria: "no readmission in 30 days".into(),
            risk_level: RiskLevel::High as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .transition
        .unwrap();
    let before = app.footprint().await;
    let long = "x".repeat(5000);
    let good_patient = CreatePatientRequest {
        idempotency_key: key(),
        mrn: "MRN-BAD".into(),
        given_name: "Ada".into(),
        family_name: "Lovelace".into(),
        birth_date: "1950-03-04".into(),
        managing_org_id: app.org_id.to_string(),
    };

    // patients
    refused!(
        c.create_patient(CreatePatientRequest {
            idempotency_key: "".into(),
            ..good_patient.clone()
        }),
        "idempotency_key"
    );
    refused!(
        c.create_patient(CreatePatientRequest {
            mrn: " ".into(),
            ..good_patient.clone()
        }),
        "mrn"
    );
    refused!(
        c.create_patient(CreatePatientRequest {
            given_name: long.clone(),
            ..good_patient.clone()
        }),
        "given_name"
    );
    refused!(
        c.create_patient(CreatePatientRequest {
            family_name: "".into(),
            ..good_patient.clone()
        }),
        "family_name"
    );
    refused!(
        c.create_patient(CreatePatientRequest {
            birth_date: "04/03/1950".into(),
            ..good_patient.clone()
        }),
        "birth_date"
    );
    refused!(
        c.create_patient(CreatePatientRequest {
            birth_date: "2999-01-01".into(),
            ..good_patient.clone()
        }),
        "birth_date"
    );
    refused!(
        c.create_patient(CreatePatientRequest {
            managing_org_id: "org-1".into(),
            ..good_patient.clone()
        }),
        "managing_org_id"
    );
    refused!(
        c.get_patient(GetPatientRequest {
            patient_id: "not-a-uuid".into()
        }),
        "patient_id"
    );
    refused!(
        c.find_patient_by_mrn(FindPatientByMrnRequest {
            managing_org_id: "".into(),
            mrn: "x".into()
        }),
        "managing_org_id"
    );
    refused!(
        c.find_patient_by_mrn(FindPatientByMrnRequest {
            managing_org_id: app.org_id.to_string(),
            mrn: "".into()
        }),
        "mrn"
    );

    // care plan
    let lead = NewCareTeamMember {
        kind: MemberKind::Person as i32,
        display_name: "Dr. X".into(),
        role: CareRole::Pcp as i32,
        ..Default::default()
    };
    let good_create = CreateCarePlanRequest {
        idempotency_key: key(),
        patient_id: pid.clone(),
        content: Some(plan_content("Stay well at home")),
        lead: Some(lead.clone()),
    };
    refused!(
        c.create_care_plan(CreateCarePlanRequest {
            patient_id: "123".into(),
            ..good_create.clone()
        }),
        "patient_id"
    );
    refused!(
        c.create_care_plan(CreateCarePlanRequest {
            content: None,
            ..good_create.clone()
        }),
        "content"
    );
    refused!(
        c.create_care_plan(CreateCarePlanRequest {
            lead: None,
            ..good_create.clone()
        }),
        "lead"
    );
    refused!(
        c.create_care_plan(CreateCarePlanRequest {
            lead: Some(NewCareTeamMember {
                role: 99,
                ..lead.clone()
            }),
            ..good_create.clone()
        }),
        "lead.role"
    );
    refused!(
        c.create_care_plan(CreateCarePlanRequest {
            lead: Some(NewCareTeamMember {
                kind: 0,
                ..lead.clone()
            }),
            ..good_create.clone()
        }),
        "lead.kind"
    );
    refused!(
        c.get_care_plan(GetCarePlanRequest {
            patient_id: "".into()
        }),
        "patient_id"
    );
    let mut bad_content = plan_content("ok");
    bad_content.summary = long.clone();
    let good_update = UpdateCarePlanRequest {
        idempotency_key: key(),
        patient_id: pid.clone(),
        expected_version: plan.version,
        content: Some(plan_content("Updated")),
    };
    refused!(
        c.update_care_plan(UpdateCarePlanRequest {
            content: Some(bad_content),
            ..good_update.clone()
        }),
        "content.summary"
    );
    refused!(
        c.update_care_plan(UpdateCarePlanRequest {
            expected_version: 0,
            ..good_update.clone()
        }),
        "expected_version"
    );
    let mut bad_goal = plan_content("ok");
    bad_goal.goals[0].status = 42;
    refused!(
        c.update_care_plan(UpdateCarePlanRequest {
            content: Some(bad_goal),
            ..good_update.clone()
        }),
        "content.goals[0].status"
    );
    let mut bad_med = plan_content("ok");
    bad_med.medications[0].dose = "".into();
    refused!(
        c.update_care_plan(UpdateCarePlanRequest {
            content: Some(bad_med),
            ..good_update.clone()
        }),
        "content.medications[0].dose"
    );
    let mut bad_flag = plan_content("ok");
    bad_flag.red_flags = vec!["".into()];
    refused!(
        c.update_care_plan(UpdateCarePlanRequest {
            content: Some(bad_flag),
            ..good_update.clone()
        }),
        "content.red_flags[0]"
    );
    let good_reconcile = ReconcileMedicationsRequest {
        idempotency_key: key(),
        patient_id: pid.clone(),
        expected_version: plan.version,
        medications: plan_content("x").medications,
        reconciled_by_role: CareRole::Pharmacist as i32,
        note: "".into(),
    };
    refused!(
        c.reconcile_medications(ReconcileMedicationsRequest {
            reconciled_by_role: 0,
            ..good_reconcile.clone()
        }),
        "reconciled_by_role"
    );
    refused!(
        c.reconcile_medications(ReconcileMedicationsRequest {
            note: long.clone(),
            ..good_reconcile.clone()
        }),
        "note"
    );

    // care team
    refused!(
        c.add_care_team_member(AddCareTeamMemberRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            expected_version: plan.version,
            member: None
        }),
        "member"
    );
    refused!(
        c.add_care_team_member(AddCareTeamMemberRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            expected_version: plan.version,
            member: Some(NewCareTeamMember {
                kind: MemberKind::Organization as i32,
                ..lead.clone()
            })
        }),
        "member.organization_id"
    );
    refused!(
        c.update_care_team_member(UpdateCareTeamMemberRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            expected_version: plan.version,
            member_id: "m".into(),
            ..Default::default()
        }),
        "member_id"
    );
    refused!(
        c.update_care_team_member(UpdateCareTeamMemberRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            expected_version: plan.version,
            member_id: plan.care_team[0].id.clone(),
            preferred_contact: Some(PreferredContact {
                channel: 77,
                address: "x".into()
            }),
            ..Default::default()
        }),
        "preferred_contact.channel"
    );
    refused!(
        c.remove_care_team_member(RemoveCareTeamMemberRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            expected_version: -1,
            member_id: plan.care_team[0].id.clone()
        }),
        "expected_version"
    );

    // consents
    let good_consent = GrantConsentRequest {
        idempotency_key: key(),
        patient_id: pid.clone(),
        grantee_org_id: uuid::Uuid::now_v7().to_string(),
        purpose: ConsentPurpose::Treatment as i32,
        scope: ConsentScope::Read as i32,
        ..Default::default()
    };
    refused!(
        c.grant_consent(GrantConsentRequest {
            grantee_org_id: "".into(),
            ..good_consent.clone()
        }),
        "grantee_member_id"
    );
    refused!(
        c.grant_consent(GrantConsentRequest {
            purpose: 9,
            ..good_consent.clone()
        }),
        "purpose"
    );
    refused!(
        c.grant_consent(GrantConsentRequest {
            scope: 0,
            ..good_consent.clone()
        }),
        "scope"
    );
    refused!(
        c.grant_consent(GrantConsentRequest {
            period_start: in_hours(5),
            period_end: in_hours(1),
            ..good_consent.clone()
        }),
        "period_end"
    );
    refused!(
        c.grant_consent(GrantConsentRequest {
            period_end: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: -5
            }),
            ..good_consent.clone()
        }),
        "period_end"
    );
    refused!(
        c.revoke_consent(RevokeConsentRequest {
            idempotency_key: key(),
            consent_id: "c".into(),
            reason: "x".into(),
            expected_version: 1
        }),
        "consent_id"
    );
    refused!(
        c.revoke_consent(RevokeConsentRequest {
            idempotency_key: key(),
            consent_id: uuid::Uuid::now_v7().to_string(),
            reason: "".into(),
            expected_version: 1
        }),
        "reason"
    );
    refused!(
        c.list_consents(ListConsentsRequest {
            patient_id: "x".into(),
            ..Default::default()
        }),
        "patient_id"
    );
    refused!(
        c.revoke_consent(RevokeConsentRequest {
            idempotency_key: key(),
            consent_id: uuid::Uuid::now_v7().to_string(),
            reason: "x".into(),
            expected_version: 0
        }),
        "expected_version"
    );
    refused!(
        c.list_consents(ListConsentsRequest {
            patient_id: pid.clone(),
            page_size: 10,
            page_token: "nope".into()
        }),
        "page_token"
    );
    refused!(
        c.check_access(CheckAccessRequest {
            principal: None,
            patient_id: pid.clone()
        }),
        "principal"
    );
    refused!(
        c.list_consented_caregivers(ListConsentedCaregiversRequest {
            patient_id: "p".into()
        }),
        "patient_id"
    );

    // tasks
    let good_task = CreateTaskRequest {
        idempotency_key: key(),
        patient_id: pid.clone(),
        title: "Book follow-up".into(),
        owner_role: CareRole::Scheduler as i32,
        due_at: in_hours(48),
        ..Default::default()
    };
    refused!(
        c.create_task(CreateTaskRequest {
            title: "".into(),
            ..good_task.clone()
        }),
        "title"
    );
    refused!(
        c.create_task(CreateTaskRequest {
            owner_role: 0,
            ..good_task.clone()
        }),
        "owner_role"
    );
    refused!(
        c.create_task(CreateTaskRequest {
            owner_role: 1234,
            ..good_task.clone()
        }),
        "owner_role"
    );
    refused!(
        c.create_task(CreateTaskRequest {
            due_at: None,
            ..good_task.clone()
        }),
        "due_at"
    );
    refused!(
        c.create_task(CreateTaskRequest {
            backup_role: CareRole::Scheduler as i32,
            ..good_task.clone()
        }),
        "backup_role"
    );
    refused!(
        c.create_task(CreateTaskRequest {
            priority: 8,
            ..good_task.clone()
        }),
        "priority"
    );
    refused!(
        c.create_task(CreateTaskRequest {
            assignee_member_id: "bob".into(),
            ..good_task.clone()
        }),
        "assignee_member_id"
    );
    refused!(
        c.create_task(CreateTaskRequest {
            linked_loop: Some(LoopRef {
                kind: LoopKind::Referral as i32,
                id: "r-1".into()
            }),
            ..good_task.clone()
        }),
        "linked_loop.id"
    );
    refused!(
        c.create_task(CreateTaskRequest {
            description: long.clone(),
            ..good_task.clone()
        }),
        "description"
    );
    refused!(
        c.get_task(GetTaskRequest {
            task_id: "t".into()
        }),
        "task_id"
    );
    refused!(
        c.assign_task(AssignTaskRequest {
            idempotency_key: key(),
            task_id: task.id.clone(),
            expected_version: 1,
            owner_role: 55,
            assignee_member_id: "".into()
        }),
        "owner_role"
    );
    refused!(
        c.transition_task(TransitionTaskRequest {
            idempotency_key: key(),
            task_id: task.id.clone(),
            expected_version: 1,
            action: 0,
            reason: "".into()
        }),
        "action"
    );
    refused!(
        c.transition_task(TransitionTaskRequest {
            idempotency_key: key(),
            task_id: task.id.clone(),
            expected_version: 1,
            action: TaskAction::Cancel as i32,
            reason: " ".into()
        }),
        "reason"
    );
    refused!(
        c.list_open_tasks(ListOpenTasksRequest {
            filter: None,
            page_size: 10,
            page_token: "".into()
        }),
        "filter"
    );
    refused!(
        c.list_open_tasks(ListOpenTasksRequest {
            filter: Some(Filter::OwnerRole(0)),
            page_size: 10,
            page_token: "".into()
        }),
        "owner_role"
    );
    refused!(
        c.list_open_tasks(ListOpenTasksRequest {
            filter: Some(Filter::PatientId(pid.clone())),
            page_size: -1,
            page_token: "".into()
        }),
        "page_size"
    );
    refused!(
        c.list_open_tasks(ListOpenTasksRequest {
            filter: Some(Filter::PatientId(pid.clone())),
            page_size: 10,
            page_token: "garbage".into()
        }),
        "page_token"
    );

    // handoffs
    let good_handoff = SendHandoffRequest {
        idempotency_key: key(),
        patient_id: pid.clone(),
        from_role: CareRole::Hospitalist as i32,
        to_role: CareRole::Pcp as i32,
        situation: "s".into(),
        background: "b".into(),
        assessment: "a".into(),
        recommendation: "r".into(),
        ..Default::default()
    };
    refused!(
        c.send_handoff(SendHandoffRequest {
            situation: "".into(),
            ..good_handoff.clone()
        }),
        "situation"
    );
    refused!(
        c.send_handoff(SendHandoffRequest {
            recommendation: long.clone(),
            ..good_handoff.clone()
        }),
        "recommendation"
    );
    refused!(
        c.send_handoff(SendHandoffRequest {
            to_role: 0,
            ..good_handoff.clone()
        }),
        "to_role"
    );
    refused!(
        c.send_handoff(SendHandoffRequest {
            pending_items: vec!["".into()],
            ..good_handoff.clone()
        }),
        "pending_items[0]"
    );
    refused!(
        c.send_handoff(SendHandoffRequest {
            red_flags: vec!["x".into(); 101],
            ..good_handoff.clone()
        }),
        "red_flags"
    );
    refused!(
        c.acknowledge_handoff(AcknowledgeHandoffRequest {
            idempotency_key: key(),
            handoff_id: "h".into(),
            expected_version: 1
        }),
        "handoff_id"
    );
    refused!(
        c.acknowledge_handoff(AcknowledgeHandoffRequest {
            idempotency_key: key(),
            handoff_id: uuid::Uuid::now_v7().to_string(),
            expected_version: 0
        }),
        "expected_version"
    );
    refused!(
        c.list_unacknowledged_handoffs(ListUnacknowledgedHandoffsRequest {
            to_role: 0,
            ..Default::default()
        }),
        "to_role"
    );

    // transitions
    let good_start = StartTransitionRequest {
        idempotency_key: key(),
        patient_id: pid.clone(),
        from_setting: CareSetting::Hospital as i32,
        to_setting: CareSetting::Home as i32,
        reason: "discharge".into(),
        success_criteria: "home and safe".into(),
        risk_level: RiskLevel::Low as i32,
    };
    refused!(
        c.start_transition(StartTransitionRequest {
            to_setting: CareSetting::Hospital as i32,
            ..good_start.clone()
        }),
        "to_setting"
    );
    refused!(
        c.start_transition(StartTransitionRequest {
            risk_level: 0,
            ..good_start.clone()
        }),
        "risk_level"
    );
    refused!(
        c.start_transition(StartTransitionRequest {
            success_criteria: "".into(),
            ..good_start.clone()
        }),
        "success_criteria"
    );
    refused!(
        c.get_transition(GetTransitionRequest {
            transition_id: "".into()
        }),
        "transition_id"
    );
    let good_item = UpdateChecklistItemRequest {
        idempotency_key: key(),
        transition_id: transition.id.clone(),
        expected_version: transition.version,
        item: ChecklistItemKind::HandoffSent as i32,
        state: ChecklistItemState::Waived as i32,
        waive_reason: "".into(),
    };
    refused!(c.update_checklist_item(good_item.clone()), "waive_reason");
    refused!(
        c.update_checklist_item(UpdateChecklistItemRequest {
            item: 0,
            ..good_item.clone()
        }),
        "item"
    );
    refused!(
        c.update_checklist_item(UpdateChecklistItemRequest {
            state: 12,
            ..good_item.clone()
        }),
        "state"
    );
    refused!(
        c.complete_transition(CompleteTransitionRequest {
            idempotency_key: "".into(),
            transition_id: transition.id.clone(),
            expected_version: 1
        }),
        "idempotency_key"
    );

    assert_eq!(
        app.footprint().await,
        before,
        "refused requests must write nothing"
    );
}

#[tokio::test]
async fn a_call_without_a_valid_token_is_unauthenticated() {
    let app = spawn_app().await;
    let mut anonymous = app.client_with(None);
    let status = anonymous
        .get_patient(GetPatientRequest {
            patient_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let mut forged = app.client_with(Some("eyJhbGciOiJIUzI1NiJ9.e30.bad".into()));
    let status = forged
        .get_patient(GetPatientRequest {
            patient_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}
