//! The task state machine: requested -> accepted -> in_progress -> completed; on_hold from
//! requested/accepted/in_progress and back to where it was; cancelled or failed from any open state.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    Requested,
    Accepted,
    InProgress,
    OnHold,
    Completed,
    Cancelled,
    Failed,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 7] = [
        Self::Requested,
        Self::Accepted,
        Self::InProgress,
        Self::OnHold,
        Self::Completed,
        Self::Cancelled,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Accepted => "accepted",
            Self::InProgress => "in_progress",
            Self::OnHold => "on_hold",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Open loops stay visible until they reach a terminal state.
    pub fn is_open(self) -> bool {
        !matches!(self, Self::Completed | Self::Cancelled | Self::Failed)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskAction {
    Accept,
    Start,
    Hold,
    Resume,
    Complete,
    Cancel,
    Fail,
}

impl TaskAction {
    pub const ALL: [TaskAction; 7] = [
        Self::Accept,
        Self::Start,
        Self::Hold,
        Self::Resume,
        Self::Complete,
        Self::Cancel,
        Self::Fail,
    ];

    /// Hold, cancel and fail must say why.
    pub fn needs_reason(self) -> bool {
        matches!(self, Self::Hold | Self::Cancel | Self::Fail)
    }
}

/// Where a task is: its status and, while on hold, the status it returns to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskState {
    pub status: TaskStatus,
    pub held_from: Option<TaskStatus>,
}

/// A refused transition, naming both states.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task cannot move from {from} to {to}")]
pub struct Refused {
    pub from: &'static str,
    pub to: &'static str,
}

impl TaskState {
    pub fn new() -> Self {
        Self {
            status: TaskStatus::Requested,
            held_from: None,
        }
    }

    /// The state after `action`, or the refusal.
    pub fn apply(self, action: TaskAction) -> Result<TaskState, Refused> {
        use TaskStatus::*;
        let target = |status: TaskStatus| TaskState {
            status,
            held_from: None,
        };
        let refused = |to: &'static str| Refused {
            from: self.status.as_str(),
            to,
        };
        match (action, self.status) {
            (TaskAction::Accept, Requested) => Ok(target(Accepted)),
            (TaskAction::Accept, _) => Err(refused(Accepted.as_str())),
            (TaskAction::Start, Accepted) => Ok(target(InProgress)),
            (TaskAction::Start, _) => Err(refused(InProgress.as_str())),
            (TaskAction::Hold, Requested | Accepted | InProgress) => Ok(TaskState {
                status: OnHold,
                held_from: Some(self.status),
            }),
            (TaskAction::Hold, _) => Err(refused(OnHold.as_str())),
            (TaskAction::Resume, OnHold) => match self.held_from {
                Some(previous) => Ok(target(previous)),
                // An on-hold task always remembers where it came from; be safe if it does not.
                None => Ok(target(Requested)),
            },
            (TaskAction::Resume, _) => Err(refused("its status before the hold")),
            (TaskAction::Complete, InProgress) => Ok(target(Completed)),
            (TaskAction::Complete, _) => Err(refused(Completed.as_str())),
            (TaskAction::Cancel, s) if s.is_open() => Ok(target(Cancelled)),
            (TaskAction::Cancel, _) => Err(refused(Cancelled.as_str())),
            (TaskAction::Fail, s) if s.is_open() => Ok(target(Failed)),
            (TaskAction::Fail, _) => Err(refused(Failed.as_str())),
        }
    }
}

impl Default for TaskState {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::TaskAction::*;
    use super::TaskStatus::*;
    use super::*;
    use proptest::prelude::*;

    fn at(status: TaskStatus) -> TaskState {
        TaskState {
            status,
            held_from: (status == OnHold).then_some(Accepted),
        }
    }

    /// Every (status, action) pair and what it must lead to; None means refused.
    fn expected(status: TaskStatus, action: TaskAction) -> Option<TaskStatus> {
        match (status, action) {
            (Requested, Accept) => Some(Accepted),
            (Accepted, Start) => Some(InProgress),
            (InProgress, Complete) => Some(Completed),
            (Requested | Accepted | InProgress, Hold) => Some(OnHold),
            (OnHold, Resume) => Some(Accepted),
            (Requested | Accepted | InProgress | OnHold, Cancel) => Some(Cancelled),
            (Requested | Accepted | InProgress | OnHold, Fail) => Some(Failed),
            _ => None,
        }
    }

    #[test]
    fn every_allowed_and_refused_transition_matches_the_table() {
        for status in TaskStatus::ALL {
            for action in TaskAction::ALL {
                let result = at(status).apply(action);
                match expected(status, action) {
                    Some(to) => {
                        assert_eq!(result.map(|s| s.status), Ok(to), "{status:?} {action:?}")
                    }
                    None => {
                        let refusal = result.expect_err("must be refused");
                        assert_eq!(refusal.from, status.as_str());
                    }
                }
            }
        }
    }

    #[test]
    fn a_task_cannot_complete_before_it_is_started() {
        let err = TaskState::new().apply(Complete).unwrap_err();
        assert_eq!(
            err.to_string(),
            "task cannot move from requested to completed"
        );
    }

    #[test]
    fn a_held_task_resumes_where_it_was() {
        for from in [Requested, Accepted, InProgress] {
            let state = TaskState {
                status: from,
                held_from: None,
            };
            let held = state.apply(Hold).unwrap();
            assert_eq!(held.held_from, Some(from));
            assert_eq!(
                held.apply(Resume).unwrap(),
                TaskState {
                    status: from,
                    held_from: None
                }
            );
        }
    }

