//! Whether a caller may read or write a patient is decided by plans, which owns care teams and
//! consents: services other than plans ask its `CheckAccess` over gRPC, as themselves (their mutual
//! TLS certificate) carrying the user as on-behalf-of, so plans decides on the user and audits both.
//! A service acting for itself (a sweeper, a consumer) is trusted without asking.

use crate::auth::{Authenticator, Principal, PrincipalKind};
use crate::config::TlsSettings;
use crate::error::{ApiError, ApiResult};
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::plans::v1::{CheckAccessRequest, PrincipalKind as ProtoKind, PrincipalRef};
use std::sync::Arc;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// How a service proves itself on outbound calls: its certificate on an https channel (nothing to
/// add), or, in dev mode on plaintext loopback only, a short-lived token signed with the dev key.
#[derive(Clone)]
pub struct ServiceCredentials {
    dev: Option<(Arc<Authenticator>, Principal)>,
}

impl ServiceCredentials {
    pub fn for_address(
        addr: &str,
        auth: Arc<Authenticator>,
        service: &str,
    ) -> anyhow::Result<Self> {
        if addr.starts_with("https://") {
            return Ok(Self { dev: None });
        }
        if !auth.dev_mode() {
            anyhow::bail!("{addr}: calls between services use https (mutual TLS) outside dev mode");
        }
        Ok(Self {
            dev: Some((auth, Principal::service(service))),
        })
    }
}

impl Interceptor for ServiceCredentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some((auth, principal)) = &self.dev {
            let token = auth
                .issue(principal, chrono::Duration::minutes(5))
                .map_err(|_| tonic::Status::internal("could not sign service token"))?;
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| tonic::Status::internal("could not sign service token"))?;
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
    }
}

/// One mapping of plans' answers for every call a service makes to it: a missing patient is
/// NOT_FOUND, an unreachable plans UNAVAILABLE (retryable), anything else INTERNAL with the cause
/// (plans' messages carry no patient data) for the log.
fn plans_error(call: &str, status: tonic::Status) -> ApiError {
    match status.code() {
        tonic::Code::NotFound => ApiError::NotFound("patient"),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown => {
            ApiError::Unavailable(anyhow::anyhow!("{call}: {}", status.code()))
        }
        code => ApiError::Internal(anyhow::anyhow!(
            "{call} failed: {code:?}: {}",
            status.message()
        )),
    }
}

#[derive(Clone)]
pub struct PlansAccess {
    client: PlansServiceClient<InterceptedService<Channel, ServiceCredentials>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

impl PlansAccess {
    /// Connects lazily: a service starts even while plans is down (calls then answer UNAVAILABLE).
    pub fn new(
        plans_addr: &str,
        tls: &TlsSettings,
        auth: Arc<Authenticator>,
        service: &str,
    ) -> anyhow::Result<Self> {
        let channel = crate::client::channel(plans_addr, tls)?;
        let credentials = ServiceCredentials::for_address(plans_addr, auth, service)?;
        Ok(Self {
            client: PlansServiceClient::with_interceptor(channel, credentials),
        })
    }

