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
