//! The authorization matrix of plans, generated as a table: one row per kind of caller, one column
//! per RPC, each cell the exact status code the rules in docs/security.md give. The expected codes
//! come from the rules (read, write, change the team, managing-organization-only, services-only,
//! worklists), never from the code under test. For every refusal, nothing is written and a denial
//! is audited. Each row runs against fresh fixtures, so one row's writes cannot decide another's.

use crate::helpers::*;
use careloop_proto::common::v1::CareRole;
use careloop_proto::plans::v1::list_open_tasks_request::Filter;
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::{Principal, PrincipalKind, on_behalf_of_header};
use careloop_testkit::callers::{Before, Credentials};
use tonic::Code;
use uuid::Uuid;

/// What a caller is allowed, by the rules.
#[derive(Clone, Copy)]
struct Rights {
    read: bool,
    write: bool,
    change_team: bool,
    /// Staff of the managing organization (registers patients, looks them up by MRN).
    managing: bool,
    /// A CareLoop service (asks CheckAccess).
    service: bool,
    /// May see role worklists (staff, partners, services), filtered to its organizations.
    worklists: bool,
    /// A service asking plans about access (for itself, or for the user it carries).
    asks_access: bool,
}

const NONE: Rights = Rights {
    read: false,
    write: false,
    change_team: false,
    managing: false,
    service: false,
    worklists: false,
    asks_access: false,
};

struct Caller {
    name: String,
    /// A dev-key token for the principal (or the carrying service's own token).
    token: String,
    /// The user a service carries (on-behalf-of).
    on_behalf_of: Option<Principal>,
    /// The subject whose audit rows show its refusals.
    audited_subject: String,
    rights: Rights,
}

type Matrix = PlansServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Credentials>,
>;

fn client_for(app: &TestApp, caller: &Caller) -> Matrix {
    PlansServiceClient::with_interceptor(
        app.channel(),
        Credentials {
            token: caller.token.clone(),
            on_behalf_of: caller.on_behalf_of.as_ref().map(on_behalf_of_header),
        },
    )
}

fn user(kind: PrincipalKind, org: Uuid, subject: &str) -> Principal {
    Principal {
        issuer: "careloop-dev".into(),
        subject: subject.into(),
        org_id: org,
        roles: vec!["rn".into()],
        kind,
        via: None,
    }
}

/// The organizations around the patient.
struct Orgs {
    managing: Uuid,
    team: Uuid,
    family: Uuid,
    payer: Uuid,
}

fn callers(app: &TestApp, orgs: &Orgs) -> Vec<Caller> {
    let direct = |name: &str, kind, org, subject: &str, rights| {
        let caller = Caller {
            name: name.to_owned(),
            token: app.token(kind, org, subject),
            on_behalf_of: None,
            audited_subject: subject.to_owned(),
            rights,
        };
        (caller, user(kind, org, subject))
    };
    // The gateway (a service) carrying a user: the user's rights, and it may ask CheckAccess.
    let via_gateway = |direct: &Caller, who: Principal| Caller {
        name: format!("gateway for {}", direct.name),
        token: app.token(PrincipalKind::Service, Uuid::nil(), "gateway"),
        audited_subject: who.subject.clone(),
        on_behalf_of: Some(who),
        rights: Rights {
            asks_access: true,
            ..direct.rights
        },
    };
    let reader = Rights { read: true, ..NONE };
    let team_member = Rights {
        read: true,
        write: true,
        worklists: true,
        ..NONE
    };
    let managing = Rights {
        read: true,
        write: true,
        change_team: true,
        managing: true,
        service: false,
        worklists: true,
        asks_access: false,
    };
    let stranger = Rights {
        worklists: true,
        ..NONE
    };
    let users = vec![
        direct(
            "staff of the managing organization",
            PrincipalKind::Staff,
            orgs.managing,
            "nurse-1",
            managing,
        ),
        direct(
            "staff of a team organization",
            PrincipalKind::Staff,
            orgs.team,
            "hh-nurse",
            team_member,
        ),
        direct(
            "staff elsewhere, same subject as the lead",
            PrincipalKind::Staff,
            Uuid::now_v7(),
            "dr-grace",
            stranger,
        ),
        direct(
            "partner on the team",
            PrincipalKind::Partner,
            orgs.team,
            "hh-partner",
            team_member,
        ),
        direct(
            "partner off the team",
            PrincipalKind::Partner,
            Uuid::now_v7(),
            "stranger",
            stranger,
        ),
        direct(
            "caregiver with consent",
            PrincipalKind::Caregiver,
            orgs.family,
            "daughter",
            reader,
        ),
        direct(
            "caregiver without consent",
            PrincipalKind::Caregiver,
            orgs.family,
            "son",
            NONE,
        ),
        direct(
            "payer with consent",
            PrincipalKind::Payer,
            orgs.payer,
            "payer-1",
            reader,
        ),
        direct(
            "payer without consent",
            PrincipalKind::Payer,
            Uuid::now_v7(),
            "payer-2",
            NONE,
        ),
    ];
    // Every user above, carried by a service (on-behalf-of): the decision follows the user.
    let carried: Vec<Caller> = users
        .iter()
        .map(|(caller, who)| via_gateway(caller, who.clone()))
        .collect();
    let mut all: Vec<Caller> = users.into_iter().map(|(caller, _)| caller).collect();
    all.extend(carried);
    all.push(Caller {
        name: "a CareLoop service for itself".into(),
        token: app.token(PrincipalKind::Service, Uuid::nil(), "referrals"),
        on_behalf_of: None,
        audited_subject: "referrals".into(),
        rights: Rights {
            service: true,
            asks_access: true,
            ..managing
        },
    });
    all
}

