//! Partner webhooks against an HTTP server the test runs: a delivery carries a signature that
//! verifies with the Standard Webhooks algorithm, is retried with the same id after a 500, an
//! endpoint failing again and again is disabled until re-enabled, and a delivery can be resent.

use crate::helpers::*;
use base64::Engine as _;
use careloop_notifications::webhooks::{Dispatcher, Policy};
use careloop_proto::common::v1::CareRole;
use careloop_proto::events::v1::{Event, OrderPlaced, event::Payload};
use careloop_proto::notifications::v1::*;
use careloop_proto::referrals::v1::OrderKind;
use careloop_runtime::events::Handler;
use chrono::{Duration, Utc};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// What the test endpoint received, and the statuses it answers with, in order (then 200).
#[derive(Clone, Default)]
struct Endpoint {
    received: Arc<Mutex<Vec<(http::HeaderMap, String)>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

async fn serve(endpoint: Endpoint) -> String {
    async fn hook(
        axum::extract::State(e): axum::extract::State<Endpoint>,
        headers: http::HeaderMap,
        body: String,
    ) -> http::StatusCode {
        e.received.lock().unwrap().push((headers, body));
        let code = e.answers.lock().unwrap().pop_front().unwrap_or(200);
        http::StatusCode::from_u16(code).unwrap()
    }
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(endpoint);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

fn dispatcher(app: &TestApp) -> Dispatcher {
    dispatcher_with(app, 5)
}

fn dispatcher_with(app: &TestApp, max_attempts: i32) -> Dispatcher {
    Dispatcher {
        pool: app.db.clone(),
        client: careloop_runtime::http::HttpClient::with_ca_file(
            "",
            std::time::Duration::from_secs(10),
            64 * 1024,
        )
        .unwrap(),
        policy: Policy {
            max_attempts,
            disable_after: 3,
            first_backoff: std::time::Duration::from_secs(5),
            max_backoff: std::time::Duration::from_secs(60),
        },
        allow_http: true,
    }
}

/// The Standard Webhooks verification, written from the specification: HMAC-SHA256 keyed with the
/// base64 part of the secret over "id.timestamp.body", base64, after "v1,".
fn verifies(secret: &str, headers: &http::HeaderMap, body: &str) -> bool {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let signed = format!(
        "{}.{}.{}",
        header("webhook-id"),
        header("webhook-timestamp"),
        body
    );
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
        signed.as_bytes(),
    );
    let expected = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    header("webhook-signature")
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

async fn route_transports_to_webhooks(app: &TestApp) {
    app.admin()
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
            priority: NotificationPriority::Routine as i32,
            channels: vec![Channel::Inbox as i32, Channel::Webhook as i32],
            also: vec![],
        })
        .await
        .unwrap();
}

