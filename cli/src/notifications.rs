//! `careloop inbox ...` and `careloop routing ...`: a role's inbox (list, watch, acknowledge) and
//! the routing rules that fill it (notifications service).

use crate::commands::{Bearer, key, role};
use careloop_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use careloop_proto::notifications::v1::*;
use clap::Subcommand;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Notifications = NotificationsServiceClient<InterceptedService<Channel, Bearer>>;

#[derive(Subcommand)]
pub enum InboxCmd {
    /// A role's inbox in your organization (your token must carry the role), oldest first.
    List {
        #[arg(long)]
        role: String,
        /// Also acknowledged and resolved items.
        #[arg(long)]
        all: bool,
        /// Internal services name the organization.
        #[arg(long, default_value = "")]
        org: String,
    },
    Show {
        id: String,
    },
    /// Print each item as it reaches the role's inbox; --cursor resumes after the last one seen.
    Watch {
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        cursor: String,
        #[arg(long, default_value = "")]
        org: String,
    },
    /// Take the item, saying what you will do; its ladder stops.
    Ack {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        note: String,
    },
}

#[derive(Subcommand)]
pub enum RoutingCmd {
    /// The routing rules that apply to your organization (platform defaults and its own).
    List,
    /// Turn a rule on or off.
    Enable {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long, action = clap::ArgAction::Set, default_value_t = true)]
        enabled: bool,
    },
}

fn line(item: &InboxItem) -> String {
    let role = careloop_proto::common::v1::CareRole::try_from(item.role)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("CARE_ROLE_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let status = ItemStatus::try_from(item.status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("ITEM_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let priority = NotificationPriority::try_from(item.priority)
        .map(|p| {
            p.as_str_name()
                .trim_start_matches("NOTIFICATION_PRIORITY_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let escalates = item
        .escalates_at
        .as_ref()
        .and_then(careloop_runtime::time::from_timestamp)
        .map(|t| format!(" escalates {}", t.format("%Y-%m-%d %H:%M")))
        .unwrap_or_default();
    format!(
        "{}  v{}  {priority:<8} {status:<12} {role:<14} rung {}/{}  {}  (stage {}, patient {}){escalates}",
        item.id,
        item.version,
        item.rung + 1,
        item.rung_count,
        item.title,
        item.stage,
        item.patient_id
    )
}

pub async fn inbox(c: &mut Notifications, cmd: &InboxCmd) -> anyhow::Result<()> {
    match cmd {
        InboxCmd::List { role: r, all, org } => {
            let mut token = String::new();
            loop {
                let page = c
                    .list_inbox(ListInboxRequest {
                        role: role(r)?,
                        org_id: org.clone(),
                        include_closed: *all,
                        page_size: 100,
                        page_token: token,
                    })
                    .await?
                    .into_inner();
                for item in &page.items {
                    println!("{}", line(item));
                }
                if page.next_page_token.is_empty() {
                    println!("({} open)", page.open_count);
                    break;
                }
                token = page.next_page_token;
            }
        }
        InboxCmd::Show { id } => {
            let item = c
                .get_item(GetItemRequest {
                    item_id: id.clone(),
                })
                .await?
                .into_inner()
                .item;
            println!("{item:#?}");
        }
        InboxCmd::Watch {
            role: r,
            cursor,
            org,
        } => {
            let mut stream = c
                .watch_inbox(WatchInboxRequest {
                    role: role(r)?,
                    org_id: org.clone(),
                    cursor: cursor.clone(),
                })
                .await?
                .into_inner();
            eprintln!("(watching; Ctrl-C stops)");
            while let Some(entry) = stream.message().await? {
                let kind = EntryKind::try_from(entry.kind)
                    .map(|k| {
                        k.as_str_name()
                            .trim_start_matches("ENTRY_KIND_")
                            .to_lowercase()
                    })
                    .unwrap_or_default();
                if let Some(item) = &entry.item {
                    println!("cursor {}  {kind:<9} {}", entry.cursor, line(item));
                }
            }
        }
        InboxCmd::Ack { id, version, note } => {
            let item = c
                .acknowledge_item(AcknowledgeItemRequest {
                    idempotency_key: key(),
                    item_id: id.clone(),
                    expected_version: *version,
                    note: note.clone(),
                })
                .await?
                .into_inner()
                .item;
            if let Some(item) = item {
                println!("{}", line(&item));
            }
        }
    }
    Ok(())
}

pub async fn routing(c: &mut Notifications, cmd: &RoutingCmd) -> anyhow::Result<()> {
    match cmd {
        RoutingCmd::List => {
            let rules = c
                .list_routing_rules(ListRoutingRulesRequest {})
                .await?
                .into_inner()
                .rules;
            for r in rules {
                let owner = if r.org_id.is_empty() {
                    "platform".to_owned()
                } else {
                    r.org_id.clone()
                };
                println!(
                    "{}  v{}  {}  {:<40} on {} {:?}  ({owner}, {} rungs)",
                    r.id,
                    r.version,
                    if r.enabled { "on " } else { "off" },
                    r.name,
                    r.event_type,
                    r.conditions,
                    r.ladder.len()
                );
            }
        }
        RoutingCmd::Enable {
            id,
            version,
            enabled,
        } => {
            let rule = c
                .set_routing_rule_enabled(SetRoutingRuleEnabledRequest {
                    idempotency_key: key(),
                    rule_id: id.clone(),
                    expected_version: *version,
                    enabled: *enabled,
                })
                .await?
                .into_inner()
                .rule;
            println!("{rule:#?}");
        }
    }
    Ok(())
}
