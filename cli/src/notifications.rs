//! `careloop inbox ...` and `careloop routing ...`: a role's inbox (list, watch, acknowledge) and
//! the routing rules that fill it (notifications service).

use crate::client::Notifications;
use crate::client::{key, role};
use careloop_proto::notifications::v1::*;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum InboxCmd {
    /// A role's inbox in your organization (your token must carry the role), oldest first;
    /// without --role, your own inbox (every role your token carries).
    List {
        #[arg(long)]
        role: Option<String>,
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
pub enum RosterCmd {
    /// Who holds a role when.
    Show {
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        org: String,
    },
    /// Replace a role's roster (version 0 creates it). Members as
    /// SUBJECT:DAYS:START-END[:EMAIL[:PHONE]], days as ISO weekdays, e.g. "rn-day:12345:07:00-19:00".
    Set {
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "America/New_York")]
        time_zone: String,
        #[arg(long = "member")]
        members: Vec<String>,
        #[arg(long, default_value = "")]
        backup_role: String,
        #[arg(long, default_value_t = 0)]
        version: i64,
        #[arg(long, default_value = "")]
        org: String,
    },
}

#[derive(Subcommand)]
pub enum WebhookCmd {
    /// Add an endpoint for your organization; prints its signing secret once.
    Add {
        #[arg(long)]
        url: String,
        /// Event types to send (repeat); all item events when absent.
        #[arg(long = "event")]
        events: Vec<String>,
    },
    List,
    /// Turn an endpoint on (its failure count restarts) or off.
    Enable {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long, action = clap::ArgAction::Set, default_value_t = true)]
        enabled: bool,
    },
    /// An endpoint's delivery log with every try.
    Deliveries {
        endpoint: String,
    },
    Resend {
        delivery: String,
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

/// One inbox item on one line, or as JSON with `--output json`.
fn line(item: &InboxItem) -> String {
    if crate::output::format() == crate::output::Format::Json {
        return crate::output::render_one(item).replace('\n', " ");
    }
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
                        role: r.as_deref().map(role).transpose()?.unwrap_or(0),
                        org_id: org.clone(),
                        include_closed: *all,
                        page_size: 100,
                        page_token: token,
                        mine: r.is_none(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                for item in &page.items {
                    crate::output::emit(&line(item));
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
            crate::output::show(&item);
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
                crate::output::emit(&line(&item));
            }
        }
    }
    Ok(())
}

/// "rn-day:12345:07:00-19:00:rn@example.org:+15551230000"
fn member(spec: &str) -> anyhow::Result<RosterMember> {
    let parts: Vec<&str> = spec.splitn(4, ':').collect();
    let [subject, days, rest @ ..] = parts.as_slice() else {
        anyhow::bail!("member {spec:?}: SUBJECT:DAYS:START-END[:EMAIL[:PHONE]]");
    };
    let rest = rest.join(":");
    // rest = "07:00-19:00[:email[:phone]]"
    let (hours, contact) = match rest.match_indices(':').nth(2) {
        Some((i, _)) => (&rest[..i], &rest[i + 1..]),
        None => (rest.as_str(), ""),
    };
    let (start, end) = hours
        .split_once('-')
        .ok_or_else(|| anyhow::anyhow!("member {spec:?}: hours as START-END"))?;
    let (email, phone) = contact.split_once(':').unwrap_or((contact, ""));
    Ok(RosterMember {
        subject: (*subject).to_owned(),
        shifts: vec![Shift {
            weekdays: days
                .chars()
                .filter_map(|c| c.to_digit(10).map(|d| d as i32))
                .collect(),
            start: start.to_owned(),
            end: end.to_owned(),
        }],
        email: email.to_owned(),
        phone: phone.to_owned(),
    })
}

