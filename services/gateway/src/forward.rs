//! Curated writes: each goes to the service that owns the record, for the caller (on-behalf-of),
//! with the caller's idempotency key (in the body, untouched) and what is left of the caller's
//! deadline. The owning service decides and answers; its status, message and details (the
//! machine-readable reason) come back unchanged. Writes are never retried here: a retry is the
//! caller's, with the same key, and never doubles a change. Each call is audited here too.

use crate::api::{Budget, Gateway, caller};
use crate::downstream::{Downstream, Transport, on_behalf_of};
use careloop_proto::gateway::v1::gateway_service_server::GatewayService;
use careloop_proto::gateway::v1::*;
use careloop_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use careloop_proto::notifications::v1::{AcknowledgeItemRequest, AcknowledgeItemResponse};
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::plans::v1::*;
use careloop_proto::priorauth::v1::prior_auth_service_client::PriorAuthServiceClient;
use careloop_proto::priorauth::v1::*;
use careloop_proto::referrals::v1::referrals_service_client::ReferralsServiceClient;
use careloop_proto::referrals::v1::*;
use careloop_runtime::audit::Outcome;
use std::future::Future;
use std::time::Duration;
use tonic::{Code, Request, Response, Status};
use uuid::Uuid;

/// What a forwarded request names, for the gateway's audit: the patient, or the record.
pub trait Touches {
    fn patient(&self) -> Option<Uuid> {
        None
    }
    fn target(&self) -> Option<Uuid> {
        None
    }
}

macro_rules! touches {
    ($($req:ty => $kind:ident $field:ident;)*) => {
        $(impl Touches for $req {
            fn $kind(&self) -> Option<Uuid> {
                Uuid::parse_str(&self.$field).ok()
            }
        })*
    };
}

impl Touches for CreatePatientRequest {}

touches! {
    CreateCarePlanRequest => patient patient_id;
    AddCareTeamMemberRequest => patient patient_id;
    GrantConsentRequest => patient patient_id;
    CreateTaskRequest => patient patient_id;
    TransitionTaskRequest => target task_id;
    SendHandoffRequest => patient patient_id;
    AcknowledgeHandoffRequest => target handoff_id;
    StartTransitionRequest => patient patient_id;
    PlaceReferralRequest => patient patient_id;
    TransitionReferralRequest => target referral_id;
    PlaceOrderRequest => patient patient_id;
    TransitionOrderRequest => target order_id;
    RecordResultRequest => target order_id;
    AcknowledgeResultRequest => target result_id;
    CreateRequestRequest => patient patient_id;
    UpdateRequestRequest => target request_id;
    SubmitRequestRequest => target request_id;
    RecordPayerResponseRequest => target request_id;
    AcknowledgeItemRequest => target item_id;
}

impl Gateway {
    /// Forwards one write and audits it; `changes_access` drops the patient's cached access
    /// decisions once the owning service accepted it (care team, consents).
    async fn forward<Req, Resp, F, Fut>(
        &self,
        downstream: &Downstream,
        rpc: &'static str,
        request: Request<Req>,
        changes_access: bool,
        call: F,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Touches + Clone,
        F: Fn(Transport, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let who = caller(&request)?;
        let budget = Budget::of(request.metadata(), &self.settings);
        let body = request.into_inner();
        let (patient, target) = (body.patient(), body.target());
        // The whole remaining deadline (not the per-call cap): a write is not cut short for a
        // summary's sake, and it is not retried.
        let timeout = budget.remaining();
        let answer = downstream
            .call(timeout, false, |transport, left: Duration| {
                call(transport, on_behalf_of(&who, body.clone(), left))
            })
            .await;
        let outcome = match &answer {
            Ok(_) => Outcome::Ok,
            Err(s)
                if matches!(
                    s.code(),
                    Code::PermissionDenied | Code::NotFound | Code::Unauthenticated
                ) =>
            {
                Outcome::Denied
            }
            Err(_) => Outcome::Failed,
        };
        // The owning service has decided (and audited the user); a failure to write the gateway's
        // own row is logged and never turns the answer into another.
        if let Err(error) =
            crate::audit::record(&self.pool, &who, rpc, patient, target, outcome).await
        {
            tracing::error!(rpc, error = %error, "gateway audit row not written");
        }
        if changes_access
            && answer.is_ok()
            && let Some(patient) = patient
        {
            self.access.forget(patient);
        }
        answer.map_err(crate::api::reasoned)
    }
}

macro_rules! forwards {
    ($($method:ident / $rpc:literal: $req:ty => $resp:ty, $downstream:ident, $client:ident, $access:literal;)*) => {
        #[tonic::async_trait]
        impl GatewayService for Gateway {
            async fn get_patient_summary(
                &self,
                request: Request<GetPatientSummaryRequest>,
            ) -> Result<Response<GetPatientSummaryResponse>, Status> {
                Gateway::get_patient_summary(self, request).await
            }

            async fn list_worklist(
                &self,
                request: Request<ListWorklistRequest>,
            ) -> Result<Response<ListWorklistResponse>, Status> {
                Gateway::list_worklist(self, request).await
            }

            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    self.forward(&self.$downstream, $rpc, request, $access, |t, r| async move {
                        $client::new(t).$method(r).await
                    })
                    .await
                }
            )*
        }
    };
}

