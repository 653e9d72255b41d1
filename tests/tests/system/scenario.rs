//! A whole care episode through the gateway only, as a hospital and a specialist clinic would run
//! it: patient, plan and team, the discharge that books transport, a referral closed by the clinic,
//! a prior authorization pended and approved, and an abnormal result routed, escalated and
//! acknowledged, with the one-screen summary and the worklists checked at each step.

use careloop_proto::common::v1::{CareRole, LoopKind, Priority};
use careloop_proto::gateway::v1::*;
use careloop_proto::notifications::v1::AcknowledgeItemRequest;
use careloop_proto::plans::v1::*;
use careloop_proto::priorauth::v1::record_payer_response_request::{Approved, Pended, Response};
use careloop_proto::priorauth::v1::*;
use careloop_proto::referrals::v1::transition_referral_request::{self as tr, Action};
use careloop_proto::referrals::v1::*;
use careloop_runtime::auth::PrincipalKind;
use careloop_system_tests::{Gateway, System, eventually, key};
use careloop_testkit::in_hours;
use uuid::Uuid;

async fn summary(g: &mut Gateway, patient: &str) -> GetPatientSummaryResponse {
    g.get_patient_summary(GetPatientSummaryRequest {
        patient_id: patient.into(),
    })
    .await
    .expect("summary")
    .into_inner()
}

fn loops_of(s: &GetPatientSummaryResponse, kind: LoopKind) -> Vec<&WorkItem> {
    s.open_loops
        .iter()
        .filter(|l| l.kind == kind as i32 && l.service != "notifications")
        .collect()
}

fn all_available(s: &GetPatientSummaryResponse) -> bool {
    s.sections.iter().all(|x| x.available)
}

