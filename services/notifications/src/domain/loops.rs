//! Which loop an event is about (and so what an item raised from it points at), and which events
//! say a loop moved on, so the items about its earlier stage stop escalating.

use careloop_proto::common::v1::LoopKind;
use careloop_proto::events::v1::event::Payload;
use std::collections::BTreeMap;

/// A loop at a stage: an item is about one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopAt {
    pub kind: LoopKind,
    pub id: String,
    pub stage: String,
}

/// A loop that moved: open items about it stop, except those about `stage` itself (a new item for
/// the stage it reached). `only` narrows which stage's items stop (the follow-up call being done
/// ends only the follow-up call's items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub kind: LoopKind,
    pub id: String,
    pub stage: String,
    pub only: Option<&'static str>,
}

fn at(kind: LoopKind, id: &str, stage: impl Into<String>) -> Option<LoopAt> {
    Some(LoopAt {
        kind,
        id: id.to_owned(),
        stage: stage.into(),
    })
}

/// The field's value as the typed-field reader spells it ("note_received", "pended").
fn field(fields: &BTreeMap<String, String>, name: &str) -> String {
    fields.get(name).cloned().unwrap_or_default()
}

/// The loop and stage an event is about; `None` for events about no loop (a patient registered, a
/// consent granted), on which routing rules cannot raise items.
pub fn about(payload: &Payload, fields: &BTreeMap<String, String>) -> Option<LoopAt> {
    use LoopKind as K;
    match payload {
        Payload::TaskCreated(p) => at(K::Task, &p.task_id, "requested"),
        Payload::TaskAssigned(p) => at(K::Task, &p.task_id, "assigned"),
        Payload::TaskStatusChanged(p) => at(K::Task, &p.task_id, field(fields, "to_status")),
        Payload::HandoffSent(p) => at(K::Handoff, &p.handoff_id, "sent"),
        Payload::TransitionStarted(p) => at(K::Transition, &p.transition_id, "started"),
        Payload::ReferralPlaced(p) => at(K::Referral, &p.referral_id, "placed"),
        Payload::ReferralStatusChanged(p) => {
            at(K::Referral, &p.referral_id, field(fields, "to_status"))
        }
        Payload::OrderPlaced(p) => at(K::Order, &p.order_id, "placed"),
        Payload::OrderStatusChanged(p) => at(K::Order, &p.order_id, field(fields, "to_status")),
        Payload::ResultRecorded(p) => at(K::Result, &p.result_id, "received"),
        Payload::ResultRouted(p) => at(K::Result, &p.result_id, "routed"),
        Payload::LoopOverdue(p)
        | Payload::PlansLoopOverdue(p)
        | Payload::PriorAuthUpdateMissed(p) => {
            let kind = LoopKind::try_from(p.loop_kind).ok()?;
            let stage = if matches!(payload, Payload::PriorAuthUpdateMissed(_)) {
                "next_patient_update".to_owned()
            } else {
                p.stage.clone()
            };
            at(kind, &p.loop_id, stage)
        }
        Payload::PriorAuthCreated(p) => at(K::PriorAuth, &p.request_id, "draft"),
        Payload::PriorAuthSubmitted(p) => at(K::PriorAuth, &p.request_id, "submitted"),
        Payload::PriorAuthStatusChanged(p) => {
            at(K::PriorAuth, &p.request_id, field(fields, "to_status"))
        }
        Payload::PriorAuthDecided(p) => at(K::PriorAuth, &p.request_id, p.decision.clone()),
        Payload::PriorAuthDecisionOverdue(p) => at(K::PriorAuth, &p.request_id, "decision_due"),
        Payload::PriorAuthExpiring(p) => at(K::PriorAuth, &p.request_id, "expiring"),
        Payload::PriorAuthExtended(p) => at(K::PriorAuth, &p.request_id, "extended"),
        Payload::PriorAuthAppealDecided(p) => at(K::PriorAuth, &p.request_id, "appeal_decided"),
        _ => None,
    }
}

