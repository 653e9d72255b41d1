//! The command tree and what each command sends.

use careloop_proto::common::v1::CareRole;
use careloop_proto::plans::v1::list_open_tasks_request::Filter;
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::{Authenticator, DEV_ORG_ID, Principal, PrincipalKind};
use careloop_runtime::config::Settings;
use clap::{Args, Parser, Subcommand};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "careloop",
    about = "Call CareLoop services from the command line"
)]
pub struct Cli {
    /// Address of the plans service.
    #[arg(
        long,
        env = "CARELOOP_PLANS_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub addr: String,
    /// Idempotency key for the write this command makes; repeat a command with the same key to
    /// retry it safely. A fresh key is used when absent.
    #[arg(long, global = true)]
    pub idempotency_key: Option<String>,
    /// Address of the referrals service.
    #[arg(
        long,
        env = "CARELOOP_REFERRALS_ADDR",
        default_value = "http://127.0.0.1:50052",
        global = true
    )]
    pub referrals_addr: String,
    /// Address of the prior-auth service.
    #[arg(
        long,
        env = "CARELOOP_PRIOR_AUTH_ADDR",
        default_value = "http://127.0.0.1:50053",
        global = true
    )]
    pub prior_auth_addr: String,
    /// Address of the notifications service.
    #[arg(
        long,
        env = "CARELOOP_NOTIFICATIONS_ADDR",
        default_value = "http://127.0.0.1:50054",
        global = true
    )]
    pub notifications_addr: String,
    /// Address of the metrics service.
    #[arg(
        long,
        env = "CARELOOP_METRICS_ADDR",
        default_value = "http://127.0.0.1:50055",
        global = true
    )]
    pub metrics_addr: String,
    /// CA bundle that verifies the services' certificates, for https:// addresses.
    #[arg(long, env = "CARELOOP_TLS_CA", global = true)]
    pub ca: Option<String>,
    /// Client certificate (PEM) presented over https, e.g. a workload certificate for probes.
    #[arg(long, env = "CARELOOP_TLS_CERT", global = true)]
    pub cert: Option<String>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "CARELOOP_TLS_KEY", global = true)]
    pub key: Option<String>,
    /// Bearer token (see `careloop dev-token`).
    #[arg(long, env = "CARELOOP_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print a development token signed with the dev key (dev mode only).
    DevToken {
        #[arg(long, default_value_t = DEV_ORG_ID)]
        org: Uuid,
        #[arg(long, default_value = "dev-user")]
        subject: String,
        /// staff, partner, caregiver, payer or service
        #[arg(long, default_value = "staff")]
        kind: String,
        #[arg(long, default_value_t = 12)]
        hours: i64,
        /// Roles the token carries (repeat the flag); a prior-auth coordinator may type in a
        /// payer's answer.
        #[arg(long = "role", default_values = ["care_manager", "prior_auth_coordinator"])]
        roles: Vec<String>,
    },
    /// Ask grpc.health.v1 whether the service is serving.
    Health,
    /// List the gRPC services the server exposes, through server reflection.
    Services,
    /// Create the demo patient with a plan, tasks, a handoff and a transition.
    Demo,
    #[command(subcommand)]
    Patient(PatientCmd),
    #[command(subcommand)]
    Plan(PlanCmd),
    #[command(subcommand)]
    Task(TaskCmd),
    #[command(subcommand)]
    Handoff(HandoffCmd),
    #[command(subcommand)]
    Transition(TransitionCmd),
    /// Closed-loop referrals (referrals service).
    #[command(subcommand)]
    Referral(crate::referrals::ReferralCmd),
    /// Lab, imaging, transport, home health and DME orders.
    #[command(subcommand)]
    Order(crate::referrals::OrderCmd),
    /// Results: record and acknowledge.
    #[command(subcommand)]
    Result(crate::referrals::ResultCmd),
    /// Open loops (referrals, orders, results) by patient, role or status, overdue first.
    Loops {
        #[arg(long)]
        patient: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        status: Option<String>,
    },
    /// Pathway rules.
    Rules,
    /// Prior authorizations (prior-auth service).
    #[command(subcommand)]
    Auth(crate::priorauth::AuthCmd),
    /// A role's inbox: list, watch, acknowledge (notifications service).
    #[command(subcommand)]
    Inbox(crate::notifications::InboxCmd),
    /// Routing rules that send loops to inboxes (notifications service).
    #[command(subcommand)]
    Routing(crate::notifications::RoutingCmd),
    /// Who holds a role when (rosters and quiet hours).
    #[command(subcommand)]
    Roster(crate::notifications::RosterCmd),
    /// Partner webhook endpoints, their delivery log and resends.
    #[command(subcommand)]
    Webhook(crate::notifications::WebhookCmd),
    /// Measures (metrics service): the prior-authorization report and payer clocks.
    #[command(subcommand)]
    Measure(crate::metrics::MeasureCmd),
    /// The end-of-shift digest of a role's inbox.
    Digest {
        #[arg(long)]
        role: String,
        #[arg(long, default_value_t = 12)]
        hours: i64,
        #[arg(long, default_value = "")]
        org: String,
    },
}

