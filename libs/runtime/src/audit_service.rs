//! `careloop.audit.v1.AuditService`, served by every service from its own audit log: "who saw or
//! changed this patient", for the privacy office of the patient's managing organization (staff with
//! the role `privacy_officer`) and for CareLoop services. Every query is itself audited; refusals
//! are audited like any other.

use crate::auth::{Principal, PrincipalKind};
use crate::error::{ApiError, ApiResult};
use careloop_proto::audit::v1::audit_service_server::AuditService;
use careloop_proto::audit::v1::{AuditEvent, ListPatientAuditRequest, ListPatientAuditResponse};
use futures::future::BoxFuture;
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

/// The role that reads a patient's audit trail.
pub const PRIVACY_OFFICER_ROLE: &str = "privacy_officer";

/// Whether a caller is staff of a patient's managing organization: plans answers from its own
/// data, other services ask plans. A caller who may not read the patient at all gets the hidden
/// refusal (NOT_FOUND).
pub trait PatientScope: Send + Sync + 'static {
    fn is_managing_staff<'a>(
        &'a self,
        who: &'a Principal,
        patient_id: Uuid,
    ) -> BoxFuture<'a, ApiResult<bool>>;
}

impl PatientScope for crate::access::PlansAccess {
    fn is_managing_staff<'a>(
        &'a self,
        who: &'a Principal,
        patient_id: Uuid,
    ) -> BoxFuture<'a, ApiResult<bool>> {
        Box::pin(async move {
            let answer = self.decision(who, patient_id).await?;
            if !answer.can_read {
                return Err(ApiError::AccessDenied {
                    patient_id,
                    hidden: true,
                });
            }
            Ok(answer.basis == careloop_proto::plans::v1::AccessBasis::ManagingOrganization as i32)
        })
    }
}

#[derive(Clone)]
pub struct AuditApi {
    pool: PgPool,
    service: &'static str,
    scope: Arc<dyn PatientScope>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    at: chrono::DateTime<chrono::Utc>,
    issuer: String,
    subject: String,
    org_id: Uuid,
    principal_kind: String,
    via_service: Option<String>,
    action: String,
    target_id: Option<Uuid>,
    outcome: String,
    trace_id: Option<String>,
}

impl AuditApi {
    pub fn new(pool: PgPool, service: &'static str, scope: Arc<dyn PatientScope>) -> Self {
        Self {
            pool,
            service,
            scope,
        }
    }

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn list_patient_audit(
        &self,
        who: &Principal,
        req: ListPatientAuditRequest,
    ) -> ApiResult<ListPatientAuditResponse> {
        let patient_id = crate::validate::uuid("patient_id", &req.patient_id)?;
        let limit = crate::paging::page_size(req.page_size)?;
        let before: Option<i64> =
            if req.page_token.is_empty() {
                None
            } else {
                Some(req.page_token.parse().map_err(|_| {
                    ApiError::invalid("page_token", "is not a token from this list")
                })?)
            };
        if who.kind != PrincipalKind::Service {
            let officer = who.kind == PrincipalKind::Staff
                && who.roles.iter().any(|r| r == PRIVACY_OFFICER_ROLE);
            let managing = self.scope.is_managing_staff(who, patient_id).await?;
            if !(officer && managing) {
                return Err(ApiError::PermissionDenied(
                    "the audit trail is read by the managing organization's privacy office",
                ));
            }
        }
        let mut conn = self.pool.acquire().await?;
        let mut rows: Vec<Row> = sqlx::query_as(
            "SELECT id, at, issuer, subject, org_id, principal_kind, via_service, action, target_id,
                    outcome, trace_id
               FROM audit_log
              WHERE patient_id = $1 AND ($2::bigint IS NULL OR id < $2)
              ORDER BY id DESC LIMIT $3",
        )
        .bind(patient_id)
        .bind(before)
        .bind(limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        let next_page_token = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.id.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        crate::audit::record(
            &mut conn,
            crate::audit::AuditEntry {
                principal: who,
                action: "ListPatientAudit",
                patient_id: Some(patient_id),
                target_id: None,
                outcome: crate::audit::Outcome::Ok,
            },
        )
        .await?;
        Ok(ListPatientAuditResponse {
            events: rows
                .into_iter()
                .map(|r| AuditEvent {
                    at: Some(crate::time::to_timestamp(r.at)),
                    issuer: r.issuer,
                    subject: r.subject,
                    org_id: r.org_id.to_string(),
                    principal_kind: r.principal_kind,
                    via_service: r.via_service.unwrap_or_default(),
                    action: r.action,
                    target_id: r.target_id.map(|t| t.to_string()).unwrap_or_default(),
                    outcome: r.outcome,
                    trace_id: r.trace_id.unwrap_or_default(),
                    service: self.service.to_owned(),
                })
                .collect(),
            next_page_token,
        })
    }
}

crate::grpc_service!(AuditService, AuditApi, {
    list_patient_audit / "ListPatientAudit": ListPatientAuditRequest => ListPatientAuditResponse;
});
