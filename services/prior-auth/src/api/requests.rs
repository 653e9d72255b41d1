//! Every prior-authorization RPC: the lifecycle from draft to decision, appeal and cancellation.

use super::{PriorAuthApi, SOURCE, convert};
use crate::domain::deadline::{self, Urgency as Due};
use crate::domain::deciders;
use crate::domain::packet;
use crate::domain::status::{self, Action, Status};
use crate::store::{self, DecisionJson, ExtensionJson, Filter, RequestRow};
use careloop_proto::common::v1::CareRole;
use careloop_proto::events::v1::{
    PriorAuthAppealDecided, PriorAuthCreated, PriorAuthDecided, PriorAuthExtended,
    PriorAuthStatusChanged, PriorAuthSubmitted, event::Payload,
};
use careloop_proto::plans::v1::AccessBasis;
use careloop_proto::priorauth::v1::record_payer_response_request::Response as PayerResponse;
use careloop_proto::priorauth::v1::*;
use careloop_runtime::auth::{Principal, PrincipalKind};
use careloop_runtime::error::{ApiError, ApiResult, Reason};
use careloop_runtime::paging::{self, Cursor};
use careloop_runtime::time::{now, opt_timestamp};
use careloop_runtime::validate::{self as v, MAX_SHORT, MAX_TEXT};
use careloop_runtime::write::Write;
use chrono::{DateTime, Duration, Utc};
use sqlx::types::Json;
use uuid::Uuid;

fn parsed(row: &RequestRow) -> ApiResult<Status> {
    Status::parse(&row.status).ok_or_else(|| {
        ApiError::internal(
            "stored prior-auth status is unknown",
            anyhow::anyhow!("{}", row.id),
        )
    })
}

fn refuse(e: status::Refused) -> ApiError {
    ApiError::refused_move(e.to_string())
}

fn changed(row: &RequestRow, from: Status) -> Payload {
    Payload::PriorAuthStatusChanged(PriorAuthStatusChanged {
        request_id: row.id.to_string(),
        from_status: convert::status(from.as_str()) as i32,
        to_status: convert::status(&row.status) as i32,
        owner_role: row.owner_role,
        due_at: opt_timestamp(row.due_at),
    })
}

/// A validity period: both ends required, the end after the start.
fn validity(
    prefix: &str,
    from: Option<&prost_types::Timestamp>,
    to: Option<&prost_types::Timestamp>,
) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let from = v::timestamp(&format!("{prefix}valid_from"), from)?;
    let to = v::timestamp(&format!("{prefix}valid_to"), to)?;
    if to <= from {
        return Err(ApiError::invalid(
            format!("{prefix}valid_to"),
            "must be after valid_from",
        ));
    }
    Ok((from, to))
}

impl PriorAuthApi {
    fn owner_due(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at + Duration::hours(self.settings.owner_due_hours)
    }

    /// Reads whose patient the request is and checks write access, before any transaction opens
    /// (the check is a call to plans) and before any lock or version comparison.
    /// Before recording a payer's or an appeal decision: the request's payer, or a prior-auth
    /// coordinator of the patient's managing organization (see `domain::deciders`).
    async fn start_decision(&self, who: &Principal, id: Uuid) -> ApiResult<()> {
        let row = store::get(&mut *self.pool.acquire().await?, id).await?;
        let payer_org = self.settings.payer_org(&row.payer_id);
        let own_payer = who.kind == PrincipalKind::Payer && payer_org == Some(who.org_id);
        let managing_staff = if who.kind == PrincipalKind::Service || own_payer {
            false
        } else {
            // Everyone else is judged with plans' decision: one who cannot even read the patient
            // is told it does not exist.
            let answer = self.access.decision(who, row.patient_id).await?;
            if !answer.can_read {
                return Err(ApiError::AccessDenied {
                    patient_id: row.patient_id,
                    hidden: true,
                });
            }
            answer.basis == AccessBasis::ManagingOrganization as i32
        };
        match deciders::may_record_decision(who, payer_org, managing_staff) {
            deciders::Verdict::Allowed => Ok(()),
            deciders::Verdict::Refused => Err(ApiError::PermissionDenied(
                "payer decisions are recorded by the payer or the managing organization's prior-auth coordinator",
            )),
        }
    }

