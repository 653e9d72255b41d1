//! SQL for routing rules, inbox items and the inbox feed.

use crate::domain::ladder::{RuleRung, Rung};
use careloop_runtime::error::ApiResult;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RuleRow {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub name: String,
    pub event_type: String,
    pub conditions: Json<HashMap<String, String>>,
    pub ladder: Json<Vec<RuleRung>>,
    pub priority: String,
    pub channels: Vec<String>,
    pub enabled: bool,
    pub version: i64,
    pub also: Json<Vec<RuleRung>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub patient_id: Uuid,
    pub rule_id: Uuid,
    pub source_event_id: Uuid,
    pub source_event_type: String,
    pub first_role: i32,
    pub loop_kind: i32,
    pub loop_id: Uuid,
    pub stage: String,
    pub title: String,
    pub priority: String,
    pub ladder: Json<Vec<Rung>>,
    pub rung: i32,
    pub role: i32,
    pub escalates_at: Option<DateTime<Utc>>,
    pub status: String,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub note: String,
    pub resolved_by_stage: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub version: i64,
    /// The rule's channels when the item was raised ("inbox", "webhook").
    pub channels: Vec<String>,
    /// For a held item: when it reaches the inbox.
    pub deliver_at: Option<DateTime<Utc>>,
    /// When it reached its current role's inbox (raised, released or escalated).
    pub reached_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// When someone holding its current role first opened it.
    pub read_at: Option<DateTime<Utc>>,
    pub read_by: Option<String>,
    pub fallback_sent: bool,
}

careloop_runtime::versioned!(RuleRow, ItemRow);

// ---------- rules ----------

pub async fn insert_rule(conn: &mut PgConnection, r: &RuleRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO routing_rules (id, org_id, name, event_type, conditions, ladder, priority, channels, enabled, version, also)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(r.id)
    .bind(r.org_id)
    .bind(&r.name)
    .bind(&r.event_type)
    .bind(&r.conditions)
    .bind(&r.ladder)
    .bind(&r.priority)
    .bind(&r.channels)
    .bind(r.enabled)
    .bind(r.version)
    .bind(&r.also)
    .execute(conn)
    .await?;
    Ok(())
}

/// Platform defaults and, when `org` is given, that organization's rules (all rules for `None`).
pub async fn rules(conn: &mut PgConnection, org: Option<Uuid>) -> ApiResult<Vec<RuleRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM routing_rules WHERE $1::uuid IS NULL OR org_id IS NULL OR org_id = $1
         ORDER BY created_at, id",
    )
    .bind(org)
    .fetch_all(conn)
    .await?)
}

pub async fn enabled_rules_for(
    conn: &mut PgConnection,
    event_type: &str,
) -> sqlx::Result<Vec<RuleRow>> {
    sqlx::query_as("SELECT * FROM routing_rules WHERE enabled AND event_type = $1 ORDER BY id")
        .bind(event_type)
        .fetch_all(conn)
        .await
}

pub async fn lock_rule(
    conn: &mut PgConnection,
    id: Uuid,
    expected_version: Option<i64>,
) -> ApiResult<RuleRow> {
    careloop_runtime::db::lock_versioned(
        conn,
        "routing_rules",
        "routing rule",
        id,
        expected_version,
    )
    .await
}

