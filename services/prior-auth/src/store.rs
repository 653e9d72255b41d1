//! SQL for the prior_auth schema.

use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::paging::Cursor;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub code: String,
    pub quantity: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    pub notes_summary: String,
    pub medications: Vec<String>,
    pub prior_treatments: Vec<String>,
    pub attachment_refs: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionJson {
    pub authorization_number: String,
    pub items: Vec<Line>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub denial_reason_code: String,
    pub denial_reason_text: String,
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionJson {
    pub reason: String,
    pub previous_due_at: Option<DateTime<Utc>>,
    pub new_due_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct RequestRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    /// The organization that created it (owns the loop); `None` for older rows.
    pub org_id: Option<Uuid>,
    pub linked_kind: i32,
    pub linked_id: String,
    pub payer_id: String,
    pub plan_member_id: String,
    pub service_lines: Json<Vec<Line>>,
    pub diagnosis_codes: Vec<String>,
    pub urgency: i32,
    pub urgency_reason: String,
    pub packet: Json<Packet>,
    pub owner_role: i32,
    pub next_action: String,
    pub next_patient_update_at: Option<DateTime<Utc>>,
    pub status: String,
    pub due_at: Option<DateTime<Utc>>,
    pub first_submitted_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub decision_due_at: Option<DateTime<Utc>>,
    pub overdue_reported_for: Option<DateTime<Utc>>,
    pub extensions: Json<Vec<ExtensionJson>>,
    pub information_requested: String,
    pub decision: Option<Json<DecisionJson>>,
    pub appeal_reason: String,
    pub appeal_decision: Option<Json<DecisionJson>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub expiry_reported: bool,
    pub status_reason: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, r: &RequestRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO requests (id, patient_id, linked_kind, linked_id, payer_id, plan_member_id, service_lines,
                diagnosis_codes, urgency, urgency_reason, packet, owner_role, next_action, next_patient_update_at,
                status, due_at, version, created_at, updated_at, org_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(r.id)
    .bind(r.patient_id)
    .bind(r.linked_kind)
    .bind(&r.linked_id)
    .bind(&r.payer_id)
    .bind(&r.plan_member_id)
    .bind(&r.service_lines)
    .bind(&r.diagnosis_codes)
    .bind(r.urgency)
    .bind(&r.urgency_reason)
    .bind(&r.packet)
    .bind(r.owner_role)
    .bind(&r.next_action)
    .bind(r.next_patient_update_at)
    .bind(&r.status)
    .bind(r.due_at)
    .bind(r.version)
    .bind(r.created_at)
    .bind(r.updated_at)
    .bind(r.org_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> ApiResult<RequestRow> {
    sqlx::query_as("SELECT * FROM requests WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("prior authorization request"))
}

pub async fn lock(
    conn: &mut PgConnection,
    id: Uuid,
    expected_version: i64,
) -> ApiResult<RequestRow> {
    careloop_runtime::db::lock_versioned(
        conn,
        "requests",
        "prior authorization request",
        id,
        Some(expected_version),
    )
    .await
}

/// Writes every mutable column back.
pub async fn save(conn: &mut PgConnection, r: &RequestRow) -> ApiResult<()> {
    sqlx::query(
        "UPDATE requests SET linked_kind = $2, linked_id = $3, payer_id = $4, plan_member_id = $5, service_lines = $6,
                diagnosis_codes = $7, urgency = $8, urgency_reason = $9, packet = $10, owner_role = $11,
                next_action = $12, next_patient_update_at = $13, status = $14, due_at = $15,
                first_submitted_at = $16, submitted_at = $17, decision_due_at = $18, extensions = $19,
                information_requested = $20, decision = $21, appeal_reason = $22, appeal_decision = $23,
                valid_to = $24, status_reason = $25, version = $26, updated_at = $27
         WHERE id = $1",
    )
    .bind(r.id)
    .bind(r.linked_kind)
    .bind(&r.linked_id)
    .bind(&r.payer_id)
    .bind(&r.plan_member_id)
    .bind(&r.service_lines)
    .bind(&r.diagnosis_codes)
    .bind(r.urgency)
    .bind(&r.urgency_reason)
    .bind(&r.packet)
    .bind(r.owner_role)
    .bind(&r.next_action)
    .bind(r.next_patient_update_at)
    .bind(&r.status)
    .bind(r.due_at)
    .bind(r.first_submitted_at)
    .bind(r.submitted_at)
    .bind(r.decision_due_at)
    .bind(&r.extensions)
    .bind(&r.information_requested)
    .bind(&r.decision)
    .bind(&r.appeal_reason)
    .bind(&r.appeal_decision)
    .bind(r.valid_to)
    .bind(&r.status_reason)
    .bind(r.version)
    .bind(r.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub enum Filter {
    Patient(Uuid),
    Status(String),
    OwnerRole(i32),
    Payer(String),
}

/// Requests ordered by due time (overdue first; no due time last), keyset paged.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    after: Option<Cursor>,
    limit: i64,
) -> ApiResult<Vec<RequestRow>> {
    let far = careloop_runtime::paging::far_future();
    let (after_at, after_id) = careloop_runtime::paging::after(after);
    let condition = match filter {
        Filter::Patient(_) => "patient_id = $4",
        Filter::Status(_) => "status = $4",
        Filter::OwnerRole(_) => {
            "owner_role = $4 AND status IN ('draft', 'submitted', 'pended', 'denied', 'appealed')"
        }
        Filter::Payer(_) => "payer_id = $4",
    };
    let sql = format!(
        "SELECT * FROM requests WHERE (coalesce(due_at, $1), id) > ($2, $3) AND {condition}
         ORDER BY coalesce(due_at, $1), id LIMIT $5"
    );
    let q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(far)
        .bind(after_at)
        .bind(after_id);
    let q = match filter {
        Filter::Patient(p) => q.bind(*p),
        Filter::Status(s) => q.bind(s.clone()),
        Filter::OwnerRole(r) => q.bind(*r),
        Filter::Payer(p) => q.bind(p.clone()),
    };
    Ok(q.bind(limit).fetch_all(conn).await?)
}

careloop_runtime::versioned!(RequestRow);
