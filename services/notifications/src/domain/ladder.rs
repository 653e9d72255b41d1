//! Escalation ladders: a rule names each rung's role (fixed, or the role an event field names) and
//! window; against an event the ladder resolves to concrete roles. Rungs whose field the event
//! leaves empty are skipped, and a rung repeating the role before it is merged into it (its window
//! added), so an item never "escalates" to the inbox it is already in.

use careloop_proto::common::v1::CareRole;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A rung as a rule stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRung {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// "plan_lead" or "care_team" (the latter for `also` targets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special: Option<String>,
    pub window_minutes: i32,
}

/// The patient's care team as the events told it: (role, the member's organization), and which is
/// the lead.
#[derive(Debug, Clone, Default)]
pub struct Team {
    pub lead: Option<(i32, Option<uuid::Uuid>)>,
    pub members: Vec<(i32, Option<uuid::Uuid>)>,
}

/// A rule's `also` targets against an event and the team: (role, organization when not the
/// event's), each role once.
pub fn resolve_also(
    targets: &[RuleRung],
    fields: &BTreeMap<String, String>,
    team: &Team,
) -> Vec<(i32, Option<uuid::Uuid>)> {
    let mut out: Vec<(i32, Option<uuid::Uuid>)> = Vec::new();
    for t in targets {
        let found: Vec<(i32, Option<uuid::Uuid>)> = match t.special.as_deref() {
            Some("plan_lead") => team.lead.into_iter().collect(),
            Some("care_team") => team.members.clone(),
            _ => resolve(std::slice::from_ref(t), fields, team)
                .into_iter()
                .map(|r| (r.role, None))
                .collect(),
        };
        for (role, org) in found {
            if role != CareRole::Unspecified as i32 && !out.iter().any(|(r, _)| *r == role) {
                out.push((role, org));
            }
        }
    }
    out
}

/// A rung as an item holds it: a concrete role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rung {
    pub role: i32,
    pub window_minutes: i32,
}

/// A role the typed-field reader spelled ("rn", "prior_auth_coordinator").
pub fn role_named(name: &str) -> Option<CareRole> {
    CareRole::from_str_name(&format!("CARE_ROLE_{}", name.to_ascii_uppercase()))
        .filter(|r| *r != CareRole::Unspecified)
}

/// The role's name as tokens and the typed-field reader spell it.
pub fn role_name(role: CareRole) -> String {
    careloop_runtime::events::fields::care_role_name(role as i32)
}

/// The ladder against one event's fields.
pub fn resolve(rule: &[RuleRung], fields: &BTreeMap<String, String>, team: &Team) -> Vec<Rung> {
    let mut rungs: Vec<Rung> = Vec::new();
    for rung in rule {
        let role = match (&rung.role, &rung.field, rung.special.as_deref()) {
            (Some(role), _, _) => CareRole::try_from(*role)
                .ok()
                .filter(|r| *r != CareRole::Unspecified),
            (None, Some(field), _) => fields.get(field).and_then(|v| role_named(v)),
            (None, None, Some("plan_lead")) => team
                .lead
                .and_then(|(r, _)| CareRole::try_from(r).ok())
                .filter(|r| *r != CareRole::Unspecified),
            _ => None,
        };
        let Some(role) = role else { continue };
        match rungs.last_mut() {
            Some(last) if last.role == role as i32 => {
                last.window_minutes = last.window_minutes.saturating_add(rung.window_minutes);
            }
            _ => rungs.push(Rung {
                role: role as i32,
                window_minutes: rung.window_minutes,
            }),
        }
    }
    rungs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn by_field(field: &str, window_minutes: i32) -> RuleRung {
        RuleRung {
            role: None,
            field: Some(field.into()),
            special: None,
            window_minutes,
        }
    }

    #[test]
    fn a_critical_result_ladder_goes_to_the_responsible_role_then_its_backup_then_the_hospitalist()
    {
        let rule = vec![
            by_field("to_role", 15),
            by_field("backup_role", 15),
            RuleRung {
                role: Some(CareRole::Hospitalist as i32),
                field: None,
                special: None,
                window_minutes: 30,
            },
        ];
        let rungs = resolve(
            &rule,
            &fields(&[("to_role", "pcp"), ("backup_role", "rn")]),
            &Team::default(),
        );
        let roles: Vec<i32> = rungs.iter().map(|r| r.role).collect();
        assert_eq!(
            roles,
            vec![
                CareRole::Pcp as i32,
                CareRole::Rn as i32,
                CareRole::Hospitalist as i32
            ]
        );
    }

    #[test]
    fn an_empty_backup_is_skipped_and_a_repeated_role_merges_its_window() {
        let rule = vec![
            by_field("owner_role", 60),
            by_field("backup_role", 60),
            RuleRung {
                role: Some(CareRole::Rn as i32),
                field: None,
                special: None,
                window_minutes: 30,
            },
        ];
        let rungs = resolve(
            &rule,
            &fields(&[("owner_role", "rn"), ("backup_role", "unspecified")]),
            &Team::default(),
        );
        assert_eq!(
            rungs,
            vec![Rung {
                role: CareRole::Rn as i32,
                window_minutes: 90
            }]
        );
    }

    #[test]
    fn the_plan_lead_and_the_team_resolve_from_what_the_events_told() {
        let org = uuid::Uuid::now_v7();
        let team = Team {
            lead: Some((CareRole::Pcp as i32, None)),
            members: vec![
                (CareRole::Pcp as i32, None),
                (CareRole::HomeHealth as i32, Some(org)),
                (CareRole::Pcp as i32, Some(org)),
            ],
        };
        let lead = RuleRung {
            role: None,
            field: None,
            special: Some("plan_lead".into()),
            window_minutes: 60,
        };
        assert_eq!(
            resolve(std::slice::from_ref(&lead), &fields(&[]), &team)[0].role,
            CareRole::Pcp as i32
        );
        assert!(resolve(std::slice::from_ref(&lead), &fields(&[]), &Team::default()).is_empty());
        let everyone = RuleRung {
            special: Some("care_team".into()),
            ..lead
        };
        assert_eq!(
            resolve_also(&[everyone], &fields(&[]), &team),
            vec![
                (CareRole::Pcp as i32, None),
                (CareRole::HomeHealth as i32, Some(org))
            ],
            "each role once, in its member's organization"
        );
    }

    #[test]
    fn role_names_read_back_as_roles() {
        for role in [CareRole::Rn, CareRole::PriorAuthCoordinator, CareRole::Pcp] {
            assert_eq!(role_named(&role_name(role)), Some(role));
        }
        assert_eq!(role_named("unspecified"), None);
        assert_eq!(role_named("surgeon"), None);
    }
}
