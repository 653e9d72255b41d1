//! A care transition's checklist: what a safe move between settings needs before it is complete.
//! A transition completes only when every required item is done or waived with a reason.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    MedicationsReconciled,
    NextAppointmentBooked,
    HandoffSent,
    OnePagePlanGiven,
    FollowUpCall,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MedicationsReconciled => "medications_reconciled",
            Self::NextAppointmentBooked => "next_appointment_booked",
            Self::HandoffSent => "handoff_sent",
            Self::OnePagePlanGiven => "one_page_plan_given",
            Self::FollowUpCall => "follow_up_call",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Pending,
    Done,
    Waived,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub kind: ItemKind,
    pub required: bool,
    pub state: ItemState,
    pub waive_reason: Option<String>,
    pub done_by: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
}

/// Higher-risk discharges get a call within 48-72 hours; we hold the team to the outer bound.
pub const FOLLOW_UP_CALL_WITHIN: Duration = Duration::hours(72);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecklistError {
    #[error("a waived item needs a reason")]
    WaiveWithoutReason,
    #[error("checklist item {0} is not part of this transition")]
    NoSuchItem(&'static str),
    #[error("transition is already completed")]
    AlreadyCompleted,
    #[error("transition cannot complete: pending required items {0}")]
    Incomplete(String),
}

/// The checklist a new transition starts with.
pub fn initial_checklist(risk: Risk, started_at: DateTime<Utc>) -> Vec<ChecklistItem> {
    let item = |kind, required, due_at| ChecklistItem {
        kind,
        required,
        state: ItemState::Pending,
        waive_reason: None,
        done_by: None,
        updated_at: None,
        due_at,
    };
    vec![
        item(ItemKind::MedicationsReconciled, true, None),
        item(ItemKind::NextAppointmentBooked, true, None),
        item(ItemKind::HandoffSent, true, None),
        item(ItemKind::OnePagePlanGiven, true, None),
        item(
            ItemKind::FollowUpCall,
            risk == Risk::High,
            Some(started_at + FOLLOW_UP_CALL_WITHIN),
        ),
    ]
}

/// Marks one item done, waived (with a reason) or back to pending.
pub fn update_item(
    checklist: &mut [ChecklistItem],
    completed: bool,
    kind: ItemKind,
    state: ItemState,
    waive_reason: Option<String>,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), ChecklistError> {
    if completed {
        return Err(ChecklistError::AlreadyCompleted);
    }
    let reason = waive_reason.filter(|r| !r.trim().is_empty());
    if state == ItemState::Waived && reason.is_none() {
        return Err(ChecklistError::WaiveWithoutReason);
    }
    let item = checklist
        .iter_mut()
        .find(|i| i.kind == kind)
        .ok_or(ChecklistError::NoSuchItem(kind.as_str()))?;
    item.state = state;
    item.waive_reason = if state == ItemState::Waived {
        reason
    } else {
        None
    };
    item.done_by = (state != ItemState::Pending).then(|| by.to_owned());
    item.updated_at = Some(now);
    Ok(())
}

/// Whether the transition may complete: every required item done or waived.
pub fn check_complete(checklist: &[ChecklistItem], completed: bool) -> Result<(), ChecklistError> {
    if completed {
        return Err(ChecklistError::AlreadyCompleted);
    }
    let pending: Vec<&str> = checklist
        .iter()
        .filter(|i| i.required && i.state == ItemState::Pending)
        .map(|i| i.kind.as_str())
        .collect();
    if pending.is_empty() {
        Ok(())
    } else {
        Err(ChecklistError::Incomplete(pending.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    fn finish_all(list: &mut [ChecklistItem], except: Option<ItemKind>) {
        for kind in [
            ItemKind::MedicationsReconciled,
            ItemKind::NextAppointmentBooked,
            ItemKind::HandoffSent,
            ItemKind::OnePagePlanGiven,
            ItemKind::FollowUpCall,
        ] {
            if Some(kind) != except {
                update_item(list, false, kind, ItemState::Done, None, "rn-1", now()).unwrap();
            }
        }
    }

    #[test]
    fn a_high_risk_transition_requires_a_follow_up_call_within_72_hours() {
        let list = initial_checklist(Risk::High, now());
        let call = list
            .iter()
            .find(|i| i.kind == ItemKind::FollowUpCall)
            .unwrap();
        assert!(call.required);
        assert_eq!(call.due_at, Some(now() + Duration::hours(72)));
        let low = initial_checklist(Risk::Low, now());
        assert!(
            !low.iter()
                .find(|i| i.kind == ItemKind::FollowUpCall)
                .unwrap()
                .required
        );
    }

    #[test]
    fn a_transition_cannot_complete_while_a_required_item_is_pending() {
        for missing in [
            ItemKind::MedicationsReconciled,
            ItemKind::NextAppointmentBooked,
            ItemKind::HandoffSent,
            ItemKind::OnePagePlanGiven,
            ItemKind::FollowUpCall,
        ] {
            let mut list = initial_checklist(Risk::High, now());
            finish_all(&mut list, Some(missing));
            let err = check_complete(&list, false).unwrap_err();
            assert_eq!(err, ChecklistError::Incomplete(missing.as_str().to_owned()));
        }
    }

    #[test]
    fn a_low_risk_transition_completes_without_the_optional_call() {
        let mut list = initial_checklist(Risk::Low, now());
        finish_all(&mut list, Some(ItemKind::FollowUpCall));
        assert_eq!(check_complete(&list, false), Ok(()));
    }

    #[test]
    fn a_waived_item_counts_only_with_a_reason() {
        let mut list = initial_checklist(Risk::Medium, now());
        finish_all(&mut list, Some(ItemKind::NextAppointmentBooked));
        let kind = ItemKind::NextAppointmentBooked;
        assert_eq!(
            update_item(
                &mut list,
                false,
                kind,
                ItemState::Waived,
                Some("  ".into()),
                "rn",
                now()
            ),
            Err(ChecklistError::WaiveWithoutReason)
        );
        update_item(
            &mut list,
            false,
            kind,
            ItemState::Waived,
            Some("patient declined".into()),
            "rn",
            now(),
        )
        .unwrap();
        assert_eq!(check_complete(&list, false), Ok(()));
    }

    #[test]
    fn a_completed_transition_cannot_change_or_complete_again() {
        let mut list = initial_checklist(Risk::Low, now());
        assert_eq!(
            update_item(
                &mut list,
                true,
                ItemKind::HandoffSent,
                ItemState::Done,
                None,
                "rn",
                now()
            ),
            Err(ChecklistError::AlreadyCompleted)
        );
        assert_eq!(
            check_complete(&list, true),
            Err(ChecklistError::AlreadyCompleted)
        );
    }

    #[test]
    fn setting_an_item_back_to_pending_clears_who_did_it() {
        let mut list = initial_checklist(Risk::Low, now());
        let kind = ItemKind::HandoffSent;
        update_item(&mut list, false, kind, ItemState::Done, None, "rn", now()).unwrap();
        update_item(
            &mut list,
            false,
            kind,
            ItemState::Pending,
            None,
            "rn",
            now(),
        )
        .unwrap();
        let item = list.iter().find(|i| i.kind == kind).unwrap();
        assert_eq!(
            (item.state, item.done_by.clone()),
            (ItemState::Pending, None)
        );
    }
}