pub async fn roster(c: &mut Notifications, cmd: &RosterCmd) -> anyhow::Result<()> {
    match cmd {
        RosterCmd::Show { role: r, org } => {
            let roster = c
                .get_roster(GetRosterRequest {
                    org_id: org.clone(),
                    role: role(r)?,
                })
                .await?
                .into_inner()
                .roster;
            crate::output::show(&roster);
        }
        RosterCmd::Set {
            role: r,
            time_zone,
            members,
            backup_role,
            version,
            org,
        } => {
            let roster = c
                .set_roster(SetRosterRequest {
                    idempotency_key: key(),
                    org_id: org.clone(),
                    role: role(r)?,
                    time_zone: time_zone.clone(),
                    members: members
                        .iter()
                        .map(|m| member(m))
                        .collect::<Result<_, _>>()?,
                    backup_role: if backup_role.is_empty() {
                        0
                    } else {
                        role(backup_role)?
                    },
                    expected_version: *version,
                })
                .await?
                .into_inner()
                .roster;
            crate::output::show(&roster);
        }
    }
    Ok(())
}

pub async fn webhook(c: &mut Notifications, cmd: &WebhookCmd) -> anyhow::Result<()> {
    match cmd {
        WebhookCmd::Add { url, events } => {
            let created = c
                .create_webhook_endpoint(CreateWebhookEndpointRequest {
                    idempotency_key: key(),
                    url: url.clone(),
                    event_types: events.clone(),
                    org_id: String::new(),
                })
                .await?
                .into_inner();
            crate::output::show(&created.endpoint);
            println!("signing secret (shown once): {}", created.secret);
        }
        WebhookCmd::List => {
            let endpoints = c
                .list_webhook_endpoints(ListWebhookEndpointsRequest::default())
                .await?
                .into_inner()
                .endpoints;
            for e in endpoints {
                println!(
                    "{}  v{}  {}  failures {}  {}  {:?}",
                    e.id,
                    e.version,
                    if e.enabled { "on " } else { "off" },
                    e.consecutive_failures,
                    e.url,
                    e.event_types
                );
            }
        }
        WebhookCmd::Enable {
            id,
            version,
            enabled,
        } => {
            let e = c
                .set_webhook_endpoint_enabled(SetWebhookEndpointEnabledRequest {
                    idempotency_key: key(),
                    endpoint_id: id.clone(),
                    expected_version: *version,
                    enabled: *enabled,
                })
                .await?
                .into_inner()
                .endpoint;
            crate::output::show(&e);
        }
        WebhookCmd::Deliveries { endpoint } => {
            let deliveries = c
                .list_webhook_deliveries(ListWebhookDeliveriesRequest {
                    endpoint_id: endpoint.clone(),
                    page_size: 50,
                    page_token: String::new(),
                })
                .await?
                .into_inner()
                .deliveries;
            for d in deliveries {
                let codes: Vec<String> = d
                    .attempts
                    .iter()
                    .map(|a| {
                        if a.status_code == 0 {
                            a.error.clone()
                        } else {
                            a.status_code.to_string()
                        }
                    })
                    .collect();
                println!(
                    "{}  {:<32} {:?}  tries [{}]",
                    d.id,
                    d.event_type,
                    DeliveryStatus::try_from(d.status).unwrap_or(DeliveryStatus::Unspecified),
                    codes.join(", ")
                );
            }
        }
        WebhookCmd::Resend { delivery } => {
            let d = c
                .resend_webhook_delivery(ResendWebhookDeliveryRequest {
                    idempotency_key: key(),
                    delivery_id: delivery.clone(),
                })
                .await?
                .into_inner()
                .delivery;
            crate::output::show(&d);
        }
    }
    Ok(())
}

/// The end-of-shift digest of a role's inbox over the last `hours`.
pub async fn digest(c: &mut Notifications, r: &str, hours: i64, org: &str) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let d = c
        .get_shift_digest(GetShiftDigestRequest {
            role: role(r)?,
            org_id: org.to_owned(),
            from: Some(careloop_runtime::time::to_timestamp(
                now - chrono::Duration::hours(hours),
            )),
            to: Some(careloop_runtime::time::to_timestamp(now)),
        })
        .await?
        .into_inner()
        .digest
        .unwrap_or_default();
    println!(
        "{r}, last {hours} h: opened {}, escalated in {}, acknowledged {}, resolved {}, escalated away {}",
        d.opened, d.escalated_in, d.acknowledged, d.resolved, d.escalated_away
    );
    println!("still open {} (overdue {})", d.still_open, d.still_overdue);
    for item in &d.open_items {
        println!("  {}", line(item));
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
            crate::output::show(&rule);
        }
    }
    Ok(())
}
