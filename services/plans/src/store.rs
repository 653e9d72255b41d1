//! SQL for the plans schema. Rows come back as plain structs; the api turns them into protos.

use crate::domain::access::{ConsentFact, Facts, TeamFact};
use crate::domain::transition::ChecklistItem;
use careloop_runtime::error::{ApiError, ApiResult, is_unique_violation};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

/// The open task statuses, as SQL; a macro so queries stay `&'static str` literals.
macro_rules! open_task_statuses {
    () => {
        "('requested', 'accepted', 'in_progress', 'on_hold')"
    };
}

#[derive(Debug, Clone, FromRow)]
pub struct PatientRow {
    pub id: Uuid,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: NaiveDate,
    pub managing_org_id: Uuid,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_patient(conn: &mut PgConnection, p: &PatientRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO patients (id, mrn, given_name, family_name, birth_date, managing_org_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(p.id)
    .bind(&p.mrn)
    .bind(&p.given_name)
    .bind(&p.family_name)
    .bind(p.birth_date)
    .bind(p.managing_org_id)
    .bind(p.created_at)
    .execute(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "patients_org_mrn_unique") {
            ApiError::AlreadyExists("patient with this mrn")
        } else {
            e.into()
        }
    })?;
    Ok(())
}

pub async fn patient(conn: &mut PgConnection, id: Uuid) -> ApiResult<PatientRow> {
    sqlx::query_as("SELECT * FROM patients WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("patient"))
}

pub async fn patient_by_mrn(
    conn: &mut PgConnection,
    org: Uuid,
    mrn: &str,
) -> ApiResult<PatientRow> {
    sqlx::query_as("SELECT * FROM patients WHERE managing_org_id = $1 AND mrn = $2")
        .bind(org)
        .bind(mrn)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("patient"))
}

/// Family caregivers on the patient's active team with an active consent now (family involvement
/// or treatment) and a contact address: (member, channel, address, consent).
pub async fn consented_caregivers(
    conn: &mut PgConnection,
    patient_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<Vec<(Uuid, i32, String, Uuid)>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (m.id) m.id, m.contact_channel, m.contact_address, c.id
           FROM care_team_members m
           JOIN consents c ON c.grantee_member_id = m.id
          WHERE m.patient_id = $1 AND m.removed_at IS NULL AND m.role = $2
            AND m.contact_address <> ''
            AND c.status = 'active' AND c.purpose IN ($3, $4)
            AND c.period_start <= $5 AND (c.period_end IS NULL OR c.period_end > $5)
          ORDER BY m.id, c.granted_at",
    )
    .bind(patient_id)
    .bind(careloop_proto::common::v1::CareRole::FamilyCaregiver as i32)
    .bind(careloop_proto::plans::v1::ConsentPurpose::FamilyInvolvement as i32)
    .bind(careloop_proto::plans::v1::ConsentPurpose::Treatment as i32)
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// The organization that manages the patient.
pub async fn managing_org(conn: &mut PgConnection, patient_id: Uuid) -> ApiResult<Uuid> {
    sqlx::query_scalar("SELECT managing_org_id FROM patients WHERE id = $1")
        .bind(patient_id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("patient"))
}

/// Everything the access decision needs about one patient.
pub async fn access_facts(conn: &mut PgConnection, patient_id: Uuid) -> ApiResult<Facts> {
    access_facts_many(conn, &[patient_id])
        .await?
        .remove(&patient_id)
        .ok_or(ApiError::NotFound("patient"))
}

