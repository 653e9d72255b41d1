//! The tonic implementation of `careloop.notifications.v1.NotificationsService`: routing rules
//! (`rules.rs`) and the inbox (`inbox.rs`). Writes go through the runtime's write path (idempotency
//! key, audit, outbox event, one transaction); reads of items are audited per patient.

pub mod convert;
mod digest;
mod inbox;
mod reports;
mod rosters;
mod rules;
mod webhooks;

pub use webhooks::WebhookRules;

use crate::feed::FeedWaker;
use careloop_proto::notifications::v1::notifications_service_server::NotificationsService;
use careloop_proto::notifications::v1::*;
use sqlx::PgPool;

pub const SOURCE: &str = "notifications";

/// What `WatchInbox` streams.
pub type EntryStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<InboxEntry, tonic::Status>> + Send + 'static>,
>;

#[derive(Clone)]
pub struct NotificationsApi {
    pool: PgPool,
    waker: FeedWaker,
    /// The router's rules and rosters, told here when they change.
    directory: std::sync::Arc<crate::directory::Directory>,
    /// Turns true when the service stops: open watch streams end, so shutdown does not wait on them.
    shutdown: tokio::sync::watch::Receiver<bool>,
    webhooks: WebhookRules,
}

impl NotificationsApi {
    pub fn new(
        pool: PgPool,
        waker: FeedWaker,
        directory: std::sync::Arc<crate::directory::Directory>,
        shutdown: tokio::sync::watch::Receiver<bool>,
        webhooks: WebhookRules,
    ) -> Self {
        Self {
            pool,
            waker,
            directory,
            shutdown,
            webhooks,
        }
    }

    fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The organization whose configuration (webhook endpoints, rosters) `who` manages: an
/// administrator's own; an internal service names it.
fn admin_org(
    who: &careloop_runtime::auth::Principal,
    requested: &str,
) -> careloop_runtime::error::ApiResult<uuid::Uuid> {
    use careloop_runtime::auth::PrincipalKind;
    use careloop_runtime::error::ApiError;
    use careloop_runtime::validate as v;
    match who.kind {
        PrincipalKind::Service => v::uuid("org_id", requested),
        PrincipalKind::Staff if who.roles.iter().any(|r| r == "admin") => {
            match v::optional_uuid("org_id", requested)? {
                Some(org) if org != who.org_id => Err(ApiError::PermissionDenied(
                    "administrators manage their own organization",
                )),
                _ => Ok(who.org_id),
            }
        }
        _ => Err(ApiError::PermissionDenied(
            "this is managed by the organization's administrators",
        )),
    }
}

careloop_runtime::grpc_service!(NotificationsService, NotificationsApi, {
    create_routing_rule / "CreateRoutingRule": CreateRoutingRuleRequest => CreateRoutingRuleResponse;
    list_routing_rules / "ListRoutingRules": ListRoutingRulesRequest => ListRoutingRulesResponse;
    set_routing_rule_enabled / "SetRoutingRuleEnabled": SetRoutingRuleEnabledRequest => SetRoutingRuleEnabledResponse;
    list_inbox / "ListInbox": ListInboxRequest => ListInboxResponse;
    get_item / "GetItem": GetItemRequest => GetItemResponse;
    acknowledge_item / "AcknowledgeItem": AcknowledgeItemRequest => AcknowledgeItemResponse;
    create_webhook_endpoint / "CreateWebhookEndpoint": CreateWebhookEndpointRequest => CreateWebhookEndpointResponse;
    list_webhook_endpoints / "ListWebhookEndpoints": ListWebhookEndpointsRequest => ListWebhookEndpointsResponse;
    set_webhook_endpoint_enabled / "SetWebhookEndpointEnabled": SetWebhookEndpointEnabledRequest => SetWebhookEndpointEnabledResponse;
    list_webhook_deliveries / "ListWebhookDeliveries": ListWebhookDeliveriesRequest => ListWebhookDeliveriesResponse;
    resend_webhook_delivery / "ResendWebhookDelivery": ResendWebhookDeliveryRequest => ResendWebhookDeliveryResponse;
    set_roster / "SetRoster": SetRosterRequest => SetRosterResponse;
    get_roster / "GetRoster": GetRosterRequest => GetRosterResponse;
    get_shift_digest / "GetShiftDigest": GetShiftDigestRequest => GetShiftDigestResponse;
    record_delivery_report / "RecordDeliveryReport": RecordDeliveryReportRequest => RecordDeliveryReportResponse;
} streams {
    watch_inbox / "WatchInbox": WatchInboxRequest => WatchInboxStream = EntryStream;
});
