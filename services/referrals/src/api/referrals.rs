//! Referrals: place, move through the closed loop, read with the timeline.

use super::{ReferralsApi, SOURCE, convert};
use crate::domain::due;
use crate::domain::referral::{self, Action, Status};
use crate::loops::{self, NewReferral};
use crate::store;
use careloop_proto::common::v1::{CareRole, Priority};
use careloop_proto::events::v1::{ReferralStatusChanged, event::Payload};
use careloop_proto::referrals::v1::transition_referral_request::Action as Act;
use careloop_proto::referrals::v1::*;
use careloop_runtime::auth::{Principal, PrincipalKind};
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::time::{now, opt_timestamp};
use careloop_runtime::validate::{self as v, MAX_SHORT, MAX_TEXT};

/// What a validated move carries besides the action.
#[derive(Default)]
struct Details {
    appointment_at: Option<chrono::DateTime<chrono::Utc>>,
    location: Option<String>,
    reason: String,
    note_reference: Option<String>,
}

fn action(req: &TransitionReferralRequest) -> ApiResult<(Action, Details)> {
    let act = req
        .action
        .as_ref()
        .ok_or_else(|| ApiError::invalid("action", "is required"))?;
    Ok(match act {
        Act::Accept(a) => (
            Action::Accept,
            Details {
                reason: v::optional_text("accept.note", &a.note, MAX_TEXT)?,
                ..Default::default()
            },
        ),
        Act::Decline(d) => (
            Action::Decline,
            Details {
                reason: v::text("decline.reason", &d.reason, MAX_TEXT)?,
                ..Default::default()
            },
        ),
        Act::Schedule(s) => (
            Action::Schedule,
            Details {
                appointment_at: Some(v::timestamp(
                    "schedule.appointment_at",
                    s.appointment_at.as_ref(),
                )?),
                location: Some(v::text("schedule.location", &s.location, MAX_SHORT)?),
                ..Default::default()
            },
        ),
        Act::Reschedule(r) => (
            Action::Reschedule,
            Details {
                appointment_at: Some(v::timestamp(
                    "reschedule.appointment_at",
                    r.appointment_at.as_ref(),
                )?),
                location: Some(v::text("reschedule.location", &r.location, MAX_SHORT)?),
                reason: v::text("reschedule.reason", &r.reason, MAX_TEXT)?,
                ..Default::default()
            },
        ),
        Act::Cancel(c) => (
            Action::Cancel,
            Details {
                reason: v::text("cancel.reason", &c.reason, MAX_TEXT)?,
                ..Default::default()
            },
        ),
        Act::NoShow(n) => (
            Action::NoShow,
            Details {
                reason: v::optional_text("no_show.note", &n.note, MAX_TEXT)?,
                ..Default::default()
            },
        ),
        Act::Seen(s) => (
            Action::Seen,
            Details {
                reason: v::optional_text("seen.note", &s.note, MAX_TEXT)?,
                ..Default::default()
            },
        ),
        Act::NoteReceived(n) => (
            Action::NoteReceived,
            Details {
                note_reference: Some(v::text(
                    "note_received.note_reference",
                    &n.note_reference,
                    MAX_SHORT,
                )?),
                ..Default::default()
            },
        ),
    })
}

