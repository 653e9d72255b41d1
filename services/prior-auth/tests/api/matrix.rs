//! The authorization matrix of prior-auth, generated as a table: kinds of caller (including a
//! payer for its own requests and for another payer's) against every RPC, the exact status code per
//! cell from the rules in docs/security.md; every refusal writes nothing and is audited once.

use crate::helpers::*;
use crate::lifecycle::{complete, create, respond, submit};
use careloop_proto::priorauth::v1::prior_auth_service_client::PriorAuthServiceClient;
use careloop_proto::priorauth::v1::record_payer_response_request::{Denied, Pended, Response};
use careloop_proto::priorauth::v1::*;
use careloop_runtime::auth::{Principal, PrincipalKind, on_behalf_of_header};
use careloop_testkit::callers::{Before, Credentials};
use careloop_testkit::services::token_with_roles;
use tonic::Code;
use uuid::Uuid;

#[derive(Clone, Copy)]
struct Rights {
    read: bool,
    write: bool,
    /// Records payer responses, extensions and appeal decisions for this request.
    decide: bool,
    /// Cross-patient lists (services).
    lists: bool,
}

const NONE: Rights = Rights {
    read: false,
    write: false,
    decide: false,
    lists: false,
};

struct Caller {
    name: String,
    token: String,
    on_behalf_of: Option<String>,
    audited_subject: String,
    rights: Rights,
}

type Matrix = PriorAuthServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Credentials>,
>;

struct Orgs {
    team: Uuid,
    family: Uuid,
}

fn callers(app: &TestApp, orgs: &Orgs) -> Vec<Caller> {
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
    let provider = Rights {
        read: true,
        write: true,
        decide: false,
        lists: false,
    };
    let coordinator = Rights {
        decide: true,
        ..provider
    };
    let reader = Rights { read: true, ..NONE };
    let gateway = token_with_roles(PrincipalKind::Service, Uuid::nil(), "gateway", &[]);
    let users = vec![
        direct(
            "coordinator of the managing organization",
            PrincipalKind::Staff,
            app.org_id,
            "coordinator-1",
            &["prior_auth_coordinator"],
            coordinator,
        ),
        direct(
            "nurse of the managing organization",
            PrincipalKind::Staff,
            app.org_id,
            "nurse-1",
            &["rn"],
            provider,
        ),
        direct(
            "staff of a team organization",
            PrincipalKind::Staff,
            orgs.team,
            "hh-nurse",
            &["prior_auth_coordinator"],
            provider,
        ),
        direct(
            "coordinator elsewhere, same subject",
            PrincipalKind::Staff,
            Uuid::now_v7(),
            "coordinator-1",
            &["prior_auth_coordinator"],
            NONE,
        ),
        direct(
            "partner off the team",
            PrincipalKind::Partner,
            Uuid::now_v7(),
            "stranger",
            &[],
            NONE,
        ),
        direct(
            "caregiver with consent",
            PrincipalKind::Caregiver,
            orgs.family,
            "daughter",
            &[],
            reader,
        ),
        direct(
            "caregiver without consent",
            PrincipalKind::Caregiver,
            orgs.family,
            "son",
            &[],
            NONE,
        ),
        direct(
            "payer for its own request, with consent",
            PrincipalKind::Payer,
            app.acme_org,
            "acme-reviewer",
            &[],
            Rights {
                decide: true,
                ..reader
            },
        ),
        direct(
            "payer for another payer's request",
            PrincipalKind::Payer,
            Uuid::now_v7(),
            "other-payer",
            &[],
            NONE,
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
        token: token_with_roles(PrincipalKind::Service, Uuid::nil(), "referrals", &[]),
        on_behalf_of: None,
        audited_subject: "referrals".into(),
        rights: Rights {
            read: true,
            write: true,
            decide: true,
            lists: true,
        },
    });
    all
}

const RPCS: [&str; 11] = [
    "CreateRequest",
    "UpdateRequest",
    "SubmitRequest",
    "RecordPayerResponse",
    "ExtendDecision",
    "Appeal",
    "RecordAppealDecision",
    "CancelRequest",
    "GetRequest",
    "ListRequests(patient)",
    "ListRequests(status)",
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
    match rpc {
        "CreateRequest" | "UpdateRequest" | "SubmitRequest" | "Appeal" | "CancelRequest" => {
            gate(r, r.write)
        }
        // The request's payer needs no consent to the patient to record its own decision.
        "RecordPayerResponse" | "ExtendDecision" | "RecordAppealDecision" => {
            if r.decide {
                Code::Ok
            } else {
                gate(r, false)
            }
        }
        "GetRequest" | "ListRequests(patient)" => gate(r, r.read),
        "ListRequests(status)" => {
            if r.lists {
                Code::Ok
            } else {
                Code::PermissionDenied
            }
        }
        other => panic!("no rule for {other}"),
    }
}

