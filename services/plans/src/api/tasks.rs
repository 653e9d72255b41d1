//! Tasks (open loops that are not orders) and SBAR handoffs.

use super::{AuthorizeWrite, PlansApi, convert};
use crate::domain::task::{Ownership, TaskAction as Action, TaskState, TaskStatus as Status};
use crate::store::{self, HandoffRow, TaskRow};
use careloop_proto::common::v1::Priority;
use careloop_proto::events::v1::{
    HandoffAcknowledged, HandoffSent, TaskAssigned, TaskCreated, TaskStatusChanged, event::Payload,
};
use careloop_proto::plans::v1::list_open_tasks_request::Filter;
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::Principal;
use careloop_runtime::error::{ApiError, ApiResult, Reason};
use careloop_runtime::paging::{self, Cursor};
use careloop_runtime::time::{now, to_timestamp};
use careloop_runtime::validate::{self as v, MAX_SHORT, MAX_TEXT};
use uuid::Uuid;

fn action(value: i32) -> ApiResult<Action> {
    Ok(match v::enum_value::<TaskAction>("action", value)? {
        TaskAction::Accept => Action::Accept,
        TaskAction::Start => Action::Start,
        TaskAction::Hold => Action::Hold,
        TaskAction::Resume => Action::Resume,
        TaskAction::Complete => Action::Complete,
        TaskAction::Cancel => Action::Cancel,
        TaskAction::Fail => Action::Fail,
        TaskAction::Unspecified => return Err(ApiError::invalid("action", "is required")),
    })
}

fn stored_state(row: &TaskRow) -> ApiResult<TaskState> {
    let bad = || {
        ApiError::internal(
            "stored task status is unknown",
            anyhow::anyhow!("task {}", row.id),
        )
    };
    Ok(TaskState {
        status: Status::parse(&row.status).ok_or_else(bad)?,
        held_from: row
            .held_from
            .as_deref()
            .map(|s| Status::parse(s).ok_or_else(bad))
            .transpose()?,
    })
}

/// A handoff not acknowledged this long after sending is overdue, unless the sender set its own
/// acknowledge-by time (DOMAIN: the handoff goes out the same day and someone owns it).
const DEFAULT_ACKNOWLEDGE_HOURS: i64 = 24;

