//! Orders, results routed by responsibility, the duplicate-test check, and the worklist.

use crate::helpers::*;
use careloop_proto::common::v1::{CareRole, LoopKind};
use careloop_proto::referrals::v1::list_open_loops_request::Filter;
use careloop_proto::referrals::v1::transition_order_request::{self as to, Action};
use careloop_proto::referrals::v1::*;

pub fn lab(patient_id: &str, code: &str, setting: OrderSetting) -> PlaceOrderRequest {
    PlaceOrderRequest {
        idempotency_key: key(),
        patient_id: patient_id.into(),
        kind: OrderKind::Lab as i32,
        test_code: code.into(),
        description: "basic metabolic panel".into(),
        setting: setting as i32,
        owner_role: CareRole::Rn as i32,
        ..Default::default()
    }
}

pub async fn move_order(c: &mut Client, o: &Order, action: Action) -> Result<Order, tonic::Status> {
    c.transition_order(TransitionOrderRequest {
        idempotency_key: key(),
        order_id: o.id.clone(),
        expected_version: o.version,
        action: Some(action),
    })
    .await
    .map(|x| x.into_inner().order.unwrap())
}

#[tokio::test]
async fn a_repeat_test_within_the_window_is_refused_naming_the_prior_order_unless_overridden() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    let first = c
        .place_order(lab(&patient.id, "LOINC-24323-8", OrderSetting::Outpatient))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let refused = c
        .place_order(lab(&patient.id, "LOINC-24323-8", OrderSetting::Outpatient))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains(&first.id),
        "{}",
        refused.message()
    );
    assert!(refused.message().contains("no result yet"));
    let other_test = c
        .place_order(lab(&patient.id, "LOINC-2345-7", OrderSetting::Outpatient))
        .await;
    assert!(other_test.is_ok(), "another test is no duplicate");
    let mut again = lab(&patient.id, "LOINC-24323-8", OrderSetting::Outpatient);
    again.duplicate_override_reason =
        "checked prior results: potassium trending up after dose change".into();
    let second = c
        .place_order(again)
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert!(
        second
            .duplicate_override_reason
            .starts_with("checked prior results")
    );
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE test_code = 'LOINC-24323-8'")
            .await,
        2
    );
}

