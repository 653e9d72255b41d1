//! Plans publishes every change through the outbox: an outage of NATS never fails a write, and
//! every committed change reaches a consumer exactly once after NATS returns.

use crate::helpers::*;
use careloop_proto::common::v1::CareRole;
use careloop_proto::events::v1::Event;
use careloop_proto::plans::v1::*;
use careloop_runtime::events::{Consumer, ConsumerConfig, EventBus, Handler};
use careloop_runtime::metrics::Metrics;
use careloop_testkit::{NatsServer, event_settings, remove_streams};
use futures::future::BoxFuture;
use sqlx::PgConnection;
use std::time::Duration;

struct CountEffects;

impl Handler for CountEffects {
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO test_effects (event_id) VALUES ($1::uuid)")
                .bind(&event.id)
                .execute(conn)
                .await?;
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_thousand_changes_made_while_nats_is_down_all_arrive_exactly_once_after_it_returns() {
    let mut nats = NatsServer::start().await.expect("private nats-server");
    let events = event_settings(&nats.url());
    let app = spawn_app_with(|s| s.events = events.clone()).await;
    let mut c = app.client();
    let patient = app.create_patient(&mut c).await;

    nats.stop();
    let writers = (0..4).map(|w| {
        let mut c = app.client();
        let patient_id = patient.id.clone();
        tokio::spawn(async move {
            for i in 0..250 {
                c.create_task(CreateTaskRequest {
                    idempotency_key: key(),
                    patient_id: patient_id.clone(),
                    title: format!("task {w}-{i}"),
                    owner_role: CareRole::Rn as i32,
                    due_at: in_hours(24),
                    ..Default::default()
                })
                .await
                .expect("writes succeed while NATS is down");
            }
        })
    });
    for w in writers {
        w.await.unwrap();
    }
    let task_events = app
        .count("SELECT count(*) FROM outbox WHERE event_type = 'plans.task.created'")
        .await;
    assert_eq!(task_events, 1000);
    assert!(
        app.count("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .await
            >= 1000
    );

    nats.restart().await.unwrap();
    sqlx::query("CREATE TABLE test_effects (event_id uuid NOT NULL)")
        .execute(&app.db)
        .await
        .unwrap();
    let bus = EventBus::connect(&events).await.unwrap();
    let mut config =
        ConsumerConfig::new("test-outage", format!("{}.plans.>", events.subject_prefix));
    config.ack_wait = Duration::from_secs(5);
    let consumer = Consumer::new(
        app.db.clone(),
        bus,
        config,
        CountEffects,
        Metrics::new("test"),
    );
    let (stop, signal) = tokio::sync::watch::channel(false);
    let task = consumer.spawn(signal);
    let total = app.count("SELECT count(*) FROM outbox").await;
    for _ in 0..1200 {
        if app.count("SELECT count(*) FROM test_effects").await >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM test_effects").await, total);
    assert_eq!(
        app.count("SELECT count(DISTINCT event_id) FROM test_effects")
            .await,
        total
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM test_effects e WHERE e.event_id = o.id)")
            .await,
        0,
        "every committed event had its effect"
    );
    let _ = stop.send(true);
    task.await.unwrap();
    remove_streams(&events).await;
}
