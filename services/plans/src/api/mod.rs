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
use careloop_runtime::auth::{Principal, principal};
use careloop_runtime::error::{ApiError, ApiResult};
pub(crate) use careloop_runtime::write::Write;
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;

pub const SOURCE: &str = "plans";

#[derive(Clone)]
pub struct PlansApi {
    pool: PgPool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

impl PlansApi {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Decides access for the caller; a refusal is audited on its own connection and answered
    /// PERMISSION_DENIED.
    async fn authorize(
        &self,
        conn: &mut PgConnection,
        principal: &Principal,
        rpc: &'static str,
        patient_id: Uuid,
        need: Need,
    ) -> ApiResult<Decision> {
        let facts = store::access_facts(conn, patient_id).await?;
        let decision = access::decide(principal, &facts, careloop_runtime::time::now());
        let allowed = match need {
            Need::Read => decision.can_read,
            Need::Write => decision.can_write,
        };
        if allowed {
            return Ok(decision);
        }
        let mut audit_conn = self.pool.acquire().await?;
        audit::record(
            &mut audit_conn,
            AuditEntry {
                principal,
                action: rpc,
                patient_id: Some(patient_id),
                target_id: None,
                outcome: Outcome::Denied,
            },
        )
        .await?;
        tracing::info!(rpc, patient_id = %patient_id, subject = %principal.subject, "access denied");
        Err(ApiError::PermissionDenied("no access to this patient"))
    }

    /// A read: checks access and audits it.
    async fn read_access(
        &self,
        principal: &Principal,
        rpc: &'static str,
        patient_id: Uuid,
    ) -> ApiResult<()> {
        let mut conn = self.pool.acquire().await?;
        self.authorize(&mut conn, principal, rpc, patient_id, Need::Read)
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
                subject: principal.subject.clone(),
            }),
            Caregiver | Payer => Err(ApiError::PermissionDenied(
                "role worklists are for care-team staff",
            )),
        }
    }
}

/// Plans decides access from its own care-team and consent data.
trait AuthorizeWrite {
    async fn authorize(&mut self, api: &PlansApi, patient_id: Uuid) -> ApiResult<()>;
}

impl AuthorizeWrite for Write {
    async fn authorize(&mut self, api: &PlansApi, patient_id: Uuid) -> ApiResult<()> {
        let principal = self.principal().clone();
        let rpc = self.rpc();
        api.authorize(self.conn(), &principal, rpc, patient_id, Need::Write)
            .await
            .map(|_| ())
    }
}

fn respond<T>(result: ApiResult<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

/// Writes the trait impl: each RPC takes the principal the auth interceptor stored and hands the
/// request to the inherent handler of the same name (inherent methods win method resolution).
macro_rules! plans_service {
    ($($name:ident: $req:ty => $resp:ty;)*) => {
        #[tonic::async_trait]
        impl PlansService for PlansApi {
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let who = principal(&request).map_err(Status::from)?;
                    respond(PlansApi::$name(self, &who, request.into_inner()).await)
                }
            )*
        }
    };
}

plans_service! {
    create_patient: CreatePatientRequest => CreatePatientResponse;
    get_patient: GetPatientRequest => GetPatientResponse;
    find_patient_by_mrn: FindPatientByMrnRequest => FindPatientByMrnResponse;
    create_care_plan: CreateCarePlanRequest => CreateCarePlanResponse;
    get_care_plan: GetCarePlanRequest => GetCarePlanResponse;
    update_care_plan: UpdateCarePlanRequest => UpdateCarePlanResponse;
    reconcile_medications: ReconcileMedicationsRequest => ReconcileMedicationsResponse;
    add_care_team_member: AddCareTeamMemberRequest => AddCareTeamMemberResponse;
    update_care_team_member: UpdateCareTeamMemberRequest => UpdateCareTeamMemberResponse;
    remove_care_team_member: RemoveCareTeamMemberRequest => RemoveCareTeamMemberResponse;
    grant_consent: GrantConsentRequest => GrantConsentResponse;
    revoke_consent: RevokeConsentRequest => RevokeConsentResponse;
    list_consents: ListConsentsRequest => ListConsentsResponse;
    check_access: CheckAccessRequest => CheckAccessResponse;
    create_task: CreateTaskRequest => CreateTaskResponse;
    get_task: GetTaskRequest => GetTaskResponse;
    assign_task: AssignTaskRequest => AssignTaskResponse;
    transition_task: TransitionTaskRequest => TransitionTaskResponse;
    list_open_tasks: ListOpenTasksRequest => ListOpenTasksResponse;
    send_handoff: SendHandoffRequest => SendHandoffResponse;
    acknowledge_handoff: AcknowledgeHandoffRequest => AcknowledgeHandoffResponse;
    list_unacknowledged_handoffs: ListUnacknowledgedHandoffsRequest => ListUnacknowledgedHandoffsResponse;
    start_transition: StartTransitionRequest => StartTransitionResponse;
    get_transition: GetTransitionRequest => GetTransitionResponse;
    update_checklist_item: UpdateChecklistItemRequest => UpdateChecklistItemResponse;
    complete_transition: CompleteTransitionRequest => CompleteTransitionResponse;
}
