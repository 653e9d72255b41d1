//! Rows into protos, proto input into validated values.

use crate::domain::status::Status;
use crate::store::{DecisionJson, ExtensionJson, Line, Packet, RequestRow};
use careloop_proto::common::v1::{CareRole, LoopKind, LoopRef};
use careloop_proto::priorauth::v1::*;
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::time::{opt_timestamp, to_timestamp};
use careloop_runtime::validate::{self as v, MAX_SHORT, MAX_TEXT};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

pub fn status(s: &str) -> AuthStatus {
    match Status::parse(s) {
        Some(Status::Draft) => AuthStatus::Draft,
        Some(Status::Submitted) => AuthStatus::Submitted,
        Some(Status::Pended) => AuthStatus::Pended,
        Some(Status::Approved) => AuthStatus::Approved,
        Some(Status::PartiallyApproved) => AuthStatus::PartiallyApproved,
        Some(Status::Denied) => AuthStatus::Denied,
        Some(Status::Appealed) => AuthStatus::Appealed,
        Some(Status::AppealApproved) => AuthStatus::AppealApproved,
        Some(Status::AppealDenied) => AuthStatus::AppealDenied,
        Some(Status::Cancelled) => AuthStatus::Cancelled,
        None => AuthStatus::Unspecified,
    }
}

pub fn status_name(s: AuthStatus) -> Option<&'static str> {
    Some(match s {
        AuthStatus::Unspecified => return None,
        AuthStatus::Draft => "draft",
        AuthStatus::Submitted => "submitted",
        AuthStatus::Pended => "pended",
        AuthStatus::Approved => "approved",
        AuthStatus::PartiallyApproved => "partially_approved",
        AuthStatus::Denied => "denied",
        AuthStatus::Appealed => "appealed",
        AuthStatus::AppealApproved => "appeal_approved",
        AuthStatus::AppealDenied => "appeal_denied",
        AuthStatus::Cancelled => "cancelled",
    })
}

fn lines(l: &[Line]) -> Vec<ServiceLine> {
    l.iter()
        .map(|x| ServiceLine {
            code: x.code.clone(),
            quantity: x.quantity,
        })
        .collect()
}

fn decision(d: &DecisionJson) -> Decision {
    Decision {
        authorization_number: d.authorization_number.clone(),
        items: lines(&d.items),
        valid_from: opt_timestamp(d.valid_from),
        valid_to: opt_timestamp(d.valid_to),
        denial_reason_code: d.denial_reason_code.clone(),
        denial_reason_text: d.denial_reason_text.clone(),
        decided_at: opt_timestamp(d.decided_at),
    }
}

fn extension(e: &ExtensionJson) -> Extension {
    Extension {
        reason: e.reason.clone(),
        previous_due_at: opt_timestamp(e.previous_due_at),
        new_due_at: Some(to_timestamp(e.new_due_at)),
        recorded_at: Some(to_timestamp(e.recorded_at)),
    }
}

pub fn request(r: RequestRow, now: DateTime<Utc>) -> PriorAuthRequest {
    let open = Status::parse(&r.status).is_some_and(Status::is_open);
    PriorAuthRequest {
        id: r.id.to_string(),
        patient_id: r.patient_id.to_string(),
        linked_loop: (r.linked_kind != 0).then(|| LoopRef {
            kind: r.linked_kind,
            id: r.linked_id.clone(),
        }),
        payer_id: r.payer_id,
        plan_member_id: r.plan_member_id,
        service_lines: lines(&r.service_lines.0),
        diagnosis_codes: r.diagnosis_codes,
        urgency: r.urgency,
        urgency_reason: r.urgency_reason,
        packet: Some(ClinicalPacket {
            notes_summary: r.packet.0.notes_summary,
            medications: r.packet.0.medications,
            prior_treatments: r.packet.0.prior_treatments,
            attachment_refs: r.packet.0.attachment_refs,
        }),
        owner_role: r.owner_role,
        next_action: r.next_action,
        next_patient_update_at: opt_timestamp(r.next_patient_update_at),
        status: status(&r.status) as i32,
        due_at: opt_timestamp(r.due_at),
        overdue: open && r.due_at.is_some_and(|d| d < now),
        first_submitted_at: opt_timestamp(r.first_submitted_at),
        submitted_at: opt_timestamp(r.submitted_at),
        decision_due_at: opt_timestamp(r.decision_due_at),
        extensions: r.extensions.0.iter().map(extension).collect(),
        information_requested: r.information_requested,
        decision: r.decision.as_ref().map(|d| decision(&d.0)),
        appeal_reason: r.appeal_reason,
        appeal_decision: r.appeal_decision.as_ref().map(|d| decision(&d.0)),
        status_reason: r.status_reason,
        version: r.version,
        created_at: Some(to_timestamp(r.created_at)),
        updated_at: Some(to_timestamp(r.updated_at)),
    }
}

