//! The append-only audit log: who, which org, which patient, what action, outcome, when.
//! Successful writes are audited inside the same transaction as the change; reads and refusals
//! are audited on their own.

use crate::auth::Principal;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Denied,
    /// A retried write answered with its first response, after access was checked again.
    Replayed,
    /// Forwarded and refused or failed by the owning service (the gateway's record of a call the
    /// owning service answered with an error; the owning service keeps its own reason).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Denied => "denied",
            Self::Replayed => "replayed",
            Self::Failed => "failed",
        }
    }
}

pub struct AuditEntry<'a> {
    pub principal: &'a Principal,
    pub action: &'static str,
    pub patient_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub outcome: Outcome,
}

pub async fn record(conn: &mut PgConnection, entry: AuditEntry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (subject, org_id, principal_kind, patient_id, action, target_id, outcome, issuer, via_service, trace_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&entry.principal.subject)
    .bind(entry.principal.org_id)
    .bind(entry.principal.kind.as_str())
    .bind(entry.patient_id)
    .bind(entry.action)
    .bind(entry.target_id)
    .bind(entry.outcome.as_str())
    .bind(&entry.principal.issuer)
    .bind(entry.principal.via.as_deref())
    .bind(crate::telemetry::current_trace_id())
    .execute(conn)
    .await?;
    Ok(())
}

/// Audits one read of each patient in a cross-patient list, in one statement.
pub async fn record_reads(
    conn: &mut PgConnection,
    principal: &Principal,
    action: &'static str,
    patient_ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    if patient_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO audit_log (subject, org_id, principal_kind, patient_id, action, outcome, issuer, via_service, trace_id)
         SELECT $1, $2, $3, p, $4, 'ok', $6, $7, $8 FROM unnest($5::uuid[]) AS p",
    )
    .bind(&principal.subject)
    .bind(principal.org_id)
    .bind(principal.kind.as_str())
    .bind(action)
    .bind(patient_ids)
    .bind(&principal.issuer)
    .bind(principal.via.as_deref())
    .bind(crate::telemetry::current_trace_id())
    .execute(conn)
    .await?;
    Ok(())
}

/// Audits one decision per patient in one statement: `allowed` as ok, `refused` as denied.
pub async fn record_many(
    conn: &mut PgConnection,
    principal: &Principal,
    action: &'static str,
    allowed: &[Uuid],
    refused: &[Uuid],
) -> Result<(), sqlx::Error> {
    if allowed.is_empty() && refused.is_empty() {
        return Ok(());
    }
    let outcomes: Vec<&str> = allowed
        .iter()
        .map(|_| Outcome::Ok.as_str())
        .chain(refused.iter().map(|_| Outcome::Denied.as_str()))
        .collect();
    let patients: Vec<Uuid> = allowed.iter().chain(refused).copied().collect();
    sqlx::query(
        "INSERT INTO audit_log (subject, org_id, principal_kind, patient_id, action, outcome, issuer, via_service, trace_id)
         SELECT $1, $2, $3, p, $4, o, $7, $8, $9 FROM unnest($5::uuid[], $6::text[]) AS t(p, o)",
    )
    .bind(&principal.subject)
    .bind(principal.org_id)
    .bind(principal.kind.as_str())
    .bind(action)
    .bind(&patients)
    .bind(&outcomes)
    .bind(&principal.issuer)
    .bind(principal.via.as_deref())
    .bind(crate::telemetry::current_trace_id())
    .execute(conn)
    .await?;
    Ok(())
}
