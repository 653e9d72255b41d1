//! Routing rules, managed as data: event type and conditions -> ladder of roles, priority, channels.

use super::{NotificationsApi, SOURCE, convert};
use crate::domain::ladder::RuleRung;
use crate::domain::loops;
use crate::store::{self, RuleRow};
use careloop_proto::common::v1::CareRole;
use careloop_proto::notifications::v1::*;
use careloop_runtime::auth::{Principal, PrincipalKind};
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::events::fields;
use careloop_runtime::validate::{self as v, MAX_SHORT};
use sqlx::types::Json;
use uuid::Uuid;

/// Most rungs a ladder may have, and the longest window (a week).
const MAX_RUNGS: usize = 10;
const MAX_WINDOW_MINUTES: i32 = 10_080;

/// Internal services and staff holding the `admin` role manage rules.
fn may_manage(who: &Principal) -> ApiResult<()> {
    let admin = who.kind == PrincipalKind::Staff && who.roles.iter().any(|r| r == "admin");
    if who.kind == PrincipalKind::Service || admin {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied(
            "routing rules are managed by administrators",
        ))
    }
}

/// The organization whose rules `who` manages and sees: its own (services: every rule).
fn rule_org(who: &Principal) -> Option<Uuid> {
    (who.kind != PrincipalKind::Service).then_some(who.org_id)
}

/// An administrator changes only its organization's rules; platform defaults only services.
fn may_change(who: &Principal, rule: &RuleRow) -> ApiResult<()> {
    match rule_org(who) {
        None => Ok(()),
        Some(org) if rule.org_id == Some(org) => Ok(()),
        Some(_) if rule.org_id.is_some() => Err(ApiError::Hidden("routing rule")),
        Some(_) => Err(ApiError::PermissionDenied(
            "platform default rules are changed by CareLoop operators",
        )),
    }
}

fn may_read(who: &Principal) -> ApiResult<()> {
    match who.kind {
        PrincipalKind::Service | PrincipalKind::Staff => Ok(()),
        _ => Err(ApiError::PermissionDenied(
            "routing rules are visible to hospital staff",
        )),
    }
}

/// The ladder as the rule stores it: 1 to 10 rungs, each a known role or a role field of the event,
/// with a window of 1 minute to a week.
fn ladder(event_type: &str, rungs: &[Rung]) -> ApiResult<Vec<RuleRung>> {
    if rungs.is_empty() || rungs.len() > MAX_RUNGS {
        return Err(ApiError::invalid("ladder", "must have 1 to 10 rungs"));
    }
    let known = fields::fields_for(event_type);
    let mut out = Vec::with_capacity(rungs.len());
    for (i, rung) in rungs.iter().enumerate() {
        if !(1..=MAX_WINDOW_MINUTES).contains(&rung.window_minutes) {
            return Err(ApiError::invalid(
                format!("ladder[{i}].window_minutes"),
                "must be between 1 and 10080 (a week)",
            ));
        }
        let target = rung.target.as_ref().and_then(|t| t.target.as_ref());
        let (role, field) = match target {
            Some(role_target::Target::Role(role)) => {
                let role = v::enum_value::<CareRole>(&format!("ladder[{i}].target.role"), *role)?;
                if role == CareRole::Unspecified {
                    return Err(ApiError::invalid(
                        format!("ladder[{i}].target.role"),
                        "is required",
                    ));
                }
                (Some(role as i32), None)
            }
            Some(role_target::Target::PlanLead(true)) => (None, None),
            Some(role_target::Target::CareTeam(true)) => {
                return Err(ApiError::invalid(
                    format!("ladder[{i}].target"),
                    "the whole team is told with `also`, not climbed as a rung",
                ));
            }
            Some(role_target::Target::EventField(field)) => {
                let name = format!("ladder[{i}].target.event_field");
                let field = v::text(&name, field, 64)?;
                if !field.ends_with("role") || !known.contains(&field) {
                    return Err(ApiError::invalid(
                        name,
                        format!("{event_type} has no role field {field:?}"),
                    ));
                }
                (None, Some(field))
            }
            None
            | Some(role_target::Target::PlanLead(false) | role_target::Target::CareTeam(false)) => {
                return Err(ApiError::invalid(
                    format!("ladder[{i}].target"),
                    "names a role, an event field or the plan lead",
                ));
            }
        };
        let special = matches!(target, Some(role_target::Target::PlanLead(true)))
            .then(|| "plan_lead".to_owned());
        out.push(RuleRung {
            role,
            field,
            special,
            window_minutes: rung.window_minutes,
        });
    }
    Ok(out)
}

