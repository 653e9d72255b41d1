//! The CMS-0057-F report and the payer clocks on a fixture with known approvals, denials with and
//! without a reason, an appeal, a pend with resubmission and an extension, across the daylight-saving
//! change of 1 November 2026 (America/New_York); redelivered and shuffled events give the same
//! figures, and a replay into an empty schema reproduces them.

use careloop_proto::events::v1::{
    Event, PriorAuthAppealDecided, PriorAuthDecided, PriorAuthExtended, PriorAuthSubmitted,
    event::Payload,
};
use careloop_proto::metrics::v1::metrics_service_client::MetricsServiceClient;
use careloop_proto::metrics::v1::*;
use careloop_proto::priorauth::v1::Urgency;
use careloop_runtime::auth::{Authenticator, Principal, PrincipalKind};
use careloop_runtime::events::Handler;
use careloop_runtime::time::to_timestamp;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::PgPool;
use uuid::Uuid;

pub(crate) struct App {
    pub(crate) db: PgPool,
    addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) async fn spawn() -> App {
    careloop_runtime::telemetry::init_for_tests();
    let db = careloop_testkit::fresh_database("metrics").await.unwrap();
    let settings = careloop_testkit::service_settings(&db);
    let mut own = careloop_metrics::settings::MetricsSettings::defaults();
    own.plans_addr = "http://127.0.0.1:9".into();
    let app = careloop_metrics::Application::build(settings, own)
        .await
        .unwrap();
    let addr = app.addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    App {
        db: db.admin,
        addr,
        _stop: stop,
    }
}

pub(crate) type Client = MetricsServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>,
    >,
>;

pub(crate) async fn client(app: &App, kind: PrincipalKind, org: Uuid) -> Client {
    let settings = careloop_testkit::dev_settings();
    let auth = Authenticator::new(&settings.auth, "test").unwrap();
    let token = auth
        .issue(
            &Principal {
                issuer: settings.auth.dev_issuer.clone(),
                // A service is known by its name (the callers allowed here); staff by any subject.
                subject: if kind == PrincipalKind::Service {
                    "gateway".into()
                } else {
                    "analyst".into()
                },
                org_id: org,
                roles: vec!["care_manager".into()],
                kind,
                via: None,
            },
            chrono::Duration::hours(1),
        )
        .unwrap();
    let value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    MetricsServiceClient::with_interceptor(
        channel,
        Box::new(move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", value.clone());
            Ok(req)
        }),
    )
}

pub(crate) fn ny(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    chrono_tz_free(m, d, h)
}

/// New York local time as UTC (EDT, UTC-4, until 1 November 2026 02:00; EST, UTC-5, after).
pub(crate) fn chrono_tz_free(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    let local = Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).single().unwrap();
    let offset = if (m, d) < (11, 1) || ((m, d) == (11, 1) && h < 2) {
        4
    } else {
        5
    };
    local + Duration::hours(offset)
}

/// When the step happened, as prior-auth stamps its events.
fn occurred(payload: &Payload) -> Option<prost_types::Timestamp> {
    match payload {
        Payload::PriorAuthSubmitted(p) => p.submitted_at,
        Payload::PriorAuthDecided(p) => p.decided_at,
        Payload::PriorAuthAppealDecided(p) => p.decided_at,
        _ => None,
    }
}

pub(crate) fn event(org: Uuid, request: Uuid, version: i64, payload: Payload, kind: &str) -> Event {
    Event {
        id: Uuid::now_v7().to_string(),
        r#type: kind.into(),
        source: "prior-auth".into(),
        occurred_at: occurred(&payload).or_else(|| Some(to_timestamp(Utc::now()))),
        patient_id: Uuid::now_v7().to_string(),
        org_id: org.to_string(),
        aggregate_id: request.to_string(),
        aggregate_version: version,
        payload: Some(payload),
        ..Default::default()
    }
}