/// A request's editable content, validated; incompleteness is checked only at submission.
pub struct Content {
    pub linked_kind: i32,
    pub linked_id: String,
    pub payer_id: String,
    pub plan_member_id: String,
    pub service_lines: Vec<Line>,
    pub diagnosis_codes: Vec<String>,
    pub urgency: i32,
    pub urgency_reason: String,
    pub packet: Packet,
    pub owner_role: CareRole,
    pub next_action: String,
    pub next_patient_update_at: Option<DateTime<Utc>>,
}

pub fn service_lines(field: &str, l: &[ServiceLine]) -> ApiResult<Vec<Line>> {
    v::items(field, l)?;
    l.iter()
        .enumerate()
        .map(|(i, x)| {
            if !(1..=9999).contains(&x.quantity) {
                return Err(ApiError::invalid(
                    format!("{field}[{i}].quantity"),
                    "must be between 1 and 9999",
                ));
            }
            Ok(Line {
                code: v::text(&format!("{field}[{i}].code"), &x.code, 20)?,
                quantity: x.quantity,
            })
        })
        .collect()
}

pub fn content(c: Option<&RequestContent>) -> ApiResult<Content> {
    let c = c.ok_or_else(|| ApiError::invalid("content", "is required"))?;
    let (linked_kind, linked_id) = match &c.linked_loop {
        None => (0, String::new()),
        Some(l) => {
            let kind = v::enum_value::<LoopKind>("content.linked_loop.kind", l.kind)?;
            if !matches!(kind, LoopKind::Order | LoopKind::Referral) {
                return Err(ApiError::invalid(
                    "content.linked_loop.kind",
                    "must be an order or a referral",
                ));
            }
            (
                kind as i32,
                v::uuid("content.linked_loop.id", &l.id)?.to_string(),
            )
        }
    };
    let packet = c.packet.clone().unwrap_or_default();
    Ok(Content {
        linked_kind,
        linked_id,
        payer_id: v::optional_text("content.payer_id", &c.payer_id, MAX_SHORT)?,
        plan_member_id: v::optional_text("content.plan_member_id", &c.plan_member_id, MAX_SHORT)?,
        service_lines: service_lines("content.service_lines", &c.service_lines)?,
        diagnosis_codes: v::text_list("content.diagnosis_codes", &c.diagnosis_codes, 20)?,
        urgency: v::optional_enum::<Urgency>("content.urgency", c.urgency)?
            .map(|u| u as i32)
            .unwrap_or(0),
        urgency_reason: v::optional_text("content.urgency_reason", &c.urgency_reason, MAX_TEXT)?,
        packet: Packet {
            notes_summary: v::optional_text(
                "content.packet.notes_summary",
                &packet.notes_summary,
                MAX_TEXT,
            )?,
            medications: v::text_list(
                "content.packet.medications",
                &packet.medications,
                MAX_SHORT,
            )?,
            prior_treatments: v::text_list(
                "content.packet.prior_treatments",
                &packet.prior_treatments,
                MAX_TEXT,
            )?,
            attachment_refs: v::text_list(
                "content.packet.attachment_refs",
                &packet.attachment_refs,
                MAX_SHORT,
            )?,
        },
        owner_role: v::enum_value::<CareRole>("content.owner_role", c.owner_role)?,
        next_action: v::optional_text("content.next_action", &c.next_action, MAX_TEXT)?,
        next_patient_update_at: v::optional_timestamp(
            "content.next_patient_update_at",
            c.next_patient_update_at.as_ref(),
        )?,
    })
}

impl Content {
    pub fn apply_to(self, r: &mut RequestRow) {
        r.linked_kind = self.linked_kind;
        r.linked_id = self.linked_id;
        r.payer_id = self.payer_id;
        r.plan_member_id = self.plan_member_id;
        r.service_lines = Json(self.service_lines);
        r.diagnosis_codes = self.diagnosis_codes;
        r.urgency = self.urgency;
        r.urgency_reason = self.urgency_reason;
        r.packet = Json(self.packet);
        r.owner_role = self.owner_role as i32;
        r.next_action = self.next_action;
        r.next_patient_update_at = self.next_patient_update_at;
    }
}
