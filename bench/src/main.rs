//! `make bench`: the whole system through the gateway (W1 referral loop, W2 worklist, W3 summary,
//! with each process's CPU and memory and the database's own ceiling; `system`), the event
//! backbone (events per second from outbox commit to consumer handler, and commit-to-handler
//! latency at a steady 500 events/s) and W4 (a routed result to a `WatchInbox` watcher), on the real
//! Postgres and NATS of this machine. Printed and written to bench/results/, never asserted.
//! `BENCH_ONLY=system|backbone|w4` runs one part.

mod inbox;
mod system;

use careloop_proto::events::v1::event::Payload;
use careloop_proto::events::v1::{Event, TaskCreated};
use careloop_runtime::events::{Consumer, ConsumerConfig, EventBus, Handler, Relay};
use careloop_runtime::metrics::Metrics;
use careloop_runtime::outbox::{self, NewEvent};
use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Records, per handled event, the time from its commit to the handler.
struct Stopwatch {
    latencies: Mutex<Vec<Duration>>,
}

impl Handler for Stopwatch {
    fn handle<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let committed = event
                .occurred_at
                .as_ref()
                .and_then(careloop_runtime::time::from_timestamp)
                .unwrap_or_else(chrono::Utc::now);
            let elapsed = (chrono::Utc::now() - committed)
                .to_std()
                .unwrap_or_default();
            self.latencies.lock().expect("not poisoned").push(elapsed);
            Ok(())
        })
    }
}

