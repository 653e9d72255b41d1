//! Results go to the role responsible for that kind of order in that setting, with a backup role,
//! never simply to whoever ordered: the orderer may be off shift or the hospitalist of a discharged
//! patient. Critical results must be acknowledged fastest.

use super::order::Kind;
use careloop_proto::common::v1::CareRole;
use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Inpatient,
    Outpatient,
    Emergency,
    Home,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Normal,
    Abnormal,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub role: CareRole,
    pub backup: CareRole,
    /// When acknowledgement is due; normal results need none and are not open loops.
    pub due_at: Option<DateTime<Utc>>,
}

/// Acknowledgement windows by flag.
#[derive(Debug, Clone, Copy)]
pub struct AckWindows {
    pub critical: Duration,
    pub abnormal: Duration,
}

impl Default for AckWindows {
    fn default() -> Self {
        Self {
            critical: Duration::hours(1),
            abnormal: Duration::hours(72),
        }
    }
}

/// The responsible and backup roles for a result. None for orders that have no results.
pub fn route(
    kind: Kind,
    setting: Setting,
    flag: Flag,
    received: DateTime<Utc>,
    windows: AckWindows,
) -> Option<Route> {
    if !kind.has_results() {
        return None;
    }
    let (role, backup) = match setting {
        Setting::Inpatient | Setting::Emergency => (CareRole::Hospitalist, CareRole::Rn),
        Setting::Outpatient => (CareRole::Pcp, CareRole::Rn),
        Setting::Home => (CareRole::Pcp, CareRole::HomeHealth),
    };
    let due_at = match flag {
        Flag::Normal => None,
        Flag::Abnormal => Some(received + windows.abnormal),
        Flag::Critical => Some(received + windows.critical),
    };
    Some(Route {
        role,
        backup,
        due_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    #[test]
    fn an_outpatient_lab_goes_to_the_pcp_with_the_nurse_as_backup() {
        let r = route(
            Kind::Lab,
            Setting::Outpatient,
            Flag::Abnormal,
            at(),
            AckWindows::default(),
        )
        .unwrap();
        assert_eq!((r.role, r.backup), (CareRole::Pcp, CareRole::Rn));
        assert_eq!(r.due_at, Some(at() + Duration::hours(72)));
    }

    #[test]
    fn an_inpatient_critical_result_goes_to_the_hospitalist_and_is_due_within_the_hour() {
        let r = route(
            Kind::Imaging,
            Setting::Inpatient,
            Flag::Critical,
            at(),
            AckWindows::default(),
        )
        .unwrap();
        assert_eq!((r.role, r.backup), (CareRole::Hospitalist, CareRole::Rn));
        assert_eq!(r.due_at, Some(at() + Duration::hours(1)));
    }

    #[test]
    fn a_home_result_is_backed_up_by_home_health_and_normal_results_need_no_acknowledgement() {
        let r = route(
            Kind::Lab,
            Setting::Home,
            Flag::Normal,
            at(),
            AckWindows::default(),
        )
        .unwrap();
        assert_eq!(r.backup, CareRole::HomeHealth);
        assert_eq!(r.due_at, None);
    }

    #[test]
    fn transport_has_no_results_to_route() {
        assert!(
            route(
                Kind::Transport,
                Setting::Home,
                Flag::Normal,
                at(),
                AckWindows::default()
            )
            .is_none()
        );
    }
}
