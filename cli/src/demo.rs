//! Demo data, written through the gateway as a partner app would: one patient going home from hospital after a heart-failure admission, with a plan,
//! a care team, open tasks for several roles, an SBAR handoff and a high-risk transition.

use crate::client::Gateway;
use careloop_proto::common::v1::CareRole;
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::DEV_ORG_ID;

/// Demo writes each get a fresh key (a given --idempotency-key names one write, not a demo).
fn key() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub async fn seed(c: &mut Gateway) -> anyhow::Result<()> {
    let mrn = format!("DEMO-{}", &uuid::Uuid::now_v7().simple().to_string()[24..]);
    let patient = c
        .create_patient(CreatePatientRequest {
            idempotency_key: key(),
            mrn: mrn.clone(),
            given_name: "Maria".into(),
            family_name: "Demo".into(),
            birth_date: "1948-06-12".into(),
            managing_org_id: DEV_ORG_ID.to_string(),
        })
        .await?
        .into_inner()
        .patient
        .unwrap_or_default();
    let pid = patient.id.clone();
    let at = |h: i64| {
        Some(careloop_runtime::time::to_timestamp(
            chrono::Utc::now() + chrono::Duration::hours(h),
        ))
    };
    let plan = c
        .create_care_plan(CreateCarePlanRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            content: Some(CarePlanContent {
                summary: "Home safely after a heart-failure admission, no readmission in 30 days"
                    .into(),
                goals: vec![Goal {
                    text: "Daily weights logged and shared".into(),
                    target_date: String::new(),
                    status: GoalStatus::Active as i32,
                }],
                medications: vec![Medication {
                    name: "furosemide".into(),
                    dose: "40 mg".into(),
                    route: "oral".into(),
                    frequency: "once daily".into(),
                    status: MedicationStatus::Active as i32,
                }],
                allergies: vec![Allergy {
                    substance: "penicillin".into(),
                    reaction: "rash".into(),
                    severity: AllergySeverity::Moderate as i32,
                }],
                red_flags: vec![
                    "weight gain over 2 kg in 3 days".into(),
                    "short of breath lying flat".into(),
                ],
                who_to_call: vec![WhoToCall {
                    role: CareRole::CareManager as i32,
                    phone: "+1-555-0100".into(),
                    hours: "Mon-Fri 8-17".into(),
                }],
                next_touchpoint: Some(Touchpoint {
                    at: at(48),
                    description: "follow-up call".into(),
                    owner_role: CareRole::Rn as i32,
                }),
            }),
            lead: Some(NewCareTeamMember {
                kind: MemberKind::Person as i32,
                display_name: "Dr. Primary".into(),
                role: CareRole::Pcp as i32,
                organization_id: DEV_ORG_ID.to_string(),
                subject: "dev-user".into(),
                preferred_contact: None,
                is_lead: true,
                subject_issuer: String::new(),
            }),
        })
        .await?
        .into_inner()
        .plan
        .unwrap_or_default();
    for (title, role, hours) in [
        ("Call within 72 h of discharge", CareRole::Rn, 72),
        (
            "Reconcile medications with the patient present",
            CareRole::Pharmacist,
            4,
        ),
        (
            "Confirm the patient knows the pickup time",
            CareRole::CareManager,
            -1,
        ),
    ] {
        c.create_task(CreateTaskRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            title: title.into(),
            owner_role: role as i32,
            backup_role: CareRole::CareManager as i32 * i32::from(role != CareRole::CareManager),
            due_at: at(hours),
            ..Default::default()
        })
        .await?;
    }
    c.send_handoff(SendHandoffRequest {
        idempotency_key: key(),
        patient_id: pid.clone(),
        from_role: CareRole::Hospitalist as i32,
        to_role: CareRole::Pcp as i32,
        situation: "Discharged home today after 5-day CHF admission".into(),
        background: "EF 30%, diuresed 4 kg".into(),
        assessment: "Euvolemic, stable on oral furosemide".into(),
        recommendation: "See within 7 days; check BMP".into(),
        pending_items: vec!["BNP result pending".into()],
        red_flags: vec!["weight gain".into()],
        acknowledge_by: None,
    })
    .await?;
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
        .await?
        .into_inner()
        .transition
        .unwrap_or_default();
    use careloop_proto::common::v1::Priority;
    use careloop_proto::referrals::v1::{
        OrderKind, OrderSetting, PlaceOrderRequest, PlaceReferralRequest,
    };
    let referral = c
        .place_referral(PlaceReferralRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            from_org_id: DEV_ORG_ID.to_string(),
            from_clinician: "Dr. Primary".into(),
            to_org_id: String::new(),
            to_specialty: "cardiology".into(),
            service_type: "heart failure clinic".into(),
            reason: "post-discharge follow-up, EF 30%".into(),
            urgency: Priority::Urgent as i32,
            owner_role: CareRole::CareManager as i32,
            clinical_context: String::new(),
        })
        .await?
        .into_inner()
        .referral
        .unwrap_or_default();
    let lab = c
        .place_order(PlaceOrderRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            kind: OrderKind::Lab as i32,
            test_code: "LOINC-24323-8".into(),
            description: "basic metabolic panel".into(),
            setting: OrderSetting::Outpatient as i32,
            owner_role: CareRole::Rn as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .order
        .unwrap_or_default();
    use careloop_proto::common::v1::{LoopKind, LoopRef};
    use careloop_proto::priorauth::v1::{
        ClinicalPacket, CreateRequestRequest, RequestContent, ServiceLine, SubmitRequestRequest,
        Urgency,
    };
    let draft = c
        .create_prior_auth(CreateRequestRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            content: Some(RequestContent {
                linked_loop: Some(LoopRef {
                    kind: LoopKind::Order as i32,
                    id: lab.id.clone(),
                }),
                payer_id: "demo-payer".into(),
                plan_member_id: "M-0001".into(),
                service_lines: vec![ServiceLine {
                    code: "E0260".into(),
                    quantity: 1,
                }],
                diagnosis_codes: vec!["I50.22".into()],
                urgency: Urgency::Expedited as i32,
                urgency_reason: "discharge waits on the hospital bed".into(),
                packet: Some(ClinicalPacket {
                    notes_summary: "CHF with orthopnea; needs a semi-electric hospital bed at home"
                        .into(),
                    medications: vec!["furosemide 40 mg".into()],
                    prior_treatments: vec!["wedge pillows".into()],
                    attachment_refs: vec!["DocumentReference/demo-1".into()],
                }),
                owner_role: CareRole::PriorAuthCoordinator as i32,
                next_action: "await payer decision".into(),
                next_patient_update_at: at(24),
            }),
        })
        .await?
        .into_inner()
        .request
        .unwrap_or_default();
    let auth = c
        .submit_prior_auth(SubmitRequestRequest {
            idempotency_key: key(),
            request_id: draft.id.clone(),
            expected_version: draft.version,
        })
        .await?
        .into_inner()
        .request
        .unwrap_or_default();
    // A second request, standard, which the coordinator records as approved by the payer: the
    // prior-authorization measures (`careloop measure prior-auth`) have a decision to count.
    let second = c
        .create_prior_auth(CreateRequestRequest {
            idempotency_key: key(),
            patient_id: pid.clone(),
            content: Some(RequestContent {
                linked_loop: Some(LoopRef {
                    kind: LoopKind::Referral as i32,
                    id: referral.id.clone(),
                }),
                payer_id: "demo-payer".into(),
                plan_member_id: "M-0001".into(),
                service_lines: vec![ServiceLine {
                    code: "E0470".into(),
                    quantity: 1,
                }],
                diagnosis_codes: vec!["I50.22".into()],
                urgency: Urgency::Standard as i32,
                urgency_reason: String::new(),
                packet: Some(ClinicalPacket {
                    notes_summary: "home oxygen concentrator after discharge".into(),
                    medications: vec!["furosemide 40 mg".into()],
                    prior_treatments: vec!["none".into()],
                    attachment_refs: vec!["DocumentReference/demo-2".into()],
                }),
                owner_role: CareRole::PriorAuthCoordinator as i32,
                next_action: "await payer decision".into(),
                next_patient_update_at: at(48),
            }),
        })
        .await?
        .into_inner()
        .request
        .unwrap_or_default();
    let second = c
        .submit_prior_auth(SubmitRequestRequest {
            idempotency_key: key(),
            request_id: second.id.clone(),
            expected_version: second.version,
        })
        .await?
        .into_inner()
        .request
        .unwrap_or_default();
    {
        use careloop_proto::priorauth::v1::RecordPayerResponseRequest;
        use careloop_proto::priorauth::v1::record_payer_response_request::{Approved, Response};
        c.record_payer_decision(RecordPayerResponseRequest {
            idempotency_key: key(),
            request_id: second.id.clone(),
            expected_version: second.version,
            response: Some(Response::Approved(Approved {
                authorization_number: "DEMO-AUTH-1".into(),
                items: vec![],
                valid_from: at(0),
                valid_to: at(24 * 90),
            })),
        })
        .await?;
    }
    println!("demo patient  {pid}  (mrn {mrn})");
    println!(
        "prior auth    {}  (expedited, decision due {})",
        auth.id,
        auth.decision_due_at
            .map(|d| d.to_string())
            .unwrap_or_default()
    );
    println!("referral      {}  (urgent, cardiology)", referral.id);
    println!("lab order     {}  (BMP)", lab.id);
    println!("care plan     {}  version {}", plan.id, plan.version);
    println!(
        "transition    {}  (high risk, checklist open)",
        transition.id
    );
    Ok(())
}