pub async fn save_rule_enabled(conn: &mut PgConnection, r: &RuleRow) -> ApiResult<()> {
    sqlx::query("UPDATE routing_rules SET enabled = $2, version = $3 WHERE id = $1")
        .bind(r.id)
        .bind(r.enabled)
        .bind(r.version)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------- items ----------

/// Inserts a held item unless this event already raised it for this rule and role; returns
/// whether it is new.
pub async fn insert_item(conn: &mut PgConnection, i: &ItemRow) -> sqlx::Result<bool> {
    insert(conn, i, None).await
}

/// Inserts an open item and its "raised" feed entry in one statement, unless this event already
/// raised it for this rule and role; returns whether it is new.
pub async fn insert_open_item(
    conn: &mut PgConnection,
    i: &ItemRow,
    at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    insert(conn, i, Some(at)).await
}

/// The item, and with `feed_at` its feed entry (the feed's position is taken only then, and only
/// for a new item).
async fn insert(
    conn: &mut PgConnection,
    i: &ItemRow,
    feed_at: Option<DateTime<Utc>>,
) -> sqlx::Result<bool> {
    let inserted: i64 = sqlx::query_scalar(
        "WITH item AS (
             INSERT INTO items (id, org_id, patient_id, rule_id, source_event_id, source_event_type, first_role,
                                loop_kind, loop_id, stage, title, priority, ladder, rung, role, escalates_at,
                                status, note, created_at, version, channels, deliver_at, reached_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
             ON CONFLICT (source_event_id, rule_id, first_role) DO NOTHING
             RETURNING id, org_id, role),
         next AS (
             UPDATE feed_position SET position = position + 1
              WHERE $24::timestamptz IS NOT NULL AND EXISTS (SELECT 1 FROM item)
             RETURNING position),
         fed AS (
             INSERT INTO inbox_feed (position, org_id, role, item_id, kind, at)
             SELECT next.position, item.org_id, item.role, item.id, 'raised', $24 FROM item, next)
         SELECT count(*) FROM item",
    )
    .bind(i.id)
    .bind(i.org_id)
    .bind(i.patient_id)
    .bind(i.rule_id)
    .bind(i.source_event_id)
    .bind(&i.source_event_type)
    .bind(i.first_role)
    .bind(i.loop_kind)
    .bind(i.loop_id)
    .bind(&i.stage)
    .bind(&i.title)
    .bind(&i.priority)
    .bind(&i.ladder)
    .bind(i.rung)
    .bind(i.role)
    .bind(i.escalates_at)
    .bind(&i.status)
    .bind(&i.note)
    .bind(i.created_at)
    .bind(i.version)
    .bind(&i.channels)
    .bind(i.deliver_at)
    .bind(i.reached_at)
    .bind(feed_at)
    .fetch_one(conn)
    .await?;
    Ok(inserted == 1)
}

/// Appends an entry to the inbox feed of (`org`, `role`), at the next position.
pub async fn feed(
    conn: &mut PgConnection,
    item: &ItemRow,
    kind: &'static str,
    at: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "WITH next AS (UPDATE feed_position SET position = position + 1 RETURNING position)
         INSERT INTO inbox_feed (position, org_id, role, item_id, kind, at)
         SELECT position, $1, $2, $3, $4, $5 FROM next
         RETURNING position",
    )
    .bind(item.org_id)
    .bind(item.role)
    .bind(item.id)
    .bind(kind)
    .bind(at)
    .fetch_one(conn)
    .await
}

/// Open and held items about a loop, locked for the transaction.
pub async fn open_items_of_loop(
    conn: &mut PgConnection,
    loop_kind: i32,
    loop_id: Uuid,
) -> sqlx::Result<Vec<ItemRow>> {
    sqlx::query_as(
        "SELECT * FROM items WHERE loop_id = $1 AND loop_kind = $2 AND status IN ('open', 'held')
          ORDER BY id FOR UPDATE",
    )
    .bind(loop_id)
    .bind(loop_kind)
    .fetch_all(conn)
    .await
}

