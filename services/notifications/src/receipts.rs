//! Receipts: an item's first delivery (pushed to a watcher, or sent by email, text or webhook) and
//! its first reading by someone holding its role, each recorded once on the item and announced by
//! an event of its own (its own aggregate, version 1: a receipt is not a change of the item, and a
//! client's version of the item stays good).

use careloop_proto::events::v1::{NotificationDelivered, NotificationRead, event::Payload};
use careloop_runtime::write::{Acting, Change};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// Who receipts are audited as.
pub const ACTOR: &str = "notifications-receipts";

/// Marks the items delivered through `channel` unless they were before; returns how many were new.
pub async fn delivered(
    conn: &mut PgConnection,
    items: &[Uuid],
    channel: &str,
) -> sqlx::Result<usize> {
    if items.is_empty() {
        return Ok(0);
    }
    let now = careloop_runtime::time::now();
    let first: Vec<(Uuid, Uuid, Uuid, i32, DateTime<Utc>)> = sqlx::query_as(
        "UPDATE items SET delivered_at = $2 WHERE id = ANY($1) AND delivered_at IS NULL
          RETURNING id, org_id, patient_id, role, created_at",
    )
    .bind(items)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for (id, org, patient, role, raised) in &first {
        Acting::new(conn, crate::api::SOURCE, ACTOR)
            .emit(Change {
                org_id: *org,
                patient_id: *patient,
                aggregate_id: Uuid::now_v7(),
                aggregate_version: 1,
                payload: Payload::NotificationDelivered(NotificationDelivered {
                    item_id: id.to_string(),
                    role: *role,
                    channel: channel.to_owned(),
                    raised_at: Some(careloop_runtime::time::to_timestamp(*raised)),
                }),
            })
            .await?;
    }
    Ok(first.len())
}

/// Marks the open item read by `reader` unless someone read it in this inbox before; returns
/// whether this was the first reading.
pub async fn read(conn: &mut PgConnection, item: Uuid, reader: &str) -> sqlx::Result<bool> {
    let now = careloop_runtime::time::now();
    let first: Option<(Uuid, Uuid, i32, DateTime<Utc>)> = sqlx::query_as(
        "UPDATE items SET read_at = $2, read_by = $3 WHERE id = $1 AND read_at IS NULL AND status = 'open'
          RETURNING org_id, patient_id, role, created_at",
    )
    .bind(item)
    .bind(now)
    .bind(reader)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((org, patient, role, raised)) = first else {
        return Ok(false);
    };
    Acting::new(conn, crate::api::SOURCE, ACTOR)
        .emit(Change {
            org_id: org,
            patient_id: patient,
            aggregate_id: Uuid::now_v7(),
            aggregate_version: 1,
            payload: Payload::NotificationRead(NotificationRead {
                item_id: item.to_string(),
                role,
                raised_at: Some(careloop_runtime::time::to_timestamp(raised)),
            }),
        })
        .await?;
    Ok(true)
}