/// The access facts of many patients in three queries; patients that do not exist are absent.
pub async fn access_facts_many(
    conn: &mut PgConnection,
    patient_ids: &[Uuid],
) -> ApiResult<std::collections::HashMap<Uuid, Facts>> {
    let managing: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT id, managing_org_id FROM patients WHERE id = ANY($1)")
            .bind(patient_ids)
            .fetch_all(&mut *conn)
            .await?;
    let mut facts: std::collections::HashMap<Uuid, Facts> = managing
        .into_iter()
        .map(|(id, managing_org_id)| {
            (
                id,
                Facts {
                    managing_org_id,
                    team: vec![],
                    consents: vec![],
                },
            )
        })
        .collect();
    if facts.is_empty() {
        return Ok(facts);
    }
    #[derive(FromRow)]
    struct Member {
        patient_id: Uuid,
        id: Uuid,
        organization_id: Option<Uuid>,
        subject: Option<String>,
        subject_issuer: Option<String>,
        is_lead: bool,
    }
    let team: Vec<Member> = sqlx::query_as(
        "SELECT patient_id, id, organization_id, subject, subject_issuer, is_lead FROM care_team_members
          WHERE patient_id = ANY($1) AND removed_at IS NULL",
    )
    .bind(patient_ids)
    .fetch_all(&mut *conn)
    .await?;
    for m in team {
        if let Some(f) = facts.get_mut(&m.patient_id) {
            f.team.push(TeamFact {
                member_id: m.id,
                organization_id: m.organization_id,
                subject: m.subject,
                subject_issuer: m.subject_issuer,
                is_lead: m.is_lead,
            });
        }
    }
    let consents: Vec<ConsentRow> =
        sqlx::query_as("SELECT * FROM consents WHERE patient_id = ANY($1) ORDER BY granted_at, id")
            .bind(patient_ids)
            .fetch_all(&mut *conn)
            .await?;
    for c in consents {
        if let Some(f) = facts.get_mut(&c.patient_id) {
            f.consents.push(ConsentFact {
                id: c.id,
                grantee_member_id: c.grantee_member_id,
                grantee_org_id: c.grantee_org_id,
                write: c.scope == careloop_proto::plans::v1::ConsentScope::ReadWrite as i32,
                active: c.status == "active",
                period_start: c.period_start,
                period_end: c.period_end,
            });
        }
    }
    Ok(facts)
}

// ---------- care plan and team ----------

#[derive(Debug, Clone, FromRow)]
pub struct PlanRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub content: Vec<u8>,
    pub reconciled_by: Option<String>,
    pub reconciled_by_role: Option<i32>,
    pub reconciled_at: Option<DateTime<Utc>>,
    pub reconcile_note: Option<String>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub kind: i32,
    pub display_name: String,
    pub role: i32,
    pub organization_id: Option<Uuid>,
    pub subject: Option<String>,
    pub subject_issuer: Option<String>,
    pub contact_channel: i32,
    pub contact_address: String,
    pub is_lead: bool,
    pub added_at: DateTime<Utc>,
}

pub async fn insert_plan(conn: &mut PgConnection, plan: &PlanRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO care_plans (id, patient_id, content, version, updated_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(plan.id)
    .bind(plan.patient_id)
    .bind(&plan.content)
    .bind(plan.version)
    .bind(plan.updated_at)
    .bind(&plan.updated_by)
    .execute(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "care_plans_patient_unique") {
            ApiError::AlreadyExists("care plan for this patient")
        } else {
            e.into()
        }
    })?;
    Ok(())
}

pub async fn plan(conn: &mut PgConnection, patient_id: Uuid) -> ApiResult<PlanRow> {
    sqlx::query_as("SELECT * FROM care_plans WHERE patient_id = $1")
        .bind(patient_id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("care plan"))
}

