//! The recorder: keeps every event a measure reads (prior authorizations, referrals, results, inbox
//! items, handoffs), once by event id,
//! in the consumer's transaction. Events of other types are not kept.

use careloop_proto::events::v1::Event;
use careloop_runtime::events::Handler;
use futures::future::BoxFuture;
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

/// The event types the measures read.
pub const MEASURED: [&str; 21] = [
    "priorauth.request.submitted",
    "priorauth.request.extended",
    "priorauth.request.decided",
    "priorauth.request.appeal_decided",
    "priorauth.request.status_changed",
    "referrals.referral.placed",
    "referrals.referral.status_changed",
    "referrals.result.routed",
    "referrals.result.acknowledged",
    "notifications.item.raised",
    "notifications.item.acknowledged",
    "plans.handoff.sent",
    "plans.handoff.acknowledged",
    "referrals.order.placed",
    "referrals.order.status_changed",
    "plans.transition.started",
    "plans.transition.checklist_updated",
    "referrals.loop.overdue",
    "plans.loop.overdue",
    "plans.task.status_changed",
    "priorauth.request.decision_overdue",
];

pub struct Recorder;

impl Handler for Recorder {
    fn wants(&self, event_type: &str) -> bool {
        MEASURED.contains(&event_type)
    }

    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            if !MEASURED.contains(&event.r#type.as_str()) {
                return Ok(());
            }
            let id = Uuid::parse_str(&event.id)?;
            let aggregate = Uuid::parse_str(&event.aggregate_id)?;
            let occurred = event
                .occurred_at
                .as_ref()
                .and_then(careloop_runtime::time::from_timestamp)
                .ok_or_else(|| anyhow::anyhow!("event {id} has no time"))?;
            sqlx::query(
                "INSERT INTO loop_events (event_id, event_type, org_id, aggregate_id, aggregate_version, occurred_at, payload)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(id)
            .bind(&event.r#type)
            .bind(Uuid::parse_str(&event.org_id).ok())
            .bind(aggregate)
            .bind(event.aggregate_version)
            .bind(occurred)
            .bind(event.encode_to_vec())
            .execute(conn)
            .await?;
            Ok(())
        })
    }
}
