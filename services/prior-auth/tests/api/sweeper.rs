//! Sweepers racing: one overdue event per decision deadline, one expiring event per approval.

use crate::helpers::*;
use crate::lifecycle::{complete, create, respond, submit};
use careloop_prior_auth::sweeper::sweep;
use careloop_proto::priorauth::v1::record_payer_response_request::{Approved, Response};
use careloop_proto::priorauth::v1::*;
use chrono::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_racing_emit_one_overdue_event_per_deadline_and_one_expiry_per_approval() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    let mut submitted = Vec::new();
    for _ in 0..6 {
        let r = create(&mut c, &patient.id, complete(Urgency::Expedited)).await;
        submitted.push(submit(&mut c, &r).await.unwrap());
    }
    let approved = respond(
        &mut c,
        &submitted[5],
        Response::Approved(Approved {
            authorization_number: "A".into(),
            items: vec![],
            valid_from: in_hours(0),
            valid_to: in_hours(24 * 5),
        }),
    )
    .await
    .unwrap();
    let later = chrono::Utc::now() + Duration::hours(73);
    let within = Duration::days(14);
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(4));
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let pool = app.db.clone();
            let start = std::sync::Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                sweep(&pool, later, within, 2).await.unwrap()
            })
        })
        .collect();
    let (mut overdue, mut expiring) = (0, 0);
    for r in racers {
        let (o, e) = r.await.unwrap();
        overdue += o;
        expiring += e;
    }
    loop {
        let (o, e) = sweep(&app.db, later, within, 2).await.unwrap();
        if o + e == 0 {
            break;
        }
        overdue += o;
        expiring += e;
    }
    assert_eq!((overdue, expiring), (5, 1));
    assert_eq!(
        app.count(
            "SELECT count(*) FROM outbox WHERE event_type = 'priorauth.request.decision_overdue'"
        )
        .await,
        5
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'priorauth.request.expiring'")
            .await,
        1
    );
    // The expiring approval is the approved request, and the five others are the overdue ones.
    let expiring_for: Vec<String> = sqlx::query_scalar(
        "SELECT aggregate_id::text FROM outbox WHERE event_type = 'priorauth.request.expiring'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(expiring_for, vec![approved.id.clone()]);
    let payloads: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE event_type IN
            ('priorauth.request.decision_overdue', 'priorauth.request.expiring')",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    for payload in payloads {
        let event =
            <careloop_proto::events::v1::Event as prost::Message>::decode(payload.as_slice())
                .unwrap();
        assert_eq!(
            event.org_id,
            app.org_id.to_string(),
            "the owning organization"
        );
    }
    let overdue_for: Vec<String> = sqlx::query_scalar(
        "SELECT aggregate_id::text FROM outbox
          WHERE event_type = 'priorauth.request.decision_overdue' ORDER BY aggregate_id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut expected: Vec<String> = submitted[..5].iter().map(|r| r.id.clone()).collect();
    expected.sort();
    assert_eq!(overdue_for, expected);

    // An extension is a new deadline: once it passes, it is reported again.
    let r = c
        .get_request(GetRequestRequest {
            request_id: submitted[0].id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    c.extend_decision(ExtendDecisionRequest {
        idempotency_key: key(),
        request_id: r.id.clone(),
        expected_version: r.version,
        reason: "extended".into(),
        new_due_at: in_hours(100),
    })
    .await
    .unwrap();
    assert_eq!(sweep(&app.db, later, within, 10).await.unwrap(), (0, 0));
    assert_eq!(
        sweep(&app.db, later + Duration::hours(30), within, 10)
            .await
            .unwrap(),
        (1, 0)
    );
}

#[tokio::test]
async fn a_missed_update_to_the_patient_is_reported_once_per_promise() {
    use careloop_prior_auth::sweeper::sweep_missed_updates;
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.patient().await;
    // Both promise the patient an update within 24 hours; one is then approved.
    let open = create(&mut c, &patient.id, complete(Urgency::Expedited)).await;
    let decided = create(&mut c, &patient.id, complete(Urgency::Expedited)).await;
    let decided = submit(&mut c, &decided).await.unwrap();
    respond(
        &mut c,
        &decided,
        Response::Approved(Approved {
            authorization_number: "A".into(),
            items: vec![],
            valid_from: in_hours(0),
            valid_to: in_hours(24 * 90),
        }),
    )
    .await
    .unwrap();
    let later = chrono::Utc::now() + Duration::hours(25);
    assert_eq!(sweep_missed_updates(&app.db, later, 10).await.unwrap(), 1);
    assert_eq!(
        sweep_missed_updates(&app.db, later, 10).await.unwrap(),
        0,
        "once per promise"
    );
    let reported: Vec<String> = sqlx::query_scalar(
        "SELECT aggregate_id::text FROM outbox WHERE event_type = 'priorauth.request.update_missed'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        reported,
        vec![open.id.clone()],
        "the decided request is not chased"
    );

    // The report is a change of the request: a version of its own, audited as the sweeper.
    let reported = c
        .get_request(GetRequestRequest {
            request_id: open.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    assert_eq!(reported.version, open.version + 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'priorauth.request.update_missed' \
             AND subject = 'prior-auth-sweeper' AND principal_kind = 'service'"
        )
        .await,
        1
    );

    // A new promise is a new deadline.
    let mut content = complete(Urgency::Expedited);
    content.next_patient_update_at = in_hours(48);
    c.update_request(UpdateRequestRequest {
        idempotency_key: key(),
        request_id: open.id.clone(),
        expected_version: reported.version,
        content: Some(content),
    })
    .await
    .unwrap();
    assert_eq!(sweep_missed_updates(&app.db, later, 10).await.unwrap(), 0);
    let much_later = chrono::Utc::now() + Duration::hours(49);
    assert_eq!(
        sweep_missed_updates(&app.db, much_later, 10).await.unwrap(),
        1
    );
}
