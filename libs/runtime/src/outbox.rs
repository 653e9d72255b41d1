//! The transactional outbox writer: an event row is inserted in the same transaction as the state
//! change it describes. The relay (event backbone) publishes rows to NATS JetStream afterwards.

use careloop_proto::events::v1::{Event, event::Payload};
use chrono::{DateTime, Utc};
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

/// What a service knows about an event; the envelope fields are filled in here.
pub struct NewEvent {
    pub source: &'static str,
    pub patient_id: Option<Uuid>,
    pub org_id: Uuid,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    pub occurred_at: DateTime<Utc>,
    pub payload: Payload,
}

pub fn envelope(new: NewEvent) -> Event {
    Event {
        id: Uuid::now_v7().to_string(),
        r#type: crate::events::catalogue::event_type(&new.payload).to_owned(),
        source: new.source.to_owned(),
        occurred_at: Some(crate::time::to_timestamp(new.occurred_at)),
        patient_id: new.patient_id.map(|p| p.to_string()).unwrap_or_default(),
        org_id: new.org_id.to_string(),
        aggregate_id: new.aggregate_id.to_string(),
        aggregate_version: new.aggregate_version,
        traceparent: crate::telemetry::current_traceparent().unwrap_or_default(),
        payload: Some(new.payload),
    }
}

/// Writes the event row; call inside the transaction that makes the change.
pub async fn enqueue(conn: &mut PgConnection, new: NewEvent) -> Result<Uuid, sqlx::Error> {
    let patient_id = new.patient_id;
    let aggregate_id = new.aggregate_id;
    let version = new.aggregate_version;
    let event_type = crate::events::catalogue::event_type(&new.payload);
    let event = envelope(new);
    let id = Uuid::parse_str(&event.id).expect("envelope ids are uuids");
    sqlx::query(
        "INSERT INTO outbox (id, event_type, aggregate_id, aggregate_version, patient_id, payload)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(event_type)
    .bind(aggregate_id)
    .bind(version)
    .bind(patient_id)
    .bind(event.encode_to_vec())
    .execute(conn)
    .await?;
    Ok(id)
}
