//! The system benchmark: the release binaries of every service and the gateway started as their own
//! processes on a scratch database of the local PostgreSQL and a private stream of the local NATS, a
//! synthetic population loaded, then workloads driven through the gateway at a fixed concurrency:
//! W1 the referral loop (place + 4 moves), W2 a role's worklist (first page of 50), W3 the one-screen
//! summary of a random patient. Each reports throughput, p50/p99/p999 and each process's CPU and
//! peak resident memory. The database's own ceiling (pgbench, a transaction shaped like one W1
//! write) is measured in the same run, so figures from noisy machines compare. Nothing is asserted.

use careloop_proto::common::v1::{CareRole, Priority};
use careloop_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use careloop_proto::gateway::v1::{GetPatientSummaryRequest, ListWorklistRequest};
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::plans::v1::{
    CarePlanContent, CreateCarePlanRequest, CreatePatientRequest, CreateTaskRequest, MemberKind,
    NewCareTeamMember,
};
use careloop_proto::referrals::v1::transition_referral_request::{self as tr, Action};
use careloop_proto::referrals::v1::{PlaceReferralRequest, TransitionReferralRequest};
use careloop_runtime::auth::PrincipalKind;
use careloop_testkit::services::Bearer;
use serde_json::json;
use sqlx::Connection as _;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

type Gateway = GatewayServiceClient<InterceptedService<Channel, Bearer>>;

const DB: &str = "careloop_bench";
/// gRPC ports of the benchmark's processes (metrics on 9200 + the last digit).
const SERVICES: [(&str, u16); 6] = [
    ("plans", 51051),
    ("referrals", 51052),
    ("prior-auth", 51053),
    ("notifications", 51054),
    ("metrics", 51055),
    ("gateway", 51050),
];

pub struct Options {
    pub patients: usize,
    pub concurrency: usize,
    pub seconds: u64,
    /// Also W2 and W3 at these population sizes (grown in place), to show how cost grows.
    pub scale: Vec<usize>,
}

impl Options {
    pub fn from_env() -> Self {
        let num = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            patients: num("BENCH_PATIENTS", 10_000),
            concurrency: num("BENCH_CONCURRENCY", 16),
            seconds: num("BENCH_SECONDS", 15) as u64,
            scale: std::env::var("BENCH_SCALE")
                .ok()
                .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
                .unwrap_or_default(),
        }
    }
}

/// One process of the system, with what it used.
struct Proc {
    name: &'static str,
    child: Child,
}

fn ticks_and_rss(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((utime + stime, rss_kb))
}

/// CPU (cores used, on average) and peak resident memory per process over a workload.
#[derive(Default, Clone)]
struct Usage {
    start_ticks: HashMap<&'static str, u64>,
    end_ticks: HashMap<&'static str, u64>,
    peak_rss_kb: HashMap<&'static str, u64>,
}

struct Sampler {
    pids: Vec<(&'static str, u32)>,
}

/// The machine's shared PostgreSQL and NATS, by process name: (label, command name).
const SHARED: [(&str, &str); 2] = [
    ("postgres (all)", "postgres"),
    ("nats-server", "nats-server"),
];

/// CPU ticks summed over every process with this command name (PostgreSQL runs one per
/// connection; a backend that exits mid-run takes its ticks with it, so this is a floor).
fn group_ticks(command: &str) -> (u64, u64) {
    let mut ticks = 0;
    let mut rss = 0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    // (the memory total is kept for callers that want it; the report prints CPU only)
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != command {
            continue;
        }
        if let Some((t, r)) = ticks_and_rss(pid) {
            ticks += t;
            rss += r;
        }
    }
    (ticks, rss)
}

