//! The router: consumes every event, stops the ladders of items whose loop moved on, and raises an
//! item for each enabled routing rule whose conditions the event meets, in the role its ladder
//! resolves to. All in the consumer's transaction, which also records the event as handled; items
//! are unique on (event, rule, first role), so a redelivered event raises nothing twice.

use crate::domain::loops::{self, LoopAt, Moved};
use crate::domain::{ladder, roster};
use crate::store::{self, ItemRow};
use careloop_proto::events::v1::{Event, NotificationRaised, NotificationResolved, event::Payload};
use careloop_runtime::events::Handler;
use careloop_runtime::write::{Acting, Change};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

/// Who the router's changes are audited as.
pub const ACTOR: &str = "notifications-router";

/// What time it is: the system clock in service, a stepped one in tests.
pub type Clock = std::sync::Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    std::sync::Arc::new(careloop_runtime::time::now)
}

pub struct Router {
    pub clock: Clock,
    /// Rules and rosters, kept a few seconds.
    pub directory: std::sync::Arc<crate::directory::Directory>,
}

impl Default for Router {
    fn default() -> Self {
        Self {
            clock: system_clock(),
            directory: std::sync::Arc::default(),
        }
    }
}

impl Handler for Router {
    /// Its own events (raised, escalated, receipts) are none of the router's business.
    fn wants(&self, event_type: &str) -> bool {
        !event_type.starts_with("notifications.")
    }

    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let Some(payload) = &event.payload else {
                return Ok(());
            };
            if event.r#type.starts_with("notifications.") {
                return Ok(());
            }
            remember_team(conn, event, payload).await?;
            let fields = careloop_runtime::events::fields::event_fields(event);
            let now = (self.clock)();
            let moved = loops::moved(payload, &fields);
            let about = loops::about(payload, &fields);
            if moved.is_none() && about.is_none() {
                return Ok(());
            }
            if let Some(moved) = moved {
                // The feed's lock before any item's, as the escalation sweeper takes them: one
                // order, no deadlock. (Raising alone locks only the rows it inserts, then the feed.)
                sqlx::query("SELECT position FROM feed_position FOR UPDATE")
                    .execute(&mut *conn)
                    .await?;
                resolve(conn, &moved, now).await?;
            }
            if let Some(about) = about {
                raise(conn, &self.directory, event, &fields, &about, now).await?;
            }
            Ok(())
        })
    }
}