#[derive(Subcommand)]
pub enum PatientCmd {
    Create {
        #[arg(long)]
        mrn: String,
        #[arg(long)]
        given: String,
        #[arg(long)]
        family: String,
        /// YYYY-MM-DD
        #[arg(long)]
        birth_date: String,
        #[arg(long, default_value_t = DEV_ORG_ID)]
        org: Uuid,
    },
    Show {
        id: String,
    },
    Find {
        #[arg(long)]
        mrn: String,
        #[arg(long, default_value_t = DEV_ORG_ID)]
        org: Uuid,
    },
}

#[derive(Subcommand)]
pub enum PlanCmd {
    Create {
        #[arg(long)]
        patient: String,
        /// One sentence: what are we trying to achieve.
        #[arg(long)]
        summary: String,
        #[arg(long)]
        lead_name: String,
        /// e.g. pcp, rn, care_manager
        #[arg(long, default_value = "pcp")]
        lead_role: String,
        #[arg(long, default_value_t = DEV_ORG_ID)]
        lead_org: Uuid,
        /// Red flags, repeatable.
        #[arg(long = "red-flag")]
        red_flags: Vec<String>,
    },
    Show {
        #[arg(long)]
        patient: String,
    },
    /// Replace the one-sentence summary, keeping the rest of the plan.
    SetSummary {
        #[arg(long)]
        patient: String,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        summary: String,
    },
}

#[derive(Subcommand)]
pub enum TaskCmd {
    Create {
        #[arg(long)]
        patient: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        owner_role: String,
        #[arg(long)]
        backup_role: Option<String>,
        #[arg(long, default_value_t = 24)]
        due_in_hours: i64,
    },
    Show {
        id: String,
    },
    /// Open tasks for a patient or a role, by due time.
    List {
        #[command(flatten)]
        by: ListBy,
    },
    /// accept, start, hold, resume, complete, cancel or fail.
    Move {
        id: String,
        #[arg(long)]
        action: String,
        #[arg(long)]
        version: i64,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct ListBy {
    #[arg(long)]
    patient: Option<String>,
    #[arg(long)]
    role: Option<String>,
}

#[derive(Subcommand)]
pub enum HandoffCmd {
    Send {
        #[arg(long)]
        patient: String,
        #[arg(long)]
        from_role: String,
        #[arg(long)]
        to_role: String,
        #[arg(long)]
        situation: String,
        #[arg(long)]
        background: String,
        #[arg(long)]
        assessment: String,
        #[arg(long)]
        recommendation: String,
        #[arg(long = "pending")]
        pending_items: Vec<String>,
        #[arg(long = "red-flag")]
        red_flags: Vec<String>,
    },
    /// Unacknowledged handoffs for a role.
    List {
        #[arg(long)]
        role: String,
    },
    Ack {
        id: String,
        #[arg(long, default_value_t = 1)]
        version: i64,
    },
}

#[derive(Subcommand)]
pub enum TransitionCmd {
    Start {
        #[arg(long)]
        patient: String,
        /// hospital, home, skilled_nursing, rehabilitation, emergency, ambulatory, hospice
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        success: String,
        /// low, medium or high
        #[arg(long)]
        risk: String,
    },
    Show {
        id: String,
    },
    /// Mark a checklist item done, waived (with --reason) or pending.
    Check {
        id: String,
        #[arg(long)]
        item: String,
        #[arg(long, default_value = "done")]
        state: String,
        #[arg(long)]
        version: i64,
        #[arg(long, default_value = "")]
        reason: String,
    },
    Complete {
        id: String,
        #[arg(long)]
        version: i64,
    },
}

#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            req.metadata_mut().insert("authorization", token.clone());
        }
        Ok(req)
    }
}

