//! The authorization matrix of referrals, generated as a table: kinds of caller against every RPC
//! (a referral move as the receiver and as the sender counted apart), the exact status code per
//! cell from the rules in docs/security.md; every refusal writes nothing and is audited once.

use crate::helpers::*;
use crate::orders::lab;
use crate::referrals::place;
use careloop_proto::common::v1::{CareRole, Priority};
use careloop_proto::referrals::v1::list_open_loops_request::Filter;
use careloop_proto::referrals::v1::referrals_service_client::ReferralsServiceClient;
use careloop_proto::referrals::v1::transition_order_request::{self as to};
use careloop_proto::referrals::v1::transition_referral_request::{self as tr};
use careloop_proto::referrals::v1::*;
use careloop_runtime::auth::{Principal, PrincipalKind, on_behalf_of_header};
use careloop_testkit::callers::{Before, Credentials};
use careloop_testkit::services::token_with_roles;
use tonic::Code;
use uuid::Uuid;

#[derive(Clone, Copy, Default)]
struct Rights {
    read: bool,
    write: bool,
    /// Staff of the receiving organization (runs the referral loop).
    receiver: bool,
    /// Of the sending organization (may cancel).
    sender: bool,
    service: bool,
    /// Hospital staff (sees pathway rules); `admin` manages them.
    staff: bool,
    admin: bool,
    /// Of the organization that owns the fixture's pathway rule.
    rule_owner: bool,
}

struct Caller {
    name: String,
    token: String,
    on_behalf_of: Option<String>,
    audited_subject: String,
    rights: Rights,
}

type Matrix = ReferralsServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Credentials>,
>;

fn callers(app: &TestApp, team: Uuid, family: Uuid, payer: Uuid) -> Vec<Caller> {
    let direct = |name: &str, kind, org, subject: &str, roles: &[&str], rights| Caller {
        name: name.to_owned(),
        token: token_with_roles(kind, org, subject, roles),
        // The same user, as the gateway would carry it (used for the mirrored rows).
        on_behalf_of: Some(on_behalf_of_header(&Principal {
            issuer: "careloop-dev".into(),
            subject: subject.into(),
            org_id: org,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            kind,
            via: None,
        })),
        audited_subject: subject.to_owned(),
        rights,
    };
    let managing = Rights {
        read: true,
        write: true,
        sender: true,
        staff: true,
        ..Default::default()
    };
    let reader = Rights {
        read: true,
        ..Default::default()
    };
    let gateway = token_with_roles(PrincipalKind::Service, Uuid::nil(), "gateway", &[]);
    let users = vec![
        direct(
            "staff of the managing (sending) organization",
            PrincipalKind::Staff,
            app.org_id,
            "nurse-1",
            &["rn"],
            managing,
        ),
        direct(
            "administrator of the managing organization",
            PrincipalKind::Staff,
            app.org_id,
            "admin-1",
            &["admin"],
            Rights {
                admin: true,
                rule_owner: true,
                ..managing
            },
        ),
        direct(
            "staff of the team (receiving) organization",
            PrincipalKind::Staff,
            team,
            "cardio-1",
            &["scheduler"],
            Rights {
                read: true,
                write: true,
                receiver: true,
                staff: true,
                ..Default::default()
            },
        ),
        direct(
            "staff elsewhere, same subject",
            PrincipalKind::Staff,
            Uuid::now_v7(),
            "nurse-1",
            &["admin"],
            Rights {
                staff: true,
                admin: true,
                ..Default::default()
            },
        ),
        direct(
            "partner off the team",
            PrincipalKind::Partner,
            Uuid::now_v7(),
            "stranger",
            &[],
            Rights::default(),
        ),
        direct(
            "caregiver with consent",
            PrincipalKind::Caregiver,
            family,
            "daughter",
            &[],
            reader,
        ),
        direct(
            "caregiver without consent",
            PrincipalKind::Caregiver,
            family,
            "son",
            &[],
            Rights::default(),
        ),
        direct(
            "payer with consent",
            PrincipalKind::Payer,
            payer,
            "payer-1",
            &[],
            reader,
        ),
    ];
    // Every user, also carried by the gateway (on-behalf-of): the decision follows the user.
    let mut all = Vec::new();
    for user in users {
        all.push(Caller {
            name: format!("gateway for {}", user.name),
            token: gateway.clone(),
            on_behalf_of: user.on_behalf_of.clone(),
            audited_subject: user.audited_subject.clone(),
            rights: user.rights,
        });
        all.push(Caller {
            on_behalf_of: None,
            ..user
        });
    }
    all.push(Caller {
        name: "a CareLoop service for itself".into(),
        token: token_with_roles(PrincipalKind::Service, Uuid::nil(), "prior-auth", &[]),
        on_behalf_of: None,
        audited_subject: "prior-auth".into(),
        rights: Rights {
            read: true,
            write: true,
            receiver: true,
            sender: true,
            service: true,
            staff: true,
            admin: true,
            rule_owner: true,
        },
    });
    all
}

