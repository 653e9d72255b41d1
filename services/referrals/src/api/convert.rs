//! Rows into protos and proto enums into domain values.

use crate::domain::due::Urgency;
use crate::domain::order::{Kind, Status as OrderStatusD};
use crate::domain::referral::Status as ReferralStatusD;
use crate::domain::routing::{Flag, Setting};
use crate::store::*;
use careloop_proto::common::v1::{LoopKind, Priority};
use careloop_proto::referrals::v1::*;
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::time::{opt_timestamp, to_timestamp};
use chrono::{DateTime, Utc};

pub fn urgency(p: Priority) -> Urgency {
    match p {
        Priority::Stat => Urgency::Stat,
        Priority::Urgent => Urgency::Urgent,
        _ => Urgency::Routine,
    }
}

pub fn kind(k: OrderKind) -> Option<Kind> {
    Some(match k {
        OrderKind::Unspecified => return None,
        OrderKind::Lab => Kind::Lab,
        OrderKind::Imaging => Kind::Imaging,
        OrderKind::Transport => Kind::Transport,
        OrderKind::HomeHealth => Kind::HomeHealth,
        OrderKind::Dme => Kind::Dme,
    })
}

pub fn kind_proto(k: Kind) -> OrderKind {
    match k {
        Kind::Lab => OrderKind::Lab,
        Kind::Imaging => OrderKind::Imaging,
        Kind::Transport => OrderKind::Transport,
        Kind::HomeHealth => OrderKind::HomeHealth,
        Kind::Dme => OrderKind::Dme,
    }
}

pub fn setting(s: OrderSetting) -> Setting {
    match s {
        OrderSetting::Inpatient => Setting::Inpatient,
        OrderSetting::Emergency => Setting::Emergency,
        OrderSetting::Home => Setting::Home,
        _ => Setting::Outpatient,
    }
}

pub fn flag(f: ResultFlag) -> Option<Flag> {
    Some(match f {
        ResultFlag::Unspecified => return None,
        ResultFlag::Normal => Flag::Normal,
        ResultFlag::Abnormal => Flag::Abnormal,
        ResultFlag::Critical => Flag::Critical,
    })
}

pub fn flag_str(f: Flag) -> &'static str {
    match f {
        Flag::Normal => "normal",
        Flag::Abnormal => "abnormal",
        Flag::Critical => "critical",
    }
}

fn flag_proto(s: &str) -> ResultFlag {
    match s {
        "normal" => ResultFlag::Normal,
        "abnormal" => ResultFlag::Abnormal,
        "critical" => ResultFlag::Critical,
        _ => ResultFlag::Unspecified,
    }
}

pub fn referral_status(s: &str) -> ReferralStatus {
    match ReferralStatusD::parse(s) {
        Some(ReferralStatusD::Placed) => ReferralStatus::Placed,
        Some(ReferralStatusD::Accepted) => ReferralStatus::Accepted,
        Some(ReferralStatusD::Declined) => ReferralStatus::Declined,
        Some(ReferralStatusD::Scheduled) => ReferralStatus::Scheduled,
        Some(ReferralStatusD::Rescheduled) => ReferralStatus::Rescheduled,
        Some(ReferralStatusD::NoShow) => ReferralStatus::NoShow,
        Some(ReferralStatusD::Seen) => ReferralStatus::Seen,
        Some(ReferralStatusD::NoteReceived) => ReferralStatus::NoteReceived,
        Some(ReferralStatusD::Cancelled) => ReferralStatus::Cancelled,
        None => ReferralStatus::Unspecified,
    }
}

pub fn order_status(s: &str) -> OrderStatus {
    match OrderStatusD::parse(s) {
        Some(OrderStatusD::Placed) => OrderStatus::Placed,
        Some(OrderStatusD::Scheduled) => OrderStatus::Scheduled,
        Some(OrderStatusD::Confirmed) => OrderStatus::Confirmed,
        Some(OrderStatusD::Completed) => OrderStatus::Completed,
        Some(OrderStatusD::Closed) => OrderStatus::Closed,
        Some(OrderStatusD::Cancelled) => OrderStatus::Cancelled,
        None => OrderStatus::Unspecified,
    }
}

fn overdue(due: Option<DateTime<Utc>>, open: bool, now: DateTime<Utc>) -> bool {
    open && due.is_some_and(|d| d < now)
}

fn id_or_empty(id: Option<uuid::Uuid>) -> String {
    id.map(|i| i.to_string()).unwrap_or_default()
}

