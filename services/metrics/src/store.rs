//! Reading the kept events back as per-loop timelines.

use crate::domain::priorauth::{Step, Timeline, Urgency};
use careloop_proto::events::v1::{Event, event::Payload};
use careloop_proto::priorauth::v1::Urgency as ProtoUrgency;
use careloop_runtime::time::from_timestamp;
use chrono::{DateTime, Utc};
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

fn urgency(value: i32) -> Urgency {
    if value == ProtoUrgency::Expedited as i32 {
        Urgency::Expedited
    } else {
        Urgency::Standard
    }
}

fn step(event: &Event) -> Option<Step> {
    let t = |ts: &Option<prost_types::Timestamp>| ts.as_ref().and_then(from_timestamp);
    Some(match event.payload.as_ref()? {
        Payload::PriorAuthSubmitted(p) => Step::Submitted {
            at: t(&p.submitted_at)?,
            due: t(&p.decision_due_at),
            urgency: urgency(p.urgency),
            payer: p.payer_id.clone(),
        },
        Payload::PriorAuthExtended(p) => Step::Extended {
            due: t(&p.new_due_at)?,
        },
        Payload::PriorAuthDecided(p) => Step::Decided {
            at: t(&p.decided_at)?,
            decision: p.decision.clone(),
            urgency: urgency(p.urgency),
            payer: p.payer_id.clone(),
            denial_reason: p.denial_reason_code.clone(),
        },
        Payload::PriorAuthAppealDecided(p) => Step::AppealDecided {
            at: t(&p.decided_at)?,
            approved: p.approved,
        },
        _ => return None,
    })
}

/// The timelines of the organization's requests with a decision recorded around [from, to) (a day
/// either side; the measures filter on the decision's own time).
pub async fn prior_auth_timelines(
    conn: &mut PgConnection,
    org: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<Timeline>> {
    let rows: Vec<(Uuid, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT aggregate_id, aggregate_version, payload FROM loop_events
          WHERE org_id = $1 AND event_type LIKE 'priorauth.%'
            AND aggregate_id IN (SELECT aggregate_id FROM loop_events
                                  WHERE org_id = $1 AND event_type = 'priorauth.request.decided'
                                    AND occurred_at >= $2 - interval '1 day' AND occurred_at < $3 + interval '1 day')
          ORDER BY aggregate_id, aggregate_version",
    )
    .bind(org)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    let mut timelines: Vec<Timeline> = Vec::new();
    for (aggregate, version, payload) in rows {
        let Ok(event) = Event::decode(payload.as_slice()) else {
            continue;
        };
        let Some(step) = step(&event) else { continue };
        let id = aggregate.to_string();
        match timelines.last_mut() {
            Some(t) if t.request_id == id => t.steps.push((version, step)),
            _ => timelines.push(Timeline {
                request_id: id,
                steps: vec![(version, step)],
            }),
        }
    }
    Ok(timelines)
}
