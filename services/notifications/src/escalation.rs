//! The escalation sweeper: an open item whose rung window passed moves to the next rung's role
//! (a feed entry for that inbox, a `notifications.item.escalated` event), with the next window
//! starting when it arrives. The last rung's item stays where it is. The clock is the caller's
//! (`now`), so tests step time instead of sleeping; replicas sweep side by side (`FOR UPDATE SKIP
//! LOCKED`, and an item's rung moves once per window).

use crate::store::{self, ItemRow};
use careloop_proto::events::v1::{NotificationEscalated, event::Payload};
use careloop_runtime::events::Background;
use careloop_runtime::write::{Acting, Change};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::time::Duration;

/// Who the escalations are audited as.
pub const ACTOR: &str = "notifications-escalation";

/// One sweep as of `now`: releases up to `batch` held items whose hold ended, escalates up to
/// `batch` items, and queues the fallback text for unread urgent ones; returns how many moved
/// (released or escalated).
pub async fn sweep(pool: &PgPool, now: DateTime<Utc>, batch: i64) -> anyhow::Result<usize> {
    sweep_with(pool, now, batch, DEFAULT_FALLBACK_AFTER).await
}

/// How long an urgent or critical item may sit unread in an inbox before the fallback text.
pub const DEFAULT_FALLBACK_AFTER: chrono::Duration = chrono::Duration::minutes(10);

/// As `sweep`, also sending the fallback text for urgent and critical items nobody holding the
/// role read within `fallback_after` of reaching the inbox.
pub async fn sweep_with(
    pool: &PgPool,
    now: DateTime<Utc>,
    batch: i64,
    fallback_after: chrono::Duration,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    // The feed's lock first, as every router transaction takes it before any item's: one order,
    // no deadlock.
    sqlx::query("SELECT position FROM feed_position FOR UPDATE")
        .execute(&mut *tx)
        .await?;
    // Held routine items whose role came on duty reach the inbox first.
    let held: Vec<ItemRow> = sqlx::query_as(
        "SELECT * FROM items WHERE status = 'held' AND deliver_at <= $1
          ORDER BY deliver_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let released = held.len();
    for mut item in held {
        item.status = "open".into();
        item.reached_at = Some(now);
        item.version += 1;
        store::save_item(&mut tx, &item).await?;
        crate::router::reach_inbox(&mut tx, &item, ACTOR, now).await?;
    }
    let due: Vec<ItemRow> = sqlx::query_as(
        "SELECT * FROM items WHERE status = 'open' AND escalates_at <= $1
          ORDER BY escalates_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let mut escalated = 0;
    for mut item in due {
        let next = usize::try_from(item.rung + 1).unwrap_or(usize::MAX);
        let Some(rung) = item.ladder.0.get(next).copied() else {
            // A ladder that shrank under the item (it never does today): stop sweeping it.
            item.escalates_at = None;
            item.version += 1;
            store::save_item(&mut tx, &item).await?;
            continue;
        };
        let from_role = item.role;
        item.rung += 1;
        item.role = rung.role;
        // A new inbox: not read there yet, and its own fallback if nobody there reads it.
        item.reached_at = Some(now);
        item.read_at = None;
        item.read_by = None;
        item.fallback_sent = false;
        item.escalates_at = (next + 1 < item.ladder.0.len())
            .then(|| now + chrono::Duration::minutes(i64::from(rung.window_minutes)));
        item.version += 1;
        store::save_item(&mut tx, &item).await?;
        store::feed(&mut tx, &item, "escalated", now).await?;
        Acting::new(&mut tx, crate::api::SOURCE, ACTOR)
            .emit(Change {
                org_id: item.org_id,
                patient_id: item.patient_id,
                aggregate_id: item.id,
                aggregate_version: item.version,
                payload: Payload::NotificationEscalated(NotificationEscalated {
                    item_id: item.id.to_string(),
                    loop_kind: item.loop_kind,
                    loop_id: item.loop_id.to_string(),
                    from_role,
                    to_role: item.role,
                    rung: item.rung,
                    priority: crate::api::convert::priority_value(&item.priority),
                }),
            })
            .await?;
        crate::webhooks::enqueue(&mut tx, &item, "notifications.item.escalated", now).await?;
        crate::messages::enqueue(&mut tx, &item, "Escalated", now).await?;
        escalated += 1;
    }
    // Urgent items nobody read: a text to the role's on-duty members, once per inbox.
    let unread: Vec<ItemRow> = sqlx::query_as(
        "SELECT * FROM items WHERE status = 'open' AND read_at IS NULL AND NOT fallback_sent
            AND priority IN ('urgent', 'critical') AND reached_at <= $1
          ORDER BY reached_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now - fallback_after)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let fallbacks = unread.len();
    for mut item in unread {
        item.fallback_sent = true;
        store::save_item(&mut tx, &item).await?;
        crate::messages::enqueue_fallback(&mut tx, &item, now).await?;
    }
    tx.commit().await?;
    if fallbacks > 0 {
        tracing::info!(fallbacks, "fallback texts queued for unread urgent items");
    }
    Ok(released + escalated)
}

/// Sweeps every `interval` until the service stops.
pub fn schedule(
    background: &mut Background,
    pool: PgPool,
    interval: Duration,
    fallback_after: chrono::Duration,
) {
    background.sweep_every(interval, "escalations", move || {
        let pool = pool.clone();
        async move { sweep_with(&pool, Utc::now(), 500, fallback_after).await }
    });
}