impl Sampler {
    /// Samples every 200 ms while `work` runs.
    async fn during<T>(&self, work: impl std::future::Future<Output = T>) -> (T, Usage, Duration) {
        let mut usage = Usage::default();
        for (name, pid) in &self.pids {
            if let Some((t, rss)) = ticks_and_rss(*pid) {
                usage.start_ticks.insert(name, t);
                usage.peak_rss_kb.insert(name, rss);
            }
        }
        for (label, command) in SHARED {
            // CPU only: summing resident memory over PostgreSQL's backends counts its shared
            // buffers once per backend.
            usage.start_ticks.insert(label, group_ticks(command).0);
        }
        let started = Instant::now();
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
        let pids = self.pids.clone();
        let sampler = tokio::spawn(async move {
            let mut peaks: HashMap<&'static str, u64> = HashMap::new();
            loop {
                for (name, pid) in &pids {
                    if let Some((_, rss)) = ticks_and_rss(*pid) {
                        let peak = peaks.entry(name).or_default();
                        *peak = (*peak).max(rss);
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = &mut done_rx => return peaks,
                }
            }
        });
        let out = work.await;
        let elapsed = started.elapsed();
        let _ = done_tx.send(());
        if let Ok(peaks) = sampler.await {
            for (name, peak) in peaks {
                let e = usage.peak_rss_kb.entry(name).or_default();
                *e = (*e).max(peak);
            }
        }
        for (name, pid) in &self.pids {
            if let Some((t, _)) = ticks_and_rss(*pid) {
                usage.end_ticks.insert(name, t);
            }
        }
        for (label, command) in SHARED {
            usage.end_ticks.insert(label, group_ticks(command).0);
        }
        (out, usage, elapsed)
    }
}

fn clock_ticks_per_sec() -> f64 {
    // Linux reports CPU time in USER_HZ, 100 on every mainstream configuration.
    100.0
}

fn usage_json(usage: &Usage, elapsed: Duration) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, end) in &usage.end_ticks {
        let start = usage.start_ticks.get(name).copied().unwrap_or(*end);
        let cores =
            end.saturating_sub(start) as f64 / clock_ticks_per_sec() / elapsed.as_secs_f64();
        out.insert(
            (*name).to_owned(),
            json!({
                "cpu_cores": (cores * 100.0).round() / 100.0,
                "peak_rss_mb": (usage.peak_rss_kb.get(name).copied().unwrap_or(0) as f64 / 1024.0 * 10.0).round() / 10.0,
            }),
        );
    }
    serde_json::Value::Object(out)
}

/// The `p` quantile in milliseconds (the backbone figures' percentile).
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    crate::percentile(sorted, p).as_secs_f64() * 1000.0
}

/// Runs `op` from `concurrency` workers for `seconds`; returns each completed operation's latency
/// and the number of failures.
async fn drive<F, Fut>(concurrency: usize, seconds: u64, op: F) -> (Vec<Duration>, usize)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let op = Arc::clone(&op);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0;
                let mut i = w;
                while Instant::now() < deadline {
                    let started = Instant::now();
                    match op(i).await {
                        Ok(()) => latencies.push(started.elapsed()),
                        Err(_) => failures += 1,
                    }
                    i += concurrency;
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failed = 0;
    for w in workers {
        if let Ok((l, f)) = w.await {
            all.extend(l);
            failed += f;
        }
    }
    all.sort();
    (all, failed)
}

fn report(
    name: &str,
    unit: &str,
    latencies: &[Duration],
    failures: usize,
    usage: &Usage,
    elapsed: Duration,
) -> serde_json::Value {
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{name:<34} {rate:>8.1} {unit}/s  p50 {:>7.1} ms  p99 {:>7.1} ms  p999 {:>7.1} ms  ({} done, {failures} failed)",
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        percentile(latencies, 0.999),
        latencies.len()
    );
    let usage = usage_json(usage, elapsed);
    if let Some(map) = usage.as_object() {
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        let line: Vec<String> = names
            .iter()
            .map(|n| {
                let cores = map[*n]["cpu_cores"].as_f64().unwrap_or(0.0);
                match map[*n]["peak_rss_mb"].as_f64().unwrap_or(0.0) {
                    0.0 => format!("{n} {cores:.2} cores"),
                    mb => format!("{n} {cores:.2} cores {mb:.0} MB"),
                }
            })
            .collect();
        println!("    {}", line.join(" | "));
    }
    json!({
        "workload": name,
        "unit": unit,
        "per_second": (rate * 10.0).round() / 10.0,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "p999_ms": percentile(latencies, 0.999),
        "completed": latencies.len(),
        "failed": failures,
        "seconds": elapsed.as_secs_f64(),
        "processes": usage,
    })
}