/// The downstream RPC each curated write calls when its name differs from the gateway's.
trait Renamed {
    fn create_prior_auth(
        &mut self,
        r: Request<CreateRequestRequest>,
    ) -> impl Future<Output = Result<Response<CreateRequestResponse>, Status>>;
    fn update_prior_auth(
        &mut self,
        r: Request<UpdateRequestRequest>,
    ) -> impl Future<Output = Result<Response<UpdateRequestResponse>, Status>>;
    fn submit_prior_auth(
        &mut self,
        r: Request<SubmitRequestRequest>,
    ) -> impl Future<Output = Result<Response<SubmitRequestResponse>, Status>>;
    fn record_payer_decision(
        &mut self,
        r: Request<RecordPayerResponseRequest>,
    ) -> impl Future<Output = Result<Response<RecordPayerResponseResponse>, Status>>;
}

impl Renamed for PriorAuthServiceClient<Transport> {
    fn create_prior_auth(
        &mut self,
        r: Request<CreateRequestRequest>,
    ) -> impl Future<Output = Result<Response<CreateRequestResponse>, Status>> {
        self.create_request(r)
    }
    fn update_prior_auth(
        &mut self,
        r: Request<UpdateRequestRequest>,
    ) -> impl Future<Output = Result<Response<UpdateRequestResponse>, Status>> {
        self.update_request(r)
    }
    fn submit_prior_auth(
        &mut self,
        r: Request<SubmitRequestRequest>,
    ) -> impl Future<Output = Result<Response<SubmitRequestResponse>, Status>> {
        self.submit_request(r)
    }
    fn record_payer_decision(
        &mut self,
        r: Request<RecordPayerResponseRequest>,
    ) -> impl Future<Output = Result<Response<RecordPayerResponseResponse>, Status>> {
        self.record_payer_response(r)
    }
}

/// `AcknowledgeInboxItem` is notifications' `AcknowledgeItem`.
trait InboxRenamed {
    fn acknowledge_inbox_item(
        &mut self,
        r: Request<AcknowledgeItemRequest>,
    ) -> impl Future<Output = Result<Response<AcknowledgeItemResponse>, Status>>;
}

impl InboxRenamed for NotificationsServiceClient<Transport> {
    fn acknowledge_inbox_item(
        &mut self,
        r: Request<AcknowledgeItemRequest>,
    ) -> impl Future<Output = Result<Response<AcknowledgeItemResponse>, Status>> {
        self.acknowledge_item(r)
    }
}

forwards! {
    create_patient / "CreatePatient": CreatePatientRequest => CreatePatientResponse, plans, PlansServiceClient, false;
    create_care_plan / "CreateCarePlan": CreateCarePlanRequest => CreateCarePlanResponse, plans, PlansServiceClient, true;
    add_care_team_member / "AddCareTeamMember": AddCareTeamMemberRequest => AddCareTeamMemberResponse, plans, PlansServiceClient, true;
    grant_consent / "GrantConsent": GrantConsentRequest => GrantConsentResponse, plans, PlansServiceClient, true;
    create_task / "CreateTask": CreateTaskRequest => CreateTaskResponse, plans, PlansServiceClient, false;
    transition_task / "TransitionTask": TransitionTaskRequest => TransitionTaskResponse, plans, PlansServiceClient, false;
    send_handoff / "SendHandoff": SendHandoffRequest => SendHandoffResponse, plans, PlansServiceClient, false;
    acknowledge_handoff / "AcknowledgeHandoff": AcknowledgeHandoffRequest => AcknowledgeHandoffResponse, plans, PlansServiceClient, false;
    start_transition / "StartTransition": StartTransitionRequest => StartTransitionResponse, plans, PlansServiceClient, false;
    place_referral / "PlaceReferral": PlaceReferralRequest => PlaceReferralResponse, referrals, ReferralsServiceClient, false;
    transition_referral / "TransitionReferral": TransitionReferralRequest => TransitionReferralResponse, referrals, ReferralsServiceClient, false;
    place_order / "PlaceOrder": PlaceOrderRequest => PlaceOrderResponse, referrals, ReferralsServiceClient, false;
    transition_order / "TransitionOrder": TransitionOrderRequest => TransitionOrderResponse, referrals, ReferralsServiceClient, false;
    record_result / "RecordResult": RecordResultRequest => RecordResultResponse, referrals, ReferralsServiceClient, false;
    acknowledge_result / "AcknowledgeResult": AcknowledgeResultRequest => AcknowledgeResultResponse, referrals, ReferralsServiceClient, false;
    create_prior_auth / "CreatePriorAuth": CreateRequestRequest => CreateRequestResponse, prior_auth, PriorAuthServiceClient, false;
    update_prior_auth / "UpdatePriorAuth": UpdateRequestRequest => UpdateRequestResponse, prior_auth, PriorAuthServiceClient, false;
    submit_prior_auth / "SubmitPriorAuth": SubmitRequestRequest => SubmitRequestResponse, prior_auth, PriorAuthServiceClient, false;
    record_payer_decision / "RecordPayerDecision": RecordPayerResponseRequest => RecordPayerResponseResponse, prior_auth, PriorAuthServiceClient, false;
    acknowledge_inbox_item / "AcknowledgeInboxItem": AcknowledgeItemRequest => AcknowledgeItemResponse, notifications, NotificationsServiceClient, false;
}
