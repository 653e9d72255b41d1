//! Rows into protos, and proto inputs into validated values.

use crate::domain::task::TaskStatus as DomainStatus;
use crate::domain::transition::{ChecklistItem as DomainItem, ItemKind, ItemState};
use crate::store::*;
use careloop_proto::common::v1::{CareRole, LoopKind, LoopRef};
use careloop_proto::plans::v1::*;
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::time::{opt_timestamp, to_timestamp};
use careloop_runtime::validate::{self as v, MAX_SHORT, MAX_TEXT};
use prost::Message;

pub fn patient(p: PatientRow) -> Patient {
    Patient {
        id: p.id.to_string(),
        mrn: p.mrn,
        given_name: p.given_name,
        family_name: p.family_name,
        birth_date: p.birth_date.format("%Y-%m-%d").to_string(),
        managing_org_id: p.managing_org_id.to_string(),
        created_at: Some(to_timestamp(p.created_at)),
    }
}

pub fn member(m: MemberRow) -> CareTeamMember {
    CareTeamMember {
        id: m.id.to_string(),
        kind: m.kind,
        display_name: m.display_name,
        role: m.role,
        organization_id: m.organization_id.map(|o| o.to_string()).unwrap_or_default(),
        subject: m.subject.unwrap_or_default(),
        subject_issuer: m.subject_issuer.unwrap_or_default(),
        preferred_contact: (m.contact_channel != 0).then_some(PreferredContact {
            channel: m.contact_channel,
            address: m.contact_address,
        }),
        is_lead: m.is_lead,
    }
}

pub fn plan(p: PlanRow, team: Vec<MemberRow>) -> ApiResult<CarePlan> {
    let content = CarePlanContent::decode(p.content.as_slice())
        .map_err(|e| ApiError::internal("failed to decode stored care plan", e))?;
    Ok(CarePlan {
        id: p.id.to_string(),
        patient_id: p.patient_id.to_string(),
        content: Some(content),
        last_reconciliation: p.reconciled_at.map(|at| MedicationReconciliation {
            reconciled_by: p.reconciled_by.unwrap_or_default(),
            reconciled_by_role: p.reconciled_by_role.unwrap_or_default(),
            reconciled_at: Some(to_timestamp(at)),
            note: p.reconcile_note.unwrap_or_default(),
        }),
        care_team: team.into_iter().map(member).collect(),
        version: p.version,
        updated_at: Some(to_timestamp(p.updated_at)),
        updated_by: p.updated_by,
    })
}

pub fn consent(c: ConsentRow) -> Consent {
    Consent {
        id: c.id.to_string(),
        patient_id: c.patient_id.to_string(),
        grantee_member_id: c
            .grantee_member_id
            .map(|m| m.to_string())
            .unwrap_or_default(),
        grantee_org_id: c.grantee_org_id.map(|o| o.to_string()).unwrap_or_default(),
        purpose: c.purpose,
        scope: c.scope,
        period_start: Some(to_timestamp(c.period_start)),
        period_end: opt_timestamp(c.period_end),
        status: if c.status == "active" {
            ConsentStatus::Active as i32
        } else {
            ConsentStatus::Revoked as i32
        },
        revoked_at: opt_timestamp(c.revoked_at),
        revoke_reason: c.revoke_reason.unwrap_or_default(),
        version: c.version,
    }
}

pub fn task_status(s: DomainStatus) -> TaskStatus {
    match s {
        DomainStatus::Requested => TaskStatus::Requested,
        DomainStatus::Accepted => TaskStatus::Accepted,
        DomainStatus::InProgress => TaskStatus::InProgress,
        DomainStatus::OnHold => TaskStatus::OnHold,
        DomainStatus::Completed => TaskStatus::Completed,
        DomainStatus::Cancelled => TaskStatus::Cancelled,
        DomainStatus::Failed => TaskStatus::Failed,
    }
}

fn stored_status(s: &str) -> TaskStatus {
    DomainStatus::parse(s)
        .map(task_status)
        .unwrap_or(TaskStatus::Unspecified)
}

pub fn task(t: TaskRow, now: chrono::DateTime<chrono::Utc>) -> Task {
    let open = DomainStatus::parse(&t.status).is_some_and(DomainStatus::is_open);
    Task {
        id: t.id.to_string(),
        patient_id: t.patient_id.to_string(),
        title: t.title,
        description: t.description,
        owner_role: t.owner_role,
        backup_role: t.backup_role,
        assignee_member_id: t
            .assignee_member_id
            .map(|m| m.to_string())
            .unwrap_or_default(),
        due_at: Some(to_timestamp(t.due_at)),
        priority: t.priority,
        linked_loop: (t.linked_kind != 0).then_some(LoopRef {
            kind: t.linked_kind,
            id: t.linked_id,
        }),
        status: stored_status(&t.status) as i32,
        held_from: t
            .held_from
            .as_deref()
            .map(stored_status)
            .unwrap_or(TaskStatus::Unspecified) as i32,
        status_reason: t.status_reason,
        overdue: open && t.due_at < now,
        version: t.version,
        created_at: Some(to_timestamp(t.created_at)),
        updated_at: Some(to_timestamp(t.updated_at)),
    }
}

