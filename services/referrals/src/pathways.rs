//! Pathway triggers: consumes events (plans' transitions, referrals' own order changes), and for
//! each enabled rule whose conditions match, creates the order or referral in the same transaction
//! that records the event as handled. The created row is keyed by (rule, event), so one event
//! creates its loops once however often it is delivered. A rule of an organization fires only for
//! the patients that organization manages, learned from plans' patient.created events; an event
//! for a patient not known yet is retried (and dead-lettered if it never becomes known).

use crate::domain::due::ReferralDue;
use crate::domain::order::Kind;
use crate::domain::pathway;
use crate::loops::{self, NewOrder, NewReferral};
use crate::store;
use careloop_proto::common::v1::{LoopKind, Priority};
use careloop_proto::events::v1::{Event, PathwayTriggered, event::Payload};
use careloop_proto::referrals::v1::OrderSetting;
use careloop_runtime::events::Handler;
use careloop_runtime::write::{Acting, Change};
use chrono::Duration;
use futures::future::BoxFuture;
use sqlx::PgConnection;
use uuid::Uuid;

pub struct Pathways {
    pub due: ReferralDue,
    /// Plans, for rules that create a task on the patient's plan.
    pub plans: Option<careloop_runtime::access::PlansAccess>,
}

impl Handler for Pathways {
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let Some(payload) = &event.payload else {
                return Ok(());
            };
            if let Payload::PatientCreated(created) = payload
                && let (Ok(patient), Ok(org)) = (
                    Uuid::parse_str(&event.patient_id),
                    Uuid::parse_str(&created.managing_org_id),
                )
            {
                store::remember_patient_org(conn, patient, org).await?;
            }
            let fields = careloop_runtime::events::fields::event_fields(event);
            let rules = store::enabled_rules_for(conn, &event.r#type).await?;
            let matching: Vec<_> = rules
                .iter()
                .filter(|r| pathway::matches(&r.conditions.0, &fields))
                .collect();
            if matching.is_empty() {
                return Ok(());
            }
            let managing_org = if matching.iter().any(|r| r.org_id.is_some()) {
                let patient = Uuid::parse_str(&event.patient_id)?;
                let org = store::patient_org(conn, patient).await?;
                if org.is_none() {
                    anyhow::bail!(
                        "the managing organization of patient {patient} is not known yet"
                    );
                }
                org
            } else {
                None
            };
            for rule in matching
                .into_iter()
                .filter(|r| r.org_id.is_none() || r.org_id == managing_org)
            {
                self.fire(conn, event, rule).await?;
            }
            Ok(())
        })
    }
}