    async fn start(&self, who: &Principal, id: Uuid) -> ApiResult<()> {
        let patient_id = store::get(&mut *self.pool.acquire().await?, id)
            .await?
            .patient_id;
        self.may_write(who, patient_id).await
    }

    /// Saves the row with a new version and answers with it. Each event of the change takes a
    /// version of its own (a submission is a status change and a submission), so the request's
    /// version moves on by one per event, and by one for a change that emits none.
    async fn commit(
        &self,
        mut w: Write,
        mut row: RequestRow,
        events: Vec<Payload>,
    ) -> ApiResult<PriorAuthRequest> {
        let at = now();
        let before = row.version;
        row.version += i64::try_from(events.len().max(1)).unwrap_or(1);
        row.updated_at = at;
        store::save(w.conn(), &row).await?;
        // The request's events belong to the requesting organization, also when the payer moves it.
        w.belongs_to(row.org_id);
        for (version, payload) in (before + 1..).zip(events) {
            w.emit(row.patient_id, row.id, version, payload).await?;
        }
        let (patient_id, id) = (row.patient_id, row.id);
        w.finish(patient_id, id, convert::request(row, at)).await
    }

    pub(super) async fn create_request(
        &self,
        who: &Principal,
        req: CreateRequestRequest,
    ) -> ApiResult<CreateRequestResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let content = convert::content(req.content.as_ref())?;
        self.may_write(who, patient_id).await?;
        let mut w = careloop_runtime::begin_write!(self.pool, SOURCE, "CreateRequest", who, req);
        let at = now();
        let mut row = RequestRow {
            id: Uuid::now_v7(),
            patient_id,
            org_id: (!who.org_id.is_nil()).then_some(who.org_id),
            linked_kind: 0,
            linked_id: String::new(),
            payer_id: String::new(),
            plan_member_id: String::new(),
            service_lines: Json(vec![]),
            diagnosis_codes: vec![],
            urgency: 0,
            urgency_reason: String::new(),
            packet: Json(Default::default()),
            owner_role: 0,
            next_action: String::new(),
            next_patient_update_at: None,
            status: Status::Draft.as_str().into(),
            due_at: Some(self.owner_due(at)),
            first_submitted_at: None,
            submitted_at: None,
            decision_due_at: None,
            overdue_reported_for: None,
            extensions: Json(vec![]),
            information_requested: String::new(),
            decision: None,
            appeal_reason: String::new(),
            appeal_decision: None,
            valid_to: None,
            expiry_reported: false,
            status_reason: String::new(),
            version: 1,
            created_at: at,
            updated_at: at,
        };
        content.apply_to(&mut row);
        store::insert(w.conn(), &row).await?;
        let payload = Payload::PriorAuthCreated(PriorAuthCreated {
            request_id: row.id.to_string(),
            urgency: row.urgency,
            owner_role: row.owner_role,
            payer_id: row.payer_id.clone(),
            due_at: opt_timestamp(row.due_at),
        });
        w.emit(patient_id, row.id, 1, payload).await?;
        let id = row.id;
        w.finish(
            patient_id,
            id,
            CreateRequestResponse {
                request: Some(convert::request(row, at)),
            },
        )
        .await
    }

    pub(super) async fn update_request(
        &self,
        who: &Principal,
        req: UpdateRequestRequest,
    ) -> ApiResult<UpdateRequestResponse> {
        let id = v::uuid("request_id", &req.request_id)?;
        let version = v::expected_version(req.expected_version)?;
        let content = convert::content(req.content.as_ref())?;
        self.start(who, id).await?;
        let mut w = careloop_runtime::begin_write!(self.pool, SOURCE, "UpdateRequest", who, req);
        let mut row = store::lock(w.conn(), id, version).await?;
        let from = parsed(&row)?;
        if !from.is_editable() {
            return Err(ApiError::precondition(
                Reason::PreconditionFailed,
                format!(
                    "prior authorization is {}: only a draft or a pended request can be edited",
                    from.as_str()
                ),
            ));
        }
        content.apply_to(&mut row);
        // Editing the packet moves no status: no status-changed event for a change that did not
        // happen (a pended request stays pended until it is resubmitted).
        let events = if row.status == from.as_str() {
            vec![]
        } else {
            vec![changed(&row, from)]
        };
        Ok(UpdateRequestResponse {
            request: Some(self.commit(w, row, events).await?),
        })
    }

    pub(super) async fn submit_request(
        &self,
        who: &Principal,
        req: SubmitRequestRequest,
    ) -> ApiResult<SubmitRequestResponse> {
        let id = v::uuid("request_id", &req.request_id)?;
        let version = v::expected_version(req.expected_version)?;
        self.start(who, id).await?;
        let mut w = careloop_runtime::begin_write!(self.pool, SOURCE, "SubmitRequest", who, req);
        let mut row = store::lock(w.conn(), id, version).await?;
        let from = parsed(&row)?;
        let to = status::apply(from, Action::Submit).map_err(refuse)?;
        let expedited = row.urgency == Urgency::Expedited as i32;
        let missing = packet::missing(&packet::Draft {
            has_linked_loop: row.linked_kind != 0,
            payer_id: &row.payer_id,
            plan_member_id: &row.plan_member_id,
            service_lines: row.service_lines.0.len(),
            diagnosis_codes: row.diagnosis_codes.len(),
            expedited,
            urgency_set: row.urgency != 0,
            urgency_reason: &row.urgency_reason,
            notes_summary: &row.packet.0.notes_summary,
            medications: row.packet.0.medications.len(),
            prior_treatments: row.packet.0.prior_treatments.len(),
            attachment_refs: row.packet.0.attachment_refs.len(),
        });
        if !missing.is_empty() {
            return Err(ApiError::InvalidFields(missing));
        }
        let at = now();
        let due = deadline::decision_due(
            if expedited {
                Due::Expedited
            } else {
                Due::Standard
            },
            at,
            self.zone,
        );
        row.status = to.as_str().into();
        row.submitted_at = Some(at);
        row.first_submitted_at = row.first_submitted_at.or(Some(at));
        row.decision_due_at = Some(due);
        row.due_at = Some(due);
        row.information_requested = String::new();
        let submitted = Payload::PriorAuthSubmitted(PriorAuthSubmitted {
            request_id: id.to_string(),
            urgency: row.urgency,
            submitted_at: opt_timestamp(Some(at)),
            decision_due_at: opt_timestamp(Some(due)),
            resubmission: from == Status::Pended,
            payer_id: row.payer_id.clone(),
            owner_role: row.owner_role,
        });
        let event = changed(&row, from);
        Ok(SubmitRequestResponse {
            request: Some(self.commit(w, row, vec![submitted, event]).await?),
        })
    }

    pub(super) async fn record_payer_response(
        &self,
        who: &Principal,
        req: RecordPayerResponseRequest,
    ) -> ApiResult<RecordPayerResponseResponse> {
        let id = v::uuid("request_id", &req.request_id)?;
        let version = v::expected_version(req.expected_version)?;
        let response = req
            .response
            .as_ref()
            .ok_or_else(|| ApiError::invalid("response", "is required"))?;
        // Validate the payload before touching anything.
        let (action, information, decision) = match response {
            PayerResponse::Pended(p) => (
                Action::Pend,
                v::text(
                    "pended.information_requested",
                    &p.information_requested,
                    MAX_TEXT,
                )?,
                None,
            ),
            PayerResponse::Approved(a) | PayerResponse::PartiallyApproved(a) => {
                let partial = matches!(response, PayerResponse::PartiallyApproved(_));
                let prefix = if partial {
                    "partially_approved."
                } else {
                    "approved."
                };
                let number = v::text(
                    &format!("{prefix}authorization_number"),
                    &a.authorization_number,
                    MAX_SHORT,
                )?;
                let items = convert::service_lines(&format!("{prefix}items"), &a.items)?;
                if partial && items.is_empty() {
                    return Err(ApiError::invalid(
                        "partially_approved.items",
                        "a partial approval lists the items as modified",
                    ));
                }
                let (from, to) = validity(prefix, a.valid_from.as_ref(), a.valid_to.as_ref())?;
                let decision = DecisionJson {
                    authorization_number: number,
                    items,
                    valid_from: Some(from),
                    valid_to: Some(to),
                    ..Default::default()
                };
                (
                    if partial {
                        Action::PartiallyApprove
                    } else {
                        Action::Approve
                    },
                    String::new(),
                    Some(decision),
                )
            }
            PayerResponse::Denied(d) => {
                let decision = DecisionJson {
                    denial_reason_code: v::text("denied.reason_code", &d.reason_code, 64)?,
                    denial_reason_text: v::text("denied.reason_text", &d.reason_text, MAX_TEXT)?,
                    ..Default::default()
                };
                (Action::Deny, String::new(), Some(decision))
            }
        };
        self.start_decision(who, id).await?;
        let mut w =
            careloop_runtime::begin_write!(self.pool, SOURCE, "RecordPayerResponse", who, req);
        let mut row = store::lock(w.conn(), id, version).await?;
        let from = parsed(&row)?;
        let to = status::apply(from, action).map_err(refuse)?;
        let at = now();
        row.status = to.as_str().into();
        let mut events = Vec::new();
        match action {
            Action::Pend => {
                row.information_requested = information;
                row.next_action = "send the information the payer requested".into();
                row.due_at = Some(self.owner_due(at));
            }
            _ => {
                let mut d = decision.unwrap_or_default();
                d.decided_at = Some(at);
                if d.items.is_empty() && action == Action::Approve {
                    d.items = row.service_lines.0.clone();
                }
                row.valid_to = d.valid_to;
                row.due_at = (action == Action::Deny).then(|| self.owner_due(at));
                row.next_action = if action == Action::Deny {
                    "decide on an appeal".into()
                } else {
                    "schedule the authorized service and tell the patient".into()
                };
                events.push(Payload::PriorAuthDecided(PriorAuthDecided {
                    request_id: id.to_string(),
                    urgency: row.urgency,
                    decision: to.as_str().into(),
                    first_submitted_at: opt_timestamp(row.first_submitted_at),
                    submitted_at: opt_timestamp(row.submitted_at),
                    decided_at: opt_timestamp(Some(at)),
                    extended: !row.extensions.0.is_empty(),
                    denial_reason_code: d.denial_reason_code.clone(),
                    payer_id: row.payer_id.clone(),
                }));
                row.decision = Some(Json(d));
            }
        }
        events.push(changed(&row, from));
        Ok(RecordPayerResponseResponse {
            request: Some(self.commit(w, row, events).await?),
        })
    }

    pub(super) async fn extend_decision(
        &self,
        who: &Principal,
        req: ExtendDecisionRequest,
    ) -> ApiResult<ExtendDecisionResponse> {
        let id = v::uuid("request_id", &req.request_id)?;
        let version = v::expected_version(req.expected_version)?;
        let reason = v::text("reason", &req.reason, MAX_TEXT)?;
        let new_due = v::timestamp("new_due_at", req.new_due_at.as_ref())?;
        self.start_decision(who, id).await?;
        let mut w = careloop_runtime::begin_write!(self.pool, SOURCE, "ExtendDecision", who, req);
        let mut row = store::lock(w.conn(), id, version).await?;
        let from = parsed(&row)?;
        status::apply(from, Action::Extend).map_err(refuse)?;
        if row.decision_due_at.is_some_and(|d| new_due <= d) {
            return Err(ApiError::invalid(
                "new_due_at",
                "must be later than the current decision due time",
            ));
        }
        let at = now();
        row.extensions.0.push(ExtensionJson {
            reason,
            previous_due_at: row.decision_due_at,
            new_due_at: new_due,
            recorded_at: at,
        });
        row.decision_due_at = Some(new_due);
        row.due_at = Some(new_due);
        let event = Payload::PriorAuthExtended(PriorAuthExtended {
            request_id: id.to_string(),
            new_due_at: opt_timestamp(Some(new_due)),
        });
        Ok(ExtendDecisionResponse {
            request: Some(self.commit(w, row, vec![event]).await?),
        })
    }

    pub(super) async fn appeal(
        &self,
        who: &Principal,
        req: AppealRequest,
    ) -> ApiResult<AppealResponse> {
        let id = v::uuid("request_id", &req.request_id)?;
        let version = v::expected_version(req.expected_version)?;
        let reason = v::text("reason", &req.reason, MAX_TEXT)?;
        self.start(who, id).await?;
        let mut w = careloop_runtime::begin_write!(self.pool, SOURCE, "Appeal", who, req);
        let mut row = store::lock(w.conn(), id, version).await?;
        let from = parsed(&row)?;
        let to = status::apply(from, Action::Appeal).map_err(refuse)?;
        let hours =
            self.settings.appeal_due_hours[usize::from(row.urgency == Urgency::Expedited as i32)];
        row.status = to.as_str().into();
        row.appeal_reason = reason;
        row.due_at = Some(now() + Duration::hours(hours));
        row.next_action = "await the appeal decision".into();
        let event = changed(&row, from);
        Ok(AppealResponse {
            request: Some(self.commit(w, row, vec![event]).await?),
        })
    }

    pub(super) async fn record_appeal_decision(
        &self,
        who: &Principal,
        req: RecordAppealDecisionRequest,
    ) -> ApiResult<RecordAppealDecisionResponse> {
        let id = v::uuid("request_id", &req.request_id)?;
        let version = v::expected_version(req.expected_version)?;
        let decision = if req.approved {
            let (from, to) = validity("", req.valid_from.as_ref(), req.valid_to.as_ref())?;
            DecisionJson {
                authorization_number: v::text(
                    "authorization_number",
                    &req.authorization_number,
                    MAX_SHORT,
                )?,
                valid_from: Some(from),
                valid_to: Some(to),
                ..Default::default()
            }
        } else {
            DecisionJson {
                denial_reason_code: v::text("reason_code", &req.reason_code, 64)?,
                denial_reason_text: v::text("reason_text", &req.reason_text, MAX_TEXT)?,
                ..Default::default()
            }
        };
        self.start_decision(who, id).await?;
        let mut w =
            careloop_runtime::begin_write!(self.pool, SOURCE, "RecordAppealDecision", who, req);
        let mut row = store::lock(w.conn(), id, version).await?;
        let from = parsed(&row)?;
        let action = if req.approved {
            Action::AppealApprove
        } else {
            Action::AppealDeny
        };
        let to = status::apply(from, action).map_err(refuse)?;
        let at = now();
        let mut decision = decision;
        decision.decided_at = Some(at);
        if req.approved {
            decision.items = row.service_lines.0.clone();
            row.valid_to = decision.valid_to;
        }
        row.status = to.as_str().into();
        row.appeal_decision = Some(Json(decision));
        row.due_at = None;
        row.next_action = if req.approved {
            "schedule the authorized service and tell the patient".into()
        } else {
            "appeal denied: plan an alternative with the patient".into()
        };
        let events = vec![
            Payload::PriorAuthAppealDecided(PriorAuthAppealDecided {
                request_id: id.to_string(),
                urgency: row.urgency,
                approved: req.approved,
                decided_at: opt_timestamp(Some(at)),
                payer_id: row.payer_id.clone(),
            }),
            changed(&row, from),
        ];
        Ok(RecordAppealDecisionResponse {
            request: Some(self.commit(w, row, events).await?),
        })
    }

    pub(super) async fn cancel_request(
        &self,
        who: &Principal,
        req: CancelRequestRequest,
    ) -> ApiResult<CancelRequestResponse> {
        let id = v::uuid("request_id", &req.request_id)?;
        let version = v::expected_version(req.expected_version)?;
        let reason = v::text("reason", &req.reason, MAX_TEXT)?;
        self.start(who, id).await?;
        let mut w = careloop_runtime::begin_write!(self.pool, SOURCE, "CancelRequest", who, req);
        let mut row = store::lock(w.conn(), id, version).await?;
        let from = parsed(&row)?;
        let to = status::apply(from, Action::Cancel).map_err(refuse)?;
        row.status = to.as_str().into();
        row.status_reason = reason;
        row.due_at = None;
        row.next_action = String::new();
        let event = changed(&row, from);
        Ok(CancelRequestResponse {
            request: Some(self.commit(w, row, vec![event]).await?),
        })
    }

    pub(super) async fn get_request(
        &self,
        who: &Principal,
        req: GetRequestRequest,
    ) -> ApiResult<GetRequestResponse> {
        let id = v::uuid("request_id", &req.request_id)?;
        let row = store::get(&mut *self.pool.acquire().await?, id).await?;
        self.read(who, "GetRequest", row.patient_id).await?;
        Ok(GetRequestResponse {
            request: Some(convert::request(row, now())),
        })
    }

    pub(super) async fn list_requests(
        &self,
        who: &Principal,
        req: ListRequestsRequest,
    ) -> ApiResult<ListRequestsResponse> {
        use list_requests_request::Filter as F;
        let limit = paging::page_size(req.page_size)?;
        let after = paging::decode(&req.page_token)?;
        let filter = match &req.filter {
            Some(F::PatientId(p)) => {
                let patient_id = v::uuid("patient_id", p)?;
                self.read(who, "ListRequests", patient_id).await?;
                Filter::Patient(patient_id)
            }
            Some(F::Status(s)) => {
                let status = AuthStatus::try_from(*s).ok().and_then(convert::status_name);
                Filter::Status(
                    status
                        .ok_or_else(|| {
                            ApiError::invalid("status", "is required and must be a known status")
                        })?
                        .into(),
                )
            }
            Some(F::OwnerRole(r)) => {
                Filter::OwnerRole(v::enum_value::<CareRole>("owner_role", *r)? as i32)
            }
            Some(F::PayerId(p)) => Filter::Payer(v::text("payer_id", p, MAX_SHORT)?),
            None => {
                return Err(ApiError::invalid(
                    "filter",
                    "give patient_id, status, owner_role or payer_id",
                ));
            }
        };
        if !matches!(filter, Filter::Patient(_)) && who.kind != PrincipalKind::Service {
            return Err(ApiError::PermissionDenied(
                "cross-patient lists are served through the gateway",
            ));
        }
        let rows = store::list(&mut *self.pool.acquire().await?, &filter, after, limit + 1).await?;
        let (rows, next_page_token) = paging::cut(rows, limit, |r| Cursor {
            at: r.due_at.unwrap_or_else(paging::far_future),
            id: r.id,
        });
        if !matches!(filter, Filter::Patient(_)) {
            // A list across patients is a read of each patient on it: audited per patient.
            let mut seen: Vec<Uuid> = rows.iter().map(|r| r.patient_id).collect();
            seen.sort_unstable();
            seen.dedup();
            let mut conn = self.pool.acquire().await?;
            careloop_runtime::audit::record_reads(&mut conn, who, "ListRequests", &seen).await?;
        }
        let at = now();
        Ok(ListRequestsResponse {
            requests: rows.into_iter().map(|r| convert::request(r, at)).collect(),
            next_page_token,
        })
    }
}
