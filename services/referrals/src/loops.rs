//! Creating referrals and orders, shared by the API and the pathway rules: the row with its first
//! stage due time, and the event announcing it.

use crate::domain::due::{self, ReferralDue};
use crate::domain::order::{Kind, Status as OrderStatus};
use crate::domain::referral::Status;
use crate::store::{OrderRow, ReferralRow};
use careloop_proto::common::v1::Priority;
use careloop_proto::events::v1::{OrderPlaced, ReferralPlaced, event::Payload};
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub struct NewReferral {
    pub patient_id: Uuid,
    pub from_org_id: Uuid,
    pub from_clinician: String,
    pub to_org_id: Option<Uuid>,
    pub to_specialty: String,
    pub service_type: String,
    pub reason: String,
    pub urgency: Priority,
    pub owner_role: i32,
    pub clinical_context: String,
    /// The pathway rule and event that created it.
    pub source: Option<(Uuid, Uuid)>,
}

pub fn referral_row(n: NewReferral, cfg: &ReferralDue, now: DateTime<Utc>) -> ReferralRow {
    let urgency = crate::api::convert::urgency(n.urgency);
    ReferralRow {
        id: Uuid::now_v7(),
        patient_id: n.patient_id,
        from_org_id: n.from_org_id,
        from_clinician: n.from_clinician,
        to_org_id: n.to_org_id,
        to_specialty: n.to_specialty,
        service_type: n.service_type,
        reason: n.reason,
        urgency: n.urgency as i32,
        owner_role: n.owner_role,
        clinical_context: n.clinical_context,
        status: Status::Placed.as_str().into(),
        stage_due_at: due::referral_stage_due(cfg, Status::Placed, urgency, now, None),
        overdue_stage: None,
        appointment_at: None,
        location: String::new(),
        reschedule_count: 0,
        status_reason: String::new(),
        note_reference: String::new(),
        source_rule_id: n.source.map(|s| s.0),
        source_event_id: n.source.map(|s| s.1),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

pub fn referral_placed(r: &ReferralRow) -> Payload {
    Payload::ReferralPlaced(ReferralPlaced {
        referral_id: r.id.to_string(),
        urgency: r.urgency,
        owner_role: r.owner_role,
        stage_due_at: careloop_runtime::time::opt_timestamp(r.stage_due_at),
        source_rule_id: r.source_rule_id.map(|i| i.to_string()).unwrap_or_default(),
        service_type: r.service_type.clone(),
    })
}

pub struct NewOrder {
    pub patient_id: Uuid,
    /// The organization placing it.
    pub org_id: Option<Uuid>,
    pub kind: Kind,
    pub test_code: String,
    pub description: String,
    pub setting: i32,
    pub owner_role: i32,
    pub due_at: Option<DateTime<Utc>>,
    pub home_health: bool,
    pub duplicate_override_reason: String,
    pub source: Option<(Uuid, Uuid)>,
}

pub fn order_row(n: NewOrder, now: DateTime<Utc>) -> OrderRow {
    OrderRow {
        id: Uuid::now_v7(),
        patient_id: n.patient_id,
        org_id: n.org_id,
        kind: n.kind.as_str().into(),
        test_code: n.test_code,
        description: n.description,
        setting: n.setting,
        owner_role: n.owner_role,
        due_at: Some(
            n.due_at
                .unwrap_or_else(|| due::order_placed_due(n.kind, now)),
        ),
        overdue_stage: None,
        status: OrderStatus::Placed.as_str().into(),
        status_reason: String::new(),
        scheduled_at: None,
        window_start: None,
        window_end: None,
        home_health: n.home_health,
        duplicate_override_reason: n.duplicate_override_reason,
        source_rule_id: n.source.map(|s| s.0),
        source_event_id: n.source.map(|s| s.1),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

pub fn order_placed(o: &OrderRow, kind: Kind) -> Payload {
    Payload::OrderPlaced(OrderPlaced {
        order_id: o.id.to_string(),
        kind: crate::api::convert::kind_proto(kind) as i32,
        owner_role: o.owner_role,
        due_at: careloop_runtime::time::opt_timestamp(o.due_at),
        home_health: o.home_health,
        duplicate_overridden: !o.duplicate_override_reason.is_empty(),
        source_rule_id: o.source_rule_id.map(|i| i.to_string()).unwrap_or_default(),
        test_code: o.test_code.clone(),
    })
}
