//! Patients (a minimal registry), consents and the access check the gateway asks.

use super::{AuthorizeWrite, PlansApi, convert};
use crate::domain::access::{self, Basis};
use crate::store::{self, ConsentRow, PatientRow};
use careloop_proto::events::v1::{ConsentGranted, ConsentRevoked, PatientCreated, event::Payload};
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::{Principal, PrincipalKind};
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::time::now;
use careloop_runtime::validate::{self as v, MAX_SHORT, MAX_TEXT};
use uuid::Uuid;

impl PlansApi {
    pub(super) async fn create_patient(
        &self,
        who: &Principal,
        req: CreatePatientRequest,
    ) -> ApiResult<CreatePatientResponse> {
        let birth_date = v::date("birth_date", &req.birth_date)?;
        if birth_date > now().date_naive() {
            return Err(ApiError::invalid("birth_date", "must not be in the future"));
        }
        let row = PatientRow {
            id: Uuid::now_v7(),
            mrn: v::text("mrn", &req.mrn, 64)?,
            given_name: v::text("given_name", &req.given_name, MAX_SHORT)?,
            family_name: v::text("family_name", &req.family_name, MAX_SHORT)?,
            birth_date,
            managing_org_id: v::uuid("managing_org_id", &req.managing_org_id)?,
            created_at: now(),
        };
        let registers = who.kind == PrincipalKind::Service
            || (who.kind == PrincipalKind::Staff && who.org_id == row.managing_org_id);
        if !registers {
            return Err(ApiError::PermissionDenied(
                "only the managing organization registers its patients",
            ));
        }
        let mut w =
            careloop_runtime::begin_write!(self.pool, super::SOURCE, "CreatePatient", who, req);
        store::insert_patient(w.conn(), &row).await?;
        let payload = Payload::PatientCreated(PatientCreated {
            managing_org_id: row.managing_org_id.to_string(),
        });
        w.emit(row.id, row.id, 1, payload).await?;
        let id = row.id;
        w.finish(
            id,
            id,
            CreatePatientResponse {
                patient: Some(convert::patient(row)),
            },
        )
        .await
    }

    pub(super) async fn get_patient(
        &self,
        who: &Principal,
        req: GetPatientRequest,
    ) -> ApiResult<GetPatientResponse> {
        let id = v::uuid("patient_id", &req.patient_id)?;
        self.read_access(who, "GetPatient", id).await?;
        let mut conn = self.pool.acquire().await?;
        let row = store::patient(&mut conn, id).await?;
        Ok(GetPatientResponse {
            patient: Some(convert::patient(row)),
        })
    }

    pub(super) async fn find_patient_by_mrn(
        &self,
        who: &Principal,
        req: FindPatientByMrnRequest,
    ) -> ApiResult<FindPatientByMrnResponse> {
        let org = v::uuid("managing_org_id", &req.managing_org_id)?;
        let mrn = v::text("mrn", &req.mrn, 64)?;
        // Looking up by MRN is for the managing organization (and internal services): anyone else
        // could otherwise probe which MRNs exist.
        if who.kind != PrincipalKind::Service && who.org_id != org {
            return Err(ApiError::PermissionDenied(
                "only the managing organization looks patients up by mrn",
            ));
        }
        let row = {
            let mut conn = self.pool.acquire().await?;
            store::patient_by_mrn(&mut conn, org, &mrn).await?
        };
        self.read_access(who, "FindPatientByMrn", row.id).await?;
        Ok(FindPatientByMrnResponse {
            patient: Some(convert::patient(row)),
        })
    }

