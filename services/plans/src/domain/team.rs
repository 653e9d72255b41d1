//! The care team's lead rule: exactly one lead at all times. A new lead takes over from the old one;
//! the lead cannot be removed or demoted until someone else is made lead.

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: Uuid,
    pub is_lead: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeamError {
    #[error("care team member not found")]
    NoSuchMember,
    #[error("the care team lead cannot be removed: make another member lead first")]
    RemovingLead,
}

/// The active members of one patient's care team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    members: Vec<Member>,
}

impl Team {
    /// A team always starts with its lead.
    pub fn with_lead(lead: Uuid) -> Self {
        Self {
            members: vec![Member {
                id: lead,
                is_lead: true,
            }],
        }
    }

    /// Rebuilds a team from stored rows; `None` when the rows break the one-lead rule.
    pub fn from_members(members: Vec<Member>) -> Option<Self> {
        let team = Self { members };
        (team.lead_count() == 1).then_some(team)
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn lead(&self) -> Uuid {
        self.members
            .iter()
            .find(|m| m.is_lead)
            .map(|m| m.id)
            .expect("a team always has a lead")
    }

    fn lead_count(&self) -> usize {
        self.members.iter().filter(|m| m.is_lead).count()
    }

    /// Adds a member; when `make_lead`, returns the previous lead, who is no longer lead.
    pub fn add(&mut self, id: Uuid, make_lead: bool) -> Option<Uuid> {
        let previous = make_lead.then(|| self.hand_lead_over());
        self.members.push(Member {
            id,
            is_lead: make_lead,
        });
        debug_assert_eq!(self.lead_count(), 1);
        previous
    }

    /// Makes `id` the lead; returns the previous lead when it changed.
    pub fn make_lead(&mut self, id: Uuid) -> Result<Option<Uuid>, TeamError> {
        if !self.members.iter().any(|m| m.id == id) {
            return Err(TeamError::NoSuchMember);
        }
        if self.lead() == id {
            return Ok(None);
        }
        let previous = self.hand_lead_over();
        if let Some(m) = self.members.iter_mut().find(|m| m.id == id) {
            m.is_lead = true;
        }
        debug_assert_eq!(self.lead_count(), 1);
        Ok(Some(previous))
    }

    pub fn remove(&mut self, id: Uuid) -> Result<(), TeamError> {
        let member = self
            .members
            .iter()
            .find(|m| m.id == id)
            .ok_or(TeamError::NoSuchMember)?;
        if member.is_lead {
            return Err(TeamError::RemovingLead);
        }
        self.members.retain(|m| m.id != id);
        Ok(())
    }

    fn hand_lead_over(&mut self) -> Uuid {
        let previous = self.lead();
        for m in &mut self.members {
            m.is_lead = false;
        }
        previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_new_lead_takes_over_from_the_old_one() {
        let first = Uuid::now_v7();
        let second = Uuid::now_v7();
        let mut team = Team::with_lead(first);
        assert_eq!(team.add(second, true), Some(first));
        assert_eq!(team.lead(), second);
    }

    #[test]
    fn the_lead_cannot_be_removed_until_someone_else_leads() {
        let first = Uuid::now_v7();
        let second = Uuid::now_v7();
        let mut team = Team::with_lead(first);
        team.add(second, false);
        assert_eq!(team.remove(first), Err(TeamError::RemovingLead));
        team.make_lead(second).unwrap();
        assert_eq!(team.remove(first), Ok(()));
        assert_eq!(team.lead(), second);
    }

    #[test]
    fn stored_rows_with_two_leads_are_rejected() {
        let rows = vec![
            Member {
                id: Uuid::now_v7(),
                is_lead: true,
            },
            Member {
                id: Uuid::now_v7(),
                is_lead: true,
            },
        ];
        assert!(Team::from_members(rows).is_none());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(bool),
        MakeLead(usize),
        Remove(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<bool>().prop_map(Op::Add),
            (0usize..20).prop_map(Op::MakeLead),
            (0usize..20).prop_map(Op::Remove),
        ]
    }

    proptest! {
        #[test]
        fn no_sequence_of_team_edits_leaves_a_plan_without_exactly_one_lead(ops in prop::collection::vec(op(), 0..80)) {
            let mut team = Team::with_lead(Uuid::now_v7());
            for op in ops {
                let ids: Vec<Uuid> = team.members().iter().map(|m| m.id).collect();
                match op {
                    Op::Add(lead) => { team.add(Uuid::now_v7(), lead); }
                    Op::MakeLead(i) => { let _ = team.make_lead(ids[i % ids.len()]); }
                    Op::Remove(i) => { let _ = team.remove(ids[i % ids.len()]); }
                }
                prop_assert_eq!(team.members().iter().filter(|m| m.is_lead).count(), 1);
            }
        }
    }
}
