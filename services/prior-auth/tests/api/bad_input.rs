//! Every RPC refuses malformed input with INVALID_ARGUMENT naming the field, and writes nothing.

use crate::helpers::*;
use crate::lifecycle::{complete, create, submit};
use careloop_proto::common::v1::{LoopKind, LoopRef};
use careloop_proto::priorauth::v1::list_requests_request::Filter;
use careloop_proto::priorauth::v1::record_payer_response_request::{
    Approved, Denied, Pended, Response,
};
use careloop_proto::priorauth::v1::*;

use careloop_testkit::refused;

#[tokio::test]
async fn every_rpc_names_the_bad_field_and_writes_nothing() {
    // Every case is checked; the report lists all that failed, not only the first.
    let _cases = careloop_testkit::cases::CaseReport;
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    let pid = patient.id.clone();
    let draft = create(&mut c, &pid, complete(Urgency::Standard)).await;
    let second = create(&mut c, &pid, complete(Urgency::Standard)).await;
    let sub = submit(&mut c, &second).await.unwrap();
    let before = app.footprint().await;
    let id = draft.id.clone();

    let with = |f: fn(&mut RequestContent)| {
        let mut content = complete(Urgency::Standard);
        f(&mut content);
        Some(content)
    };
    let create_req = |content| CreateRequestRequest {
        idempotency_key: key(),
        patient_id: pid.clone(),
        content,
    };
    refused!(
        c.create_request(CreateRequestRequest {
            idempotency_key: String::new(),
            ..create_req(with(|_| {}))
        }),
        "idempotency_key"
    );
    refused!(
        c.create_request(CreateRequestRequest {
            patient_id: "p".into(),
            ..create_req(with(|_| {}))
        }),
        "patient_id"
    );
    refused!(c.create_request(create_req(None)), "content");
    refused!(
        c.create_request(create_req(with(|x| x.owner_role = 0))),
        "content.owner_role"
    );
    refused!(
        c.create_request(create_req(with(|x| x.urgency = 9))),
        "content.urgency"
    );
    refused!(
        c.create_request(create_req(with(|x| x.service_lines[0].quantity = 0))),
        "content.service_lines[0].quantity"
    );
    refused!(
        c.create_request(create_req(
            with(|x| x.service_lines[0].code = String::new())
        )),
        "content.service_lines[0].code"
    );
    refused!(
        c.create_request(create_req(with(|x| x.diagnosis_codes = vec![" ".into()]))),
        "content.diagnosis_codes[0]"
    );
    refused!(
        c.create_request(create_req(with(|x| x.linked_loop = Some(LoopRef {
            kind: LoopKind::Task as i32,
            id: uuid::Uuid::now_v7().to_string()
        })))),
        "content.linked_loop.kind"
    );
    refused!(
        c.create_request(create_req(with(|x| x.linked_loop = Some(LoopRef {
            kind: LoopKind::Order as i32,
            id: "o".into()
        })))),
        "content.linked_loop.id"
    );
    refused!(
        c.create_request(create_req(with(|x| x
            .packet
            .as_mut()
            .unwrap()
            .notes_summary = "x".repeat(5000)))),
        "content.packet.notes_summary"
    );

    refused!(
        c.update_request(UpdateRequestRequest {
            idempotency_key: key(),
            request_id: "r".into(),
            expected_version: 1,
            content: with(|_| {})
        }),
        "request_id"
    );
    refused!(
        c.update_request(UpdateRequestRequest {
            idempotency_key: key(),
            request_id: id.clone(),
            expected_version: 0,
            content: with(|_| {})
        }),
        "expected_version"
    );
    refused!(
        c.update_request(UpdateRequestRequest {
            idempotency_key: key(),
            request_id: id.clone(),
            expected_version: 1,
            content: None
        }),
        "content"
    );
    refused!(
        c.submit_request(SubmitRequestRequest {
            idempotency_key: key(),
            request_id: String::new(),
            expected_version: 1
        }),
        "request_id"
    );

    let pr = |response| RecordPayerResponseRequest {
        idempotency_key: key(),
        request_id: sub.id.clone(),
        expected_version: sub.version,
        response,
    };
    refused!(c.record_payer_response(pr(None)), "response");
    refused!(
        c.record_payer_response(pr(Some(Response::Pended(Pended {
            information_requested: String::new()
        })))),
        "pended.information_requested"
    );
    refused!(
        c.record_payer_response(pr(Some(Response::Approved(Approved {
            authorization_number: String::new(),
            items: vec![],
            valid_from: in_hours(0),
            valid_to: in_hours(1)
        })))),
        "approved.authorization_number"
    );
    refused!(
        c.record_payer_response(pr(Some(Response::Approved(Approved {
            authorization_number: "A".into(),
            items: vec![],
            valid_from: in_hours(5),
            valid_to: in_hours(1)
        })))),
        "approved.valid_to"
    );
    refused!(
        c.record_payer_response(pr(Some(Response::PartiallyApproved(Approved {
            authorization_number: "A".into(),
            items: vec![],
            valid_from: in_hours(0),
            valid_to: in_hours(1)
        })))),
        "partially_approved.items"
    );
    refused!(
        c.record_payer_response(pr(Some(Response::Denied(Denied {
            reason_code: String::new(),
            reason_text: "t".into()
        })))),
        "denied.reason_code"
    );

    refused!(
        c.extend_decision(ExtendDecisionRequest {
            idempotency_key: key(),
            request_id: sub.id.clone(),
            expected_version: sub.version,
            reason: String::new(),
            new_due_at: in_hours(500)
        }),
        "reason"
    );
    refused!(
        c.extend_decision(ExtendDecisionRequest {
            idempotency_key: key(),
            request_id: sub.id.clone(),
            expected_version: sub.version,
            reason: "r".into(),
            new_due_at: None
        }),
        "new_due_at"
    );
    refused!(
        c.appeal(AppealRequest {
            idempotency_key: key(),
            request_id: id.clone(),
            expected_version: 1,
            reason: " ".into()
        }),
        "reason"
    );
    refused!(
        c.record_appeal_decision(RecordAppealDecisionRequest {
            idempotency_key: key(),
            request_id: id.clone(),
            expected_version: 1,
            approved: true,
            authorization_number: String::new(),
            valid_from: in_hours(0),
            valid_to: in_hours(2),
            reason_code: String::new(),
            reason_text: String::new()
        }),
        "authorization_number"
    );
    refused!(
        c.record_appeal_decision(RecordAppealDecisionRequest {
            idempotency_key: key(),
            request_id: id.clone(),
            expected_version: 1,
            approved: false,
            authorization_number: String::new(),
            valid_from: None,
            valid_to: None,
            reason_code: String::new(),
            reason_text: "t".into()
        }),
        "reason_code"
    );
    refused!(
        c.cancel_request(CancelRequestRequest {
            idempotency_key: key(),
            request_id: id.clone(),
            expected_version: 1,
            reason: String::new()
        }),
        "reason"
    );
    refused!(
        c.get_request(GetRequestRequest {
            request_id: "nope".into()
        }),
        "request_id"
    );
    refused!(
        c.list_requests(ListRequestsRequest {
            filter: None,
            page_size: 10,
            page_token: String::new()
        }),
        "filter"
    );
    refused!(
        c.list_requests(ListRequestsRequest {
            filter: Some(Filter::Status(0)),
            page_size: 10,
            page_token: String::new()
        }),
        "status"
    );
    refused!(
        c.list_requests(ListRequestsRequest {
            filter: Some(Filter::OwnerRole(999)),
            page_size: 10,
            page_token: String::new()
        }),
        "owner_role"
    );
    refused!(
        c.list_requests(ListRequestsRequest {
            filter: Some(Filter::PatientId(pid.clone())),
            page_size: -3,
            page_token: String::new()
        }),
        "page_size"
    );

    assert_eq!(
        app.footprint().await,
        before,
        "refused requests must write nothing"
    );
}
