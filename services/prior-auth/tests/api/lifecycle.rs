//! A prior authorization from draft to decision and appeal, with CMS-0057-F deadlines.

use crate::helpers::*;
use careloop_proto::common::v1::{CareRole, LoopKind, LoopRef};
use careloop_proto::priorauth::v1::record_payer_response_request::{
    Approved, Denied, Pended, Response,
};
use careloop_proto::priorauth::v1::*;
use careloop_runtime::auth::PrincipalKind;
use uuid::Uuid;

pub fn complete(urgency: Urgency) -> RequestContent {
    RequestContent {
        linked_loop: Some(LoopRef {
            kind: LoopKind::Order as i32,
            id: uuid::Uuid::now_v7().to_string(),
        }),
        payer_id: "payer-acme".into(),
        plan_member_id: "M-123".into(),
        service_lines: vec![ServiceLine {
            code: "E0260".into(),
            quantity: 1,
        }],
        diagnosis_codes: vec!["I50.22".into()],
        urgency: urgency as i32,
        urgency_reason: if urgency == Urgency::Expedited {
            "discharge blocked".into()
        } else {
            String::new()
        },
        packet: Some(ClinicalPacket {
            notes_summary: "CHF, needs hospital bed at home".into(),
            medications: vec!["furosemide".into()],
            prior_treatments: vec!["standard bed, failed".into()],
            attachment_refs: vec!["DocumentReference/9".into()],
        }),
        owner_role: CareRole::PriorAuthCoordinator as i32,
        next_action: "submit to payer".into(),
        next_patient_update_at: in_hours(24),
    }
}

pub async fn create(c: &mut Client, patient_id: &str, content: RequestContent) -> PriorAuthRequest {
    c.create_request(CreateRequestRequest {
        idempotency_key: key(),
        patient_id: patient_id.into(),
        content: Some(content),
    })
    .await
    .unwrap()
    .into_inner()
    .request
    .unwrap()
}

pub async fn submit(
    c: &mut Client,
    r: &PriorAuthRequest,
) -> Result<PriorAuthRequest, tonic::Status> {
    c.submit_request(SubmitRequestRequest {
        idempotency_key: key(),
        request_id: r.id.clone(),
        expected_version: r.version,
    })
    .await
    .map(|x| x.into_inner().request.unwrap())
}

pub async fn respond(
    c: &mut Client,
    r: &PriorAuthRequest,
    response: Response,
) -> Result<PriorAuthRequest, tonic::Status> {
    c.record_payer_response(RecordPayerResponseRequest {
        idempotency_key: key(),
        request_id: r.id.clone(),
        expected_version: r.version,
        response: Some(response),
    })
    .await
    .map(|x| x.into_inner().request.unwrap())
}

