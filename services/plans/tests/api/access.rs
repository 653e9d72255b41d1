//! Access to a patient: care-team organizations, consents, and everyone else refused. A caller who
//! may not even read the patient is answered NOT_FOUND, exactly as for a patient that does not
//! exist; one who may read but not write gets PERMISSION_DENIED.

use crate::helpers::*;
use careloop_proto::common::v1::CareRole;
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::PrincipalKind;
use uuid::Uuid;

#[tokio::test]
async fn an_organization_not_on_the_team_and_without_consent_is_denied() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let plan = app.create_plan(&mut c, &patient.id).await;
    let mut outsider = app.outsider();
    let status = outsider
        .get_care_plan(GetCarePlanRequest {
            patient_id: patient.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    // Indistinguishable from a patient that does not exist: nothing about the record leaks.
    let missing = outsider
        .get_care_plan(GetCarePlanRequest {
            patient_id: Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (missing.code(), missing.message())
    );
    let status = outsider
        .update_care_plan(UpdateCarePlanRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            expected_version: plan.version,
            content: Some(plan_content("hijacked")),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE outcome = 'denied' AND subject = 'stranger'"
        )
        .await,
        2,
        "refusals are audited"
    );
    let stored = c
        .get_care_plan(GetCarePlanRequest {
            patient_id: patient.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(stored.version, plan.version);
}

#[tokio::test]
async fn a_consent_to_an_organization_grants_read_until_it_is_revoked() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    app.create_plan(&mut c, &patient.id).await;
    let payer_org = Uuid::now_v7();
    let mut payer = app.client_with(Some(app.token(PrincipalKind::Payer, payer_org, "payer-1")));
    let read = |mut p: Client, id: String| async move {
        p.get_care_plan(GetCarePlanRequest { patient_id: id })
            .await
            .map(|_| ())
    };
    assert_eq!(
        read(payer.clone(), patient.id.clone())
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
    let consent = c
        .grant_consent(GrantConsentRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            grantee_org_id: payer_org.to_string(),
            purpose: ConsentPurpose::Payment as i32,
            scope: ConsentScope::Read as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    read(payer.clone(), patient.id.clone())
        .await
        .expect("consent grants read");
    let write = payer
        .create_task(CreateTaskRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            title: "x".into(),
            owner_role: CareRole::Rn as i32,
            due_at: in_hours(1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        write.code(),
        tonic::Code::PermissionDenied,
        "a read consent does not allow writing"
    );
    let stale = c
        .revoke_consent(RevokeConsentRequest {
            idempotency_key: key(),
            consent_id: consent.id.clone(),
            reason: "patient withdrew consent".into(),
            expected_version: consent.version + 1,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::Aborted);
    let revoked = c
        .revoke_consent(RevokeConsentRequest {
            idempotency_key: key(),
            consent_id: consent.id.clone(),
            reason: "patient withdrew consent".into(),
            expected_version: consent.version,
        })
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    assert_eq!(revoked.version, consent.version + 1);
    assert_eq!(
        read(payer, patient.id.clone()).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn check_access_explains_the_basis_and_is_only_for_services() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let partner_org = Uuid::now_v7();
    let plan = app.create_plan(&mut c, &patient.id).await;
    c.add_care_team_member(AddCareTeamMemberRequest {
        idempotency_key: key(),
        patient_id: patient.id.clone(),
        expected_version: plan.version,
        member: Some(NewCareTeamMember {
            kind: MemberKind::Organization as i32,
            display_name: "Sunrise Home Health".into(),
            role: CareRole::HomeHealth as i32,
            organization_id: partner_org.to_string(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    let ask = |org: Uuid| CheckAccessRequest {
        principal: Some(PrincipalRef {
            subject: "someone".into(),
            org_id: org.to_string(),
            kind: careloop_proto::plans::v1::PrincipalKind::Partner as i32,
        }),
        patient_id: patient.id.clone(),
    };
    let mut gateway = app.client_with(Some(app.token(
        PrincipalKind::Service,
        Uuid::now_v7(),
        "gateway",
    )));
    let yes = gateway
        .check_access(ask(partner_org))
        .await
        .unwrap()
        .into_inner();
    assert!(yes.can_read && yes.can_write);
    assert_eq!(yes.basis, AccessBasis::CareTeamOrganization as i32);
    let no = gateway
        .check_access(ask(Uuid::now_v7()))
        .await
        .unwrap()
        .into_inner();
    assert!(!no.can_read);
    assert_eq!(no.basis, AccessBasis::Denied as i32);
    let status = c.check_access(ask(partner_org)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn the_care_team_and_consents_change_only_by_the_managing_or_lead_organization() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    let plan = app.create_plan(&mut c, &patient.id).await;
    let partner_org = Uuid::now_v7();
    let agency = |name: &str, org: Uuid| NewCareTeamMember {
        kind: MemberKind::Organization as i32,
        display_name: name.into(),
        role: CareRole::HomeHealth as i32,
        organization_id: org.to_string(),
        ..Default::default()
    };
    let added = c
        .add_care_team_member(AddCareTeamMemberRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            expected_version: plan.version,
            member: Some(agency("Sunrise Home Health", partner_org)),
        })
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    let before = app.footprint().await;

    // A partner on the team reads and writes clinical data, but cannot add its affiliate ...
    let mut partner = app.client_with(Some(app.token(
        PrincipalKind::Partner,
        partner_org,
        "hh-nurse",
    )));
    let refused = partner
        .add_care_team_member(AddCareTeamMemberRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            expected_version: added.version,
            member: Some(agency("Sunrise Affiliate", Uuid::now_v7())),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    // ... nor hand out consent to another organization.
    let refused = partner
        .grant_consent(GrantConsentRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            grantee_org_id: Uuid::now_v7().to_string(),
            purpose: ConsentPurpose::Treatment as i32,
            scope: ConsentScope::ReadWrite as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert_eq!(app.footprint().await, before, "refusals write nothing");

    // Staff of the lead's organization (Dr. Grace's, here the managing one) may.
    c.add_care_team_member(AddCareTeamMemberRequest {
        idempotency_key: key(),
        patient_id: patient.id.clone(),
        expected_version: added.version,
        member: Some(agency("Sunrise Affiliate", Uuid::now_v7())),
    })
    .await
    .expect("the managing organization's staff change the team");
}

#[tokio::test]
async fn a_subject_equal_to_a_members_at_another_organization_reads_nothing() {
    let app = spawn_app().await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;
    app.create_plan(&mut c, &patient.id).await; // lead: subject "dr-grace" at the managing org
    let mut impostor = app.client_with(Some(app.token(
        PrincipalKind::Staff,
        Uuid::now_v7(),
        "dr-grace",
    )));
    let refused = impostor
        .get_care_plan(GetCarePlanRequest {
            patient_id: patient.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE outcome = 'denied' AND subject = 'dr-grace'"
        )
        .await,
        1,
        "the refusal is audited"
    );
}

#[tokio::test]
async fn batch_check_access_decides_each_patient_like_the_single_check_and_flags_unknown_ones() {
    let app = spawn_app().await;
    let mut c = app.client();
    let team_patient = app.create_patient(&mut c).await;
    let other_patient = app.create_patient(&mut c).await;
    let partner_org = Uuid::now_v7();
    let plan = app.create_plan(&mut c, &team_patient.id).await;
    c.add_care_team_member(AddCareTeamMemberRequest {
        idempotency_key: key(),
        patient_id: team_patient.id.clone(),
        expected_version: plan.version,
        member: Some(NewCareTeamMember {
            kind: MemberKind::Organization as i32,
            display_name: "Sunrise Home Health".into(),
            role: CareRole::HomeHealth as i32,
            organization_id: partner_org.to_string(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    let unknown = Uuid::now_v7().to_string();
    let partner = PrincipalRef {
        subject: "someone".into(),
        org_id: partner_org.to_string(),
        kind: careloop_proto::plans::v1::PrincipalKind::Partner as i32,
    };
    let mut gateway = app.client_with(Some(app.token(
        PrincipalKind::Service,
        Uuid::now_v7(),
        "gateway",
    )));
    let asked = vec![
        team_patient.id.clone(),
        other_patient.id.clone(),
        unknown.clone(),
        team_patient.id.clone(),
    ];
    let decisions = gateway
        .batch_check_access(BatchCheckAccessRequest {
            principal: Some(partner.clone()),
            patient_ids: asked,
        })
        .await
        .unwrap()
        .into_inner()
        .decisions;
    let got: Vec<(&str, bool, bool, i32, bool)> = decisions
        .iter()
        .map(|d| {
            (
                d.patient_id.as_str(),
                d.can_read,
                d.can_write,
                d.basis,
                d.not_found,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                team_patient.id.as_str(),
                true,
                true,
                AccessBasis::CareTeamOrganization as i32,
                false
            ),
            (
                other_patient.id.as_str(),
                false,
                false,
                AccessBasis::Denied as i32,
                false
            ),
            (
                unknown.as_str(),
                false,
                false,
                AccessBasis::Denied as i32,
                true
            ),
        ],
        "one decision per distinct patient, in the order asked"
    );
    // Each one agrees with the single check.
    for id in [&team_patient.id, &other_patient.id] {
        let single = gateway
            .check_access(CheckAccessRequest {
                principal: Some(partner.clone()),
                patient_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let batch = decisions.iter().find(|d| &d.patient_id == id).unwrap();
        assert_eq!(
            (single.can_read, single.can_write, single.basis),
            (batch.can_read, batch.can_write, batch.basis)
        );
    }
    // Only services ask for others; a bad id is named; a batch is bounded.
    let status = c
        .batch_check_access(BatchCheckAccessRequest {
            principal: Some(partner.clone()),
            patient_ids: vec![team_patient.id.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let status = gateway
        .batch_check_access(BatchCheckAccessRequest {
            principal: Some(partner.clone()),
            patient_ids: vec![team_patient.id.clone(), "nope".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(
        careloop_testkit::cases::bad_field(&status),
        "patient_ids[1]"
    );
    let too_many: Vec<String> = (0..501).map(|_| Uuid::now_v7().to_string()).collect();
    let status = gateway
        .batch_check_access(BatchCheckAccessRequest {
            principal: Some(partner),
            patient_ids: too_many,
        })
        .await
        .unwrap_err();
    assert_eq!(careloop_testkit::cases::bad_field(&status), "patient_ids");
}
