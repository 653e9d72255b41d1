//! Providers' delivery reports, passed on by the service that receives their callbacks.

use super::{NotificationsApi, SOURCE};
use careloop_proto::notifications::v1::*;
use careloop_runtime::auth::{Principal, PrincipalKind};
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::validate::{self as v, MAX_SHORT};
use uuid::Uuid;

impl NotificationsApi {
    pub(super) async fn record_delivery_report(
        &self,
        who: &Principal,
        req: RecordDeliveryReportRequest,
    ) -> ApiResult<RecordDeliveryReportResponse> {
        let channel = match req.channel.as_str() {
            "sms" | "email" => req.channel.clone(),
            _ => return Err(ApiError::invalid("channel", "must be sms or email")),
        };
        let receipt = v::text("provider_message_id", &req.provider_message_id, MAX_SHORT)?;
        let status = match v::enum_value::<ReportedOutcome>("outcome", req.outcome)? {
            ReportedOutcome::Delivered => "delivered",
            ReportedOutcome::Undeliverable => "undeliverable",
            ReportedOutcome::Unspecified => {
                return Err(ApiError::invalid("outcome", "is required"));
            }
        };
        if who.kind != PrincipalKind::Service || who.via.is_some() {
            return Err(ApiError::PermissionDenied(
                "delivery reports come from CareLoop services",
            ));
        }
        let mut w =
            careloop_runtime::begin_write!(self.pool, SOURCE, "RecordDeliveryReport", who, req);
        // Only a notice the provider took (sent) moves; a late or repeated report changes nothing.
        let found: Option<(Uuid, Uuid, Uuid)> = sqlx::query_as(
            "UPDATE outbound_messages m SET status = $3
               FROM items i
              WHERE i.id = m.item_id AND m.channel = $1 AND m.receipt = $2 AND m.status = 'sent'
              RETURNING m.id, m.item_id, i.patient_id",
        )
        .bind(&channel)
        .bind(&receipt)
        .bind(status)
        .fetch_optional(w.conn())
        .await?;
        let Some((message, item, patient)) = found else {
            return w
                .finish_for(
                    None,
                    Uuid::nil(),
                    RecordDeliveryReportResponse { matched: false },
                )
                .await;
        };
        if status == "delivered" {
            crate::receipts::delivered(w.conn(), &[item], &channel).await?;
        }
        w.finish(
            patient,
            message,
            RecordDeliveryReportResponse { matched: true },
        )
        .await
    }
}
