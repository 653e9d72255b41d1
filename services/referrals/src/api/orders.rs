//! Orders (lab, imaging, transport, home health, DME) and their results.

use super::{ReferralsApi, SOURCE, convert};
use crate::domain::due::{self, Booking};
use crate::domain::order::{self, Action, Kind, Results, Status};
use crate::domain::routing::{self, AckWindows};
use crate::loops::{self, NewOrder};
use crate::store::{self, ResultRow};
use careloop_proto::common::v1::CareRole;
use careloop_proto::events::v1::{
    OrderStatusChanged, ResultAcknowledged, ResultRecorded, ResultRouted, event::Payload,
};
use careloop_proto::referrals::v1::transition_order_request::Action as Act;
use careloop_proto::referrals::v1::*;
use careloop_runtime::auth::Principal;
use careloop_runtime::error::{ApiError, ApiResult, Reason};
use careloop_runtime::time::{now, opt_timestamp};
use careloop_runtime::validate::{self as v, MAX_TEXT};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

struct Move {
    action: Action,
    scheduled_at: Option<DateTime<Utc>>,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    home_health: Option<bool>,
    reason: String,
}

fn order_move(req: &TransitionOrderRequest) -> ApiResult<Move> {
    let act = req
        .action
        .as_ref()
        .ok_or_else(|| ApiError::invalid("action", "is required"))?;
    let plain = |action, reason| Move {
        action,
        scheduled_at: None,
        window: None,
        home_health: None,
        reason,
    };
    Ok(match act {
        Act::Schedule(s) => {
            let scheduled_at =
                v::optional_timestamp("schedule.scheduled_at", s.scheduled_at.as_ref())?;
            let start = v::optional_timestamp("schedule.window_start", s.window_start.as_ref())?;
            let end = v::optional_timestamp("schedule.window_end", s.window_end.as_ref())?;
            let window = match (start, end) {
                (Some(a), Some(b)) if b > a => Some((a, b)),
                (Some(_), Some(_)) => {
                    return Err(ApiError::invalid(
                        "schedule.window_end",
                        "must be after window_start",
                    ));
                }
                (None, None) => None,
                (Some(_), None) => {
                    return Err(ApiError::invalid(
                        "schedule.window_end",
                        "is required with window_start",
                    ));
                }
                (None, Some(_)) => {
                    return Err(ApiError::invalid(
                        "schedule.window_start",
                        "is required with window_end",
                    ));
                }
            };
            Move {
                action: Action::Schedule,
                scheduled_at,
                window,
                home_health: s.home_health,
                reason: String::new(),
            }
        }
        Act::Confirm(c) => plain(
            Action::Confirm,
            v::optional_text("confirm.note", &c.note, MAX_TEXT)?,
        ),
        Act::Complete(c) => plain(
            Action::Complete,
            v::optional_text("complete.note", &c.note, MAX_TEXT)?,
        ),
        Act::Close(c) => plain(
            Action::Close,
            v::optional_text("close.note", &c.note, MAX_TEXT)?,
        ),
        Act::Cancel(c) => plain(
            Action::Cancel,
            v::text("cancel.reason", &c.reason, MAX_TEXT)?,
        ),
    })
}

