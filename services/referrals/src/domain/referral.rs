//! The closed-loop referral: placed -> accepted | declined; accepted -> scheduled; scheduled ->
//! rescheduled (count kept) | no_show | seen | cancelled; seen -> note_received, where the loop closes.
//! A no-show is rebooked (rescheduled) or cancelled; a rescheduled referral behaves as scheduled.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Placed,
    Accepted,
    Declined,
    Scheduled,
    Rescheduled,
    NoShow,
    Seen,
    NoteReceived,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Self::Placed,
        Self::Accepted,
        Self::Declined,
        Self::Scheduled,
        Self::Rescheduled,
        Self::NoShow,
        Self::Seen,
        Self::NoteReceived,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Scheduled => "scheduled",
            Self::Rescheduled => "rescheduled",
            Self::NoShow => "no_show",
            Self::Seen => "seen",
            Self::NoteReceived => "note_received",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The loop stays visible until the note is back, or it was declined or cancelled.
    pub fn is_open(self) -> bool {
        !matches!(self, Self::Declined | Self::NoteReceived | Self::Cancelled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Accept,
    Decline,
    Schedule,
    Reschedule,
    Cancel,
    NoShow,
    Seen,
    NoteReceived,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Self::Accept,
        Self::Decline,
        Self::Schedule,
        Self::Reschedule,
        Self::Cancel,
        Self::NoShow,
        Self::Seen,
        Self::NoteReceived,
    ];

    pub fn target(self) -> Status {
        match self {
            Self::Accept => Status::Accepted,
            Self::Decline => Status::Declined,
            Self::Schedule => Status::Scheduled,
            Self::Reschedule => Status::Rescheduled,
            Self::Cancel => Status::Cancelled,
            Self::NoShow => Status::NoShow,
            Self::Seen => Status::Seen,
            Self::NoteReceived => Status::NoteReceived,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("referral cannot move from {from} to {to}")]
pub struct Refused {
    pub from: &'static str,
    pub to: &'static str,
}

/// The state after `action` from `status`, with the reschedule count; or the refusal.
pub fn apply(status: Status, reschedules: i32, action: Action) -> Result<(Status, i32), Refused> {
    use Status::*;
    let allowed = match action {
        Action::Accept | Action::Decline => status == Placed,
        Action::Schedule => status == Accepted,
        Action::Reschedule => matches!(status, Scheduled | Rescheduled | NoShow),
        Action::Cancel => matches!(status, Placed | Accepted | Scheduled | Rescheduled | NoShow),
        Action::NoShow | Action::Seen => matches!(status, Scheduled | Rescheduled),
        Action::NoteReceived => status == Seen,
    };
    if !allowed {
        return Err(Refused {
            from: status.as_str(),
            to: action.target().as_str(),
        });
    }
    let count = if action == Action::Reschedule {
        reschedules + 1
    } else {
        reschedules
    };
    Ok((action.target(), count))
}

/// Which side of a referral takes an action: the receiving organization runs the loop (accepts or
/// declines, schedules, reports the visit and sends the note back); the sender may only cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Sender,
    Receiver,
}

impl Action {
    pub fn side(self) -> Side {
        match self {
            Self::Cancel => Side::Sender,
            Self::Accept
            | Self::Decline
            | Self::Schedule
            | Self::Reschedule
            | Self::NoShow
            | Self::Seen
            | Self::NoteReceived => Side::Receiver,
        }
    }
}

/// Whether staff of `caller_org` may take `action` on a referral from `from_org` to `to_org`. A
/// referral to a specialty (no receiving organization on CareLoop yet) is tracked by its sender.
pub fn may_move(
    action: Action,
    caller_org: uuid::Uuid,
    from_org: uuid::Uuid,
    to_org: Option<uuid::Uuid>,
) -> bool {
    match (action.side(), to_org) {
        (Side::Sender, _) | (Side::Receiver, None) => caller_org == from_org,
        (Side::Receiver, Some(receiver)) => caller_org == receiver,
    }
}

#[cfg(test)]
mod tests {
    use super::Action as A;
    use super::Status as S;
    use super::*;
    use proptest::prelude::*;

    fn allowed(from: Status, action: Action) -> bool {
        matches!(
            (from, action),
            (S::Placed, A::Accept)
                | (S::Placed, A::Decline)
                | (S::Accepted, A::Schedule)
                | (S::Scheduled | S::Rescheduled | S::NoShow, A::Reschedule)
                | (
                    S::Placed | S::Accepted | S::Scheduled | S::Rescheduled | S::NoShow,
                    A::Cancel
                )
                | (S::Scheduled | S::Rescheduled, A::NoShow)
                | (S::Scheduled | S::Rescheduled, A::Seen)
                | (S::Seen, A::NoteReceived)
        )
    }

    #[test]
    fn every_allowed_and_refused_referral_transition_matches_the_table() {
        for from in Status::ALL {
            for action in Action::ALL {
                let result = apply(from, 0, action);
                if allowed(from, action) {
                    assert_eq!(
                        result.map(|r| r.0),
                        Ok(action.target()),
                        "{from:?} {action:?}"
                    );
                } else {
                    let refused = result.expect_err("refused");
                    assert_eq!(
                        (refused.from, refused.to),
                        (from.as_str(), action.target().as_str())
                    );
                }
            }
        }
    }

    #[test]
    fn a_referral_closes_only_when_the_note_is_received() {
        let mut s = S::Placed;
        for action in [A::Accept, A::Schedule, A::Seen] {
            s = apply(s, 0, action).unwrap().0;
            assert!(s.is_open());
        }
        assert_eq!(
            apply(S::Scheduled, 0, A::NoteReceived)
                .unwrap_err()
                .to_string(),
            "referral cannot move from scheduled to note_received"
        );
        assert!(!apply(s, 0, A::NoteReceived).unwrap().0.is_open());
    }

    #[test]
    fn rescheduling_keeps_count() {
        let (s, n) = apply(S::Scheduled, 0, A::Reschedule).unwrap();
        let (s, n) = apply(s, n, A::Reschedule).unwrap();
        let (s, n) = apply(s, n, A::NoShow).unwrap();
        let (s, n) = apply(s, n, A::Reschedule).unwrap();
        assert_eq!((s, n), (S::Rescheduled, 3));
    }

    proptest! {
        #[test]
        fn closed_referrals_never_move_and_the_count_never_drops(actions in prop::collection::vec(prop::sample::select(Action::ALL.to_vec()), 0..40)) {
            let (mut s, mut n) = (S::Placed, 0);
            for a in actions {
                let was_open = s.is_open();
                if let Ok((next, count)) = apply(s, n, a) {
                    prop_assert!(was_open);
                    prop_assert!(count >= n);
                    s = next;
                    n = count;
                }
            }
        }
    }

    #[test]
    fn only_the_receiving_organization_runs_the_loop_and_the_sender_may_only_cancel() {
        let sender = uuid::Uuid::from_u128(1);
        let receiver = uuid::Uuid::from_u128(2);
        let stranger = uuid::Uuid::from_u128(3);
        // Written from the rule, action by action, not from the code's match.
        let receiver_actions = [
            Action::Accept,
            Action::Decline,
            Action::Schedule,
            Action::Reschedule,
            Action::NoShow,
            Action::Seen,
            Action::NoteReceived,
        ];
        for action in receiver_actions {
            assert!(
                may_move(action, receiver, sender, Some(receiver)),
                "{action:?}"
            );
            assert!(
                !may_move(action, sender, sender, Some(receiver)),
                "{action:?}"
            );
            assert!(
                !may_move(action, stranger, sender, Some(receiver)),
                "{action:?}"
            );
            assert!(
                may_move(action, sender, sender, None),
                "{action:?} to a specialty"
            );
        }
        assert!(may_move(Action::Cancel, sender, sender, Some(receiver)));
        assert!(!may_move(Action::Cancel, receiver, sender, Some(receiver)));
        assert!(!may_move(Action::Cancel, stranger, sender, None));
    }
}