async fn worklist(g: &mut Gateway, role: CareRole) -> ListWorklistResponse {
    g.list_worklist(ListWorklistRequest {
        role: role as i32,
        page_size: 50,
        page_token: String::new(),
    })
    .await
    .expect("worklist")
    .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_care_episode_runs_through_the_gateway_with_the_summary_and_worklists_true_at_each_step()
{
    let system = System::start().await;
    let hospital = Uuid::now_v7();
    let clinic = Uuid::now_v7();
    let mut nurse = system.staff(
        hospital,
        "nurse-ann",
        &[
            "care_manager",
            "discharge_planner",
            "prior_auth_coordinator",
            "pcp",
            "rn",
        ],
    );
    let mut clinic_staff = system.as_(PrincipalKind::Partner, clinic, "dr-sam", &["specialist"]);

    // Patient, plan with its lead, and the specialist clinic on the team.
    let patient = nurse
        .create_patient(CreatePatientRequest {
            idempotency_key: key(),
            mrn: format!("MRN-{}", &Uuid::now_v7().simple().to_string()[20..]),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: "1950-03-04".into(),
            managing_org_id: hospital.to_string(),
        })
        .await
        .expect("patient")
        .into_inner()
        .patient
        .unwrap();
    let plan = nurse
        .create_care_plan(CreateCarePlanRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            content: Some(CarePlanContent {
                summary: "Home safely after heart failure admission".into(),
                red_flags: vec!["weight up 2 kg in 2 days".into()],
                ..Default::default()
            }),
            lead: Some(NewCareTeamMember {
                kind: MemberKind::Organization as i32,
                display_name: "Primary care".into(),
                role: CareRole::Pcp as i32,
                organization_id: hospital.to_string(),
                is_lead: true,
                ..Default::default()
            }),
        })
        .await
        .expect("plan")
        .into_inner()
        .plan
        .unwrap();
    // The clinic cannot see the patient before it is on the team.
    let hidden = clinic_staff
        .get_patient_summary(GetPatientSummaryRequest {
            patient_id: patient.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), tonic::Code::NotFound);
    nurse
        .add_care_team_member(AddCareTeamMemberRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            expected_version: plan.version,
            member: Some(NewCareTeamMember {
                kind: MemberKind::Organization as i32,
                display_name: "Heart clinic".into(),
                role: CareRole::Specialist as i32,
                organization_id: clinic.to_string(),
                ..Default::default()
            }),
        })
        .await
        .expect("team member");

    let s = summary(&mut nurse, &patient.id).await;
    assert!(all_available(&s), "{:?}", s.sections);
    let content = s.plan.as_ref().and_then(|p| p.content.as_ref()).unwrap();
    assert_eq!(content.summary, "Home safely after heart failure admission");
    assert_eq!(s.lead.as_ref().unwrap().display_name, "Primary care");
    assert_eq!(s.plan.as_ref().unwrap().care_team.len(), 2);
    assert!(
        s.open_loops.is_empty(),
        "nothing open yet: {:?}",
        s.open_loops
    );
    // The team change reached the gateway's access decisions: the clinic now sees the screen.
    let seen = summary(&mut clinic_staff, &patient.id).await;
    assert_eq!(seen.patient.unwrap().id, patient.id);

    // Discharge home: the pathway books transport, owned by the discharge planner.
    nurse
        .start_transition(StartTransitionRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            from_setting: CareSetting::Hospital as i32,
            to_setting: CareSetting::Home as i32,
            reason: "discharge".into(),
            success_criteria: "home with services".into(),
            risk_level: RiskLevel::High as i32,
        })
        .await
        .expect("transition");
    let transport = eventually("the transport order on the summary", || {
        let mut nurse = nurse.clone();
        let id = patient.id.clone();
        async move {
            let s = summary(&mut nurse, &id).await;
            loops_of(&s, LoopKind::Order).first().map(|l| (*l).clone())
        }
    })
    .await;
    assert_eq!(transport.label, "transport");
    assert_eq!(transport.owner_role, CareRole::DischargePlanner as i32);
    let planner = worklist(&mut nurse, CareRole::DischargePlanner).await;
    assert!(
        planner.items.iter().any(|i| i.id == transport.id),
        "the planner's worklist holds the transport order"
    );

    // A referral placed by the hospital and run to its close by the clinic.
    let referral = nurse
        .place_referral(PlaceReferralRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            from_org_id: hospital.to_string(),
            from_clinician: "dr-lee".into(),
            to_org_id: clinic.to_string(),
            service_type: "cardiology".into(),
            reason: "follow-up".into(),
            urgency: Priority::Urgent as i32,
            owner_role: CareRole::Specialist as i32,
            ..Default::default()
        })
        .await
        .expect("referral")
        .into_inner()
        .referral
        .unwrap();
    let s = summary(&mut nurse, &patient.id).await;
    let shown = loops_of(&s, LoopKind::Referral);
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].status, "placed");
    let mut version = referral.version;
    let steps = [
        (
            "accepted",
            Action::Accept(tr::Accept {
                note: String::new(),
            }),
        ),
        (
            "scheduled",
            Action::Schedule(tr::Schedule {
                appointment_at: in_hours(48),
                location: "clinic".into(),
            }),
        ),
        (
            "seen",
            Action::Seen(tr::Seen {
                note: String::new(),
            }),
        ),
        (
            "note_received",
            Action::NoteReceived(tr::NoteReceived {
                note_reference: "DocumentReference/1".into(),
            }),
        ),
    ];
    for (status, action) in steps {
        let moved = clinic_staff
            .transition_referral(TransitionReferralRequest {
                idempotency_key: key(),
                referral_id: referral.id.clone(),
                expected_version: version,
                action: Some(action),
            })
            .await
            .unwrap_or_else(|e| panic!("{status}: {e:?}"))
            .into_inner()
            .referral
            .unwrap();
        version = moved.version;
        let s = summary(&mut nurse, &patient.id).await;
        let open = loops_of(&s, LoopKind::Referral);
        if status == "note_received" {
            assert!(open.is_empty(), "the loop closes with the note");
        } else {
            assert_eq!(open[0].status, status);
        }
    }

    // Prior authorization: submitted, pended for a document, resubmitted, approved.
    let mut coordinator = nurse.clone();
    let content = RequestContent {
        payer_id: "payer-acme".into(),
        plan_member_id: "M-123".into(),
        service_lines: vec![ServiceLine {
            code: "E0260".into(),
            quantity: 1,
        }],
        diagnosis_codes: vec!["I50.22".into()],
        urgency: Urgency::Expedited as i32,
        urgency_reason: "discharge blocked".into(),
        packet: Some(ClinicalPacket {
            notes_summary: "needs hospital bed at home".into(),
            medications: vec!["furosemide".into()],
            prior_treatments: vec!["standard bed, failed".into()],
            attachment_refs: vec!["DocumentReference/9".into()],
        }),
        owner_role: CareRole::PriorAuthCoordinator as i32,
        next_action: "submit to payer".into(),
        next_patient_update_at: in_hours(24),
        linked_loop: Some(careloop_proto::common::v1::LoopRef {
            kind: LoopKind::Order as i32,
            id: transport.id.clone(),
        }),
    };
    let request = coordinator
        .create_prior_auth(CreateRequestRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            content: Some(content.clone()),
        })
        .await
        .expect("prior auth")
        .into_inner()
        .request
        .unwrap();
    let submitted = coordinator
        .submit_prior_auth(SubmitRequestRequest {
            idempotency_key: key(),
            request_id: request.id.clone(),
            expected_version: request.version,
        })
        .await
        .expect("submit")
        .into_inner()
        .request
        .unwrap();
    let s = summary(&mut nurse, &patient.id).await;
    assert_eq!(loops_of(&s, LoopKind::PriorAuth)[0].status, "submitted");
    let pended = coordinator
        .record_payer_decision(RecordPayerResponseRequest {
            idempotency_key: key(),
            request_id: request.id.clone(),
            expected_version: submitted.version,
            response: Some(Response::Pended(Pended {
                information_requested: "last echo report".into(),
            })),
        })
        .await
        .expect("pend")
        .into_inner()
        .request
        .unwrap();
    let coordinators = worklist(&mut coordinator, CareRole::PriorAuthCoordinator).await;
    let line = coordinators
        .items
        .iter()
        .find(|i| i.id == request.id)
        .expect("the pended request is the coordinator's");
    assert_eq!(line.status, "pended");
    let mut more = content.clone();
    more.packet
        .as_mut()
        .unwrap()
        .attachment_refs
        .push("DocumentReference/10".into());
    let updated = coordinator
        .update_prior_auth(UpdateRequestRequest {
            idempotency_key: key(),
            request_id: request.id.clone(),
            expected_version: pended.version,
            content: Some(more),
        })
        .await
        .expect("update")
        .into_inner()
        .request
        .unwrap();
    let resubmitted = coordinator
        .submit_prior_auth(SubmitRequestRequest {
            idempotency_key: key(),
            request_id: request.id.clone(),
            expected_version: updated.version,
        })
        .await
        .expect("resubmit")
        .into_inner()
        .request
        .unwrap();
    coordinator
        .record_payer_decision(RecordPayerResponseRequest {
            idempotency_key: key(),
            request_id: request.id.clone(),
            expected_version: resubmitted.version,
            response: Some(Response::Approved(Approved {
                authorization_number: "AUTH-1".into(),
                items: vec![],
                valid_from: in_hours(0),
                valid_to: in_hours(24 * 30),
            })),
        })
        .await
        .expect("approve");
    let s = summary(&mut nurse, &patient.id).await;
    assert!(
        loops_of(&s, LoopKind::PriorAuth).is_empty(),
        "approved: closed"
    );
    let coordinators = worklist(&mut coordinator, CareRole::PriorAuthCoordinator).await;
    assert!(!coordinators.items.iter().any(|i| i.id == request.id));

    // An abnormal result: routed to the PCP, escalated to the RN, acknowledged.
    let order = nurse
        .place_order(PlaceOrderRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            kind: OrderKind::Lab as i32,
            test_code: "BMP".into(),
            description: "panel".into(),
            setting: OrderSetting::Outpatient as i32,
            owner_role: CareRole::Rn as i32,
            ..Default::default()
        })
        .await
        .expect("order")
        .into_inner()
        .order
        .unwrap();
    let result = nurse
        .record_result(RecordResultRequest {
            idempotency_key: key(),
            order_id: order.id.clone(),
            flag: ResultFlag::Abnormal as i32,
            code: "K".into(),
            summary: String::new(),
        })
        .await
        .expect("result")
        .into_inner()
        .result
        .unwrap();
    let s = summary(&mut nurse, &patient.id).await;
    let routed = loops_of(&s, LoopKind::Result);
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].status, "routed");
    let item = eventually("the result's inbox item", || {
        let mut nurse = nurse.clone();
        let id = patient.id.clone();
        let result_id = result.id.clone();
        async move {
            summary(&mut nurse, &id)
                .await
                .open_loops
                .into_iter()
                .find(|l| {
                    l.service == "notifications"
                        && l.about.as_ref().is_some_and(|a| a.id == result_id)
                })
        }
    })
    .await;
    assert_eq!(item.owner_role, CareRole::Pcp as i32);
    assert_eq!(item.about.as_ref().unwrap().kind, LoopKind::Result as i32);
    // Once this item exists, every earlier event was routed too (one router, in stream order):
    // the inbox counts are settled.
    let pcp_before = worklist(&mut nurse, CareRole::Pcp).await.inbox_open_count;
    let rn_before = worklist(&mut nurse, CareRole::Rn).await.inbox_open_count;
    assert!(pcp_before >= 1);
    // Nobody acknowledges within the PCP's window: the item climbs to the RN.
    let raised = careloop_runtime::time::now();
    let moved = careloop_notifications::escalation::sweep(
        &system.notifications_db,
        raised + chrono::Duration::minutes(241),
        10,
    )
    .await
    .unwrap();
    assert!(moved >= 1);
    let s = summary(&mut nurse, &patient.id).await;
    let escalated = s
        .open_loops
        .iter()
        .find(|l| l.id == item.id)
        .expect("still open after escalating")
        .clone();
    assert_eq!(escalated.owner_role, CareRole::Rn as i32);
    assert!(worklist(&mut nurse, CareRole::Rn).await.inbox_open_count > rn_before);
    assert!(worklist(&mut nurse, CareRole::Pcp).await.inbox_open_count < pcp_before);
    // The RN acknowledges the item in the inbox and the result in referrals: both close.
    nurse
        .acknowledge_inbox_item(AcknowledgeItemRequest {
            idempotency_key: key(),
            item_id: item.id.clone(),
            expected_version: escalated.version,
            note: "calling the patient".into(),
        })
        .await
        .expect("inbox acknowledged");
    nurse
        .acknowledge_result(AcknowledgeResultRequest {
            idempotency_key: key(),
            result_id: result.id.clone(),
            expected_version: result.version,
            action_taken: "potassium repeated".into(),
        })
        .await
        .expect("result acknowledged");
    let s = summary(&mut nurse, &patient.id).await;
    assert!(loops_of(&s, LoopKind::Result).is_empty());
    assert!(!s.open_loops.iter().any(|l| l.id == item.id));
    // What is left open is the transport and the lab order itself (and the transition's notices
    // in the inbox).
    let mut open: Vec<&str> = s
        .open_loops
        .iter()
        .filter(|l| l.service != "notifications")
        .map(|l| l.id.as_str())
        .collect();
    open.sort_unstable();
    let mut orders = vec![transport.id.as_str(), order.id.as_str()];
    orders.sort_unstable();
    assert_eq!(open, orders);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE patient_id = $1 AND action = 'GetPatientSummary'",
    )
    .bind(Uuid::parse_str(&patient.id).unwrap())
    .fetch_one(&system.gateway_db)
    .await
    .unwrap();
    assert!(
        audited >= 10,
        "every summary is audited by the gateway: {audited}"
    );
}