/// Everything a row's calls act on, set up by the managing organization's staff.
struct Fixture {
    patient: Patient,
    /// A patient of the managing organization without a plan yet.
    planless: Patient,
    plan: CarePlan,
    member_id: String,
    task: Task,
    handoff: Handoff,
    transition: CareTransition,
    consent: Consent,
}

async fn fixture(app: &TestApp, c: &mut Client, orgs: &Orgs) -> Fixture {
    let patient = app.create_patient(c).await;
    let plan = app.create_plan(c, &patient.id).await;
    let add = |plan: &CarePlan, member: NewCareTeamMember| AddCareTeamMemberRequest {
        idempotency_key: key(),
        patient_id: patient.id.clone(),
        expected_version: plan.version,
        member: Some(member),
    };
    let plan = c
        .add_care_team_member(add(
            &plan,
            NewCareTeamMember {
                kind: MemberKind::Organization as i32,
                display_name: "Sunrise Home Health".into(),
                role: CareRole::HomeHealth as i32,
                organization_id: orgs.team.to_string(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    let plan = c
        .add_care_team_member(add(
            &plan,
            NewCareTeamMember {
                kind: MemberKind::Person as i32,
                display_name: "Daughter".into(),
                role: CareRole::FamilyCaregiver as i32,
                organization_id: orgs.family.to_string(),
                subject: "daughter".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    let plan = c
        .add_care_team_member(add(
            &plan,
            NewCareTeamMember {
                kind: MemberKind::Person as i32,
                display_name: "Son".into(),
                role: CareRole::FamilyCaregiver as i32,
                organization_id: orgs.family.to_string(),
                subject: "son".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    let daughter = plan
        .care_team
        .iter()
        .find(|m| m.subject == "daughter")
        .unwrap()
        .id
        .clone();
    let son = plan
        .care_team
        .iter()
        .find(|m| m.subject == "son")
        .unwrap()
        .id
        .clone();
    let grant = |member: &str, org: Option<Uuid>, purpose: ConsentPurpose| GrantConsentRequest {
        idempotency_key: key(),
        patient_id: patient.id.clone(),
        grantee_member_id: member.to_owned(),
        grantee_org_id: org.map(|o| o.to_string()).unwrap_or_default(),
        purpose: purpose as i32,
        // Read-write on purpose: caregivers and payers still never write clinical data.
        scope: ConsentScope::ReadWrite as i32,
        ..Default::default()
    };
    c.grant_consent(grant(&daughter, None, ConsentPurpose::Treatment))
        .await
        .unwrap();
    let consent = c
        .grant_consent(grant("", Some(orgs.payer), ConsentPurpose::Payment))
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    let task = c
        .create_task(CreateTaskRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            title: "Call within 72 h".into(),
            owner_role: CareRole::Rn as i32,
            due_at: in_hours(72),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let handoff = c
        .send_handoff(handoff_request(&patient.id))
        .await
        .unwrap()
        .into_inner()
        .handoff
        .unwrap();
    let transition = c
        .start_transition(transition_request(&patient.id))
        .await
        .unwrap()
        .into_inner()
        .transition
        .unwrap();
    let planless = app.create_patient(c).await;
    Fixture {
        member_id: son,
        planless,
        patient,
        plan,
        task,
        handoff,
        transition,
        consent,
    }
}

fn handoff_request(patient_id: &str) -> SendHandoffRequest {
    SendHandoffRequest {
        idempotency_key: key(),
        patient_id: patient_id.into(),
        from_role: CareRole::Hospitalist as i32,
        to_role: CareRole::Pcp as i32,
        situation: "discharged today".into(),
        background: "heart failure".into(),
        assessment: "stable".into(),
        recommendation: "see within 7 days".into(),
        ..Default::default()
    }
}

fn transition_request(patient_id: &str) -> StartTransitionRequest {
    StartTransitionRequest {
        idempotency_key: key(),
        patient_id: patient_id.into(),
        from_setting: CareSetting::Hospital as i32,
        to_setting: CareSetting::Home as i32,
        reason: "discharge".into(),
        success_criteria: "no readmission".into(),
        risk_level: RiskLevel::High as i32,
    }
}

fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    result.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
}

/// The code a refusal of `need` gets: a caller who cannot read the patient is told it does not
/// exist; one who can read but lacks the right gets PERMISSION_DENIED.
fn gate(rights: Rights, allowed: bool, ok: Code) -> Code {
    if allowed {
        ok
    } else if rights.read {
        Code::PermissionDenied
    } else {
        Code::NotFound
    }
}

const RPCS: [&str; 29] = [
    "CreatePatient",
    "GetPatient",
    "FindPatientByMrn",
    "CreateCarePlan",
    "GetCarePlan",
    "UpdateCarePlan",
    "ReconcileMedications",
    "AddCareTeamMember",
    "UpdateCareTeamMember",
    "RemoveCareTeamMember",
    "GrantConsent",
    "RevokeConsent",
    "ListConsents",
    "CheckAccess",
    "ListConsentedCaregivers",
    "CreateTask",
    "GetTask",
    "AssignTask",
    "TransitionTask",
    "ListOpenTasks(patient)",
    "ListOpenTasks(role)",
    "SendHandoff",
    "AcknowledgeHandoff",
    "ListUnacknowledgedHandoffs",
    "StartTransition",
    "GetTransition",
    "UpdateChecklistItem",
    "CompleteTransition",
    "CreatePatient(another organization)",
];

/// The expected code of one cell, from the rules.
fn expected(rpc: &str, r: Rights) -> Code {
    let rights = r;
    match rpc {
        "CreatePatient" | "FindPatientByMrn" => {
            if r.managing || r.service {
                Code::Ok
            } else {
                Code::PermissionDenied
            }
        }
        "CreatePatient(another organization)" => {
            if r.service {
                Code::Ok
            } else {
                Code::PermissionDenied
            }
        }
        "GetPatient"
        | "GetCarePlan"
        | "ListConsents"
        | "GetTask"
        | "ListOpenTasks(patient)"
        | "GetTransition" => gate(rights, r.read, Code::Ok),
        // A patient without a plan has no team or consents yet: only its managing organization
        // (and services) reach it.
        "CreateCarePlan" => {
            if r.managing || r.service {
                Code::Ok
            } else {
                Code::NotFound
            }
        }
        "UpdateCarePlan"
        | "ReconcileMedications"
        | "CreateTask"
        | "AssignTask"
        | "TransitionTask"
        | "SendHandoff"
        | "AcknowledgeHandoff"
        | "StartTransition"
        | "UpdateChecklistItem" => gate(rights, r.write, Code::Ok),
        // Writes the state machine then refuses: the checklist is still open.
        "CompleteTransition" => gate(rights, r.write, Code::FailedPrecondition),
        "AddCareTeamMember"
        | "UpdateCareTeamMember"
        | "RemoveCareTeamMember"
        | "GrantConsent"
        | "RevokeConsent" => gate(rights, r.change_team, Code::Ok),
        "CheckAccess" => {
            if r.asks_access {
                Code::Ok
            } else {
                Code::PermissionDenied
            }
        }
        // Caregivers' contacts go to CareLoop services acting for themselves (notifications).
        "ListConsentedCaregivers" => {
            if r.service {
                Code::Ok
            } else {
                Code::PermissionDenied
            }
        }
        "ListOpenTasks(role)" | "ListUnacknowledgedHandoffs" => {
            if r.worklists || r.service {
                Code::Ok
            } else {
                Code::PermissionDenied
            }
        }
        other => panic!("no rule for {other}"),
    }
}

async fn call(app: &TestApp, c: &mut Matrix, carries_user: bool, rpc: &str, fx: &Fixture) -> Code {
    let pid = fx.patient.id.clone();
    match rpc {
        "CreatePatient" | "CreatePatient(another organization)" => {
            let org = if rpc == "CreatePatient" {
                app.org_id
            } else {
                Uuid::now_v7()
            };
            code(
                c.create_patient(CreatePatientRequest {
                    idempotency_key: key(),
                    mrn: format!("MRN-{}", &Uuid::now_v7().simple().to_string()[20..]),
                    given_name: "Ada".into(),
                    family_name: "Lovelace".into(),
                    birth_date: "1950-03-04".into(),
                    managing_org_id: org.to_string(),
                })
                .await,
            )
        }
        "GetPatient" => code(c.get_patient(GetPatientRequest { patient_id: pid }).await),
        "FindPatientByMrn" => code(
            c.find_patient_by_mrn(FindPatientByMrnRequest {
                managing_org_id: app.org_id.to_string(),
                mrn: fx.patient.mrn.clone(),
            })
            .await,
        ),
        "CreateCarePlan" => code(
            c.create_care_plan(CreateCarePlanRequest {
                idempotency_key: key(),
                patient_id: fx.planless.id.clone(),
                content: Some(plan_content("Home safely")),
                lead: Some(NewCareTeamMember {
                    kind: MemberKind::Organization as i32,
                    display_name: "Primary care".into(),
                    role: CareRole::Pcp as i32,
                    organization_id: app.org_id.to_string(),
                    is_lead: true,
                    ..Default::default()
                }),
            })
            .await,
        ),
        "GetCarePlan" => code(
            c.get_care_plan(GetCarePlanRequest { patient_id: pid })
                .await,
        ),
        "UpdateCarePlan" => code(
            c.update_care_plan(UpdateCarePlanRequest {
                idempotency_key: key(),
                patient_id: pid,
                expected_version: fx.plan.version,
                content: Some(plan_content("Home safely, walking daily")),
            })
            .await,
        ),
        "ReconcileMedications" => code(
            c.reconcile_medications(ReconcileMedicationsRequest {
                idempotency_key: key(),
                patient_id: pid,
                expected_version: fx.plan.version,
                medications: plan_content("x").medications,
                reconciled_by_role: CareRole::Pharmacist as i32,
                note: "checked with the patient".into(),
            })
            .await,
        ),
        "AddCareTeamMember" => code(
            c.add_care_team_member(AddCareTeamMemberRequest {
                idempotency_key: key(),
                patient_id: pid,
                expected_version: fx.plan.version,
                member: Some(NewCareTeamMember {
                    kind: MemberKind::Organization as i32,
                    display_name: "An affiliate".into(),
                    role: CareRole::HomeHealth as i32,
                    organization_id: Uuid::now_v7().to_string(),
                    ..Default::default()
                }),
            })
            .await,
        ),
        "UpdateCareTeamMember" => code(
            c.update_care_team_member(UpdateCareTeamMemberRequest {
                idempotency_key: key(),
                patient_id: pid,
                expected_version: fx.plan.version,
                member_id: fx.member_id.clone(),
                role: CareRole::FamilyCaregiver as i32,
                ..Default::default()
            })
            .await,
        ),
        "RemoveCareTeamMember" => code(
            c.remove_care_team_member(RemoveCareTeamMemberRequest {
                idempotency_key: key(),
                patient_id: pid,
                expected_version: fx.plan.version,
                member_id: fx.member_id.clone(),
            })
            .await,
        ),
        "GrantConsent" => code(
            c.grant_consent(GrantConsentRequest {
                idempotency_key: key(),
                patient_id: pid,
                grantee_org_id: Uuid::now_v7().to_string(),
                purpose: ConsentPurpose::Treatment as i32,
                scope: ConsentScope::Read as i32,
                ..Default::default()
            })
            .await,
        ),
        "RevokeConsent" => code(
            c.revoke_consent(RevokeConsentRequest {
                idempotency_key: key(),
                consent_id: fx.consent.id.clone(),
                reason: "ended".into(),
                expected_version: fx.consent.version,
            })
            .await,
        ),
        "ListConsents" => code(
            c.list_consents(ListConsentsRequest {
                patient_id: pid,
                ..Default::default()
            })
            .await,
        ),
        // A service carrying a user asks about that user; one acting for itself names whom.
        "CheckAccess" => code(
            c.check_access(CheckAccessRequest {
                principal: (!carries_user).then(|| PrincipalRef {
                    subject: "nurse-9".into(),
                    org_id: app.org_id.to_string(),
                    kind: careloop_proto::plans::v1::PrincipalKind::Staff as i32,
                }),
                patient_id: pid,
            })
            .await,
        ),
        "ListConsentedCaregivers" => code(
            c.list_consented_caregivers(ListConsentedCaregiversRequest { patient_id: pid })
                .await,
        ),
        "CreateTask" => code(
            c.create_task(CreateTaskRequest {
                idempotency_key: key(),
                patient_id: pid,
                title: "Confirm pickup".into(),
                owner_role: CareRole::Rn as i32,
                due_at: in_hours(4),
                ..Default::default()
            })
            .await,
        ),
        "GetTask" => code(
            c.get_task(GetTaskRequest {
                task_id: fx.task.id.clone(),
            })
            .await,
        ),
        "AssignTask" => code(
            c.assign_task(AssignTaskRequest {
                idempotency_key: key(),
                task_id: fx.task.id.clone(),
                expected_version: fx.task.version,
                owner_role: CareRole::CareManager as i32,
                ..Default::default()
            })
            .await,
        ),
        "TransitionTask" => code(
            c.transition_task(TransitionTaskRequest {
                idempotency_key: key(),
                task_id: fx.task.id.clone(),
                expected_version: fx.task.version,
                action: TaskAction::Accept as i32,
                reason: String::new(),
            })
            .await,
        ),
        "ListOpenTasks(patient)" => code(
            c.list_open_tasks(ListOpenTasksRequest {
                filter: Some(Filter::PatientId(pid)),
                ..Default::default()
            })
            .await,
        ),
        "ListOpenTasks(role)" => code(
            c.list_open_tasks(ListOpenTasksRequest {
                filter: Some(Filter::OwnerRole(CareRole::Rn as i32)),
                ..Default::default()
            })
            .await,
        ),
        "SendHandoff" => code(c.send_handoff(handoff_request(&pid)).await),
        "AcknowledgeHandoff" => code(
            c.acknowledge_handoff(AcknowledgeHandoffRequest {
                idempotency_key: key(),
                handoff_id: fx.handoff.id.clone(),
                expected_version: fx.handoff.version,
            })
            .await,
        ),
        "ListUnacknowledgedHandoffs" => code(
            c.list_unacknowledged_handoffs(ListUnacknowledgedHandoffsRequest {
                to_role: CareRole::Pcp as i32,
                ..Default::default()
            })
            .await,
        ),
        "StartTransition" => code(c.start_transition(transition_request(&pid)).await),
        "GetTransition" => code(
            c.get_transition(GetTransitionRequest {
                transition_id: fx.transition.id.clone(),
            })
            .await,
        ),
        "UpdateChecklistItem" => code(
            c.update_checklist_item(UpdateChecklistItemRequest {
                idempotency_key: key(),
                transition_id: fx.transition.id.clone(),
                expected_version: fx.transition.version,
                item: ChecklistItemKind::HandoffSent as i32,
                state: ChecklistItemState::Done as i32,
                waive_reason: String::new(),
            })
            .await,
        ),
        "CompleteTransition" => code(
            c.complete_transition(CompleteTransitionRequest {
                idempotency_key: key(),
                transition_id: fx.transition.id.clone(),
                expected_version: fx.transition.version,
            })
            .await,
        ),
        other => panic!("no call for {other}"),
    }
}

#[tokio::test]
async fn every_caller_gets_the_exact_code_the_rules_give_on_every_rpc() {
    let app = spawn_app().await;
    let orgs = Orgs {
        managing: app.org_id,
        team: Uuid::now_v7(),
        family: Uuid::now_v7(),
        payer: Uuid::now_v7(),
    };
    // Every cell is judged; the report lists all that are wrong, not only the first.
    let _cells = careloop_testkit::cases::CaseReport;
    for caller in callers(&app, &orgs) {
        let mut matrix = client_for(&app, &caller);
        for rpc in RPCS {
            // Fresh fixtures per cell: an allowed write cannot change what the next cell sees.
            let fx = fixture(&app, &mut app.client(), &orgs).await;
            let before =
                Before::take(&app.db, &caller.audited_subject, app.footprint().await).await;
            let carries_user = caller.on_behalf_of.is_some();
            let got = call(&app, &mut matrix, carries_user, rpc, &fx).await;
            let cell = format!("{} / {rpc}", caller.name);
            let want = expected(rpc, caller.rights);
            before
                .judge(
                    &app.db,
                    &caller.audited_subject,
                    &cell,
                    want,
                    got,
                    app.footprint().await,
                )
                .await;
        }
    }
}