pub type Plans = PlansServiceClient<InterceptedService<Channel, Bearer>>;

/// A channel to `addr`: TLS for https:// (verified with `--ca`, presenting `--cert` when given).
async fn channel(cli: &Cli, addr: &str) -> anyhow::Result<Channel> {
    let tls = careloop_runtime::config::TlsSettings {
        cert_file: cli.cert.clone().unwrap_or_default(),
        key_file: cli.key.clone().unwrap_or_default(),
        ca_file: cli.ca.clone().unwrap_or_default(),
        reload_secs: 0,
    };
    careloop_runtime::client::channel(addr, &tls)
}

async fn referrals(cli: &Cli) -> anyhow::Result<crate::referrals::Referrals> {
    let token = cli.token.as_ref().ok_or_else(|| {
        anyhow::anyhow!("no token: pass --token or set CARELOOP_TOKEN (try `careloop dev-token`)")
    })?;
    let value = format!("Bearer {token}").parse()?;
    Ok(careloop_proto::referrals::v1::referrals_service_client::ReferralsServiceClient::with_interceptor(
        channel(cli, &cli.referrals_addr).await?,
        Bearer(Some(value)),
    ))
}

async fn prior_auth(cli: &Cli) -> anyhow::Result<crate::priorauth::PriorAuth> {
    let token = cli.token.as_ref().ok_or_else(|| {
        anyhow::anyhow!("no token: pass --token or set CARELOOP_TOKEN (try `careloop dev-token`)")
    })?;
    let value = format!("Bearer {token}").parse()?;
    Ok(careloop_proto::priorauth::v1::prior_auth_service_client::PriorAuthServiceClient::with_interceptor(
        channel(cli, &cli.prior_auth_addr).await?,
        Bearer(Some(value)),
    ))
}

async fn notifications(cli: &Cli) -> anyhow::Result<crate::notifications::Notifications> {
    let token = cli.token.as_ref().ok_or_else(|| {
        anyhow::anyhow!("no token: pass --token or set CARELOOP_TOKEN (try `careloop dev-token`)")
    })?;
    let value = format!("Bearer {token}").parse()?;
    Ok(careloop_proto::notifications::v1::notifications_service_client::NotificationsServiceClient::with_interceptor(
        channel(cli, &cli.notifications_addr).await?,
        Bearer(Some(value)),
    ))
}

async fn metrics(cli: &Cli) -> anyhow::Result<crate::metrics::Metrics> {
    let token = cli.token.as_ref().ok_or_else(|| {
        anyhow::anyhow!("no token: pass --token or set CARELOOP_TOKEN (try `careloop dev-token`)")
    })?;
    let value = format!("Bearer {token}").parse()?;
    Ok(
        careloop_proto::metrics::v1::metrics_service_client::MetricsServiceClient::with_interceptor(
            channel(cli, &cli.metrics_addr).await?,
            Bearer(Some(value)),
        ),
    )
}

async fn plans(cli: &Cli) -> anyhow::Result<Plans> {
    let token = cli.token.as_ref().ok_or_else(|| {
        anyhow::anyhow!("no token: pass --token or set CARELOOP_TOKEN (try `careloop dev-token`)")
    })?;
    let value = format!("Bearer {token}").parse()?;
    Ok(PlansServiceClient::with_interceptor(
        channel(cli, &cli.addr).await?,
        Bearer(Some(value)),
    ))
}

/// Parses names such as "care_manager" into proto enums by their CONSTANT_CASE names.
pub fn parse_enum<E>(prefix: &str, value: &str, from: fn(&str) -> Option<E>) -> anyhow::Result<E> {
    let name = format!("{prefix}_{}", value.trim().to_uppercase().replace('-', "_"));
    from(&name).ok_or_else(|| anyhow::anyhow!("unknown value {value:?} ({prefix})"))
}

pub fn role(value: &str) -> anyhow::Result<i32> {
    Ok(parse_enum("CARE_ROLE", value, CareRole::from_str_name)? as i32)
}

