//! The event catalogue: every payload in `careloop.events.v1.Event`, its type (and so its NATS
//! subject), who produces it and who consumes it. `event_type` is an exhaustive match, so a new
//! payload cannot be published without a catalogue entry; docs/events.md is rendered from here and
//! a test fails when the file, the proto and this table disagree.

use careloop_proto::events::v1::event::Payload;

pub struct Entry {
    /// The oneof field name in events.proto.
    pub payload: &'static str,
    pub event_type: &'static str,
    pub producer: &'static str,
    pub consumers: &'static str,
    pub meaning: &'static str,
}

/// The dotted event type of a payload; the subject is "<prefix>.<type>".
pub fn event_type(payload: &Payload) -> &'static str {
    match payload {
        Payload::PatientCreated(_) => "plans.patient.created",
        Payload::CarePlanCreated(_) => "plans.care_plan.created",
        Payload::CarePlanUpdated(_) => "plans.care_plan.updated",
        Payload::MedicationsReconciled(_) => "plans.care_plan.medications_reconciled",
        Payload::CareTeamChanged(_) => "plans.care_team.changed",
        Payload::ConsentGranted(_) => "plans.consent.granted",
        Payload::ConsentRevoked(_) => "plans.consent.revoked",
        Payload::TaskCreated(_) => "plans.task.created",
        Payload::TaskAssigned(_) => "plans.task.assigned",
        Payload::TaskStatusChanged(_) => "plans.task.status_changed",
        Payload::HandoffSent(_) => "plans.handoff.sent",
        Payload::HandoffAcknowledged(_) => "plans.handoff.acknowledged",
        Payload::TransitionStarted(_) => "plans.transition.started",
        Payload::TransitionChecklistUpdated(_) => "plans.transition.checklist_updated",
        Payload::TransitionCompleted(_) => "plans.transition.completed",
        Payload::ReferralPlaced(_) => "referrals.referral.placed",
        Payload::ReferralStatusChanged(_) => "referrals.referral.status_changed",
        Payload::OrderPlaced(_) => "referrals.order.placed",
        Payload::OrderStatusChanged(_) => "referrals.order.status_changed",
        Payload::ResultRecorded(_) => "referrals.result.recorded",
        Payload::ResultRouted(_) => "referrals.result.routed",
        Payload::ResultAcknowledged(_) => "referrals.result.acknowledged",
        Payload::LoopOverdue(_) => "referrals.loop.overdue",
        Payload::PathwayTriggered(_) => "referrals.pathway.triggered",
        Payload::PriorAuthCreated(_) => "priorauth.request.created",
        Payload::PriorAuthSubmitted(_) => "priorauth.request.submitted",
        Payload::PriorAuthStatusChanged(_) => "priorauth.request.status_changed",
        Payload::PriorAuthDecided(_) => "priorauth.request.decided",
        Payload::PriorAuthExtended(_) => "priorauth.request.extended",
        Payload::PriorAuthAppealDecided(_) => "priorauth.request.appeal_decided",
        Payload::PriorAuthDecisionOverdue(_) => "priorauth.request.decision_overdue",
        Payload::PriorAuthExpiring(_) => "priorauth.request.expiring",
        Payload::PlansLoopOverdue(_) => "plans.loop.overdue",
        Payload::PriorAuthUpdateMissed(_) => "priorauth.request.update_missed",
        Payload::NotificationRaised(_) => "notifications.item.raised",
        Payload::NotificationEscalated(_) => "notifications.item.escalated",
        Payload::NotificationAcknowledged(_) => "notifications.item.acknowledged",
        Payload::NotificationResolved(_) => "notifications.item.resolved",
        Payload::NotificationDelivered(_) => "notifications.item.delivered",
        Payload::NotificationRead(_) => "notifications.item.read",
    }
}

