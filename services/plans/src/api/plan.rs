//! The one-screen care plan, medication reconciliation and the care team.

use super::{AuthorizeWrite, PlansApi, convert};
use crate::domain::team::{Member, Team, TeamError};
use crate::store::{self, MemberRow, PlanRow};
use careloop_proto::events::v1::{
    CarePlanCreated, CarePlanUpdated, CareTeamChange, CareTeamChanged, MedicationsReconciled,
    event::Payload,
};
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::Principal;
use careloop_runtime::error::{ApiError, ApiResult, Reason};
use careloop_runtime::time::now;
use careloop_runtime::validate::{self as v, MAX_TEXT};
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

async fn load_plan(conn: &mut PgConnection, patient_id: Uuid) -> ApiResult<CarePlan> {
    let plan = store::plan(conn, patient_id).await?;
    let team = store::team(conn, patient_id).await?;
    convert::plan(plan, team)
}

async fn load_team(conn: &mut PgConnection, patient_id: Uuid) -> ApiResult<(Team, Vec<MemberRow>)> {
    let rows = store::team(conn, patient_id).await?;
    let members = rows
        .iter()
        .map(|m| Member {
            id: m.id,
            is_lead: m.is_lead,
        })
        .collect();
    let team = Team::from_members(members).ok_or_else(|| {
        ApiError::internal(
            "care team breaks the one-lead rule",
            anyhow::anyhow!("patient {patient_id}"),
        )
    })?;
    Ok((team, rows))
}

fn team_error(e: TeamError) -> ApiError {
    match e {
        TeamError::NoSuchMember => ApiError::NotFound("care team member"),
        TeamError::RemovingLead => {
            ApiError::precondition(Reason::PreconditionFailed, e.to_string())
        }
    }
}

fn team_event(plan: &PlanRow, m: &MemberRow, change: CareTeamChange) -> Payload {
    Payload::CareTeamChanged(CareTeamChanged {
        plan_id: plan.id.to_string(),
        member_id: m.id.to_string(),
        change: change as i32,
        role: m.role,
        is_lead: m.is_lead,
        organization_id: m.organization_id.map(|o| o.to_string()).unwrap_or_default(),
    })
}