/// The fixture: five requests to one payer ("acme") and one to another ("zenith").
fn fixture(org: Uuid) -> Vec<Event> {
    let submitted = |at: DateTime<Utc>, due: DateTime<Utc>, urgency: Urgency, payer: &str| {
        Payload::PriorAuthSubmitted(PriorAuthSubmitted {
            request_id: String::new(),
            urgency: urgency as i32,
            submitted_at: Some(to_timestamp(at)),
            decision_due_at: Some(to_timestamp(due)),
            resubmission: false,
            payer_id: payer.into(),
            owner_role: 11,
        })
    };
    let decided =
        |at: DateTime<Utc>, decision: &str, urgency: Urgency, reason: &str, payer: &str| {
            Payload::PriorAuthDecided(PriorAuthDecided {
                request_id: String::new(),
                urgency: urgency as i32,
                decision: decision.into(),
                decided_at: Some(to_timestamp(at)),
                denial_reason_code: reason.into(),
                payer_id: payer.into(),
                ..Default::default()
            })
        };
    let s = "priorauth.request.submitted";
    let d = "priorauth.request.decided";
    let mut events = Vec::new();
    let mut add = |request: Uuid, steps: Vec<(Payload, &str)>| {
        for (i, (payload, kind)) in steps.into_iter().enumerate() {
            events.push(event(org, request, i as i64 + 2, payload, kind));
        }
    };
    // A: standard, submitted Thu 29 Oct 09:00 EDT, due 7 calendar days later at 09:00 EST (the
    // clocks went back on 1 Nov: 169 hours); approved Wed 4 Nov 09:00 EST: 145 h. On time.
    add(
        Uuid::now_v7(),
        vec![
            (
                submitted(ny(10, 29, 9), ny(11, 5, 9), Urgency::Standard, "acme"),
                s,
            ),
            (
                decided(ny(11, 4, 9), "approved", Urgency::Standard, "", "acme"),
                d,
            ),
        ],
    );
    // B: standard, submitted 2 Nov 09:00, due 9 Nov 09:00; denied 10 Nov 09:00 with a reason:
    // 192 h, 24 h late.
    add(
        Uuid::now_v7(),
        vec![
            (
                submitted(ny(11, 2, 9), ny(11, 9, 9), Urgency::Standard, "acme"),
                s,
            ),
            (
                decided(
                    ny(11, 10, 9),
                    "denied",
                    Urgency::Standard,
                    "NOT_COVERED",
                    "acme",
                ),
                d,
            ),
        ],
    );
    // C: expedited, submitted 3 Nov 08:00, pended, resubmitted 4 Nov 10:00 (due 7 Nov 10:00);
    // denied without a reason 5 Nov 10:00 (24 h from the resubmission), then approved on appeal.
    let c = Uuid::now_v7();
    add(
        c,
        vec![
            (
                submitted(ny(11, 3, 8), ny(11, 6, 8), Urgency::Expedited, "acme"),
                s,
            ),
            (
                submitted(ny(11, 4, 10), ny(11, 7, 10), Urgency::Expedited, "acme"),
                s,
            ),
            (
                decided(ny(11, 5, 10), "denied", Urgency::Expedited, "", "acme"),
                d,
            ),
            (
                Payload::PriorAuthAppealDecided(PriorAuthAppealDecided {
                    request_id: c.to_string(),
                    urgency: Urgency::Expedited as i32,
                    approved: true,
                    decided_at: Some(to_timestamp(ny(11, 12, 10))),
                    payer_id: "acme".into(),
                }),
                "priorauth.request.appeal_decided",
            ),
        ],
    );
    // D: expedited, submitted 6 Nov 12:00, due 9 Nov 12:00, extended to 11 Nov 12:00, approved
    // 10 Nov 12:00: 96 h, on time against the extension, extended.
    add(
        Uuid::now_v7(),
        vec![
            (
                submitted(ny(11, 6, 12), ny(11, 9, 12), Urgency::Expedited, "acme"),
                s,
            ),
            (
                Payload::PriorAuthExtended(PriorAuthExtended {
                    request_id: String::new(),
                    new_due_at: Some(to_timestamp(ny(11, 11, 12))),
                }),
                "priorauth.request.extended",
            ),
            (
                decided(ny(11, 10, 12), "approved", Urgency::Expedited, "", "acme"),
                d,
            ),
        ],
    );
    // E: standard to another payer, partially approved in 48 h.
    add(
        Uuid::now_v7(),
        vec![
            (
                submitted(ny(11, 2, 9), ny(11, 9, 9), Urgency::Standard, "zenith"),
                s,
            ),
            (
                decided(
                    ny(11, 4, 9),
                    "partially_approved",
                    Urgency::Standard,
                    "",
                    "zenith",
                ),
                d,
            ),
        ],
    );
    events
}

