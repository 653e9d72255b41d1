//! The closed loop: placed to note received, due times per urgency, reschedule counting, refusals,
//! retries and access.

use crate::helpers::*;
use careloop_proto::common::v1::{CareRole, Priority};
use careloop_proto::referrals::v1::transition_referral_request::{self as tr, Action};
use careloop_proto::referrals::v1::*;
use chrono::Duration;

pub fn place(patient_id: &str, urgency: Priority) -> PlaceReferralRequest {
    PlaceReferralRequest {
        idempotency_key: key(),
        patient_id: patient_id.into(),
        // Empty: the caller's own organization sends it.
        from_org_id: String::new(),
        from_clinician: "Dr. Primary".into(),
        to_org_id: String::new(),
        to_specialty: "cardiology".into(),
        service_type: "consult".into(),
        reason: "new murmur".into(),
        urgency: urgency as i32,
        owner_role: CareRole::CareManager as i32,
        clinical_context: "echo pending".into(),
    }
}

pub async fn step(c: &mut Client, r: &Referral, action: Action) -> Result<Referral, tonic::Status> {
    c.transition_referral(TransitionReferralRequest {
        idempotency_key: key(),
        referral_id: r.id.clone(),
        expected_version: r.version,
        action: Some(action),
    })
    .await
    .map(|x| x.into_inner().referral.unwrap())
}

fn stage_hours(r: &Referral) -> i64 {
    (ts(&r.stage_due_at) - ts(&r.updated_at)).num_hours()
}

#[tokio::test]
async fn a_referral_walks_from_placed_to_note_received_with_due_times_from_its_urgency() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    for (urgency, accept_h, schedule_h, note_h) in [
        (Priority::Stat, 24, 24, 24),
        (Priority::Urgent, 48, 72, 72),
        (Priority::Routine, 72, 14 * 24, 7 * 24),
    ] {
        let r = c
            .place_referral(place(&patient.id, urgency))
            .await
            .unwrap()
            .into_inner()
            .referral
            .unwrap();
        assert_eq!(r.status, ReferralStatus::Placed as i32);
        assert_eq!(stage_hours(&r), accept_h, "{urgency:?} accept");
        let r = step(
            &mut c,
            &r,
            Action::Accept(tr::Accept {
                note: String::new(),
            }),
        )
        .await
        .unwrap();
        assert_eq!(stage_hours(&r), schedule_h, "{urgency:?} schedule");
        let appointment = in_hours(24 * 5);
        let r = step(
            &mut c,
            &r,
            Action::Schedule(tr::Schedule {
                appointment_at: appointment,
                location: "Heart clinic".into(),
            }),
        )
        .await
        .unwrap();
        assert_eq!(
            ts(&r.stage_due_at),
            ts(&appointment) + Duration::hours(24),
            "due a day after the visit"
        );
        let r = step(
            &mut c,
            &r,
            Action::Seen(tr::Seen {
                note: String::new(),
            }),
        )
        .await
        .unwrap();
        assert_eq!(stage_hours(&r), note_h, "{urgency:?} note");
        let r = step(
            &mut c,
            &r,
            Action::NoteReceived(tr::NoteReceived {
                note_reference: "DocumentReference/123".into(),
            }),
        )
        .await
        .unwrap();
        assert_eq!(r.status, ReferralStatus::NoteReceived as i32);
        assert!(r.stage_due_at.is_none(), "a closed loop has no due time");
        let stages: Vec<&str> = r.timeline.iter().map(|t| t.to_status.as_str()).collect();
        assert_eq!(
            stages,
            ["placed", "accepted", "scheduled", "seen", "note_received"]
        );
        assert!(r.timeline.iter().all(|t| t.actor == "nurse-1"));
    }
}