/// Writes an item's state back (status, rung, role, acknowledgement, resolution, version).
pub async fn save_item(conn: &mut PgConnection, i: &ItemRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE items SET status = $2, rung = $3, role = $4, escalates_at = $5, acknowledged_at = $6,
                acknowledged_by = $7, note = $8, resolved_by_stage = $9, closed_at = $10, version = $11,
                deliver_at = $12, reached_at = $13, read_at = $14, read_by = $15, fallback_sent = $16
         WHERE id = $1",
    )
    .bind(i.id)
    .bind(&i.status)
    .bind(i.rung)
    .bind(i.role)
    .bind(i.escalates_at)
    .bind(i.acknowledged_at)
    .bind(&i.acknowledged_by)
    .bind(&i.note)
    .bind(&i.resolved_by_stage)
    .bind(i.closed_at)
    .bind(i.version)
    .bind(i.deliver_at)
    .bind(i.reached_at)
    .bind(i.read_at)
    .bind(&i.read_by)
    .bind(i.fallback_sent)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_item(conn: &mut PgConnection, id: Uuid) -> ApiResult<ItemRow> {
    sqlx::query_as("SELECT * FROM items WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(careloop_runtime::error::ApiError::NotFound("inbox item"))
}

pub async fn lock_item(
    conn: &mut PgConnection,
    id: Uuid,
    expected_version: Option<i64>,
) -> ApiResult<ItemRow> {
    careloop_runtime::db::lock_versioned(conn, "items", "inbox item", id, expected_version).await
}

/// A page of a role's inbox, oldest first (keyset on created_at, id).
pub async fn inbox(
    conn: &mut PgConnection,
    org: Uuid,
    roles: &[i32],
    include_closed: bool,
    after: Option<careloop_runtime::paging::Cursor>,
    limit: i64,
) -> ApiResult<Vec<ItemRow>> {
    let (after_at, after_id) = careloop_runtime::paging::after(after);
    Ok(sqlx::query_as(
        "SELECT * FROM items
          WHERE org_id = $1 AND role = ANY($2) AND ($3 OR status = 'open')
            AND (created_at, id) > ($4, $5)
          ORDER BY created_at, id LIMIT $6",
    )
    .bind(org)
    .bind(roles)
    .bind(include_closed)
    .bind(after_at)
    .bind(after_id)
    .bind(limit + 1)
    .fetch_all(conn)
    .await?)
}

/// One patient's open items in an organization's inbox, oldest first.
pub async fn open_items_for_patient(
    conn: &mut PgConnection,
    org: Uuid,
    patient_id: Uuid,
    after: Option<careloop_runtime::paging::Cursor>,
    limit: i64,
) -> ApiResult<Vec<ItemRow>> {
    let (after_at, after_id) = careloop_runtime::paging::after(after);
    Ok(sqlx::query_as(
        "SELECT * FROM items
          WHERE org_id = $1 AND patient_id = $2 AND status = 'open'
            AND (created_at, id) > ($3, $4)
          ORDER BY created_at, id LIMIT $5",
    )
    .bind(org)
    .bind(patient_id)
    .bind(after_at)
    .bind(after_id)
    .bind(limit + 1)
    .fetch_all(conn)
    .await?)
}

pub async fn open_count_for_patient(
    conn: &mut PgConnection,
    org: Uuid,
    patient_id: Uuid,
) -> ApiResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM items WHERE org_id = $1 AND patient_id = $2 AND status = 'open'",
    )
    .bind(org)
    .bind(patient_id)
    .fetch_one(conn)
    .await?)
}

pub async fn open_count(conn: &mut PgConnection, org: Uuid, roles: &[i32]) -> ApiResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM items WHERE org_id = $1 AND role = ANY($2) AND status = 'open'",
    )
    .bind(org)
    .bind(roles)
    .fetch_one(conn)
    .await?)
}

/// A feed entry with the item as it is now.
#[derive(Debug, sqlx::FromRow)]
pub struct Entry {
    pub position: i64,
    pub kind: String,
    #[sqlx(flatten)]
    pub item: ItemRow,
}

/// Entries of (`org`, `role`) after `position`, in order.
pub async fn feed_after(
    conn: &mut PgConnection,
    org: Uuid,
    role: i32,
    position: i64,
    limit: i64,
) -> sqlx::Result<Vec<Entry>> {
    sqlx::query_as(
        "SELECT f.position, f.kind, i.* FROM inbox_feed f JOIN items i ON i.id = f.item_id
          WHERE f.org_id = $1 AND f.role = $2 AND f.position > $3
          ORDER BY f.position LIMIT $4",
    )
    .bind(org)
    .bind(role)
    .bind(position)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The feed's last position (watchers starting "from now" begin after it).
pub async fn last_position(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT position FROM feed_position")
        .fetch_one(conn)
        .await
}

// ---------- webhooks ----------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub url: String,
    pub secret: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub consecutive_failures: i32,
    pub disabled_at: Option<DateTime<Utc>>,
    pub version: i64,
}

careloop_runtime::versioned!(EndpointRow);

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub item_id: Uuid,
    pub patient_id: Uuid,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempt_count: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status_code: i32,
    pub error: String,
}

pub async fn insert_endpoint(conn: &mut PgConnection, e: &EndpointRow) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, org_id, url, secret, event_types, enabled, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(e.id)
    .bind(e.org_id)
    .bind(&e.url)
    .bind(&e.secret)
    .bind(&e.event_types)
    .bind(e.enabled)
    .bind(e.version)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn endpoints(conn: &mut PgConnection, org: Uuid) -> ApiResult<Vec<EndpointRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM webhook_endpoints WHERE org_id = $1 ORDER BY created_at, id")
            .bind(org)
            .fetch_all(conn)
            .await?,
    )
}

pub async fn get_endpoint(conn: &mut PgConnection, id: Uuid) -> ApiResult<EndpointRow> {
    sqlx::query_as("SELECT * FROM webhook_endpoints WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(careloop_runtime::error::ApiError::NotFound(
            "webhook endpoint",
        ))
}

