//! SQL for the referrals schema.

use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::paging::Cursor;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Clone, FromRow)]
pub struct ReferralRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub from_org_id: Uuid,
    pub from_clinician: String,
    pub to_org_id: Option<Uuid>,
    pub to_specialty: String,
    pub service_type: String,
    pub reason: String,
    pub urgency: i32,
    pub owner_role: i32,
    pub clinical_context: String,
    pub status: String,
    pub stage_due_at: Option<DateTime<Utc>>,
    pub overdue_stage: Option<String>,
    pub appointment_at: Option<DateTime<Utc>>,
    pub location: String,
    pub reschedule_count: i32,
    pub status_reason: String,
    pub note_reference: String,
    pub source_rule_id: Option<Uuid>,
    pub source_event_id: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct TimelineRow {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub from_status: String,
    pub to_status: String,
    pub reason: String,
}

/// Inserts a referral; false when a pathway already created it for this event.
pub async fn insert_referral(conn: &mut PgConnection, r: &ReferralRow) -> ApiResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO referrals (id, patient_id, from_org_id, from_clinician, to_org_id, to_specialty, service_type,
                reason, urgency, owner_role, clinical_context, status, stage_due_at, appointment_at, location,
                reschedule_count, status_reason, note_reference, source_rule_id, source_event_id, version,
                created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
                 $22, $23)
         ON CONFLICT (source_rule_id, source_event_id) WHERE source_rule_id IS NOT NULL DO NOTHING",
    )
    .bind(r.id)
    .bind(r.patient_id)
    .bind(r.from_org_id)
    .bind(&r.from_clinician)
    .bind(r.to_org_id)
    .bind(&r.to_specialty)
    .bind(&r.service_type)
    .bind(&r.reason)
    .bind(r.urgency)
    .bind(r.owner_role)
    .bind(&r.clinical_context)
    .bind(&r.status)
    .bind(r.stage_due_at)
    .bind(r.appointment_at)
    .bind(&r.location)
    .bind(r.reschedule_count)
    .bind(&r.status_reason)
    .bind(&r.note_reference)
    .bind(r.source_rule_id)
    .bind(r.source_event_id)
    .bind(r.version)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