impl PlansApi {
    pub(super) async fn create_task(
        &self,
        who: &Principal,
        req: CreateTaskRequest,
    ) -> ApiResult<CreateTaskResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let title = v::text("title", &req.title, MAX_SHORT)?;
        let description = v::optional_text("description", &req.description, MAX_TEXT)?;
        let due_at = v::optional_timestamp("due_at", req.due_at.as_ref())?;
        let ownership = Ownership::new(req.owner_role, due_at, None)
            .map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
        let owner_role = ownership.owner_role;
        let due_at = ownership.due_at;
        let backup_role = convert::optional_role("backup_role", req.backup_role)?;
        if backup_role == Some(owner_role) {
            return Err(ApiError::invalid(
                "backup_role",
                "must differ from owner_role",
            ));
        }
        let assignee = v::optional_uuid("assignee_member_id", &req.assignee_member_id)?;
        let priority =
            v::optional_enum::<Priority>("priority", req.priority)?.unwrap_or(Priority::Routine);
        let (linked_kind, linked_id) = convert::loop_ref("linked_loop", req.linked_loop.as_ref())?;
        let (mut w, ()) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "CreateTask",
            who,
            req,
            w => { w.authorize(self, patient_id).await? }
        );
        if let Some(member) = assignee
            && !store::is_active_member(w.conn(), patient_id, member).await?
        {
            return Err(ApiError::NotFound("care team member"));
        }
        let at = now();
        let row = TaskRow {
            id: Uuid::now_v7(),
            patient_id,
            title,
            description,
            owner_role: owner_role as i32,
            backup_role: backup_role.map(|r| r as i32).unwrap_or(0),
            assignee_member_id: assignee,
            due_at,
            priority: priority as i32,
            linked_kind,
            linked_id,
            status: Status::Requested.as_str().into(),
            held_from: None,
            status_reason: String::new(),
            version: 1,
            created_at: at,
            updated_at: at,
        };
        store::insert_task(w.conn(), &row).await?;
        let payload = Payload::TaskCreated(TaskCreated {
            task_id: row.id.to_string(),
            owner_role: row.owner_role,
            backup_role: row.backup_role,
            due_at: Some(to_timestamp(due_at)),
            priority: row.priority,
            linked_loop: req.linked_loop.clone(),
        });
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, row.id, 1, payload).await?;
        let id = row.id;
        w.finish(
            patient_id,
            id,
            CreateTaskResponse {
                task: Some(convert::task(row, at)),
            },
        )
        .await
    }

    pub(super) async fn get_task(
        &self,
        who: &Principal,
        req: GetTaskRequest,
    ) -> ApiResult<GetTaskResponse> {
        let id = v::uuid("task_id", &req.task_id)?;
        let row = {
            let mut conn = self.pool.acquire().await?;
            store::task(&mut conn, id).await?
        };
        self.read_access(who, "GetTask", row.patient_id).await?;
        Ok(GetTaskResponse {
            task: Some(convert::task(row, now())),
        })
    }

    pub(super) async fn assign_task(
        &self,
        who: &Principal,
        req: AssignTaskRequest,
    ) -> ApiResult<AssignTaskResponse> {
        let id = v::uuid("task_id", &req.task_id)?;
        let version = v::expected_version(req.expected_version)?;
        convert::optional_role("owner_role", req.owner_role)?;
        let assignee = v::optional_uuid("assignee_member_id", &req.assignee_member_id)?;
        let (mut w, _) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "AssignTask",
            who,
            req,
            w => {
                let patient_id = store::patient_of(w.conn(), store::Owned::Task, id).await?;
                w.authorize(self, patient_id).await?;
                patient_id
            }
        );
        let mut row = store::lock_task(w.conn(), id, version).await?;
        let state = stored_state(&row)?;
        if !state.status.is_open() {
            return Err(ApiError::precondition(
                Reason::RecordClosed,
                format!(
                    "task is {}: a closed task cannot be reassigned",
                    state.status
                ),
            ));
        }
        if let Some(member) = assignee
            && !store::is_active_member(w.conn(), row.patient_id, member).await?
        {
            return Err(ApiError::NotFound("care team member"));
        }
        let current_role = careloop_proto::common::v1::CareRole::try_from(row.owner_role)
            .map_err(|e| ApiError::internal("stored owner role is unknown", e))?;
        let ownership = Ownership {
            owner_role: current_role,
            due_at: row.due_at,
            assignee_member_id: row.assignee_member_id,
        }
        .reassign(req.owner_role, assignee)
        .map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
        row.owner_role = ownership.owner_role as i32;
        row.assignee_member_id = ownership.assignee_member_id;
        row.version += 1;
        row.updated_at = now();
        store::save_task(w.conn(), &row).await?;
        let payload = Payload::TaskAssigned(TaskAssigned {
            task_id: row.id.to_string(),
            owner_role: row.owner_role,
            assignee_member_id: req.assignee_member_id.clone(),
            due_at: Some(careloop_runtime::time::to_timestamp(row.due_at)),
        });
        let patient_id = row.patient_id;
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, id, row.version, payload).await?;
        w.finish(
            patient_id,
            id,
            AssignTaskResponse {
                task: Some(convert::task(row, now())),
            },
        )
        .await
    }

    pub(super) async fn transition_task(
        &self,
        who: &Principal,
        req: TransitionTaskRequest,
    ) -> ApiResult<TransitionTaskResponse> {
        let id = v::uuid("task_id", &req.task_id)?;
        let version = v::expected_version(req.expected_version)?;
        let action = action(req.action)?;
        let reason = if action.needs_reason() {
            v::text("reason", &req.reason, MAX_TEXT)?
        } else {
            v::optional_text("reason", &req.reason, MAX_TEXT)?
        };
        let (mut w, _) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "TransitionTask",
            who,
            req,
            w => {
                let patient_id = store::patient_of(w.conn(), store::Owned::Task, id).await?;
                w.authorize(self, patient_id).await?;
                patient_id
            }
        );
        let mut row = store::lock_task(w.conn(), id, version).await?;
        let before = stored_state(&row)?;
        let after = before
            .apply(action)
            .map_err(|refused| ApiError::refused_move(refused.to_string()))?;
        row.status = after.status.as_str().into();
        row.held_from = after.held_from.map(|s| s.as_str().to_owned());
        row.status_reason = reason;
        row.version += 1;
        row.updated_at = now();
        store::save_task(w.conn(), &row).await?;
        let payload = Payload::TaskStatusChanged(TaskStatusChanged {
            task_id: row.id.to_string(),
            from_status: convert::task_status(before.status) as i32,
            to_status: convert::task_status(after.status) as i32,
            owner_role: row.owner_role,
            due_at: Some(careloop_runtime::time::to_timestamp(row.due_at)),
        });
        let patient_id = row.patient_id;
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, id, row.version, payload).await?;
        w.finish(
            patient_id,
            id,
            TransitionTaskResponse {
                task: Some(convert::task(row, now())),
            },
        )
        .await
    }

    pub(super) async fn list_open_tasks(
        &self,
        who: &Principal,
        req: ListOpenTasksRequest,
    ) -> ApiResult<ListOpenTasksResponse> {
        let limit = paging::page_size(req.page_size)?;
        let after = paging::decode(&req.page_token)?;
        // One pooled connection at a time per call: holding one while waiting for another
        // deadlocks under load.
        let by_due = |r: &TaskRow| Cursor {
            at: r.due_at,
            id: r.id,
        };
        let (rows, next) = match req.filter {
            Some(Filter::PatientId(ref p)) => {
                let patient_id = v::uuid("patient_id", p)?;
                self.read_access(who, "ListOpenTasks", patient_id).await?;
                let mut conn = self.pool.acquire().await?;
                let rows =
                    store::open_tasks_for_patient(&mut conn, patient_id, after, limit + 1).await?;
                paging::cut(rows, limit, by_due)
            }
            Some(Filter::OwnerRole(role)) => {
                let role = convert::role("owner_role", role)?;
                let viewer = Self::viewer(who)?;
                let rows = {
                    let mut conn = self.pool.acquire().await?;
                    store::open_tasks_for_role(&mut conn, &viewer, role as i32, after, limit + 1)
                        .await?
                };
                let page = paging::cut(rows, limit, by_due);
                self.audit_worklist(who, "ListOpenTasks", page.0.iter().map(|r| r.patient_id))
                    .await?;
                page
            }
            None => return Err(ApiError::invalid("filter", "give patient_id or owner_role")),
        };
        let at = now();
        Ok(ListOpenTasksResponse {
            tasks: rows.into_iter().map(|r| convert::task(r, at)).collect(),
            next_page_token: next,
        })
    }

    /// A worklist spans patients: each patient shown is audited as read.
    async fn audit_worklist(
        &self,
        who: &Principal,
        rpc: &'static str,
        patients: impl Iterator<Item = Uuid>,
    ) -> ApiResult<()> {
        let mut seen: Vec<Uuid> = patients.collect();
        seen.sort();
        seen.dedup();
        let mut conn = self.pool.acquire().await?;
        careloop_runtime::audit::record_reads(&mut conn, who, rpc, &seen).await?;
        Ok(())
    }

    pub(super) async fn send_handoff(
        &self,
        who: &Principal,
        req: SendHandoffRequest,
    ) -> ApiResult<SendHandoffResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let from_role = convert::role("from_role", req.from_role)?;
        let to_role = convert::role("to_role", req.to_role)?;
        let sent_at = now();
        let acknowledge_by =
            match v::optional_timestamp("acknowledge_by", req.acknowledge_by.as_ref())? {
                None => sent_at + chrono::Duration::hours(DEFAULT_ACKNOWLEDGE_HOURS),
                Some(at) if at <= sent_at => {
                    return Err(ApiError::invalid("acknowledge_by", "must be in the future"));
                }
                Some(at) if at > sent_at + chrono::Duration::days(30) => {
                    return Err(ApiError::invalid(
                        "acknowledge_by",
                        "must be within 30 days",
                    ));
                }
                Some(at) => at,
            };
        let row = HandoffRow {
            id: Uuid::now_v7(),
            patient_id,
            from_role: from_role as i32,
            from_subject: who.subject.clone(),
            to_role: to_role as i32,
            situation: v::text("situation", &req.situation, MAX_TEXT)?,
            background: v::text("background", &req.background, MAX_TEXT)?,
            assessment: v::text("assessment", &req.assessment, MAX_TEXT)?,
            recommendation: v::text("recommendation", &req.recommendation, MAX_TEXT)?,
            pending_items: v::text_list("pending_items", &req.pending_items, MAX_TEXT)?,
            red_flags: v::text_list("red_flags", &req.red_flags, MAX_SHORT)?,
            sent_at,
            acknowledged_at: None,
            acknowledged_by: None,
            version: 1,
            acknowledge_by,
        };
        let (mut w, ()) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "SendHandoff",
            who,
            req,
            w => { w.authorize(self, patient_id).await? }
        );
        store::insert_handoff(w.conn(), &row).await?;
        let payload = Payload::HandoffSent(HandoffSent {
            handoff_id: row.id.to_string(),
            from_role: row.from_role,
            to_role: row.to_role,
            pending_item_count: row.pending_items.len() as i32,
            red_flag_count: row.red_flags.len() as i32,
            acknowledge_by: Some(careloop_runtime::time::to_timestamp(row.acknowledge_by)),
        });
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, row.id, 1, payload).await?;
        let id = row.id;
        w.finish(
            patient_id,
            id,
            SendHandoffResponse {
                handoff: Some(convert::handoff(row)),
            },
        )
        .await
    }

    pub(super) async fn acknowledge_handoff(
        &self,
        who: &Principal,
        req: AcknowledgeHandoffRequest,
    ) -> ApiResult<AcknowledgeHandoffResponse> {
        let id = v::uuid("handoff_id", &req.handoff_id)?;
        let version = v::expected_version(req.expected_version)?;
        let (mut w, _) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "AcknowledgeHandoff",
            who,
            req,
            w => {
                let patient_id = store::patient_of(w.conn(), store::Owned::Handoff, id).await?;
                w.authorize(self, patient_id).await?;
                patient_id
            }
        );
        let mut row = store::lock_handoff(w.conn(), id).await?;
        ApiError::ensure_version(row.version, version)?;
        if row.acknowledged_at.is_some() {
            return Err(ApiError::transition(
                "handoff",
                "acknowledged",
                "acknowledged",
            ));
        }
        row.acknowledged_at = Some(now());
        row.acknowledged_by = Some(who.subject.clone());
        row.version += 1;
        store::acknowledge_handoff(w.conn(), &row).await?;
        let payload = Payload::HandoffAcknowledged(HandoffAcknowledged {
            handoff_id: id.to_string(),
            to_role: row.to_role,
        });
        let patient_id = row.patient_id;
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, id, row.version, payload).await?;
        w.finish(
            patient_id,
            id,
            AcknowledgeHandoffResponse {
                handoff: Some(convert::handoff(row)),
            },
        )
        .await
    }

    pub(super) async fn list_unacknowledged_handoffs(
        &self,
        who: &Principal,
        req: ListUnacknowledgedHandoffsRequest,
    ) -> ApiResult<ListUnacknowledgedHandoffsResponse> {
        let limit = paging::page_size(req.page_size)?;
        let after = paging::decode(&req.page_token)?;
        let patient = v::optional_uuid("patient_id", &req.patient_id)?;
        let rows = match patient {
            Some(patient_id) if req.to_role == 0 => {
                self.read_access(who, "ListUnacknowledgedHandoffs", patient_id)
                    .await?;
                let mut conn = self.pool.acquire().await?;
                store::unacknowledged_handoffs_for_patient(&mut conn, patient_id, after, limit + 1)
                    .await?
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "to_role",
                    "give to_role or patient_id, not both",
                ));
            }
            None => {
                let role = convert::role("to_role", req.to_role)?;
                let viewer = Self::viewer(who)?;
                let mut conn = self.pool.acquire().await?;
                store::unacknowledged_handoffs(&mut conn, &viewer, role as i32, after, limit + 1)
                    .await?
            }
        };
        let (rows, next) = paging::cut(rows, limit, |r| Cursor {
            at: r.acknowledge_by,
            id: r.id,
        });
        if patient.is_none() {
            self.audit_worklist(
                who,
                "ListUnacknowledgedHandoffs",
                rows.iter().map(|r| r.patient_id),
            )
            .await?;
        }
        Ok(ListUnacknowledgedHandoffsResponse {
            handoffs: rows.into_iter().map(convert::handoff).collect(),
            next_page_token: next,
        })
    }
}