/// Keeps the patients' care teams as plans' events tell them (for plan-lead and team targets).
async fn remember_team(
    conn: &mut PgConnection,
    event: &Event,
    payload: &Payload,
) -> anyhow::Result<()> {
    let Ok(patient) = Uuid::parse_str(&event.patient_id) else {
        return Ok(());
    };
    let org = |s: &str| Uuid::parse_str(s).ok();
    match payload {
        Payload::CarePlanCreated(p) => {
            if let Ok(member) = Uuid::parse_str(&p.lead_member_id) {
                store::upsert_member(
                    conn,
                    patient,
                    member,
                    p.lead_role,
                    org(&p.lead_organization_id),
                    true,
                )
                .await?;
            }
        }
        Payload::CareTeamChanged(p) => {
            let Ok(member) = Uuid::parse_str(&p.member_id) else {
                return Ok(());
            };
            if p.change == careloop_proto::events::v1::CareTeamChange::Removed as i32 {
                store::remove_member(conn, patient, member).await?;
            } else {
                store::upsert_member(
                    conn,
                    patient,
                    member,
                    p.role,
                    org(&p.organization_id),
                    p.is_lead,
                )
                .await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Stops every open item about the loop's other stages (or only the named one).
async fn resolve(conn: &mut PgConnection, moved: &Moved, now: DateTime<Utc>) -> anyhow::Result<()> {
    let Ok(loop_id) = Uuid::parse_str(&moved.id) else {
        return Ok(());
    };
    let items = store::open_items_of_loop(conn, moved.kind as i32, loop_id).await?;
    for mut item in items {
        let stops = match moved.only {
            Some(stage) => item.stage == stage,
            None => item.stage != moved.stage,
        };
        if !stops {
            continue;
        }
        let reached_inbox = item.status == "open";
        item.status = "resolved".into();
        item.resolved_by_stage = Some(moved.stage.clone());
        item.escalates_at = None;
        item.closed_at = Some(now);
        item.version += 1;
        store::save_item(conn, &item).await?;
        if !reached_inbox {
            // A held item nobody saw yet stops quietly: nothing was raised, nothing resolves; the
            // change is audited all the same.
            Acting::new(conn, crate::api::SOURCE, ACTOR)
                .audit("WithdrawHeldItem", item.org_id, item.patient_id, item.id)
                .await?;
            continue;
        }
        Acting::new(conn, crate::api::SOURCE, ACTOR)
            .emit(Change {
                org_id: item.org_id,
                patient_id: item.patient_id,
                aggregate_id: item.id,
                aggregate_version: item.version,
                payload: Payload::NotificationResolved(NotificationResolved {
                    item_id: item.id.to_string(),
                    loop_kind: item.loop_kind,
                    loop_id: item.loop_id.to_string(),
                    stage: item.stage.clone(),
                    by_stage: moved.stage.clone(),
                    raised_at: Some(careloop_runtime::time::to_timestamp(item.created_at)),
                }),
            })
            .await?;
        crate::webhooks::enqueue(conn, &item, "notifications.item.resolved", now).await?;
    }
    Ok(())
}

/// Raises an item for each matching rule of the event's organization (or the platform's).
async fn raise(
    conn: &mut PgConnection,
    directory: &crate::directory::Directory,
    event: &Event,
    fields: &std::collections::BTreeMap<String, String>,
    about: &LoopAt,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let rules = directory.rules(conn, &event.r#type).await?;
    if rules.is_empty() {
        return Ok(());
    }
    let (Ok(org_id), Ok(patient_id), Ok(event_id), Ok(loop_id)) = (
        Uuid::parse_str(&event.org_id),
        Uuid::parse_str(&event.patient_id),
        Uuid::parse_str(&event.id),
        Uuid::parse_str(&about.id),
    ) else {
        // Items live in an organization's inboxes about a patient's loop; an event without them
        // reaches nobody (and is recorded as handled).
        tracing::warn!(event_id = %event.id, event_type = %event.r#type, "event without organization, patient or loop id: no item raised");
        return Ok(());
    };
    if org_id.is_nil() {
        tracing::warn!(event_id = %event.id, event_type = %event.r#type, "event without organization: no item raised");
        return Ok(());
    }
    let mut team: Option<ladder::Team> = None;
    for rule in rules
        .iter()
        .filter(|r| r.org_id.is_none() || r.org_id == Some(org_id))
        .filter(|r| careloop_runtime::events::fields::matches(&r.conditions.0, fields))
    {
        let needs_team = rule
            .ladder
            .0
            .iter()
            .chain(rule.also.0.iter())
            .any(|r| r.special.is_some());
        if needs_team && team.is_none() {
            team = Some(store::team(conn, patient_id).await?);
        }
        let known = team.clone().unwrap_or_default();
        let rungs = ladder::resolve(&rule.ladder.0, fields, &known);
        for (role, member_org) in ladder::resolve_also(&rule.also.0, fields, &known) {
            if rungs.first().is_some_and(|f| f.role == role) {
                continue;
            }
            // Told beside the ladder: one item in that role's inbox (in its member's organization
            // for a team target), without a ladder of its own.
            let item = ItemRow {
                id: Uuid::now_v7(),
                org_id: member_org.unwrap_or(org_id),
                patient_id,
                rule_id: rule.id,
                source_event_id: event_id,
                source_event_type: event.r#type.clone(),
                first_role: role,
                loop_kind: about.kind as i32,
                loop_id,
                stage: about.stage.clone(),
                title: rule.name.clone(),
                priority: rule.priority.clone(),
                ladder: Json(vec![ladder::Rung {
                    role,
                    window_minutes: 0,
                }]),
                rung: 0,
                role,
                escalates_at: None,
                status: "open".into(),
                acknowledged_at: None,
                acknowledged_by: None,
                note: String::new(),
                resolved_by_stage: None,
                closed_at: None,
                created_at: now,
                version: 1,
                channels: rule.channels.clone(),
                deliver_at: None,
                reached_at: Some(now),
                delivered_at: None,
                read_at: None,
                read_by: None,
                fallback_sent: false,
            };
            if store::insert_open_item(conn, &item, now).await? {
                announce(conn, &item, ACTOR, now).await?;
            }
        }
        let Some(first) = rungs.first().copied() else {
            continue;
        };
        // Who holds the role now: a routine item raised off hours waits for the next shift; an
        // urgent one goes at once, to the roster's backup role when nobody is on duty.
        let mut role = first.role;
        let mut deliver_at = None;
        if let Some(roster) = directory.roster(conn, org_id, first.role).await? {
            let zone: chrono_tz::Tz = roster.time_zone.parse().unwrap_or(chrono_tz::UTC);
            if !roster::on_duty(&roster.members.0, zone, now) {
                if rule.priority == "routine" {
                    deliver_at = roster::next_on_duty(&roster.members.0, zone, now);
                } else if let Some(backup) = roster.backup_role {
                    role = backup;
                }
            }
        }
        // With the backup standing in: when the ladder reaches the backup role anyway, the item
        // starts at that rung (it never climbs back down); otherwise the backup takes the first
        // rung's place.
        let mut rungs = rungs;
        if role != first.role {
            match rungs.iter().position(|r| r.role == role) {
                Some(k) => {
                    rungs.drain(..k);
                }
                None => rungs[0].role = role,
            }
        }
        let rule_first_role = first.role;
        let first = rungs[0];
        let reaches_inbox = deliver_at.unwrap_or(now);
        let item = ItemRow {
            id: Uuid::now_v7(),
            org_id,
            patient_id,
            rule_id: rule.id,
            source_event_id: event_id,
            source_event_type: event.r#type.clone(),
            // The rule's first role, not a stand-in: what keeps one item per (event, rule, role).
            first_role: rule_first_role,
            loop_kind: about.kind as i32,
            loop_id,
            stage: about.stage.clone(),
            title: rule.name.clone(),
            priority: rule.priority.clone(),
            ladder: Json(rungs.clone()),
            rung: 0,
            role,
            escalates_at: (rungs.len() > 1).then(|| {
                reaches_inbox + chrono::Duration::minutes(i64::from(first.window_minutes))
            }),
            status: if deliver_at.is_some() { "held" } else { "open" }.into(),
            acknowledged_at: None,
            acknowledged_by: None,
            note: String::new(),
            resolved_by_stage: None,
            closed_at: None,
            created_at: now,
            version: 1,
            channels: rule.channels.clone(),
            deliver_at,
            reached_at: deliver_at.is_none().then_some(now),
            delivered_at: None,
            read_at: None,
            read_by: None,
            fallback_sent: false,
        };
        if item.status == "open" {
            if store::insert_open_item(conn, &item, now).await? {
                announce(conn, &item, ACTOR, now).await?;
            }
        } else {
            store::insert_item(conn, &item).await?;
        }
    }
    Ok(())
}

/// The item reaches its role's inbox (when its hold ends): the feed entry that watchers get, then
/// `announce`.
pub async fn reach_inbox(
    conn: &mut PgConnection,
    item: &ItemRow,
    actor: &'static str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    store::feed(conn, item, "raised", now).await?;
    announce(conn, item, actor, now).await
}

/// An item in its inbox is announced: `notifications.item.raised`, its webhook deliveries and
/// its email and SMS notices.
pub async fn announce(
    conn: &mut PgConnection,
    item: &ItemRow,
    actor: &'static str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    Acting::new(conn, crate::api::SOURCE, actor)
        .emit(Change {
            org_id: item.org_id,
            patient_id: item.patient_id,
            aggregate_id: item.id,
            aggregate_version: item.version,
            payload: Payload::NotificationRaised(NotificationRaised {
                item_id: item.id.to_string(),
                rule_id: item.rule_id.to_string(),
                source_event_id: item.source_event_id.to_string(),
                loop_kind: item.loop_kind,
                loop_id: item.loop_id.to_string(),
                stage: item.stage.clone(),
                role: item.role,
                priority: crate::api::convert::priority_value(&item.priority),
            }),
        })
        .await?;
    crate::webhooks::enqueue(conn, item, "notifications.item.raised", now).await?;
    crate::messages::enqueue(conn, item, "Raised", now).await?;
    Ok(())
}
