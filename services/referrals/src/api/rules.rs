//! Pathway rules, managed as data: event type, conditions, what to create, for which role, due when.

use super::{ReferralsApi, SOURCE, convert};
use crate::store::{self, RuleRow};
use careloop_proto::common::v1::CareRole;
use careloop_proto::referrals::v1::*;
use careloop_runtime::auth::{Principal, PrincipalKind};
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::validate::{self as v, MAX_SHORT};
use sqlx::types::Json;
use uuid::Uuid;

/// Rules are global configuration: internal services and staff holding the `admin` role manage them.
fn may_manage(who: &Principal) -> ApiResult<()> {
    let admin = who.kind == PrincipalKind::Staff && who.roles.iter().any(|r| r == "admin");
    if who.kind == PrincipalKind::Service || admin {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied(
            "pathway rules are managed by administrators",
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
        // Another organization's rule is not even there for this caller.
        Some(_) if rule.org_id.is_some() => Err(ApiError::Hidden("pathway rule")),
        Some(_) => Err(ApiError::PermissionDenied(
            "platform default rules are changed by CareLoop operators",
        )),
    }
}

/// Rules are readable by any staff or service: they explain why loops appeared.
fn may_read(who: &Principal) -> ApiResult<()> {
    match who.kind {
        PrincipalKind::Service | PrincipalKind::Staff => Ok(()),
        _ => Err(ApiError::PermissionDenied(
            "pathway rules are visible to hospital staff",
        )),
    }
}

impl ReferralsApi {
    pub(super) async fn create_pathway_rule(
        &self,
        who: &Principal,
        req: CreatePathwayRuleRequest,
    ) -> ApiResult<CreatePathwayRuleResponse> {
        let name = v::text("name", &req.name, MAX_SHORT)?;
        let (event_type, conditions) =
            careloop_runtime::events::fields::rule_conditions(&req.event_type, &req.conditions)?;
        let action = v::enum_value::<PathwayAction>("action", req.action)?;
        let (action_name, order_kind, service_type) = match action {
            PathwayAction::CreateOrder => {
                let kind = convert::kind(v::enum_value::<OrderKind>("order_kind", req.order_kind)?)
                    .ok_or_else(|| ApiError::invalid("order_kind", "is required"))?;
                if kind.has_results() {
                    return Err(ApiError::invalid(
                        "order_kind",
                        "lab and imaging orders need a test code: not from a rule",
                    ));
                }
                (
                    "create_order",
                    Some(kind.as_str().to_owned()),
                    String::new(),
                )
            }
            PathwayAction::CreateReferral => (
                "create_referral",
                None,
                v::text("service_type", &req.service_type, MAX_SHORT)?,
            ),
            PathwayAction::CreateTask => ("create_task", None, String::new()),
            PathwayAction::Unspecified => return Err(ApiError::invalid("action", "is required")),
        };
        let owner_role = v::enum_value::<CareRole>("owner_role", req.owner_role)?;
        if !(1..=525_600).contains(&req.due_in_minutes) {
            return Err(ApiError::invalid(
                "due_in_minutes",
                "must be between 1 and 525600 (a year)",
            ));
        }
        may_manage(who)?;
        let mut w =
            careloop_runtime::begin_write!(self.pool, SOURCE, "CreatePathwayRule", who, req);
        let row = RuleRow {
            id: Uuid::now_v7(),
            name,
            event_type,
            conditions: Json(conditions),
            action: action_name.into(),
            order_kind,
            service_type,
            owner_role: owner_role as i32,
            due_in_minutes: req.due_in_minutes,
            enabled: true,
            version: 1,
            org_id: rule_org(who),
        };
        store::insert_rule(w.conn(), &row).await?;
        let id = row.id;
        w.finish_for(
            None,
            id,
            CreatePathwayRuleResponse {
                rule: Some(convert::rule(row)),
            },
        )
        .await
    }

    pub(super) async fn list_pathway_rules(
        &self,
        who: &Principal,
        _req: ListPathwayRulesRequest,
    ) -> ApiResult<ListPathwayRulesResponse> {
        may_read(who)?;
        let rows = store::rules(&mut *self.pool.acquire().await?, rule_org(who)).await?;
        Ok(ListPathwayRulesResponse {
            rules: rows.into_iter().map(convert::rule).collect(),
        })
    }

    pub(super) async fn set_pathway_rule_enabled(
        &self,
        who: &Principal,
        req: SetPathwayRuleEnabledRequest,
    ) -> ApiResult<SetPathwayRuleEnabledResponse> {
        let id = v::uuid("rule_id", &req.rule_id)?;
        let version = v::expected_version(req.expected_version)?;
        may_manage(who)?;
        let (mut w, mut row) = careloop_runtime::begin_write!(
            self.pool, SOURCE, "SetPathwayRuleEnabled", who, req, w => {
                // Who may see the rule first: another organization's caller learns nothing of it,
                // not even its version.
                let row = store::lock_rule(w.conn(), id).await?;
                may_change(who, &row)?;
                row
            }
        );
        ApiError::ensure_version(row.version, version)?;
        row.enabled = req.enabled;
        row.version += 1;
        store::save_rule_enabled(w.conn(), id, row.enabled, row.version).await?;
        w.finish_for(
            None,
            id,
            SetPathwayRuleEnabledResponse {
                rule: Some(convert::rule(row)),
            },
        )
        .await
    }
}
