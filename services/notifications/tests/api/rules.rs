//! Routing rules as data: defaults for every organization, an organization's own rules only for
//! its events, managed by its administrators.

use crate::helpers::*;
use careloop_proto::common::v1::CareRole;
use careloop_proto::events::v1::{Event, OrderPlaced, event::Payload};
use careloop_proto::notifications::v1::*;
use careloop_proto::referrals::v1::OrderKind;
use careloop_runtime::auth::PrincipalKind;
use careloop_runtime::events::Handler;
use uuid::Uuid;

fn by_role(role: CareRole, window_minutes: i32) -> Rung {
    Rung {
        target: Some(RoleTarget {
            target: Some(role_target::Target::Role(role as i32)),
        }),
        window_minutes,
    }
}

fn transport_placed(org: Uuid) -> Event {
    Event {
        id: Uuid::now_v7().to_string(),
        r#type: "referrals.order.placed".into(),
        source: "referrals".into(),
        patient_id: Uuid::now_v7().to_string(),
        org_id: org.to_string(),
        aggregate_id: Uuid::now_v7().to_string(),
        aggregate_version: 1,
        payload: Some(Payload::OrderPlaced(OrderPlaced {
            order_id: Uuid::now_v7().to_string(),
            kind: OrderKind::Transport as i32,
            owner_role: CareRole::DischargePlanner as i32,
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_organizations_rule_routes_only_its_own_events_and_others_do_not_see_it() {
    let app = spawn_app().await;
    let rule = app
        .admin()
        .create_routing_rule(CreateRoutingRuleRequest {
            idempotency_key: key(),
            name: "Transport booked: tell the discharge planner".into(),
            event_type: "referrals.order.placed".into(),
            conditions: [("kind".to_string(), "transport".to_string())].into(),
            ladder: vec![
                Rung {
                    target: Some(RoleTarget {
                        target: Some(role_target::Target::EventField("owner_role".into())),
                    }),
                    window_minutes: 60,
                },
                by_role(CareRole::CareManager, 60),
            ],
            priority: NotificationPriority::Routine as i32,
            channels: vec![],
            also: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert_eq!(rule.org_id, app.org_id.to_string());
    assert_eq!(rule.channels, vec![Channel::Inbox as i32]);

    let ours = transport_placed(app.org_id);
    let theirs = transport_placed(Uuid::now_v7());
    for event in [&ours, &theirs] {
        let mut tx = app.db.begin().await.unwrap();
        careloop_notifications::router::Router::default()
            .handle(&mut tx, event)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let items: Vec<(String, i32)> = sqlx::query_as("SELECT org_id::text, role FROM items")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(
        items,
        vec![(app.org_id.to_string(), CareRole::DischargePlanner as i32)],
        "only our organization's event, to the role the event names"
    );

    let defaults = 11;
    let mine = app
        .admin()
        .list_routing_rules(ListRoutingRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert_eq!(mine.len(), defaults + 1);
    let theirs = app
        .client_as(PrincipalKind::Staff, Uuid::now_v7(), "admin-2", &["admin"])
        .list_routing_rules(ListRoutingRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert_eq!(
        theirs.len(),
        defaults,
        "another organization sees only the defaults"
    );

    // Another organization's administrator cannot touch it; a nurse cannot manage rules at all.
    let hidden = app
        .client_as(PrincipalKind::Staff, Uuid::now_v7(), "admin-2", &["admin"])
        .set_routing_rule_enabled(SetRoutingRuleEnabledRequest {
            idempotency_key: key(),
            rule_id: rule.id.clone(),
            expected_version: rule.version,
            enabled: false,
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), tonic::Code::NotFound);
    let nurse = app
        .staff("rn")
        .set_routing_rule_enabled(SetRoutingRuleEnabledRequest {
            idempotency_key: key(),
            rule_id: rule.id.clone(),
            expected_version: rule.version,
            enabled: false,
        })
        .await
        .unwrap_err();
    assert_eq!(nurse.code(), tonic::Code::PermissionDenied);

    // Disabled, it routes nothing more.
    app.admin()
        .set_routing_rule_enabled(SetRoutingRuleEnabledRequest {
            idempotency_key: key(),
            rule_id: rule.id.clone(),
            expected_version: rule.version,
            enabled: false,
        })
        .await
        .unwrap();
    let mut tx = app.db.begin().await.unwrap();
    careloop_notifications::router::Router::default()
        .handle(&mut tx, &transport_placed(app.org_id))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(app.count("SELECT count(*) FROM items").await, 1);
}

#[tokio::test]
async fn a_denial_reaches_the_plan_lead_too_and_a_transition_reaches_the_whole_team() {
    use careloop_proto::events::v1::{
        CarePlanCreated, CareTeamChange, CareTeamChanged, PriorAuthStatusChanged, TransitionStarted,
    };
    use careloop_proto::priorauth::v1::AuthStatus;
    let app = spawn_app().await;
    let patient = Uuid::now_v7();
    let home_health_org = Uuid::now_v7();
    let event = |payload: Payload, event_type: &str| Event {
        id: Uuid::now_v7().to_string(),
        r#type: event_type.into(),
        source: "test".into(),
        patient_id: patient.to_string(),
        org_id: app.org_id.to_string(),
        aggregate_id: Uuid::now_v7().to_string(),
        aggregate_version: 1,
        payload: Some(payload),
        ..Default::default()
    };
    let route = |e: Event| {
        let db = app.db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            careloop_notifications::router::Router::default()
                .handle(&mut tx, &e)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    // The team, as plans' events tell it: a PCP lead, and a home-health agency's nurse.
    route(event(
        Payload::CarePlanCreated(CarePlanCreated {
            plan_id: Uuid::now_v7().to_string(),
            lead_member_id: Uuid::now_v7().to_string(),
            lead_role: CareRole::Pcp as i32,
            lead_organization_id: app.org_id.to_string(),
        }),
        "plans.care_plan.created",
    ))
    .await;
    route(event(
        Payload::CareTeamChanged(CareTeamChanged {
            plan_id: Uuid::now_v7().to_string(),
            member_id: Uuid::now_v7().to_string(),
            change: CareTeamChange::Added as i32,
            role: CareRole::HomeHealth as i32,
            is_lead: false,
            organization_id: home_health_org.to_string(),
        }),
        "plans.care_team.changed",
    ))
    .await;

    route(event(
        Payload::PriorAuthStatusChanged(PriorAuthStatusChanged {
            request_id: Uuid::now_v7().to_string(),
            owner_role: CareRole::PriorAuthCoordinator as i32,
            from_status: AuthStatus::Submitted as i32,
            to_status: AuthStatus::Denied as i32,
            ..Default::default()
        }),
        "priorauth.request.status_changed",
    ))
    .await;
    let denial: Vec<(i32, String)> = sqlx::query_as(
        "SELECT role, org_id::text FROM items WHERE source_event_type = 'priorauth.request.status_changed'
          ORDER BY role",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        denial,
        vec![
            (CareRole::Pcp as i32, app.org_id.to_string()),
            (
                CareRole::PriorAuthCoordinator as i32,
                app.org_id.to_string()
            ),
        ],
        "the coordinator's ladder, and the plan lead told"
    );

    route(event(
        Payload::TransitionStarted(TransitionStarted {
            transition_id: Uuid::now_v7().to_string(),
            ..Default::default()
        }),
        "plans.transition.started",
    ))
    .await;
    let transition: Vec<(i32, String)> = sqlx::query_as(
        "SELECT role, org_id::text FROM items WHERE source_event_type = 'plans.transition.started'
          ORDER BY role",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        transition,
        vec![
            (CareRole::Pcp as i32, app.org_id.to_string()),
            (CareRole::CareManager as i32, app.org_id.to_string()),
            (CareRole::HomeHealth as i32, home_health_org.to_string()),
        ],
        "the care manager, and every team role in its member's organization"
    );
}