pub async fn referral(conn: &mut PgConnection, id: Uuid) -> ApiResult<ReferralRow> {
    sqlx::query_as("SELECT * FROM referrals WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("referral"))
}

pub async fn lock_referral(
    conn: &mut PgConnection,
    id: Uuid,
    expected_version: i64,
) -> ApiResult<ReferralRow> {
    careloop_runtime::db::lock_versioned(conn, "referrals", "referral", id, Some(expected_version))
        .await
}

pub async fn save_referral(conn: &mut PgConnection, r: &ReferralRow) -> ApiResult<()> {
    sqlx::query(
        "UPDATE referrals SET overdue_stage = NULL, status = $2, stage_due_at = $3, appointment_at = $4, location = $5,
                reschedule_count = $6, status_reason = $7, note_reference = $8, version = $9, updated_at = $10
         WHERE id = $1",
    )
    .bind(r.id)
    .bind(&r.status)
    .bind(r.stage_due_at)
    .bind(r.appointment_at)
    .bind(&r.location)
    .bind(r.reschedule_count)
    .bind(&r.status_reason)
    .bind(&r.note_reference)
    .bind(r.version)
    .bind(r.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn add_timeline(
    conn: &mut PgConnection,
    referral_id: Uuid,
    actor: &str,
    from: &str,
    to: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO referral_timeline (referral_id, at, actor, from_status, to_status, reason)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(referral_id)
    .bind(at)
    .bind(actor)
    .bind(from)
    .bind(to)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn timeline(conn: &mut PgConnection, referral_id: Uuid) -> ApiResult<Vec<TimelineRow>> {
    Ok(sqlx::query_as(
        "SELECT at, actor, from_status, to_status, reason FROM referral_timeline WHERE referral_id = $1 ORDER BY id",
    )
    .bind(referral_id)
    .fetch_all(conn)
    .await?)
}

// ---------- orders ----------

#[derive(Debug, Clone, FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    /// The organization that placed it (owns the follow-up); `None` for older rows.
    pub org_id: Option<Uuid>,
    pub kind: String,
    pub test_code: String,
    pub description: String,
    pub setting: i32,
    pub owner_role: i32,
    pub due_at: Option<DateTime<Utc>>,
    pub overdue_stage: Option<String>,
    pub status: String,
    pub status_reason: String,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub home_health: bool,
    pub duplicate_override_reason: String,
    pub source_rule_id: Option<Uuid>,
    pub source_event_id: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Inserts an order; false when a pathway already created it for this event.
pub async fn insert_order(conn: &mut PgConnection, o: &OrderRow) -> ApiResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO orders (id, patient_id, kind, test_code, description, setting, owner_role, due_at, status,
                status_reason, scheduled_at, window_start, window_end, home_health, duplicate_override_reason,
                source_rule_id, source_event_id, version, created_at, updated_at, org_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
         ON CONFLICT (source_rule_id, source_event_id) WHERE source_rule_id IS NOT NULL DO NOTHING",
    )
    .bind(o.id)
    .bind(o.patient_id)
    .bind(&o.kind)
    .bind(&o.test_code)
    .bind(&o.description)
    .bind(o.setting)
    .bind(o.owner_role)
    .bind(o.due_at)
    .bind(&o.status)
    .bind(&o.status_reason)
    .bind(o.scheduled_at)
    .bind(o.window_start)
    .bind(o.window_end)
    .bind(o.home_health)
    .bind(&o.duplicate_override_reason)
    .bind(o.source_rule_id)
    .bind(o.source_event_id)
    .bind(o.version)
    .bind(o.created_at)
    .bind(o.updated_at)
    .bind(o.org_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

pub async fn order(conn: &mut PgConnection, id: Uuid) -> ApiResult<OrderRow> {
    sqlx::query_as("SELECT * FROM orders WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("order"))
}

pub async fn lock_order(
    conn: &mut PgConnection,
    id: Uuid,
    expected_version: Option<i64>,
) -> ApiResult<OrderRow> {
    careloop_runtime::db::lock_versioned(conn, "orders", "order", id, expected_version).await
}

pub async fn save_order(conn: &mut PgConnection, o: &OrderRow) -> ApiResult<()> {
    sqlx::query(
        "UPDATE orders SET overdue_stage = NULL, status = $2, status_reason = $3, due_at = $4, scheduled_at = $5, window_start = $6,
                window_end = $7, home_health = $8, version = $9, updated_at = $10
         WHERE id = $1",
    )
    .bind(o.id)
    .bind(&o.status)
    .bind(&o.status_reason)
    .bind(o.due_at)
    .bind(o.scheduled_at)
    .bind(o.window_start)
    .bind(o.window_end)
    .bind(o.home_health)
    .bind(o.version)
    .bind(o.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The most recent order of the same test for the patient within the window, with its latest result.
pub async fn recent_same_test(
    conn: &mut PgConnection,
    patient_id: Uuid,
    test_code: &str,
    since: DateTime<Utc>,
) -> ApiResult<Option<(Uuid, DateTime<Utc>, Option<Uuid>)>> {
    Ok(sqlx::query_as(
        "SELECT o.id, o.created_at,
                (SELECT r.id FROM results r WHERE r.order_id = o.id ORDER BY r.received_at DESC LIMIT 1)
         FROM orders o
         WHERE o.patient_id = $1 AND o.test_code = $2 AND o.kind IN ('lab', 'imaging')
           AND o.status <> 'cancelled' AND o.created_at >= $3
         ORDER BY o.created_at DESC LIMIT 1",
    )
    .bind(patient_id)
    .bind(test_code)
    .bind(since)
    .fetch_optional(conn)
    .await?)
}

/// Serializes duplicate checks for one patient and test inside the caller's transaction.
pub async fn lock_test(
    conn: &mut PgConnection,
    patient_id: Uuid,
    test_code: &str,
) -> ApiResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("dup:{patient_id}:{test_code}"))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn results_summary(conn: &mut PgConnection, order_id: Uuid) -> ApiResult<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE status = 'routed' AND flag <> 'normal') FROM results WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_one(conn)
    .await?)
}

// ---------- results ----------

#[derive(Debug, Clone, FromRow)]
pub struct ResultRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub patient_id: Uuid,
    /// The organization that placed the order.
    pub org_id: Option<Uuid>,
    pub flag: String,
    pub code: String,
    pub summary: String,
    pub routed_to_role: i32,
    pub backup_role: i32,
    pub due_at: Option<DateTime<Utc>>,
    pub overdue_stage: Option<String>,
    pub status: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub action_taken: String,
    pub version: i64,
    pub received_at: DateTime<Utc>,
}

pub async fn insert_result(conn: &mut PgConnection, r: &ResultRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO results (id, order_id, patient_id, flag, code, summary, routed_to_role, backup_role, due_at,
                status, action_taken, version, received_at, org_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(r.id)
    .bind(r.order_id)
    .bind(r.patient_id)
    .bind(&r.flag)
    .bind(&r.code)
    .bind(&r.summary)
    .bind(r.routed_to_role)
    .bind(r.backup_role)
    .bind(r.due_at)
    .bind(&r.status)
    .bind(&r.action_taken)
    .bind(r.version)
    .bind(r.received_at)
    .bind(r.org_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn result(conn: &mut PgConnection, id: Uuid) -> ApiResult<ResultRow> {
    sqlx::query_as("SELECT * FROM results WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("result"))
}

pub async fn lock_result(
    conn: &mut PgConnection,
    id: Uuid,
    expected_version: i64,
) -> ApiResult<ResultRow> {
    careloop_runtime::db::lock_versioned(conn, "results", "result", id, Some(expected_version))
        .await
}

pub async fn acknowledge_result(conn: &mut PgConnection, r: &ResultRow) -> ApiResult<()> {
    sqlx::query(
        "UPDATE results SET status = $2, acknowledged_by = $3, acknowledged_at = $4, action_taken = $5, version = $6
         WHERE id = $1",
    )
    .bind(r.id)
    .bind(&r.status)
    .bind(&r.acknowledged_by)
    .bind(r.acknowledged_at)
    .bind(&r.action_taken)
    .bind(r.version)
    .execute(conn)
    .await?;
    Ok(())
}

// ---------- open loops ----------

#[derive(Debug, Clone, FromRow)]
pub struct LoopRow {
    pub kind: i32,
    pub id: Uuid,
    pub patient_id: Uuid,
    pub status: String,
    pub owner_role: i32,
    pub backup_role: i32,
    pub due_at: Option<DateTime<Utc>>,
    pub label: String,
}

pub enum LoopFilter {
    Patient(Uuid),
    Role(i32),
    Status(String),
}

/// Open loops ordered by due time (overdue ones come first since they are due earliest), keyset
/// paged. Loops without a due time sort last.
pub async fn open_loops(
    conn: &mut PgConnection,
    filter: &LoopFilter,
    after: Option<Cursor>,
    limit: i64,
) -> ApiResult<Vec<LoopRow>> {
    let far = careloop_runtime::paging::far_future();
    let (after_at, after_id) = careloop_runtime::paging::after(after);
    let base = "SELECT kind, id, patient_id, status, owner_role, backup_role, due_at, label FROM open_loops
                WHERE (coalesce(due_at, $1), id) > ($2, $3) AND ";
    let (sql, value): (String, FilterValue) = match filter {
        LoopFilter::Patient(p) => (format!("{base} patient_id = $4"), FilterValue::Uuid(*p)),
        LoopFilter::Role(r) => (
            format!("{base} (owner_role = $4 OR backup_role = $4)"),
            FilterValue::Int(*r),
        ),
        LoopFilter::Status(s) => (format!("{base} status = $4"), FilterValue::Text(s.clone())),
    };
    let sql = format!("{sql} ORDER BY coalesce(due_at, $1), id LIMIT $5");
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(far)
        .bind(after_at)
        .bind(after_id);
    let query = match value {
        FilterValue::Uuid(v) => query.bind(v),
        FilterValue::Int(v) => query.bind(v),
        FilterValue::Text(v) => query.bind(v),
    };
    Ok(query.bind(limit).fetch_all(conn).await?)
}

enum FilterValue {
    Uuid(Uuid),
    Int(i32),
    Text(String),
}

/// The sort key of a loop row, for the next page token.
pub fn loop_cursor(row: &LoopRow) -> Cursor {
    Cursor {
        at: row
            .due_at
            .unwrap_or_else(careloop_runtime::paging::far_future),
        id: row.id,
    }
}

// ---------- pathway rules ----------

#[derive(Debug, Clone, FromRow)]
pub struct RuleRow {
    pub id: Uuid,
    pub name: String,
    pub event_type: String,
    pub conditions: Json<HashMap<String, String>>,
    pub action: String,
    pub order_kind: Option<String>,
    pub service_type: String,
    pub owner_role: i32,
    pub due_in_minutes: i32,
    pub enabled: bool,
    pub version: i64,
    /// The owning organization; `None` for a platform default.
    pub org_id: Option<Uuid>,
}

pub async fn insert_rule(conn: &mut PgConnection, r: &RuleRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO pathway_rules (id, name, event_type, conditions, action, order_kind, service_type, owner_role,
                due_in_minutes, enabled, version, org_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(r.id)
    .bind(&r.name)
    .bind(&r.event_type)
    .bind(&r.conditions)
    .bind(&r.action)
    .bind(&r.order_kind)
    .bind(&r.service_type)
    .bind(r.owner_role)
    .bind(r.due_in_minutes)
    .bind(r.enabled)
    .bind(r.version)
    .bind(r.org_id)
    .execute(conn)
    .await?;
    Ok(())
}

const RULE_COLUMNS: &str = "id, name, event_type, conditions, action, order_kind, service_type, owner_role, due_in_minutes, enabled, version, org_id";

/// The rules `org` sees: its own and the platform defaults (`None`: every rule, for services).
pub async fn rules(conn: &mut PgConnection, org: Option<Uuid>) -> ApiResult<Vec<RuleRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM pathway_rules
          WHERE $1::uuid IS NULL OR org_id IS NULL OR org_id = $1
          ORDER BY created_at, id"
    )))
    .bind(org)
    .fetch_all(conn)
    .await?)
}

/// Remembers which organization manages a patient (from plans' patient.created).
pub async fn remember_patient_org(
    conn: &mut PgConnection,
    patient_id: Uuid,
    managing_org_id: Uuid,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO patient_orgs (patient_id, managing_org_id) VALUES ($1, $2)
         ON CONFLICT (patient_id) DO NOTHING",
    )
    .bind(patient_id)
    .bind(managing_org_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn patient_org(conn: &mut PgConnection, patient_id: Uuid) -> ApiResult<Option<Uuid>> {
    let found: Option<(Uuid,)> =
        sqlx::query_as("SELECT managing_org_id FROM patient_orgs WHERE patient_id = $1")
            .bind(patient_id)
            .fetch_optional(conn)
            .await?;
    Ok(found.map(|(org,)| org))
}

pub async fn enabled_rules_for(
    conn: &mut PgConnection,
    event_type: &str,
) -> ApiResult<Vec<RuleRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM pathway_rules WHERE enabled AND event_type = $1 ORDER BY created_at, id"
    )))
    .bind(event_type)
    .fetch_all(conn)
    .await?)
}

/// Locks a rule (its version is checked by the caller, after access).
pub async fn lock_rule(conn: &mut PgConnection, id: Uuid) -> ApiResult<RuleRow> {
    let row: RuleRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM pathway_rules WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(ApiError::NotFound("pathway rule"))?;
    Ok(row)
}

pub async fn save_rule_enabled(
    conn: &mut PgConnection,
    id: Uuid,
    enabled: bool,
    version: i64,
) -> ApiResult<()> {
    sqlx::query("UPDATE pathway_rules SET enabled = $2, version = $3 WHERE id = $1")
        .bind(id)
        .bind(enabled)
        .bind(version)
        .execute(conn)
        .await?;
    Ok(())
}

careloop_runtime::versioned!(ReferralRow, OrderRow, ResultRow);
