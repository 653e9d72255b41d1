//! Sweepers: decisions and appeal decisions past due (reported once per deadline, so an extension or
//! resubmission can be reported again), approvals about to expire (reported once), and updates
//! promised to the patient that did not happen (once per promised time). Replicas run side by side: `FOR
//! UPDATE SKIP LOCKED` and the marks make each report happen once.

use careloop_proto::common::v1::LoopKind;
use careloop_proto::events::v1::{
    LoopOverdue, PriorAuthDecisionOverdue, PriorAuthExpiring, event::Payload,
};
use careloop_runtime::events::Background;
use careloop_runtime::write::{Acting, Change};
use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// Who the deadline reports are audited as.
const ACTOR: &str = "prior-auth-sweeper";

type Due = (Uuid, Uuid, Option<DateTime<Utc>>, i32, i64, Option<Uuid>);

const OVERDUE: &str = "
UPDATE requests r SET overdue_reported_for = r.decision_due_at, version = r.version + 1
WHERE r.id IN (
    SELECT id FROM requests
    WHERE status = 'submitted' AND overdue_reported_for IS DISTINCT FROM decision_due_at AND decision_due_at < $1
    ORDER BY decision_due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
  AND r.overdue_reported_for IS DISTINCT FROM r.decision_due_at
RETURNING r.id, r.patient_id, r.decision_due_at, r.owner_role, r.version, r.org_id";

const APPEAL_OVERDUE: &str = "
UPDATE requests r SET overdue_reported_for = r.due_at, version = r.version + 1
WHERE r.id IN (
    SELECT id FROM requests
    WHERE status = 'appealed' AND overdue_reported_for IS DISTINCT FROM due_at AND due_at < $1
    ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
  AND r.overdue_reported_for IS DISTINCT FROM r.due_at
RETURNING r.id, r.patient_id, r.due_at, r.owner_role, r.version, r.org_id";

const EXPIRING: &str = "
UPDATE requests r SET expiry_reported = true, version = r.version + 1
WHERE r.id IN (
    SELECT id FROM requests
    WHERE status IN ('approved', 'partially_approved', 'appeal_approved') AND NOT expiry_reported AND valid_to < $1
    ORDER BY valid_to LIMIT $2 FOR UPDATE SKIP LOCKED)
  AND NOT r.expiry_reported
RETURNING r.id, r.patient_id, r.valid_to, r.owner_role, r.version, r.org_id";

/// One sweep as of `now`; returns (decisions overdue, approvals expiring) reported.
pub async fn sweep(
    pool: &PgPool,
    now: DateTime<Utc>,
    expiring_within: Duration,
    batch: i64,
) -> anyhow::Result<(usize, usize)> {
    let mut tx = pool.begin().await?;
    let mut overdue: Vec<Due> = sqlx::query_as(OVERDUE)
        .bind(now)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
    let appeals: Vec<Due> = sqlx::query_as(APPEAL_OVERDUE)
        .bind(now)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
    overdue.extend(appeals);
    let expiring: Vec<Due> = sqlx::query_as(EXPIRING)
        .bind(now + expiring_within)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
    let counts = (overdue.len(), expiring.len());
    let events = overdue
        .into_iter()
        .map(|(id, patient, due, role, version, org)| {
            let payload = Payload::PriorAuthDecisionOverdue(PriorAuthDecisionOverdue {
                request_id: id.to_string(),
                decision_due_at: careloop_runtime::time::opt_timestamp(due),
                owner_role: role,
            });
            (id, patient, version, org, payload)
        })
        .chain(
            expiring
                .into_iter()
                .map(|(id, patient, valid_to, role, version, org)| {
                    let payload = Payload::PriorAuthExpiring(PriorAuthExpiring {
                        request_id: id.to_string(),
                        valid_to: careloop_runtime::time::opt_timestamp(valid_to),
                        owner_role: role,
                    });
                    (id, patient, version, org, payload)
                }),
        );
    for (id, patient, version, org, payload) in events {
        Acting::new(&mut tx, crate::api::SOURCE, ACTOR)
            .emit(Change {
                // The organization that owns the request.
                org_id: org.unwrap_or_default(),
                patient_id: patient,
                aggregate_id: id,
                aggregate_version: version,
                payload,
            })
            .await?;
    }
    tx.commit().await?;
    Ok(counts)
}

const UPDATE_MISSED: &str = "
UPDATE requests r SET update_reported_for = r.next_patient_update_at, version = r.version + 1
WHERE r.id IN (
    SELECT id FROM requests
    WHERE status IN ('draft', 'submitted', 'pended', 'denied', 'appealed')
      AND next_patient_update_at < $1
      AND update_reported_for IS DISTINCT FROM next_patient_update_at
    ORDER BY next_patient_update_at LIMIT $2 FOR UPDATE SKIP LOCKED)
  AND r.update_reported_for IS DISTINCT FROM r.next_patient_update_at
RETURNING r.id, r.patient_id, r.next_patient_update_at, r.owner_role, r.version, r.org_id";

/// Reports, once per promised time, open requests whose promised update to the patient passed
/// (DOMAIN: tell the patient when the next update comes, then keep the promise); returns how many.
pub async fn sweep_missed_updates(
    pool: &PgPool,
    now: DateTime<Utc>,
    batch: i64,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let missed: Vec<Due> = sqlx::query_as(UPDATE_MISSED)
        .bind(now)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
    let count = missed.len();
    for (id, patient, due, role, version, org) in missed {
        Acting::new(&mut tx, crate::api::SOURCE, ACTOR)
            .emit(Change {
                org_id: org.unwrap_or_default(),
                patient_id: patient,
                aggregate_id: id,
                aggregate_version: version,
                payload: Payload::PriorAuthUpdateMissed(LoopOverdue {
                    loop_kind: LoopKind::PriorAuth as i32,
                    loop_id: id.to_string(),
                    stage: "next_patient_update".into(),
                    owner_role: role,
                    backup_role: 0,
                    due_at: careloop_runtime::time::opt_timestamp(due),
                }),
            })
            .await?;
    }
    tx.commit().await?;
    Ok(count)
}

/// Sweeps every `interval` until the service stops.
pub fn schedule(
    background: &mut Background,
    pool: PgPool,
    interval: std::time::Duration,
    expiring_within: Duration,
) {
    let deadlines = pool.clone();
    background.sweep_every(
        interval,
        "overdue decisions and expiring approvals",
        move || {
            let pool = deadlines.clone();
            async move {
                let (overdue, expiring) = sweep(&pool, Utc::now(), expiring_within, 500).await?;
                Ok(overdue + expiring)
            }
        },
    );
    background.sweep_every(interval, "missed patient updates", move || {
        let pool = pool.clone();
        async move { sweep_missed_updates(&pool, Utc::now(), 500).await }
    });
}

#[cfg(test)]
mod tests {
    use crate::domain::status::Status;
    use careloop_runtime::db::quoted_list;

    #[test]
    fn a_missed_update_is_watched_on_exactly_the_open_statuses() {
        let open: Vec<&str> = Status::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .map(Status::as_str)
            .collect();
        assert_eq!(quoted_list(super::UPDATE_MISSED, "status IN ("), open);
    }
}
