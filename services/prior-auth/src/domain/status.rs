//! draft -> submitted -> pended (more information) -> submitted again ...; a decision: approved,
//! partially_approved (items modified) or denied (reason required); denied -> appealed ->
//! appeal_approved | appeal_denied; cancelled from any open state.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Draft,
    Submitted,
    Pended,
    Approved,
    PartiallyApproved,
    Denied,
    Appealed,
    AppealApproved,
    AppealDenied,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Self::Draft,
        Self::Submitted,
        Self::Pended,
        Self::Approved,
        Self::PartiallyApproved,
        Self::Denied,
        Self::Appealed,
        Self::AppealApproved,
        Self::AppealDenied,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
            Self::Pended => "pended",
            Self::Approved => "approved",
            Self::PartiallyApproved => "partially_approved",
            Self::Denied => "denied",
            Self::Appealed => "appealed",
            Self::AppealApproved => "appeal_approved",
            Self::AppealDenied => "appeal_denied",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// A denied request stays open: someone must appeal or let it go.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Draft | Self::Submitted | Self::Pended | Self::Denied | Self::Appealed
        )
    }

    /// The draft and pended states let the owner edit the packet.
    pub fn is_editable(self) -> bool {
        matches!(self, Self::Draft | Self::Pended)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Submit,
    Pend,
    Approve,
    PartiallyApprove,
    Deny,
    Extend,
    Appeal,
    AppealApprove,
    AppealDeny,
    Cancel,
}

impl Action {
    pub const ALL: [Action; 10] = [
        Self::Submit,
        Self::Pend,
        Self::Approve,
        Self::PartiallyApprove,
        Self::Deny,
        Self::Extend,
        Self::Appeal,
        Self::AppealApprove,
        Self::AppealDeny,
        Self::Cancel,
    ];

    fn target(self, from: Status) -> Status {
        match self {
            Self::Submit => Status::Submitted,
            Self::Pend => Status::Pended,
            Self::Approve => Status::Approved,
            Self::PartiallyApprove => Status::PartiallyApproved,
            Self::Deny => Status::Denied,
            Self::Extend => from,
            Self::Appeal => Status::Appealed,
            Self::AppealApprove => Status::AppealApproved,
            Self::AppealDeny => Status::AppealDenied,
            Self::Cancel => Status::Cancelled,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("prior authorization cannot move from {from} to {to}")]
pub struct Refused {
    pub from: &'static str,
    pub to: &'static str,
}

pub fn apply(from: Status, action: Action) -> Result<Status, Refused> {
    use Status::*;
    let allowed = match action {
        Action::Submit => matches!(from, Draft | Pended),
        Action::Pend
        | Action::Approve
        | Action::PartiallyApprove
        | Action::Deny
        | Action::Extend => from == Submitted,
        Action::Appeal => from == Denied,
        Action::AppealApprove | Action::AppealDeny => from == Appealed,
        Action::Cancel => from.is_open(),
    };
    let to = action.target(from);
    if allowed {
        Ok(to)
    } else {
        Err(Refused {
            from: from.as_str(),
            to: if action == Action::Extend {
                "extended"
            } else {
                to.as_str()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Action as A;
    use super::Status as S;
    use super::*;
    use proptest::prelude::*;

    fn expected(from: S, action: A) -> Option<S> {
        match (from, action) {
            (S::Draft | S::Pended, A::Submit) => Some(S::Submitted),
            (S::Submitted, A::Pend) => Some(S::Pended),
            (S::Submitted, A::Approve) => Some(S::Approved),
            (S::Submitted, A::PartiallyApprove) => Some(S::PartiallyApproved),
            (S::Submitted, A::Deny) => Some(S::Denied),
            (S::Submitted, A::Extend) => Some(S::Submitted),
            (S::Denied, A::Appeal) => Some(S::Appealed),
            (S::Appealed, A::AppealApprove) => Some(S::AppealApproved),
            (S::Appealed, A::AppealDeny) => Some(S::AppealDenied),
            (S::Draft | S::Submitted | S::Pended | S::Denied | S::Appealed, A::Cancel) => {
                Some(S::Cancelled)
            }
            _ => None,
        }
    }

    #[test]
    fn every_allowed_and_refused_transition_matches_the_table() {
        for from in S::ALL {
            for action in A::ALL {
                match expected(from, action) {
                    Some(to) => assert_eq!(apply(from, action), Ok(to), "{from:?} {action:?}"),
                    None => assert_eq!(
                        apply(from, action).unwrap_err().from,
                        from.as_str(),
                        "{from:?} {action:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn a_pended_request_goes_back_to_the_payer_when_resubmitted() {
        let s = apply(S::Draft, A::Submit).unwrap();
        let s = apply(s, A::Pend).unwrap();
        assert!(s.is_editable());
        assert_eq!(apply(s, A::Submit), Ok(S::Submitted));
        assert_eq!(
            apply(S::Approved, A::Appeal).unwrap_err().to_string(),
            "prior authorization cannot move from approved to appealed"
        );
    }

    proptest! {
        #[test]
        fn closed_requests_never_move(actions in prop::collection::vec(prop::sample::select(A::ALL.to_vec()), 0..40)) {
            let mut s = S::Draft;
            for a in actions {
                let was_open = s.is_open();
                if let Ok(next) = apply(s, a) {
                    prop_assert!(was_open, "{:?} moved by {:?}", s, a);
                    s = next;
                }
            }
        }
    }
}
