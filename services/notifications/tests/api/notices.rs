//! Email and SMS notices: an item from a rule with those channels reaches the on-duty members of
//! its role at an SMTP server and an SMS provider the test runs, saying where to look and never
//! what about; an off-duty member gets nothing; a refused try is retried.

use crate::helpers::*;
use careloop_notifications::router::Router;
use careloop_notifications::settings::NotificationSettings;
use careloop_proto::common::v1::CareRole;
use careloop_proto::events::v1::{Event, OrderPlaced, event::Payload};
use careloop_proto::notifications::v1::*;
use careloop_proto::referrals::v1::OrderKind;
use careloop_runtime::events::Handler;
use chrono::{DateTime, TimeZone, Utc};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;

/// What the test SMTP server accepted: (envelope recipient, message data).
type Mailbox = Arc<Mutex<Vec<(String, String)>>>;

/// A minimal SMTP server: greets, accepts EHLO, MAIL, RCPT and DATA (answering 451 to the first
/// `refuse_first` MAIL commands), and keeps each message.
async fn smtp_server(refuse_first: usize) -> (u16, Mailbox) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mailbox: Mailbox = Arc::default();
    let refusals = Arc::new(Mutex::new(refuse_first));
    let kept = Arc::clone(&mailbox);
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let kept = Arc::clone(&kept);
            let refusals = Arc::clone(&refusals);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut rcpt = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-test\r\n250 SIZE 1000000\r\n"
                    } else if upper.starts_with("MAIL") {
                        let mut left = refusals.lock().unwrap();
                        if *left > 0 {
                            *left -= 1;
                            b"451 try again later\r\n"
                        } else {
                            b"250 OK\r\n"
                        }
                    } else if upper.starts_with("RCPT") {
                        rcpt = line[8..].trim_matches(['<', '>', ' ']).to_owned();
                        b"250 OK\r\n"
                    } else if upper == "DATA" {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        kept.lock().unwrap().push((rcpt.clone(), data));
                        b"250 queued\r\n"
                    } else if upper == "QUIT" {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        return;
                    } else {
                        b"500 what\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mailbox)
}

/// What the test SMS provider received: (authorization header, JSON body).
type Texts = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A minimal SMS provider: keeps each JSON body with its authorization header, answers an id.
async fn sms_provider() -> (String, Texts) {
    let sent: Texts = Arc::default();
    async fn send(
        axum::extract::State(sent): axum::extract::State<Texts>,
        headers: http::HeaderMap,
        body: String,
    ) -> String {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        sent.lock()
            .unwrap()
            .push((auth, serde_json::from_str(&body).unwrap()));
        r#"{"id": "sms-42"}"#.to_owned()
    }
    let app = axum::Router::new()
        .route("/send", axum::routing::post(send))
        .with_state(Arc::clone(&sent));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/send"), sent)
}