    #[test]
    fn closed_tasks_accept_no_action() {
        for status in [Completed, Cancelled, Failed] {
            for action in TaskAction::ALL {
                assert!(at(status).apply(action).is_err());
            }
        }
    }

    fn action() -> impl Strategy<Value = TaskAction> {
        prop::sample::select(TaskAction::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn no_sequence_of_actions_breaks_the_hold_invariant_or_reopens_a_closed_task(actions in prop::collection::vec(action(), 0..40)) {
            let mut state = TaskState::new();
            for a in actions {
                let was_open = state.status.is_open();
                if let Ok(next) = state.apply(a) {
                    prop_assert!(was_open, "a closed task moved");
                    state = next;
                }
                prop_assert_eq!(state.held_from.is_some(), state.status == OnHold);
                prop_assert_ne!(state.held_from, Some(OnHold));
            }
        }
    }
}

/// The ownership half of a task: every open task has an owner role and a due time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub owner_role: CareRole,
    pub due_at: chrono::DateTime<chrono::Utc>,
    pub assignee_member_id: Option<uuid::Uuid>,
}

/// Why ownership input was refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnershipError {
    #[error("owner_role is required")]
    MissingOwnerRole,
    #[error("owner_role {0} is not a care role")]
    UnknownOwnerRole(i32),
    #[error("due_at is required")]
    MissingDueTime,
}

impl OwnershipError {
    pub fn field(&self) -> &'static str {
        match self {
            Self::MissingOwnerRole | Self::UnknownOwnerRole(_) => "owner_role",
            Self::MissingDueTime => "due_at",
        }
    }
}

fn known_role(value: i32) -> Result<CareRole, OwnershipError> {
    match CareRole::try_from(value) {
        Ok(CareRole::Unspecified) => Err(OwnershipError::MissingOwnerRole),
        Ok(role) => Ok(role),
        Err(_) => Err(OwnershipError::UnknownOwnerRole(value)),
    }
}

impl Ownership {
    /// A new open loop: the owner role (a proto enum number) and the due time are both required.
    pub fn new(
        owner_role: i32,
        due_at: Option<chrono::DateTime<chrono::Utc>>,
        assignee_member_id: Option<uuid::Uuid>,
    ) -> Result<Ownership, OwnershipError> {
        Ok(Ownership {
            owner_role: known_role(owner_role)?,
            due_at: due_at.ok_or(OwnershipError::MissingDueTime)?,
            assignee_member_id,
        })
    }

    /// Reassigns: a new owner role replaces the old one, zero keeps it, an unknown number is refused;
    /// the assignee is replaced.
    pub fn reassign(
        &self,
        owner_role: i32,
        assignee_member_id: Option<uuid::Uuid>,
    ) -> Result<Ownership, OwnershipError> {
        let owner_role = if owner_role == 0 {
            self.owner_role
        } else {
            known_role(owner_role)?
        };
        Ok(Ownership {
            owner_role,
            due_at: self.due_at,
            assignee_member_id,
        })
    }
}

use careloop_proto::common::v1::CareRole;

#[cfg(test)]
mod ownership_tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Act(TaskAction),
        Reassign(i32, bool),
    }

    /// Any number a client could send: zero, known roles, unknown and negative numbers.
    fn role_number() -> impl Strategy<Value = i32> {
        prop_oneof![Just(0), 1i32..14, any::<i32>()]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            prop::sample::select(TaskAction::ALL.to_vec()).prop_map(Op::Act),
            (role_number(), any::<bool>()).prop_map(|(r, a)| Op::Reassign(r, a)),
        ]
    }

    #[test]
    fn a_task_without_an_owner_role_or_due_time_is_refused() {
        let now = Some(chrono::Utc::now());
        assert_eq!(
            Ownership::new(0, now, None),
            Err(OwnershipError::MissingOwnerRole)
        );
        assert_eq!(
            Ownership::new(999, now, None),
            Err(OwnershipError::UnknownOwnerRole(999))
        );
        assert_eq!(
            Ownership::new(3, None, None),
            Err(OwnershipError::MissingDueTime)
        );
        assert_eq!(
            Ownership::new(3, now, None).unwrap().owner_role,
            CareRole::Rn
        );
    }

    proptest! {
        #[test]
        fn no_sequence_of_operations_leaves_an_open_task_without_an_owner_role_or_due_time(
            create_role in role_number(),
            has_due in any::<bool>(),
            ops in prop::collection::vec(op(), 0..60),
        ) {
            let due = has_due.then(chrono::Utc::now);
            let Ok(mut owner) = Ownership::new(create_role, due, None) else {
                // Refused at creation: no task exists, so no open task lacks an owner.
                return Ok(());
            };
            let mut state = TaskState::new();
            for op in ops {
                match op {
                    Op::Act(a) => { if let Ok(next) = state.apply(a) { state = next; } }
                    Op::Reassign(r, assign) => {
                        if let Ok(next) = owner.reassign(r, assign.then(uuid::Uuid::now_v7)) { owner = next; }
                    }
                }
                if state.status.is_open() {
                    prop_assert_ne!(owner.owner_role, CareRole::Unspecified);
                    prop_assert!(CareRole::try_from(owner.owner_role as i32).is_ok());
                }
            }
        }
    }
}