pub(crate) async fn record(db: &PgPool, events: &[Event]) {
    for e in events {
        let mut tx = db.begin().await.unwrap();
        careloop_metrics::recorder::Recorder
            .handle(&mut tx, e)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

pub(crate) fn november() -> Period {
    Period {
        from: Some(to_timestamp(ny(11, 1, 0))),
        to: Some(to_timestamp(ny(12, 1, 0))),
    }
}

#[tokio::test]
async fn the_cms_report_and_payer_clocks_match_the_hand_computed_figures_however_events_arrive() {
    let org = Uuid::now_v7();
    let app = spawn().await;
    let events = fixture(org);
    // Shuffled and every event delivered twice.
    let mut delivered: Vec<Event> = events.iter().rev().cloned().collect();
    delivered.extend(events.iter().cloned());
    record(&app.db, &delivered).await;
    let mut c = client(&app, PrincipalKind::Staff, org).await;

    let all = c
        .get_prior_auth_report(GetPriorAuthReportRequest {
            period: Some(november()),
            payer_id: String::new(),
            org_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(all.decided, 5);
    let standard = all.standard.unwrap();
    // A 145 h approved (across the change), B 192 h denied, E 48 h partially approved.
    assert_eq!(standard.decided, 3);
    assert_eq!(standard.approved_percent, 66.7);
    assert_eq!(standard.denied_percent, 33.3);
    assert_eq!(standard.average_hours, Some(128.3));
    assert_eq!(standard.median_hours, Some(145.0));
    // C 24 h denied (from its resubmission), D 96 h approved.
    let expedited = all.expedited.unwrap();
    assert_eq!(expedited.decided, 2);
    assert_eq!(expedited.approved_percent, 50.0);
    assert_eq!(expedited.average_hours, Some(60.0));
    assert_eq!(expedited.median_hours, Some(60.0));
    assert_eq!(all.approved_after_appeal_percent, 20.0);
    assert_eq!(all.approved_after_extension_percent, 20.0);

    let acme = c
        .get_prior_auth_report(GetPriorAuthReportRequest {
            period: Some(november()),
            payer_id: "acme".into(),
            org_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(acme.decided, 4);

    let clocks = c
        .get_payer_clocks(GetPayerClocksRequest {
            period: Some(november()),
            org_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .payers;
    assert_eq!(clocks.len(), 2);
    let acme = &clocks[0];
    assert_eq!(acme.payer_id, "acme");
    assert_eq!(
        (
            acme.decided,
            acme.on_time,
            acme.late,
            acme.extended,
            acme.denials_without_reason
        ),
        (4, 3, 1, 1, 1)
    );
    assert_eq!(acme.late_decisions.len(), 1);
    assert_eq!(acme.late_decisions[0].hours_late, 24.0);
    assert_eq!(clocks[1].payer_id, "zenith");
    assert_eq!((clocks[1].decided, clocks[1].on_time), (1, 1));

    // The payer's own published figures, entered by a CareLoop service for the organization, are
    // shown beside CareLoop's; staff without the coordinator role may not enter them.
    let figures = PublishedFigures {
        period: Some(november()),
        standard_approved_percent: 91.0,
        standard_denied_percent: 9.0,
        expedited_approved_percent: 95.0,
        expedited_denied_percent: 5.0,
        standard_average_hours: Some(70.0),
        expedited_average_hours: None,
    };
    let entry = RecordPayerPublishedFiguresRequest {
        idempotency_key: Uuid::now_v7().to_string(),
        org_id: org.to_string(),
        payer_id: "acme".into(),
        figures: Some(figures),
    };
    client(&app, PrincipalKind::Service, Uuid::now_v7())
        .await
        .record_payer_published_figures(entry.clone())
        .await
        .unwrap();
    let refused = c
        .record_payer_published_figures(RecordPayerPublishedFiguresRequest {
            org_id: String::new(),
            idempotency_key: Uuid::now_v7().to_string(),
            ..entry.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let clocks = c
        .get_payer_clocks(GetPayerClocksRequest {
            period: Some(november()),
            org_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .payers;
    assert_eq!(
        clocks[0].published,
        Some(figures),
        "acme's own figures beside ours"
    );
    assert_eq!(clocks[1].published, None);

    // Replayed into an empty schema, in stream order: the same figures.
    let replay = spawn().await;
    record(&replay.db, &events).await;
    let mut r = client(&replay, PrincipalKind::Staff, org).await;
    let again = r
        .get_prior_auth_report(GetPriorAuthReportRequest {
            period: Some(november()),
            payer_id: String::new(),
            org_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(again, all);

    // Another organization's staff sees nothing of it; a partner may not ask.
    let mut other = client(&app, PrincipalKind::Staff, Uuid::now_v7()).await;
    let empty = other
        .get_prior_auth_report(GetPriorAuthReportRequest {
            period: Some(november()),
            payer_id: String::new(),
            org_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(empty.decided, 0);
    let denied = client(&app, PrincipalKind::Partner, org)
        .await
        .get_payer_clocks(GetPayerClocksRequest {
            period: Some(november()),
            org_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn bad_periods_and_organizations_name_the_field() {
    let _cases = careloop_testkit::cases::CaseReport;
    use careloop_testkit::refused;
    let org = Uuid::now_v7();
    let app = spawn().await;
    let mut c = client(&app, PrincipalKind::Staff, org).await;
    let good = GetPriorAuthReportRequest {
        period: Some(november()),
        payer_id: String::new(),
        org_id: String::new(),
    };
    refused!(
        c.get_prior_auth_report(GetPriorAuthReportRequest {
            period: None,
            ..good.clone()
        }),
        "period"
    );
    refused!(
        c.get_prior_auth_report(GetPriorAuthReportRequest {
            period: Some(Period {
                from: november().to,
                to: november().from,
            }),
            ..good.clone()
        }),
        "period.to"
    );
    refused!(
        c.get_prior_auth_report(GetPriorAuthReportRequest {
            period: Some(Period {
                from: None,
                to: november().to,
            }),
            ..good.clone()
        }),
        "period.from"
    );
    refused!(
        c.get_prior_auth_report(GetPriorAuthReportRequest {
            org_id: "o".into(),
            ..good.clone()
        }),
        "org_id"
    );
    refused!(
        c.get_payer_clocks(GetPayerClocksRequest {
            period: None,
            org_id: String::new(),
        }),
        "period"
    );
    let mut service = client(&app, PrincipalKind::Service, Uuid::now_v7()).await;
    refused!(
        service.get_payer_clocks(GetPayerClocksRequest {
            period: Some(november()),
            org_id: String::new(),
        }),
        "org_id"
    );
}
