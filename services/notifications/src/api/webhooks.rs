//! Webhook endpoints and their delivery log, managed by the organization's administrators (or an
//! internal service naming the organization).

use super::{NotificationsApi, SOURCE};
use crate::store::{self, AttemptRow, DeliveryRow, EndpointRow};
use careloop_proto::notifications::v1::*;
use careloop_runtime::auth::{Principal, PrincipalKind};
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::paging::{self, Cursor};
use careloop_runtime::time::{opt_timestamp, to_timestamp};
use careloop_runtime::validate as v;
use uuid::Uuid;

/// The item events an endpoint may ask for.
const ITEM_EVENTS: [&str; 4] = [
    "notifications.item.raised",
    "notifications.item.escalated",
    "notifications.item.acknowledged",
    "notifications.item.resolved",
];

/// What the webhook API needs from the settings.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRules {
    pub allow_http: bool,
    pub max_attempts: i32,
}

/// An endpoint exists for a service and for its organization's administrators only.
fn may_manage(who: &Principal, endpoint: &EndpointRow) -> ApiResult<()> {
    let admin = who.kind == PrincipalKind::Staff
        && who.org_id == endpoint.org_id
        && who.roles.iter().any(|r| r == "admin");
    if who.kind == PrincipalKind::Service || admin {
        Ok(())
    } else {
        Err(ApiError::Hidden("webhook endpoint"))
    }
}

fn url(value: &str, allow_http: bool) -> ApiResult<String> {
    let url = v::text("url", value, 2000)?;
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ApiError::invalid("url", "is not a URL"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(ApiError::invalid("url", "has no host"));
    }
    match uri.scheme_str() {
        Some("https") => Ok(url),
        Some("http") if allow_http => Ok(url),
        _ => Err(ApiError::invalid("url", "must be https")),
    }
}

pub fn endpoint(e: EndpointRow) -> WebhookEndpoint {
    WebhookEndpoint {
        id: e.id.to_string(),
        org_id: e.org_id.to_string(),
        url: e.url,
        event_types: e.event_types,
        enabled: e.enabled,
        consecutive_failures: e.consecutive_failures,
        disabled_at: opt_timestamp(e.disabled_at),
        version: e.version,
    }
}

fn delivery(d: DeliveryRow, attempts: &[AttemptRow]) -> WebhookDelivery {
    let status = match d.status.as_str() {
        "pending" => DeliveryStatus::Pending,
        "delivered" => DeliveryStatus::Delivered,
        "failed" => DeliveryStatus::Failed,
        _ => DeliveryStatus::Unspecified,
    };
    WebhookDelivery {
        id: d.id.to_string(),
        endpoint_id: d.endpoint_id.to_string(),
        event_type: d.event_type,
        item_id: d.item_id.to_string(),
        status: status as i32,
        attempt_count: d.attempt_count,
        next_attempt_at: opt_timestamp(d.next_attempt_at),
        created_at: Some(to_timestamp(d.created_at)),
        delivered_at: opt_timestamp(d.delivered_at),
        attempts: attempts
            .iter()
            .filter(|a| a.delivery_id == d.id)
            .map(|a| DeliveryAttempt {
                at: Some(to_timestamp(a.at)),
                status_code: a.status_code,
                error: a.error.clone(),
            })
            .collect(),
    }
}

impl NotificationsApi {
    pub(super) async fn create_webhook_endpoint(
        &self,
        who: &Principal,
        req: CreateWebhookEndpointRequest,
    ) -> ApiResult<CreateWebhookEndpointResponse> {
        let url = url(&req.url, self.webhooks.allow_http)?;
        if req.event_types.len() > ITEM_EVENTS.len() {
            return Err(ApiError::invalid(
                "event_types",
                "names each event type once",
            ));
        }
        let mut event_types = Vec::new();
        for (i, t) in req.event_types.iter().enumerate() {
            if !ITEM_EVENTS.contains(&t.as_str()) {
                return Err(ApiError::invalid(
                    format!("event_types[{i}]"),
                    format!("must be one of {}", ITEM_EVENTS.join(", ")),
                ));
            }
            if !event_types.contains(t) {
                event_types.push(t.clone());
            }
        }
        let org = super::admin_org(who, &req.org_id)?;
        let mut w =
            careloop_runtime::begin_write!(self.pool, SOURCE, "CreateWebhookEndpoint", who, req);
        let secret = crate::webhooks::new_secret().map_err(ApiError::Internal)?;
        let row = EndpointRow {
            id: Uuid::now_v7(),
            org_id: org,
            url,
            secret: secret.clone(),
            event_types,
            enabled: true,
            consecutive_failures: 0,
            disabled_at: None,
            version: 1,
        };
        store::insert_endpoint(w.conn(), &row).await?;
        let id = row.id;
        w.finish_for(
            None,
            id,
            CreateWebhookEndpointResponse {
                endpoint: Some(endpoint(row)),
                secret,
            },
        )
        .await
    }