#[tokio::test]
async fn results_are_routed_by_responsibility_and_an_abnormal_one_stays_open_until_acknowledged() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    let outpatient = c
        .place_order(lab(&patient.id, "LOINC-1", OrderSetting::Outpatient))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let inpatient = c
        .place_order(lab(&patient.id, "LOINC-2", OrderSetting::Inpatient))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let record = |o: &Order, flag: ResultFlag| RecordResultRequest {
        idempotency_key: key(),
        order_id: o.id.clone(),
        flag: flag as i32,
        code: "K".into(),
        summary: "potassium 6.1".into(),
    };
    let abnormal = c
        .record_result(record(&outpatient, ResultFlag::Abnormal))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(
        (abnormal.routed_to_role, abnormal.backup_role),
        (CareRole::Pcp as i32, CareRole::Rn as i32)
    );
    assert_eq!(
        (ts(&abnormal.due_at) - ts(&abnormal.received_at)).num_hours(),
        72
    );
    let critical = c
        .record_result(record(&inpatient, ResultFlag::Critical))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(
        (critical.routed_to_role, critical.backup_role),
        (CareRole::Hospitalist as i32, CareRole::Rn as i32)
    );
    assert_eq!(
        (ts(&critical.due_at) - ts(&critical.received_at)).num_minutes(),
        60
    );

    let loops = |c: &mut Client| {
        let mut c = c.clone();
        let patient_id = patient.id.clone();
        async move {
            c.list_open_loops(ListOpenLoopsRequest {
                filter: Some(Filter::PatientId(patient_id)),
                page_size: 50,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .loops
        }
    };
    let open = loops(&mut c).await;
    let results: Vec<_> = open
        .iter()
        .filter(|l| l.kind == LoopKind::Result as i32)
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[0].id, critical.id,
        "the critical result is due first"
    );
    // The backup role sees it too.
    let by_backup = app
        .service_client()
        .list_open_loops(ListOpenLoopsRequest {
            filter: Some(Filter::OwnerRole(CareRole::Rn as i32)),
            page_size: 50,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .loops;
    assert!(by_backup.iter().any(|l| l.id == abnormal.id));

    // The order cannot close while its abnormal result is unacknowledged.
    let o = move_order(
        &mut c,
        &outpatient,
        Action::Schedule(to::Schedule::default()),
    )
    .await
    .unwrap();
    let o = move_order(&mut c, &o, Action::Complete(to::Complete::default()))
        .await
        .unwrap();
    let refused = move_order(&mut c, &o, Action::Close(to::Close::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let empty = c
        .acknowledge_result(AcknowledgeResultRequest {
            idempotency_key: key(),
            result_id: abnormal.id.clone(),
            expected_version: abnormal.version,
            action_taken: " ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_field(&empty), "action_taken");
    let acked = c
        .acknowledge_result(AcknowledgeResultRequest {
            idempotency_key: key(),
            result_id: abnormal.id.clone(),
            expected_version: abnormal.version,
            action_taken: "held lisinopril, repeat BMP in 3 days".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(acked.status, ResultStatus::Acknowledged as i32);
    assert!(!loops(&mut c).await.iter().any(|l| l.id == abnormal.id));
    let closed = move_order(&mut c, &o, Action::Close(to::Close::default()))
        .await
        .unwrap();
    assert_eq!(closed.status, OrderStatus::Closed as i32);
}

#[tokio::test]
async fn a_transport_is_booked_with_a_window_and_completes_only_after_the_patient_confirms() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    let o = c
        .place_order(PlaceOrderRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            kind: OrderKind::Transport as i32,
            owner_role: CareRole::DischargePlanner as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let no_window = move_order(&mut c, &o, Action::Schedule(to::Schedule::default()))
        .await
        .unwrap_err();
    assert_eq!(bad_field(&no_window), "schedule.window_start");
    let booked = move_order(
        &mut c,
        &o,
        Action::Schedule(to::Schedule {
            scheduled_at: None,
            window_start: in_hours(20),
            window_end: in_hours(22),
            home_health: Some(true),
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        (ts(&booked.window_start) - ts(&booked.due_at)).num_hours(),
        2,
        "confirm 2 h before pickup"
    );
    let early = move_order(&mut c, &booked, Action::Complete(to::Complete::default()))
        .await
        .unwrap_err();
    assert_eq!(
        early.message(),
        "order cannot move from scheduled to completed"
    );
    let confirmed = move_order(
        &mut c,
        &booked,
        Action::Confirm(to::Confirm {
            note: "patient repeated pickup time".into(),
        }),
    )
    .await
    .unwrap();
    let done = move_order(
        &mut c,
        &confirmed,
        Action::Complete(to::Complete::default()),
    )
    .await
    .unwrap();
    assert_eq!(done.status, OrderStatus::Completed as i32);
    let no_results = c
        .record_result(RecordResultRequest {
            idempotency_key: key(),
            order_id: o.id.clone(),
            flag: ResultFlag::Normal as i32,
            code: "x".into(),
            summary: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(no_results.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn a_cancelled_or_closed_order_takes_no_result() {
    use tonic_types::StatusExt;
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    let record = |o: &Order| RecordResultRequest {
        idempotency_key: key(),
        order_id: o.id.clone(),
        flag: ResultFlag::Normal as i32,
        code: "NA".into(),
        summary: "sodium 140".into(),
    };
    let place = |code: &str| lab(&patient.id, code, OrderSetting::Outpatient);

    let cancelled = c
        .place_order(place("LOINC-1"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let cancelled = move_order(
        &mut c,
        &cancelled,
        Action::Cancel(to::Cancel {
            reason: "drawn elsewhere".into(),
        }),
    )
    .await
    .unwrap();

    let closed = c
        .place_order(place("LOINC-2"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let closed = move_order(&mut c, &closed, Action::Schedule(to::Schedule::default()))
        .await
        .unwrap();
    let closed = move_order(&mut c, &closed, Action::Complete(to::Complete::default()))
        .await
        .unwrap();
    c.record_result(record(&closed))
        .await
        .expect("a completed order takes its result");
    let closed = c
        .get_order(GetOrderRequest {
            order_id: closed.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let closed = move_order(&mut c, &closed, Action::Close(to::Close::default()))
        .await
        .unwrap();

    let before = app.footprint().await;
    for order in [&cancelled, &closed] {
        let refused = c.record_result(record(order)).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::FailedPrecondition,
            "{}",
            order.status
        );
        assert_eq!(
            refused.get_details_error_info().unwrap().reason,
            "RECORD_CLOSED"
        );
    }
    assert_eq!(app.footprint().await, before, "nothing is written");
}