const RPCS: [&str; 15] = [
    "PlaceReferral",
    "GetReferral",
    "TransitionReferral(receiver accepts)",
    "TransitionReferral(sender cancels)",
    "PlaceOrder",
    "GetOrder",
    "TransitionOrder",
    "RecordResult",
    "AcknowledgeResult",
    "ListOpenLoops(patient)",
    "ListOpenLoops(role)",
    "CreatePathwayRule",
    "ListPathwayRules",
    "SetPathwayRuleEnabled",
    "PlaceReferral(in another organization's name)",
];

fn gate(r: Rights, allowed: bool) -> Code {
    if allowed {
        Code::Ok
    } else if r.read {
        Code::PermissionDenied
    } else {
        Code::NotFound
    }
}

fn expected(rpc: &str, r: Rights) -> Code {
    let yes_or_denied = |allowed: bool| {
        if allowed {
            Code::Ok
        } else {
            Code::PermissionDenied
        }
    };
    match rpc {
        "PlaceReferral" | "PlaceOrder" | "TransitionOrder" | "RecordResult"
        | "AcknowledgeResult" => gate(r, r.write),
        "GetReferral" | "GetOrder" | "ListOpenLoops(patient)" => gate(r, r.read),
        // Access to the patient first, then the side of the referral.
        "TransitionReferral(receiver accepts)" => gate(r, r.write && r.receiver),
        "TransitionReferral(sender cancels)" => gate(r, r.write && r.sender),
        // Naming another sender: refused before the patient is even looked at, unless a service.
        "PlaceReferral(in another organization's name)" => {
            if r.service {
                Code::Ok
            } else {
                Code::PermissionDenied
            }
        }
        "ListOpenLoops(role)" => yes_or_denied(r.service),
        "CreatePathwayRule" => yes_or_denied(r.admin),
        // Another organization's rule is not there for an administrator elsewhere.
        "SetPathwayRuleEnabled" => match (r.admin, r.rule_owner) {
            (true, true) => Code::Ok,
            (true, false) => Code::NotFound,
            _ => Code::PermissionDenied,
        },
        "ListPathwayRules" => yes_or_denied(r.staff),
        other => panic!("no rule for {other}"),
    }
}

/// What one cell acts on, prepared by the managing organization's staff (and the receiver).
struct Fixture {
    referral: Referral,
    order: Order,
    result: LabResult,
    rule: PathwayRule,
}