impl Pathways {
    /// A task on the patient's plan, created in plans as this service; the idempotency key of
    /// (rule, event) makes a redelivered event return the same task, and `pathway_firings` makes
    /// the trigger recorded once.
    async fn fire_task(
        &self,
        conn: &mut PgConnection,
        event: &Event,
        rule: &store::RuleRow,
        patient_id: Uuid,
        event_id: Uuid,
        org_id: Uuid,
    ) -> anyhow::Result<()> {
        let plans = self.plans.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "pathway rule {} creates a task but plans is not configured",
                rule.id
            )
        })?;
        let now = careloop_runtime::time::now();
        // Due from the event's own time, so a redelivery asks plans for the very same task (the
        // idempotency key would refuse a request that differs).
        let occurred = event
            .occurred_at
            .as_ref()
            .and_then(careloop_runtime::time::from_timestamp)
            .unwrap_or(now);
        let due_at = occurred + Duration::minutes(i64::from(rule.due_in_minutes));
        let task_id = plans
            .create_task(
                format!("pathway-{}-{}", rule.id.simple(), event_id.simple()),
                careloop_proto::plans::v1::CreateTaskRequest {
                    patient_id: patient_id.to_string(),
                    title: rule.name.clone(),
                    description: format!("pathway rule {} on {}", rule.id, event.r#type),
                    owner_role: rule.owner_role,
                    due_at: Some(careloop_runtime::time::to_timestamp(due_at)),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::Error::new(e).context("plans refused the pathway task"))?;
        let first = sqlx::query(
            "INSERT INTO pathway_firings (rule_id, event_id, created_id) VALUES ($1, $2, $3)
             ON CONFLICT (rule_id, event_id) DO NOTHING",
        )
        .bind(rule.id)
        .bind(event_id)
        .bind(task_id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if !first {
            return Ok(());
        }
        let created = Created {
            kind: LoopKind::Task,
            id: task_id,
            placed: None,
        };
        record_trigger(conn, event, rule, patient_id, org_id, created).await?;
        Ok(())
    }

    async fn fire(
        &self,
        conn: &mut PgConnection,
        event: &Event,
        rule: &store::RuleRow,
    ) -> anyhow::Result<()> {
        let patient_id = Uuid::parse_str(&event.patient_id)?;
        let event_id = Uuid::parse_str(&event.id)?;
        let org_id = Uuid::parse_str(&event.org_id).unwrap_or_default();
        let now = careloop_runtime::time::now();
        let due_at = now + Duration::minutes(i64::from(rule.due_in_minutes));
        let source = Some((rule.id, event_id));
        if rule.action == "create_task" {
            return self
                .fire_task(conn, event, rule, patient_id, event_id, org_id)
                .await;
        }
        let (created_kind, created_id, placed) = if rule.action == "create_order" {
            let kind = rule
                .order_kind
                .as_deref()
                .and_then(Kind::parse)
                .ok_or_else(|| anyhow::anyhow!("pathway rule {} has no order kind", rule.id))?;
            let row = loops::order_row(
                NewOrder {
                    patient_id,
                    org_id: (!org_id.is_nil()).then_some(org_id),
                    kind,
                    test_code: String::new(),
                    description: format!("pathway: {}", rule.name),
                    setting: OrderSetting::Home as i32,
                    owner_role: rule.owner_role,
                    due_at: Some(due_at),
                    home_health: false,
                    duplicate_override_reason: String::new(),
                    source,
                },
                now,
            );
            if !store::insert_order(conn, &row).await? {
                return Ok(());
            }
            (LoopKind::Order, row.id, loops::order_placed(&row, kind))
        } else {
            let mut row = loops::referral_row(
                NewReferral {
                    patient_id,
                    from_org_id: org_id,
                    from_clinician: "pathway".into(),
                    to_org_id: None,
                    to_specialty: rule.service_type.clone(),
                    service_type: rule.service_type.clone(),
                    reason: format!("pathway: {}", rule.name),
                    urgency: Priority::Urgent,
                    owner_role: rule.owner_role,
                    clinical_context: String::new(),
                    source,
                },
                &self.due,
                now,
            );
            row.stage_due_at = Some(due_at);
            if !store::insert_referral(conn, &row).await? {
                return Ok(());
            }
            store::add_timeline(conn, row.id, "pathway", "", "placed", &rule.name, now).await?;
            (LoopKind::Referral, row.id, loops::referral_placed(&row))
        };
        let created = Created {
            kind: created_kind,
            id: created_id,
            placed: Some(placed),
        };
        record_trigger(conn, event, rule, patient_id, org_id, created).await?;
        tracing::info!(rule_id = %rule.id, event_id = %event_id, created_id = %created_id, "pathway fired");
        Ok(())
    }
}

/// What a rule created: its kind, id, and the creation event when this service owns it (a task's
/// creation event is plans').
struct Created {
    kind: LoopKind,
    id: Uuid,
    placed: Option<Payload>,
}

/// Appends the creation event (when ours) and `pathway.triggered`, and audits the write as the
/// service acting for the rule, all in the handler's transaction.
async fn record_trigger(
    conn: &mut PgConnection,
    event: &Event,
    rule: &store::RuleRow,
    patient_id: Uuid,
    org_id: Uuid,
    created: Created,
) -> anyhow::Result<()> {
    let triggered = Payload::PathwayTriggered(PathwayTriggered {
        rule_id: rule.id.to_string(),
        source_event_id: event.id.clone(),
        created_kind: created.kind as i32,
        created_id: created.id.to_string(),
    });
    let mut acting = Acting::new(conn, crate::api::SOURCE, "referrals-pathways");
    if let Some(placed) = created.placed {
        acting
            .emit(Change {
                org_id,
                patient_id,
                aggregate_id: created.id,
                aggregate_version: 1,
                payload: placed,
            })
            .await?;
    }
    // Each firing is an aggregate of its own (version 1); the consumer's handled mark and the
    // (rule, event) key of what it created keep it single.
    acting
        .emit(Change {
            org_id,
            patient_id,
            aggregate_id: Uuid::now_v7(),
            aggregate_version: 1,
            payload: triggered,
        })
        .await?;
    Ok(())
}