/// A request of the patient in the state `rpc` acts on, prepared by the managing coordinator.
async fn prepared(app: &TestApp, rpc: &str, patient_id: &str) -> PriorAuthRequest {
    let mut c = app.client();
    let draft = create(&mut c, patient_id, complete(Urgency::Expedited)).await;
    match rpc {
        "RecordPayerResponse" | "ExtendDecision" => submit(&mut c, &draft).await.unwrap(),
        "Appeal" | "RecordAppealDecision" => {
            let submitted = submit(&mut c, &draft).await.unwrap();
            let denied = respond(
                &mut c,
                &submitted,
                Response::Denied(Denied {
                    reason_code: "NMN".into(),
                    reason_text: "not medically necessary".into(),
                }),
            )
            .await
            .unwrap();
            if rpc == "Appeal" {
                denied
            } else {
                c.appeal(AppealRequest {
                    idempotency_key: key(),
                    request_id: denied.id.clone(),
                    expected_version: denied.version,
                    reason: "new echo".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .request
                .unwrap()
            }
        }
        _ => draft,
    }
}

fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    result.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
}

async fn call(c: &mut Matrix, rpc: &str, patient_id: &str, r: &PriorAuthRequest) -> Code {
    let (id, version) = (r.id.clone(), r.version);
    match rpc {
        "CreateRequest" => code(
            c.create_request(CreateRequestRequest {
                idempotency_key: key(),
                patient_id: patient_id.into(),
                content: Some(complete(Urgency::Standard)),
            })
            .await,
        ),
        "UpdateRequest" => code(
            c.update_request(UpdateRequestRequest {
                idempotency_key: key(),
                request_id: id,
                expected_version: version,
                content: Some(complete(Urgency::Standard)),
            })
            .await,
        ),
        "SubmitRequest" => code(
            c.submit_request(SubmitRequestRequest {
                idempotency_key: key(),
                request_id: id,
                expected_version: version,
            })
            .await,
        ),
        "RecordPayerResponse" => code(
            c.record_payer_response(RecordPayerResponseRequest {
                idempotency_key: key(),
                request_id: id,
                expected_version: version,
                response: Some(Response::Pended(Pended {
                    information_requested: "last echo".into(),
                })),
            })
            .await,
        ),
        "ExtendDecision" => code(
            c.extend_decision(ExtendDecisionRequest {
                idempotency_key: key(),
                request_id: id,
                expected_version: version,
                reason: "needs a specialist review".into(),
                new_due_at: in_hours(24 * 10),
            })
            .await,
        ),
        "Appeal" => code(
            c.appeal(AppealRequest {
                idempotency_key: key(),
                request_id: id,
                expected_version: version,
                reason: "new echo".into(),
            })
            .await,
        ),
        "RecordAppealDecision" => code(
            c.record_appeal_decision(RecordAppealDecisionRequest {
                idempotency_key: key(),
                request_id: id,
                expected_version: version,
                approved: true,
                authorization_number: "AUTH-9".into(),
                valid_from: in_hours(0),
                valid_to: in_hours(24 * 30),
                ..Default::default()
            })
            .await,
        ),
        "CancelRequest" => code(
            c.cancel_request(CancelRequestRequest {
                idempotency_key: key(),
                request_id: id,
                expected_version: version,
                reason: "order cancelled".into(),
            })
            .await,
        ),
        "GetRequest" => code(c.get_request(GetRequestRequest { request_id: id }).await),
        "ListRequests(patient)" => code(
            c.list_requests(ListRequestsRequest {
                filter: Some(list_requests_request::Filter::PatientId(patient_id.into())),
                ..Default::default()
            })
            .await,
        ),
        "ListRequests(status)" => code(
            c.list_requests(ListRequestsRequest {
                filter: Some(list_requests_request::Filter::Status(
                    AuthStatus::Submitted as i32,
                )),
                ..Default::default()
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
        team: Uuid::now_v7(),
        family: Uuid::now_v7(),
    };
    let patient = app.patient().await;
    app.circle(&patient, orgs.team, orgs.family, app.acme_org)
        .await;
    // Every cell is judged; the report lists all that are wrong, not only the first.
    let _cells = careloop_testkit::cases::CaseReport;
    for caller in callers(&app, &orgs) {
        let mut c: Matrix = PriorAuthServiceClient::with_interceptor(
            app.channel(),
            Credentials {
                token: caller.token.clone(),
                on_behalf_of: caller.on_behalf_of.clone(),
            },
        );
        for rpc in RPCS {
            let request = prepared(&app, rpc, &patient.id).await;
            let before =
                Before::take(&app.db, &caller.audited_subject, app.footprint().await).await;
            let got = call(&mut c, rpc, &patient.id, &request).await;
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