pub const CATALOGUE: &[Entry] = &[
    Entry {
        payload: "patient_created",
        event_type: "plans.patient.created",
        producer: "plans",
        consumers: "referrals (pathway rules learn the managing organization), metrics",
        meaning: "a patient was registered",
    },
    Entry {
        payload: "care_plan_created",
        event_type: "plans.care_plan.created",
        producer: "plans",
        consumers: "metrics, notifications",
        meaning: "a care plan was created with its lead",
    },
    Entry {
        payload: "care_plan_updated",
        event_type: "plans.care_plan.updated",
        producer: "plans",
        consumers: "notifications",
        meaning: "the one-screen plan changed (counts only)",
    },
    Entry {
        payload: "medications_reconciled",
        event_type: "plans.care_plan.medications_reconciled",
        producer: "plans",
        consumers: "metrics, notifications",
        meaning: "a role reconciled the medication list",
    },
    Entry {
        payload: "care_team_changed",
        event_type: "plans.care_team.changed",
        producer: "plans",
        consumers: "notifications",
        meaning: "a member was added, updated or removed; the lead may have changed",
    },
    Entry {
        payload: "consent_granted",
        event_type: "plans.consent.granted",
        producer: "plans",
        consumers: "gateway",
        meaning: "a consent was granted",
    },
    Entry {
        payload: "consent_revoked",
        event_type: "plans.consent.revoked",
        producer: "plans",
        consumers: "gateway",
        meaning: "a consent was revoked",
    },
    Entry {
        payload: "task_created",
        event_type: "plans.task.created",
        producer: "plans",
        consumers: "notifications, metrics",
        meaning: "an open loop was created for an owner role",
    },
    Entry {
        payload: "task_assigned",
        event_type: "plans.task.assigned",
        producer: "plans",
        consumers: "notifications",
        meaning: "a task changed owner role or assignee",
    },
    Entry {
        payload: "task_status_changed",
        event_type: "plans.task.status_changed",
        producer: "plans",
        consumers: "notifications, metrics",
        meaning: "a task moved in its state machine",
    },
    Entry {
        payload: "handoff_sent",
        event_type: "plans.handoff.sent",
        producer: "plans",
        consumers: "notifications, metrics",
        meaning: "an SBAR handoff was sent to a role",
    },
    Entry {
        payload: "handoff_acknowledged",
        event_type: "plans.handoff.acknowledged",
        producer: "plans",
        consumers: "notifications, metrics",
        meaning: "the receiving role acknowledged a handoff",
    },
    Entry {
        payload: "transition_started",
        event_type: "plans.transition.started",
        producer: "plans",
        consumers: "referrals (pathway triggers), notifications (the care manager's inbox), metrics",
        meaning: "a care transition began",
    },
    Entry {
        payload: "transition_checklist_updated",
        event_type: "plans.transition.checklist_updated",
        producer: "plans",
        consumers: "notifications (a done follow-up call stops its ladder), metrics",
        meaning: "a checklist item was done, waived or reopened",
    },
    Entry {
        payload: "transition_completed",
        event_type: "plans.transition.completed",
        producer: "plans",
        consumers: "notifications (stops the transition's items), metrics",
        meaning: "every required checklist item was done or waived",
    },
    Entry {
        payload: "referral_placed",
        event_type: "referrals.referral.placed",
        producer: "referrals",
        consumers: "notifications, metrics",
        meaning: "a referral was placed, with urgency, owner role and first stage due time",
    },
    Entry {
        payload: "referral_status_changed",
        event_type: "referrals.referral.status_changed",
        producer: "referrals",
        consumers: "notifications, metrics",
        meaning: "a referral moved (accepted, declined, scheduled, rescheduled, no-show, seen, note received, cancelled)",
    },
    Entry {
        payload: "order_placed",
        event_type: "referrals.order.placed",
        producer: "referrals",
        consumers: "notifications, metrics",
        meaning: "an order was placed (duplicate override recorded)",
    },
    Entry {
        payload: "order_status_changed",
        event_type: "referrals.order.status_changed",
        producer: "referrals",
        consumers: "referrals (pathway triggers), notifications, metrics",
        meaning: "an order moved (scheduled, confirmed, completed, closed, cancelled)",
    },
    Entry {
        payload: "result_recorded",
        event_type: "referrals.result.recorded",
        producer: "referrals",
        consumers: "metrics",
        meaning: "a result arrived for an order, with its abnormal flag",
    },
    Entry {
        payload: "result_routed",
        event_type: "referrals.result.routed",
        producer: "referrals",
        consumers: "notifications (the responsible role's inbox), metrics",
        meaning: "a result was routed to the responsible role and its backup",
    },
    Entry {
        payload: "result_acknowledged",
        event_type: "referrals.result.acknowledged",
        producer: "referrals",
        consumers: "notifications, metrics",
        meaning: "the responsible role documented the action taken",
    },
    Entry {
        payload: "loop_overdue",
        event_type: "referrals.loop.overdue",
        producer: "referrals",
        consumers: "notifications (escalation), metrics",
        meaning: "a referral, order or result passed its stage due time (once per loop and stage)",
    },
    Entry {
        payload: "pathway_triggered",
        event_type: "referrals.pathway.triggered",
        producer: "referrals",
        consumers: "metrics",
        meaning: "a pathway rule created an order or referral from an event",
    },
    Entry {
        payload: "prior_auth_created",
        event_type: "priorauth.request.created",
        producer: "prior-auth",
        consumers: "metrics",
        meaning: "a prior authorization draft was created for an owner role",
    },
    Entry {
        payload: "prior_auth_submitted",
        event_type: "priorauth.request.submitted",
        producer: "prior-auth",
        consumers: "notifications, metrics",
        meaning: "submitted (or resubmitted) to the payer, with the decision deadline",
    },
    Entry {
        payload: "prior_auth_status_changed",
        event_type: "priorauth.request.status_changed",
        producer: "prior-auth",
        consumers: "notifications",
        meaning: "any move: pended, appealed, cancelled, decided",
    },
    Entry {
        payload: "prior_auth_decided",
        event_type: "priorauth.request.decided",
        producer: "prior-auth",
        consumers: "notifications, metrics (CMS-0057-F report)",
        meaning: "the payer decided: approved, partially approved or denied (reason code)",
    },
    Entry {
        payload: "prior_auth_extended",
        event_type: "priorauth.request.extended",
        producer: "prior-auth",
        consumers: "notifications, metrics (CMS-0057-F report)",
        meaning: "the decision timeframe was extended",
    },
    Entry {
        payload: "prior_auth_appeal_decided",
        event_type: "priorauth.request.appeal_decided",
        producer: "prior-auth",
        consumers: "notifications, metrics (CMS-0057-F report)",
        meaning: "the appeal of a denial was decided",
    },
    Entry {
        payload: "prior_auth_decision_overdue",
        event_type: "priorauth.request.decision_overdue",
        producer: "prior-auth",
        consumers: "notifications (escalation), metrics",
        meaning: "the payer's decision deadline passed (once per deadline)",
    },
    Entry {
        payload: "prior_auth_expiring",
        event_type: "priorauth.request.expiring",
        producer: "prior-auth",
        consumers: "notifications (the owner role's inbox)",
        meaning: "an approval's validity ends within the configured days (once)",
    },
    Entry {
        payload: "plans_loop_overdue",
        event_type: "plans.loop.overdue",
        producer: "plans",
        consumers: "notifications (escalation), metrics",
        meaning: "a task passed its due time (once per task and stage), a handoff was not acknowledged by its acknowledge-by time, or a high-risk discharge's follow-up call is still pending 72 hours on (each once)",
    },
    Entry {
        payload: "prior_auth_update_missed",
        event_type: "priorauth.request.update_missed",
        producer: "prior-auth",
        consumers: "notifications (tell the owner role to call the patient), metrics",
        meaning: "the update promised to the patient (next_patient_update_at) passed while the request is open (once per promised time)",
    },
    Entry {
        payload: "notification_raised",
        event_type: "notifications.item.raised",
        producer: "notifications",
        consumers: "metrics (response times)",
        meaning: "a routing rule put an item in a role's inbox (once per event, rule and role)",
    },
    Entry {
        payload: "notification_escalated",
        event_type: "notifications.item.escalated",
        producer: "notifications",
        consumers: "metrics",
        meaning: "an open item was not resolved within its rung's window and moved to the next rung's role",
    },
    Entry {
        payload: "notification_acknowledged",
        event_type: "notifications.item.acknowledged",
        producer: "notifications",
        consumers: "metrics (response time by role)",
        meaning: "someone holding the role acknowledged the item with a note; its ladder stopped",
    },
    Entry {
        payload: "notification_resolved",
        event_type: "notifications.item.resolved",
        producer: "notifications",
        consumers: "metrics",
        meaning: "the loop moved on (result acknowledged, referral scheduled, request decided), so the item and its ladder stopped",
    },
    Entry {
        payload: "notification_delivered",
        event_type: "notifications.item.delivered",
        producer: "notifications",
        consumers: "metrics (time to reach someone)",
        meaning: "an item first reached someone: pushed to a watcher or sent by email, text or webhook (once per item)",
    },
    Entry {
        payload: "notification_read",
        event_type: "notifications.item.read",
        producer: "notifications",
        consumers: "metrics (time to read)",
        meaning: "someone holding the item's role first opened it (once per item)",
    },
];