async fn admin() -> anyhow::Result<sqlx::PgConnection> {
    Ok(sqlx::PgConnection::connect(&careloop_testkit::admin_url()).await?)
}

/// A scratch database with one schema and role per service, as `make run` lays them out.
async fn scratch_database() -> anyhow::Result<()> {
    let mut admin = admin().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {DB} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DB}")))
        .execute(&mut admin)
        .await?;
    let url = careloop_testkit::admin_url();
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url);
    let mut conn = sqlx::PgConnection::connect(&format!("{base}/{DB}")).await?;
    for (name, _) in SERVICES {
        let schema = name.replace('-', "_");
        let role = format!("careloop_{schema}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             CREATE SCHEMA {schema} AUTHORIZATION {role};"
        )))
        .execute(&mut conn)
        .await?;
    }
    Ok(())
}

fn start(events: &careloop_runtime::config::EventSettings) -> anyhow::Result<Vec<Proc>> {
    let addr = |name: &str| {
        SERVICES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| format!("http://127.0.0.1:{p}"))
            .unwrap_or_default()
    };
    let logs = std::path::Path::new("target/bench-logs");
    std::fs::create_dir_all(logs)?;
    let mut procs = Vec::new();
    for (i, (name, port)) in SERVICES.iter().enumerate() {
        let schema = name.replace('-', "_");
        let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
        let mut cmd = Command::new(format!("target/release/careloop-{name}"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CARELOOP__AUTH__DEV_MODE", "true")
            .env(
                "CARELOOP__DATABASE__URL",
                format!("postgres://careloop_{schema}@127.0.0.1:5432/{DB}"),
            )
            .env("CARELOOP__DATABASE__MAX_CONNECTIONS", "16")
            .env("CARELOOP__GRPC__ADDR", format!("127.0.0.1:{port}"))
            .env("CARELOOP__GRPC__PER_PRINCIPAL_CONCURRENCY", "10000")
            .env("CARELOOP__METRICS__ADDR", format!("127.0.0.1:{}", 9200 + i))
            .env("CARELOOP__EVENTS__STREAM", &events.stream)
            .env("CARELOOP__EVENTS__SUBJECT_PREFIX", &events.subject_prefix)
            .env("CARELOOP__TELEMETRY__LOG_LEVEL", "warn")
            .env("CARELOOP__TELEMETRY__LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(log);
        let section = schema.clone();
        if *name != "plans" && *name != "gateway" {
            cmd.env(
                format!("CARELOOP__{}__PLANS_ADDR", section.to_uppercase()),
                addr("plans"),
            );
        }
        if *name == "gateway" {
            for (key, target) in [
                ("PLANS_ADDR", "plans"),
                ("REFERRALS_ADDR", "referrals"),
                ("PRIOR_AUTH_ADDR", "prior-auth"),
                ("NOTIFICATIONS_ADDR", "notifications"),
            ] {
                cmd.env(format!("CARELOOP__GATEWAY__{key}"), addr(target));
            }
            // One synthetic principal drives the load: the rate limits are not what is measured.
            cmd.env("CARELOOP__GATEWAY__ORG_RATE_PER_SEC", "1000000.0")
                .env("CARELOOP__GATEWAY__ORG_BURST", "1000000")
                .env("CARELOOP__GATEWAY__PRINCIPAL_RATE_PER_SEC", "1000000.0")
                .env("CARELOOP__GATEWAY__PRINCIPAL_BURST", "1000000");
        }
        let child = cmd.spawn().map_err(|e| {
            anyhow::anyhow!("starting target/release/careloop-{name} (make bench builds it): {e}")
        })?;
        procs.push(Proc { name, child });
    }
    Ok(procs)
}

async fn wait_serving(port: u16) -> anyhow::Result<Channel> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))?.connect_lazy();
    for _ in 0..240 {
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        if let Ok(answer) = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            && answer.into_inner().status
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        {
            return Ok(channel);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    anyhow::bail!("port {port} did not become SERVING (see target/bench-logs)")
}

fn token(org: Uuid) -> String {
    careloop_testkit::services::token_with_roles(
        PrincipalKind::Staff,
        org,
        "bench-nurse",
        &["rn", "care_manager", "pcp"],
    )
}

/// Grows the population to `target` patients (each with a plan led by the hospital's PCP and an
/// open RN task due within two days either side of now; every fifth with an open referral),
/// written to plans and referrals directly at `concurrency`.
async fn grow(
    plans: &Channel,
    gateway: &Gateway,
    org: Uuid,
    have: &mut Vec<String>,
    target: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(have.len()));
    let made = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = Arc::clone(&next);
            let made = Arc::clone(&made);
            let mut p = PlansServiceClient::with_interceptor(plans.clone(), Bearer(token(org)));
            let mut g = gateway.clone();
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= target {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let patient = p
                        .create_patient(CreatePatientRequest {
                            idempotency_key: Uuid::now_v7().to_string(),
                            mrn: format!("B{n:08}"),
                            given_name: "Bench".into(),
                            family_name: format!("Patient{n}"),
                            birth_date: "1950-01-01".into(),
                            managing_org_id: org.to_string(),
                        })
                        .await?
                        .into_inner()
                        .patient
                        .unwrap_or_default();
                    p.create_care_plan(CreateCarePlanRequest {
                        idempotency_key: Uuid::now_v7().to_string(),
                        patient_id: patient.id.clone(),
                        content: Some(CarePlanContent {
                            summary: "home safely".into(),
                            ..Default::default()
                        }),
                        lead: Some(NewCareTeamMember {
                            kind: MemberKind::Organization as i32,
                            display_name: "Primary care".into(),
                            role: CareRole::Pcp as i32,
                            organization_id: org.to_string(),
                            is_lead: true,
                            ..Default::default()
                        }),
                    })
                    .await?;
                    let hours = (n % 96) as i64 - 48;
                    p.create_task(CreateTaskRequest {
                        idempotency_key: Uuid::now_v7().to_string(),
                        patient_id: patient.id.clone(),
                        title: "call the patient".into(),
                        owner_role: CareRole::Rn as i32,
                        due_at: Some(careloop_runtime::time::to_timestamp(
                            chrono::Utc::now() + chrono::Duration::hours(hours),
                        )),
                        ..Default::default()
                    })
                    .await?;
                    if n.is_multiple_of(5) {
                        g.place_referral(referral(&patient.id, org)).await?;
                    }
                    made.lock().await.push(patient.id);
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    have.extend(made.lock().await.drain(..));
    Ok(started.elapsed())
}

fn referral(patient: &str, org: Uuid) -> PlaceReferralRequest {
    PlaceReferralRequest {
        idempotency_key: Uuid::now_v7().to_string(),
        patient_id: patient.into(),
        from_org_id: org.to_string(),
        from_clinician: "bench".into(),
        // Received by the same organization, so one caller runs the whole loop.
        to_org_id: org.to_string(),
        service_type: "cardiology".into(),
        reason: "follow-up".into(),
        urgency: Priority::Routine as i32,
        owner_role: CareRole::CareManager as i32,
        ..Default::default()
    }
}

/// W1: place a referral, then accepted, scheduled, seen, note received (5 writes).
async fn referral_loop(g: &mut Gateway, patient: &str, org: Uuid) -> anyhow::Result<()> {
    let r = g
        .place_referral(referral(patient, org))
        .await?
        .into_inner()
        .referral
        .unwrap_or_default();
    let mut version = r.version;
    for action in [
        Action::Accept(tr::Accept {
            note: String::new(),
        }),
        Action::Schedule(tr::Schedule {
            appointment_at: Some(careloop_runtime::time::to_timestamp(
                chrono::Utc::now() + chrono::Duration::days(3),
            )),
            location: "clinic".into(),
        }),
        Action::Seen(tr::Seen {
            note: String::new(),
        }),
        Action::NoteReceived(tr::NoteReceived {
            note_reference: "DocumentReference/1".into(),
        }),
    ] {
        version = g
            .transition_referral(TransitionReferralRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                referral_id: r.id.clone(),
                expected_version: version,
                action: Some(action),
            })
            .await?
            .into_inner()
            .referral
            .unwrap_or_default()
            .version;
    }
    Ok(())
}

