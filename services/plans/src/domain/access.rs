//! Who may read or write a patient's plan, and why. Roles and organizations decide, never a
//! person's inbox: the managing organization and care-team organizations for staff and partners,
//! and otherwise an active consent within its period (to an organization, or to a care-team person
//! matched on organization, subject and, when recorded, issuer; never the subject alone). Family
//! caregivers and payers never write clinical data, whatever a consent says; the care team and the
//! consents are changed only by the managing organization's staff or the plan lead's organization.

use careloop_runtime::auth::{Principal, PrincipalKind};
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    Denied,
    InternalService,
    ManagingOrganization,
    CareTeamOrganization,
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
    pub subject_issuer: Option<String>,
    pub is_lead: bool,
}

impl TeamFact {
    /// Whether `principal` is this person: same organization and subject, and the same issuer when
    /// one was recorded.
    fn is(&self, principal: &Principal) -> bool {
        self.organization_id == Some(principal.org_id)
            && self.subject.as_deref() == Some(principal.subject.as_str())
            && self
                .subject_issuer
                .as_deref()
                .is_none_or(|issuer| issuer == principal.issuer)
    }
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
        .filter(|m| m.is(principal))
        .map(|m| m.member_id)
        .collect();
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
    // Family caregivers and payers read under consent; clinical data is written by care teams.
    let may_write_clinical = !matches!(
        principal.kind,
        PrincipalKind::Caregiver | PrincipalKind::Payer
    );
    match best {
        Some(c) => Decision {
            can_read: true,
            can_write: c.write && may_write_clinical,
            basis: Basis::Consent(c.id),
        },
        None => DENIED,
    }
}

/// Whether `principal` may change the care team or the consents: staff of the managing
/// organization or of the plan lead's organization (and CareLoop services). A consent holder never
/// delegates onward, and a partner on the team does not add its affiliates.
pub fn may_change_team(principal: &Principal, facts: &Facts) -> bool {
    match principal.kind {
        PrincipalKind::Service => true,
        PrincipalKind::Staff => {
            principal.org_id == facts.managing_org_id
                || facts
                    .team
                    .iter()
                    .any(|m| m.is_lead && m.organization_id == Some(principal.org_id))
        }
        _ => false,
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
            subject_issuer: None,
            is_lead: false,
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
            subject_issuer: None,
            is_lead: false,
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

    fn person(org: Uuid, subject: &str, issuer: Option<&str>, is_lead: bool) -> TeamFact {
        TeamFact {
            member_id: Uuid::now_v7(),
            organization_id: Some(org),
            subject: Some(subject.into()),
            subject_issuer: issuer.map(str::to_owned),
            is_lead,
        }
    }

    fn consent_to_member(member: Uuid, write: bool) -> ConsentFact {
        ConsentFact {
            id: Uuid::now_v7(),
            grantee_member_id: Some(member),
            grantee_org_id: None,
            write,
            active: true,
            period_start: Utc::now() - Duration::days(1),
            period_end: None,
        }
    }

    #[test]
    fn the_same_subject_at_another_organization_is_not_the_member() {
        let family_org = Uuid::now_v7();
        let mut f = facts(Uuid::now_v7());
        let daughter = person(family_org, "daughter", None, false);
        f.consents
            .push(consent_to_member(daughter.member_id, false));
        f.team.push(daughter);
        let impostor = principal(PrincipalKind::Caregiver, Uuid::now_v7(), "daughter");
        assert_eq!(decide(&impostor, &f, Utc::now()), DENIED);
        let staff_impostor = principal(PrincipalKind::Staff, Uuid::now_v7(), "daughter");
        assert_eq!(decide(&staff_impostor, &f, Utc::now()), DENIED);
        let real = principal(PrincipalKind::Caregiver, family_org, "daughter");
        assert!(decide(&real, &f, Utc::now()).can_read);
    }

    #[test]
    fn a_recorded_issuer_must_match_too() {
        let family_org = Uuid::now_v7();
        let mut f = facts(Uuid::now_v7());
        let daughter = person(family_org, "daughter", Some("https://family.idp"), false);
        f.consents
            .push(consent_to_member(daughter.member_id, false));
        f.team.push(daughter);
        // `principal` signs with https://idp.example: the same org and subject from another IdP.
        let other_idp = principal(PrincipalKind::Caregiver, family_org, "daughter");
        assert_eq!(decide(&other_idp, &f, Utc::now()), DENIED);
        let right_idp = Principal {
            issuer: "https://family.idp".into(),
            ..other_idp
        };
        assert!(decide(&right_idp, &f, Utc::now()).can_read);
    }

    #[test]
    fn caregivers_and_payers_never_write_even_under_a_read_write_consent() {
        let family_org = Uuid::now_v7();
        let payer_org = Uuid::now_v7();
        let mut f = facts(Uuid::now_v7());
        let son = person(family_org, "son", None, false);
        f.consents.push(consent_to_member(son.member_id, true));
        f.team.push(son);
        f.consents.push(ConsentFact {
            grantee_member_id: None,
            grantee_org_id: Some(payer_org),
            ..consent_to_member(Uuid::nil(), true)
        });
        let son = decide(
            &principal(PrincipalKind::Caregiver, family_org, "son"),
            &f,
            Utc::now(),
        );
        let payer = decide(
            &principal(PrincipalKind::Payer, payer_org, "p"),
            &f,
            Utc::now(),
        );
        assert!(son.can_read && !son.can_write);
        assert!(payer.can_read && !payer.can_write);
    }

    #[test]
    fn only_the_managing_or_lead_organizations_staff_change_the_team() {
        let managing = Uuid::now_v7();
        let lead_org = Uuid::now_v7();
        let partner_org = Uuid::now_v7();
        let consent_org = Uuid::now_v7();
        let mut f = facts(managing);
        f.team.push(person(lead_org, "dr-lead", None, true));
        f.team.push(TeamFact {
            organization_id: Some(partner_org),
            subject: None,
            ..person(partner_org, "x", None, false)
        });
        f.consents.push(ConsentFact {
            grantee_member_id: None,
            grantee_org_id: Some(consent_org),
            ..consent_to_member(Uuid::nil(), true)
        });
        let may = |kind, org| may_change_team(&principal(kind, org, "someone"), &f);
        assert!(may(PrincipalKind::Staff, managing));
        assert!(may(PrincipalKind::Staff, lead_org));
        assert!(may(PrincipalKind::Service, Uuid::nil()));
        assert!(
            !may(PrincipalKind::Staff, partner_org),
            "a team organization that is not the lead's"
        );
        assert!(
            !may(PrincipalKind::Partner, managing),
            "a partner, even of the managing org"
        );
        assert!(
            !may(PrincipalKind::Staff, consent_org),
            "a consent holder never delegates"
        );
        assert!(!may(PrincipalKind::Caregiver, managing));
    }
}
