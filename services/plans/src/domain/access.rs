//! Who may read or write a patient's plan, and why. Roles and organizations decide, never a
//! person's inbox: the managing organization and care-team organizations for staff, a care-team
//! membership for a named person, and otherwise an active consent within its period.

use careloop_runtime::auth::{Principal, PrincipalKind};
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    Denied,
    InternalService,
    ManagingOrganization,
    CareTeamOrganization,
    CareTeamMember,
    Consent(Uuid),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub can_read: bool,
    pub can_write: bool,
    pub basis: Basis,
}

#[derive(Debug, Clone)]
pub struct TeamFact {
    pub member_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub subject: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ConsentFact {
    pub id: Uuid,
    pub grantee_member_id: Option<Uuid>,
    pub grantee_org_id: Option<Uuid>,
    pub write: bool,
    pub active: bool,
    pub period_start: DateTime<Utc>,
    pub period_end: Option<DateTime<Utc>>,
}

/// What the store knows about a patient, enough to decide access.
#[derive(Debug, Clone)]
pub struct Facts {
    pub managing_org_id: Uuid,
    pub team: Vec<TeamFact>,
    pub consents: Vec<ConsentFact>,
}

const DENIED: Decision = Decision {
    can_read: false,
    can_write: false,
    basis: Basis::Denied,
};

pub fn decide(principal: &Principal, facts: &Facts, now: DateTime<Utc>) -> Decision {
    let full = |basis| Decision {
        can_read: true,
        can_write: true,
        basis,
    };
    let institutional = matches!(
        principal.kind,
        PrincipalKind::Staff | PrincipalKind::Partner
    );
    if principal.kind == PrincipalKind::Service {
        return full(Basis::InternalService);
    }
    if institutional && principal.org_id == facts.managing_org_id {
        return full(Basis::ManagingOrganization);
    }
    if institutional
        && facts
            .team
            .iter()
            .any(|m| m.organization_id == Some(principal.org_id))
    {
        return full(Basis::CareTeamOrganization);
    }
    let own_memberships: Vec<Uuid> = facts
        .team
        .iter()
        .filter(|m| m.subject.as_deref() == Some(principal.subject.as_str()))
        .map(|m| m.member_id)
        .collect();
    // Family caregivers and payers are members or contacts, but act only under consent.
    if institutional && !own_memberships.is_empty() {
        return full(Basis::CareTeamMember);
    }
    let consent = facts.consents.iter().filter(|c| {
        c.active
            && c.period_start <= now
            && c.period_end.is_none_or(|end| now < end)
            && (c.grantee_org_id == Some(principal.org_id)
                || c.grantee_member_id
                    .is_some_and(|m| own_memberships.contains(&m)))
    });
    // Prefer a consent that allows writing when several apply.
    let best = consent.max_by_key(|c| c.write);
    match best {
        Some(c) => Decision {
            can_read: true,
            can_write: c.write,
            basis: Basis::Consent(c.id),
        },
        None => DENIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn principal(kind: PrincipalKind, org: Uuid, subject: &str) -> Principal {
        Principal {
            issuer: "https://idp.example".into(),
            subject: subject.into(),
            org_id: org,
            roles: vec![],
            kind,
            via: None,
        }
    }

    fn facts(managing: Uuid) -> Facts {
        Facts {
            managing_org_id: managing,
            team: vec![],
            consents: vec![],
        }
    }

    #[test]
    fn staff_of_an_unrelated_organization_without_consent_are_denied() {
        let f = facts(Uuid::now_v7());
        let d = decide(
            &principal(PrincipalKind::Staff, Uuid::now_v7(), "x"),
            &f,
            Utc::now(),
        );
        assert_eq!(d, DENIED);
    }

    #[test]
    fn staff_of_a_care_team_organization_may_read_and_write() {
        let partner_org = Uuid::now_v7();
        let mut f = facts(Uuid::now_v7());
        f.team.push(TeamFact {
            member_id: Uuid::now_v7(),
            organization_id: Some(partner_org),
            subject: None,
        });
        let d = decide(
            &principal(PrincipalKind::Partner, partner_org, "x"),
            &f,
            Utc::now(),
        );
        assert_eq!(d.basis, Basis::CareTeamOrganization);
        assert!(d.can_write);
    }

    #[test]
    fn a_family_caregiver_reads_only_under_an_active_consent() {
        let family_org = Uuid::now_v7();
        let member = Uuid::now_v7();
        let mut f = facts(Uuid::now_v7());
        f.team.push(TeamFact {
            member_id: member,
            organization_id: Some(family_org),
            subject: Some("daughter".into()),
        });
        let who = principal(PrincipalKind::Caregiver, family_org, "daughter");
        assert_eq!(decide(&who, &f, Utc::now()), DENIED);
        let consent = Uuid::now_v7();
        f.consents.push(ConsentFact {
            id: consent,
            grantee_member_id: Some(member),
            grantee_org_id: None,
            write: false,
            active: true,
            period_start: Utc::now() - Duration::days(1),
            period_end: None,
        });
        let d = decide(&who, &f, Utc::now());
        assert_eq!(
            (d.can_read, d.can_write, d.basis),
            (true, false, Basis::Consent(consent))
        );
    }

    #[test]
    fn an_expired_or_revoked_consent_grants_nothing() {
        let payer_org = Uuid::now_v7();
        let mut f = facts(Uuid::now_v7());
        let now = Utc::now();
        f.consents.push(ConsentFact {
            id: Uuid::now_v7(),
            grantee_member_id: None,
            grantee_org_id: Some(payer_org),
            write: true,
            active: true,
            period_start: now - Duration::days(10),
            period_end: Some(now - Duration::days(1)),
        });
        f.consents.push(ConsentFact {
            id: Uuid::now_v7(),
            grantee_member_id: None,
            grantee_org_id: Some(payer_org),
            write: true,
            active: false,
            period_start: now - Duration::days(10),
            period_end: None,
        });
        assert_eq!(
            decide(&principal(PrincipalKind::Payer, payer_org, "p"), &f, now),
            DENIED
        );
    }

    #[test]
    fn internal_services_have_full_access() {
        let d = decide(
            &principal(PrincipalKind::Service, Uuid::now_v7(), "gw"),
            &facts(Uuid::now_v7()),
            Utc::now(),
        );
        assert_eq!(d.basis, Basis::InternalService);
    }
}
