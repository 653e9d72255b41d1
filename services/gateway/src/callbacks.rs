//! The HTTP door for channel providers' callbacks: an SMS provider reports what became of a text it
//! took (delivered, or given up). Callbacks are Standard Webhooks: signed with the secret agreed
//! with the provider, within five minutes of their timestamp, and each `webhook-id` applied once
//! (it is the idempotency key of the report notifications records). Nothing but the provider's
//! message id and the outcome is read; the answer says only whether it was taken.

use careloop_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use careloop_proto::notifications::v1::{RecordDeliveryReportRequest, ReportedOutcome};
use careloop_runtime::secret::Secret;
use http::{HeaderMap, StatusCode};
use std::sync::Arc;
use std::time::Duration;

use crate::downstream::{Downstream, as_gateway};

/// Replays older than this are refused.
const TOLERANCE_SECS: i64 = 300;
/// A provider's body is small; anything bigger is not a delivery report.
const MAX_BODY: usize = 16 * 1024;

#[derive(Clone)]
pub struct Callbacks {
    pub sms_secret: Secret,
    pub notifications: Arc<Downstream>,
    pub timeout: Duration,
    pub metrics: Arc<careloop_runtime::metrics::Metrics>,
}

/// What a provider's status word means for the notice; `None` for interim states (queued, sent).
pub fn outcome(status: &str) -> Option<ReportedOutcome> {
    match status.trim().to_ascii_lowercase().as_str() {
        "delivered" => Some(ReportedOutcome::Delivered),
        "undeliverable" | "undelivered" | "failed" | "expired" | "rejected" => {
            Some(ReportedOutcome::Undeliverable)
        }
        _ => None,
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

impl Callbacks {
    pub fn router(self) -> axum::Router {
        axum::Router::new().route(
            "/callbacks/sms",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let this = self.clone();
                async move { this.sms(&headers, &body).await }
            }),
        )
    }

    /// Answers 204 when recorded (or an interim state ignored), 401 for a bad signature, 400 for a
    /// body that is not a report, 503 when notifications cannot take it now (the provider retries).
    pub async fn sms(&self, headers: &HeaderMap, body: &[u8]) -> (StatusCode, &'static str) {
        if self.sms_secret.expose().is_empty() {
            return (StatusCode::NOT_FOUND, "no sms callbacks configured");
        }
        if body.len() > MAX_BODY {
            return (StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }
        let id = header(headers, "webhook-id");
        if let Err(refusal) = careloop_runtime::signing::verify(
            self.sms_secret.expose(),
            id,
            header(headers, "webhook-timestamp"),
            header(headers, "webhook-signature"),
            body,
            chrono::Utc::now().timestamp(),
            TOLERANCE_SECS,
        ) {
            tracing::info!(reason = %refusal, "sms callback refused");
            self.metrics
                .auth_refusals
                .with_label_values(&["callback signature"])
                .inc();
            return (StatusCode::UNAUTHORIZED, "signature refused");
        }
        let Ok(report) = serde_json::from_slice::<serde_json::Value>(body) else {
            return (StatusCode::BAD_REQUEST, "body is not json");
        };
        let provider_id = report
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let status = report
            .get("status")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if provider_id.is_empty() || provider_id.len() > 200 || id.len() > 100 {
            return (StatusCode::BAD_REQUEST, "id and status are required");
        }
        let Some(outcome) = outcome(status) else {
            return (StatusCode::NO_CONTENT, "");
        };
        let request = RecordDeliveryReportRequest {
            idempotency_key: format!("sms-callback:{id}"),
            channel: "sms".into(),
            provider_message_id: provider_id.to_owned(),
            outcome: outcome as i32,
        };
        let answer = self
            .notifications
            .call(self.timeout, false, |t, left| {
                let r = as_gateway(request.clone(), left);
                async move {
                    NotificationsServiceClient::new(t)
                        .record_delivery_report(r)
                        .await
                }
            })
            .await;
        match answer {
            Ok(_) => (StatusCode::NO_CONTENT, ""),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                (StatusCode::BAD_REQUEST, "not a delivery report")
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), "sms callback not recorded; the provider retries");
                (StatusCode::SERVICE_UNAVAILABLE, "try again later")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_words_map_to_an_outcome_and_interim_states_to_none() {
        assert_eq!(outcome("DELIVERED"), Some(ReportedOutcome::Delivered));
        assert_eq!(outcome("undelivered"), Some(ReportedOutcome::Undeliverable));
        assert_eq!(outcome("expired"), Some(ReportedOutcome::Undeliverable));
        assert_eq!(outcome("queued"), None);
        assert_eq!(outcome("sent"), None);
        assert_eq!(outcome(""), None);
    }
}
