//! Who may do what through the gateway: the exact status per caller and call, decided by the
//! gateway's scopes per kind of caller and by plans' access decision per patient; a worklist shows
//! only patients the caller may read; refusals are audited.

use careloop_proto::common::v1::CareRole;
use careloop_proto::gateway::v1::*;
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::PrincipalKind;
use careloop_system_tests::{Gateway, System, key};
use careloop_testkit::in_hours;
use tonic::Code;
use uuid::Uuid;

struct Circle {
    patient: String,
    task: String,
    hospital: Uuid,
    clinic: Uuid,
    other: Uuid,
    family: Uuid,
    payer: Uuid,
}

/// A patient of the hospital with the clinic on the team, a daughter (consent) and a son (no
/// consent) as caregivers, a payer with a payment consent, and an open RN task; all set up through
/// the gateway by the hospital's staff.
async fn circle(system: &System) -> Circle {
    let hospital = Uuid::now_v7();
    let (clinic, other, family, payer) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let mut staff = system.staff(hospital, "nurse-1", &["rn"]);
    let patient = staff
        .create_patient(CreatePatientRequest {
            idempotency_key: key(),
            mrn: format!("MRN-{}", &Uuid::now_v7().simple().to_string()[20..]),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: "1950-03-04".into(),
            managing_org_id: hospital.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .patient
        .unwrap();
    let mut plan = staff
        .create_care_plan(CreateCarePlanRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            content: Some(CarePlanContent {
                summary: "Home safely".into(),
                ..Default::default()
            }),
            lead: Some(NewCareTeamMember {
                kind: MemberKind::Organization as i32,
                display_name: "Primary care".into(),
                role: CareRole::Pcp as i32,
                organization_id: hospital.to_string(),
                is_lead: true,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    for (kind, name, role, org, subject) in [
        (
            MemberKind::Organization,
            "Clinic",
            CareRole::Specialist,
            clinic,
            "",
        ),
        (
            MemberKind::Person,
            "Daughter",
            CareRole::FamilyCaregiver,
            family,
            "daughter",
        ),
        (
            MemberKind::Person,
            "Son",
            CareRole::FamilyCaregiver,
            family,
            "son",
        ),
    ] {
        plan = staff
            .add_care_team_member(AddCareTeamMemberRequest {
                idempotency_key: key(),
                patient_id: patient.id.clone(),
                expected_version: plan.version,
                member: Some(NewCareTeamMember {
                    kind: kind as i32,
                    display_name: name.into(),
                    role: role as i32,
                    organization_id: org.to_string(),
                    subject: subject.into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .plan
            .unwrap();
    }
    let daughter = plan
        .care_team
        .iter()
        .find(|m| m.subject == "daughter")
        .unwrap()
        .id
        .clone();
    for (member, org, purpose) in [
        (daughter, String::new(), ConsentPurpose::Treatment),
        (String::new(), payer.to_string(), ConsentPurpose::Payment),
    ] {
        staff
            .grant_consent(GrantConsentRequest {
                idempotency_key: key(),
                patient_id: patient.id.clone(),
                grantee_member_id: member,
                grantee_org_id: org,
                purpose: purpose as i32,
                scope: ConsentScope::ReadWrite as i32,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let task = staff
        .create_task(task_for(&patient.id))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    Circle {
        patient: patient.id,
        task: task.id,
        hospital,
        clinic,
        other,
        family,
        payer,
    }
}

fn task_for(patient: &str) -> CreateTaskRequest {
    CreateTaskRequest {
        idempotency_key: key(),
        patient_id: patient.into(),
        title: "call the patient".into(),
        owner_role: CareRole::Rn as i32,
        due_at: in_hours(4),
        ..Default::default()
    }
}

fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    r.map_or_else(|s| s.code(), |_| Code::Ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_gets_exactly_the_status_its_kind_and_its_access_give() {
    let system = System::start().await;
    let c = circle(&system).await;
    use Code::*;
    use PrincipalKind as K;
    // (caller, kind, org, subject) -> summary, worklist, create task, create patient
    let table: [(&str, K, Uuid, &str, [Code; 4]); 6] = [
        (
            "managing staff",
            K::Staff,
            c.hospital,
            "nurse-2",
            [Ok, Ok, Ok, Ok],
        ),
        (
            "team partner",
            K::Partner,
            c.clinic,
            "dr-sam",
            [Ok, Ok, Ok, PermissionDenied],
        ),
        (
            "partner off the team",
            K::Partner,
            c.other,
            "dr-x",
            [NotFound, Ok, NotFound, PermissionDenied],
        ),
        (
            "caregiver with consent",
            K::Caregiver,
            c.family,
            "daughter",
            [Ok, PermissionDenied, PermissionDenied, PermissionDenied],
        ),
        (
            "caregiver without consent",
            K::Caregiver,
            c.family,
            "son",
            [
                NotFound,
                PermissionDenied,
                PermissionDenied,
                PermissionDenied,
            ],
        ),
        (
            "payer with payment consent",
            K::Payer,
            c.payer,
            "payer-bot",
            [Ok, PermissionDenied, PermissionDenied, PermissionDenied],
        ),
    ];
    let mut wrong = Vec::new();
    for (name, kind, org, subject, want) in table {
        let mut g = system.as_(kind, org, subject, &["rn"]);
        let got = calls(&mut g, &c, org).await;
        if got != want {
            wrong.push(format!("{name}: expected {want:?}, got {got:?}"));
        }
    }
    // No token at all, and a token from nobody the gateway trusts.
    let mut anonymous =
        careloop_proto::gateway::v1::gateway_service_client::GatewayServiceClient::new(
            system.gateway_channel.clone(),
        );
    let got = [
        code(
            anonymous
                .get_patient_summary(GetPatientSummaryRequest {
                    patient_id: c.patient.clone(),
                })
                .await,
        ),
        code(
            anonymous
                .list_worklist(ListWorklistRequest {
                    role: CareRole::Rn as i32,
                    ..Default::default()
                })
                .await,
        ),
    ];
    if got != [Unauthenticated, Unauthenticated] {
        wrong.push(format!("no token: {got:?}"));
    }
    let mut forged =
        careloop_proto::gateway::v1::gateway_service_client::GatewayServiceClient::with_interceptor(
            system.gateway_channel.clone(),
            careloop_testkit::services::Bearer(
                "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJldmlsIn0.c2ln".into(),
            ),
        );
    let got = code(
        forged
            .get_patient_summary(GetPatientSummaryRequest {
                patient_id: c.patient.clone(),
            })
            .await,
    );
    if got != Unauthenticated {
        wrong.push(format!("forged token: {got:?}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Refusals at the door and refusals of a patient are both in the gateway's audit.
    let (door, patient): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE patient_id IS NULL), count(*) FILTER (WHERE patient_id IS NOT NULL)
           FROM audit_log WHERE outcome = 'denied' AND subject = 'son'",
    )
    .fetch_one(&system.gateway_db)
    .await
    .unwrap();
    assert_eq!(
        (door, patient),
        (3, 1),
        "three scope refusals and one summary refusal"
    );
}

/// The four calls of the table for one caller.
async fn calls(g: &mut Gateway, c: &Circle, org: Uuid) -> [Code; 4] {
    let summary = code(
        g.get_patient_summary(GetPatientSummaryRequest {
            patient_id: c.patient.clone(),
        })
        .await,
    );
    let worklist = code(
        g.list_worklist(ListWorklistRequest {
            role: CareRole::Rn as i32,
            ..Default::default()
        })
        .await,
    );
    let task = code(g.create_task(task_for(&c.patient)).await);
    let patient = code(
        g.create_patient(CreatePatientRequest {
            idempotency_key: key(),
            mrn: format!("MRN-{}", &Uuid::now_v7().simple().to_string()[20..]),
            given_name: "Bo".into(),
            family_name: "Diddley".into(),
            birth_date: "1960-01-01".into(),
            managing_org_id: org.to_string(),
        })
        .await,
    );
    [summary, worklist, task, patient]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worklist_shows_only_the_patients_its_caller_may_read_and_forgets_them_when_the_team_changes()
 {
    // Decisions live for an hour here: only plans' care-team event can make the gateway forget.
    let system = System::start_tuned(careloop_system_tests::Tuning {
        gateway: Some(Box::new(|g| g.access_cache_ttl_ms = 3_600_000)),
    })
    .await;
    let c = circle(&system).await;
    let rn = |g: &Gateway| {
        let mut g = g.clone();
        async move {
            g.list_worklist(ListWorklistRequest {
                role: CareRole::Rn as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    let team = system.as_(PrincipalKind::Partner, c.clinic, "dr-sam", &["rn"]);
    let stranger = system.as_(PrincipalKind::Partner, c.other, "dr-x", &["rn"]);
    let task = c.task.clone();
    let shows = move |w: &ListWorklistResponse| w.items.iter().any(|i| i.id == task);
    assert!(shows(&rn(&team).await));
    assert!(!shows(&rn(&stranger).await));

    // The hospital takes the clinic off the team, in plans directly (not a curated write, so the
    // gateway learns it from plans' event only).
    let mut plans =
        careloop_proto::plans::v1::plans_service_client::PlansServiceClient::with_interceptor(
            system.plans_channel.clone(),
            careloop_testkit::services::Bearer(careloop_testkit::services::token(
                PrincipalKind::Staff,
                c.hospital,
                "nurse-1",
            )),
        );
    let plan = plans
        .get_care_plan(GetCarePlanRequest {
            patient_id: c.patient.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    let member = plan
        .care_team
        .iter()
        .find(|m| m.organization_id == c.clinic.to_string())
        .unwrap()
        .id
        .clone();
    plans
        .remove_care_team_member(RemoveCareTeamMemberRequest {
            idempotency_key: key(),
            patient_id: c.patient.clone(),
            expected_version: plan.version,
            member_id: member,
        })
        .await
        .unwrap();
    careloop_system_tests::eventually("the clinic's worklist to drop the patient", || {
        let rn = rn(&team);
        let shows = shows.clone();
        async move { (!shows(&rn.await)).then_some(()) }
    })
    .await;
    let summary = team
        .clone()
        .get_patient_summary(GetPatientSummaryRequest {
            patient_id: c.patient.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(summary.code(), Code::NotFound);
}
