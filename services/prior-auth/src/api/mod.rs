//! The tonic implementation of `careloop.priorauth.v1.PriorAuthService`: validate (naming the
//! field), ask plans for access, then change, audit and emit in one idempotent transaction.

pub mod convert;
mod requests;

use crate::settings::PriorAuthSettings;
use careloop_proto::priorauth::v1::prior_auth_service_server::PriorAuthService;
use careloop_proto::priorauth::v1::*;
use careloop_runtime::access::{Need, PlansAccess};
use careloop_runtime::auth::Principal;
use careloop_runtime::error::ApiResult;
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

pub const SOURCE: &str = "prior-auth";

#[derive(Clone)]
pub struct PriorAuthApi {
    pool: PgPool,
    access: PlansAccess,
    settings: Arc<PriorAuthSettings>,
    zone: chrono_tz::Tz,
}

impl PriorAuthApi {
    pub fn new(
        pool: PgPool,
        access: PlansAccess,
        settings: Arc<PriorAuthSettings>,
    ) -> anyhow::Result<Self> {
        let zone = settings.zone()?;
        Ok(Self {
            pool,
            access,
            settings,
            zone,
        })
    }

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn may_write(&self, who: &Principal, patient_id: Uuid) -> ApiResult<()> {
        self.access.check(who, patient_id, Need::Write).await
    }

    async fn read(&self, who: &Principal, rpc: &'static str, patient_id: Uuid) -> ApiResult<()> {
        self.access
            .audited_read(&self.pool, who, rpc, patient_id)
            .await
    }
}

careloop_runtime::grpc_service!(PriorAuthService, PriorAuthApi, {
    create_request / "CreateRequest": CreateRequestRequest => CreateRequestResponse;
    update_request / "UpdateRequest": UpdateRequestRequest => UpdateRequestResponse;
    submit_request / "SubmitRequest": SubmitRequestRequest => SubmitRequestResponse;
    record_payer_response / "RecordPayerResponse": RecordPayerResponseRequest => RecordPayerResponseResponse;
    extend_decision / "ExtendDecision": ExtendDecisionRequest => ExtendDecisionResponse;
    appeal / "Appeal": AppealRequest => AppealResponse;
    record_appeal_decision / "RecordAppealDecision": RecordAppealDecisionRequest => RecordAppealDecisionResponse;
    cancel_request / "CancelRequest": CancelRequestRequest => CancelRequestResponse;
    get_request / "GetRequest": GetRequestRequest => GetRequestResponse;
    list_requests / "ListRequests": ListRequestsRequest => ListRequestsResponse;
});
