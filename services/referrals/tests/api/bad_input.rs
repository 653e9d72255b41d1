//! Every RPC refuses malformed input with INVALID_ARGUMENT naming the field, and writes nothing.

use crate::helpers::*;
use crate::orders::lab;
use crate::referrals::place;
use careloop_proto::common::v1::{CareRole, Priority};
use careloop_proto::referrals::v1::list_open_loops_request::Filter;
use careloop_proto::referrals::v1::transition_order_request::{self as to, Action as OAct};
use careloop_proto::referrals::v1::transition_referral_request::{self as tr, Action as RAct};
use careloop_proto::referrals::v1::*;

use careloop_testkit::refused;

#[tokio::test]
async fn every_rpc_names_the_bad_field_and_writes_nothing() {
    // Every case is checked; the report lists all that failed, not only the first.
    let _cases = careloop_testkit::cases::CaseReport;
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    let pid = patient.id.clone();
    let referral = c
        .place_referral(place(&pid, Priority::Routine))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let order = c
        .place_order(lab(&pid, "LOINC-1", OrderSetting::Outpatient))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let result = c
        .record_result(RecordResultRequest {
            idempotency_key: key(),
            order_id: order.id.clone(),
            flag: ResultFlag::Abnormal as i32,
            code: "K".into(),
            summary: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    let before = app.footprint().await;
    let long = "x".repeat(5000);
    let good = place(&pid, Priority::Routine);

    refused!(
        c.place_referral(PlaceReferralRequest {
            idempotency_key: String::new(),
            ..good.clone()
        }),
        "idempotency_key"
    );
    refused!(
        c.place_referral(PlaceReferralRequest {
            patient_id: "p".into(),
            ..good.clone()
        }),
        "patient_id"
    );
    refused!(
        c.place_referral(PlaceReferralRequest {
            from_org_id: "not-an-org".into(),
            ..good.clone()
        }),
        "from_org_id"
    );
    refused!(
        c.place_referral(PlaceReferralRequest {
            from_clinician: " ".into(),
            ..good.clone()
        }),
        "from_clinician"
    );
    refused!(
        c.place_referral(PlaceReferralRequest {
            to_specialty: String::new(),
            ..good.clone()
        }),
        "to_org_id"
    );
    refused!(
        c.place_referral(PlaceReferralRequest {
            to_org_id: uuid::Uuid::now_v7().to_string(),
            ..good.clone()
        }),
        "to_org_id"
    );
    refused!(
        c.place_referral(PlaceReferralRequest {
            service_type: String::new(),
            ..good.clone()
        }),
        "service_type"
    );
    refused!(
        c.place_referral(PlaceReferralRequest {
            reason: long.clone(),
            ..good.clone()
        }),
        "reason"
    );
    refused!(
        c.place_referral(PlaceReferralRequest {
            urgency: 0,
            ..good.clone()
        }),
        "urgency"
    );
    refused!(
        c.place_referral(PlaceReferralRequest {
            urgency: 77,
            ..good.clone()
        }),
        "urgency"
    );
    refused!(
        c.place_referral(PlaceReferralRequest {
            owner_role: 0,
            ..good.clone()
        }),
        "owner_role"
    );
    refused!(
        c.get_referral(GetReferralRequest {
            referral_id: "r".into()
        }),
        "referral_id"
    );

    let mv = |action: Option<RAct>| TransitionReferralRequest {
        idempotency_key: key(),
        referral_id: referral.id.clone(),
        expected_version: 1,
        action,
    };
    refused!(c.transition_referral(mv(None)), "action");
    refused!(
        c.transition_referral(TransitionReferralRequest {
            expected_version: 0,
            ..mv(Some(RAct::Accept(tr::Accept::default())))
        }),
        "expected_version"
    );
    refused!(
        c.transition_referral(mv(Some(RAct::Decline(tr::Decline {
            reason: String::new()
        })))),
        "decline.reason"
    );
    refused!(
        c.transition_referral(mv(Some(RAct::Schedule(tr::Schedule {
            appointment_at: None,
            location: "x".into()
        })))),
        "schedule.appointment_at"
    );
    refused!(
        c.transition_referral(mv(Some(RAct::Schedule(tr::Schedule {
            appointment_at: in_hours(1),
            location: String::new()
        })))),
        "schedule.location"
    );
    refused!(
        c.transition_referral(mv(Some(RAct::Reschedule(tr::Reschedule {
            appointment_at: in_hours(1),
            location: "x".into(),
            reason: String::new()
        })))),
        "reschedule.reason"
    );
    refused!(
        c.transition_referral(mv(Some(RAct::Cancel(tr::Cancel {
            reason: String::new()
        })))),
        "cancel.reason"
    );
    refused!(
        c.transition_referral(mv(Some(RAct::NoteReceived(tr::NoteReceived {
            note_reference: String::new()
        })))),
        "note_received.note_reference"
    );

    let good_order = lab(&pid, "LOINC-77", OrderSetting::Outpatient);
    refused!(
        c.place_order(PlaceOrderRequest {
            kind: 0,
            ..good_order.clone()
        }),
        "kind"
    );
    refused!(
        c.place_order(PlaceOrderRequest {
            kind: 99,
            ..good_order.clone()
        }),
        "kind"
    );
    refused!(
        c.place_order(PlaceOrderRequest {
            test_code: String::new(),
            ..good_order.clone()
        }),
        "test_code"
    );
    refused!(
        c.place_order(PlaceOrderRequest {
            setting: 0,
            ..good_order.clone()
        }),
        "setting"
    );
    refused!(
        c.place_order(PlaceOrderRequest {
            owner_role: 0,
            ..good_order.clone()
        }),
        "owner_role"
    );
    refused!(
        c.place_order(PlaceOrderRequest {
            due_at: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -1
            }),
            ..good_order.clone()
        }),
        "due_at"
    );
    refused!(
        c.place_order(PlaceOrderRequest {
            description: long.clone(),
            ..good_order.clone()
        }),
        "description"
    );
    refused!(
        c.get_order(GetOrderRequest {
            order_id: String::new()
        }),
        "order_id"
    );
    let omv = |action: Option<OAct>| TransitionOrderRequest {
        idempotency_key: key(),
        order_id: order.id.clone(),
        expected_version: 1,
        action,
    };
    refused!(c.transition_order(omv(None)), "action");
    refused!(
        c.transition_order(omv(Some(OAct::Cancel(to::Cancel { reason: " ".into() })))),
        "cancel.reason"
    );
    refused!(
        c.transition_order(omv(Some(OAct::Schedule(to::Schedule {
            scheduled_at: None,
            window_start: in_hours(5),
            window_end: in_hours(4),
            home_health: None
        })))),
        "schedule.window_end"
    );
    refused!(
        c.transition_order(omv(Some(OAct::Schedule(to::Schedule {
            scheduled_at: None,
            window_start: None,
            window_end: in_hours(4),
            home_health: None
        })))),
        "schedule.window_start"
    );

    let good_result = RecordResultRequest {
        idempotency_key: key(),
        order_id: order.id.clone(),
        flag: ResultFlag::Normal as i32,
        code: "K".into(),
        summary: String::new(),
    };
    refused!(
        c.record_result(RecordResultRequest {
            order_id: "o".into(),
            ..good_result.clone()
        }),
        "order_id"
    );
    refused!(
        c.record_result(RecordResultRequest {
            flag: 0,
            ..good_result.clone()
        }),
        "flag"
    );
    refused!(
        c.record_result(RecordResultRequest {
            code: String::new(),
            ..good_result.clone()
        }),
        "code"
    );
    refused!(
        c.record_result(RecordResultRequest {
            summary: long.clone(),
            ..good_result.clone()
        }),
        "summary"
    );
    refused!(
        c.acknowledge_result(AcknowledgeResultRequest {
            idempotency_key: key(),
            result_id: "x".into(),
            expected_version: 1,
            action_taken: "a".into()
        }),
        "result_id"
    );
    refused!(
        c.acknowledge_result(AcknowledgeResultRequest {
            idempotency_key: key(),
            result_id: result.id.clone(),
            expected_version: result.version,
            action_taken: String::new()
        }),
        "action_taken"
    );

    refused!(
        c.list_open_loops(ListOpenLoopsRequest {
            filter: None,
            page_size: 10,
            page_token: String::new()
        }),
        "filter"
    );
    refused!(
        c.list_open_loops(ListOpenLoopsRequest {
            filter: Some(Filter::Status("lost".into())),
            page_size: 10,
            page_token: String::new()
        }),
        "status"
    );
    refused!(
        c.list_open_loops(ListOpenLoopsRequest {
            filter: Some(Filter::OwnerRole(500)),
            page_size: 10,
            page_token: String::new()
        }),
        "owner_role"
    );
    refused!(
        c.list_open_loops(ListOpenLoopsRequest {
            filter: Some(Filter::PatientId(pid.clone())),
            page_size: 10,
            page_token: "zz".into()
        }),
        "page_token"
    );

    let good_rule = CreatePathwayRuleRequest {
        idempotency_key: key(),
        name: "r".into(),
        event_type: "plans.transition.started".into(),
        conditions: Default::default(),
        action: PathwayAction::CreateReferral as i32,
        order_kind: 0,
        service_type: "home health".into(),
        owner_role: CareRole::CareManager as i32,
        due_in_minutes: 60,
    };
    refused!(
        c.create_pathway_rule(CreatePathwayRuleRequest {
            event_type: "plans.patient.exploded".into(),
            ..good_rule.clone()
        }),
        "event_type"
    );
    refused!(
        c.create_pathway_rule(CreatePathwayRuleRequest {
            action: 0,
            ..good_rule.clone()
        }),
        "action"
    );
    refused!(
        c.create_pathway_rule(CreatePathwayRuleRequest {
            action: PathwayAction::CreateOrder as i32,
            ..good_rule.clone()
        }),
        "order_kind"
    );
    refused!(
        c.create_pathway_rule(CreatePathwayRuleRequest {
            action: PathwayAction::CreateOrder as i32,
            order_kind: OrderKind::Lab as i32,
            ..good_rule.clone()
        }),
        "order_kind"
    );
    refused!(
        c.create_pathway_rule(CreatePathwayRuleRequest {
            service_type: String::new(),
            ..good_rule.clone()
        }),
        "service_type"
    );
    refused!(
        c.create_pathway_rule(CreatePathwayRuleRequest {
            due_in_minutes: 0,
            ..good_rule.clone()
        }),
        "due_in_minutes"
    );
    refused!(
        c.create_pathway_rule(CreatePathwayRuleRequest {
            owner_role: 0,
            ..good_rule.clone()
        }),
        "owner_role"
    );
    refused!(
        c.set_pathway_rule_enabled(SetPathwayRuleEnabledRequest {
            idempotency_key: key(),
            rule_id: "x".into(),
            expected_version: 1,
            enabled: false
        }),
        "rule_id"
    );
    // ListPathwayRules takes no input.
    assert!(
        c.list_pathway_rules(ListPathwayRulesRequest {})
            .await
            .is_ok()
    );

    assert_eq!(
        app.footprint().await,
        before,
        "refused requests must write nothing"
    );
}
