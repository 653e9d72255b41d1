//! Who may record a payer's decision, an extension of its review or an appeal decision: the payer
//! itself (its principal's
//! organization is the one the payer directory names for the request's payer), or a prior-auth
//! coordinator on the staff of the patient's managing organization, typing in a decision received
//! by phone or fax. Nobody else: a decision recorded by any writer would corrupt the decision clock
//! and the CMS-0057-F report.

use careloop_runtime::auth::{Principal, PrincipalKind};
use uuid::Uuid;

/// The role a coordinator's token carries.
pub const COORDINATOR_ROLE: &str = "prior_auth_coordinator";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Not this request's payer, nor a coordinator of the managing organization.
    Refused,
}

/// `payer_org`: the organization the directory names for the request's payer (if any);
/// `managing_staff`: whether plans says the caller is staff of the patient's managing organization.
pub fn may_record_decision(
    who: &Principal,
    payer_org: Option<Uuid>,
    managing_staff: bool,
) -> Verdict {
    let allowed = match who.kind {
        PrincipalKind::Service => true,
        PrincipalKind::Payer => payer_org == Some(who.org_id),
        PrincipalKind::Staff => managing_staff && who.roles.iter().any(|r| r == COORDINATOR_ROLE),
        PrincipalKind::Partner | PrincipalKind::Caregiver => false,
    };
    if allowed {
        Verdict::Allowed
    } else {
        Verdict::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(kind: PrincipalKind, org: Uuid, roles: &[&str]) -> Principal {
        Principal {
            issuer: "https://idp.example".into(),
            subject: "someone".into(),
            org_id: org,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            kind,
            via: None,
        }
    }

    #[test]
    fn the_requests_payer_and_the_managing_coordinator_record_decisions_and_no_one_else() {
        let acme = Uuid::from_u128(7);
        let other_payer = Uuid::from_u128(8);
        let hospital = Uuid::from_u128(1);
        use Verdict::*;
        let cases = [
            (
                who(PrincipalKind::Payer, acme, &[]),
                Some(acme),
                false,
                Allowed,
            ),
            (
                who(PrincipalKind::Payer, other_payer, &[]),
                Some(acme),
                false,
                Refused,
            ),
            (who(PrincipalKind::Payer, acme, &[]), None, false, Refused),
            (
                who(PrincipalKind::Staff, hospital, &[COORDINATOR_ROLE]),
                Some(acme),
                true,
                Allowed,
            ),
            (
                who(PrincipalKind::Staff, hospital, &["rn"]),
                Some(acme),
                true,
                Refused,
            ),
            (
                who(PrincipalKind::Staff, hospital, &[COORDINATOR_ROLE]),
                Some(acme),
                false,
                Refused,
            ),
            (
                who(PrincipalKind::Partner, hospital, &[COORDINATOR_ROLE]),
                Some(acme),
                true,
                Refused,
            ),
            (
                who(PrincipalKind::Caregiver, hospital, &[]),
                Some(acme),
                true,
                Refused,
            ),
            (Principal::service("prior-auth-pas"), None, false, Allowed),
        ];
        for (principal, payer_org, managing, expected) in cases {
            assert_eq!(
                may_record_decision(&principal, payer_org, managing),
                expected,
                "{:?} {:?} roles {:?}",
                principal.kind,
                principal.org_id,
                principal.roles
            );
        }
    }
}