async fn reads(
    sampler: &Sampler,
    gateway: &Gateway,
    patients: &Arc<Vec<String>>,
    options: &Options,
    size: usize,
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let g = gateway.clone();
    let ((lat, failed), usage, elapsed) = sampler
        .during(drive(options.concurrency, options.seconds, move |_| {
            let mut g = g.clone();
            async move {
                g.list_worklist(ListWorklistRequest {
                    role: CareRole::Rn as i32,
                    page_size: 50,
                    page_token: String::new(),
                })
                .await?;
                Ok(())
            }
        }))
        .await;
    let mut w2 = report(
        &format!("W2 worklist page of 50 ({size} pts)"),
        "req",
        &lat,
        failed,
        &usage,
        elapsed,
    );
    w2["patients"] = json!(size);
    out.push(w2);
    let g = gateway.clone();
    let list = Arc::clone(patients);
    let ((lat, failed), usage, elapsed) = sampler
        .during(drive(options.concurrency, options.seconds, move |i| {
            let mut g = g.clone();
            let id = list[(i * 7919) % list.len()].clone();
            async move {
                g.get_patient_summary(GetPatientSummaryRequest { patient_id: id })
                    .await?;
                Ok(())
            }
        }))
        .await;
    let mut w3 = report(
        &format!("W3 patient summary ({size} pts)"),
        "req",
        &lat,
        failed,
        &usage,
        elapsed,
    );
    w3["patients"] = json!(size);
    out.push(w3);
    out
}

