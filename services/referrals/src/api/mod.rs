//! The tonic implementation of `careloop.referrals.v1.ReferralsService`. Each handler validates its
//! input (naming the field), asks plans whether the caller may touch the patient, then claims the
//! idempotency key, makes the change, writes the audit row and the outbox event in one transaction.

pub mod convert;
mod open_loops;
mod orders;
mod referrals;
mod rules;

use crate::settings::ReferralSettings;
use careloop_proto::referrals::v1::referrals_service_server::ReferralsService;
use careloop_proto::referrals::v1::*;
use careloop_runtime::access::{Need, PlansAccess};
use careloop_runtime::auth::Principal;
use careloop_runtime::error::ApiResult;
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

pub const SOURCE: &str = "referrals";

#[derive(Clone)]
pub struct ReferralsApi {
    pool: PgPool,
    access: PlansAccess,
    settings: Arc<ReferralSettings>,
}

impl ReferralsApi {
    pub fn new(pool: PgPool, access: PlansAccess, settings: Arc<ReferralSettings>) -> Self {
        Self {
            pool,
            access,
            settings,
        }
    }

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Checks write access before any transaction opens (the check is a call to plans).
    async fn may_write(&self, who: &Principal, patient_id: Uuid) -> ApiResult<()> {
        self.access.check(who, patient_id, Need::Write).await
    }

    /// Checks read access and audits the read.
    async fn read(&self, who: &Principal, rpc: &'static str, patient_id: Uuid) -> ApiResult<()> {
        self.access
            .audited_read(&self.pool, who, rpc, patient_id)
            .await
    }
}

careloop_runtime::grpc_service!(ReferralsService, ReferralsApi, {
    place_referral / "PlaceReferral": PlaceReferralRequest => PlaceReferralResponse;
    get_referral / "GetReferral": GetReferralRequest => GetReferralResponse;
    transition_referral / "TransitionReferral": TransitionReferralRequest => TransitionReferralResponse;
    place_order / "PlaceOrder": PlaceOrderRequest => PlaceOrderResponse;
    get_order / "GetOrder": GetOrderRequest => GetOrderResponse;
    transition_order / "TransitionOrder": TransitionOrderRequest => TransitionOrderResponse;
    record_result / "RecordResult": RecordResultRequest => RecordResultResponse;
    acknowledge_result / "AcknowledgeResult": AcknowledgeResultRequest => AcknowledgeResultResponse;
    list_open_loops / "ListOpenLoops": ListOpenLoopsRequest => ListOpenLoopsResponse;
    create_pathway_rule / "CreatePathwayRule": CreatePathwayRuleRequest => CreatePathwayRuleResponse;
    list_pathway_rules / "ListPathwayRules": ListPathwayRulesRequest => ListPathwayRulesResponse;
    set_pathway_rule_enabled / "SetPathwayRuleEnabled": SetPathwayRuleEnabledRequest => SetPathwayRuleEnabledResponse;
});