pub fn referral(r: ReferralRow, timeline: Vec<TimelineRow>, now: DateTime<Utc>) -> Referral {
    let open = ReferralStatusD::parse(&r.status).is_some_and(ReferralStatusD::is_open);
    Referral {
        id: r.id.to_string(),
        patient_id: r.patient_id.to_string(),
        from_org_id: r.from_org_id.to_string(),
        from_clinician: r.from_clinician,
        to_org_id: id_or_empty(r.to_org_id),
        to_specialty: r.to_specialty,
        service_type: r.service_type,
        reason: r.reason,
        urgency: r.urgency,
        owner_role: r.owner_role,
        clinical_context: r.clinical_context,
        status: referral_status(&r.status) as i32,
        stage_due_at: opt_timestamp(r.stage_due_at),
        overdue: overdue(r.stage_due_at, open, now),
        appointment_at: opt_timestamp(r.appointment_at),
        location: r.location,
        reschedule_count: r.reschedule_count,
        status_reason: r.status_reason,
        note_reference: r.note_reference,
        timeline: timeline
            .into_iter()
            .map(|t| TimelineEntry {
                at: Some(to_timestamp(t.at)),
                actor: t.actor,
                from_status: t.from_status,
                to_status: t.to_status,
                reason: t.reason,
            })
            .collect(),
        source_rule_id: id_or_empty(r.source_rule_id),
        version: r.version,
        created_at: Some(to_timestamp(r.created_at)),
        updated_at: Some(to_timestamp(r.updated_at)),
    }
}

pub fn order(o: OrderRow, now: DateTime<Utc>) -> ApiResult<Order> {
    let k = Kind::parse(&o.kind).ok_or_else(|| {
        ApiError::internal("stored order kind is unknown", anyhow::anyhow!("{}", o.id))
    })?;
    let open = OrderStatusD::parse(&o.status).is_some_and(OrderStatusD::is_open);
    Ok(Order {
        id: o.id.to_string(),
        patient_id: o.patient_id.to_string(),
        kind: kind_proto(k) as i32,
        test_code: o.test_code,
        description: o.description,
        setting: o.setting,
        owner_role: o.owner_role,
        due_at: opt_timestamp(o.due_at),
        status: order_status(&o.status) as i32,
        status_reason: o.status_reason,
        scheduled_at: opt_timestamp(o.scheduled_at),
        window_start: opt_timestamp(o.window_start),
        window_end: opt_timestamp(o.window_end),
        home_health: o.home_health,
        duplicate_override_reason: o.duplicate_override_reason,
        overdue: overdue(o.due_at, open, now),
        source_rule_id: id_or_empty(o.source_rule_id),
        version: o.version,
        created_at: Some(to_timestamp(o.created_at)),
        updated_at: Some(to_timestamp(o.updated_at)),
    })
}

pub fn result(r: ResultRow, now: DateTime<Utc>) -> LabResult {
    let open = r.status == "routed" && r.flag != "normal";
    LabResult {
        id: r.id.to_string(),
        order_id: r.order_id.to_string(),
        patient_id: r.patient_id.to_string(),
        flag: flag_proto(&r.flag) as i32,
        code: r.code,
        summary: r.summary,
        routed_to_role: r.routed_to_role,
        backup_role: r.backup_role,
        due_at: opt_timestamp(r.due_at),
        status: if r.status == "acknowledged" {
            ResultStatus::Acknowledged as i32
        } else {
            ResultStatus::Routed as i32
        },
        acknowledged_by: r.acknowledged_by.unwrap_or_default(),
        acknowledged_at: opt_timestamp(r.acknowledged_at),
        action_taken: r.action_taken,
        overdue: overdue(r.due_at, open, now),
        version: r.version,
        received_at: Some(to_timestamp(r.received_at)),
    }
}

pub fn open_loop(l: LoopRow, now: DateTime<Utc>) -> OpenLoop {
    OpenLoop {
        kind: match l.kind {
            2 => LoopKind::Referral as i32,
            3 => LoopKind::Order as i32,
            _ => LoopKind::Result as i32,
        },
        id: l.id.to_string(),
        patient_id: l.patient_id.to_string(),
        status: l.status,
        owner_role: l.owner_role,
        backup_role: l.backup_role,
        due_at: opt_timestamp(l.due_at),
        overdue: overdue(l.due_at, true, now),
        label: l.label,
    }
}

pub fn rule(r: RuleRow) -> PathwayRule {
    PathwayRule {
        id: r.id.to_string(),
        name: r.name,
        event_type: r.event_type,
        conditions: r.conditions.0.into_iter().collect(),
        action: match r.action.as_str() {
            "create_order" => PathwayAction::CreateOrder as i32,
            "create_task" => PathwayAction::CreateTask as i32,
            _ => PathwayAction::CreateReferral as i32,
        },
        order_kind: r
            .order_kind
            .as_deref()
            .and_then(Kind::parse)
            .map(|k| kind_proto(k) as i32)
            .unwrap_or(0),
        service_type: r.service_type,
        owner_role: r.owner_role,
        due_in_minutes: r.due_in_minutes,
        enabled: r.enabled,
        org_id: r.org_id.map(|o| o.to_string()).unwrap_or_default(),
        version: r.version,
    }
}