/// pgbench with a transaction shaped like one W1 write: the record's row, its outbox row and its
/// audit row, committed together.
fn database_ceiling(concurrency: usize, seconds: u64) -> anyhow::Result<f64> {
    let script = std::env::temp_dir().join("careloop-w1-write.sql");
    std::fs::write(
        &script,
        "BEGIN;\n\
         UPDATE bench_loops SET version = version + 1, payload = md5(random()::text) WHERE id = (random() * 9999)::int + 1;\n\
         INSERT INTO bench_outbox (payload) VALUES (repeat('x', 300));\n\
         INSERT INTO bench_audit (note) VALUES ('w1');\n\
         COMMIT;\n",
    )?;
    let psql = |sql: &str| {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                DB,
                "-q",
                "-c",
                sql,
            ])
            .stdout(Stdio::null())
            .status()
    };
    psql(
        "CREATE TABLE IF NOT EXISTS bench_loops (id int PRIMARY KEY, version bigint NOT NULL, payload text);
         CREATE TABLE IF NOT EXISTS bench_outbox (seq bigserial PRIMARY KEY, payload text);
         CREATE TABLE IF NOT EXISTS bench_audit (id bigserial PRIMARY KEY, note text);
         INSERT INTO bench_loops SELECT g, 1, '' FROM generate_series(1, 10000) g ON CONFLICT DO NOTHING;",
    )?;
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-c",
            &concurrency.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(DB)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "pgbench printed no tps: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

