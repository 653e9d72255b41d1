//! The tonic implementation of `careloop.plans.v1.PlansService`. Each handler validates its input
//! (naming the field), checks access, and for writes claims the idempotency key, makes the change,
//! writes the audit row and the outbox event in one transaction.

mod convert;
mod patients;
mod plan;
mod tasks;
mod transitions;

use crate::domain::access::{self, Decision};
use crate::store;
use careloop_proto::plans::v1::plans_service_server::PlansService;
use careloop_proto::plans::v1::*;
use careloop_runtime::audit::{self, AuditEntry, Outcome};
use careloop_runtime::auth::Principal;
use careloop_runtime::error::{ApiError, ApiResult};
pub(crate) use careloop_runtime::write::Write;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub const SOURCE: &str = "plans";

/// Plans' events belong to the organization that manages the patient, whoever made the change
/// (a partner moving a task, a specialist acknowledging a handoff): escalation and measures reach
/// the patient's owner.
async fn managed_by_owner(w: &mut Write, patient_id: Uuid) -> ApiResult<()> {
    let org = store::managing_org(w.conn(), patient_id).await?;
    w.belongs_to(Some(org));
    Ok(())
}

#[derive(Clone)]
pub struct PlansApi {
    pool: PgPool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    /// Changing the care team or the consents: write access and `access::may_change_team`.
    ChangeTeam,
}

impl PlansApi {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Decides access for the caller. A refusal is answered `AccessDenied`; `respond` audits it after
    /// the handler's connection and transaction are released.
    async fn authorize(
        &self,
        conn: &mut PgConnection,
        principal: &Principal,
        patient_id: Uuid,
        need: Need,
    ) -> ApiResult<Decision> {
        let facts = store::access_facts(conn, patient_id).await?;
        let decision = access::decide(principal, &facts, careloop_runtime::time::now());
        let allowed = match need {
            Need::Read => decision.can_read,
            Need::Write => decision.can_write,
            Need::ChangeTeam => decision.can_write,
        };
        if allowed && need == Need::ChangeTeam && !access::may_change_team(principal, &facts) {
            return Err(ApiError::PermissionDenied(
                "only the managing organization's staff or the plan lead's organization change the care team and consents",
            ));
        }
        if allowed {
            return Ok(decision);
        }
        Err(ApiError::AccessDenied {
            patient_id,
            hidden: !decision.can_read,
        })
    }

    /// A read: checks access and audits it.
    async fn read_access(
        &self,
        principal: &Principal,
        rpc: &'static str,
        patient_id: Uuid,
    ) -> ApiResult<()> {
        let mut conn = self.pool.acquire().await?;
        self.authorize(&mut conn, principal, patient_id, Need::Read)
            .await?;
        audit::record(
            &mut conn,
            AuditEntry {
                principal,
                action: rpc,
                patient_id: Some(patient_id),
                target_id: None,
                outcome: Outcome::Ok,
            },
        )
        .await?;
        Ok(())
    }

    /// Who may see cross-patient worklists, and how they are filtered.
    fn viewer(principal: &Principal) -> ApiResult<store::Viewer> {
        use careloop_runtime::auth::PrincipalKind::*;
        match principal.kind {
            Service | Staff | Partner => Ok(store::Viewer {
                all: principal.kind == Service,
                org_id: principal.org_id,
            }),
            Caregiver | Payer => Err(ApiError::PermissionDenied(
                "role worklists are for care-team staff",
            )),
        }
    }
}

/// Who belongs to a patient's managing organization, for the audit trail, from plans' own data.
pub struct ManagingScope {
    pool: PgPool,
}

impl ManagingScope {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl careloop_runtime::audit_service::PatientScope for ManagingScope {
    fn is_managing_staff<'a>(
        &'a self,
        who: &'a Principal,
        patient_id: Uuid,
    ) -> futures::future::BoxFuture<'a, ApiResult<bool>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            let facts = store::access_facts(&mut conn, patient_id).await?;
            let decision = access::decide(who, &facts, careloop_runtime::time::now());
            if !decision.can_read {
                return Err(ApiError::AccessDenied {
                    patient_id,
                    hidden: true,
                });
            }
            Ok(decision.basis == access::Basis::ManagingOrganization)
        })
    }
}

