//! Escalation under a stepped clock: an unresolved critical result climbs its ladder rung by rung
//! and stops the moment the result is acknowledged through referrals; an overdue referral's item
//! stops when the referral moves on, and a new stage's overdue starts a new ladder.

use crate::helpers::*;
use careloop_notifications::escalation::sweep;
use careloop_proto::common::v1::{CareRole, Priority};
use careloop_proto::notifications::v1::*;
use careloop_proto::referrals::v1::transition_referral_request::{self as tr, Action};
use careloop_proto::referrals::v1::*;
use chrono::{Duration, Utc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_result_climbs_rung_by_rung_and_stops_when_the_result_is_acknowledged() {
    let app = spawn_with_events().await;
    let patient = app.patient().await;
    let result = app.result(&patient.id, ResultFlag::Critical).await;
    let item = app.inbox_of("pcp", 1).await.remove(0);
    let raised = ts(&item.created_at);

    // Within the first window nothing moves.
    assert_eq!(
        sweep(&app.db, raised + Duration::minutes(14), 10)
            .await
            .unwrap(),
        0
    );
    // Past it, the item goes to the backup role (RN), then to the hospitalist.
    assert_eq!(
        sweep(&app.db, raised + Duration::minutes(16), 10)
            .await
            .unwrap(),
        1
    );
    let rn = app.inbox_of("rn", 1).await.remove(0);
    assert_eq!(
        (rn.id.as_str(), rn.rung, rn.role),
        (item.id.as_str(), 1, CareRole::Rn as i32)
    );
    assert_eq!(
        ts(&rn.escalates_at) - (raised + Duration::minutes(16)),
        Duration::minutes(15),
        "the next window starts when it arrives"
    );
    assert_eq!(
        sweep(&app.db, raised + Duration::minutes(20), 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        sweep(&app.db, raised + Duration::minutes(32), 10)
            .await
            .unwrap(),
        1
    );
    let top = app.inbox_of("hospitalist", 1).await.remove(0);
    assert_eq!((top.rung, top.escalates_at), (2, None), "the last rung");
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'notifications.item.escalated'")
            .await,
        2
    );

    // The result is acknowledged with the action taken, through referrals: the item resolves.
    app.referrals()
        .acknowledge_result(AcknowledgeResultRequest {
            idempotency_key: key(),
            result_id: result.id.clone(),
            expected_version: result.version,
            action_taken: "potassium repeated, patient called".into(),
        })
        .await
        .unwrap();
    let resolved = app.item_until(&item.id, ItemStatus::Resolved).await;
    assert_eq!(resolved.resolved_by_stage, "acknowledged");
    assert_eq!(
        sweep(&app.db, raised + Duration::days(2), 10)
            .await
            .unwrap(),
        0,
        "a resolved item never climbs"
    );

    // The shift digests tell the story per role.
    let digest = |role: &'static str, r: CareRole| {
        let mut c = app.staff(role);
        let req = GetShiftDigestRequest {
            role: r as i32,
            org_id: String::new(),
            from: Some(careloop_runtime::time::to_timestamp(
                raised - Duration::hours(1),
            )),
            to: Some(careloop_runtime::time::to_timestamp(
                raised + Duration::days(1),
            )),
        };
        async move {
            c.get_shift_digest(req)
                .await
                .unwrap()
                .into_inner()
                .digest
                .unwrap()
        }
    };
    let pcp = digest("pcp", CareRole::Pcp).await;
    assert_eq!((pcp.opened, pcp.escalated_away, pcp.still_open), (1, 1, 0));
    let rn = digest("rn", CareRole::Rn).await;
    assert_eq!((rn.escalated_in, rn.escalated_away), (1, 1));
    let top = digest("hospitalist", CareRole::Hospitalist).await;
    assert_eq!(
        (
            top.escalated_in,
            top.resolved,
            top.acknowledged,
            top.still_open
        ),
        (1, 1, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_referral_item_stops_when_the_referral_moves_and_its_next_stage_starts_anew() {
    let app = spawn_with_events().await;
    let patient = app.patient().await;
    let mut r = app.referrals();
    let referral = r
        .place_referral(PlaceReferralRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            from_clinician: "dr-1".into(),
            to_specialty: "cardiology".into(),
            service_type: "cardiology".into(),
            reason: "follow-up".into(),
            urgency: Priority::Stat as i32,
            owner_role: CareRole::Scheduler as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    // Referrals' own sweeper finds it overdue two days on.
    let later = Utc::now() + Duration::days(2);
    assert_eq!(
        careloop_referrals::sweeper::sweep_overdue(&app.referrals_db, later, 10)
            .await
            .unwrap(),
        1
    );
    let placed = app.inbox_of("scheduler", 1).await.remove(0);
    assert_eq!(placed.stage, "placed");
    assert_eq!(placed.status, ItemStatus::Open as i32);

    // Accepted: the "placed" item stops without anyone acknowledging it.
    let current = r
        .get_referral(GetReferralRequest {
            referral_id: referral.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    r.transition_referral(TransitionReferralRequest {
        idempotency_key: key(),
        referral_id: referral.id.clone(),
        expected_version: current.version,
        action: Some(Action::Accept(tr::Accept {
            note: String::new(),
        })),
    })
    .await
    .unwrap();
    let stopped = app.item_until(&placed.id, ItemStatus::Resolved).await;
    assert_eq!(stopped.resolved_by_stage, "accepted");

    // The accepted stage goes overdue too: a new item, a new ladder.
    let much_later = Utc::now() + Duration::days(5);
    assert_eq!(
        careloop_referrals::sweeper::sweep_overdue(&app.referrals_db, much_later, 10)
            .await
            .unwrap(),
        1
    );
    let items = app.inbox_of("scheduler", 2).await;
    let accepted = items
        .iter()
        .find(|i| i.stage == "accepted")
        .expect("new item");
    assert_eq!(accepted.status, ItemStatus::Open as i32);
    assert_eq!(accepted.rung, 0);
}
