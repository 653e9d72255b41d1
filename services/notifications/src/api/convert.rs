//! Rows to protobuf messages, and the spellings of priorities and statuses.

use crate::domain::ladder::RuleRung;
use crate::store::{ItemRow, RuleRow};
use careloop_proto::common::v1::LoopRef;
use careloop_proto::notifications::v1::*;
use careloop_runtime::time::{opt_timestamp, to_timestamp};

pub fn priority_name(p: NotificationPriority) -> Option<&'static str> {
    match p {
        NotificationPriority::Routine => Some("routine"),
        NotificationPriority::Urgent => Some("urgent"),
        NotificationPriority::Critical => Some("critical"),
        NotificationPriority::Unspecified => None,
    }
}

pub fn priority_value(name: &str) -> i32 {
    match name {
        "routine" => NotificationPriority::Routine as i32,
        "urgent" => NotificationPriority::Urgent as i32,
        "critical" => NotificationPriority::Critical as i32,
        _ => NotificationPriority::Unspecified as i32,
    }
}

pub fn channel_name(c: Channel) -> Option<&'static str> {
    match c {
        Channel::Inbox => Some("inbox"),
        Channel::Webhook => Some("webhook"),
        Channel::Email => Some("email"),
        Channel::Sms => Some("sms"),
        Channel::Unspecified => None,
    }
}

fn channel_value(name: &str) -> i32 {
    match name {
        "inbox" => Channel::Inbox as i32,
        "webhook" => Channel::Webhook as i32,
        "email" => Channel::Email as i32,
        "sms" => Channel::Sms as i32,
        _ => Channel::Unspecified as i32,
    }
}

fn status_value(name: &str) -> i32 {
    match name {
        "open" => ItemStatus::Open as i32,
        "acknowledged" => ItemStatus::Acknowledged as i32,
        "resolved" => ItemStatus::Resolved as i32,
        "held" => ItemStatus::Held as i32,
        _ => ItemStatus::Unspecified as i32,
    }
}

pub fn entry_kind(name: &str) -> i32 {
    match name {
        "raised" => EntryKind::Raised as i32,
        "escalated" => EntryKind::Escalated as i32,
        _ => EntryKind::Unspecified as i32,
    }
}

fn rung(r: &RuleRung) -> Rung {
    let target = match (&r.role, &r.field, r.special.as_deref()) {
        (Some(role), _, _) => Some(role_target::Target::Role(*role)),
        (None, Some(field), _) => Some(role_target::Target::EventField(field.clone())),
        (None, None, Some("plan_lead")) => Some(role_target::Target::PlanLead(true)),
        (None, None, Some("care_team")) => Some(role_target::Target::CareTeam(true)),
        _ => None,
    };
    Rung {
        target: Some(RoleTarget { target }),
        window_minutes: r.window_minutes,
    }
}

pub fn rule(r: RuleRow) -> RoutingRule {
    RoutingRule {
        id: r.id.to_string(),
        org_id: r.org_id.map(|o| o.to_string()).unwrap_or_default(),
        name: r.name,
        event_type: r.event_type,
        conditions: r.conditions.0.into_iter().collect(),
        ladder: r.ladder.0.iter().map(rung).collect(),
        priority: priority_value(&r.priority),
        channels: r.channels.iter().map(|c| channel_value(c)).collect(),
        enabled: r.enabled,
        version: r.version,
        also: r
            .also
            .0
            .iter()
            .map(|t| rung(t).target.unwrap_or_default())
            .collect(),
    }
}

pub fn item(i: ItemRow) -> InboxItem {
    InboxItem {
        id: i.id.to_string(),
        org_id: i.org_id.to_string(),
        patient_id: i.patient_id.to_string(),
        r#loop: Some(LoopRef {
            kind: i.loop_kind,
            id: i.loop_id.to_string(),
        }),
        stage: i.stage,
        title: i.title,
        priority: priority_value(&i.priority),
        role: i.role,
        rung: i.rung,
        rung_count: i32::try_from(i.ladder.0.len()).unwrap_or(i32::MAX),
        escalates_at: opt_timestamp(i.escalates_at),
        status: status_value(&i.status),
        created_at: Some(to_timestamp(i.created_at)),
        acknowledged_at: opt_timestamp(i.acknowledged_at),
        acknowledged_by: i.acknowledged_by.unwrap_or_default(),
        note: i.note,
        resolved_by_stage: i.resolved_by_stage.unwrap_or_default(),
        rule_id: i.rule_id.to_string(),
        source_event_type: i.source_event_type,
        version: i.version,
        deliver_at: opt_timestamp(i.deliver_at),
        delivered_at: opt_timestamp(i.delivered_at),
        read_at: opt_timestamp(i.read_at),
        read_by: i.read_by.unwrap_or_default(),
    }
}