static KEY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// The idempotency key for this command's write: the one given, or a fresh one.
pub fn key() -> String {
    KEY.get()
        .cloned()
        .flatten()
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

fn hours_from_now(h: i64) -> Option<prost_types::Timestamp> {
    Some(careloop_runtime::time::to_timestamp(
        chrono::Utc::now() + chrono::Duration::hours(h),
    ))
}

/// Prints a response; a closed pipe (`| head`) is not an error worth a panic.
fn show<T: std::fmt::Debug>(value: &T) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{value:#?}");
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let _ = KEY.set(cli.idempotency_key.clone());
    match &cli.command {
        Command::DevToken {
            org,
            subject,
            kind,
            hours,
            roles,
        } => {
            let mut settings = Settings::load(None)?;
            // Dev tokens are signed with the published dev key: only services in dev mode take them.
            settings.auth.dev_mode = true;
            let kind = match kind.as_str() {
                "staff" => PrincipalKind::Staff,
                "partner" => PrincipalKind::Partner,
                "caregiver" => PrincipalKind::Caregiver,
                "payer" => PrincipalKind::Payer,
                "service" => PrincipalKind::Service,
                other => anyhow::bail!("unknown kind {other:?}"),
            };
            let principal = Principal {
                issuer: settings.auth.dev_issuer.clone(),
                subject: subject.clone(),
                org_id: *org,
                roles: roles.clone(),
                kind,
                via: None,
            };
            let token = Authenticator::new(&settings.auth, "cli")?
                .issue(&principal, chrono::Duration::hours(*hours))?;
            println!("{token}");
        }
        Command::Health => {
            use tonic_health::pb::health_client::HealthClient;
            let mut health = HealthClient::new(channel(&cli, &cli.addr).await?);
            let status = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await?
                .into_inner()
                .status();
            println!("{}", status.as_str_name());
            if status != tonic_health::pb::health_check_response::ServingStatus::Serving {
                std::process::exit(1);
            }
        }
        Command::Services => {
            for name in list_services(channel(&cli, &cli.addr).await?).await? {
                println!("{name}");
            }
        }
        Command::Demo => {
            crate::demo::seed(
                &mut plans(&cli).await?,
                &mut referrals(&cli).await?,
                &mut prior_auth(&cli).await?,
            )
            .await?
        }
        Command::Patient(cmd) => patient(&mut plans(&cli).await?, cmd).await?,
        Command::Plan(cmd) => plan(&mut plans(&cli).await?, cmd).await?,
        Command::Task(cmd) => task(&mut plans(&cli).await?, cmd).await?,
        Command::Handoff(cmd) => handoff(&mut plans(&cli).await?, cmd).await?,
        Command::Transition(cmd) => transition(&mut plans(&cli).await?, cmd).await?,
        Command::Referral(cmd) => {
            crate::referrals::referral(&mut referrals(&cli).await?, cmd).await?
        }
        Command::Order(cmd) => crate::referrals::order(&mut referrals(&cli).await?, cmd).await?,
        Command::Result(cmd) => crate::referrals::result(&mut referrals(&cli).await?, cmd).await?,
        Command::Loops {
            patient,
            role,
            status,
        } => {
            crate::referrals::loops(
                &mut referrals(&cli).await?,
                patient.clone(),
                role.clone(),
                status.clone(),
            )
            .await?
        }
        Command::Rules => crate::referrals::rules(&mut referrals(&cli).await?).await?,
        Command::Auth(cmd) => crate::priorauth::run(&mut prior_auth(&cli).await?, cmd).await?,
        Command::Inbox(cmd) => {
            crate::notifications::inbox(&mut notifications(&cli).await?, cmd).await?
        }
        Command::Routing(cmd) => {
            crate::notifications::routing(&mut notifications(&cli).await?, cmd).await?
        }
        Command::Roster(cmd) => {
            crate::notifications::roster(&mut notifications(&cli).await?, cmd).await?
        }
        Command::Webhook(cmd) => {
            crate::notifications::webhook(&mut notifications(&cli).await?, cmd).await?
        }
        Command::Measure(cmd) => crate::metrics::run(&mut metrics(&cli).await?, cmd).await?,
        Command::Digest { role, hours, org } => {
            crate::notifications::digest(&mut notifications(&cli).await?, role, *hours, org).await?
        }
    }
    Ok(())
}

async fn patient(c: &mut Plans, cmd: &PatientCmd) -> anyhow::Result<()> {
    match cmd {
        PatientCmd::Create {
            mrn,
            given,
            family,
            birth_date,
            org,
        } => {
            let p = c
                .create_patient(CreatePatientRequest {
                    idempotency_key: key(),
                    mrn: mrn.clone(),
                    given_name: given.clone(),
                    family_name: family.clone(),
                    birth_date: birth_date.clone(),
                    managing_org_id: org.to_string(),
                })
                .await?
                .into_inner();
            show(&p.patient);
        }
        PatientCmd::Show { id } => {
            let p = c
                .get_patient(GetPatientRequest {
                    patient_id: id.clone(),
                })
                .await?;
            show(&p.into_inner().patient);
        }
        PatientCmd::Find { mrn, org } => {
            let p = c
                .find_patient_by_mrn(FindPatientByMrnRequest {
                    managing_org_id: org.to_string(),
                    mrn: mrn.clone(),
                })
                .await?;
            show(&p.into_inner().patient);
        }
    }
    Ok(())
}

async fn plan(c: &mut Plans, cmd: &PlanCmd) -> anyhow::Result<()> {
    match cmd {
        PlanCmd::Create {
            patient,
            summary,
            lead_name,
            lead_role,
            lead_org,
            red_flags,
        } => {
            let p = c
                .create_care_plan(CreateCarePlanRequest {
                    idempotency_key: key(),
                    patient_id: patient.clone(),
                    content: Some(CarePlanContent {
                        summary: summary.clone(),
                        red_flags: red_flags.clone(),
                        ..Default::default()
                    }),
                    lead: Some(NewCareTeamMember {
                        kind: MemberKind::Person as i32,
                        display_name: lead_name.clone(),
                        role: role(lead_role)?,
                        organization_id: lead_org.to_string(),
                        is_lead: true,
                        ..Default::default()
                    }),
                })
                .await?;
            show(&p.into_inner().plan);
        }
        PlanCmd::Show { patient } => {
            let p = c
                .get_care_plan(GetCarePlanRequest {
                    patient_id: patient.clone(),
                })
                .await?;
            show(&p.into_inner().plan);
        }
        PlanCmd::SetSummary {
            patient,
            version,
            summary,
        } => {
            let current = c
                .get_care_plan(GetCarePlanRequest {
                    patient_id: patient.clone(),
                })
                .await?
                .into_inner()
                .plan
                .and_then(|p| p.content)
                .unwrap_or_default();
            let p = c
                .update_care_plan(UpdateCarePlanRequest {
                    idempotency_key: key(),
                    patient_id: patient.clone(),
                    expected_version: *version,
                    content: Some(CarePlanContent {
                        summary: summary.clone(),
                        ..current
                    }),
                })
                .await?;
            show(&p.into_inner().plan);
        }
    }
    Ok(())
}

async fn task(c: &mut Plans, cmd: &TaskCmd) -> anyhow::Result<()> {
    match cmd {
        TaskCmd::Create {
            patient,
            title,
            owner_role,
            backup_role,
            due_in_hours,
        } => {
            let t = c
                .create_task(CreateTaskRequest {
                    idempotency_key: key(),
                    patient_id: patient.clone(),
                    title: title.clone(),
                    owner_role: role(owner_role)?,
                    backup_role: backup_role.as_deref().map(role).transpose()?.unwrap_or(0),
                    due_at: hours_from_now(*due_in_hours),
                    ..Default::default()
                })
                .await?;
            show(&t.into_inner().task);
        }
        TaskCmd::Show { id } => show(
            &c.get_task(GetTaskRequest {
                task_id: id.clone(),
            })
            .await?
            .into_inner()
            .task,
        ),
        TaskCmd::List { by } => {
            let filter = match (&by.patient, &by.role) {
                (Some(p), _) => Filter::PatientId(p.clone()),
                (None, Some(r)) => Filter::OwnerRole(role(r)?),
                (None, None) => anyhow::bail!("give --patient or --role"),
            };
            let list = c
                .list_open_tasks(ListOpenTasksRequest {
                    filter: Some(filter),
                    page_size: 100,
                    page_token: String::new(),
                })
                .await?
                .into_inner();
            for t in list.tasks {
                let due = t.due_at.map(|d| d.to_string()).unwrap_or_default();
                let overdue = if t.overdue { " OVERDUE" } else { "" };
                let status = TaskStatus::try_from(t.status)
                    .map(|s| s.as_str_name())
                    .unwrap_or("?");
                let owner = CareRole::try_from(t.owner_role)
                    .map(|r| r.as_str_name())
                    .unwrap_or("?");
                use std::io::Write;
                let _ = writeln!(
                    std::io::stdout().lock(),
                    "{}  v{}  {status}  {owner}  due {due}{overdue}  {}",
                    t.id,
                    t.version,
                    t.title
                );
            }
        }
        TaskCmd::Move {
            id,
            action,
            version,
            reason,
        } => {
            let action = parse_enum("TASK_ACTION", action, TaskAction::from_str_name)?;
            let t = c
                .transition_task(TransitionTaskRequest {
                    idempotency_key: key(),
                    task_id: id.clone(),
                    expected_version: *version,
                    action: action as i32,
                    reason: reason.clone(),
                })
                .await?;
            show(&t.into_inner().task);
        }
    }
    Ok(())
}

async fn handoff(c: &mut Plans, cmd: &HandoffCmd) -> anyhow::Result<()> {
    match cmd {
        HandoffCmd::Send {
            patient,
            from_role,
            to_role,
            situation,
            background,
            assessment,
            recommendation,
            pending_items,
            red_flags,
        } => {
            let h = c
                .send_handoff(SendHandoffRequest {
                    idempotency_key: key(),
                    patient_id: patient.clone(),
                    from_role: role(from_role)?,
                    to_role: role(to_role)?,
                    situation: situation.clone(),
                    background: background.clone(),
                    assessment: assessment.clone(),
                    recommendation: recommendation.clone(),
                    pending_items: pending_items.clone(),
                    red_flags: red_flags.clone(),
                    acknowledge_by: None,
                })
                .await?;
            show(&h.into_inner().handoff);
        }
        HandoffCmd::List { role: r } => {
            let list = c
                .list_unacknowledged_handoffs(ListUnacknowledgedHandoffsRequest {
                    to_role: role(r)?,
                    page_size: 100,
                    ..Default::default()
                })
                .await?;
            show(&list.into_inner().handoffs);
        }
        HandoffCmd::Ack { id, version } => {
            let h = c
                .acknowledge_handoff(AcknowledgeHandoffRequest {
                    idempotency_key: key(),
                    handoff_id: id.clone(),
                    expected_version: *version,
                })
                .await?;
            show(&h.into_inner().handoff);
        }
    }
    Ok(())
}

async fn transition(c: &mut Plans, cmd: &TransitionCmd) -> anyhow::Result<()> {
    match cmd {
        TransitionCmd::Start {
            patient,
            from,
            to,
            reason,
            success,
            risk,
        } => {
            let t = c
                .start_transition(StartTransitionRequest {
                    idempotency_key: key(),
                    patient_id: patient.clone(),
                    from_setting: parse_enum("CARE_SETTING", from, CareSetting::from_str_name)?
                        as i32,
                    to_setting: parse_enum("CARE_SETTING", to, CareSetting::from_str_name)? as i32,
                    reason: reason.clone(),
                    success_criteria: success.clone(),
                    risk_level: parse_enum("RISK_LEVEL", risk, RiskLevel::from_str_name)? as i32,
                })
                .await?;
            show(&t.into_inner().transition);
        }
        TransitionCmd::Show { id } => {
            let t = c
                .get_transition(GetTransitionRequest {
                    transition_id: id.clone(),
                })
                .await?;
            show(&t.into_inner().transition);
        }
        TransitionCmd::Check {
            id,
            item,
            state,
            version,
            reason,
        } => {
            let t = c
                .update_checklist_item(UpdateChecklistItemRequest {
                    idempotency_key: key(),
                    transition_id: id.clone(),
                    expected_version: *version,
                    item: parse_enum(
                        "CHECKLIST_ITEM_KIND",
                        item,
                        ChecklistItemKind::from_str_name,
                    )? as i32,
                    state: parse_enum(
                        "CHECKLIST_ITEM_STATE",
                        state,
                        ChecklistItemState::from_str_name,
                    )? as i32,
                    waive_reason: reason.clone(),
                })
                .await?;
            show(&t.into_inner().transition);
        }
        TransitionCmd::Complete { id, version } => {
            let t = c
                .complete_transition(CompleteTransitionRequest {
                    idempotency_key: key(),
                    transition_id: id.clone(),
                    expected_version: *version,
                })
                .await?;
            show(&t.into_inner().transition);
        }
    }
    Ok(())
}

/// Asks grpc.reflection.v1 for the list of services.
pub async fn list_services(channel: Channel) -> anyhow::Result<Vec<String>> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await?
        .into_inner();
    let mut names = Vec::new();
    while let Some(response) = responses.message().await? {
        if let Some(MessageResponse::ListServicesResponse(list)) = response.message_response {
            names.extend(list.service.into_iter().map(|s| s.name));
        }
    }
    Ok(names)
}