/// docs/events.md, rendered from the catalogue.
pub fn render_markdown(prefix: &str) -> String {
    let mut out = String::from(
        "# Event catalogue\n\n\
         Generated from `libs/runtime/src/events/catalogue.rs` and checked against \
         `proto/careloop/events/v1/events.proto` by a test (`UPDATE_DOCS=1 cargo test -p careloop-runtime catalogue` \
         rewrites it). Every event travels in the `careloop.events.v1.Event` envelope (id, type, source, \
         occurred_at, patient_id, org_id, aggregate_id, aggregate_version, traceparent) on stream `CARELOOP`; \
         payloads carry ids, roles, states and counts, never patient data. Dead letters go to \
         `careloop_dlq.<consumer>` on stream `CARELOOP_DLQ`, with the reason in the `CareLoop-Reason` header. \
         Consumers name the services meant to subscribe; each subscribes as it is built. How the path \
         works: `backbone.md`.\n\n\
         | subject | payload | producer | consumers | meaning |\n|---|---|---|---|---|\n",
    );
    for e in CATALOGUE {
        out.push_str(&format!(
            "| `{prefix}.{}` | `{}` | {} | {} | {} |\n",
            e.event_type, e.payload, e.producer, e.consumers, e.meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The oneof fields of Event, read from the compiled descriptor set.
    fn payload_fields() -> Vec<String> {
        let fds =
            prost_types::FileDescriptorSet::decode(careloop_proto::FILE_DESCRIPTOR_SET).unwrap();
        let file = fds
            .file
            .iter()
            .find(|f| f.package() == "careloop.events.v1")
            .expect("events proto");
        let event = file
            .message_type
            .iter()
            .find(|m| m.name() == "Event")
            .unwrap();
        event
            .field
            .iter()
            .filter(|f| f.oneof_index.is_some())
            .map(|f| f.name().to_owned())
            .collect()
    }

    #[test]
    fn the_catalogue_covers_every_payload_in_the_proto_once() {
        let mut fields = payload_fields();
        let mut listed: Vec<String> = CATALOGUE.iter().map(|e| e.payload.to_owned()).collect();
        fields.sort();
        listed.sort();
        assert_eq!(fields, listed);
        let mut types: Vec<&str> = CATALOGUE.iter().map(|e| e.event_type).collect();
        types.sort();
        types.dedup();
        assert_eq!(types.len(), CATALOGUE.len(), "event types are unique");
    }

    #[test]
    fn every_payload_publishes_under_its_catalogue_type() {
        let payloads = vec![
            (
                "patient_created",
                Payload::PatientCreated(Default::default()),
            ),
            (
                "care_plan_created",
                Payload::CarePlanCreated(Default::default()),
            ),
            (
                "care_plan_updated",
                Payload::CarePlanUpdated(Default::default()),
            ),
            (
                "medications_reconciled",
                Payload::MedicationsReconciled(Default::default()),
            ),
            (
                "care_team_changed",
                Payload::CareTeamChanged(Default::default()),
            ),
            (
                "consent_granted",
                Payload::ConsentGranted(Default::default()),
            ),
            (
                "consent_revoked",
                Payload::ConsentRevoked(Default::default()),
            ),
            ("task_created", Payload::TaskCreated(Default::default())),
            ("task_assigned", Payload::TaskAssigned(Default::default())),
            (
                "task_status_changed",
                Payload::TaskStatusChanged(Default::default()),
            ),
            ("handoff_sent", Payload::HandoffSent(Default::default())),
            (
                "handoff_acknowledged",
                Payload::HandoffAcknowledged(Default::default()),
            ),
            (
                "transition_started",
                Payload::TransitionStarted(Default::default()),
            ),
            (
                "transition_checklist_updated",
                Payload::TransitionChecklistUpdated(Default::default()),
            ),
            (
                "transition_completed",
                Payload::TransitionCompleted(Default::default()),
            ),
            (
                "referral_placed",
                Payload::ReferralPlaced(Default::default()),
            ),
            (
                "referral_status_changed",
                Payload::ReferralStatusChanged(Default::default()),
            ),
            ("order_placed", Payload::OrderPlaced(Default::default())),
            (
                "order_status_changed",
                Payload::OrderStatusChanged(Default::default()),
            ),
            (
                "result_recorded",
                Payload::ResultRecorded(Default::default()),
            ),
            ("result_routed", Payload::ResultRouted(Default::default())),
            (
                "result_acknowledged",
                Payload::ResultAcknowledged(Default::default()),
            ),
            ("loop_overdue", Payload::LoopOverdue(Default::default())),
            (
                "pathway_triggered",
                Payload::PathwayTriggered(Default::default()),
            ),
            (
                "prior_auth_created",
                Payload::PriorAuthCreated(Default::default()),
            ),
            (
                "prior_auth_submitted",
                Payload::PriorAuthSubmitted(Default::default()),
            ),
            (
                "prior_auth_status_changed",
                Payload::PriorAuthStatusChanged(Default::default()),
            ),
            (
                "prior_auth_decided",
                Payload::PriorAuthDecided(Default::default()),
            ),
            (
                "prior_auth_extended",
                Payload::PriorAuthExtended(Default::default()),
            ),
            (
                "prior_auth_appeal_decided",
                Payload::PriorAuthAppealDecided(Default::default()),
            ),
            (
                "prior_auth_decision_overdue",
                Payload::PriorAuthDecisionOverdue(Default::default()),
            ),
            (
                "prior_auth_expiring",
                Payload::PriorAuthExpiring(Default::default()),
            ),
            (
                "plans_loop_overdue",
                Payload::PlansLoopOverdue(Default::default()),
            ),
            (
                "prior_auth_update_missed",
                Payload::PriorAuthUpdateMissed(Default::default()),
            ),
            (
                "notification_raised",
                Payload::NotificationRaised(Default::default()),
            ),
            (
                "notification_escalated",
                Payload::NotificationEscalated(Default::default()),
            ),
            (
                "notification_acknowledged",
                Payload::NotificationAcknowledged(Default::default()),
            ),
            (
                "notification_resolved",
                Payload::NotificationResolved(Default::default()),
            ),
            (
                "notification_delivered",
                Payload::NotificationDelivered(Default::default()),
            ),
            (
                "notification_read",
                Payload::NotificationRead(Default::default()),
            ),
        ];
        assert_eq!(
            payloads.len(),
            payload_fields().len(),
            "one sample per payload in the proto"
        );
        for (field, payload) in payloads {
            let entry = CATALOGUE
                .iter()
                .find(|e| e.payload == field)
                .expect("catalogued");
            assert_eq!(event_type(&payload), entry.event_type, "{field}");
        }
    }

    #[test]
    fn docs_events_md_matches_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/events.md");
        let rendered = render_markdown("careloop");
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, &rendered).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == rendered,
            "docs/events.md is stale: run UPDATE_DOCS=1 cargo test -p careloop-runtime catalogue"
        );
    }
}
