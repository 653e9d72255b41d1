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

/// A kept event: aggregate, version, type, when, encoded event.
type KeptEvent = (Uuid, i64, String, DateTime<Utc>, Vec<u8>);

/// The organization's loops of one kind (the event-type prefix, e.g. "referrals.referral.") with a
/// first event in [from - 1 day, to + 1 day): each its events, as points with their typed fields.
pub async fn loops(
    conn: &mut PgConnection,
    org: Uuid,
    prefix: &str,
    opened_by: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<crate::domain::coordination::Loop>> {
    use crate::domain::coordination::{Loop, Point};
    let rows: Vec<KeptEvent> = sqlx::query_as(
        "SELECT aggregate_id, aggregate_version, event_type, occurred_at, payload FROM loop_events
          WHERE org_id = $1 AND event_type LIKE $2 || '%'
            AND aggregate_id IN (SELECT aggregate_id FROM loop_events
                                  WHERE org_id = $1 AND event_type = $3
                                    AND occurred_at >= $4 - interval '1 day' AND occurred_at < $5 + interval '1 day')
          ORDER BY aggregate_id, aggregate_version",
    )
    .bind(org)
    .bind(prefix)
    .bind(opened_by)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    let mut loops: Vec<Loop> = Vec::new();
    for (aggregate, version, event_type, at, payload) in rows {
        let Ok(event) = Event::decode(payload.as_slice()) else {
            continue;
        };
        let mut fields = careloop_runtime::events::fields::event_fields(&event);
        // Times are not typed fields; the one a measure needs is added as RFC 3339.
        if let Some(Payload::ResultRouted(r)) = &event.payload
            && let Some(due) = r.due_at.as_ref().and_then(from_timestamp)
        {
            fields.insert("due_at".into(), due.to_rfc3339());
        }
        let point = Point {
            version,
            event_type,
            at,
            fields,
        };
        let id = aggregate.to_string();
        match loops.last_mut() {
            Some(l) if l.id == id => l.points.push(point),
            _ => loops.push(Loop {
                id,
                patient: event.patient_id.clone(),
                points: vec![point],
            }),
        }
    }
    Ok(loops)
}

/// A routed result's acknowledgement due time, from its event.
pub fn result_due(point: &crate::domain::coordination::Point) -> Option<DateTime<Utc>> {
    point.fields.get("due_at").and_then(|v| v.parse().ok())
}

/// An overdue report of a loop nothing was recorded about since: (kind, loop id, stage, owner role
/// number, due time), oldest due first, at most `limit`.
pub async fn stalled(
    conn: &mut PgConnection,
    org: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<(i32, String, String, i32, Option<DateTime<Utc>>)>> {
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
        "SELECT o.payload FROM loop_events o
          WHERE o.org_id = $1
            AND o.event_type IN ('referrals.loop.overdue', 'plans.loop.overdue', 'priorauth.request.decision_overdue')
            AND NOT EXISTS (SELECT 1 FROM loop_events l
                             WHERE l.aggregate_id = o.aggregate_id AND l.aggregate_version > o.aggregate_version)
          ORDER BY o.occurred_at LIMIT $2",
    )
    .bind(org)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    let mut out = Vec::new();
    for (payload,) in rows {
        let Ok(event) = Event::decode(payload.as_slice()) else {
            continue;
        };
        match event.payload {
            Some(Payload::LoopOverdue(l)) | Some(Payload::PlansLoopOverdue(l)) => out.push((
                l.loop_kind,
                l.loop_id,
                l.stage,
                l.owner_role,
                l.due_at.as_ref().and_then(from_timestamp),
            )),
            Some(Payload::PriorAuthDecisionOverdue(p)) => out.push((
                careloop_proto::common::v1::LoopKind::PriorAuth as i32,
                p.request_id,
                "decision_due".into(),
                p.owner_role,
                p.decision_due_at.as_ref().and_then(from_timestamp),
            )),
            _ => {}
        }
    }
    out.sort_by_key(|r| r.4);
    Ok(out)
}
