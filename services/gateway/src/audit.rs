//! The gateway's own audit trail (its schema's append-only `audit_log`): every call that touches a
//! patient, who made it (issuer, organization, subject, kind), the patient or record, and the
//! outcome; refusals at the door too. The owning services keep their own trail of the same calls,
//! made for the same user (on-behalf-of).

use careloop_runtime::audit::{AuditEntry, Outcome};
use careloop_runtime::auth::Principal;
use careloop_runtime::error::{ApiError, ApiResult};
use sqlx::PgPool;
use uuid::Uuid;

/// Records one call; an audit that cannot be written fails the call (nothing touches a patient
/// unrecorded).
pub async fn record(
    pool: &PgPool,
    who: &Principal,
    action: &'static str,
    patient_id: Option<Uuid>,
    target_id: Option<Uuid>,
    outcome: Outcome,
) -> ApiResult<()> {
    let mut conn = pool.acquire().await.map_err(ApiError::from)?;
    careloop_runtime::audit::record(
        &mut conn,
        AuditEntry {
            principal: who,
            action,
            patient_id,
            target_id,
            outcome,
        },
    )
    .await
    .map_err(ApiError::from)
}

/// Records the patients a list showed, one row each.
pub async fn reads(
    pool: &PgPool,
    who: &Principal,
    action: &'static str,
    patients: &[Uuid],
) -> ApiResult<()> {
    if patients.is_empty() {
        return Ok(());
    }
    let mut conn = pool.acquire().await.map_err(ApiError::from)?;
    careloop_runtime::audit::record_reads(&mut conn, who, action, patients)
        .await
        .map_err(ApiError::from)
}

/// A refusal at the door (scope or rate limit); logged, never failing the refusal itself.
pub async fn refusal(pool: &PgPool, who: &Principal, action: &'static str) {
    if let Err(error) = record(pool, who, action, None, None, Outcome::Denied).await {
        tracing::warn!(action, error = %error, "refusal not audited");
    }
}
