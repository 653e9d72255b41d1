//! Abuse resistance: random method paths cannot grow the metrics page, health answers while every
//! call slot is taken, and one caller cannot hold more than its share of calls.

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::lifecycle::http_get;
use careloop_proto::plans::v1::CreatePatientRequest;
use careloop_runtime::auth::PrincipalKind;
use std::time::Duration;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

async fn metrics_page(app: &TestApp) -> String {
    http_get(app.metrics_addr, "/metrics").await
}

#[tokio::test]
async fn a_thousand_calls_to_random_paths_leave_the_metrics_page_within_a_fixed_size() {
    let app = spawn_app().await;
    // One known call first, so the page has its usual shape.
    let _ = HealthClient::new(app.channel())
        .check(HealthCheckRequest::default())
        .await;
    let before = metrics_page(&app).await.len();
    let mut grpc = tonic::client::Grpc::new(app.channel());
    for i in 0..1000 {
        let path = if i % 2 == 0 {
            format!(
                "/careloop.plans.v1.PlansService/Method{}",
                Uuid::new_v4().simple()
            )
        } else {
            format!("/x{}.Y/{}", Uuid::new_v4().simple(), i)
        };
        grpc.ready().await.unwrap();
        let answer = grpc
            .unary::<(), (), _>(
                tonic::Request::new(()),
                path.parse().unwrap(),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        assert!(answer.is_err());
    }
    let page = metrics_page(&app).await;
    assert!(
        page.contains(r#"method="unknown""#),
        "unknown paths share one label"
    );
    assert!(!page.contains("Method"), "no random path became a label");
    assert!(
        page.len() < before + 4096,
        "the page grew from {before} to {} bytes",
        page.len()
    );

    // Bad tokens are counted by their (fixed) reason, never by what they contained.
    for _ in 0..3 {
        let refused = app
            .client_with(Some("garbage".into()))
            .get_patient(careloop_proto::plans::v1::GetPatientRequest {
                patient_id: Uuid::now_v7().to_string(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
    let page = metrics_page(&app).await;
    assert!(
        page.lines()
            .any(|l| l.starts_with("careloop_auth_refusals_total")
                && l.contains(r#"reason="malformed bearer token""#)
                && l.ends_with(" 3")),
        "bad tokens are counted"
    );
    assert!(!page.contains("garbage"));
}

fn create(org: Uuid) -> CreatePatientRequest {
    CreatePatientRequest {
        idempotency_key: Uuid::now_v7().to_string(),
        mrn: format!("MRN-{}", &Uuid::now_v7().simple().to_string()[20..]),
        given_name: "Ada".into(),
        family_name: "Lovelace".into(),
        birth_date: "1950-03-04".into(),
        managing_org_id: org.to_string(),
    }
}

/// Waits (bounded) until `n` sessions of the test database wait on a lock.
async fn until_waiting(app: &TestApp, n: i64) {
    for _ in 0..200 {
        let waiting = app
            .count(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE wait_event_type = 'Lock' AND datname = current_database()",
            )
            .await;
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{n} calls never reached the database lock");
}

#[tokio::test]
async fn health_answers_while_every_slot_is_taken_and_one_caller_gets_only_its_share() {
    let app = spawn_app_with(|settings| {
        settings.events.enabled = false;
        settings.grpc.concurrency_limit = 2;
        settings.grpc.per_principal_concurrency = 1;
    })
    .await;
    // Hold the patients table so writes block inside the service, each holding a call slot.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE patients IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();

    let first = app.client_with(Some(app.token(PrincipalKind::Staff, app.org_id, "nurse-1")));
    let org = app.org_id;
    let a = tokio::spawn({
        let mut c = first.clone();
        async move { c.create_patient(create(org)).await.map(|_| ()) }
    });
    until_waiting(&app, 1).await;

    // The same caller again: refused at once, its one slot is in use.
    let refused = first.clone().create_patient(create(org)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);

    // Another caller takes the second and last global slot.
    let mut second = app.client_with(Some(app.token(PrincipalKind::Staff, app.org_id, "nurse-2")));
    let b = tokio::spawn(async move { second.create_patient(create(org)).await.map(|_| ()) });
    until_waiting(&app, 2).await;

    // Health still answers (the guard only keeps a broken build from hanging the suite).
    let health = tokio::time::timeout(
        Duration::from_secs(30),
        HealthClient::new(app.channel()).check(HealthCheckRequest::default()),
    )
    .await
    .expect("health is not queued behind the limit")
    .expect("health answers");
    assert_eq!(health.into_inner().status, 1, "SERVING");

    lock.rollback().await.unwrap();
    a.await
        .unwrap()
        .expect("the first call completes once the lock is gone");
    b.await.unwrap().expect("the second call completes too");
}
