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
    pub window_minutes: i32,
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
    role.as_str_name()
        .trim_start_matches("CARE_ROLE_")
        .to_ascii_lowercase()
}

/// The ladder against one event's fields.
pub fn resolve(rule: &[RuleRung], fields: &BTreeMap<String, String>) -> Vec<Rung> {
    let mut rungs: Vec<Rung> = Vec::new();
    for rung in rule {
        let role = match (&rung.role, &rung.field) {
            (Some(role), _) => CareRole::try_from(*role)
                .ok()
                .filter(|r| *r != CareRole::Unspecified),
            (None, Some(field)) => fields.get(field).and_then(|v| role_named(v)),
            (None, None) => None,
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
                window_minutes: 30,
            },
        ];
        let rungs = resolve(&rule, &fields(&[("to_role", "pcp"), ("backup_role", "rn")]));
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
                window_minutes: 30,
            },
        ];
        let rungs = resolve(
            &rule,
            &fields(&[("owner_role", "rn"), ("backup_role", "unspecified")]),
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
    fn role_names_read_back_as_roles() {
        for role in [CareRole::Rn, CareRole::PriorAuthCoordinator, CareRole::Pcp] {
            assert_eq!(role_named(&role_name(role)), Some(role));
        }
        assert_eq!(role_named("unspecified"), None);
        assert_eq!(role_named("surgeon"), None);
    }
}