impl PlansApi {
    pub(super) async fn create_care_plan(
        &self,
        who: &Principal,
        req: CreateCarePlanRequest,
    ) -> ApiResult<CreateCarePlanResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let content = convert::plan_content(req.content.as_ref())?;
        let mut lead = convert::new_member("lead", req.lead.as_ref())?;
        lead.patient_id = patient_id;
        lead.is_lead = true;
        let (mut w, ()) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "CreateCarePlan",
            who,
            req,
            w => { w.authorize(self, patient_id).await? }
        );
        let plan = PlanRow {
            id: Uuid::now_v7(),
            patient_id,
            content: content.encode_to_vec(),
            reconciled_by: None,
            reconciled_by_role: None,
            reconciled_at: None,
            reconcile_note: None,
            version: 1,
            updated_at: now(),
            updated_by: who.subject.clone(),
        };
        store::insert_plan(w.conn(), &plan).await?;
        store::insert_member(w.conn(), &lead).await?;
        let payload = Payload::CarePlanCreated(CarePlanCreated {
            plan_id: plan.id.to_string(),
            lead_member_id: lead.id.to_string(),
            lead_role: lead.role,
            lead_organization_id: lead
                .organization_id
                .map(|o| o.to_string())
                .unwrap_or_default(),
        });
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, plan.id, 1, payload).await?;
        let plan_id = plan.id;
        let response = CreateCarePlanResponse {
            plan: Some(convert::plan(plan, vec![lead])?),
        };
        w.finish(patient_id, plan_id, response).await
    }

    pub(super) async fn get_care_plan(
        &self,
        who: &Principal,
        req: GetCarePlanRequest,
    ) -> ApiResult<GetCarePlanResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        self.read_access(who, "GetCarePlan", patient_id).await?;
        let mut conn = self.pool.acquire().await?;
        Ok(GetCarePlanResponse {
            plan: Some(load_plan(&mut conn, patient_id).await?),
        })
    }

    pub(super) async fn update_care_plan(
        &self,
        who: &Principal,
        req: UpdateCarePlanRequest,
    ) -> ApiResult<UpdateCarePlanResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let version = v::expected_version(req.expected_version)?;
        let content = convert::plan_content(req.content.as_ref())?;
        let (mut w, ()) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "UpdateCarePlan",
            who,
            req,
            w => { w.authorize(self, patient_id).await? }
        );
        let mut plan = store::lock_plan(w.conn(), patient_id, version).await?;
        plan.content = content.encode_to_vec();
        plan.version += 1;
        plan.updated_at = now();
        plan.updated_by = who.subject.clone();
        store::save_plan(w.conn(), &plan).await?;
        let payload = Payload::CarePlanUpdated(CarePlanUpdated {
            plan_id: plan.id.to_string(),
            goal_count: content.goals.len() as i32,
            medication_count: content.medications.len() as i32,
            red_flag_count: content.red_flags.len() as i32,
        });
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, plan.id, plan.version, payload).await?;
        let plan_id = plan.id;
        let response = UpdateCarePlanResponse {
            plan: Some(load_plan(w.conn(), patient_id).await?),
        };
        w.finish(patient_id, plan_id, response).await
    }

    pub(super) async fn reconcile_medications(
        &self,
        who: &Principal,
        req: ReconcileMedicationsRequest,
    ) -> ApiResult<ReconcileMedicationsResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let version = v::expected_version(req.expected_version)?;
        let medications = convert::medications("medications", &req.medications)?;
        let role = convert::role("reconciled_by_role", req.reconciled_by_role)?;
        let note = v::optional_text("note", &req.note, MAX_TEXT)?;
        let (mut w, ()) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "ReconcileMedications",
            who,
            req,
            w => { w.authorize(self, patient_id).await? }
        );
        let mut plan = store::lock_plan(w.conn(), patient_id, version).await?;
        let mut content = CarePlanContent::decode(plan.content.as_slice())
            .map_err(|e| ApiError::internal("failed to decode stored care plan", e))?;
        let count = medications.len() as i32;
        content.medications = medications;
        let at = now();
        plan.content = content.encode_to_vec();
        plan.reconciled_by = Some(who.subject.clone());
        plan.reconciled_by_role = Some(role as i32);
        plan.reconciled_at = Some(at);
        plan.reconcile_note = Some(note);
        plan.version += 1;
        plan.updated_at = at;
        plan.updated_by = who.subject.clone();
        store::save_plan(w.conn(), &plan).await?;
        let payload = Payload::MedicationsReconciled(MedicationsReconciled {
            plan_id: plan.id.to_string(),
            reconciled_by_role: role as i32,
            medication_count: count,
        });
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, plan.id, plan.version, payload).await?;
        let plan_id = plan.id;
        let response = ReconcileMedicationsResponse {
            plan: Some(load_plan(w.conn(), patient_id).await?),
        };
        w.finish(patient_id, plan_id, response).await
    }

    pub(super) async fn add_care_team_member(
        &self,
        who: &Principal,
        req: AddCareTeamMemberRequest,
    ) -> ApiResult<AddCareTeamMemberResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let version = v::expected_version(req.expected_version)?;
        let mut member = convert::new_member("member", req.member.as_ref())?;
        member.patient_id = patient_id;
        let (mut w, ()) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "AddCareTeamMember",
            who,
            req,
            w => { w.authorize_team_change(self, patient_id).await? }
        );
        let mut plan = store::lock_plan(w.conn(), patient_id, version).await?;
        let (mut team, _) = load_team(w.conn(), patient_id).await?;
        if let Some(previous) = team.add(member.id, member.is_lead) {
            store::clear_lead(w.conn(), previous).await?;
        }
        store::insert_member(w.conn(), &member).await?;
        plan.version += 1;
        plan.updated_at = now();
        plan.updated_by = who.subject.clone();
        store::save_plan(w.conn(), &plan).await?;
        let payload = team_event(&plan, &member, CareTeamChange::Added);
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, plan.id, plan.version, payload).await?;
        let plan_id = plan.id;
        let response = AddCareTeamMemberResponse {
            plan: Some(load_plan(w.conn(), patient_id).await?),
            member: Some(convert::member(member)),
        };
        w.finish(patient_id, plan_id, response).await
    }

    pub(super) async fn update_care_team_member(
        &self,
        who: &Principal,
        req: UpdateCareTeamMemberRequest,
    ) -> ApiResult<UpdateCareTeamMemberResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let version = v::expected_version(req.expected_version)?;
        let member_id = v::uuid("member_id", &req.member_id)?;
        let role = convert::optional_role("role", req.role)?;
        let contact = req
            .preferred_contact
            .as_ref()
            .map(|c| convert::preferred_contact("preferred_contact", Some(c)))
            .transpose()?;
        let (mut w, ()) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "UpdateCareTeamMember",
            who,
            req,
            w => { w.authorize_team_change(self, patient_id).await? }
        );
        let mut plan = store::lock_plan(w.conn(), patient_id, version).await?;
        let (mut team, rows) = load_team(w.conn(), patient_id).await?;
        let mut member = rows
            .into_iter()
            .find(|m| m.id == member_id)
            .ok_or(ApiError::NotFound("care team member"))?;
        if req.make_lead
            && let Some(previous) = team.make_lead(member_id).map_err(team_error)?
        {
            store::clear_lead(w.conn(), previous).await?;
            member.is_lead = true;
        }
        if let Some(role) = role {
            member.role = role as i32;
        }
        if let Some((channel, address)) = contact {
            member.contact_channel = channel;
            member.contact_address = address;
        }
        store::update_member(w.conn(), &member).await?;
        plan.version += 1;
        plan.updated_at = now();
        plan.updated_by = who.subject.clone();
        store::save_plan(w.conn(), &plan).await?;
        let payload = team_event(&plan, &member, CareTeamChange::Updated);
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, plan.id, plan.version, payload).await?;
        let plan_id = plan.id;
        let response = UpdateCareTeamMemberResponse {
            plan: Some(load_plan(w.conn(), patient_id).await?),
        };
        w.finish(patient_id, plan_id, response).await
    }

    pub(super) async fn remove_care_team_member(
        &self,
        who: &Principal,
        req: RemoveCareTeamMemberRequest,
    ) -> ApiResult<RemoveCareTeamMemberResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let version = v::expected_version(req.expected_version)?;
        let member_id = v::uuid("member_id", &req.member_id)?;
        let (mut w, ()) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "RemoveCareTeamMember",
            who,
            req,
            w => { w.authorize_team_change(self, patient_id).await? }
        );
        let mut plan = store::lock_plan(w.conn(), patient_id, version).await?;
        let (mut team, rows) = load_team(w.conn(), patient_id).await?;
        team.remove(member_id).map_err(team_error)?;
        let member = rows
            .into_iter()
            .find(|m| m.id == member_id)
            .ok_or(ApiError::NotFound("care team member"))?;
        store::remove_member(w.conn(), member_id, now()).await?;
        plan.version += 1;
        plan.updated_at = now();
        plan.updated_by = who.subject.clone();
        store::save_plan(w.conn(), &plan).await?;
        let payload = team_event(&plan, &member, CareTeamChange::Removed);
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, plan.id, plan.version, payload).await?;
        let plan_id = plan.id;
        let response = RemoveCareTeamMemberResponse {
            plan: Some(load_plan(w.conn(), patient_id).await?),
        };
        w.finish(patient_id, plan_id, response).await
    }
}