async fn transport_booked(app: &TestApp) -> Uuid {
    let order = Uuid::now_v7();
    let event = Event {
        id: Uuid::now_v7().to_string(),
        r#type: "referrals.order.placed".into(),
        source: "referrals".into(),
        patient_id: Uuid::now_v7().to_string(),
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
    let mut tx = app.db.begin().await.unwrap();
    careloop_notifications::router::Router::default()
        .handle(&mut tx, &event)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    order
}

#[tokio::test]
async fn a_signed_delivery_is_retried_after_a_500_with_the_same_id_and_can_be_resent() {
    let app = spawn_app().await;
    route_transports_to_webhooks(&app).await;
    let endpoint = Endpoint::default();
    endpoint.answers.lock().unwrap().push_back(500);
    let url = serve(endpoint.clone()).await;
    let created = app
        .admin()
        .create_webhook_endpoint(CreateWebhookEndpointRequest {
            idempotency_key: key(),
            url: url.clone(),
            event_types: vec![],
            org_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let secret = created.secret.clone();
    assert!(secret.starts_with("whsec_"));
    let order = transport_booked(&app).await;
    let dispatch = dispatcher(&app);

    let now = Utc::now();
    assert_eq!(dispatch.dispatch_due(now, 10).await.unwrap(), 1);
    assert_eq!(
        dispatch.dispatch_due(now, 10).await.unwrap(),
        0,
        "the retry waits for its backoff"
    );
    assert_eq!(
        dispatch
            .dispatch_due(now + Duration::minutes(5), 10)
            .await
            .unwrap(),
        1
    );
    let received = endpoint.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    for (headers, body) in &received {
        assert!(verifies(&secret, headers, body), "signature verifies");
        assert!(!verifies(
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            headers,
            body
        ));
    }
    assert_eq!(
        received[0].0.get("webhook-id"),
        received[1].0.get("webhook-id"),
        "a retry is the same message"
    );
    let body: serde_json::Value = serde_json::from_str(&received[1].1).unwrap();
    assert_eq!(body["type"], "notifications.item.raised");
    assert_eq!(body["data"]["loop"]["id"], order.to_string());
    assert_eq!(body["data"]["role"], "discharge_planner");

    let mut admin = app.admin();
    let endpoint_id = created.endpoint.unwrap().id;
    let log = admin
        .list_webhook_deliveries(ListWebhookDeliveriesRequest {
            endpoint_id: endpoint_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    assert_eq!(log.len(), 1);
    let delivered = &log[0];
    assert_eq!(delivered.status, DeliveryStatus::Delivered as i32);
    let codes: Vec<i32> = delivered.attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, vec![500, 200]);
    assert_eq!(
        received[0].0.get("webhook-id").unwrap().to_str().unwrap(),
        delivered.id
    );

    // A manual resend goes out again under the same id.
    admin
        .resend_webhook_delivery(ResendWebhookDeliveryRequest {
            idempotency_key: key(),
            delivery_id: delivered.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(dispatch.dispatch_due(Utc::now(), 10).await.unwrap(), 1);
    let received = endpoint.received.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    assert_eq!(
        received[2].0.get("webhook-id").unwrap().to_str().unwrap(),
        delivered.id
    );
    // Another organization's administrator sees no such endpoint.
    let stranger = app
        .client_as(
            careloop_runtime::auth::PrincipalKind::Staff,
            Uuid::now_v7(),
            "admin-2",
            &["admin"],
        )
        .list_webhook_deliveries(ListWebhookDeliveriesRequest {
            endpoint_id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_disabled_until_re_enabled() {
    let app = spawn_app().await;
    route_transports_to_webhooks(&app).await;
    let endpoint = Endpoint::default();
    endpoint.answers.lock().unwrap().extend([500, 503, 500]);
    let url = serve(endpoint.clone()).await;
    let created = app
        .admin()
        .create_webhook_endpoint(CreateWebhookEndpointRequest {
            idempotency_key: key(),
            url,
            event_types: vec!["notifications.item.raised".into()],
            org_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap();
    for _ in 0..3 {
        transport_booked(&app).await;
    }
    // One try per delivery: each failure is a failed delivery.
    let dispatch = dispatcher_with(&app, 1);
    assert_eq!(dispatch.dispatch_due(Utc::now(), 10).await.unwrap(), 3);
    let mut admin = app.admin();
    let listed = admin
        .list_webhook_endpoints(ListWebhookEndpointsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .endpoints;
    assert_eq!(listed.len(), 1);
    let disabled = &listed[0];
    assert!(
        !disabled.enabled,
        "three failed deliveries in a row disable it"
    );
    assert_eq!(disabled.consecutive_failures, 3);
    assert!(disabled.disabled_at.is_some());

    // Disabled: nothing is sent, and new changes are not queued for it.
    transport_booked(&app).await;
    let later = Utc::now() + Duration::hours(2);
    assert_eq!(dispatch.dispatch_due(later, 10).await.unwrap(), 0);
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries").await,
        3
    );

    // Re-enabled by its administrator; a resend of the failed deliveries goes out (the server now
    // answers 200).
    let enabled = admin
        .set_webhook_endpoint_enabled(SetWebhookEndpointEnabledRequest {
            idempotency_key: key(),
            endpoint_id: created.id.clone(),
            expected_version: disabled.version,
            enabled: true,
        })
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap();
    assert_eq!((enabled.enabled, enabled.consecutive_failures), (true, 0));
    let failed = admin
        .list_webhook_deliveries(ListWebhookDeliveriesRequest {
            endpoint_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    assert_eq!(failed.len(), 3);
    for d in &failed {
        assert_eq!(d.status, DeliveryStatus::Failed as i32);
        admin
            .resend_webhook_delivery(ResendWebhookDeliveryRequest {
                idempotency_key: key(),
                delivery_id: d.id.clone(),
            })
            .await
            .unwrap();
    }
    assert_eq!(dispatch.dispatch_due(later, 10).await.unwrap(), 3);
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'")
            .await,
        3
    );
    assert_eq!(endpoint.received.lock().unwrap().len(), 6);
}
