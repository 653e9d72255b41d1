use crate::support::*;
use careloop_runtime::events::Relay;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;

const NATS: &str = "nats://127.0.0.1:4222";

#[tokio::test]
async fn a_committed_event_reaches_the_consumer_once_and_continues_the_producers_trace() {
    let f = fixture(NATS).await;
    let ids: Vec<Uuid> =
        futures::future::join_all((0..10).map(|i| f.write(Uuid::now_v7(), 1 + i % 2))).await;
    let (relay, relay_metrics) = f.relay();
    f.drain(&relay).await;
    assert_eq!(relay_metrics.events_published.get(), 10);
    let name = "test-basic";
    let (consumer, _) = f.consumer(
        f.consumer_config(name),
        Recorder {
            name: name.into(),
            ..Default::default()
        },
    );
    let (stop, signal) = shutdown();
    let task = consumer.spawn(signal);
    wait_until("ten effects", || async { f.effects().await == 10 }).await;
    let (handled_ids,): (Vec<Uuid>,) = sqlx::query_as("SELECT array_agg(event_id) FROM effects")
        .fetch_one(&f.pool)
        .await
        .unwrap();
    for id in &ids {
        assert!(handled_ids.contains(id));
    }
    let traced = count(&f.pool, "SELECT count(*) FROM effects WHERE same_trace").await;
    assert_eq!(
        traced, 10,
        "the consumer span continues the producer's trace"
    );
    let _ = stop.send(true);
    task.await.unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn a_relay_that_dies_after_publishing_and_before_marking_causes_no_second_effect() {
    let f = fixture(NATS).await;
    for _ in 0..50 {
        f.write(Uuid::now_v7(), 1).await;
    }
    let (relay, _) = f.relay();
    f.drain(&relay).await;
    // The crash: the publishes were acknowledged but the "published" marks never committed.
    sqlx::query("UPDATE outbox SET published_at = NULL")
        .execute(&f.pool)
        .await
        .unwrap();
    let (restarted, _) = f.relay();
    f.drain(&restarted).await;
    assert_eq!(
        f.stream_messages().await,
        50,
        "JetStream drops the duplicate publishes by Nats-Msg-Id"
    );
    // A duplicate that slipped past the stream's window (a new message id) still has no second effect.
    let (payload,): (Vec<u8>,) = sqlx::query_as("SELECT payload FROM outbox LIMIT 1")
        .fetch_one(&f.pool)
        .await
        .unwrap();
    let subject = f.bus.subject("plans.patient.created");
    f.bus
        .jetstream
        .send_publish(
            subject,
            async_nats::jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(Uuid::now_v7().to_string()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let name = "test-dedupe";
    let (consumer, metrics) = f.consumer(
        f.consumer_config(name),
        Recorder {
            name: name.into(),
            ..Default::default()
        },
    );
    let (stop, signal) = shutdown();
    let task = consumer.spawn(signal);
    wait_until("51 deliveries", || async {
        metrics.consumer_handled.with_label_values(&[name]).get()
            + metrics.consumer_duplicates.with_label_values(&[name]).get()
            == 51
    })
    .await;
    assert_eq!(f.effects().await, 50);
    assert_eq!(f.distinct_effects().await, 50);
    assert_eq!(
        metrics.consumer_duplicates.with_label_values(&[name]).get(),
        1
    );
    let _ = stop.send(true);
    task.await.unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn a_consumer_that_crashes_mid_batch_gets_exactly_one_effect_per_event_after_redelivery() {
    let f = fixture(NATS).await;
    for _ in 0..100 {
        f.write(Uuid::now_v7(), 1).await;
    }
    let (relay, _) = f.relay();
    f.drain(&relay).await;
    let name = "test-crash";
    let seen = Arc::new(AtomicUsize::new(0));
    let crashing = Recorder {
        name: name.into(),
        block_at: Some((30, Arc::clone(&seen))),
        ..Default::default()
    };
    let (consumer, _) = f.consumer(f.consumer_config(name), crashing);
    let (_stop_a, signal_a) = shutdown();
    let task = consumer.spawn(signal_a);
    wait_until("the handler is stuck on the 30th event", || async {
        seen.load(std::sync::atomic::Ordering::SeqCst) >= 30
    })
    .await;
    // The crash: the task dies mid-batch, holding an uncommitted transaction and unacknowledged
    // messages (and possibly acknowledged ones from earlier batches).
    task.abort();
    let _ = task.await;
    let (restarted, metrics) = f.consumer(
        f.consumer_config(name),
        Recorder {
            name: name.into(),
            ..Default::default()
        },
    );
    let (stop, signal) = shutdown();
    let task = restarted.spawn(signal);
    wait_until("100 effects", || async { f.effects().await == 100 }).await;
    assert_eq!(f.distinct_effects().await, 100);
    assert!(
        metrics
            .consumer_redeliveries
            .with_label_values(&[name])
            .get()
            >= 1
    );
    let _ = stop.send(true);
    task.await.unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn an_event_whose_handler_always_fails_goes_to_dead_letters_and_later_events_keep_flowing() {
    let f = fixture(NATS).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(f.write(Uuid::now_v7(), 1).await);
    }
    let poison = ids[5].to_string();
    let (relay, _) = f.relay();
    f.drain(&relay).await;
    let name = "test-dlq";
    let mut config = f.consumer_config(name);
    config.max_deliver = 3;
    let handler = Recorder {
        name: name.into(),
        fail_on: Some(poison.clone()),
        ..Default::default()
    };
    let (consumer, metrics) = f.consumer(config, handler);
    let (stop, signal) = shutdown();
    let task = consumer.spawn(signal);
    wait_until("one dead letter", || async { f.dead_letters().await == 1 }).await;
    for _ in 0..5 {
        f.write(Uuid::now_v7(), 1).await;
    }
    f.drain(&relay).await;
    wait_until("24 effects", || async { f.effects().await == 24 }).await;
    assert_eq!(
        metrics
            .consumer_dead_letters
            .with_label_values(&[name])
            .get(),
        1
    );
    let dlq = f
        .bus
        .jetstream
        .get_stream(format!("{}_DLQ", f.settings.stream))
        .await
        .unwrap()
        .get_last_raw_message_by_subject(&f.bus.dead_letter_subject(name))
        .await
        .unwrap();
    let headers = dlq.headers;
    assert_eq!(
        headers.get("CareLoop-Event-Id").map(|v| v.as_str()),
        Some(poison.as_str())
    );
    assert!(
        headers
            .get("CareLoop-Reason")
            .unwrap()
            .as_str()
            .contains("handler refuses")
    );
    let poisoned =
        sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM effects WHERE event_id = $1::uuid")
            .bind(&poison)
            .fetch_one(&f.pool)
            .await
            .unwrap()
            .0;
    assert_eq!(poisoned, 0);
    let _ = stop.send(true);
    task.await.unwrap();
    f.cleanup().await;
}

/// Writes `per_aggregate` versions for each of `aggregates` aggregates, interleaved.
async fn interleaved(f: &Fixture, aggregates: usize, per_aggregate: i64) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..aggregates).map(|_| Uuid::now_v7()).collect();
    for version in 1..=per_aggregate {
        futures::future::join_all(ids.iter().map(|a| f.write(*a, version))).await;
    }
    ids
}

async fn run_two_relays(f: &Fixture) -> u64 {
    let (a, ma) = f.relay();
    let (b, mb) = f.relay();
    let (stop, signal) = shutdown();
    let ta = Relay::spawn(a, signal.clone());
    let tb = Relay::spawn(b, signal);
    wait_until("both relays drained the outbox", || async {
        f.unpublished().await == 0
    })
    .await;
    let _ = stop.send(true);
    ta.await.unwrap();
    tb.await.unwrap();
    ma.events_published.get() + mb.events_published.get()
}

#[tokio::test]
async fn two_relays_on_one_schema_publish_every_row_once_between_them() {
    let f = fixture(NATS).await;
    interleaved(&f, 100, 20).await;
    let published = run_two_relays(&f).await;
    assert_eq!(published, 2000, "each row published by exactly one relay");
    assert_eq!(f.stream_messages().await, 2000);
    f.cleanup().await;
}

#[tokio::test]
async fn a_consumer_sees_one_aggregates_events_in_version_order() {
    let f = fixture(NATS).await;
    interleaved(&f, 20, 30).await;
    run_two_relays(&f).await;
    let name = "test-order";
    let (consumer, _) = f.consumer(
        f.consumer_config(name),
        Recorder {
            name: name.into(),
            ..Default::default()
        },
    );
    let (stop, signal) = shutdown();
    let task = consumer.spawn(signal);
    wait_until("600 effects", || async { f.effects().await == 600 }).await;
    let out_of_order = count(
        &f.pool,
        "SELECT count(*) FROM (
             SELECT version, lag(version) OVER (PARTITION BY aggregate_id ORDER BY seq) AS previous FROM effects
         ) v WHERE previous IS NOT NULL AND version <> previous + 1",
    )
    .await;
    assert_eq!(out_of_order, 0);
    let _ = stop.send(true);
    task.await.unwrap();
    f.cleanup().await;
}

/// The versions the consumer applied for one aggregate, in the order it applied them.
async fn applied_versions(f: &Fixture, aggregate: Uuid) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM effects WHERE aggregate_id = $1 ORDER BY seq")
        .bind(aggregate)
        .fetch_all(&f.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn later_events_of_an_aggregate_wait_for_an_earlier_one_that_is_retried() {
    let f = fixture(NATS).await;
    let held = Uuid::now_v7();
    let first = f.write(held, 1).await;
    f.write(held, 2).await;
    f.write(held, 3).await;
    let free = Uuid::now_v7();
    f.write(free, 1).await;
    let (relay, _) = f.relay();
    f.drain(&relay).await;
    let name = "test-wait";
    let tries = Arc::new(AtomicUsize::new(0));
    let handler = Recorder {
        name: name.into(),
        fail_first: Some((first.to_string(), 3, Arc::clone(&tries))),
        ..Default::default()
    };
    let (consumer, metrics) = f.consumer(f.consumer_config(name), handler);
    let (stop, signal) = shutdown();
    let task = consumer.spawn(signal);
    wait_until("4 effects", || async { f.effects().await == 4 }).await;
    assert_eq!(
        applied_versions(&f, held).await,
        vec![1, 2, 3],
        "versions 2 and 3 waited for version 1"
    );
    assert_eq!(
        tries.load(Ordering::SeqCst),
        4,
        "three failures, then applied"
    );
    assert_eq!(
        applied_versions(&f, free).await,
        vec![1],
        "another aggregate does not wait"
    );
    let first_applied: i64 = sqlx::query_scalar("SELECT seq FROM effects WHERE event_id = $1")
        .bind(first)
        .fetch_one(&f.pool)
        .await
        .unwrap();
    let free_applied: i64 = sqlx::query_scalar("SELECT seq FROM effects WHERE aggregate_id = $1")
        .bind(free)
        .fetch_one(&f.pool)
        .await
        .unwrap();
    assert!(
        free_applied < first_applied,
        "the other aggregate went ahead"
    );
    assert_eq!(
        metrics
            .consumer_dead_letters
            .with_label_values(&[name])
            .get(),
        0
    );
    assert_eq!(
        count(&f.pool, "SELECT count(*) FROM consumer_waiting").await,
        0
    );
    let _ = stop.send(true);
    task.await.unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn later_events_of_an_aggregate_go_on_once_an_earlier_one_is_dead_lettered() {
    let f = fixture(NATS).await;
    let held = Uuid::now_v7();
    let poison = f.write(held, 1).await;
    f.write(held, 2).await;
    f.write(held, 3).await;
    let (relay, _) = f.relay();
    f.drain(&relay).await;
    let name = "test-wait-dlq";
    let mut config = f.consumer_config(name);
    config.max_deliver = 3;
    let handler = Recorder {
        name: name.into(),
        fail_on: Some(poison.to_string()),
        ..Default::default()
    };
    let (consumer, _) = f.consumer(config, handler);
    let (stop, signal) = shutdown();
    let task = consumer.spawn(signal);
    wait_until("2 effects", || async { f.effects().await == 2 }).await;
    assert_eq!(f.dead_letters().await, 1, "only the failing event");
    assert_eq!(
        applied_versions(&f, held).await,
        vec![2, 3],
        "waiting is no try: the later events were applied, in order"
    );
    assert_eq!(
        count(&f.pool, "SELECT count(*) FROM consumer_waiting").await,
        0
    );
    let _ = stop.send(true);
    task.await.unwrap();
    f.cleanup().await;
}