#[tokio::test]
async fn an_incomplete_packet_is_refused_listing_every_missing_element() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    let draft = create(
        &mut c,
        &patient.id,
        RequestContent {
            owner_role: CareRole::PriorAuthCoordinator as i32,
            urgency: Urgency::Expedited as i32,
            ..Default::default()
        },
    )
    .await;
    let status = submit(&mut c, &draft).await.unwrap_err();
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "linked_loop",
            "payer_id",
            "plan_member_id",
            "service_lines",
            "diagnosis_codes",
            "urgency_reason",
            "packet.notes_summary",
            "packet.medications",
            "packet.prior_treatments",
            "packet.attachment_refs"
        ]
    );
    let unchanged = c
        .get_request(GetRequestRequest {
            request_id: draft.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(
        (unchanged.status, unchanged.version),
        (AuthStatus::Draft as i32, 1)
    );
}

#[tokio::test]
async fn a_request_is_pended_resubmitted_denied_with_a_reason_appealed_and_approved() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    let r = create(&mut c, &patient.id, complete(Urgency::Expedited)).await;
    let refused = respond(
        &mut c,
        &r,
        Response::Approved(Approved {
            authorization_number: "A1".into(),
            items: vec![],
            valid_from: in_hours(0),
            valid_to: in_hours(100),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused.message(),
        "prior authorization cannot move from draft to approved"
    );
    let r = submit(&mut c, &r).await.unwrap();
    assert_eq!(
        ts(&r.decision_due_at) - ts(&r.submitted_at),
        chrono::Duration::hours(72)
    );
    assert_eq!(r.due_at, r.decision_due_at);
    let r = respond(
        &mut c,
        &r,
        Response::Pended(Pended {
            information_requested: "last echo report".into(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(r.status, AuthStatus::Pended as i32);
    assert_eq!(r.information_requested, "last echo report");
    let mut more = complete(Urgency::Expedited);
    more.packet
        .as_mut()
        .unwrap()
        .attachment_refs
        .push("DocumentReference/10".into());
    let r = c
        .update_request(UpdateRequestRequest {
            idempotency_key: key(),
            request_id: r.id.clone(),
            expected_version: r.version,
            content: Some(more),
        })
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(
        r.status,
        AuthStatus::Pended as i32,
        "editing moves no status"
    );
    let (status_events,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM outbox
          WHERE event_type = 'priorauth.request.status_changed'
            AND aggregate_id = $1::uuid AND aggregate_version = $2",
    )
    .bind(&r.id)
    .bind(r.version)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(status_events, 0, "no status-changed event for an edit");
    let r = submit(&mut c, &r).await.unwrap();
    assert!(r.first_submitted_at.is_some());
    assert!(ts(&r.submitted_at) >= ts(&r.first_submitted_at));
    let no_reason = respond(
        &mut c,
        &r,
        Response::Denied(Denied {
            reason_code: String::new(),
            reason_text: "not needed".into(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(bad_field(&no_reason), "denied.reason_code");
    let no_text = respond(
        &mut c,
        &r,
        Response::Denied(Denied {
            reason_code: "NMN".into(),
            reason_text: " ".into(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(bad_field(&no_text), "denied.reason_text");
    let r = respond(
        &mut c,
        &r,
        Response::Denied(Denied {
            reason_code: "NMN".into(),
            reason_text: "medical necessity not shown".into(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(r.status, AuthStatus::Denied as i32);
    assert_eq!(r.decision.as_ref().unwrap().denial_reason_code, "NMN");
    let r = c
        .appeal(AppealRequest {
            idempotency_key: key(),
            request_id: r.id.clone(),
            expected_version: r.version,
            reason: "echo shows EF 25%".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(r.status, AuthStatus::Appealed as i32);
    let r = c
        .record_appeal_decision(RecordAppealDecisionRequest {
            idempotency_key: key(),
            request_id: r.id.clone(),
            expected_version: r.version,
            approved: true,
            authorization_number: "AUTH-77".into(),
            valid_from: in_hours(0),
            valid_to: in_hours(24 * 90),
            reason_code: String::new(),
            reason_text: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(r.status, AuthStatus::AppealApproved as i32);
    assert_eq!(r.appeal_decision.unwrap().authorization_number, "AUTH-77");
    assert!(r.due_at.is_none(), "a closed loop has no due time");
    let decided = app
        .count("SELECT count(*) FROM outbox WHERE event_type = 'priorauth.request.decided'")
        .await;
    let appeals = app
        .count("SELECT count(*) FROM outbox WHERE event_type = 'priorauth.request.appeal_decided'")
        .await;
    assert_eq!((decided, appeals), (1, 1));
}

#[tokio::test]
async fn a_standard_request_is_due_in_seven_calendar_days_and_an_extension_is_recorded() {
    // Counted in UTC here (no daylight saving), so seven calendar days are exactly 168 hours; the
    // daylight-saving and month-end arithmetic is covered in domain::deadline.
    let app = spawn_app_in_zone("UTC").await;
    let mut c = app.client();
    let patient = app.patient().await;
    let r = create(&mut c, &patient.id, complete(Urgency::Standard)).await;
    let r = submit(&mut c, &r).await.unwrap();
    assert_eq!(
        ts(&r.decision_due_at) - ts(&r.submitted_at),
        chrono::Duration::hours(168),
        "seven calendar days in UTC are 168 hours"
    );
    let earlier = c
        .extend_decision(ExtendDecisionRequest {
            idempotency_key: key(),
            request_id: r.id.clone(),
            expected_version: r.version,
            reason: "more time".into(),
            new_due_at: in_hours(1),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_field(&earlier), "new_due_at");
    let r = c
        .extend_decision(ExtendDecisionRequest {
            idempotency_key: key(),
            request_id: r.id.clone(),
            expected_version: r.version,
            reason: "payer requested 14-day extension".into(),
            new_due_at: in_hours(24 * 21),
        })
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(r.extensions.len(), 1);
    assert!(r.extensions[0].previous_due_at.is_some());
    assert_eq!(r.decision_due_at, r.extensions[0].new_due_at);
    let r = respond(
        &mut c,
        &r,
        Response::PartiallyApproved(Approved {
            authorization_number: "P-1".into(),
            items: vec![ServiceLine {
                code: "E0260".into(),
                quantity: 1,
            }],
            valid_from: in_hours(0),
            valid_to: in_hours(24 * 30),
        }),
    )
    .await
    .unwrap();
    assert_eq!(r.status, AuthStatus::PartiallyApproved as i32);
    let (payload,): (Vec<u8>,) =
        sqlx::query_as("SELECT payload FROM outbox WHERE event_type = 'priorauth.request.decided'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    use prost::Message;
    let event = careloop_proto::events::v1::Event::decode(payload.as_slice()).unwrap();
    match event.payload {
        Some(careloop_proto::events::v1::event::Payload::PriorAuthDecided(d)) => {
            assert!(
                d.extended,
                "the report needs to know the timeframe was extended"
            );
            assert_eq!(d.decision, "partially_approved");
            assert_eq!(d.urgency, Urgency::Standard as i32);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn an_organization_without_access_is_denied_and_nothing_is_written() {
    let app = spawn_app().await;
    let patient = app.patient().await;
    let before = app.footprint().await;
    let denied = app
        .outsider()
        .create_request(CreateRequestRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            content: Some(complete(Urgency::Standard)),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::NotFound);
    assert_eq!(app.footprint().await, before);
}

#[tokio::test]
async fn only_the_payer_or_the_managing_coordinator_records_a_decision() {
    let app = spawn_app().await;
    let mut coordinator = app.client();
    let patient = app.patient().await;
    let r = create(&mut coordinator, &patient.id, complete(Urgency::Expedited)).await;
    let r = submit(&mut coordinator, &r).await.unwrap();
    let pend = || {
        Response::Pended(Pended {
            information_requested: "last echo report".into(),
        })
    };
    let before = app.footprint().await;
    let refusals = [
        ("a nurse of the managing organization", app.nurse()),
        (
            "another payer",
            app.client_as(PrincipalKind::Payer, Uuid::now_v7(), "other-payer"),
        ),
        (
            "a coordinator of another organization",
            app.client_with_roles(
                PrincipalKind::Staff,
                Uuid::now_v7(),
                "coordinator-2",
                &["prior_auth_coordinator"],
            ),
        ),
        (
            "a partner of the payer's organization",
            app.client_as(PrincipalKind::Partner, app.acme_org, "acme-partner"),
        ),
    ];
    for (who, mut client) in refusals {
        let refused = respond(&mut client, &r, pend()).await.unwrap_err();
        assert!(
            matches!(
                refused.code(),
                tonic::Code::PermissionDenied | tonic::Code::NotFound
            ),
            "{who}: {refused:?}"
        );
    }
    assert_eq!(app.footprint().await, before, "refusals write nothing");

    // The payer named by the request records its own answer, without a consent to the patient.
    let mut acme = app.client_as(PrincipalKind::Payer, app.acme_org, "acme-reviewer");
    let r = respond(&mut acme, &r, pend())
        .await
        .expect("the request's payer pends it");
    assert_eq!(r.status, AuthStatus::Pended as i32);
    // The pend's events belong to the requesting organization (its coordinator is told), not to
    // the payer who moved the request.
    let orgs: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE aggregate_id = $1::uuid AND aggregate_version = $2",
    )
    .bind(&r.id)
    .bind(r.version)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(orgs.len(), 1);
    let event =
        <careloop_proto::events::v1::Event as prost::Message>::decode(orgs[0].as_slice()).unwrap();
    assert_eq!(event.r#type, "priorauth.request.status_changed");
    assert_eq!(event.org_id, app.org_id.to_string());
}
