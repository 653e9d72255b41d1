//! Rosters and quiet hours under a stepped clock: a routine item raised while nobody holds the role
//! waits for the next shift in the organization's time zone; urgent and critical ones go at once,
//! to the roster's backup role when nobody is on duty.

use crate::helpers::*;
use careloop_notifications::escalation::sweep;
use careloop_notifications::router::Router;
use careloop_proto::common::v1::CareRole;
use careloop_proto::events::v1::{Event, HandoffSent, ResultRouted, event::Payload};
use careloop_proto::notifications::v1::*;
use careloop_proto::referrals::v1::ResultFlag;
use careloop_runtime::events::Handler;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::America::New_York;
use std::sync::Arc;
use uuid::Uuid;

fn ny(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    New_York
        .with_ymd_and_hms(2026, 12, d, h, m, 0)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

fn day_shift(subject: &str) -> RosterMember {
    RosterMember {
        subject: subject.into(),
        shifts: vec![Shift {
            weekdays: vec![1, 2, 3, 4, 5],
            start: "07:00".into(),
            end: "19:00".into(),
        }],
        email: String::new(),
        phone: String::new(),
    }
}

fn event(app: &TestApp, payload: Payload, event_type: &str) -> Event {
    Event {
        id: Uuid::now_v7().to_string(),
        r#type: event_type.into(),
        source: "test".into(),
        patient_id: Uuid::now_v7().to_string(),
        org_id: app.org_id.to_string(),
        aggregate_id: Uuid::now_v7().to_string(),
        aggregate_version: 1,
        payload: Some(payload),
        ..Default::default()
    }
}

async fn route_at(app: &TestApp, at: DateTime<Utc>, event: &Event) {
    let router = Router {
        clock: Arc::new(move || at),
        directory: Default::default(),
    };
    let mut tx = app.db.begin().await.unwrap();
    router.handle(&mut tx, event).await.unwrap();
    tx.commit().await.unwrap();
}

async fn items(app: &TestApp) -> Vec<(i32, String, Option<DateTime<Utc>>)> {
    sqlx::query_as("SELECT role, status, deliver_at FROM items ORDER BY created_at, id")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_routine_item_raised_off_hours_waits_for_the_next_shift_and_an_urgent_one_does_not() {
    let app = spawn_app().await;
    let mut admin = app.admin();
    let set = |role: CareRole, backup: CareRole| SetRosterRequest {
        idempotency_key: key(),
        org_id: String::new(),
        role: role as i32,
        time_zone: "America/New_York".into(),
        members: vec![day_shift(&format!("{}-day", role.as_str_name()))],
        backup_role: backup as i32,
        expected_version: 0,
    };
    let rn = admin
        .set_roster(set(CareRole::Rn, CareRole::Unspecified))
        .await
        .unwrap()
        .into_inner()
        .roster
        .unwrap();
    assert_eq!(rn.version, 1);
    admin
        .set_roster(set(CareRole::Pcp, CareRole::Hospitalist))
        .await
        .unwrap();
    let stale = admin
        .set_roster(set(CareRole::Rn, CareRole::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(
        stale.code(),
        tonic::Code::Aborted,
        "a second create is stale"
    );

    // Tuesday 22:00 in New York: nobody on duty.
    let night = ny(1, 22, 0);
    let handoff = event(
        &app,
        Payload::HandoffSent(HandoffSent {
            handoff_id: Uuid::now_v7().to_string(),
            from_role: CareRole::Hospitalist as i32,
            to_role: CareRole::Rn as i32,
            ..Default::default()
        }),
        "plans.handoff.sent",
    );
    route_at(&app, night, &handoff).await;
    let critical = |to: CareRole| {
        event(
            &app,
            Payload::ResultRouted(ResultRouted {
                result_id: Uuid::now_v7().to_string(),
                to_role: to as i32,
                backup_role: CareRole::Rn as i32,
                due_at: None,
                flag: ResultFlag::Critical as i32,
            }),
            "referrals.result.routed",
        )
    };
    route_at(&app, night, &critical(CareRole::Rn)).await;
    route_at(&app, night, &critical(CareRole::Pcp)).await;
    assert_eq!(
        items(&app).await,
        vec![
            (CareRole::Rn as i32, "held".into(), Some(ny(2, 7, 0))),
            (CareRole::Rn as i32, "open".into(), None),
            (CareRole::Hospitalist as i32, "open".into(), None),
        ],
        "the routine handoff waits for Wednesday 07:00; the critical results go at once, the \
         PCP's to the hospitalist, the PCP roster's backup"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM inbox_feed").await,
        2,
        "a held item is in no inbox yet"
    );

    // Overnight the critical items climb their ladders; the handoff stays held until 07:00.
    let handoff_status = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT status FROM items WHERE source_event_type = 'plans.handoff.sent'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
    };
    sweep(&app.db, ny(2, 6, 59), 10).await.unwrap();
    assert_eq!(handoff_status().await, "held");
    sweep(&app.db, ny(2, 7, 1), 10).await.unwrap();
    assert_eq!(handoff_status().await, "open");
    let listed = app
        .staff("rn")
        .list_inbox(ListInboxRequest {
            role: CareRole::Rn as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed
            .items
            .iter()
            .any(|i| i.source_event_type == "plans.handoff.sent"
                && i.status == ItemStatus::Open as i32),
        "the handoff reached the RN inbox when the shift started"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbox_feed f JOIN items i ON i.id = f.item_id
              WHERE i.source_event_type = 'plans.handoff.sent' AND f.kind = 'raised'"
        )
        .await,
        1
    );

    let read = app
        .staff("rn")
        .get_roster(GetRosterRequest {
            org_id: String::new(),
            role: CareRole::Pcp as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .roster
        .unwrap();
    assert_eq!(read.backup_role, CareRole::Hospitalist as i32);
    assert_eq!(read.members[0].shifts[0].start, "07:00");
}
