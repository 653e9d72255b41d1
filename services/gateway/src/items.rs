//! Every service's open loops as one kind of line (`WorkItem`), with the sort key each service pages
//! by: its due instant (none sorts last) and its id. Ordering by that key puts overdue loops first,
//! since a loop is overdue when its due time has passed.

use careloop_proto::common::v1::LoopKind;
use careloop_proto::gateway::v1::WorkItem;
use careloop_proto::notifications::v1::InboxItem;
use careloop_proto::plans::v1::{Handoff, Task, TaskStatus};
use careloop_proto::priorauth::v1::{AuthStatus, PriorAuthRequest};
use careloop_proto::referrals::v1::OpenLoop;
use careloop_runtime::paging::{Cursor, far_future};
use careloop_runtime::time::{from_timestamp, to_timestamp};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A work item and the position its service pages it at.
#[derive(Debug, Clone)]
pub struct Line {
    pub cursor: Cursor,
    pub patient_id: Uuid,
    pub item: WorkItem,
}

fn at(ts: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    ts.and_then(from_timestamp).unwrap_or_else(far_future)
}

fn line(id: &str, patient: &str, due: DateTime<Utc>, item: WorkItem) -> Option<Line> {
    Some(Line {
        cursor: Cursor {
            at: due,
            id: Uuid::parse_str(id).ok()?,
        },
        patient_id: Uuid::parse_str(patient).ok()?,
        item,
    })
}

/// "AUTH_STATUS_PENDED" -> "pended".
fn status_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_lowercase()
}

pub fn task(t: &Task) -> Option<Line> {
    let due = at(t.due_at.as_ref());
    let status = TaskStatus::try_from(t.status).unwrap_or(TaskStatus::Unspecified);
    line(
        &t.id,
        &t.patient_id,
        due,
        WorkItem {
            kind: LoopKind::Task as i32,
            id: t.id.clone(),
            patient_id: t.patient_id.clone(),
            status: status_name(status.as_str_name(), "TASK_STATUS_"),
            owner_role: t.owner_role,
            due_at: t.due_at,
            overdue: t.overdue,
            label: t.title.clone(),
            service: "plans".into(),
            about: None,
            version: t.version,
        },
    )
}

pub fn handoff(h: &Handoff, now: DateTime<Utc>) -> Option<Line> {
    let due = at(h.acknowledge_by.as_ref());
    line(
        &h.id,
        &h.patient_id,
        due,
        WorkItem {
            kind: LoopKind::Handoff as i32,
            id: h.id.clone(),
            patient_id: h.patient_id.clone(),
            status: "sent".into(),
            owner_role: h.to_role,
            due_at: h.acknowledge_by,
            overdue: due < now,
            label: format!(
                "handoff from {}",
                careloop_runtime::events::fields::care_role_name(h.from_role)
            ),
            service: "plans".into(),
            about: None,
            version: h.version,
        },
    )
}

pub fn open_loop(l: &OpenLoop) -> Option<Line> {
    line(
        &l.id,
        &l.patient_id,
        at(l.due_at.as_ref()),
        WorkItem {
            kind: l.kind,
            id: l.id.clone(),
            patient_id: l.patient_id.clone(),
            status: l.status.clone(),
            owner_role: l.owner_role,
            due_at: l.due_at,
            overdue: l.overdue,
            label: l.label.clone(),
            service: "referrals".into(),
            about: None,
            version: 0,
        },
    )
}

/// Whether a prior authorization still waits on someone (the same statuses prior-auth lists per role).
pub fn prior_auth_open(r: &PriorAuthRequest) -> bool {
    matches!(
        AuthStatus::try_from(r.status),
        Ok(AuthStatus::Draft
            | AuthStatus::Submitted
            | AuthStatus::Pended
            | AuthStatus::Denied
            | AuthStatus::Appealed)
    )
}

pub fn prior_auth(r: &PriorAuthRequest) -> Option<Line> {
    let status = AuthStatus::try_from(r.status).unwrap_or(AuthStatus::Unspecified);
    line(
        &r.id,
        &r.patient_id,
        at(r.due_at.as_ref()),
        WorkItem {
            kind: LoopKind::PriorAuth as i32,
            id: r.id.clone(),
            patient_id: r.patient_id.clone(),
            status: status_name(status.as_str_name(), "AUTH_STATUS_"),
            owner_role: r.owner_role,
            due_at: r.due_at,
            overdue: r.overdue,
            label: format!("prior authorization with {}", r.payer_id),
            service: "prior-auth".into(),
            about: None,
            version: r.version,
        },
    )
}

/// An unresolved inbox item: due when it climbs to the next rung (or at once when it is on its last).
pub fn inbox_item(i: &InboxItem, now: DateTime<Utc>) -> Option<Line> {
    let due = i.escalates_at.as_ref().and_then(from_timestamp);
    let created = at(i.created_at.as_ref());
    line(
        &i.id,
        &i.patient_id,
        due.unwrap_or(created),
        WorkItem {
            kind: i.r#loop.as_ref().map_or(0, |l| l.kind),
            id: i.id.clone(),
            patient_id: i.patient_id.clone(),
            status: "inbox".into(),
            owner_role: i.role,
            due_at: Some(to_timestamp(due.unwrap_or(created))),
            overdue: due.is_some_and(|d| d < now),
            label: i.title.clone(),
            service: "notifications".into(),
            about: i.r#loop.clone(),
            version: i.version,
        },
    )
}

/// Overdue first, then by due time, then by id: one order for every list the gateway returns.
pub fn sort(lines: &mut [Line]) {
    lines.sort_by(|a, b| {
        (!a.item.overdue, a.cursor.at, a.cursor.id).cmp(&(
            !b.item.overdue,
            b.cursor.at,
            b.cursor.id,
        ))
    });
}

/// Patients named by the lines, once each.
pub fn patients_of(lines: &[Line]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = lines.iter().map(|l| l.patient_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