/// The loop an event moves on, if it moves one.
pub fn moved(payload: &Payload, fields: &BTreeMap<String, String>) -> Option<Moved> {
    use LoopKind as K;
    let to = |kind: K, id: &str, stage: String| {
        Some(Moved {
            kind,
            id: id.to_owned(),
            stage,
            only: None,
        })
    };
    match payload {
        Payload::TaskStatusChanged(p) => to(K::Task, &p.task_id, field(fields, "to_status")),
        Payload::ReferralStatusChanged(p) => {
            to(K::Referral, &p.referral_id, field(fields, "to_status"))
        }
        Payload::OrderStatusChanged(p) => to(K::Order, &p.order_id, field(fields, "to_status")),
        Payload::ResultAcknowledged(p) => to(K::Result, &p.result_id, "acknowledged".into()),
        Payload::HandoffAcknowledged(p) => to(K::Handoff, &p.handoff_id, "acknowledged".into()),
        Payload::TransitionCompleted(p) => to(K::Transition, &p.transition_id, "completed".into()),
        Payload::TransitionChecklistUpdated(p)
            if field(fields, "item") == "follow_up_call"
                && matches!(field(fields, "state").as_str(), "done" | "waived") =>
        {
            Some(Moved {
                kind: K::Transition,
                id: p.transition_id.clone(),
                stage: "follow_up_call_done".into(),
                only: Some("follow_up_call"),
            })
        }
        Payload::PriorAuthStatusChanged(p) => {
            to(K::PriorAuth, &p.request_id, field(fields, "to_status"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use careloop_proto::events::v1::{
        Event, LoopOverdue, ReferralStatusChanged, ResultAcknowledged, TransitionChecklistUpdated,
    };
    use careloop_proto::plans::v1::{ChecklistItemKind, ChecklistItemState};
    use careloop_proto::referrals::v1::ReferralStatus;

    fn fields(payload: &Payload) -> BTreeMap<String, String> {
        careloop_runtime::events::fields::event_fields(&Event {
            payload: Some(payload.clone()),
            ..Default::default()
        })
    }

    #[test]
    fn an_overdue_referral_is_about_the_referral_at_its_reported_stage() {
        let overdue = Payload::LoopOverdue(LoopOverdue {
            loop_kind: LoopKind::Referral as i32,
            loop_id: "r1".into(),
            stage: "placed".into(),
            ..Default::default()
        });
        assert_eq!(
            about(&overdue, &fields(&overdue)),
            Some(LoopAt {
                kind: LoopKind::Referral,
                id: "r1".into(),
                stage: "placed".into()
            })
        );
    }

    #[test]
    fn a_scheduled_referral_moved_to_the_stage_its_status_names() {
        let scheduled = Payload::ReferralStatusChanged(ReferralStatusChanged {
            referral_id: "r1".into(),
            from_status: ReferralStatus::Accepted as i32,
            to_status: ReferralStatus::Scheduled as i32,
            ..Default::default()
        });
        let moved = moved(&scheduled, &fields(&scheduled)).unwrap();
        assert_eq!(
            (moved.kind, moved.stage.as_str()),
            (LoopKind::Referral, "scheduled")
        );
    }

    #[test]
    fn an_acknowledged_result_moved_and_a_checklist_item_other_than_the_call_did_not() {
        let ack = Payload::ResultAcknowledged(ResultAcknowledged {
            result_id: "x".into(),
            ..Default::default()
        });
        assert_eq!(moved(&ack, &fields(&ack)).unwrap().stage, "acknowledged");
        let meds = Payload::TransitionChecklistUpdated(TransitionChecklistUpdated {
            transition_id: "t".into(),
            item: ChecklistItemKind::MedicationsReconciled as i32,
            state: ChecklistItemState::Done as i32,
        });
        assert_eq!(moved(&meds, &fields(&meds)), None);
        let call = Payload::TransitionChecklistUpdated(TransitionChecklistUpdated {
            transition_id: "t".into(),
            item: ChecklistItemKind::FollowUpCall as i32,
            state: ChecklistItemState::Done as i32,
        });
        assert_eq!(
            moved(&call, &fields(&call)).unwrap().only,
            Some("follow_up_call")
        );
    }
}
