//! Results recorded through referrals reach the responsible role's inbox once, through the real
//! NATS, and are pushed to a watcher; a watcher that comes back with its cursor misses nothing and
//! sees nothing twice. Inboxes belong to those who hold the role in the organization.

use crate::helpers::*;
use careloop_proto::common::v1::{CareRole, LoopKind};
use careloop_proto::notifications::v1::*;
use careloop_proto::referrals::v1::ResultFlag;
use careloop_runtime::auth::PrincipalKind;
use futures::StreamExt;
use std::time::Duration;
use uuid::Uuid;

async fn next_entry(stream: &mut tonic::Streaming<InboxEntry>) -> InboxEntry {
    tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("an entry arrives (liveness bound, not a timing assertion)")
        .expect("stream open")
        .expect("entry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_result_reaches_the_pcp_inbox_once_and_a_resumed_watcher_misses_nothing() {
    let app = spawn_with_events().await;
    let patient = app.patient().await;
    let mut pcp = app.staff("pcp");
    let mut watch = pcp
        .watch_inbox(WatchInboxRequest {
            role: CareRole::Pcp as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let critical = app.result(&patient.id, ResultFlag::Critical).await;
    let first = next_entry(&mut watch).await;
    assert_eq!(first.kind, EntryKind::Raised as i32);
    let item = first.item.unwrap();
    assert_eq!(item.role, CareRole::Pcp as i32);
    assert_eq!(item.priority, NotificationPriority::Critical as i32);
    assert_eq!(item.stage, "routed");
    assert_eq!(item.patient_id, patient.id);
    assert_eq!(
        item.r#loop,
        Some(careloop_proto::common::v1::LoopRef {
            kind: LoopKind::Result as i32,
            id: critical.id.clone()
        })
    );
    assert_eq!(item.rung_count, 3, "pcp, then rn, then the hospitalist");
    assert!(item.escalates_at.is_some());

    // Pushed to a watcher: delivered, once, with its own receipt event.
    let mut delivered = 0;
    for _ in 0..600 {
        delivered = app
            .count("SELECT count(*) FROM items WHERE delivered_at IS NOT NULL")
            .await;
        if delivered == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'notifications.item.delivered'")
            .await,
        1
    );

    // The watcher goes away; two more results arrive meanwhile (one abnormal, one normal).
    drop(watch);
    let abnormal = app.result(&patient.id, ResultFlag::Abnormal).await;
    app.result(&patient.id, ResultFlag::Normal).await;
    let items = app.inbox_of("pcp", 2).await;
    let mut watch = pcp
        .watch_inbox(WatchInboxRequest {
            role: CareRole::Pcp as i32,
            cursor: first.cursor.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let resumed = next_entry(&mut watch).await;
    let resumed_item = resumed.item.unwrap();
    assert_eq!(
        resumed_item.r#loop.unwrap().id,
        abnormal.id,
        "the entry after the cursor, not the one before it"
    );
    assert_eq!(resumed_item.priority, NotificationPriority::Urgent as i32);
    assert!(resumed.cursor.parse::<i64>().unwrap() > first.cursor.parse::<i64>().unwrap());
    // Nothing else: the normal result raised nothing, and the critical one is not repeated.
    let more = tokio::time::timeout(Duration::from_millis(500), watch.next()).await;
    assert!(more.is_err(), "no further entry: {more:?}");
    assert_eq!(items.len(), 2);
    assert_eq!(
        app.count("SELECT count(*) FROM items").await,
        2,
        "one item per routed abnormal result, none for the normal one"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'notifications.item.raised' \
             AND subject = 'notifications-router' AND principal_kind = 'service'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn an_event_delivered_twice_raises_one_item() {
    use careloop_proto::events::v1::{Event, ResultRouted, event::Payload};
    use careloop_runtime::events::Handler;
    let app = spawn_app().await;
    let patient = Uuid::now_v7();
    let event = Event {
        id: Uuid::now_v7().to_string(),
        r#type: "referrals.result.routed".into(),
        source: "referrals".into(),
        patient_id: patient.to_string(),
        org_id: app.org_id.to_string(),
        aggregate_id: Uuid::now_v7().to_string(),
        aggregate_version: 2,
        payload: Some(Payload::ResultRouted(ResultRouted {
            result_id: Uuid::now_v7().to_string(),
            to_role: CareRole::Hospitalist as i32,
            backup_role: CareRole::Rn as i32,
            due_at: in_hours(1),
            flag: ResultFlag::Abnormal as i32,
        })),
        ..Default::default()
    };
    for _ in 0..2 {
        let mut tx = app.db.begin().await.unwrap();
        careloop_notifications::router::Router::default()
            .handle(&mut tx, &event)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(app.count("SELECT count(*) FROM items").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM inbox_feed").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'notifications.item.raised'")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_is_read_by_those_holding_its_role_in_its_organization() {
    let app = spawn_with_events().await;
    let patient = app.patient().await;
    app.result(&patient.id, ResultFlag::Critical).await;
    let item = app.inbox_of("pcp", 1).await.remove(0);

    // Staff without the role: refused, and audited as a refusal.
    let status = app
        .staff("pharmacist")
        .list_inbox(ListInboxRequest {
            role: CareRole::Pcp as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    // Another organization's staff holding the role: the item is not there for them.
    let mut stranger = app.client_as(PrincipalKind::Staff, Uuid::now_v7(), "pcp-9", &["pcp"]);
    let hidden = stranger
        .get_item(GetItemRequest {
            item_id: item.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), tonic::Code::NotFound);
    let other_org = stranger
        .list_inbox(ListInboxRequest {
            role: CareRole::Pcp as i32,
            org_id: app.org_id.to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(other_org.code(), tonic::Code::PermissionDenied);
    let refused = stranger
        .acknowledge_item(AcknowledgeItemRequest {
            idempotency_key: key(),
            item_id: item.id.clone(),
            expected_version: item.version,
            note: "mine".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    // A partner has no inbox here.
    let partner = app
        .client_as(PrincipalKind::Partner, app.org_id, "partner-1", &["pcp"])
        .list_inbox(ListInboxRequest {
            role: CareRole::Pcp as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(partner.code(), tonic::Code::PermissionDenied);

    // A person's own inbox holds the items of every role they hold.
    let mine = app
        .client_as(PrincipalKind::Staff, app.org_id, "dr-both", &["pcp", "rn"])
        .list_inbox(ListInboxRequest {
            mine: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((mine.items.len(), mine.open_count), (1, 1));
    let none = app
        .staff("pharmacist")
        .list_inbox(ListInboxRequest {
            mine: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.open_count, 0);

    // The PCP acknowledges with a note; a retry answers the same; the count drops.
    let mut pcp = app.staff("pcp");
    let ack = AcknowledgeItemRequest {
        idempotency_key: key(),
        item_id: item.id.clone(),
        expected_version: item.version,
        note: "calling the patient now".into(),
    };
    let first = pcp
        .acknowledge_item(ack.clone())
        .await
        .unwrap()
        .into_inner();
    let again = pcp.acknowledge_item(ack).await.unwrap().into_inner();
    assert_eq!(first, again);
    let acknowledged = first.item.unwrap();
    assert_eq!(acknowledged.status, ItemStatus::Acknowledged as i32);
    assert_eq!(acknowledged.acknowledged_by, "pcp-1");
    assert_eq!(acknowledged.escalates_at, None, "the ladder stopped");
    let twice = pcp
        .acknowledge_item(AcknowledgeItemRequest {
            idempotency_key: key(),
            item_id: item.id.clone(),
            expected_version: acknowledged.version,
            note: "again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), tonic::Code::FailedPrecondition);
    let listed = pcp
        .list_inbox(ListInboxRequest {
            role: CareRole::Pcp as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((listed.items.len(), listed.open_count), (0, 0));
    assert_eq!(
        app.count(
            "SELECT count(*) FROM outbox WHERE event_type = 'notifications.item.acknowledged'"
        )
        .await,
        1
    );
    assert!(
        careloop_testkit::callers::denials(&app.db, "pharmacist-1").await >= 1,
        "refusals are audited"
    );
}
