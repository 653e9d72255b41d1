//! Errors a client can branch on: every refusal carries a `google.rpc.ErrorInfo` reason (domain
//! `careloop`), so a duplicate test is told apart from an invalid transition without reading the
//! message, and a hidden refusal carries the reason of a missing record.

use crate::helpers::*;
use crate::orders::lab;
use crate::referrals::{place, step};
use careloop_proto::common::v1::Priority;
use careloop_proto::referrals::v1::transition_referral_request::{self as tr, Action};
use careloop_proto::referrals::v1::*;
use tonic_types::StatusExt;

fn reason(status: &tonic::Status) -> (String, String) {
    let info = status
        .get_details_error_info()
        .expect("every error carries ErrorInfo");
    (info.reason, info.domain)
}

#[tokio::test]
async fn refusals_carry_a_machine_readable_reason() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;

    let first = c
        .place_order(lab(&patient.id, "LOINC-2345-7", OrderSetting::Outpatient))
        .await
        .unwrap();
    drop(first);
    let duplicate = c
        .place_order(lab(&patient.id, "LOINC-2345-7", OrderSetting::Outpatient))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        reason(&duplicate),
        ("DUPLICATE_TEST".into(), "careloop".into())
    );

    let r = c
        .place_referral(place(&patient.id, Priority::Routine))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let early = step(
        &mut c,
        &r,
        Action::Seen(tr::Seen {
            note: String::new(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(early.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&early).0, "INVALID_TRANSITION");

    let accepted = step(
        &mut c,
        &r,
        Action::Accept(tr::Accept {
            note: String::new(),
        }),
    )
    .await
    .unwrap();
    let stale = step(
        &mut c,
        &r,
        Action::Decline(tr::Decline { reason: "x".into() }),
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&stale).0, "STALE_VERSION");
    let info = stale.get_details_error_info().unwrap();
    assert_eq!(
        info.metadata.get("current_version"),
        Some(&accepted.version.to_string())
    );

    let bad = c
        .get_referral(GetReferralRequest {
            referral_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&bad).0, "INVALID_FIELD");

    // Refused for another organization's patient: the same code, message and reason as missing.
    let hidden = app
        .outsider()
        .get_referral(GetReferralRequest {
            referral_id: r.id.clone(),
        })
        .await
        .unwrap_err();
    let missing = app
        .outsider()
        .list_open_loops(ListOpenLoopsRequest {
            filter: Some(list_open_loops_request::Filter::PatientId(
                uuid::Uuid::now_v7().to_string(),
            )),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (hidden.code(), hidden.message(), reason(&hidden)),
        (missing.code(), missing.message(), reason(&missing))
    );
}