    /// Creates a task on a patient's plan as this service (a pathway rule's action). The key makes
    /// a retried creation return the first task; returns its id.
    pub async fn create_task(
        &self,
        idempotency_key: String,
        request: careloop_proto::plans::v1::CreateTaskRequest,
    ) -> ApiResult<uuid::Uuid> {
        let request = careloop_proto::plans::v1::CreateTaskRequest {
            idempotency_key,
            ..request
        };
        let task = self
            .client
            .clone()
            .create_task(request)
            .await
            .map_err(|status| plans_error("plans create task", status))?
            .into_inner()
            .task
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("plans answered without a task")))?;
        uuid::Uuid::parse_str(&task.id).map_err(|_| {
            ApiError::Internal(anyhow::anyhow!(
                "plans answered a task id that is not a uuid"
            ))
        })
    }

    /// The patient's family caregivers a notice may reach now (active consent, a contact), as
    /// this service.
    pub async fn consented_caregivers(
        &self,
        patient_id: uuid::Uuid,
    ) -> ApiResult<Vec<careloop_proto::plans::v1::ConsentedCaregiver>> {
        Ok(self
            .client
            .clone()
            .list_consented_caregivers(careloop_proto::plans::v1::ListConsentedCaregiversRequest {
                patient_id: patient_id.to_string(),
            })
            .await
            .map_err(|status| plans_error("plans consented caregivers", status))?
            .into_inner()
            .caregivers)
    }

    /// Plans' decision on `who` for a patient: rights and basis (ManagingOrganization, ...).
    pub async fn decision(
        &self,
        who: &Principal,
        patient_id: uuid::Uuid,
    ) -> ApiResult<careloop_proto::plans::v1::CheckAccessResponse> {
        let kind = match who.kind {
            PrincipalKind::Staff => ProtoKind::Staff,
            PrincipalKind::Partner => ProtoKind::Partner,
            PrincipalKind::Caregiver => ProtoKind::Caregiver,
            PrincipalKind::Payer => ProtoKind::Payer,
            PrincipalKind::Service => ProtoKind::Service,
        };
        let mut request = tonic::Request::new(CheckAccessRequest {
            principal: Some(PrincipalRef {
                subject: who.subject.clone(),
                org_id: who.org_id.to_string(),
                kind: kind as i32,
            }),
            patient_id: patient_id.to_string(),
        });
        if who.kind != PrincipalKind::Service {
            let on_behalf_of = crate::auth::on_behalf_of_header(who)
                .parse()
                .map_err(|_| ApiError::Internal(anyhow::anyhow!("on-behalf-of header")))?;
            request
                .metadata_mut()
                .insert(crate::auth::ON_BEHALF_OF, on_behalf_of);
        }
        let answer = self
            .client
            .clone()
            .check_access(request)
            .await
            .map_err(|status| plans_error("plans access check", status))?;
        Ok(answer.into_inner())
    }

    pub async fn check(
        &self,
        who: &Principal,
        patient_id: uuid::Uuid,
        need: Need,
    ) -> ApiResult<()> {
        if who.kind == PrincipalKind::Service {
            return Ok(());
        }
        let answer = self.decision(who, patient_id).await?;
        let allowed = match need {
            Need::Read => answer.can_read,
            Need::Write => answer.can_write,
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::AccessDenied {
                patient_id,
                hidden: !answer.can_read,
            })
        }
    }
}

impl PlansAccess {
    /// A read of patient data: access checked, then the read audited.
    pub async fn audited_read(
        &self,
        pool: &sqlx::PgPool,
        who: &Principal,
        rpc: &'static str,
        patient_id: uuid::Uuid,
    ) -> ApiResult<()> {
        self.check(who, patient_id, Need::Read).await?;
        let mut conn = pool.acquire().await?;
        crate::audit::record(
            &mut conn,
            crate::audit::AuditEntry {
                principal: who,
                action: rpc,
                patient_id: Some(patient_id),
                target_id: None,
                outcome: crate::audit::Outcome::Ok,
            },
        )
        .await?;
        Ok(())
    }
}

/// The organization a caller acts in for organization-wide reads and settings (inboxes, rosters,
/// digests, measures): staff their own (naming another is refused), an internal service the one it
/// names (`org_id`, required); anyone else is refused with `refused`.
pub fn staff_or_named_org(
    who: &Principal,
    requested: &str,
    refused: &'static str,
) -> ApiResult<uuid::Uuid> {
    match who.kind {
        PrincipalKind::Service => crate::validate::uuid("org_id", requested),
        PrincipalKind::Staff => match crate::validate::optional_uuid("org_id", requested)? {
            Some(org) if org != who.org_id => Err(ApiError::PermissionDenied(
                "staff act for their own organization",
            )),
            _ => Ok(who.org_id),
        },
        _ => Err(ApiError::PermissionDenied(refused)),
    }
}
