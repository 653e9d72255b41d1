//! The overdue sweeper of plans' loops: a task past its due time is reported once per stage (its
//! status: requested, accepted, in progress, on hold), a handoff not acknowledged by its
//! acknowledge-by time once, and a transition's required follow-up call still pending at its due
//! time (72 hours after a high-risk discharge) once. Each report marks the row and appends one `plans.loop.overdue` event
//! in the same transaction; replicas run side by side (`FOR UPDATE SKIP LOCKED` and the marks keep
//! every report single), so escalation (notifications) hears of each once.

use careloop_proto::common::v1::{CareRole, LoopKind};
use careloop_proto::events::v1::{LoopOverdue, event::Payload};
use careloop_runtime::events::Background;
use careloop_runtime::write::{Acting, Change};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// Who the overdue reports are audited as.
const ACTOR: &str = "plans-sweeper";

/// How often the sweeper looks.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

#[derive(sqlx::FromRow)]
struct Overdue {
    id: Uuid,
    patient_id: Uuid,
    managing_org_id: Uuid,
    stage: String,
    owner_role: i32,
    backup_role: i32,
    due_at: DateTime<Utc>,
    version: i64,
}

const TASKS: &str = "
UPDATE tasks t SET overdue_stage = t.status, version = t.version + 1
  FROM patients p
 WHERE p.id = t.patient_id
   AND t.id IN (
       SELECT id FROM tasks
        WHERE status IN ('requested', 'accepted', 'in_progress', 'on_hold')
          AND due_at < $1 AND overdue_stage IS DISTINCT FROM status
        ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
   AND t.overdue_stage IS DISTINCT FROM t.status
RETURNING t.id, t.patient_id, p.managing_org_id, t.status AS stage, t.owner_role, t.backup_role,
          t.due_at, t.version";

const HANDOFFS: &str = "
UPDATE handoffs h SET overdue_reported_at = $1, version = h.version + 1
  FROM patients p
 WHERE p.id = h.patient_id
   AND h.id IN (
       SELECT id FROM handoffs
        WHERE acknowledged_at IS NULL AND overdue_reported_at IS NULL AND acknowledge_by < $1
        ORDER BY acknowledge_by LIMIT $2 FOR UPDATE SKIP LOCKED)
   AND h.overdue_reported_at IS NULL
RETURNING h.id, h.patient_id, p.managing_org_id, 'sent' AS stage, h.to_role AS owner_role,
          0 AS backup_role, h.acknowledge_by AS due_at, h.version";

/// The role that owes the post-discharge follow-up call (the transition itself names no owner).
const FOLLOW_UP_OWNER: CareRole = CareRole::Rn;

const FOLLOW_UPS: &str = "
UPDATE transitions t SET follow_up_reported = true, version = t.version + 1
  FROM patients p
 WHERE p.id = t.patient_id
   AND t.id IN (
       SELECT x.id FROM transitions x
        WHERE NOT x.follow_up_reported
          AND EXISTS (SELECT 1 FROM jsonb_array_elements(x.checklist) AS i
                       WHERE i->>'kind' = 'follow_up_call' AND (i->>'required')::boolean
                         AND i->>'state' = 'pending' AND (i->>'due_at')::timestamptz < $1)
        LIMIT $2 FOR UPDATE SKIP LOCKED)
   AND NOT t.follow_up_reported
RETURNING t.id, t.patient_id, p.managing_org_id, 'follow_up_call' AS stage, $3::integer AS owner_role,
          0 AS backup_role,
          (SELECT (item->>'due_at')::timestamptz FROM jsonb_array_elements(t.checklist) AS item
            WHERE item->>'kind' = 'follow_up_call' LIMIT 1) AS due_at,
          t.version";

/// One sweep as of `now`: reports up to `batch` newly overdue tasks, handoffs and follow-up calls;
/// returns how many.
pub async fn sweep_overdue(pool: &PgPool, now: DateTime<Utc>, batch: i64) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let mut reported = 0;
    for (sql, kind) in [
        (TASKS, LoopKind::Task),
        (HANDOFFS, LoopKind::Handoff),
        (FOLLOW_UPS, LoopKind::Transition),
    ] {
        let query = sqlx::query_as::<_, Overdue>(sql).bind(now).bind(batch);
        let query = if kind == LoopKind::Transition {
            query.bind(FOLLOW_UP_OWNER as i32)
        } else {
            query
        };
        let rows: Vec<Overdue> = query.fetch_all(&mut *tx).await?;
        for row in rows {
            Acting::new(&mut tx, crate::api::SOURCE, ACTOR)
                .emit(Change {
                    // The organization that manages the patient: escalation is routed within it.
                    org_id: row.managing_org_id,
                    patient_id: row.patient_id,
                    aggregate_id: row.id,
                    aggregate_version: row.version,
                    payload: Payload::PlansLoopOverdue(LoopOverdue {
                        loop_kind: kind as i32,
                        loop_id: row.id.to_string(),
                        stage: row.stage,
                        owner_role: row.owner_role,
                        backup_role: row.backup_role,
                        due_at: Some(careloop_runtime::time::to_timestamp(row.due_at)),
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
        "overdue tasks, handoffs and follow-up calls",
        move || {
            let pool = pool.clone();
            async move { sweep_overdue(&pool, Utc::now(), 500).await }
        },
    );
}

#[cfg(test)]
mod tests {
    use crate::domain::task::TaskStatus;
    use careloop_runtime::db::quoted_list;

    #[test]
    fn the_task_sweep_watches_exactly_the_open_statuses() {
        let open: Vec<&str> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .map(TaskStatus::as_str)
            .collect();
        assert_eq!(quoted_list(super::TASKS, "status IN ("), open);
    }
}