#[tokio::test]
async fn rescheduling_is_counted_and_a_refused_move_names_both_states() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    let r = c
        .place_referral(place(&patient.id, Priority::Routine))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let refused = step(
        &mut c,
        &r,
        Action::Seen(tr::Seen {
            note: String::new(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        refused.message(),
        "referral cannot move from placed to seen"
    );
    let r = step(
        &mut c,
        &r,
        Action::Accept(tr::Accept {
            note: String::new(),
        }),
    )
    .await
    .unwrap();
    let r = step(
        &mut c,
        &r,
        Action::Schedule(tr::Schedule {
            appointment_at: in_hours(48),
            location: "A".into(),
        }),
    )
    .await
    .unwrap();
    let r = step(
        &mut c,
        &r,
        Action::Reschedule(tr::Reschedule {
            appointment_at: in_hours(96),
            location: "B".into(),
            reason: "clinic closed".into(),
        }),
    )
    .await
    .unwrap();
    let r = step(
        &mut c,
        &r,
        Action::NoShow(tr::NoShow {
            note: "no answer".into(),
        }),
    )
    .await
    .unwrap();
    let r = step(
        &mut c,
        &r,
        Action::Reschedule(tr::Reschedule {
            appointment_at: in_hours(120),
            location: "B".into(),
            reason: "after no-show".into(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, r.reschedule_count),
        (ReferralStatus::Rescheduled as i32, 2)
    );
    assert_eq!(r.location, "B");
    let stale = c
        .transition_referral(TransitionReferralRequest {
            idempotency_key: key(),
            referral_id: r.id.clone(),
            expected_version: 1,
            action: Some(Action::Cancel(tr::Cancel { reason: "x".into() })),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::Aborted);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM outbox WHERE event_type = 'referrals.referral.status_changed'"
        )
        .await,
        5
    );
}

#[tokio::test]
async fn a_retried_placement_returns_the_same_referral_and_an_outsider_is_denied() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    let request = place(&patient.id, Priority::Urgent);
    let first = c
        .place_referral(request.clone())
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let again = c
        .place_referral(request)
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(app.count("SELECT count(*) FROM referrals").await, 1);
    let denied = app
        .outsider()
        .place_referral(place(&patient.id, Priority::Routine))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::NotFound);
    let read = app
        .outsider()
        .get_referral(GetReferralRequest {
            referral_id: first.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(read.code(), tonic::Code::NotFound);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE outcome = 'denied'")
            .await,
        2
    );
    assert_eq!(app.count("SELECT count(*) FROM referrals").await, 1);
}

#[tokio::test]
async fn the_receiving_organization_runs_the_loop_and_the_sender_may_only_cancel() {
    let app = spawn_app().await;
    let mut sender = app.client();
    let patient = app.patient().await;
    let receiver_org = uuid::Uuid::now_v7();
    app.share(&patient, receiver_org).await;
    let mut receiver = app.staff_of(receiver_org, "cardio-scheduler");
    let to_receiver = || PlaceReferralRequest {
        to_org_id: receiver_org.to_string(),
        to_specialty: String::new(),
        ..place(&patient.id, Priority::Urgent)
    };
    let before = app.footprint().await;

    // Nobody sends in another organization's name.
    let forged = sender
        .place_referral(PlaceReferralRequest {
            from_org_id: receiver_org.to_string(),
            ..to_receiver()
        })
        .await
        .unwrap_err();
    assert_eq!(forged.code(), tonic::Code::PermissionDenied);
    assert_eq!(app.footprint().await, before, "a refusal writes nothing");

    let r = sender
        .place_referral(to_receiver())
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(
        r.from_org_id,
        app.org_id.to_string(),
        "sent by the caller's organization"
    );
    let accept = || {
        Action::Accept(tr::Accept {
            note: String::new(),
        })
    };

    // The sender cannot mark its own referral accepted, scheduled or seen at the receiver.
    let refused = step(&mut sender, &r, accept()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let r = step(&mut receiver, &r, accept())
        .await
        .expect("the receiver accepts");
    let r = step(
        &mut receiver,
        &r,
        Action::Schedule(tr::Schedule {
            appointment_at: in_hours(48),
            location: "Heart clinic".into(),
        }),
    )
    .await
    .expect("the receiver schedules");
    // The receiver's moves are the sender's loop: their events carry the sending organization, so
    // its escalation and measures see them.
    let orgs: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE event_type = 'referrals.referral.status_changed'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(orgs.len(), 2);
    for payload in orgs {
        let event =
            <careloop_proto::events::v1::Event as prost::Message>::decode(payload.as_slice())
                .unwrap();
        assert_eq!(event.org_id, app.org_id.to_string());
    }
    let seen = step(
        &mut sender,
        &r,
        Action::Seen(tr::Seen {
            note: String::new(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(seen.code(), tonic::Code::PermissionDenied);

    // Cancelling is the sender's: the receiver declines instead.
    let cancel = || {
        Action::Cancel(tr::Cancel {
            reason: "patient moved away".into(),
        })
    };
    let refused = step(&mut receiver, &r, cancel()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let r = step(&mut sender, &r, cancel())
        .await
        .expect("the sender cancels");
    assert_eq!(r.status, ReferralStatus::Cancelled as i32);
}
