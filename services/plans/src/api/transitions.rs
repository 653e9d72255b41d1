//! Care transitions between settings and their checklist.

use super::{AuthorizeWrite, PlansApi, convert};
use crate::domain::transition::{self as domain, ChecklistError, ItemState, Risk};
use crate::store::{self, TransitionRow};
use careloop_proto::events::v1::{
    TransitionChecklistUpdated, TransitionCompleted, TransitionStarted, event::Payload,
};
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::Principal;
use careloop_runtime::error::{ApiError, ApiResult, Reason};
use careloop_runtime::time::now;
use careloop_runtime::validate::{self as v, MAX_TEXT};
use sqlx::types::Json;
use uuid::Uuid;

fn checklist_error(e: ChecklistError) -> ApiError {
    match e {
        ChecklistError::WaiveWithoutReason => {
            ApiError::invalid("waive_reason", "is required when waiving")
        }
        ChecklistError::NoSuchItem(_) => ApiError::NotFound("checklist item"),
        ChecklistError::AlreadyCompleted => {
            ApiError::transition("transition", "completed", "completed")
        }
        ChecklistError::Incomplete(_) => {
            ApiError::precondition(Reason::PreconditionFailed, e.to_string())
        }
    }
}

impl PlansApi {
    pub(super) async fn start_transition(
        &self,
        who: &Principal,
        req: StartTransitionRequest,
    ) -> ApiResult<StartTransitionResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let from = v::enum_value::<CareSetting>("from_setting", req.from_setting)?;
        let to = v::enum_value::<CareSetting>("to_setting", req.to_setting)?;
        if from == to {
            return Err(ApiError::invalid(
                "to_setting",
                "must differ from from_setting",
            ));
        }
        let reason = v::text("reason", &req.reason, MAX_TEXT)?;
        let success_criteria = v::text("success_criteria", &req.success_criteria, MAX_TEXT)?;
        let risk_level = v::enum_value::<RiskLevel>("risk_level", req.risk_level)?;
        let risk = match risk_level {
            RiskLevel::High => Risk::High,
            RiskLevel::Medium => Risk::Medium,
            _ => Risk::Low,
        };
        let (mut w, ()) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "StartTransition",
            who,
            req,
            w => { w.authorize(self, patient_id).await? }
        );
        let started_at = now();
        let row = TransitionRow {
            id: Uuid::now_v7(),
            patient_id,
            from_setting: from as i32,
            to_setting: to as i32,
            reason,
            success_criteria,
            risk_level: risk_level as i32,
            checklist: Json(domain::initial_checklist(risk, started_at)),
            status: "in_progress".into(),
            started_at,
            completed_at: None,
            version: 1,
        };
        store::insert_transition(w.conn(), &row).await?;
        let payload = Payload::TransitionStarted(TransitionStarted {
            transition_id: row.id.to_string(),
            from_setting: row.from_setting,
            to_setting: row.to_setting,
            risk_level: row.risk_level,
        });
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, row.id, 1, payload).await?;
        let id = row.id;
        w.finish(
            patient_id,
            id,
            StartTransitionResponse {
                transition: Some(convert::transition(row)),
            },
        )
        .await
    }

    pub(super) async fn get_transition(
        &self,
        who: &Principal,
        req: GetTransitionRequest,
    ) -> ApiResult<GetTransitionResponse> {
        let id = v::uuid("transition_id", &req.transition_id)?;
        let row = {
            let mut conn = self.pool.acquire().await?;
            store::transition(&mut conn, id).await?
        };
        self.read_access(who, "GetTransition", row.patient_id)
            .await?;
        Ok(GetTransitionResponse {
            transition: Some(convert::transition(row)),
        })
    }

    pub(super) async fn update_checklist_item(
        &self,
        who: &Principal,
        req: UpdateChecklistItemRequest,
    ) -> ApiResult<UpdateChecklistItemResponse> {
        let id = v::uuid("transition_id", &req.transition_id)?;
        let version = v::expected_version(req.expected_version)?;
        let item = v::enum_value::<ChecklistItemKind>("item", req.item)?;
        let kind = convert::domain_item_kind(item)
            .ok_or_else(|| ApiError::invalid("item", "is required"))?;
        let state = match v::enum_value::<ChecklistItemState>("state", req.state)? {
            ChecklistItemState::Done => ItemState::Done,
            ChecklistItemState::Waived => ItemState::Waived,
            _ => ItemState::Pending,
        };
        let waive_reason = v::optional_text("waive_reason", &req.waive_reason, MAX_TEXT)?;
        if state == ItemState::Waived && waive_reason.is_empty() {
            return Err(ApiError::invalid(
                "waive_reason",
                "is required when waiving",
            ));
        }
        let (mut w, _) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "UpdateChecklistItem",
            who,
            req,
            w => {
                let patient_id = store::patient_of(w.conn(), store::Owned::Transition, id).await?;
                w.authorize(self, patient_id).await?;
                patient_id
            }
        );
        let mut row = store::lock_transition(w.conn(), id, version).await?;
        let completed = row.status == "completed";
        domain::update_item(
            &mut row.checklist.0,
            completed,
            kind,
            state,
            Some(waive_reason),
            &who.subject,
            now(),
        )
        .map_err(checklist_error)?;
        row.version += 1;
        store::save_transition(w.conn(), &row).await?;
        let payload = Payload::TransitionChecklistUpdated(TransitionChecklistUpdated {
            transition_id: id.to_string(),
            item: item as i32,
            state: convert::item_state(state) as i32,
        });
        let patient_id = row.patient_id;
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, id, row.version, payload).await?;
        w.finish(
            patient_id,
            id,
            UpdateChecklistItemResponse {
                transition: Some(convert::transition(row)),
            },
        )
        .await
    }

    pub(super) async fn complete_transition(
        &self,
        who: &Principal,
        req: CompleteTransitionRequest,
    ) -> ApiResult<CompleteTransitionResponse> {
        let id = v::uuid("transition_id", &req.transition_id)?;
        let version = v::expected_version(req.expected_version)?;
        let (mut w, _) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "CompleteTransition",
            who,
            req,
            w => {
                let patient_id = store::patient_of(w.conn(), store::Owned::Transition, id).await?;
                w.authorize(self, patient_id).await?;
                patient_id
            }
        );
        let mut row = store::lock_transition(w.conn(), id, version).await?;
        domain::check_complete(&row.checklist.0, row.status == "completed")
            .map_err(checklist_error)?;
        row.status = "completed".into();
        row.completed_at = Some(now());
        row.version += 1;
        store::save_transition(w.conn(), &row).await?;
        let payload = Payload::TransitionCompleted(TransitionCompleted {
            transition_id: id.to_string(),
        });
        let patient_id = row.patient_id;
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, id, row.version, payload).await?;
        w.finish(
            patient_id,
            id,
            CompleteTransitionResponse {
                transition: Some(convert::transition(row)),
            },
        )
        .await
    }
}