fn noon_tuesday() -> DateTime<Utc> {
    chrono_tz::America::New_York
        .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn on_duty_members_get_an_email_and_a_text_that_carry_no_patient_data() {
    let app = spawn_app().await;
    let mut admin = app.admin();
    let shift = |start: &str, end: &str| Shift {
        weekdays: vec![1, 2, 3, 4, 5, 6, 7],
        start: start.into(),
        end: end.into(),
    };
    admin
        .set_roster(SetRosterRequest {
            idempotency_key: key(),
            org_id: String::new(),
            role: CareRole::DischargePlanner as i32,
            time_zone: "America/New_York".into(),
            members: vec![
                RosterMember {
                    subject: "planner-day".into(),
                    shifts: vec![shift("07:00", "19:00")],
                    email: "day.planner@hospital.example".into(),
                    phone: "+15551230001".into(),
                },
                RosterMember {
                    subject: "planner-night".into(),
                    shifts: vec![shift("19:00", "07:00")],
                    email: "night.planner@hospital.example".into(),
                    phone: "+15551230002".into(),
                },
            ],
            backup_role: 0,
            expected_version: 0,
        })
        .await
        .unwrap();
    admin
        .create_routing_rule(CreateRoutingRuleRequest {
            idempotency_key: key(),
            name: "Transport booked".into(),
            event_type: "referrals.order.placed".into(),
            conditions: [("kind".to_string(), "transport".to_string())].into(),
            ladder: vec![Rung {
                target: Some(RoleTarget {
                    target: Some(role_target::Target::EventField("owner_role".into())),
                }),
                window_minutes: 60,
            }],
            priority: NotificationPriority::Urgent as i32,
            channels: vec![Channel::Email as i32, Channel::Sms as i32],
            also: vec![],
        })
        .await
        .unwrap();
    let patient = Uuid::now_v7();
    let order = Uuid::now_v7();
    let event = Event {
        id: Uuid::now_v7().to_string(),
        r#type: "referrals.order.placed".into(),
        source: "referrals".into(),
        patient_id: patient.to_string(),
        org_id: app.org_id.to_string(),
        aggregate_id: order.to_string(),
        aggregate_version: 1,
        payload: Some(Payload::OrderPlaced(OrderPlaced {
            order_id: order.to_string(),
            kind: OrderKind::Transport as i32,
            owner_role: CareRole::DischargePlanner as i32,
            ..Default::default()
        })),
        ..Default::default()
    };
    let noon = noon_tuesday();
    let router = Router {
        clock: Arc::new(move || noon),
        directory: Default::default(),
    };
    for _ in 0..2 {
        let mut tx = app.db.begin().await.unwrap();
        router.handle(&mut tx, &event).await.unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(
        app.count("SELECT count(*) FROM outbound_messages").await,
        2,
        "an email and a text for the day planner, once, none for the night planner"
    );

    let (smtp_port, mailbox) = smtp_server(1).await;
    let (sms_url, texts) = sms_provider().await;
    let mut own = NotificationSettings::defaults();
    own.email.enabled = true;
    own.email.host = "127.0.0.1".into();
    own.email.port = smtp_port;
    own.email.starttls = false;
    own.email.from = "careloop@hospital.example".into();
    own.sms.enabled = true;
    own.sms.url = sms_url;
    own.sms.token = careloop_runtime::secret::Secret::new("provider-token");
    let dispatcher =
        careloop_notifications::messages_dispatcher(app.db.clone(), &own, None).unwrap();

    // The SMTP server refuses the first try (451); the text goes through.
    assert_eq!(dispatcher.dispatch_due(noon, 10).await.unwrap(), 2);
    assert_eq!(mailbox.lock().unwrap().len(), 0);
    let later = noon + chrono::Duration::hours(1);
    assert_eq!(dispatcher.dispatch_due(later, 10).await.unwrap(), 1);

    let mails = mailbox.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    let (to, data) = &mails[0];
    assert_eq!(to, "day.planner@hospital.example");
    assert!(data.contains("Subject: CareLoop: urgent item waiting for discharge_planner"));
    let item: Uuid = sqlx::query_scalar("SELECT id FROM items")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(data.contains(&item.to_string()), "names the item to open");
    assert!(
        !data.contains(&patient.to_string()),
        "no patient data: {data}"
    );

    let texts = texts.lock().unwrap().clone();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].0, "Bearer provider-token");
    assert_eq!(texts[0].1["to"], "+15551230001");
    let text = texts[0].1["text"].as_str().unwrap();
    assert!(text.contains(&item.to_string()) && !text.contains(&patient.to_string()));

    let receipts: Vec<(String, String, String)> =
        sqlx::query_as("SELECT channel, status, receipt FROM outbound_messages ORDER BY channel")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(receipts[0].0, "email");
    assert_eq!(receipts[0].1, "sent");
    assert!(
        receipts[0].2.starts_with("queued <"),
        "the server's acceptance and the Message-ID: {}",
        receipts[0].2
    );
    assert_eq!(
        receipts[1],
        ("sms".to_string(), "sent".to_string(), "sms-42".to_string())
    );

    // The provider's delivery report, passed on by a CareLoop service: the text was delivered.
    let mut service = app.client_as(
        careloop_runtime::auth::PrincipalKind::Service,
        Uuid::now_v7(),
        "gateway",
        &[],
    );
    let report = |id: &str| RecordDeliveryReportRequest {
        idempotency_key: key(),
        channel: "sms".into(),
        provider_message_id: id.into(),
        outcome: ReportedOutcome::Delivered as i32,
    };
    assert!(
        service
            .record_delivery_report(report("sms-42"))
            .await
            .unwrap()
            .into_inner()
            .matched
    );
    assert!(
        !service
            .record_delivery_report(report("sms-42"))
            .await
            .unwrap()
            .into_inner()
            .matched,
        "a repeated report changes nothing"
    );
    assert!(
        !service
            .record_delivery_report(report("sms-unknown"))
            .await
            .unwrap()
            .into_inner()
            .matched
    );
    let staff = app
        .staff("discharge_planner")
        .record_delivery_report(report("sms-42"))
        .await
        .unwrap_err();
    assert_eq!(staff.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        app.count("SELECT count(*) FROM outbound_messages WHERE status = 'delivered'")
            .await,
        1
    );

    // An item taken before its notices go out: they are cancelled, not sent.
    let second = Event {
        id: Uuid::now_v7().to_string(),
        aggregate_id: Uuid::now_v7().to_string(),
        ..event.clone()
    };
    let mut tx = app.db.begin().await.unwrap();
    router.handle(&mut tx, &second).await.unwrap();
    tx.commit().await.unwrap();
    let (id, version): (Uuid, i64) =
        sqlx::query_as("SELECT id, version FROM items WHERE source_event_id = $1::uuid")
            .bind(&second.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    app.staff("discharge_planner")
        .acknowledge_item(AcknowledgeItemRequest {
            idempotency_key: key(),
            item_id: id.to_string(),
            expected_version: version,
            note: "booked already".into(),
        })
        .await
        .unwrap();
    assert_eq!(dispatcher.dispatch_due(later, 10).await.unwrap(), 0);
    assert_eq!(
        app.count("SELECT count(*) FROM outbound_messages WHERE status = 'cancelled'")
            .await,
        2
    );
    assert_eq!(mailbox.lock().unwrap().len(), 1, "nothing more was sent");
}

#[tokio::test]
async fn a_caregiver_is_told_only_at_their_contact_while_consent_is_active_and_audited() {
    use careloop_proto::events::v1::TransitionStarted;
    use careloop_proto::plans::v1 as plans;
    let app = spawn_app().await;
    let patient = app.patient().await;
    let mut p = app.plans_client();
    let plan = p
        .create_care_plan(plans::CreateCarePlanRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            content: Some(plans::CarePlanContent {
                summary: "Home safely".into(),
                ..Default::default()
            }),
            lead: Some(plans::NewCareTeamMember {
                kind: plans::MemberKind::Person as i32,
                display_name: "Dr. Lead".into(),
                role: CareRole::Pcp as i32,
                organization_id: app.org_id.to_string(),
                subject: "dr-lead".into(),
                is_lead: true,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    let caregiver = |name: &str, address: &str| plans::NewCareTeamMember {
        kind: plans::MemberKind::Person as i32,
        display_name: name.into(),
        role: CareRole::FamilyCaregiver as i32,
        preferred_contact: Some(plans::PreferredContact {
            channel: plans::ContactChannel::Email as i32,
            address: address.into(),
        }),
        ..Default::default()
    };
    let mut version = plan.version;
    let mut members = Vec::new();
    for (name, address) in [
        ("Daughter", "daughter@family.example"),
        ("Son", "son@family.example"),
    ] {
        let added = p
            .add_care_team_member(plans::AddCareTeamMemberRequest {
                idempotency_key: key(),
                patient_id: patient.id.clone(),
                expected_version: version,
                member: Some(caregiver(name, address)),
            })
            .await
            .unwrap()
            .into_inner();
        version = added.plan.unwrap().version;
        members.push(added.member.unwrap());
    }
    // Only the daughter has the patient's consent.
    let consent = p
        .grant_consent(plans::GrantConsentRequest {
            idempotency_key: key(),
            patient_id: patient.id.clone(),
            grantee_member_id: members[0].id.clone(),
            purpose: plans::ConsentPurpose::FamilyInvolvement as i32,
            scope: plans::ConsentScope::Read as i32,
            period_start: in_hours(-1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    app.admin()
        .create_routing_rule(CreateRoutingRuleRequest {
            idempotency_key: key(),
            name: "Discharge: cardiology readmission risk".into(),
            event_type: "plans.transition.started".into(),
            conditions: Default::default(),
            ladder: vec![Rung {
                target: Some(RoleTarget {
                    target: Some(role_target::Target::Role(CareRole::FamilyCaregiver as i32)),
                }),
                window_minutes: 60,
            }],
            priority: NotificationPriority::Routine as i32,
            channels: vec![],
            also: vec![],
        })
        .await
        .unwrap();
    let started = || Event {
        id: Uuid::now_v7().to_string(),
        r#type: "plans.transition.started".into(),
        source: "plans".into(),
        patient_id: patient.id.clone(),
        org_id: app.org_id.to_string(),
        aggregate_id: Uuid::now_v7().to_string(),
        aggregate_version: 1,
        payload: Some(Payload::TransitionStarted(TransitionStarted {
            transition_id: Uuid::now_v7().to_string(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let route = |event: Event| {
        let db = app.db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            Router::default().handle(&mut tx, &event).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    route(started()).await;

    let (smtp_port, mailbox) = smtp_server(0).await;
    let mut own = NotificationSettings::defaults();
    own.email.enabled = true;
    own.email.host = "127.0.0.1".into();
    own.email.port = smtp_port;
    own.email.starttls = false;
    let dispatcher =
        careloop_notifications::messages_dispatcher(app.db.clone(), &own, Some(app.plans_access()))
            .unwrap();
    assert_eq!(
        dispatcher.dispatch_due(Utc::now(), 10).await.unwrap(),
        1,
        "plans is asked whom"
    );
    assert_eq!(
        dispatcher.dispatch_due(Utc::now(), 10).await.unwrap(),
        1,
        "one caregiver may be told"
    );
    let mails = mailbox.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].0, "daughter@family.example");
    assert!(
        !mails[0].1.contains("cardiology") && !mails[0].1.contains(&patient.id),
        "no clinical detail, not even the rule's name: {}",
        mails[0].1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'SendCaregiverNotice' \
             AND subject = 'notifications-messages' AND patient_id IS NOT NULL"
        )
        .await,
        1
    );

    // A notice queued, then the consent revoked before it goes: it is cancelled, not sent.
    route(started()).await;
    assert_eq!(dispatcher.dispatch_due(Utc::now(), 10).await.unwrap(), 1);
    p.revoke_consent(plans::RevokeConsentRequest {
        idempotency_key: key(),
        consent_id: consent.id.clone(),
        reason: "patient withdrew".into(),
        expected_version: consent.version,
    })
    .await
    .unwrap();
    assert_eq!(dispatcher.dispatch_due(Utc::now(), 10).await.unwrap(), 1);
    assert_eq!(mailbox.lock().unwrap().len(), 1, "nothing more was sent");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM outbound_messages WHERE status = 'cancelled' \
             AND last_error LIKE '%consent%'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn an_urgent_item_nobody_opens_gets_the_fallback_text_and_an_opened_one_does_not() {
    use careloop_proto::events::v1::ResultRouted;
    use careloop_proto::referrals::v1::ResultFlag;
    let app = spawn_app().await;
    app.admin()
        .set_roster(SetRosterRequest {
            idempotency_key: key(),
            org_id: String::new(),
            role: CareRole::Rn as i32,
            time_zone: "America/New_York".into(),
            members: vec![RosterMember {
                subject: "rn-day".into(),
                shifts: vec![Shift {
                    weekdays: vec![1, 2, 3, 4, 5],
                    start: "07:00".into(),
                    end: "19:00".into(),
                }],
                email: String::new(),
                phone: "+15551230009".into(),
            }],
            backup_role: 0,
            expected_version: 0,
        })
        .await
        .unwrap();
    let noon = noon_tuesday();
    let router = Router {
        clock: Arc::new(move || noon),
        directory: Default::default(),
    };
    let mut ids = Vec::new();
    for _ in 0..2 {
        let result = Uuid::now_v7();
        let event = Event {
            id: Uuid::now_v7().to_string(),
            r#type: "referrals.result.routed".into(),
            source: "referrals".into(),
            patient_id: Uuid::now_v7().to_string(),
            org_id: app.org_id.to_string(),
            aggregate_id: result.to_string(),
            aggregate_version: 2,
            payload: Some(Payload::ResultRouted(ResultRouted {
                result_id: result.to_string(),
                to_role: CareRole::Rn as i32,
                backup_role: CareRole::Hospitalist as i32,
                due_at: None,
                flag: ResultFlag::Critical as i32,
            })),
            ..Default::default()
        };
        let mut tx = app.db.begin().await.unwrap();
        router.handle(&mut tx, &event).await.unwrap();
        tx.commit().await.unwrap();
        let id: Uuid = sqlx::query_scalar("SELECT id FROM items WHERE source_event_id = $1::uuid")
            .bind(&event.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
        ids.push(id);
    }
    // The RN opens the first; a second look is no second reading.
    let mut rn = app.staff("rn");
    for _ in 0..2 {
        let item = rn
            .get_item(GetItemRequest {
                item_id: ids[0].to_string(),
            })
            .await
            .unwrap()
            .into_inner()
            .item
            .unwrap();
        assert_eq!(item.read_by, "rn-1");
        assert!(item.read_at.is_some());
    }
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'notifications.item.read'")
            .await,
        1
    );
    // Ten minutes on, nobody opened the second: a text goes to the on-duty RN, once.
    let sweep = |at| {
        careloop_notifications::escalation::sweep_with(
            &app.db,
            at,
            10,
            chrono::Duration::minutes(10),
        )
    };
    sweep(noon + chrono::Duration::minutes(9)).await.unwrap();
    assert_eq!(app.count("SELECT count(*) FROM outbound_messages").await, 0);
    sweep(noon + chrono::Duration::minutes(11)).await.unwrap();
    sweep(noon + chrono::Duration::minutes(12)).await.unwrap();
    let fallbacks: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT item_id, channel, address FROM outbound_messages WHERE kind = 'fallback'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        fallbacks,
        vec![(ids[1], "sms".to_string(), "+15551230009".to_string())]
    );
}
