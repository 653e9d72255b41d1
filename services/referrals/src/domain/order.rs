//! Orders: placed -> scheduled -> confirmed -> completed -> closed; cancelled from any open state.
//! For transport and DME, booking (scheduled) is not confirmation: the patient must know the pickup
//! time or delivery window (confirmed) before the order can complete. Lab and imaging orders close
//! only when every abnormal result is acknowledged.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Lab,
    Imaging,
    Transport,
    HomeHealth,
    Dme,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Self::Lab,
        Self::Imaging,
        Self::Transport,
        Self::HomeHealth,
        Self::Dme,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lab => "lab",
            Self::Imaging => "imaging",
            Self::Transport => "transport",
            Self::HomeHealth => "home_health",
            Self::Dme => "dme",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Tests with results: a test code is required and duplicates are checked.
    pub fn has_results(self) -> bool {
        matches!(self, Self::Lab | Self::Imaging)
    }

    /// Transport and DME have a window and a confirmation step separate from booking.
    pub fn needs_confirmation(self) -> bool {
        matches!(self, Self::Transport | Self::Dme)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Placed,
    Scheduled,
    Confirmed,
    Completed,
    Closed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Self::Placed,
        Self::Scheduled,
        Self::Confirmed,
        Self::Completed,
        Self::Closed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Scheduled => "scheduled",
            Self::Confirmed => "confirmed",
            Self::Completed => "completed",
            Self::Closed => "closed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_open(self) -> bool {
        !matches!(self, Self::Closed | Self::Cancelled)
    }

    /// Whether a result may be recorded against an order in this state: any open state (a lab
    /// can be drawn before it was scheduled); a closed order's results were all acknowledged and
    /// it takes no more, and a cancelled one never had a test done.
    pub fn accepts_results(self) -> bool {
        self.is_open()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Schedule,
    Confirm,
    Complete,
    Close,
    Cancel,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Self::Schedule,
        Self::Confirm,
        Self::Complete,
        Self::Close,
        Self::Cancel,
    ];

    pub fn target(self) -> Status {
        match self {
            Self::Schedule => Status::Scheduled,
            Self::Confirm => Status::Confirmed,
            Self::Complete => Status::Completed,
            Self::Close => Status::Closed,
            Self::Cancel => Status::Cancelled,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("order cannot move from {from} to {to}")]
    Transition {
        from: &'static str,
        to: &'static str,
    },
    #[error("order cannot close: {0} result(s) still need acknowledgement")]
    ResultsPending(i64),
    #[error("order cannot close: no result has been recorded")]
    NoResults,
}

/// What the store knows about an order's results, for closing lab and imaging orders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Results {
    pub recorded: i64,
    pub unacknowledged_abnormal: i64,
}

pub fn apply(
    kind: Kind,
    status: Status,
    action: Action,
    results: Results,
) -> Result<Status, Refused> {
    use Status::*;
    let allowed = match action {
        Action::Schedule => status == Placed,
        Action::Confirm => status == Scheduled,
        Action::Complete if kind.needs_confirmation() => status == Confirmed,
        Action::Complete => matches!(status, Scheduled | Confirmed),
        Action::Close => status == Completed,
        Action::Cancel => matches!(status, Placed | Scheduled | Confirmed),
    };
    if !allowed {
        return Err(Refused::Transition {
            from: status.as_str(),
            to: action.target().as_str(),
        });
    }
    if action == Action::Close && kind.has_results() {
        if results.recorded == 0 {
            return Err(Refused::NoResults);
        }
        if results.unacknowledged_abnormal > 0 {
            return Err(Refused::ResultsPending(results.unacknowledged_abnormal));
        }
    }
    Ok(action.target())
}

#[cfg(test)]
mod tests {
    use super::Action::*;
    use super::Status::*;
    use super::*;

    /// The order state table, written from the rules (not from `apply`): every allowed move as
    /// (kind that needs confirmation?, from, action, to). Anything not listed is refused.
    const TABLE: &[(bool, Status, Action, Status)] = &[
        // Lab, imaging, home health: placed -> scheduled -> completed -> closed.
        (false, Placed, Schedule, Scheduled),
        (false, Scheduled, Confirm, Confirmed),
        (false, Scheduled, Complete, Completed),
        (false, Confirmed, Complete, Completed),
        (false, Completed, Close, Closed),
        (false, Placed, Cancel, Cancelled),
        (false, Scheduled, Cancel, Cancelled),
        (false, Confirmed, Cancel, Cancelled),
        // Transport and DME: completing needs the patient's confirmation first.
        (true, Placed, Schedule, Scheduled),
        (true, Scheduled, Confirm, Confirmed),
        (true, Confirmed, Complete, Completed),
        (true, Completed, Close, Closed),
        (true, Placed, Cancel, Cancelled),
        (true, Scheduled, Cancel, Cancelled),
        (true, Confirmed, Cancel, Cancelled),
    ];

    #[test]
    fn every_allowed_and_refused_order_transition_matches_the_table() {
        let done = Results {
            recorded: 1,
            unacknowledged_abnormal: 0,
        };
        for kind in Kind::ALL {
            for from in Status::ALL {
                for action in Action::ALL {
                    let listed = TABLE
                        .iter()
                        .find(|(confirm, f, a, _)| {
                            *confirm == kind.needs_confirmation() && *f == from && *a == action
                        })
                        .map(|row| row.3);
                    let result = apply(kind, from, action, done);
                    match listed {
                        Some(to) => assert_eq!(result, Ok(to), "{kind:?} {from:?} {action:?}"),
                        None => assert_eq!(
                            result,
                            Err(Refused::Transition {
                                from: from.as_str(),
                                to: action.target().as_str()
                            }),
                            "{kind:?} {from:?} {action:?}"
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn results_are_taken_in_open_states_only() {
        let accepting: Vec<Status> = Status::ALL
            .into_iter()
            .filter(|s| s.accepts_results())
            .collect();
        assert_eq!(accepting, vec![Placed, Scheduled, Confirmed, Completed]);
    }

    #[test]
    fn a_booked_transport_cannot_complete_until_the_patient_knows_the_pickup_time() {
        let none = Results::default();
        assert!(apply(Kind::Transport, Scheduled, Complete, none).is_err());
        let confirmed = apply(Kind::Transport, Scheduled, Confirm, none).unwrap();
        assert_eq!(
            apply(Kind::Transport, confirmed, Complete, none),
            Ok(Completed)
        );
        assert_eq!(apply(Kind::Lab, Scheduled, Complete, none), Ok(Completed));
    }

    #[test]
    fn a_lab_order_closes_only_when_its_abnormal_results_are_acknowledged() {
        let pending = Results {
            recorded: 2,
            unacknowledged_abnormal: 1,
        };
        assert_eq!(
            apply(Kind::Lab, Completed, Close, pending),
            Err(Refused::ResultsPending(1))
        );
        assert_eq!(
            apply(Kind::Imaging, Completed, Close, Results::default()),
            Err(Refused::NoResults)
        );
        let done = Results {
            recorded: 2,
            unacknowledged_abnormal: 0,
        };
        assert_eq!(apply(Kind::Lab, Completed, Close, done), Ok(Closed));
        assert_eq!(
            apply(Kind::Dme, Completed, Close, Results::default()),
            Ok(Closed)
        );
    }
}
