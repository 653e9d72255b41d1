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

    fn allowed(kind: Kind, from: Status, action: Action) -> bool {
        match action {
            Schedule => from == Placed,
            Confirm => from == Scheduled,
            Complete if kind.needs_confirmation() => from == Confirmed,
            Complete => matches!(from, Scheduled | Confirmed),
            Close => from == Completed,
            Cancel => matches!(from, Placed | Scheduled | Confirmed),
        }
    }

    #[test]
    fn every_allowed_and_refused_order_transition_matches_the_table() {
        let done = Results {
            recorded: 1,
            unacknowledged_abnormal: 0,
        };
        for kind in Kind::ALL {
            for from in Status::ALL {
                for action in Action::ALL {
                    let result = apply(kind, from, action, done);
                    if allowed(kind, from, action) {
                        assert_eq!(result, Ok(action.target()), "{kind:?} {from:?} {action:?}");
                    } else {
                        assert_eq!(
                            result,
                            Err(Refused::Transition {
                                from: from.as_str(),
                                to: action.target().as_str()
                            }),
                            "{kind:?} {from:?} {action:?}"
                        );
                    }
                }
            }
        }
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
