//! W4, the event path to a person: from a committed `referrals.result.routed` (critical) in a
//! producer's outbox, through the relay, NATS and the notifications router, to the item pushed to a
//! connected `WatchInbox` watcher, at a steady offered rate. The real notifications service runs
//! in this process on its own database and stream; the watcher is a gRPC client.

use careloop_proto::common::v1::CareRole;
use careloop_proto::events::v1::ResultRouted;
use careloop_proto::events::v1::event::Payload;
use careloop_proto::notifications::v1::WatchInboxRequest;
use careloop_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use careloop_runtime::auth::{Authenticator, Principal, PrincipalKind};
use careloop_runtime::events::{EventBus, Relay};
use careloop_runtime::metrics::Metrics;
use careloop_runtime::outbox::{self, NewEvent};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

fn bearer(org: Uuid) -> anyhow::Result<String> {
    let auth = Authenticator::new(&careloop_testkit::dev_settings().auth, "bench")?;
    let principal = Principal {
        issuer: careloop_testkit::dev_settings().auth.dev_issuer,
        subject: "pcp-bench".into(),
        org_id: org,
        roles: vec!["pcp".into()],
        kind: PrincipalKind::Staff,
        via: None,
    };
    Ok(format!(
        "Bearer {}",
        auth.issue(&principal, chrono::Duration::hours(1))?
    ))
}

pub async fn commit_to_watch(rate: u64, seconds: u64) -> anyhow::Result<Vec<Duration>> {
    let events = careloop_testkit::event_settings("nats://127.0.0.1:4222");
    // The notifications service, routing from the stream.
    let db = careloop_testkit::fresh_database("notifications").await?;
    let mut settings = careloop_testkit::service_settings(&db);
    settings.events = events.clone();
    settings.database.max_connections = 16;
    let own = careloop_notifications::settings::NotificationSettings::defaults();
    let app = careloop_notifications::Application::build(settings, own).await?;
    let addr = app.addr();
    let (stop_app, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    // The producer: a schema with an outbox and its relay, as referrals has.
    let producer = careloop_testkit::fresh_database("w4").await?;
    let mut db_settings = careloop_runtime::config::Settings::defaults().database;
    db_settings.url = careloop_runtime::secret::Secret::new(producer.migration_url.clone());
    db_settings.max_connections = 20;
    let pool = careloop_runtime::db::connect(&db_settings, "w4").await?;
    careloop_runtime::db::migrate(&pool, "w4", &sqlx::migrate::Migrator::DEFAULT).await?;
    let bus = EventBus::connect(&events).await?;
    bus.ensure_streams().await?;
    let (stop, signal) = tokio::sync::watch::channel(false);
    let relay = Relay::new(pool.clone(), bus, Metrics::new("bench")).spawn(signal);

    // The watcher: the PCP's inbox of the organization.
    let org = Uuid::now_v7();
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let token: tonic::metadata::MetadataValue<_> = bearer(org)?.parse()?;
    let mut client =
        NotificationsServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", token.clone());
            Ok(req)
        });
    let mut stream = client
        .watch_inbox(WatchInboxRequest {
            role: CareRole::Pcp as i32,
            ..Default::default()
        })
        .await?
        .into_inner();
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let total = (rate * seconds) as usize;
    let seen = Arc::clone(&committed);
    let watcher = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(total);
        while latencies.len() < total {
            let Ok(Some(entry)) = stream.message().await else {
                break;
            };
            let arrived = Instant::now();
            let loop_id = entry
                .item
                .and_then(|i| i.r#loop)
                .map(|l| l.id)
                .unwrap_or_default();
            if let Some(at) = seen.lock().expect("not poisoned").get(&loop_id) {
                latencies.push(arrived.duration_since(*at));
            }
        }
        latencies
    });

    let interval = Duration::from_micros(1_000_000 / rate);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = Vec::with_capacity(total);
    for _ in 0..total {
        tick.tick().await;
        let pool = pool.clone();
        let committed = Arc::clone(&committed);
        inflight.push(tokio::spawn(async move {
            let result = Uuid::now_v7();
            let mut tx = pool.begin().await.expect("begin");
            outbox::enqueue(
                &mut tx,
                NewEvent {
                    source: "referrals",
                    patient_id: Some(Uuid::now_v7()),
                    org_id: org,
                    aggregate_id: result,
                    aggregate_version: 2,
                    occurred_at: careloop_runtime::time::now(),
                    payload: Payload::ResultRouted(ResultRouted {
                        result_id: result.to_string(),
                        to_role: CareRole::Pcp as i32,
                        backup_role: CareRole::Rn as i32,
                        due_at: None,
                        flag: careloop_proto::referrals::v1::ResultFlag::Critical as i32,
                    }),
                },
            )
            .await
            .expect("enqueue");
            tx.commit().await.expect("commit");
            committed
                .lock()
                .expect("not poisoned")
                .insert(result.to_string(), Instant::now());
        }));
    }
    for h in inflight {
        h.await?;
    }
    let mut latencies = tokio::time::timeout(Duration::from_secs(120), watcher).await??;
    latencies.sort();
    let _ = stop.send(true);
    let _ = relay.await;
    let _ = stop_app.send(());
    let _ = serving.await;
    careloop_testkit::remove_streams(&events).await;
    Ok(latencies)
}