pub async fn lock_endpoint(conn: &mut PgConnection, id: Uuid) -> ApiResult<EndpointRow> {
    careloop_runtime::db::lock_versioned(conn, "webhook_endpoints", "webhook endpoint", id, None)
        .await
}

pub async fn save_endpoint_enabled(conn: &mut PgConnection, e: &EndpointRow) -> ApiResult<()> {
    sqlx::query(
        "UPDATE webhook_endpoints SET enabled = $2, consecutive_failures = $3, disabled_at = $4, version = $5
         WHERE id = $1",
    )
    .bind(e.id)
    .bind(e.enabled)
    .bind(e.consecutive_failures)
    .bind(e.disabled_at)
    .bind(e.version)
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of an endpoint's deliveries, newest first.
pub async fn deliveries(
    conn: &mut PgConnection,
    endpoint: Uuid,
    after: Option<careloop_runtime::paging::Cursor>,
    limit: i64,
) -> ApiResult<Vec<DeliveryRow>> {
    let (before_at, before_id) = match after {
        Some(c) => (c.at, c.id),
        None => (careloop_runtime::paging::far_future(), Uuid::max()),
    };
    Ok(sqlx::query_as(
        "SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 AND (created_at, id) < ($2, $3)
          ORDER BY created_at DESC, id DESC LIMIT $4",
    )
    .bind(endpoint)
    .bind(before_at)
    .bind(before_id)
    .bind(limit + 1)
    .fetch_all(conn)
    .await?)
}

pub async fn attempts(conn: &mut PgConnection, deliveries: &[Uuid]) -> ApiResult<Vec<AttemptRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
    )
    .bind(deliveries)
    .fetch_all(conn)
    .await?)
}

pub async fn get_delivery(conn: &mut PgConnection, id: Uuid) -> ApiResult<DeliveryRow> {
    sqlx::query_as("SELECT * FROM webhook_deliveries WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(careloop_runtime::error::ApiError::NotFound(
            "webhook delivery",
        ))
}

// ---------- rosters ----------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RosterRow {
    pub org_id: Uuid,
    pub role: i32,
    pub time_zone: String,
    pub members: Json<Vec<crate::domain::roster::Member>>,
    pub backup_role: Option<i32>,
    pub version: i64,
}

pub async fn roster(
    conn: &mut PgConnection,
    org: Uuid,
    role: i32,
) -> sqlx::Result<Option<RosterRow>> {
    sqlx::query_as("SELECT * FROM rosters WHERE org_id = $1 AND role = $2")
        .bind(org)
        .bind(role)
        .fetch_optional(conn)
        .await
}

/// Locks the role's roster row, if there is one.
pub async fn lock_roster(
    conn: &mut PgConnection,
    org: Uuid,
    role: i32,
) -> sqlx::Result<Option<RosterRow>> {
    sqlx::query_as("SELECT * FROM rosters WHERE org_id = $1 AND role = $2 FOR UPDATE")
        .bind(org)
        .bind(role)
        .fetch_optional(conn)
        .await
}

/// Creates or replaces the roster; `false` when a concurrent create won (the caller's version is
/// then stale).
pub async fn save_roster(conn: &mut PgConnection, r: &RosterRow) -> ApiResult<bool> {
    let written = sqlx::query(
        "INSERT INTO rosters (org_id, role, time_zone, members, backup_role, version, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, now())
         ON CONFLICT (org_id, role) DO UPDATE
            SET time_zone = EXCLUDED.time_zone, members = EXCLUDED.members,
                backup_role = EXCLUDED.backup_role, version = EXCLUDED.version, updated_at = now()
          WHERE rosters.version = EXCLUDED.version - 1",
    )
    .bind(r.org_id)
    .bind(r.role)
    .bind(&r.time_zone)
    .bind(&r.members)
    .bind(r.backup_role)
    .bind(r.version)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(written == 1)
}

// ---------- digests ----------

/// Counts for a role's shift digest.
#[derive(Debug, sqlx::FromRow)]
pub struct DigestCounts {
    pub opened: i64,
    pub escalated_in: i64,
    pub acknowledged: i64,
    pub resolved: i64,
    pub escalated_away: i64,
}

/// Whether an item is about an overdue loop (raised by an overdue or missed-update event).
pub const OVERDUE_SOURCE: &str = "(source_event_type LIKE '%.overdue' OR source_event_type LIKE '%.decision_overdue' OR source_event_type LIKE '%.update_missed')";

