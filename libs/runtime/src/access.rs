//! Whether a caller may read or write a patient is decided by plans, which owns care teams and
//! consents: services other than plans ask its `CheckAccess` over gRPC with a service token they sign
//! themselves. Internal services are trusted without asking.

use crate::auth::{Authenticator, Principal, PrincipalKind};
use crate::error::{ApiError, ApiResult};
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::plans::v1::{CheckAccessRequest, PrincipalKind as ProtoKind, PrincipalRef};
use std::sync::Arc;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

/// Signs a short-lived service token for each call to plans.
#[derive(Clone)]
pub struct ServiceToken {
    auth: Arc<Authenticator>,
    principal: Principal,
}

impl Interceptor for ServiceToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let token = self
            .auth
            .issue(&self.principal, chrono::Duration::minutes(5))
            .map_err(|_| tonic::Status::internal("could not sign service token"))?;
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| tonic::Status::internal("could not sign service token"))?;
        req.metadata_mut().insert("authorization", value);
        Ok(req)
    }
}

#[derive(Clone)]
pub struct PlansAccess {
    client: PlansServiceClient<InterceptedService<Channel, ServiceToken>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

impl PlansAccess {
    /// Connects lazily: referrals starts even while plans is down (calls then answer UNAVAILABLE).
    pub fn new(plans_addr: &str, auth: Arc<Authenticator>, service: &str) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(plans_addr.to_owned())?.connect_lazy();
        let principal = Principal {
            subject: service.to_owned(),
            org_id: Uuid::nil(),
            roles: vec![],
            kind: PrincipalKind::Service,
        };
        Ok(Self {
            client: PlansServiceClient::with_interceptor(channel, ServiceToken { auth, principal }),
        })
    }

    pub async fn check(&self, who: &Principal, patient_id: Uuid, need: Need) -> ApiResult<()> {
        if who.kind == PrincipalKind::Service {
            return Ok(());
        }
        let kind = match who.kind {
            PrincipalKind::Staff => ProtoKind::Staff,
            PrincipalKind::Partner => ProtoKind::Partner,
            PrincipalKind::Caregiver => ProtoKind::Caregiver,
            PrincipalKind::Payer => ProtoKind::Payer,
            PrincipalKind::Service => ProtoKind::Service,
        };
        let request = CheckAccessRequest {
            principal: Some(PrincipalRef {
                subject: who.subject.clone(),
                org_id: who.org_id.to_string(),
                kind: kind as i32,
            }),
            patient_id: patient_id.to_string(),
        };
        let answer =
            self.client
                .clone()
                .check_access(request)
                .await
                .map_err(|status| match status.code() {
                    tonic::Code::NotFound => ApiError::NotFound("patient"),
                    tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown => ApiError::Unavailable(anyhow::anyhow!(
                        "plans access check: {}",
                        status.code()
                    )),
                    code => {
                        ApiError::Internal(anyhow::anyhow!("plans access check failed: {code:?}"))
                    }
                })?;
        let answer = answer.into_inner();
        let allowed = match need {
            Need::Read => answer.can_read,
            Need::Write => answer.can_write,
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::AccessDenied { patient_id })
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
        patient_id: Uuid,
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