pub async fn run(options: Options) -> anyhow::Result<serde_json::Value> {
    scratch_database().await?;
    let events = careloop_testkit::event_settings("nats://127.0.0.1:4222");
    let mut procs = start(&events)?;
    let result = run_with(&options, &procs).await;
    for p in &mut procs {
        // SIGTERM: each drains and stops.
        let _ = Command::new("kill")
            .args(["-TERM", &p.child.id().to_string()])
            .status();
    }
    for p in &mut procs {
        let _ = p.child.wait();
    }
    careloop_testkit::remove_streams(&events).await;
    let mut result = result?;
    // With the services stopped, so their pools do not hold the connections pgbench needs.
    let ceiling = database_ceiling(options.concurrency, 10).unwrap_or_else(|e| {
        eprintln!("pgbench: {e}");
        0.0
    });
    let w1_writes = result["w1_writes_per_second"].as_f64().unwrap_or(0.0);
    println!(
        "database ceiling (pgbench, one W1-shaped write per transaction): {ceiling:.0} tps; W1 writes {w1_writes:.0}/s = {:.1}% of it",
        if ceiling > 0.0 {
            w1_writes / ceiling * 100.0
        } else {
            0.0
        }
    );
    result["database_ceiling_tps"] = json!(ceiling);
    result["w1_fraction_of_ceiling"] = json!(if ceiling > 0.0 {
        w1_writes / ceiling
    } else {
        0.0
    });
    Ok(result)
}

async fn run_with(options: &Options, procs: &[Proc]) -> anyhow::Result<serde_json::Value> {
    let mut channels = HashMap::new();
    for (name, port) in SERVICES {
        channels.insert(name, wait_serving(port).await?);
    }
    let org = Uuid::now_v7();
    let gateway: Gateway =
        GatewayServiceClient::with_interceptor(channels["gateway"].clone(), Bearer(token(org)));
    let sampler = Sampler {
        pids: procs
            .iter()
            .map(|p| (p.name, p.child.id()))
            .chain([("load generator", std::process::id())])
            .collect(),
    };
    let mut patients = Vec::new();
    let loaded = grow(
        &channels["plans"],
        &gateway,
        org,
        &mut patients,
        options.patients,
        options.concurrency.max(8),
    )
    .await?;
    println!(
        "population: {} patients with plans, RN tasks and referrals, loaded in {:.0} s",
        patients.len(),
        loaded.as_secs_f64()
    );
    let list = Arc::new(patients.clone());
    let mut workloads = Vec::new();

    let g = gateway.clone();
    let w1_patients = Arc::clone(&list);
    let ((lat, failed), usage, elapsed) = sampler
        .during(drive(options.concurrency, options.seconds, move |i| {
            let mut g = g.clone();
            let id = w1_patients[(i * 104_729) % w1_patients.len()].clone();
            async move { referral_loop(&mut g, &id, org).await }
        }))
        .await;
    let w1 = report(
        "W1 referral loop (5 writes)",
        "loops",
        &lat,
        failed,
        &usage,
        elapsed,
    );
    let w1_writes = w1["per_second"].as_f64().unwrap_or(0.0) * 5.0;
    workloads.push(w1);
    workloads.extend(reads(&sampler, &gateway, &list, options, patients.len()).await);

    let mut scale = Vec::new();
    for size in &options.scale {
        if *size < patients.len() {
            continue;
        }
        grow(
            &channels["plans"],
            &gateway,
            org,
            &mut patients,
            *size,
            options.concurrency.max(8),
        )
        .await?;
        let list = Arc::new(patients.clone());
        scale.extend(reads(&sampler, &gateway, &list, options, patients.len()).await);
    }

    Ok(json!({
        "patients": options.patients,
        "concurrency": options.concurrency,
        "seconds_per_workload": options.seconds,
        "workloads": workloads,
        "scale": scale,
        "w1_writes_per_second": w1_writes,
    }))
}