    pub(super) async fn grant_consent(
        &self,
        who: &Principal,
        req: GrantConsentRequest,
    ) -> ApiResult<GrantConsentResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let grantee_member_id = v::optional_uuid("grantee_member_id", &req.grantee_member_id)?;
        let grantee_org_id = v::optional_uuid("grantee_org_id", &req.grantee_org_id)?;
        if grantee_member_id.is_some() == grantee_org_id.is_some() {
            return Err(ApiError::invalid(
                "grantee_member_id",
                "give exactly one of grantee_member_id and grantee_org_id",
            ));
        }
        let purpose = v::enum_value::<ConsentPurpose>("purpose", req.purpose)?;
        let scope = v::enum_value::<ConsentScope>("scope", req.scope)?;
        let period_start =
            v::optional_timestamp("period_start", req.period_start.as_ref())?.unwrap_or_else(now);
        let period_end = v::optional_timestamp("period_end", req.period_end.as_ref())?;
        if period_end.is_some_and(|end| end <= period_start) {
            return Err(ApiError::invalid(
                "period_end",
                "must be after period_start",
            ));
        }
        let (mut w, ()) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "GrantConsent",
            who,
            req,
            w => { w.authorize_team_change(self, patient_id).await? }
        );
        if let Some(member) = grantee_member_id
            && !store::is_active_member(w.conn(), patient_id, member).await?
        {
            return Err(ApiError::NotFound("care team member"));
        }
        let row = ConsentRow {
            id: Uuid::now_v7(),
            patient_id,
            grantee_member_id,
            grantee_org_id,
            purpose: purpose as i32,
            scope: scope as i32,
            period_start,
            period_end,
            status: "active".into(),
            revoked_at: None,
            revoke_reason: None,
            granted_by: who.subject.clone(),
            granted_at: now(),
            version: 1,
        };
        store::insert_consent(w.conn(), &row).await?;
        let payload = Payload::ConsentGranted(ConsentGranted {
            consent_id: row.id.to_string(),
            grantee_member_id: req.grantee_member_id.clone(),
            grantee_org_id: req.grantee_org_id.clone(),
            purpose: purpose as i32,
            scope: scope as i32,
        });
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, row.id, 1, payload).await?;
        let id = row.id;
        w.finish(
            patient_id,
            id,
            GrantConsentResponse {
                consent: Some(convert::consent(row)),
            },
        )
        .await
    }

    pub(super) async fn revoke_consent(
        &self,
        who: &Principal,
        req: RevokeConsentRequest,
    ) -> ApiResult<RevokeConsentResponse> {
        let id = v::uuid("consent_id", &req.consent_id)?;
        let version = v::expected_version(req.expected_version)?;
        let reason = v::text("reason", &req.reason, MAX_TEXT)?;
        let (mut w, _) = careloop_runtime::begin_write!(
            self.pool,
            super::SOURCE,
            "RevokeConsent",
            who,
            req,
            w => {
                let patient_id = store::patient_of(w.conn(), store::Owned::Consent, id).await?;
                w.authorize_team_change(self, patient_id).await?;
                patient_id
            }
        );
        let mut row = store::consent_for_update(w.conn(), id).await?;
        ApiError::ensure_version(row.version, version)?;
        if row.status != "active" {
            return Err(ApiError::transition("consent", &row.status, "revoked"));
        }
        let at = now();
        store::revoke_consent(w.conn(), id, at, &reason).await?;
        row.status = "revoked".into();
        row.revoked_at = Some(at);
        row.revoke_reason = Some(reason);
        row.version += 1;
        let payload = Payload::ConsentRevoked(ConsentRevoked {
            consent_id: id.to_string(),
        });
        let patient_id = row.patient_id;
        super::managed_by_owner(&mut w, patient_id).await?;
        w.emit(patient_id, id, row.version, payload).await?;
        w.finish(
            patient_id,
            id,
            RevokeConsentResponse {
                consent: Some(convert::consent(row)),
            },
        )
        .await
    }

    pub(super) async fn list_consents(
        &self,
        who: &Principal,
        req: ListConsentsRequest,
    ) -> ApiResult<ListConsentsResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        let limit = careloop_runtime::paging::page_size(req.page_size)?;
        let after = careloop_runtime::paging::decode(&req.page_token)?;
        self.read_access(who, "ListConsents", patient_id).await?;
        let mut conn = self.pool.acquire().await?;
        let rows = store::consents_page(&mut conn, patient_id, after, limit + 1).await?;
        let (rows, next_page_token) =
            careloop_runtime::paging::cut(rows, limit, |r| careloop_runtime::paging::Cursor {
                at: r.granted_at,
                id: r.id,
            });
        Ok(ListConsentsResponse {
            consents: rows.into_iter().map(convert::consent).collect(),
            next_page_token,
        })
    }

    /// Answers a service whether a user may read or write a patient, and why. A service acting
    /// for a user (on-behalf-of) gets the decision on that user; a service acting for itself may
    /// ask about the principal it names. Users may not ask for others. Each answer is audited with
    /// the user and the asking service.
    /// For CareLoop services only: whom among the patient's family caregivers a notice may reach
    /// now, and where. The read is audited (the caller, the patient).
    pub(super) async fn list_consented_caregivers(
        &self,
        who: &Principal,
        req: ListConsentedCaregiversRequest,
    ) -> ApiResult<ListConsentedCaregiversResponse> {
        let patient_id = v::uuid("patient_id", &req.patient_id)?;
        if who.kind != PrincipalKind::Service || who.via.is_some() {
            return Err(ApiError::PermissionDenied(
                "caregivers' contacts are given to CareLoop services only",
            ));
        }
        let mut conn = self.pool.acquire().await?;
        let rows =
            store::consented_caregivers(&mut conn, patient_id, careloop_runtime::time::now())
                .await?;
        careloop_runtime::audit::record(
            &mut conn,
            careloop_runtime::audit::AuditEntry {
                principal: who,
                action: "ListConsentedCaregivers",
                patient_id: Some(patient_id),
                target_id: None,
                outcome: careloop_runtime::audit::Outcome::Ok,
            },
        )
        .await?;
        Ok(ListConsentedCaregiversResponse {
            caregivers: rows
                .into_iter()
                .map(|(member, channel, address, consent)| ConsentedCaregiver {
                    member_id: member.to_string(),
                    preferred_contact: Some(PreferredContact { channel, address }),
                    consent_id: consent.to_string(),
                })
                .collect(),
        })
    }

    /// Whose access a service asks about: the user it acts for (a body naming someone else is a
    /// caller's bug worth reporting), or, for a service acting for itself, the principal named in
    /// the body. Anyone else may not ask for others.
    fn asked_principal(
        who: &Principal,
        named: Option<&PrincipalRef>,
        then_validate: impl FnOnce() -> ApiResult<()>,
    ) -> ApiResult<Principal> {
        let named = match named {
            None => None,
            Some(asked) => {
                let subject = v::text("principal.subject", &asked.subject, MAX_SHORT)?;
                let org_id = v::uuid("principal.org_id", &asked.org_id)?;
                let kind = match v::enum_value::<PrincipalKind_>("principal.kind", asked.kind)? {
                    PrincipalKind_::Staff => PrincipalKind::Staff,
                    PrincipalKind_::Partner => PrincipalKind::Partner,
                    PrincipalKind_::Caregiver => PrincipalKind::Caregiver,
                    PrincipalKind_::Payer => PrincipalKind::Payer,
                    PrincipalKind_::Service => PrincipalKind::Service,
                    PrincipalKind_::Unspecified => {
                        return Err(ApiError::invalid("principal.kind", "is required"));
                    }
                };
                Some((subject, org_id, kind))
            }
        };
        // The rest of the request's fields are checked before whether a principal is needed, so
        // a bad id is named first.
        then_validate()?;
        if named.is_none() && who.via.is_none() {
            return Err(ApiError::invalid("principal", "is required"));
        }
        match (&who.via, who.kind) {
            (Some(_), _) => {
                if let Some((subject, org_id, kind)) = &named
                    && (subject != &who.subject || *org_id != who.org_id || *kind != who.kind)
                {
                    return Err(ApiError::invalid(
                        "principal",
                        "differs from the user the call is made for",
                    ));
                }
                Ok(who.clone())
            }
            (None, PrincipalKind::Service) => {
                let (subject, org_id, kind) =
                    named.ok_or_else(|| ApiError::invalid("principal", "is required"))?;
                Ok(Principal {
                    issuer: String::new(),
                    subject,
                    org_id,
                    roles: vec![],
                    kind,
                    via: Some(who.subject.clone()),
                })
            }
            (None, _) => Err(ApiError::PermissionDenied(
                "only internal services may check access for others",
            )),
        }
    }

    pub(super) async fn check_access(
        &self,
        who: &Principal,
        req: CheckAccessRequest,
    ) -> ApiResult<CheckAccessResponse> {
        let mut patient_id = Uuid::nil();
        let asked = Self::asked_principal(who, req.principal.as_ref(), || {
            patient_id = v::uuid("patient_id", &req.patient_id)?;
            Ok(())
        })?;
        let mut conn = self.pool.acquire().await?;
        let facts = store::access_facts(&mut conn, patient_id).await?;
        let decision = access::decide(&asked, &facts, now());
        let (basis, consent_id) = basis_of(&decision.basis);
        careloop_runtime::audit::record(
            &mut conn,
            careloop_runtime::audit::AuditEntry {
                principal: &asked,
                action: "CheckAccess",
                patient_id: Some(patient_id),
                target_id: None,
                outcome: if decision.can_read {
                    careloop_runtime::audit::Outcome::Ok
                } else {
                    careloop_runtime::audit::Outcome::Denied
                },
            },
        )
        .await?;
        Ok(CheckAccessResponse {
            can_read: decision.can_read,
            can_write: decision.can_write,
            basis: basis as i32,
            consent_id,
        })
    }

    /// One decision per patient, from three queries whatever the number of patients; a missing
    /// patient is denied and flagged. Each decision is audited like a single check.
    pub(super) async fn batch_check_access(
        &self,
        who: &Principal,
        req: BatchCheckAccessRequest,
    ) -> ApiResult<BatchCheckAccessResponse> {
        const MAX_PATIENTS: usize = 500;
        let mut ids: Vec<Uuid> = Vec::with_capacity(req.patient_ids.len());
        let asked = Self::asked_principal(who, req.principal.as_ref(), || {
            if req.patient_ids.len() > 2 * MAX_PATIENTS {
                return Err(ApiError::invalid(
                    "patient_ids",
                    format!("at most {MAX_PATIENTS} patients per call"),
                ));
            }
            for (i, raw) in req.patient_ids.iter().enumerate() {
                let id = v::uuid(&format!("patient_ids[{i}]"), raw)?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            if ids.len() > MAX_PATIENTS {
                return Err(ApiError::invalid(
                    "patient_ids",
                    format!("at most {MAX_PATIENTS} patients per call"),
                ));
            }
            Ok(())
        })?;
        let mut conn = self.pool.acquire().await?;
        let mut facts = store::access_facts_many(&mut conn, &ids).await?;
        let at = now();
        let mut decisions = Vec::with_capacity(ids.len());
        let (mut allowed, mut refused) = (Vec::new(), Vec::new());
        for id in &ids {
            let Some(patient) = facts.remove(id) else {
                refused.push(*id);
                decisions.push(PatientAccess {
                    patient_id: id.to_string(),
                    basis: AccessBasis::Denied as i32,
                    not_found: true,
                    ..Default::default()
                });
                continue;
            };
            let decision = access::decide(&asked, &patient, at);
            let (basis, consent_id) = basis_of(&decision.basis);
            if decision.can_read {
                allowed.push(*id);
            } else {
                refused.push(*id);
            }
            decisions.push(PatientAccess {
                patient_id: id.to_string(),
                can_read: decision.can_read,
                can_write: decision.can_write,
                basis: basis as i32,
                consent_id,
                not_found: false,
            });
        }
        careloop_runtime::audit::record_many(&mut conn, &asked, "CheckAccess", &allowed, &refused)
            .await?;
        Ok(BatchCheckAccessResponse { decisions })
    }
}

fn basis_of(basis: &Basis) -> (AccessBasis, String) {
    match basis {
        Basis::Denied => (AccessBasis::Denied, String::new()),
        Basis::InternalService => (AccessBasis::InternalService, String::new()),
        Basis::ManagingOrganization => (AccessBasis::ManagingOrganization, String::new()),
        Basis::CareTeamOrganization => (AccessBasis::CareTeamOrganization, String::new()),
        Basis::Consent(id) => (AccessBasis::Consent, id.to_string()),
    }
}

use careloop_proto::plans::v1::PrincipalKind as PrincipalKind_;
