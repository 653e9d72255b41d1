//! Pathway triggers through the real event backbone: a discharge home books transport once however
//! often its event is delivered; a confirmed transport with home health refers to home health.

use crate::helpers::*;
use crate::orders::move_order;
use careloop_proto::common::v1::{CareRole, LoopKind};
use careloop_proto::events::v1::{Event, TransitionStarted, event::Payload};
use careloop_proto::plans::v1::{CareSetting, RiskLevel};
use careloop_proto::referrals::v1::list_open_loops_request::Filter;
use careloop_proto::referrals::v1::transition_order_request::{self as to, Action};
use careloop_proto::referrals::v1::*;
use prost::Message;
use std::time::Duration;
use uuid::Uuid;

async fn wait_for<F: Fn(i64) -> bool>(app: &TestApp, sql: &'static str, ok: F) -> i64 {
    for _ in 0..600 {
        let n = app.count(sql).await;
        if ok(n) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.count(sql).await
}

#[tokio::test]
async fn a_discharge_event_delivered_twice_books_one_transport_and_its_confirmation_refers_to_home_health()
 {
    let events = careloop_testkit::event_settings("nats://127.0.0.1:4222");
    let app = spawn_app_with(Some(events.clone())).await;
    let patient = app.patient().await;
    let event = Event {
        id: Uuid::now_v7().to_string(),
        r#type: "plans.transition.started".into(),
        source: "plans".into(),
        occurred_at: Some(careloop_runtime::time::to_timestamp(chrono::Utc::now())),
        patient_id: patient.id.clone(),
        org_id: app.org_id.to_string(),
        aggregate_id: Uuid::now_v7().to_string(),
        aggregate_version: 1,
        traceparent: String::new(),
        payload: Some(Payload::TransitionStarted(TransitionStarted {
            transition_id: Uuid::now_v7().to_string(),
            from_setting: CareSetting::Hospital as i32,
            to_setting: CareSetting::Home as i32,
            risk_level: RiskLevel::High as i32,
        })),
    };
    let bus = careloop_runtime::events::EventBus::connect(&events)
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();
    let subject = bus.subject("plans.transition.started");
    // Delivered twice: the second copy carries another message id, as a republish past the
    // stream's duplicate window would.
    for _ in 0..2 {
        bus.jetstream
            .send_publish(
                subject.clone(),
                async_nats::jetstream::message::PublishMessage::build()
                    .payload(event.encode_to_vec().into())
                    .message_id(Uuid::now_v7().to_string()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let orders = wait_for(
        &app,
        "SELECT count(*) FROM orders WHERE kind = 'transport'",
        |n| n >= 1,
    )
    .await;
    assert_eq!(orders, 1);
    let (handled,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM handled_events WHERE event_id = $1::uuid")
            .bind(&event.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(handled, 1, "the event is recorded as handled once");
    // Wait (bounded) until the consumer has taken and acknowledged both copies: only then does
    // counting prove the second one was recognised as a duplicate, not merely not yet delivered.
    let stream = bus.jetstream.get_stream(&events.stream).await.unwrap();
    let mut consumer_info = None;
    for _ in 0..600 {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer("referrals-pathways").await.unwrap();
        let info = consumer.info().await.unwrap().clone();
        if info.ack_floor.stream_sequence >= 2 && info.num_ack_pending == 0 {
            consumer_info = Some(info);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let info = consumer_info.expect("both copies were delivered and acknowledged");
    assert!(info.delivered.stream_sequence >= 2);
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE kind = 'transport'")
            .await,
        1,
        "the second copy created nothing"
    );

    let mut c = app.client();
    let open = c
        .list_open_loops(ListOpenLoopsRequest {
            filter: Some(Filter::PatientId(patient.id.clone())),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .loops;
    let transport = open
        .iter()
        .find(|l| l.kind == LoopKind::Order as i32)
        .expect("transport order on the board");
    assert_eq!(transport.owner_role, CareRole::DischargePlanner as i32);
    let order = c
        .get_order(GetOrderRequest {
            order_id: transport.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(order.source_rule_id, "01920000-0000-7000-8000-0000000000a1");

    let booked = move_order(
        &mut c,
        &order,
        Action::Schedule(to::Schedule {
            scheduled_at: None,
            window_start: in_hours(6),
            window_end: in_hours(8),
            home_health: Some(true),
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        app.count("SELECT count(*) FROM referrals").await,
        0,
        "booking alone triggers nothing"
    );
    move_order(
        &mut c,
        &booked,
        Action::Confirm(to::Confirm {
            note: "patient knows pickup at 14:00".into(),
        }),
    )
    .await
    .unwrap();
    let referrals = wait_for(
        &app,
        "SELECT count(*) FROM referrals WHERE service_type = 'home health'",
        |n| n >= 1,
    )
    .await;
    assert_eq!(referrals, 1);
    let (owner, rule): (i32, Uuid) =
        sqlx::query_as("SELECT owner_role, source_rule_id FROM referrals")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(owner, CareRole::CareManager as i32);
    assert_eq!(rule.to_string(), "01920000-0000-7000-8000-0000000000a2");
    careloop_testkit::remove_streams(app.events.as_ref().unwrap()).await;
}

#[tokio::test]
async fn rules_are_managed_as_data_and_a_disabled_rule_is_listed_as_such() {
    let app = spawn_app().await;
    let staff = app.client();
    let mut c = app.service_client();
    let rules = staff
        .clone()
        .list_pathway_rules(ListPathwayRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert_eq!(rules.len(), 2, "the two default pathways");
    let created = c
        .create_pathway_rule(CreatePathwayRuleRequest {
            idempotency_key: key(),
            name: "high-risk discharge: DME".into(),
            event_type: "plans.transition.started".into(),
            conditions: [("risk_level".to_string(), "high".to_string())].into(),
            action: PathwayAction::CreateOrder as i32,
            order_kind: OrderKind::Dme as i32,
            service_type: String::new(),
            owner_role: CareRole::CareManager as i32,
            due_in_minutes: 720,
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    let disabled = c
        .set_pathway_rule_enabled(SetPathwayRuleEnabledRequest {
            idempotency_key: key(),
            rule_id: created.id.clone(),
            expected_version: 1,
            enabled: false,
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.version, 2);
    let denied = app
        .outsider()
        .list_pathway_rules(ListPathwayRulesRequest {})
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let not_admin = staff
        .clone()
        .set_pathway_rule_enabled(SetPathwayRuleEnabledRequest {
            idempotency_key: key(),
            rule_id: created.id.clone(),
            expected_version: 2,
            enabled: true,
        })
        .await
        .unwrap_err();
    assert_eq!(
        not_admin.code(),
        tonic::Code::PermissionDenied,
        "only administrators change global rules"
    );
}

#[tokio::test]
async fn an_unconditional_rule_fires_once_per_event_however_often_it_is_handled() {
    use careloop_runtime::events::Handler;
    let app = spawn_app().await;
    let patient = app.patient().await;
    let rule = app
        .service_client()
        .create_pathway_rule(CreatePathwayRuleRequest {
            idempotency_key: key(),
            name: "transition done: DME check".into(),
            event_type: "plans.transition.completed".into(),
            conditions: Default::default(),
            action: PathwayAction::CreateOrder as i32,
            order_kind: OrderKind::Dme as i32,
            service_type: String::new(),
            owner_role: CareRole::CareManager as i32,
            due_in_minutes: 60,
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    let event = Event {
        id: Uuid::now_v7().to_string(),
        r#type: "plans.transition.completed".into(),
        source: "plans".into(),
        patient_id: patient.id.clone(),
        org_id: app.org_id.to_string(),
        aggregate_id: Uuid::now_v7().to_string(),
        aggregate_version: 3,
        payload: Some(Payload::TransitionCompleted(Default::default())),
        ..Default::default()
    };
    let handler = careloop_referrals::pathways::Pathways {
        due: Default::default(),
        plans: None,
    };
    // Handled twice outside the consumer's dedupe: the (rule, event) key still creates one order.
    for _ in 0..2 {
        let mut tx = app.db.begin().await.unwrap();
        handler.handle(&mut tx, &event).await.unwrap();
        tx.commit().await.unwrap();
    }
    let (orders,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM orders WHERE source_rule_id = $1::uuid")
            .bind(&rule.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(orders, 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'referrals.pathway.triggered' \
             AND subject = 'referrals-pathways' AND principal_kind = 'service'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn an_organizations_rule_fires_only_for_its_own_patients_and_others_do_not_see_it() {
    use careloop_proto::events::v1::PatientCreated;
    use careloop_runtime::auth::PrincipalKind;
    use careloop_runtime::events::Handler;
    let app = spawn_app().await;
    let org_a = app.org_id;
    let org_b = Uuid::now_v7();
    let admin = |org: Uuid| {
        careloop_proto::referrals::v1::referrals_service_client::ReferralsServiceClient::with_interceptor(
            app.channel(),
            careloop_testkit::services::Bearer(careloop_testkit::services::token_with_roles(
                PrincipalKind::Staff,
                org,
                "admin-1",
                &["admin"],
            )),
        )
    };
    let rule = admin(org_a)
        .create_pathway_rule(CreatePathwayRuleRequest {
            idempotency_key: key(),
            name: "our transitions: DME check".into(),
            event_type: "plans.transition.completed".into(),
            conditions: Default::default(),
            action: PathwayAction::CreateOrder as i32,
            order_kind: OrderKind::Dme as i32,
            service_type: String::new(),
            owner_role: CareRole::CareManager as i32,
            due_in_minutes: 60,
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert_eq!(
        rule.org_id,
        org_a.to_string(),
        "the rule belongs to its creator's organization"
    );

    let handler = careloop_referrals::pathways::Pathways {
        due: Default::default(),
        plans: None,
    };
    let handle = |event: Event| {
        let handler = &handler;
        let db = app.db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            let result = handler.handle(&mut tx, &event).await;
            tx.commit().await.unwrap();
            result
        }
    };
    let created = |patient: Uuid, org: Uuid| Event {
        id: Uuid::now_v7().to_string(),
        r#type: "plans.patient.created".into(),
        source: "plans".into(),
        patient_id: patient.to_string(),
        org_id: org.to_string(),
        aggregate_id: patient.to_string(),
        aggregate_version: 1,
        payload: Some(Payload::PatientCreated(PatientCreated {
            managing_org_id: org.to_string(),
        })),
        ..Default::default()
    };
    let completed = |patient: Uuid| Event {
        id: Uuid::now_v7().to_string(),
        r#type: "plans.transition.completed".into(),
        source: "plans".into(),
        patient_id: patient.to_string(),
        org_id: org_b.to_string(),
        aggregate_id: Uuid::now_v7().to_string(),
        aggregate_version: 3,
        payload: Some(Payload::TransitionCompleted(Default::default())),
        ..Default::default()
    };
    let (ours, theirs, unknown) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    handle(created(ours, org_a)).await.unwrap();
    handle(created(theirs, org_b)).await.unwrap();
    handle(completed(ours)).await.unwrap();
    handle(completed(theirs)).await.unwrap();
    assert!(
        handle(completed(unknown)).await.is_err(),
        "a patient whose organization is not known yet is retried, not guessed"
    );
    let fired: Vec<String> =
        sqlx::query_scalar("SELECT patient_id::text FROM orders WHERE source_rule_id = $1::uuid")
            .bind(&rule.id)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        fired,
        vec![ours.to_string()],
        "only organization A's patient"
    );

    // Organization B's administrator neither sees nor changes A's rule.
    let listed = admin(org_b)
        .list_pathway_rules(ListPathwayRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert!(listed.iter().all(|r| r.id != rule.id));
    assert_eq!(listed.len(), 2, "the platform defaults only");
    let refused = admin(org_b)
        .set_pathway_rule_enabled(SetPathwayRuleEnabledRequest {
            idempotency_key: key(),
            rule_id: rule.id.clone(),
            expected_version: rule.version,
            enabled: false,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    // Nor may an administrator switch off a platform default for everyone.
    let default = listed.first().unwrap();
    let refused = admin(org_b)
        .set_pathway_rule_enabled(SetPathwayRuleEnabledRequest {
            idempotency_key: key(),
            rule_id: default.id.clone(),
            expected_version: default.version,
            enabled: false,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn an_approved_prior_authorization_creates_a_scheduling_task_once() {
    use careloop_proto::events::v1::PriorAuthDecided;
    use careloop_proto::plans::v1::list_open_tasks_request::Filter as TaskFilter;
    use careloop_runtime::events::Handler;
    let app = spawn_app().await;
    let patient = app.patient().await;
    let rule = app
        .service_client()
        .create_pathway_rule(CreatePathwayRuleRequest {
            idempotency_key: key(),
            name: "approved: schedule the service".into(),
            event_type: "priorauth.request.decided".into(),
            conditions: [("decision".to_string(), "approved".to_string())].into(),
            action: PathwayAction::CreateTask as i32,
            order_kind: 0,
            service_type: String::new(),
            owner_role: CareRole::Scheduler as i32,
            due_in_minutes: 24 * 60,
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert_eq!(rule.action, PathwayAction::CreateTask as i32);
    let handler = careloop_referrals::pathways::Pathways {
        due: Default::default(),
        plans: Some(app.plans_access()),
    };
    let decided = |decision: &str| Event {
        id: Uuid::now_v7().to_string(),
        r#type: "priorauth.request.decided".into(),
        source: "prior-auth".into(),
        occurred_at: Some(careloop_runtime::time::to_timestamp(chrono::Utc::now())),
        patient_id: patient.id.clone(),
        org_id: app.org_id.to_string(),
        aggregate_id: Uuid::now_v7().to_string(),
        aggregate_version: 3,
        payload: Some(Payload::PriorAuthDecided(PriorAuthDecided {
            decision: decision.into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let approved = decided("approved");
    // Handled twice (a redelivery past the consumer's dedupe): one task in plans, one trigger.
    for event in [&approved, &approved, &decided("denied")] {
        let mut tx = app.db.begin().await.unwrap();
        handler.handle(&mut tx, event).await.unwrap();
        tx.commit().await.unwrap();
    }
    let tasks = app
        .plans_client()
        .list_open_tasks(careloop_proto::plans::v1::ListOpenTasksRequest {
            filter: Some(TaskFilter::PatientId(patient.id.clone())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(
        tasks.len(),
        1,
        "the denial created nothing, the redelivery nothing more"
    );
    assert_eq!(tasks[0].title, "approved: schedule the service");
    assert_eq!(tasks[0].owner_role, CareRole::Scheduler as i32);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE event_type = 'referrals.pathway.triggered'")
            .await,
        1
    );
}