pub fn handoff(h: HandoffRow) -> Handoff {
    Handoff {
        id: h.id.to_string(),
        patient_id: h.patient_id.to_string(),
        from_role: h.from_role,
        from_subject: h.from_subject,
        to_role: h.to_role,
        situation: h.situation,
        background: h.background,
        assessment: h.assessment,
        recommendation: h.recommendation,
        pending_items: h.pending_items,
        red_flags: h.red_flags,
        sent_at: Some(to_timestamp(h.sent_at)),
        acknowledged_at: opt_timestamp(h.acknowledged_at),
        acknowledged_by: h.acknowledged_by.unwrap_or_default(),
        version: h.version,
        acknowledge_by: Some(to_timestamp(h.acknowledge_by)),
    }
}

pub fn item_kind(kind: ItemKind) -> ChecklistItemKind {
    match kind {
        ItemKind::MedicationsReconciled => ChecklistItemKind::MedicationsReconciled,
        ItemKind::NextAppointmentBooked => ChecklistItemKind::NextAppointmentBooked,
        ItemKind::HandoffSent => ChecklistItemKind::HandoffSent,
        ItemKind::OnePagePlanGiven => ChecklistItemKind::OnePagePlanGiven,
        ItemKind::FollowUpCall => ChecklistItemKind::FollowUpCall,
    }
}

pub fn domain_item_kind(kind: ChecklistItemKind) -> Option<ItemKind> {
    Some(match kind {
        ChecklistItemKind::Unspecified => return None,
        ChecklistItemKind::MedicationsReconciled => ItemKind::MedicationsReconciled,
        ChecklistItemKind::NextAppointmentBooked => ItemKind::NextAppointmentBooked,
        ChecklistItemKind::HandoffSent => ItemKind::HandoffSent,
        ChecklistItemKind::OnePagePlanGiven => ItemKind::OnePagePlanGiven,
        ChecklistItemKind::FollowUpCall => ItemKind::FollowUpCall,
    })
}

pub fn item_state(state: ItemState) -> ChecklistItemState {
    match state {
        ItemState::Pending => ChecklistItemState::Pending,
        ItemState::Done => ChecklistItemState::Done,
        ItemState::Waived => ChecklistItemState::Waived,
    }
}

fn checklist_item(i: DomainItem) -> ChecklistItem {
    ChecklistItem {
        kind: item_kind(i.kind) as i32,
        required: i.required,
        state: item_state(i.state) as i32,
        waive_reason: i.waive_reason.unwrap_or_default(),
        done_by: i.done_by.unwrap_or_default(),
        updated_at: opt_timestamp(i.updated_at),
        due_at: opt_timestamp(i.due_at),
    }
}

pub fn transition(t: TransitionRow) -> CareTransition {
    CareTransition {
        id: t.id.to_string(),
        patient_id: t.patient_id.to_string(),
        from_setting: t.from_setting,
        to_setting: t.to_setting,
        reason: t.reason,
        success_criteria: t.success_criteria,
        risk_level: t.risk_level,
        checklist: t.checklist.0.into_iter().map(checklist_item).collect(),
        status: if t.status == "completed" {
            TransitionStatus::Completed as i32
        } else {
            TransitionStatus::InProgress as i32
        },
        started_at: Some(to_timestamp(t.started_at)),
        completed_at: opt_timestamp(t.completed_at),
        version: t.version,
    }
}

// ---------- validated inputs ----------

pub fn role(field: &str, value: i32) -> ApiResult<CareRole> {
    v::enum_value::<CareRole>(field, value)
}

pub fn optional_role(field: &str, value: i32) -> ApiResult<Option<CareRole>> {
    v::optional_enum::<CareRole>(field, value)
}

