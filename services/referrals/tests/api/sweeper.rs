//! The overdue sweeper: racing replicas report each loop and stage once.

use crate::helpers::*;
use crate::orders::lab;
use crate::referrals::{place, step};
use careloop_proto::common::v1::Priority;
use careloop_proto::referrals::v1::transition_referral_request::{self as tr, Action};
use careloop_proto::referrals::v1::*;
use careloop_referrals::sweeper::sweep_overdue;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_racing_emit_one_overdue_event_per_loop_and_stage() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    let mut referrals = Vec::new();
    for _ in 0..20 {
        referrals.push(
            c.place_referral(place(&patient.id, Priority::Stat))
                .await
                .unwrap()
                .into_inner()
                .referral
                .unwrap(),
        );
    }
    c.place_order(lab(&patient.id, "LOINC-9", OrderSetting::Outpatient))
        .await
        .unwrap();
    // Everything falls due: look two weeks ahead.
    let later = chrono::Utc::now() + chrono::Duration::days(15);
    // Released together by a barrier, so the sweepers really run at the same time.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(4));
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let pool = app.db.clone();
            let start = std::sync::Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                sweep_overdue(&pool, later, 7).await.unwrap()
            })
        })
        .collect();
    let mut reported = 0;
    for r in racers {
        reported += r.await.unwrap();
    }
    // Batches of 7 per sweep: keep sweeping until nothing is left, as the periodic task would.
    loop {
        let n = sweep_overdue(&app.db, later, 7).await.unwrap();
        if n == 0 {
            break;
        }
        reported += n;
    }
    assert_eq!(reported, 21);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'referrals.loop.overdue'")
            .await,
        21
    );
    assert_eq!(
        sweep_overdue(&app.db, later, 100).await.unwrap(),
        0,
        "a stage is reported once"
    );
    // Each names the organization that owns the loop (the sender, the one that placed the order).
    let payloads: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE event_type = 'referrals.loop.overdue'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    for payload in payloads {
        let event =
            <careloop_proto::events::v1::Event as prost::Message>::decode(payload.as_slice())
                .unwrap();
        assert_eq!(event.org_id, app.org_id.to_string());
    }

    // Each report is a change of its loop: the next version, audited as the sweeper.
    let reported = c
        .get_referral(GetReferralRequest {
            referral_id: referrals[0].id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(reported.version, referrals[0].version + 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'referrals.loop.overdue' \
             AND subject = 'referrals-sweeper' AND principal_kind = 'service'"
        )
        .await,
        21
    );

    // A new stage is a new deadline: moving the referral makes it reportable again.
    let moved = step(
        &mut c,
        &reported,
        Action::Accept(tr::Accept {
            note: String::new(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(moved.status, ReferralStatus::Accepted as i32);
    assert_eq!(sweep_overdue(&app.db, later, 100).await.unwrap(), 1);
}