    pub(super) async fn list_webhook_endpoints(
        &self,
        who: &Principal,
        req: ListWebhookEndpointsRequest,
    ) -> ApiResult<ListWebhookEndpointsResponse> {
        let org = super::admin_org(who, &req.org_id)?;
        let rows = store::endpoints(&mut *self.pool.acquire().await?, org).await?;
        Ok(ListWebhookEndpointsResponse {
            endpoints: rows.into_iter().map(endpoint).collect(),
        })
    }

    pub(super) async fn set_webhook_endpoint_enabled(
        &self,
        who: &Principal,
        req: SetWebhookEndpointEnabledRequest,
    ) -> ApiResult<SetWebhookEndpointEnabledResponse> {
        let id = v::uuid("endpoint_id", &req.endpoint_id)?;
        let version = v::expected_version(req.expected_version)?;
        let (mut w, mut row) = careloop_runtime::begin_write!(
            self.pool, SOURCE, "SetWebhookEndpointEnabled", who, req, w => {
                let row = store::lock_endpoint(w.conn(), id).await?;
                may_manage(who, &row)?;
                row
            }
        );
        ApiError::ensure_version(row.version, version)?;
        row.enabled = req.enabled;
        if req.enabled {
            row.consecutive_failures = 0;
            row.disabled_at = None;
        } else {
            row.disabled_at = Some(careloop_runtime::time::now());
        }
        row.version += 1;
        store::save_endpoint_enabled(w.conn(), &row).await?;
        w.finish_for(
            None,
            id,
            SetWebhookEndpointEnabledResponse {
                endpoint: Some(endpoint(row)),
            },
        )
        .await
    }

    pub(super) async fn list_webhook_deliveries(
        &self,
        who: &Principal,
        req: ListWebhookDeliveriesRequest,
    ) -> ApiResult<ListWebhookDeliveriesResponse> {
        let id = v::uuid("endpoint_id", &req.endpoint_id)?;
        let limit = paging::page_size(req.page_size)?;
        let after = paging::decode(&req.page_token)?;
        let mut conn = self.pool.acquire().await?;
        let row = store::get_endpoint(&mut conn, id).await?;
        may_manage(who, &row)?;
        let rows = store::deliveries(&mut conn, id, after, limit).await?;
        let (rows, next_page_token) = paging::cut(rows, limit, |d| Cursor {
            at: d.created_at,
            id: d.id,
        });
        let ids: Vec<Uuid> = rows.iter().map(|d| d.id).collect();
        let attempts = store::attempts(&mut conn, &ids).await?;
        Ok(ListWebhookDeliveriesResponse {
            deliveries: rows.into_iter().map(|d| delivery(d, &attempts)).collect(),
            next_page_token,
        })
    }

    pub(super) async fn resend_webhook_delivery(
        &self,
        who: &Principal,
        req: ResendWebhookDeliveryRequest,
    ) -> ApiResult<ResendWebhookDeliveryResponse> {
        let id = v::uuid("delivery_id", &req.delivery_id)?;
        let (mut w, mut row) = careloop_runtime::begin_write!(
            self.pool, SOURCE, "ResendWebhookDelivery", who, req, w => {
                let row = store::get_delivery(w.conn(), id).await?;
                let endpoint = store::get_endpoint(w.conn(), row.endpoint_id).await?;
                may_manage(who, &endpoint)?;
                row
            }
        );
        let now = careloop_runtime::time::now();
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, attempt_budget = attempt_count + $3
              WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .bind(self.webhooks.max_attempts)
        .execute(w.conn())
        .await?;
        row.status = "pending".into();
        row.next_attempt_at = Some(now);
        let attempts = store::attempts(w.conn(), &[id]).await?;
        let patient = row.patient_id;
        w.finish(
            patient,
            id,
            ResendWebhookDeliveryResponse {
                delivery: Some(delivery(row, &attempts)),
            },
        )
        .await
    }
}