async fn write_one(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let task = Uuid::now_v7();
    outbox::enqueue(
        &mut tx,
        NewEvent {
            source: "bench",
            patient_id: Some(Uuid::now_v7()),
            org_id: Uuid::nil(),
            aggregate_id: task,
            aggregate_version: 1,
            occurred_at: careloop_runtime::time::now(),
            payload: Payload::TaskCreated(TaskCreated {
                task_id: task.to_string(),
                owner_role: 3,
                ..Default::default()
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Rig {
    pool: PgPool,
    stopwatch: Arc<Stopwatch>,
    settings: careloop_runtime::config::EventSettings,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct Shared(Arc<Stopwatch>);

impl Handler for Shared {
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.0.handle(conn, event)
    }
}

async fn rig(name: &str) -> anyhow::Result<Rig> {
    let db = careloop_testkit::fresh_database("bench").await?;
    let mut db_settings = careloop_runtime::config::Settings::defaults().database;
    // The backbone harness creates its own tables too: it works as the schema owner.
    db_settings.url = careloop_runtime::secret::Secret::new(db.migration_url.clone());
    db_settings.max_connections = 20;
    let pool = careloop_runtime::db::connect(&db_settings, "bench").await?;
    careloop_runtime::db::migrate(&pool, "bench", &sqlx::migrate::Migrator::DEFAULT).await?;
    let settings = careloop_testkit::event_settings("nats://127.0.0.1:4222");
    let bus = EventBus::connect(&settings).await?;
    bus.ensure_streams().await?;
    let (stop, signal) = tokio::sync::watch::channel(false);
    let stopwatch = Arc::new(Stopwatch {
        latencies: Mutex::new(Vec::new()),
    });
    let relay = Relay::new(pool.clone(), bus.clone(), Metrics::new("bench"));
    let mut config = ConsumerConfig::new(name, format!("{}.>", settings.subject_prefix));
    config.batch = 500;
    let consumer = Consumer::new(
        pool.clone(),
        bus,
        config,
        Shared(Arc::clone(&stopwatch)),
        Metrics::new("bench"),
    );
    let tasks = vec![relay.spawn(signal.clone()), consumer.spawn(signal)];
    Ok(Rig {
        pool,
        stopwatch,
        settings,
        stop,
        tasks,
    })
}

impl Rig {
    fn handled(&self) -> usize {
        self.stopwatch.latencies.lock().expect("not poisoned").len()
    }

    async fn wait_for(&self, n: usize) {
        while self.handled() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn finish(self) -> Vec<Duration> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        careloop_testkit::remove_streams(&self.settings).await;
        let mut l = self
            .stopwatch
            .latencies
            .lock()
            .expect("not poisoned")
            .clone();
        l.sort();
        l
    }
}

async fn throughput(total: usize, writers: usize) -> anyhow::Result<()> {
    let rig = rig("bench-throughput").await?;
    let started = Instant::now();
    let per_writer = total / writers;
    let handles: Vec<_> = (0..writers)
        .map(|_| {
            let pool = rig.pool.clone();
            tokio::spawn(async move {
                for _ in 0..per_writer {
                    write_one(&pool).await.expect("write");
                }
            })
        })
        .collect();
    for h in handles {
        h.await?;
    }
    let written = started.elapsed();
    rig.wait_for(per_writer * writers).await;
    let all = started.elapsed();
    let n = per_writer * writers;
    let latencies = rig.finish().await;
    println!("throughput: {n} events, {writers} concurrent writers, one event per transaction");
    println!(
        "  commits:                 {:>8.0} events/s",
        n as f64 / written.as_secs_f64()
    );
    println!(
        "  outbox -> consumer:      {:>8.0} events/s end to end",
        n as f64 / all.as_secs_f64()
    );
    println!(
        "  commit-to-handler under saturation: median {:?}, p99 {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    Ok(())
}

async fn latency_at(rate: u64, seconds: u64) -> anyhow::Result<()> {
    let rig = rig("bench-latency").await?;
    let total = (rate * seconds) as usize;
    let interval = Duration::from_micros(1_000_000 / rate);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut inflight = Vec::with_capacity(total);
    for _ in 0..total {
        tick.tick().await;
        let pool = rig.pool.clone();
        inflight.push(tokio::spawn(async move {
            write_one(&pool).await.expect("write")
        }));
    }
    for h in inflight {
        h.await?;
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    rig.wait_for(total).await;
    let latencies = rig.finish().await;
    println!("latency: {total} events offered at {rate}/s (achieved {offered:.0}/s)");
    println!(
        "  commit-to-handler: median {:?}, p90 {:?}, p99 {:?}, max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}

fn machine() -> serde_json::Value {
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0);
    serde_json::json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "memory_gib": memory_gib,
    })
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Writes the run's figures to bench/results/<date>-<commit>.json.
fn save(results: serde_json::Value) -> anyhow::Result<()> {
    let dir = std::path::Path::new("bench/results");
    std::fs::create_dir_all(dir)?;
    let date = chrono::Utc::now().format("%Y-%m-%dT%H%M").to_string();
    let path = dir.join(format!("{date}-{}.json", commit()));
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
    println!("figures written to {}", path.display());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let total: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    println!(
        "CareLoop event backbone on this machine ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    let mut results = serde_json::json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "commit": commit(),
        "machine": machine(),
    });
    if part("system") {
        println!("-- the system through the gateway (release build, one process per service)");
        results["system"] = system::run(system::Options::from_env()).await?;
    }
    if part("backbone") {
        throughput(total, 8).await?;
        latency_at(500, 10).await?;
    }
    if !part("w4") {
        return save(results);
    }
    let rate: u64 = std::env::var("BENCH_W4_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let seconds = 10;
    let latencies = inbox::commit_to_watch(rate, seconds).await?;
    println!(
        "W4 result to watcher: {} of {} critical results pushed to a WatchInbox watcher, offered at {rate}/s",
        latencies.len(),
        rate * seconds
    );
    println!(
        "  commit-to-watcher: median {:?}, p90 {:?}, p99 {:?}, max {:?} (target p99 under 50 ms)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    results["w4"] = serde_json::json!({
        "offered_per_second": rate,
        "pushed": latencies.len(),
        "p50_ms": percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        "p99_ms": percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
    });
    save(results)
}