/// Locks the plan row and checks the caller's version; the lock serializes every plan edit.
pub async fn lock_plan(
    conn: &mut PgConnection,
    patient_id: Uuid,
    expected_version: i64,
) -> ApiResult<PlanRow> {
    let plan: PlanRow = sqlx::query_as("SELECT * FROM care_plans WHERE patient_id = $1 FOR UPDATE")
        .bind(patient_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(ApiError::NotFound("care plan"))?;
    ApiError::ensure_version(plan.version, expected_version)?;
    Ok(plan)
}

/// Writes new content (and optionally a reconciliation stamp) and bumps the version.
pub async fn save_plan(conn: &mut PgConnection, plan: &PlanRow) -> ApiResult<()> {
    sqlx::query(
        "UPDATE care_plans SET content = $2, reconciled_by = $3, reconciled_by_role = $4, reconciled_at = $5,
                reconcile_note = $6, version = $7, updated_at = $8, updated_by = $9
         WHERE id = $1",
    )
    .bind(plan.id)
    .bind(&plan.content)
    .bind(&plan.reconciled_by)
    .bind(plan.reconciled_by_role)
    .bind(plan.reconciled_at)
    .bind(&plan.reconcile_note)
    .bind(plan.version)
    .bind(plan.updated_at)
    .bind(&plan.updated_by)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn team(conn: &mut PgConnection, patient_id: Uuid) -> ApiResult<Vec<MemberRow>> {
    Ok(sqlx::query_as(
        "SELECT id, patient_id, kind, display_name, role, organization_id, subject, subject_issuer,
                contact_channel, contact_address, is_lead, added_at
         FROM care_team_members WHERE patient_id = $1 AND removed_at IS NULL ORDER BY added_at, id",
    )
    .bind(patient_id)
    .fetch_all(conn)
    .await?)
}

pub async fn insert_member(conn: &mut PgConnection, m: &MemberRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO care_team_members (id, patient_id, kind, display_name, role, organization_id, subject,
                contact_channel, contact_address, is_lead, added_at, subject_issuer)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(m.id)
    .bind(m.patient_id)
    .bind(m.kind)
    .bind(&m.display_name)
    .bind(m.role)
    .bind(m.organization_id)
    .bind(&m.subject)
    .bind(m.contact_channel)
    .bind(&m.contact_address)
    .bind(m.is_lead)
    .bind(m.added_at)
    .bind(&m.subject_issuer)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update_member(conn: &mut PgConnection, m: &MemberRow) -> ApiResult<()> {
    sqlx::query(
        "UPDATE care_team_members SET role = $2, contact_channel = $3, contact_address = $4, is_lead = $5
         WHERE id = $1",
    )
    .bind(m.id)
    .bind(m.role)
    .bind(m.contact_channel)
    .bind(&m.contact_address)
    .bind(m.is_lead)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn clear_lead(conn: &mut PgConnection, member_id: Uuid) -> ApiResult<()> {
    sqlx::query("UPDATE care_team_members SET is_lead = false WHERE id = $1")
        .bind(member_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn remove_member(
    conn: &mut PgConnection,
    member_id: Uuid,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    sqlx::query("UPDATE care_team_members SET removed_at = $2 WHERE id = $1")
        .bind(member_id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------- consents ----------

#[derive(Debug, Clone, FromRow)]
pub struct ConsentRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub grantee_member_id: Option<Uuid>,
    pub grantee_org_id: Option<Uuid>,
    pub purpose: i32,
    pub scope: i32,
    pub period_start: DateTime<Utc>,
    pub period_end: Option<DateTime<Utc>>,
    pub status: String,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
    pub version: i64,
}

pub async fn insert_consent(conn: &mut PgConnection, c: &ConsentRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO consents (id, patient_id, grantee_member_id, grantee_org_id, purpose, scope, period_start,
                period_end, status, granted_by, granted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(c.id)
    .bind(c.patient_id)
    .bind(c.grantee_member_id)
    .bind(c.grantee_org_id)
    .bind(c.purpose)
    .bind(c.scope)
    .bind(c.period_start)
    .bind(c.period_end)
    .bind(&c.status)
    .bind(&c.granted_by)
    .bind(c.granted_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn consent_for_update(conn: &mut PgConnection, id: Uuid) -> ApiResult<ConsentRow> {
    sqlx::query_as("SELECT * FROM consents WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("consent"))
}

pub async fn revoke_consent(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
    reason: &str,
) -> ApiResult<()> {
    sqlx::query(
        "UPDATE consents SET status = 'revoked', revoked_at = $2, revoke_reason = $3, version = version + 1
         WHERE id = $1",
    )
    .bind(id)
    .bind(at)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn consents_of(conn: &mut PgConnection, patient_id: Uuid) -> ApiResult<Vec<ConsentRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM consents WHERE patient_id = $1 ORDER BY granted_at, id")
            .bind(patient_id)
            .fetch_all(conn)
            .await?,
    )
}

/// One page of a patient's consents in grant order.
pub async fn consents_page(
    conn: &mut PgConnection,
    patient_id: Uuid,
    after: Option<careloop_runtime::paging::Cursor>,
    limit: i64,
) -> ApiResult<Vec<ConsentRow>> {
    let (after_at, after_id) = careloop_runtime::paging::after(after);
    Ok(sqlx::query_as(
        "SELECT * FROM consents WHERE patient_id = $1 AND (granted_at, id) > ($2, $3)
         ORDER BY granted_at, id LIMIT $4",
    )
    .bind(patient_id)
    .bind(after_at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

// ---------- tasks ----------

#[derive(Debug, Clone, FromRow)]
pub struct TaskRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub title: String,
    pub description: String,
    pub owner_role: i32,
    pub backup_role: i32,
    pub assignee_member_id: Option<Uuid>,
    pub due_at: DateTime<Utc>,
    pub priority: i32,
    pub linked_kind: i32,
    pub linked_id: String,
    pub status: String,
    pub held_from: Option<String>,
    pub status_reason: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn insert_task(conn: &mut PgConnection, t: &TaskRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO tasks (id, patient_id, title, description, owner_role, backup_role, assignee_member_id,
                due_at, priority, linked_kind, linked_id, status, held_from, status_reason, version,
                created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(t.id)
    .bind(t.patient_id)
    .bind(&t.title)
    .bind(&t.description)
    .bind(t.owner_role)
    .bind(t.backup_role)
    .bind(t.assignee_member_id)
    .bind(t.due_at)
    .bind(t.priority)
    .bind(t.linked_kind)
    .bind(&t.linked_id)
    .bind(&t.status)
    .bind(&t.held_from)
    .bind(&t.status_reason)
    .bind(t.version)
    .bind(t.created_at)
    .bind(t.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn task(conn: &mut PgConnection, id: Uuid) -> ApiResult<TaskRow> {
    sqlx::query_as("SELECT * FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("task"))
}

pub async fn lock_task(
    conn: &mut PgConnection,
    id: Uuid,
    expected_version: i64,
) -> ApiResult<TaskRow> {
    careloop_runtime::db::lock_versioned(conn, "tasks", "task", id, Some(expected_version)).await
}

pub async fn save_task(conn: &mut PgConnection, t: &TaskRow) -> ApiResult<()> {
    sqlx::query(
        "UPDATE tasks SET owner_role = $2, assignee_member_id = $3, status = $4, held_from = $5,
                status_reason = $6, version = $7, updated_at = $8
         WHERE id = $1",
    )
    .bind(t.id)
    .bind(t.owner_role)
    .bind(t.assignee_member_id)
    .bind(&t.status)
    .bind(&t.held_from)
    .bind(&t.status_reason)
    .bind(t.version)
    .bind(t.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn is_active_member(
    conn: &mut PgConnection,
    patient_id: Uuid,
    member_id: Uuid,
) -> ApiResult<bool> {
    let found: Option<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM care_team_members WHERE id = $1 AND patient_id = $2 AND removed_at IS NULL",
    )
    .bind(member_id)
    .bind(patient_id)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// Who may see a cross-patient worklist row: everyone for internal services, otherwise staff of the
/// managing organization or of a care-team organization, or a named care-team member.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub all: bool,
    pub org_id: Uuid,
}

/// Binds: $1 all, $2 org id; the row alias is `x`. A patient is on a worklist for the organization
/// that manages it or that is on its care team (a person is a member only with their organization).
macro_rules! visible_to_viewer {
    () => {
        "($1::bool
    OR EXISTS (SELECT 1 FROM patients p WHERE p.id = x.patient_id AND p.managing_org_id = $2)
    OR EXISTS (SELECT 1 FROM care_team_members m WHERE m.patient_id = x.patient_id AND m.removed_at IS NULL
               AND m.organization_id = $2))"
    };
}

pub async fn open_tasks_for_patient(
    conn: &mut PgConnection,
    patient_id: Uuid,
    after: Option<careloop_runtime::paging::Cursor>,
    limit: i64,
) -> ApiResult<Vec<TaskRow>> {
    let (after_at, after_id) = careloop_runtime::paging::after(after);
    let sql = concat!(
        "SELECT * FROM tasks WHERE patient_id = $1 AND status IN ",
        open_task_statuses!(),
        " AND (due_at, id) > ($2, $3) ORDER BY due_at, id LIMIT $4"
    );
    Ok(sqlx::query_as(sql)
        .bind(patient_id)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

pub async fn open_tasks_for_role(
    conn: &mut PgConnection,
    viewer: &Viewer,
    role: i32,
    after: Option<careloop_runtime::paging::Cursor>,
    limit: i64,
) -> ApiResult<Vec<TaskRow>> {
    let (after_at, after_id) = careloop_runtime::paging::after(after);
    let sql = concat!(
        "SELECT * FROM tasks x WHERE owner_role = $3 AND status IN ",
        open_task_statuses!(),
        " AND (due_at, id) > ($4, $5) AND ",
        visible_to_viewer!(),
        " ORDER BY due_at, id LIMIT $6"
    );
    Ok(sqlx::query_as(sql)
        .bind(viewer.all)
        .bind(viewer.org_id)
        .bind(role)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

// ---------- handoffs ----------

#[derive(Debug, Clone, FromRow)]
pub struct HandoffRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub from_role: i32,
    pub from_subject: String,
    pub to_role: i32,
    pub situation: String,
    pub background: String,
    pub assessment: String,
    pub recommendation: String,
    pub pending_items: Vec<String>,
    pub red_flags: Vec<String>,
    pub sent_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub version: i64,
    pub acknowledge_by: DateTime<Utc>,
}

pub async fn insert_handoff(conn: &mut PgConnection, h: &HandoffRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO handoffs (id, patient_id, from_role, from_subject, to_role, situation, background,
                assessment, recommendation, pending_items, red_flags, sent_at, version, acknowledge_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(h.id)
    .bind(h.patient_id)
    .bind(h.from_role)
    .bind(&h.from_subject)
    .bind(h.to_role)
    .bind(&h.situation)
    .bind(&h.background)
    .bind(&h.assessment)
    .bind(&h.recommendation)
    .bind(&h.pending_items)
    .bind(&h.red_flags)
    .bind(h.sent_at)
    .bind(h.version)
    .bind(h.acknowledge_by)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn lock_handoff(conn: &mut PgConnection, id: Uuid) -> ApiResult<HandoffRow> {
    sqlx::query_as("SELECT * FROM handoffs WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("handoff"))
}

pub async fn acknowledge_handoff(conn: &mut PgConnection, h: &HandoffRow) -> ApiResult<()> {
    sqlx::query("UPDATE handoffs SET acknowledged_at = $2, acknowledged_by = $3, version = $4 WHERE id = $1")
        .bind(h.id)
        .bind(h.acknowledged_at)
        .bind(&h.acknowledged_by)
        .bind(h.version)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn unacknowledged_handoffs(
    conn: &mut PgConnection,
    viewer: &Viewer,
    role: i32,
    after: Option<careloop_runtime::paging::Cursor>,
    limit: i64,
) -> ApiResult<Vec<HandoffRow>> {
    let (after_at, after_id) = careloop_runtime::paging::after(after);
    let sql = concat!(
        "SELECT * FROM handoffs x WHERE to_role = $3 AND acknowledged_at IS NULL
           AND (acknowledge_by, id) > ($4, $5) AND ",
        visible_to_viewer!(),
        " ORDER BY acknowledge_by, id LIMIT $6"
    );
    Ok(sqlx::query_as(sql)
        .bind(viewer.all)
        .bind(viewer.org_id)
        .bind(role)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// One patient's unacknowledged handoffs by acknowledge-by time.
pub async fn unacknowledged_handoffs_for_patient(
    conn: &mut PgConnection,
    patient_id: Uuid,
    after: Option<careloop_runtime::paging::Cursor>,
    limit: i64,
) -> ApiResult<Vec<HandoffRow>> {
    let (after_at, after_id) = careloop_runtime::paging::after(after);
    Ok(sqlx::query_as(
        "SELECT * FROM handoffs WHERE patient_id = $1 AND acknowledged_at IS NULL
           AND (acknowledge_by, id) > ($2, $3) ORDER BY acknowledge_by, id LIMIT $4",
    )
    .bind(patient_id)
    .bind(after_at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

// ---------- transitions ----------

#[derive(Debug, Clone, FromRow)]
pub struct TransitionRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub from_setting: i32,
    pub to_setting: i32,
    pub reason: String,
    pub success_criteria: String,
    pub risk_level: i32,
    pub checklist: Json<Vec<ChecklistItem>>,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub version: i64,
}

pub async fn insert_transition(conn: &mut PgConnection, t: &TransitionRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO transitions (id, patient_id, from_setting, to_setting, reason, success_criteria,
                risk_level, checklist, status, started_at, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(t.id)
    .bind(t.patient_id)
    .bind(t.from_setting)
    .bind(t.to_setting)
    .bind(&t.reason)
    .bind(&t.success_criteria)
    .bind(t.risk_level)
    .bind(&t.checklist)
    .bind(&t.status)
    .bind(t.started_at)
    .bind(t.version)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn transition(conn: &mut PgConnection, id: Uuid) -> ApiResult<TransitionRow> {
    sqlx::query_as("SELECT * FROM transitions WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("transition"))
}

pub async fn lock_transition(
    conn: &mut PgConnection,
    id: Uuid,
    expected_version: i64,
) -> ApiResult<TransitionRow> {
    careloop_runtime::db::lock_versioned(
        conn,
        "transitions",
        "transition",
        id,
        Some(expected_version),
    )
    .await
}

pub async fn save_transition(conn: &mut PgConnection, t: &TransitionRow) -> ApiResult<()> {
    sqlx::query(
        "UPDATE transitions SET checklist = $2, status = $3, completed_at = $4, version = $5 WHERE id = $1",
    )
    .bind(t.id)
    .bind(&t.checklist)
    .bind(&t.status)
    .bind(t.completed_at)
    .bind(t.version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Loops that belong to a patient, for reading whose patient a row is before locking it.
#[derive(Debug, Clone, Copy)]
pub enum Owned {
    Task,
    Handoff,
    Transition,
    Consent,
}

/// The patient a row belongs to, without locking it: access is checked before any lock is taken
/// or any version is compared, so an outsider learns nothing but "no access".
pub async fn patient_of(conn: &mut PgConnection, kind: Owned, id: Uuid) -> ApiResult<Uuid> {
    let (sql, what) = match kind {
        Owned::Task => ("SELECT patient_id FROM tasks WHERE id = $1", "task"),
        Owned::Handoff => ("SELECT patient_id FROM handoffs WHERE id = $1", "handoff"),
        Owned::Transition => (
            "SELECT patient_id FROM transitions WHERE id = $1",
            "transition",
        ),
        Owned::Consent => ("SELECT patient_id FROM consents WHERE id = $1", "consent"),
    };
    let row: Option<(Uuid,)> = sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
    row.map(|(p,)| p).ok_or(ApiError::NotFound(what))
}

careloop_runtime::versioned!(TaskRow, TransitionRow);