impl ReferralsApi {
    pub(super) async fn place_referral(
        &self,
        who: &Principal,
        req: PlaceReferralRequest,
    ) -> ApiResult<PlaceReferralResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        // The sender is the caller's organization; a request naming another one is refused.
        let from_org_id = match v::optional_uuid("from_org_id", &req.from_org_id)? {
            None if who.kind == PrincipalKind::Service => {
                return Err(ApiError::invalid(
                    "from_org_id",
                    "is required from a service",
                ));
            }
            None => who.org_id,
            Some(org) if who.kind != PrincipalKind::Service && org != who.org_id => {
                return Err(ApiError::PermissionDenied(
                    "a referral is sent by the caller's own organization",
                ));
            }
            Some(org) => org,
        };
        let from_clinician = v::text("from_clinician", &req.from_clinician, MAX_SHORT)?;
        let to_org_id = v::optional_uuid("to_org_id", &req.to_org_id)?;
        let to_specialty = v::optional_text("to_specialty", &req.to_specialty, MAX_SHORT)?;
        if to_org_id.is_some() != to_specialty.is_empty() {
            return Err(ApiError::invalid(
                "to_org_id",
                "give exactly one of to_org_id and to_specialty",
            ));
        }
        let service_type = v::text("service_type", &req.service_type, MAX_SHORT)?;
        let reason = v::text("reason", &req.reason, MAX_TEXT)?;
        let urgency = v::enum_value::<Priority>("urgency", req.urgency)?;
        let owner_role = v::enum_value::<CareRole>("owner_role", req.owner_role)?;
        let clinical_context =
            v::optional_text("clinical_context", &req.clinical_context, MAX_TEXT)?;
        self.may_write(who, patient_id).await?;
        let mut w = careloop_runtime::begin_write!(self.pool, SOURCE, "PlaceReferral", who, req);
        let at = now();
        let row = loops::referral_row(
            NewReferral {
                patient_id,
                from_org_id,
                from_clinician,
                to_org_id,
                to_specialty,
                service_type,
                reason,
                urgency,
                owner_role: owner_role as i32,
                clinical_context,
                source: None,
            },
            &self.settings.due,
            at,
        );
        store::insert_referral(w.conn(), &row).await?;
        store::add_timeline(
            w.conn(),
            row.id,
            &who.subject,
            "",
            Status::Placed.as_str(),
            "",
            at,
        )
        .await?;
        w.belongs_to(Some(row.from_org_id));
        w.emit(patient_id, row.id, 1, loops::referral_placed(&row))
            .await?;
        let timeline = store::timeline(w.conn(), row.id).await?;
        let id = row.id;
        w.finish(
            patient_id,
            id,
            PlaceReferralResponse {
                referral: Some(convert::referral(row, timeline, at)),
            },
        )
        .await
    }

    pub(super) async fn get_referral(
        &self,
        who: &Principal,
        req: GetReferralRequest,
    ) -> ApiResult<GetReferralResponse> {
        let id = v::uuid("referral_id", &req.referral_id)?;
        let row = store::referral(&mut *self.pool.acquire().await?, id).await?;
        self.read(who, "GetReferral", row.patient_id).await?;
        let timeline = store::timeline(&mut *self.pool.acquire().await?, id).await?;
        Ok(GetReferralResponse {
            referral: Some(convert::referral(row, timeline, now())),
        })
    }

    pub(super) async fn transition_referral(
        &self,
        who: &Principal,
        req: TransitionReferralRequest,
    ) -> ApiResult<TransitionReferralResponse> {
        let id = v::uuid("referral_id", &req.referral_id)?;
        let version = v::expected_version(req.expected_version)?;
        let (action, details) = action(&req)?;
        let current = store::referral(&mut *self.pool.acquire().await?, id).await?;
        let patient_id = current.patient_id;
        self.may_write(who, patient_id).await?;
        if who.kind != PrincipalKind::Service
            && !referral::may_move(action, who.org_id, current.from_org_id, current.to_org_id)
        {
            return Err(ApiError::PermissionDenied(
                "the receiving organization runs the referral; the sender may only cancel",
            ));
        }
        let mut w =
            careloop_runtime::begin_write!(self.pool, SOURCE, "TransitionReferral", who, req);
        let mut row = store::lock_referral(w.conn(), id, version).await?;
        let from = Status::parse(&row.status).ok_or_else(|| {
            ApiError::internal("stored referral status is unknown", anyhow::anyhow!("{id}"))
        })?;
        let (to, count) = referral::apply(from, row.reschedule_count, action)
            .map_err(|refused| ApiError::refused_move(refused.to_string()))?;
        let at = now();
        if let Some(appointment) = details.appointment_at {
            row.appointment_at = Some(appointment);
        }
        if let Some(location) = details.location {
            row.location = location;
        }
        if let Some(note) = details.note_reference {
            row.note_reference = note;
        }
        let urgency =
            convert::urgency(Priority::try_from(row.urgency).unwrap_or(Priority::Routine));
        row.status = to.as_str().into();
        row.reschedule_count = count;
        row.status_reason = details.reason.clone();
        row.stage_due_at =
            due::referral_stage_due(&self.settings.due, to, urgency, at, row.appointment_at);
        row.version += 1;
        row.updated_at = at;
        store::save_referral(w.conn(), &row).await?;
        store::add_timeline(
            w.conn(),
            id,
            &who.subject,
            from.as_str(),
            to.as_str(),
            &details.reason,
            at,
        )
        .await?;
        let payload = Payload::ReferralStatusChanged(ReferralStatusChanged {
            referral_id: id.to_string(),
            from_status: convert::referral_status(from.as_str()) as i32,
            to_status: convert::referral_status(to.as_str()) as i32,
            owner_role: row.owner_role,
            stage_due_at: opt_timestamp(row.stage_due_at),
            reschedule_count: row.reschedule_count,
        });
        w.belongs_to(Some(row.from_org_id));
        w.emit(patient_id, id, row.version, payload).await?;
        let timeline = store::timeline(w.conn(), id).await?;
        w.finish(
            patient_id,
            id,
            TransitionReferralResponse {
                referral: Some(convert::referral(row, timeline, at)),
            },
        )
        .await
    }
}
