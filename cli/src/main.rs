//! `careloop`: the command-line client, for people, demos and SREs. It talks to the gateway by
//! default (the door partners use) and to each service for the commands that administer it.
//! Modules: `client` (connections, token, keys), `output` (human views and JSON), one module per
//! area, and this file's command tree.

mod client;
mod demo;
mod gateway;
mod metrics;
mod notifications;
mod output;
mod plans;
mod priorauth;
mod referrals;

use careloop_runtime::auth::{Authenticator, DEV_ORG_ID, Principal, PrincipalKind};
use careloop_runtime::config::Settings;
use clap::{Parser, Subcommand};
use client::Connection;
use tonic::transport::Channel;
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "careloop", about = "Call CareLoop from the command line")]
pub struct Cli {
    #[command(flatten)]
    conn: Connection,
    /// How answers print: readable views and tables, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = output::Format::Human)]
    output: output::Format,
    #[command(subcommand)]
    command: Command,
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
    /// The one-screen summary of a patient, through the gateway: plan, team, and every open loop
    /// across services, overdue first.
    Summary {
        #[arg(long)]
        patient: String,
    },
    /// Every open loop a role owns across services, through the gateway, with the role's inbox count.
    Worklist {
        #[arg(long)]
        role: String,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        /// Follow the pages to the end.
        #[arg(long)]
        all: bool,
    },
    #[command(subcommand)]
    Patient(plans::PatientCmd),
    #[command(subcommand)]
    Plan(plans::PlanCmd),
    #[command(subcommand)]
    Task(plans::TaskCmd),
    #[command(subcommand)]
    Handoff(plans::HandoffCmd),
    #[command(subcommand)]
    Transition(plans::TransitionCmd),
    /// Closed-loop referrals (referrals service).
    #[command(subcommand)]
    Referral(referrals::ReferralCmd),
    /// Lab, imaging, transport, home health and DME orders.
    #[command(subcommand)]
    Order(referrals::OrderCmd),
    /// Results: record and acknowledge.
    #[command(subcommand)]
    Result(referrals::ResultCmd),
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
    Auth(priorauth::AuthCmd),
    /// A role's inbox: list, watch, acknowledge (notifications service).
    #[command(subcommand)]
    Inbox(notifications::InboxCmd),
    /// Routing rules that send loops to inboxes (notifications service).
    #[command(subcommand)]
    Routing(notifications::RoutingCmd),
    /// Who holds a role when (rosters and quiet hours).
    #[command(subcommand)]
    Roster(notifications::RosterCmd),
    /// Partner webhook endpoints, their delivery log and resends.
    #[command(subcommand)]
    Webhook(notifications::WebhookCmd),
    /// Measures (metrics service): the prior-authorization report and payer clocks.
    #[command(subcommand)]
    Measure(metrics::MeasureCmd),
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

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    output::set_format(cli.output);
    client::set_key(cli.conn.idempotency_key.clone());
    if let Err(err) = run(&cli.conn, &cli.command).await {
        if let Some(status) = err.downcast_ref::<tonic::Status>() {
            let reason = tonic_types::StatusExt::get_error_details(status)
                .error_info()
                .map(|i| format!(" [{}]", i.reason))
                .unwrap_or_default();
            eprintln!("error: {:?}{reason}: {}", status.code(), status.message());
            std::process::exit(1);
        }
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

async fn run(conn: &Connection, command: &Command) -> anyhow::Result<()> {
    match command {
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
            let mut health = HealthClient::new(conn.channel(&conn.gateway_addr)?);
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
            for name in list_services(conn.channel(&conn.gateway_addr)?).await? {
                println!("{name}");
            }
        }
        Command::Demo => demo::seed(&mut conn.gateway()?).await?,
        Command::Summary { patient } => gateway::summary(&mut conn.gateway()?, patient).await?,
        Command::Worklist {
            role,
            page_size,
            all,
        } => gateway::worklist(&mut conn.gateway()?, role, *page_size, *all).await?,
        Command::Patient(cmd) => plans::patient(conn, cmd).await?,
        Command::Plan(cmd) => plans::plan(conn, cmd).await?,
        Command::Task(cmd) => plans::task(conn, cmd).await?,
        Command::Handoff(cmd) => plans::handoff(conn, cmd).await?,
        Command::Transition(cmd) => plans::transition(conn, cmd).await?,
        Command::Referral(cmd) => referrals::referral(&mut conn.referrals()?, cmd).await?,
        Command::Order(cmd) => referrals::order(&mut conn.referrals()?, cmd).await?,
        Command::Result(cmd) => referrals::result(&mut conn.referrals()?, cmd).await?,
        Command::Loops {
            patient,
            role,
            status,
        } => {
            referrals::loops(
                &mut conn.referrals()?,
                patient.clone(),
                role.clone(),
                status.clone(),
            )
            .await?
        }
        Command::Rules => referrals::rules(&mut conn.referrals()?).await?,
        Command::Auth(cmd) => priorauth::run(&mut conn.prior_auth()?, cmd).await?,
        Command::Inbox(cmd) => notifications::inbox(&mut conn.notifications()?, cmd).await?,
        Command::Routing(cmd) => notifications::routing(&mut conn.notifications()?, cmd).await?,
        Command::Roster(cmd) => notifications::roster(&mut conn.notifications()?, cmd).await?,
        Command::Webhook(cmd) => notifications::webhook(&mut conn.notifications()?, cmd).await?,
        Command::Measure(cmd) => metrics::run(&mut conn.metrics()?, cmd).await?,
        Command::Digest { role, hours, org } => {
            notifications::digest(&mut conn.notifications()?, role, *hours, org).await?
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