pub async fn digest_counts(
    conn: &mut PgConnection,
    org: Uuid,
    role: i32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<DigestCounts> {
    // Escalations away from the role: an escalated entry for another role whose item's previous
    // rung was this role.
    Ok(sqlx::query_as(
        "SELECT
           (SELECT count(*) FROM inbox_feed WHERE org_id = $1 AND role = $2 AND kind = 'raised' AND at >= $3 AND at < $4) AS opened,
           (SELECT count(*) FROM inbox_feed WHERE org_id = $1 AND role = $2 AND kind = 'escalated' AND at >= $3 AND at < $4) AS escalated_in,
           (SELECT count(*) FROM items WHERE org_id = $1 AND role = $2 AND status = 'acknowledged'
                                         AND closed_at >= $3 AND closed_at < $4) AS acknowledged,
           (SELECT count(*) FROM items WHERE org_id = $1 AND role = $2 AND status = 'resolved'
                                         AND closed_at >= $3 AND closed_at < $4
                                         AND EXISTS (SELECT 1 FROM inbox_feed f WHERE f.item_id = items.id)) AS resolved,
           (SELECT count(*) FROM inbox_feed f JOIN items i ON i.id = f.item_id
             WHERE f.org_id = $1 AND f.kind = 'escalated' AND f.at >= $3 AND f.at < $4 AND f.role <> $2
               AND EXISTS (SELECT 1 FROM inbox_feed p WHERE p.item_id = f.item_id AND p.position < f.position
                              AND p.role = $2
                              AND p.position = (SELECT max(q.position) FROM inbox_feed q
                                                 WHERE q.item_id = f.item_id AND q.position < f.position))
           ) AS escalated_away",
    )
    .bind(org)
    .bind(role)
    .bind(from)
    .bind(to)
    .fetch_one(conn)
    .await?)
}

/// Open items of the role: how many, how many about overdue loops, and the first 50 (overdue
/// first, then oldest).
pub async fn still_open(
    conn: &mut PgConnection,
    org: Uuid,
    role: i32,
) -> ApiResult<(i64, i64, Vec<ItemRow>)> {
    let (open, overdue): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(*) FILTER (WHERE {OVERDUE_SOURCE})
           FROM items WHERE org_id = $1 AND role = $2 AND status = 'open'"
    )))
    .bind(org)
    .bind(role)
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM items WHERE org_id = $1 AND role = $2 AND status = 'open'
          ORDER BY {OVERDUE_SOURCE} DESC, created_at, id LIMIT 50"
    )))
    .bind(org)
    .bind(role)
    .fetch_all(conn)
    .await?;
    Ok((open, overdue, rows))
}

// ---------- care teams ----------

/// Records a team member as an event told it; a lead makes every other member not the lead.
pub async fn upsert_member(
    conn: &mut PgConnection,
    patient: Uuid,
    member: Uuid,
    role: i32,
    org: Option<Uuid>,
    is_lead: bool,
) -> sqlx::Result<()> {
    if is_lead {
        sqlx::query(
            "UPDATE team_members SET is_lead = false WHERE patient_id = $1 AND member_id <> $2",
        )
        .bind(patient)
        .bind(member)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "INSERT INTO team_members (patient_id, member_id, role, org_id, is_lead) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (patient_id, member_id) DO UPDATE
            SET role = EXCLUDED.role, org_id = EXCLUDED.org_id, is_lead = EXCLUDED.is_lead",
    )
    .bind(patient)
    .bind(member)
    .bind(role)
    .bind(org)
    .bind(is_lead)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn remove_member(
    conn: &mut PgConnection,
    patient: Uuid,
    member: Uuid,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM team_members WHERE patient_id = $1 AND member_id = $2")
        .bind(patient)
        .bind(member)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn team(
    conn: &mut PgConnection,
    patient: Uuid,
) -> sqlx::Result<crate::domain::ladder::Team> {
    let rows: Vec<(i32, Option<Uuid>, bool)> = sqlx::query_as(
        "SELECT role, org_id, is_lead FROM team_members WHERE patient_id = $1 ORDER BY is_lead DESC, member_id",
    )
    .bind(patient)
    .fetch_all(conn)
    .await?;
    Ok(crate::domain::ladder::Team {
        lead: rows.iter().find(|r| r.2).map(|r| (r.0, r.1)),
        members: rows.iter().map(|r| (r.0, r.1)).collect(),
    })
}