async fn fixture(app: &TestApp, patient_id: &str, team: Uuid) -> Fixture {
    let mut c = app.client();
    let referral = c
        .place_referral(PlaceReferralRequest {
            to_org_id: team.to_string(),
            to_specialty: String::new(),
            ..place(patient_id, Priority::Urgent)
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let unique = || format!("LOINC-{}", &Uuid::now_v7().simple().to_string()[20..]);
    let order = c
        .place_order(lab(patient_id, &unique(), OrderSetting::Outpatient))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let resulted = c
        .place_order(lab(patient_id, &unique(), OrderSetting::Outpatient))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let result = c
        .record_result(RecordResultRequest {
            idempotency_key: key(),
            order_id: resulted.id.clone(),
            flag: ResultFlag::Abnormal as i32,
            code: "K".into(),
            summary: "potassium 6.1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    // A rule of the managing organization, created by its administrator.
    let rule = ReferralsServiceClient::with_interceptor(
        app.channel(),
        careloop_testkit::services::Bearer(token_with_roles(
            PrincipalKind::Staff,
            app.org_id,
            "admin-0",
            &["admin"],
        )),
    )
    .create_pathway_rule(rule_request())
    .await
    .unwrap()
    .into_inner()
    .rule
    .unwrap();
    Fixture {
        referral,
        order,
        result,
        rule,
    }
}

fn rule_request() -> CreatePathwayRuleRequest {
    CreatePathwayRuleRequest {
        idempotency_key: key(),
        name: "transition done: DME check".into(),
        event_type: "plans.transition.completed".into(),
        conditions: Default::default(),
        action: PathwayAction::CreateOrder as i32,
        order_kind: OrderKind::Dme as i32,
        service_type: String::new(),
        owner_role: CareRole::CareManager as i32,
        due_in_minutes: 60,
    }
}

fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    result.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
}

async fn call(
    app: &TestApp,
    c: &mut Matrix,
    service: bool,
    rpc: &str,
    patient_id: &str,
    fx: &Fixture,
) -> Code {
    // A service names the sender; a user's organization is the sender.
    let sender = if service {
        app.org_id.to_string()
    } else {
        String::new()
    };
    let move_referral = |action| TransitionReferralRequest {
        idempotency_key: key(),
        referral_id: fx.referral.id.clone(),
        expected_version: fx.referral.version,
        action: Some(action),
    };
    match rpc {
        "PlaceReferral" => code(
            c.place_referral(PlaceReferralRequest {
                from_org_id: sender,
                ..place(patient_id, Priority::Routine)
            })
            .await,
        ),
        "PlaceReferral(in another organization's name)" => code(
            c.place_referral(PlaceReferralRequest {
                from_org_id: Uuid::now_v7().to_string(),
                ..place(patient_id, Priority::Routine)
            })
            .await,
        ),
        "GetReferral" => code(
            c.get_referral(GetReferralRequest {
                referral_id: fx.referral.id.clone(),
            })
            .await,
        ),
        "TransitionReferral(receiver accepts)" => code(
            c.transition_referral(move_referral(tr::Action::Accept(tr::Accept {
                note: String::new(),
            })))
            .await,
        ),
        "TransitionReferral(sender cancels)" => code(
            c.transition_referral(move_referral(tr::Action::Cancel(tr::Cancel {
                reason: "patient declined".into(),
            })))
            .await,
        ),
        "PlaceOrder" => code(
            c.place_order(lab(
                patient_id,
                &format!("LOINC-{}", &Uuid::now_v7().simple().to_string()[20..]),
                OrderSetting::Outpatient,
            ))
            .await,
        ),
        "GetOrder" => code(
            c.get_order(GetOrderRequest {
                order_id: fx.order.id.clone(),
            })
            .await,
        ),
        "TransitionOrder" => code(
            c.transition_order(TransitionOrderRequest {
                idempotency_key: key(),
                order_id: fx.order.id.clone(),
                expected_version: fx.order.version,
                action: Some(to::Action::Schedule(to::Schedule::default())),
            })
            .await,
        ),
        "RecordResult" => code(
            c.record_result(RecordResultRequest {
                idempotency_key: key(),
                order_id: fx.order.id.clone(),
                flag: ResultFlag::Normal as i32,
                code: "NA".into(),
                summary: "sodium 140".into(),
            })
            .await,
        ),
        "AcknowledgeResult" => code(
            c.acknowledge_result(AcknowledgeResultRequest {
                idempotency_key: key(),
                result_id: fx.result.id.clone(),
                expected_version: fx.result.version,
                action_taken: "repeat BMP in 3 days".into(),
            })
            .await,
        ),
        "ListOpenLoops(patient)" => code(
            c.list_open_loops(ListOpenLoopsRequest {
                filter: Some(Filter::PatientId(patient_id.into())),
                ..Default::default()
            })
            .await,
        ),
        "ListOpenLoops(role)" => code(
            c.list_open_loops(ListOpenLoopsRequest {
                filter: Some(Filter::OwnerRole(CareRole::Rn as i32)),
                ..Default::default()
            })
            .await,
        ),
        "CreatePathwayRule" => code(c.create_pathway_rule(rule_request()).await),
        "ListPathwayRules" => code(c.list_pathway_rules(ListPathwayRulesRequest {}).await),
        "SetPathwayRuleEnabled" => code(
            c.set_pathway_rule_enabled(SetPathwayRuleEnabledRequest {
                idempotency_key: key(),
                rule_id: fx.rule.id.clone(),
                expected_version: fx.rule.version,
                enabled: false,
            })
            .await,
        ),
        other => panic!("no call for {other}"),
    }
}

#[tokio::test]
async fn every_caller_gets_the_exact_code_the_rules_give_on_every_rpc() {
    let app = spawn_app().await;
    let (team, family, payer) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let patient = app.patient().await;
    app.circle(&patient, team, family, payer).await;
    // Every cell is judged; the report lists all that are wrong, not only the first.
    let _cells = careloop_testkit::cases::CaseReport;
    for caller in callers(&app, team, family, payer) {
        let mut c: Matrix = ReferralsServiceClient::with_interceptor(
            app.channel(),
            Credentials {
                token: caller.token.clone(),
                on_behalf_of: caller.on_behalf_of.clone(),
            },
        );
        for rpc in RPCS {
            let fx = fixture(&app, &patient.id, team).await;
            let before =
                Before::take(&app.db, &caller.audited_subject, app.footprint().await).await;
            let got = call(&app, &mut c, caller.rights.service, rpc, &patient.id, &fx).await;
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