/// Validates and normalizes the one-screen plan content.
pub fn plan_content(c: Option<&CarePlanContent>) -> ApiResult<CarePlanContent> {
    let c = c.ok_or_else(|| ApiError::invalid("content", "is required"))?;
    v::items("content.goals", &c.goals)?;
    let goals = c
        .goals
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let field = |f: &str| format!("content.goals[{i}].{f}");
            v::optional_date(&field("target_date"), &g.target_date)?;
            Ok(Goal {
                text: v::text(&field("text"), &g.text, MAX_TEXT)?,
                target_date: g.target_date.clone(),
                status: v::enum_value::<GoalStatus>(&field("status"), g.status)? as i32,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let medications = medications("content.medications", &c.medications)?;
    v::items("content.allergies", &c.allergies)?;
    let allergies = c
        .allergies
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let field = |f: &str| format!("content.allergies[{i}].{f}");
            Ok(Allergy {
                substance: v::text(&field("substance"), &a.substance, MAX_SHORT)?,
                reaction: v::optional_text(&field("reaction"), &a.reaction, MAX_SHORT)?,
                severity: v::enum_value::<AllergySeverity>(&field("severity"), a.severity)? as i32,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    v::items("content.who_to_call", &c.who_to_call)?;
    let who_to_call = c
        .who_to_call
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let field = |f: &str| format!("content.who_to_call[{i}].{f}");
            Ok(WhoToCall {
                role: role(&field("role"), w.role)? as i32,
                phone: v::text(&field("phone"), &w.phone, 40)?,
                hours: v::optional_text(&field("hours"), &w.hours, MAX_SHORT)?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let next_touchpoint = c
        .next_touchpoint
        .as_ref()
        .map(|t| {
            v::timestamp("content.next_touchpoint.at", t.at.as_ref())?;
            Ok::<_, ApiError>(Touchpoint {
                at: t.at,
                description: v::text(
                    "content.next_touchpoint.description",
                    &t.description,
                    MAX_TEXT,
                )?,
                owner_role: role("content.next_touchpoint.owner_role", t.owner_role)? as i32,
            })
        })
        .transpose()?;
    Ok(CarePlanContent {
        // One sentence: what are we trying to achieve.
        summary: v::text("content.summary", &c.summary, 500)?,
        goals,
        medications,
        allergies,
        red_flags: v::text_list("content.red_flags", &c.red_flags, MAX_SHORT)?,
        who_to_call,
        next_touchpoint,
    })
}

pub fn medications(field: &str, meds: &[Medication]) -> ApiResult<Vec<Medication>> {
    v::items(field, meds)?;
    meds.iter()
        .enumerate()
        .map(|(i, m)| {
            let f = |name: &str| format!("{field}[{i}].{name}");
            Ok(Medication {
                name: v::text(&f("name"), &m.name, MAX_SHORT)?,
                dose: v::text(&f("dose"), &m.dose, MAX_SHORT)?,
                route: v::text(&f("route"), &m.route, MAX_SHORT)?,
                frequency: v::text(&f("frequency"), &m.frequency, MAX_SHORT)?,
                status: v::enum_value::<MedicationStatus>(&f("status"), m.status)? as i32,
            })
        })
        .collect()
}

pub fn preferred_contact(field: &str, c: Option<&PreferredContact>) -> ApiResult<(i32, String)> {
    match c {
        None => Ok((0, String::new())),
        Some(c) => {
            let channel = v::enum_value::<ContactChannel>(&format!("{field}.channel"), c.channel)?;
            let address = v::text(&format!("{field}.address"), &c.address, MAX_SHORT)?;
            Ok((channel as i32, address))
        }
    }
}

/// A validated new care-team member row (ids and patient filled in by the caller).
pub fn new_member(field: &str, m: Option<&NewCareTeamMember>) -> ApiResult<MemberRow> {
    let m = m.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    let f = |name: &str| format!("{field}.{name}");
    let kind = v::enum_value::<MemberKind>(&f("kind"), m.kind)?;
    let organization_id = v::optional_uuid(&f("organization_id"), &m.organization_id)?;
    if kind == MemberKind::Organization && organization_id.is_none() {
        return Err(ApiError::invalid(
            f("organization_id"),
            "is required for an organization member",
        ));
    }
    let subject = v::optional_text(&f("subject"), &m.subject, MAX_SHORT)?;
    let subject_issuer = v::optional_text(&f("subject_issuer"), &m.subject_issuer, MAX_SHORT)?;
    if !subject.is_empty() && organization_id.is_none() {
        // A person is matched on organization and subject together, never the subject alone.
        return Err(ApiError::invalid(
            f("organization_id"),
            "is required with a subject",
        ));
    }
    if !subject_issuer.is_empty() && subject.is_empty() {
        return Err(ApiError::invalid(
            f("subject_issuer"),
            "is given only with a subject",
        ));
    }
    let (contact_channel, contact_address) =
        preferred_contact(&f("preferred_contact"), m.preferred_contact.as_ref())?;
    Ok(MemberRow {
        id: uuid::Uuid::now_v7(),
        patient_id: uuid::Uuid::nil(),
        kind: kind as i32,
        display_name: v::text(&f("display_name"), &m.display_name, MAX_SHORT)?,
        role: role(&f("role"), m.role)? as i32,
        organization_id,
        subject: (!subject.is_empty()).then_some(subject),
        subject_issuer: (!subject_issuer.is_empty()).then_some(subject_issuer),
        contact_channel,
        contact_address,
        is_lead: m.is_lead,
        added_at: careloop_runtime::time::now(),
    })
}

pub fn loop_ref(field: &str, l: Option<&LoopRef>) -> ApiResult<(i32, String)> {
    match l {
        None => Ok((0, String::new())),
        Some(l) => {
            let kind = v::enum_value::<LoopKind>(&format!("{field}.kind"), l.kind)?;
            let id = v::uuid(&format!("{field}.id"), &l.id)?;
            Ok((kind as i32, id.to_string()))
        }
    }
}