/// The targets told beside the ladder: at most 10, each a role, a role field of the event, the
/// plan lead or the whole care team.
fn also(event_type: &str, targets: &[RoleTarget]) -> ApiResult<Vec<RuleRung>> {
    if targets.len() > MAX_RUNGS {
        return Err(ApiError::invalid("also", "must hold at most 10 targets"));
    }
    let known = fields::fields_for(event_type);
    let mut out = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let name = format!("also[{i}]");
        let rung = match t.target.as_ref() {
            Some(role_target::Target::Role(role)) => {
                let role = v::enum_value::<CareRole>(&format!("{name}.role"), *role)?;
                if role == CareRole::Unspecified {
                    return Err(ApiError::invalid(format!("{name}.role"), "is required"));
                }
                RuleRung {
                    role: Some(role as i32),
                    field: None,
                    special: None,
                    window_minutes: 0,
                }
            }
            Some(role_target::Target::EventField(field)) => {
                let field = v::text(&format!("{name}.event_field"), field, 64)?;
                if !field.ends_with("role") || !known.contains(&field) {
                    return Err(ApiError::invalid(
                        format!("{name}.event_field"),
                        format!("{event_type} has no role field {field:?}"),
                    ));
                }
                RuleRung {
                    role: None,
                    field: Some(field),
                    special: None,
                    window_minutes: 0,
                }
            }
            Some(role_target::Target::PlanLead(true)) => RuleRung {
                role: None,
                field: None,
                special: Some("plan_lead".into()),
                window_minutes: 0,
            },
            Some(role_target::Target::CareTeam(true)) => RuleRung {
                role: None,
                field: None,
                special: Some("care_team".into()),
                window_minutes: 0,
            },
            _ => {
                return Err(ApiError::invalid(
                    name,
                    "names a role, an event field, the plan lead or the care team",
                ));
            }
        };
        out.push(rung);
    }
    Ok(out)
}

impl NotificationsApi {
    pub(super) async fn create_routing_rule(
        &self,
        who: &Principal,
        req: CreateRoutingRuleRequest,
    ) -> ApiResult<CreateRoutingRuleResponse> {
        let name = v::text("name", &req.name, MAX_SHORT)?;
        let (event_type, conditions) = fields::rule_conditions(&req.event_type, &req.conditions)?;
        let about_a_loop = fields::sample(&event_type).is_some_and(|e| {
            e.payload
                .as_ref()
                .is_some_and(|p| loops::about(p, &fields::event_fields(&e)).is_some())
        });
        if !about_a_loop || event_type.starts_with("notifications.") {
            return Err(ApiError::invalid(
                "event_type",
                "is about no open loop: items are raised only for loops",
            ));
        }
        let ladder = ladder(&event_type, &req.ladder)?;
        let also = also(&event_type, &req.also)?;
        let priority = v::enum_value::<NotificationPriority>("priority", req.priority)?;
        let priority = convert::priority_name(priority)
            .ok_or_else(|| ApiError::invalid("priority", "is required"))?;
        let mut channels = Vec::new();
        for (i, c) in req.channels.iter().enumerate() {
            let channel = v::enum_value::<Channel>(&format!("channels[{i}]"), *c)?;
            let name = convert::channel_name(channel)
                .ok_or_else(|| ApiError::invalid(format!("channels[{i}]"), "is unspecified"))?;
            if !channels.contains(&name.to_owned()) {
                channels.push(name.to_owned());
            }
        }
        if !channels.iter().any(|c| c == "inbox") {
            // Every item is in an inbox; other channels are in addition to it.
            channels.insert(0, "inbox".into());
        }
        may_manage(who)?;
        let mut w =
            careloop_runtime::begin_write!(self.pool, SOURCE, "CreateRoutingRule", who, req);
        let row = RuleRow {
            id: Uuid::now_v7(),
            org_id: rule_org(who),
            name,
            event_type,
            conditions: Json(conditions),
            ladder: Json(ladder),
            priority: priority.into(),
            channels,
            enabled: true,
            version: 1,
            also: Json(also),
        };
        store::insert_rule(w.conn(), &row).await?;
        let id = row.id;
        let done = w
            .finish_for(
                None,
                id,
                CreateRoutingRuleResponse {
                    rule: Some(convert::rule(row)),
                },
            )
            .await;
        self.directory.rules_changed();
        done
    }

    pub(super) async fn list_routing_rules(
        &self,
        who: &Principal,
        _req: ListRoutingRulesRequest,
    ) -> ApiResult<ListRoutingRulesResponse> {
        may_read(who)?;
        let rows = store::rules(&mut *self.pool.acquire().await?, rule_org(who)).await?;
        Ok(ListRoutingRulesResponse {
            rules: rows.into_iter().map(convert::rule).collect(),
        })
    }

    pub(super) async fn set_routing_rule_enabled(
        &self,
        who: &Principal,
        req: SetRoutingRuleEnabledRequest,
    ) -> ApiResult<SetRoutingRuleEnabledResponse> {
        let id = v::uuid("rule_id", &req.rule_id)?;
        let version = v::expected_version(req.expected_version)?;
        may_manage(who)?;
        let (mut w, mut row) = careloop_runtime::begin_write!(
            self.pool, SOURCE, "SetRoutingRuleEnabled", who, req, w => {
                // Who may see the rule first: another organization's caller learns nothing of it,
                // not even its version.
                let row = store::lock_rule(w.conn(), id, None).await?;
                may_change(who, &row)?;
                row
            }
        );
        ApiError::ensure_version(row.version, version)?;
        row.enabled = req.enabled;
        row.version += 1;
        store::save_rule_enabled(w.conn(), &row).await?;
        let done = w
            .finish_for(
                None,
                id,
                SetRoutingRuleEnabledResponse {
                    rule: Some(convert::rule(row)),
                },
            )
            .await;
        self.directory.rules_changed();
        done
    }
}