/// Plans decides access from its own care-team and consent data.
trait AuthorizeWrite {
    async fn authorize(&mut self, api: &PlansApi, patient_id: Uuid) -> ApiResult<()>;
    async fn authorize_team_change(&mut self, api: &PlansApi, patient_id: Uuid) -> ApiResult<()>;
}

impl AuthorizeWrite for Write {
    async fn authorize(&mut self, api: &PlansApi, patient_id: Uuid) -> ApiResult<()> {
        let principal = self.principal().clone();
        api.authorize(self.conn(), &principal, patient_id, Need::Write)
            .await
            .map(|_| ())
    }

    async fn authorize_team_change(&mut self, api: &PlansApi, patient_id: Uuid) -> ApiResult<()> {
        let principal = self.principal().clone();
        api.authorize(self.conn(), &principal, patient_id, Need::ChangeTeam)
            .await
            .map(|_| ())
    }
}

impl PlansApi {
    fn pool(&self) -> &PgPool {
        &self.pool
    }
}

careloop_runtime::grpc_service!(PlansService, PlansApi, {
    create_patient / "CreatePatient": CreatePatientRequest => CreatePatientResponse;
    get_patient / "GetPatient": GetPatientRequest => GetPatientResponse;
    find_patient_by_mrn / "FindPatientByMrn": FindPatientByMrnRequest => FindPatientByMrnResponse;
    create_care_plan / "CreateCarePlan": CreateCarePlanRequest => CreateCarePlanResponse;
    get_care_plan / "GetCarePlan": GetCarePlanRequest => GetCarePlanResponse;
    update_care_plan / "UpdateCarePlan": UpdateCarePlanRequest => UpdateCarePlanResponse;
    reconcile_medications / "ReconcileMedications": ReconcileMedicationsRequest => ReconcileMedicationsResponse;
    add_care_team_member / "AddCareTeamMember": AddCareTeamMemberRequest => AddCareTeamMemberResponse;
    update_care_team_member / "UpdateCareTeamMember": UpdateCareTeamMemberRequest => UpdateCareTeamMemberResponse;
    remove_care_team_member / "RemoveCareTeamMember": RemoveCareTeamMemberRequest => RemoveCareTeamMemberResponse;
    grant_consent / "GrantConsent": GrantConsentRequest => GrantConsentResponse;
    revoke_consent / "RevokeConsent": RevokeConsentRequest => RevokeConsentResponse;
    list_consents / "ListConsents": ListConsentsRequest => ListConsentsResponse;
    check_access / "CheckAccess": CheckAccessRequest => CheckAccessResponse;
    batch_check_access / "BatchCheckAccess": BatchCheckAccessRequest => BatchCheckAccessResponse;
    list_consented_caregivers / "ListConsentedCaregivers": ListConsentedCaregiversRequest => ListConsentedCaregiversResponse;
    create_task / "CreateTask": CreateTaskRequest => CreateTaskResponse;
    get_task / "GetTask": GetTaskRequest => GetTaskResponse;
    assign_task / "AssignTask": AssignTaskRequest => AssignTaskResponse;
    transition_task / "TransitionTask": TransitionTaskRequest => TransitionTaskResponse;
    list_open_tasks / "ListOpenTasks": ListOpenTasksRequest => ListOpenTasksResponse;
    send_handoff / "SendHandoff": SendHandoffRequest => SendHandoffResponse;
    acknowledge_handoff / "AcknowledgeHandoff": AcknowledgeHandoffRequest => AcknowledgeHandoffResponse;
    list_unacknowledged_handoffs / "ListUnacknowledgedHandoffs": ListUnacknowledgedHandoffsRequest => ListUnacknowledgedHandoffsResponse;
    start_transition / "StartTransition": StartTransitionRequest => StartTransitionResponse;
    get_transition / "GetTransition": GetTransitionRequest => GetTransitionResponse;
    update_checklist_item / "UpdateChecklistItem": UpdateChecklistItemRequest => UpdateChecklistItemResponse;
    complete_transition / "CompleteTransition": CompleteTransitionRequest => CompleteTransitionResponse;
});
