//! Access to a patient: care-team organizations, consents, and everyone else refused.

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
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let status = outsider
        .update_care_plan(UpdateCarePlanRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            expected_version: plan.version,
            content: Some(plan_content("hijacked")),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
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
        tonic::Code::PermissionDenied
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
        tonic::Code::PermissionDenied
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
