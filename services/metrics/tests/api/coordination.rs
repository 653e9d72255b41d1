//! The coordination measures through the service, on hand-computed sequences: referral closure and
//! stage times, abnormal-result follow-through and orphans, response time by role, handoff
//! acknowledgement; events delivered shuffled and twice.

use crate::priorauth::{client, event, ny, record, spawn};
use careloop_proto::common::v1::CareRole;
use careloop_proto::events::v1::{
    Event, HandoffAcknowledged, HandoffSent, NotificationAcknowledged, NotificationRaised,
    ReferralPlaced, ReferralStatusChanged, ResultAcknowledged, ResultRouted, event::Payload,
};
use careloop_proto::metrics::v1::*;
use careloop_proto::referrals::v1::{ReferralStatus, ResultFlag};
use careloop_runtime::auth::PrincipalKind;
use careloop_runtime::time::to_timestamp;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

fn at_event(mut e: Event, at: DateTime<Utc>) -> Event {
    e.occurred_at = Some(to_timestamp(at));
    e
}

#[tokio::test]
async fn every_coordination_measure_matches_its_hand_computed_value() {
    let org = Uuid::now_v7();
    let app = spawn().await;
    let mut events = Vec::new();
    let t0 = ny(11, 2, 8);
    let h = |n: i64| t0 + Duration::hours(n);
    // Referral A: placed, accepted +24 h, scheduled +48 h, seen +168 h, note +240 h (closed in 10 days).
    let a = Uuid::now_v7();
    let moved = |id: Uuid, v: i64, to: ReferralStatus, when: DateTime<Utc>| {
        at_event(
            event(
                org,
                id,
                v,
                Payload::ReferralStatusChanged(ReferralStatusChanged {
                    referral_id: id.to_string(),
                    to_status: to as i32,
                    ..Default::default()
                }),
                "referrals.referral.status_changed",
            ),
            when,
        )
    };
    let placed = |id: Uuid, when: DateTime<Utc>| {
        at_event(
            event(
                org,
                id,
                1,
                Payload::ReferralPlaced(ReferralPlaced {
                    referral_id: id.to_string(),
                    service_type: "cardiology".into(),
                    ..Default::default()
                }),
                "referrals.referral.placed",
            ),
            when,
        )
    };
    events.extend([
        placed(a, h(0)),
        moved(a, 2, ReferralStatus::Accepted, h(24)),
        moved(a, 3, ReferralStatus::Scheduled, h(72)),
        moved(a, 4, ReferralStatus::Seen, h(168)),
        moved(a, 5, ReferralStatus::NoteReceived, h(240)),
    ]);
    // Referral B: placed, accepted +12 h, still open.
    let b = Uuid::now_v7();
    events.extend([
        placed(b, h(0)),
        moved(b, 2, ReferralStatus::Accepted, h(12)),
    ]);
    // Referral C: cancelled (left out).
    let c = Uuid::now_v7();
    events.extend([
        placed(c, h(1)),
        moved(c, 2, ReferralStatus::Cancelled, h(5)),
    ]);

    // Results: critical acknowledged in 2 h, abnormal acknowledged in 24 h, abnormal never (due
    // 72 h after routing, long past now): orphaned.
    let routed = |id: Uuid, flag: ResultFlag, when: DateTime<Utc>| {
        at_event(
            event(
                org,
                id,
                2,
                Payload::ResultRouted(ResultRouted {
                    result_id: id.to_string(),
                    to_role: CareRole::Pcp as i32,
                    flag: flag as i32,
                    due_at: Some(to_timestamp(when + Duration::hours(72))),
                    ..Default::default()
                }),
                "referrals.result.routed",
            ),
            when,
        )
    };
    let acked = |id: Uuid, when: DateTime<Utc>| {
        at_event(
            event(
                org,
                id,
                3,
                Payload::ResultAcknowledged(ResultAcknowledged {
                    result_id: id.to_string(),
                    by_role: CareRole::Pcp as i32,
                }),
                "referrals.result.acknowledged",
            ),
            when,
        )
    };
    let (r1, r2, r3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    events.extend([
        routed(r1, ResultFlag::Critical, h(0)),
        acked(r1, h(2)),
        routed(r2, ResultFlag::Abnormal, h(0)),
        acked(r2, h(24)),
        routed(r3, ResultFlag::Abnormal, h(1)),
    ]);

    // Inbox items: RN acknowledges after 1 h and 3 h; PCP after 5 h.
    let item = |role: CareRole, after: i64| {
        let id = Uuid::now_v7();
        [
            at_event(
                event(
                    org,
                    id,
                    1,
                    Payload::NotificationRaised(NotificationRaised {
                        item_id: id.to_string(),
                        role: role as i32,
                        ..Default::default()
                    }),
                    "notifications.item.raised",
                ),
                h(0),
            ),
            at_event(
                event(
                    org,
                    id,
                    2,
                    Payload::NotificationAcknowledged(NotificationAcknowledged {
                        item_id: id.to_string(),
                        role: role as i32,
                        ..Default::default()
                    }),
                    "notifications.item.acknowledged",
                ),
                h(after),
            ),
        ]
    };
    events.extend(item(CareRole::Rn, 1));
    events.extend(item(CareRole::Rn, 3));
    events.extend(item(CareRole::Pcp, 5));

    // Handoffs: acknowledged after 6 h and 10 h, one not yet.
    let handoff = |ack: Option<i64>| {
        let id = Uuid::now_v7();
        let mut e = vec![at_event(
            event(
                org,
                id,
                1,
                Payload::HandoffSent(HandoffSent {
                    handoff_id: id.to_string(),
                    ..Default::default()
                }),
                "plans.handoff.sent",
            ),
            h(0),
        )];
        if let Some(after) = ack {
            e.push(at_event(
                event(
                    org,
                    id,
                    2,
                    Payload::HandoffAcknowledged(HandoffAcknowledged {
                        handoff_id: id.to_string(),
                        ..Default::default()
                    }),
                    "plans.handoff.acknowledged",
                ),
                h(after),
            ));
        }
        e
    };
    events.extend(handoff(Some(6)));
    events.extend(handoff(Some(10)));
    events.extend(handoff(None));

    let mut delivered: Vec<Event> = events.iter().rev().cloned().collect();
    delivered.extend(events.iter().cloned());
    record(&app.db, &delivered).await;

    let m = client(&app, PrincipalKind::Staff, org)
        .await
        .get_coordination_measures(GetCoordinationMeasuresRequest {
            period: Some(crate::priorauth::november()),
            org_id: String::new(),
            closure_days: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .measures
        .unwrap();
    assert_eq!((m.referrals_placed, m.referrals_closed_within), (2, 1));
    assert_eq!(m.referral_closure_percent, 50.0);
    // placed -> accepted: A 24 h, B 12 h: median 18 h.
    assert_eq!(m.referral_stages[0].median_hours, Some(18.0));
    assert_eq!(m.referral_stages[1].median_hours, Some(48.0));
    assert_eq!(m.referral_stages[2].median_hours, Some(96.0));
    assert_eq!(m.referral_stages[3].median_hours, Some(72.0));
    assert_eq!(
        (m.abnormal_results, m.abnormal_results_acknowledged),
        (3, 2)
    );
    assert_eq!(m.result_follow_through_median_hours, Some(13.0));
    assert_eq!(m.orphaned_abnormal_results, 1);
    assert_eq!(m.response_by_role.len(), 2);
    let rn = m.response_by_role.iter().find(|r| r.role == "rn").unwrap();
    assert_eq!(
        (rn.acknowledged, rn.median_hours, rn.p90_hours),
        (2, Some(1.0), Some(3.0))
    );
    assert_eq!((m.handoffs_sent, m.handoffs_acknowledged), (3, 2));
    assert_eq!(m.handoff_acknowledgement_median_hours, Some(8.0));
    // Per service type: A (cardiology) scheduled, then seen.
    assert_eq!(m.outcomes_by_service.len(), 1);
    assert_eq!(
        (
            m.outcomes_by_service[0].service_type.as_str(),
            m.outcomes_by_service[0].scheduled
        ),
        ("cardiology", 1)
    );
    // A was seen; B is still open: half completed.
    assert_eq!(
        (m.referrals_completed, m.referral_completion_percent),
        (1, 50.0)
    );
    // Open now: referral B, and the unacknowledged abnormal result r3 (both opened in November).
    let open: i64 = m.open_loops.iter().map(|o| o.count).sum();
    assert_eq!(open, 2);
    // First answers: A after 24 h, B after 12 h (C was cancelled, never answered).
    assert_eq!(
        (m.referrals_answered, m.first_contact_median_hours),
        (2, Some(18.0))
    );
    // A was scheduled and then seen: no reschedule, cancellation or no-show.
    assert_eq!(
        (
            m.referrals_scheduled,
            m.rescheduled_percent,
            m.no_show_percent
        ),
        (1, 0.0, 0.0)
    );

    // Replayed into an empty schema in stream order: the same measures, every one of them.
    let replay = spawn().await;
    record(&replay.db, &events).await;
    let again = client(&replay, PrincipalKind::Staff, org)
        .await
        .get_coordination_measures(GetCoordinationMeasuresRequest {
            period: Some(crate::priorauth::november()),
            org_id: String::new(),
            closure_days: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .measures
        .unwrap();
    assert_eq!(again, m);

    // Filtered to the PCP's loops: the results routed to the PCP and the PCP's inbox items; the
    // referrals and handoffs (no PCP role on them) drop out.
    let pcp = client(&app, PrincipalKind::Staff, org)
        .await
        .get_coordination_measures(GetCoordinationMeasuresRequest {
            period: Some(crate::priorauth::november()),
            org_id: String::new(),
            closure_days: 0,
            role: "pcp".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .measures
        .unwrap();
    assert_eq!(
        (
            pcp.abnormal_results,
            pcp.referrals_placed,
            pcp.handoffs_sent
        ),
        (3, 0, 0)
    );
    assert_eq!(pcp.response_by_role.len(), 1);
    assert_eq!(pcp.response_by_role[0].role, "pcp");
    let refused = client(&app, PrincipalKind::Staff, org)
        .await
        .get_coordination_measures(GetCoordinationMeasuresRequest {
            period: Some(crate::priorauth::november()),
            urgency: "someday".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(careloop_testkit::cases::bad_field(&refused), "urgency");

    // Closure within 5 days: A took 10.
    let m5 = client(&app, PrincipalKind::Staff, org)
        .await
        .get_coordination_measures(GetCoordinationMeasuresRequest {
            period: Some(crate::priorauth::november()),
            org_id: String::new(),
            closure_days: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .measures
        .unwrap();
    assert_eq!(m5.referrals_closed_within, 0);
}

#[tokio::test]
async fn the_weekly_review_compares_this_week_with_last_and_lists_stalled_loops() {
    use careloop_proto::common::v1::LoopKind;
    use careloop_proto::events::v1::LoopOverdue;
    let org = Uuid::now_v7();
    let app = spawn().await;
    let week = ny(11, 16, 0);
    let handoff = |sent: DateTime<Utc>, after: i64| {
        let id = Uuid::now_v7();
        vec![
            at_event(
                event(
                    org,
                    id,
                    1,
                    Payload::HandoffSent(HandoffSent {
                        handoff_id: id.to_string(),
                        ..Default::default()
                    }),
                    "plans.handoff.sent",
                ),
                sent,
            ),
            at_event(
                event(
                    org,
                    id,
                    2,
                    Payload::HandoffAcknowledged(HandoffAcknowledged {
                        handoff_id: id.to_string(),
                        ..Default::default()
                    }),
                    "plans.handoff.acknowledged",
                ),
                sent + Duration::hours(after),
            ),
        ]
    };
    let mut events = Vec::new();
    // Last week: acknowledged after 10 h; this week after 4 h: improved.
    events.extend(handoff(week - Duration::days(3), 10));
    events.extend(handoff(week + Duration::days(1), 4));
    // This week: an abnormal result never acknowledged, long past due: orphans 0 -> 1, worse.
    let r = Uuid::now_v7();
    events.push(at_event(
        event(
            org,
            r,
            2,
            Payload::ResultRouted(ResultRouted {
                result_id: r.to_string(),
                to_role: CareRole::Pcp as i32,
                flag: ResultFlag::Abnormal as i32,
                due_at: Some(to_timestamp(week + Duration::days(2))),
                ..Default::default()
            }),
            "referrals.result.routed",
        ),
        week + Duration::days(1),
    ));
    // Two overdue referrals: one moved on since its report, one did not (stalled).
    let overdue = |id: Uuid, v: i64| {
        at_event(
            event(
                org,
                id,
                v,
                Payload::LoopOverdue(LoopOverdue {
                    loop_kind: LoopKind::Referral as i32,
                    loop_id: id.to_string(),
                    stage: "placed".into(),
                    owner_role: CareRole::Scheduler as i32,
                    backup_role: 0,
                    due_at: Some(to_timestamp(week)),
                }),
                "referrals.loop.overdue",
            ),
            week + Duration::hours(1),
        )
    };
    let (stuck, moved_on) = (Uuid::now_v7(), Uuid::now_v7());
    events.push(overdue(stuck, 2));
    events.push(overdue(moved_on, 2));
    events.push(at_event(
        event(
            org,
            moved_on,
            3,
            Payload::ReferralStatusChanged(ReferralStatusChanged {
                referral_id: moved_on.to_string(),
                to_status: ReferralStatus::Accepted as i32,
                ..Default::default()
            }),
            "referrals.referral.status_changed",
        ),
        week + Duration::hours(2),
    ));
    record(&app.db, &events).await;

    let review = client(&app, PrincipalKind::Staff, org)
        .await
        .get_weekly_review(GetWeeklyReviewRequest {
            week_start: Some(to_timestamp(week)),
            org_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let row = |name: &str| {
        review
            .rows
            .iter()
            .find(|r| r.measure.starts_with(name))
            .unwrap()
            .clone()
    };
    let handoffs = row("handoff acknowledgement");
    assert_eq!(
        (handoffs.this_week, handoffs.last_week),
        (Some(4.0), Some(10.0))
    );
    assert_eq!(handoffs.direction, Direction::Improved as i32);
    let orphans = row("orphaned abnormal results");
    assert_eq!(
        (orphans.this_week, orphans.last_week),
        (Some(1.0), Some(0.0))
    );
    assert_eq!(orphans.direction, Direction::Worse as i32);
    assert_eq!(row("no-show").direction, Direction::Flat as i32);
    assert_eq!(review.stalled.len(), 1);
    let s = &review.stalled[0];
    assert_eq!(
        (
            s.loop_kind.as_str(),
            s.loop_id.clone(),
            s.owner_role.as_str()
        ),
        ("referral", stuck.to_string(), "scheduler")
    );
}

#[tokio::test]
async fn the_gauges_carry_the_headline_measures_per_organization() {
    let org = Uuid::now_v7();
    let app = spawn().await;
    let sent = Utc::now() - Duration::days(2);
    let id = Uuid::now_v7();
    record(
        &app.db,
        &[
            at_event(
                event(
                    org,
                    id,
                    1,
                    Payload::HandoffSent(HandoffSent {
                        handoff_id: id.to_string(),
                        ..Default::default()
                    }),
                    "plans.handoff.sent",
                ),
                sent,
            ),
            at_event(
                event(
                    org,
                    id,
                    2,
                    Payload::HandoffAcknowledged(HandoffAcknowledged {
                        handoff_id: id.to_string(),
                        ..Default::default()
                    }),
                    "plans.handoff.acknowledged",
                ),
                sent + Duration::hours(6),
            ),
        ],
    )
    .await;
    let metrics = careloop_runtime::metrics::Metrics::new("metrics");
    let gauges = careloop_metrics::gauges::Gauges::new(&metrics).unwrap();
    assert_eq!(
        gauges.refresh(&app.db).await.unwrap(),
        1,
        "one organization measured"
    );
    let text = metrics.render();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("careloop_measure_handoff_acknowledgement_median_hours")
                && l.contains(&org.to_string())
        })
        .unwrap_or_else(|| panic!("no handoff gauge in:\n{text}"));
    assert!(line.ends_with(" 6"), "{line}");
}