impl ReferralsApi {
    pub(super) async fn place_order(
        &self,
        who: &Principal,
        req: PlaceOrderRequest,
    ) -> ApiResult<PlaceOrderResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let kind = convert::kind(v::enum_value::<OrderKind>("kind", req.kind)?)
            .ok_or_else(|| ApiError::invalid("kind", "is required"))?;
        let test_code = if kind.has_results() {
            v::text("test_code", &req.test_code, 64)?
        } else {
            v::optional_text("test_code", &req.test_code, 64)?
        };
        let description = v::optional_text("description", &req.description, MAX_TEXT)?;
        let setting = if kind.has_results() {
            v::enum_value::<OrderSetting>("setting", req.setting)?
        } else {
            v::optional_enum::<OrderSetting>("setting", req.setting)?.unwrap_or(OrderSetting::Home)
        };
        let owner_role = v::enum_value::<CareRole>("owner_role", req.owner_role)?;
        let due_at = v::optional_timestamp("due_at", req.due_at.as_ref())?;
        let override_reason = v::optional_text(
            "duplicate_override_reason",
            &req.duplicate_override_reason,
            MAX_TEXT,
        )?;
        self.may_write(who, patient_id).await?;
        let mut w = careloop_runtime::begin_write!(self.pool, SOURCE, "PlaceOrder", who, req);
        let at = now();
        if kind.has_results() {
            // Serialize placements of one test for one patient, so two at once cannot both pass.
            store::lock_test(w.conn(), patient_id, &test_code).await?;
            let since = at - Duration::days(self.settings.duplicate_window_days);
            if let Some((prior, placed, result)) =
                store::recent_same_test(w.conn(), patient_id, &test_code, since).await?
                && override_reason.is_empty()
            {
                let result = result
                    .map(|r| format!("result {r}"))
                    .unwrap_or_else(|| "no result yet".into());
                return Err(ApiError::precondition(
                    Reason::DuplicateTest,
                    format!(
                        "duplicate test: order {prior} placed {} ({result}) is within {} days; check prior results and \
                     give duplicate_override_reason to order again",
                        placed.format("%Y-%m-%d"),
                        self.settings.duplicate_window_days
                    ),
                ));
            }
        }
        let row = loops::order_row(
            NewOrder {
                patient_id,
                org_id: (!who.org_id.is_nil()).then_some(who.org_id),
                kind,
                test_code,
                description,
                setting: setting as i32,
                owner_role: owner_role as i32,
                due_at,
                home_health: req.home_health,
                duplicate_override_reason: override_reason,
                source: None,
            },
            at,
        );
        store::insert_order(w.conn(), &row).await?;
        w.belongs_to(row.org_id);
        w.emit(patient_id, row.id, 1, loops::order_placed(&row, kind))
            .await?;
        let id = row.id;
        w.finish(
            patient_id,
            id,
            PlaceOrderResponse {
                order: Some(convert::order(row, at)?),
            },
        )
        .await
    }

    pub(super) async fn get_order(
        &self,
        who: &Principal,
        req: GetOrderRequest,
    ) -> ApiResult<GetOrderResponse> {
        let id = v::uuid("order_id", &req.order_id)?;
        let row = store::order(&mut *self.pool.acquire().await?, id).await?;
        self.read(who, "GetOrder", row.patient_id).await?;
        Ok(GetOrderResponse {
            order: Some(convert::order(row, now())?),
        })
    }

    pub(super) async fn transition_order(
        &self,
        who: &Principal,
        req: TransitionOrderRequest,
    ) -> ApiResult<TransitionOrderResponse> {
        let id = v::uuid("order_id", &req.order_id)?;
        let version = v::expected_version(req.expected_version)?;
        let mv = order_move(&req)?;
        let patient_id = store::order(&mut *self.pool.acquire().await?, id)
            .await?
            .patient_id;
        self.may_write(who, patient_id).await?;
        let mut w = careloop_runtime::begin_write!(self.pool, SOURCE, "TransitionOrder", who, req);
        let mut row = store::lock_order(w.conn(), id, Some(version)).await?;
        let kind = Kind::parse(&row.kind).ok_or_else(|| {
            ApiError::internal("stored order kind is unknown", anyhow::anyhow!("{id}"))
        })?;
        let from = Status::parse(&row.status).ok_or_else(|| {
            ApiError::internal("stored order status is unknown", anyhow::anyhow!("{id}"))
        })?;
        let (recorded, pending) = store::results_summary(w.conn(), id).await?;
        let results = Results {
            recorded,
            unacknowledged_abnormal: pending,
        };
        // The state machine first: a move that is not allowed is FAILED_PRECONDITION whatever it carries.
        let to = order::apply(kind, from, mv.action, results)
            .map_err(|e| ApiError::refused_move(e.to_string()))?;
        if mv.action == Action::Schedule && kind.needs_confirmation() && mv.window.is_none() {
            return Err(ApiError::invalid(
                "schedule.window_start",
                "a transport or DME booking needs its pickup or delivery window",
            ));
        }
        let at = now();
        if mv.action == Action::Schedule {
            row.scheduled_at = mv.scheduled_at;
            if let Some((start, end)) = mv.window {
                row.window_start = Some(start);
                row.window_end = Some(end);
            }
            if let Some(home_health) = mv.home_health {
                row.home_health = home_health;
            }
        }
        row.status = to.as_str().into();
        row.status_reason = mv.reason;
        row.due_at = due::order_stage_due(
            kind,
            to,
            at,
            Booking {
                scheduled_at: row.scheduled_at,
                window_start: row.window_start,
                window_end: row.window_end,
            },
        );
        row.version += 1;
        row.updated_at = at;
        store::save_order(w.conn(), &row).await?;
        let payload = Payload::OrderStatusChanged(OrderStatusChanged {
            order_id: id.to_string(),
            kind: convert::kind_proto(kind) as i32,
            from_status: convert::order_status(from.as_str()) as i32,
            to_status: convert::order_status(to.as_str()) as i32,
            home_health: row.home_health,
            owner_role: row.owner_role,
            due_at: opt_timestamp(row.due_at),
        });
        w.belongs_to(row.org_id);
        w.emit(patient_id, id, row.version, payload).await?;
        w.finish(
            patient_id,
            id,
            TransitionOrderResponse {
                order: Some(convert::order(row, at)?),
            },
        )
        .await
    }

    pub(super) async fn record_result(
        &self,
        who: &Principal,
        req: RecordResultRequest,
    ) -> ApiResult<RecordResultResponse> {
        let order_id = v::uuid("order_id", &req.order_id)?;
        let flag = convert::flag(v::enum_value::<ResultFlag>("flag", req.flag)?)
            .ok_or_else(|| ApiError::invalid("flag", "is required"))?;
        let code = v::text("code", &req.code, 64)?;
        let summary = v::optional_text("summary", &req.summary, MAX_TEXT)?;
        let patient_id = store::order(&mut *self.pool.acquire().await?, order_id)
            .await?
            .patient_id;
        self.may_write(who, patient_id).await?;
        let mut w = careloop_runtime::begin_write!(self.pool, SOURCE, "RecordResult", who, req);
        let order = store::lock_order(w.conn(), order_id, None).await?;
        let kind = Kind::parse(&order.kind).ok_or_else(|| {
            ApiError::internal(
                "stored order kind is unknown",
                anyhow::anyhow!("{order_id}"),
            )
        })?;
        let status = Status::parse(&order.status).ok_or_else(|| {
            ApiError::internal(
                "stored order status is unknown",
                anyhow::anyhow!("{order_id}"),
            )
        })?;
        if !status.accepts_results() {
            return Err(ApiError::precondition(
                Reason::RecordClosed,
                format!(
                    "order is {}: no result can be recorded against it",
                    status.as_str()
                ),
            ));
        }
        let at = now();
        let setting = convert::setting(
            OrderSetting::try_from(order.setting).unwrap_or(OrderSetting::Outpatient),
        );
        let route =
            routing::route(kind, setting, flag, at, AckWindows::default()).ok_or_else(|| {
                ApiError::precondition(Reason::PreconditionFailed, format!(
                    "a {} order has no results: results are recorded against lab or imaging orders",
                    kind.as_str()
                ))
            })?;
        let row = ResultRow {
            org_id: order.org_id,
            id: Uuid::now_v7(),
            order_id,
            patient_id,
            flag: convert::flag_str(flag).into(),
            code,
            summary,
            routed_to_role: route.role as i32,
            backup_role: route.backup as i32,
            due_at: route.due_at,
            overdue_stage: None,
            status: "routed".into(),
            acknowledged_by: None,
            acknowledged_at: None,
            action_taken: String::new(),
            // Two steps at once: received (version 1), then routed (version 2), each its event.
            version: 2,
            received_at: at,
        };
        store::insert_result(w.conn(), &row).await?;
        let recorded = Payload::ResultRecorded(ResultRecorded {
            result_id: row.id.to_string(),
            order_id: order_id.to_string(),
            flag: req.flag,
        });
        // Keyed by the result, not the order: two results of one order are two aggregates. They
        // belong to the organization that placed the order, whoever reports the result.
        w.belongs_to(row.org_id);
        w.emit(patient_id, row.id, 1, recorded).await?;
        let routed = Payload::ResultRouted(ResultRouted {
            result_id: row.id.to_string(),
            to_role: row.routed_to_role,
            backup_role: row.backup_role,
            due_at: opt_timestamp(row.due_at),
            flag: req.flag,
        });
        w.emit(patient_id, row.id, 2, routed).await?;
        let id = row.id;
        w.finish(
            patient_id,
            id,
            RecordResultResponse {
                result: Some(convert::result(row, at)),
            },
        )
        .await
    }

    pub(super) async fn acknowledge_result(
        &self,
        who: &Principal,
        req: AcknowledgeResultRequest,
    ) -> ApiResult<AcknowledgeResultResponse> {
        let id = v::uuid("result_id", &req.result_id)?;
        let version = v::expected_version(req.expected_version)?;
        let action_taken = v::text("action_taken", &req.action_taken, MAX_TEXT)?;
        let patient_id = store::result(&mut *self.pool.acquire().await?, id)
            .await?
            .patient_id;
        self.may_write(who, patient_id).await?;
        let mut w =
            careloop_runtime::begin_write!(self.pool, SOURCE, "AcknowledgeResult", who, req);
        let mut row = store::lock_result(w.conn(), id, version).await?;
        if row.status == "acknowledged" {
            return Err(ApiError::transition(
                "result",
                "acknowledged",
                "acknowledged",
            ));
        }
        let at = now();
        row.status = "acknowledged".into();
        row.acknowledged_by = Some(who.subject.clone());
        row.acknowledged_at = Some(at);
        row.action_taken = action_taken;
        row.version += 1;
        store::acknowledge_result(w.conn(), &row).await?;
        let by_role = who
            .roles
            .first()
            .and_then(|r| CareRole::from_str_name(&format!("CARE_ROLE_{}", r.to_uppercase())))
            .map(|r| r as i32)
            .unwrap_or(0);
        let payload = Payload::ResultAcknowledged(ResultAcknowledged {
            result_id: id.to_string(),
            by_role,
        });
        w.belongs_to(row.org_id);
        w.emit(patient_id, id, row.version, payload).await?;
        w.finish(
            patient_id,
            id,
            AcknowledgeResultResponse {
                result: Some(convert::result(row, at)),
            },
        )
        .await
    }
}
