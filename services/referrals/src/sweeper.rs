//! The overdue sweeper: finds open loops past their stage due time through partial indexes that
//! hold only not-yet-reported loops, marks each (loop, stage) reported and emits one overdue event
//! for it, in one transaction. Replicas run it side by side: `FOR UPDATE SKIP LOCKED` and the mark
//! make sure each loop and stage is reported once.

use careloop_proto::common::v1::LoopKind;
use careloop_proto::events::v1::{LoopOverdue, event::Payload};
use careloop_runtime::events::Background;
use careloop_runtime::write::{Acting, Change};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// Who the overdue reports are audited as.
const ACTOR: &str = "referrals-sweeper";

type Overdue = (
    Uuid,
    Uuid,
    String,
    i32,
    i32,
    Option<DateTime<Utc>>,
    i64,
    Option<Uuid>,
);

const REFERRALS: &str = "
UPDATE referrals r SET overdue_stage = r.status, version = r.version + 1
WHERE r.id IN (
    SELECT id FROM referrals
    WHERE status NOT IN ('declined', 'note_received', 'cancelled') AND overdue_stage IS NULL AND stage_due_at < $1
    ORDER BY stage_due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
  AND r.overdue_stage IS NULL
RETURNING r.id, r.patient_id, r.status, r.owner_role, 0, r.stage_due_at, r.version, r.from_org_id";

const ORDERS: &str = "
UPDATE orders o SET overdue_stage = o.status, version = o.version + 1
WHERE o.id IN (
    SELECT id FROM orders
    WHERE status NOT IN ('closed', 'cancelled') AND overdue_stage IS NULL AND due_at < $1
    ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
  AND o.overdue_stage IS NULL
RETURNING o.id, o.patient_id, o.status, o.owner_role, 0, o.due_at, o.version, o.org_id";

const RESULTS: &str = "
UPDATE results x SET overdue_stage = x.status, version = x.version + 1
WHERE x.id IN (
    SELECT id FROM results
    WHERE status = 'routed' AND flag <> 'normal' AND overdue_stage IS NULL AND due_at < $1
    ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
  AND x.overdue_stage IS NULL
RETURNING x.id, x.patient_id, x.status, x.routed_to_role, x.backup_role, x.due_at, x.version, x.org_id";

/// One sweep: reports up to `batch` newly overdue loops of each kind as of `now`; returns how many.
pub async fn sweep_overdue(pool: &PgPool, now: DateTime<Utc>, batch: i64) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let mut reported = 0;
    for (sql, kind) in [
        (REFERRALS, LoopKind::Referral),
        (ORDERS, LoopKind::Order),
        (RESULTS, LoopKind::Result),
    ] {
        let rows: Vec<Overdue> = sqlx::query_as(sql)
            .bind(now)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
        for (id, patient_id, stage, owner_role, backup_role, due_at, version, org_id) in rows {
            Acting::new(&mut tx, crate::api::SOURCE, ACTOR)
                .emit(Change {
                    // The organization that owns the loop (the sender, or who placed the order).
                    org_id: org_id.unwrap_or_default(),
                    patient_id,
                    aggregate_id: id,
                    aggregate_version: version,
                    payload: Payload::LoopOverdue(LoopOverdue {
                        loop_kind: kind as i32,
                        loop_id: id.to_string(),
                        stage,
                        owner_role,
                        backup_role,
                        due_at: careloop_runtime::time::opt_timestamp(due_at),
                    }),
                })
                .await?;
            reported += 1;
        }
    }
    tx.commit().await?;
    Ok(reported)
}

/// Sweeps every `interval` until the service stops.
pub fn schedule(background: &mut Background, pool: PgPool, interval: Duration) {
    background.sweep_every(
        interval,
        "overdue referrals, orders and results",
        move || {
            let pool = pool.clone();
            async move { sweep_overdue(&pool, Utc::now(), 500).await }
        },
    );
}

#[cfg(test)]
mod tests {
    use crate::domain::{order, referral};
    use careloop_runtime::db::quoted_list;

    #[test]
    fn the_sweeps_skip_exactly_the_closed_statuses() {
        let closed: Vec<&str> = referral::Status::ALL
            .into_iter()
            .filter(|s| !s.is_open())
            .map(referral::Status::as_str)
            .collect();
        assert_eq!(quoted_list(super::REFERRALS, "status NOT IN ("), closed);
        let closed: Vec<&str> = order::Status::ALL
            .into_iter()
            .filter(|s| !s.is_open())
            .map(order::Status::as_str)
            .collect();
        assert_eq!(quoted_list(super::ORDERS, "status NOT IN ("), closed);
    }
}
