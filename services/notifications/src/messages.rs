//! Email and SMS notices: when an item from a rule with those channels reaches a role's inbox
//! (raised, released from hold, or escalated), each on-duty member of the role's roster with an
//! address gets one notice per channel, queued in the item's transaction. The dispatcher sends
//! them through the channel's `Sender`, retrying with backoff, and keeps the provider's receipt.
//! A notice still queued when its item is taken or its loop moves is cancelled, not sent. The text
//! says where to look, never what about: no patient or clinical detail leaves CareLoop.

use crate::channels::{Notice, Sender};
use crate::domain::roster;
use crate::store::{self, ItemRow};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The notice for an item reaching `role`'s inbox: subject, email body, SMS text.
fn texts(item: &ItemRow, how: &str) -> (String, String, String) {
    let role = careloop_runtime::events::fields::care_role_name(item.role);
    let subject = format!("CareLoop: {} item waiting for {role}", item.priority);
    let body = format!(
        "{}.\n{how} to the {role} inbox (stage {}).\nItem {}: open CareLoop to acknowledge it.\n\
         This notice carries no patient information.",
        item.title, item.stage, item.id
    );
    let sms = format!(
        "CareLoop {}: {} ({role}). Item {}",
        item.priority, item.title, item.id
    );
    (subject, body, sms)
}

/// Queues the notices for the item as it now stands (its role, version); returns how many.
pub async fn enqueue(
    conn: &mut PgConnection,
    item: &ItemRow,
    how: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    if item.role == careloop_proto::common::v1::CareRole::FamilyCaregiver as i32 {
        // Whom to tell is plans' answer at sending time (consent can change): a placeholder now.
        return sqlx::query(
            "INSERT INTO outbound_messages (id, item_id, item_version, channel, member, address, subject, body,
                                            status, next_attempt_at, created_at, patient_id)
             VALUES ($1, $2, $3, 'caregivers', '', '', '', '', 'pending', $4, $4, $5)
             ON CONFLICT (item_id, item_version, channel, address, kind) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(item.id)
        .bind(item.version)
        .bind(now)
        .bind(item.patient_id)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected());
    }
    let email = item.channels.iter().any(|c| c == "email");
    let sms = item.channels.iter().any(|c| c == "sms");
    if !email && !sms {
        return Ok(0);
    }
    let Some(roster) = store::roster(conn, item.org_id, item.role).await? else {
        return Ok(0);
    };
    let zone: chrono_tz::Tz = roster.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let (subject, body, text) = texts(item, how);
    let mut queued = 0;
    for member in &roster.members.0 {
        if !roster::on_duty(std::slice::from_ref(member), zone, now) {
            continue;
        }
        let mut targets = Vec::new();
        if email && !member.email.is_empty() {
            targets.push(("email", member.email.as_str(), body.as_str()));
        }
        if sms && !member.phone.is_empty() {
            targets.push(("sms", member.phone.as_str(), text.as_str()));
        }
        for (channel, address, content) in targets {
            queued += sqlx::query(
                "INSERT INTO outbound_messages (id, item_id, item_version, channel, member, address, subject, body,
                                                status, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $9)
                 ON CONFLICT (item_id, item_version, channel, address, kind) DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(item.id)
            .bind(item.version)
            .bind(channel)
            .bind(&member.subject)
            .bind(address)
            .bind(&subject)
            .bind(content)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        }
    }
    Ok(queued)
}

/// The fallback for an urgent item nobody read: a text to each on-duty member of its role with a
/// phone (an email where none has one).
pub async fn enqueue_fallback(
    conn: &mut PgConnection,
    item: &ItemRow,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let Some(roster) = store::roster(conn, item.org_id, item.role).await? else {
        return Ok(0);
    };
    let zone: chrono_tz::Tz = roster.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let (subject, body, text) = texts(item, "Unread: raised");
    let on_duty: Vec<_> = roster
        .members
        .0
        .iter()
        .filter(|m| roster::on_duty(std::slice::from_ref(*m), zone, now))
        .collect();
    let any_phone = on_duty.iter().any(|m| !m.phone.is_empty());
    let mut queued = 0;
    for member in on_duty {
        let (channel, address, content) = if any_phone {
            ("sms", member.phone.as_str(), text.as_str())
        } else {
            ("email", member.email.as_str(), body.as_str())
        };
        if address.is_empty() {
            continue;
        }
        queued += sqlx::query(
            "INSERT INTO outbound_messages (id, item_id, item_version, channel, member, address, subject, body,
                                            status, next_attempt_at, created_at, kind)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $9, 'fallback')
             ON CONFLICT (item_id, item_version, channel, address, kind) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(item.id)
        .bind(item.version)
        .bind(channel)
        .bind(&member.subject)
        .bind(address)
        .bind(&subject)
        .bind(content)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(queued)
}

#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    item_id: Uuid,
    item_version: i64,
    channel: String,
    address: String,
    subject: String,
    body: String,
    attempt_count: i32,
    caregiver_member_id: Option<Uuid>,
    patient_id: Option<Uuid>,
    org_id: Uuid,
}

/// Who caregiver notices are audited as.
pub const ACTOR: &str = "notifications-messages";

/// The notice a family caregiver gets: that there is news and where to ask, nothing more (not
/// even the rule's name, which can be clinical).
fn caregiver_texts(item_id: Uuid) -> (String, String, String) {
    (
        "CareLoop: an update about your family member's care".to_owned(),
        format!(
            "The care team has an update for you. Please contact them, or open your CareLoop app.\n\
             Reference {item_id}."
        ),
        format!("CareLoop: the care team has an update for you. Ref {item_id}"),
    )
}

pub struct MessageDispatcher {
    pub pool: PgPool,
    /// Plans, which says which caregivers may be told (none configured: caregiver notices fail).
    pub plans: Option<careloop_runtime::access::PlansAccess>,
    pub email: Option<Arc<dyn Sender>>,
    pub sms: Option<Arc<dyn Sender>>,
    pub max_attempts: i32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl MessageDispatcher {
    fn backoff(&self, attempt: i32) -> chrono::Duration {
        crate::retry::backoff(self.first_backoff, self.max_backoff, attempt, 0)
    }

    /// Sends the notices due at `now` (up to `batch`), each claimed under a lease first; returns how
    /// many were tried.
    pub async fn dispatch_due(&self, now: DateTime<Utc>, batch: i64) -> anyhow::Result<usize> {
        // Someone took the item (or its loop moved) before its notice went: nothing to say.
        sqlx::query(
            "UPDATE outbound_messages m SET status = 'cancelled', next_attempt_at = NULL
               FROM items i
              WHERE i.id = m.item_id AND m.status = 'pending' AND i.status NOT IN ('open', 'held')",
        )
        .execute(&self.pool)
        .await?;
        let due: Vec<Due> = sqlx::query_as(
            "UPDATE outbound_messages m SET next_attempt_at = $2, attempt_count = m.attempt_count + 1
              WHERE m.id IN (SELECT id FROM outbound_messages WHERE status = 'pending' AND next_attempt_at <= $1
                              ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
              RETURNING m.id, m.item_id, m.item_version, m.channel, m.address, m.subject, m.body, m.attempt_count,
                        m.caregiver_member_id, m.patient_id,
                        (SELECT i.org_id FROM items i WHERE i.id = m.item_id) AS org_id",
        )
        .bind(now)
        .bind(now + chrono::Duration::seconds(120))
        .bind(batch)
        .fetch_all(&self.pool)
        .await?;
        let tried = due.len();
        let sends = due.into_iter().map(|m| async move {
            if m.channel == "caregivers" {
                if let Err(error) = self.expand(&m).await {
                    let _ = self.record(&m, Err(format!("{error:#}")), true).await;
                }
                return;
            }
            if m.caregiver_member_id.is_some() {
                match self.still_consented(&m).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = self.cancel(&m, "the caregiver's consent is no longer active").await;
                        return;
                    }
                    Err(error) => {
                        let _ = self.record(&m, Err(format!("{error:#}")), true).await;
                        return;
                    }
                }
            }
            let sender = match m.channel.as_str() {
                "email" => self.email.as_ref(),
                _ => self.sms.as_ref(),
            };
            let outcome = match sender {
                Some(sender) => {
                    let notice = Notice {
                        to: m.address.clone(),
                        subject: m.subject.clone(),
                        body: m.body.clone(),
                    };
                    sender
                        .send(&notice)
                        .await
                        .map_err(|e| format!("{e:#}").chars().take(300).collect::<String>())
                }
                None => Err(format!("the {} channel is not configured", m.channel)),
            };
            if let Err(error) = self.record(&m, outcome, sender.is_some()).await {
                tracing::warn!(message_id = %m.id, error = %careloop_runtime::error::redacted(&error), "notice outcome not recorded; the lease will retry it");
            }
        });
        futures::future::join_all(sends).await;
        Ok(tried)
    }

    fn plans(&self) -> anyhow::Result<&careloop_runtime::access::PlansAccess> {
        self.plans.as_ref().ok_or_else(|| {
            anyhow::anyhow!("plans is not configured: caregivers cannot be asked for")
        })
    }

    /// Turns a caregivers placeholder into one notice per caregiver plans allows now, by their
    /// preferred contact (email or text; a phone call or the portal is not a channel here).
    async fn expand(&self, m: &Due) -> anyhow::Result<()> {
        let patient = m
            .patient_id
            .ok_or_else(|| anyhow::anyhow!("placeholder without patient"))?;
        let caregivers = self.plans()?.consented_caregivers(patient).await?;
        let (subject, body, text) = caregiver_texts(m.item_id);
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let mut queued = 0;
        for c in caregivers {
            let Some(contact) = c.preferred_contact else {
                continue;
            };
            let (channel, content) =
                match careloop_proto::plans::v1::ContactChannel::try_from(contact.channel) {
                    Ok(careloop_proto::plans::v1::ContactChannel::Email) => {
                        ("email", body.as_str())
                    }
                    Ok(careloop_proto::plans::v1::ContactChannel::Sms) => ("sms", text.as_str()),
                    _ => continue,
                };
            let Ok(member) = Uuid::parse_str(&c.member_id) else {
                continue;
            };
            queued += sqlx::query(
                "INSERT INTO outbound_messages (id, item_id, item_version, channel, member, address, subject, body,
                                                status, next_attempt_at, created_at, caregiver_member_id, patient_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $9, $10, $11)
                 ON CONFLICT (item_id, item_version, channel, address, kind) DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(m.item_id)
            .bind(m.item_version)
            .bind(channel)
            .bind(member.to_string())
            .bind(&contact.address)
            .bind(&subject)
            .bind(content)
            .bind(now)
            .bind(member)
            .bind(patient)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        sqlx::query(
            "UPDATE outbound_messages SET status = 'sent', sent_at = $2, receipt = $3, next_attempt_at = NULL
              WHERE id = $1",
        )
        .bind(m.id)
        .bind(now)
        .bind(format!("{queued} caregiver notices"))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the caregiver may still be told, asked right before sending.
    async fn still_consented(&self, m: &Due) -> anyhow::Result<bool> {
        let (Some(patient), Some(member)) = (m.patient_id, m.caregiver_member_id) else {
            return Ok(false);
        };
        let member = member.to_string();
        Ok(self
            .plans()?
            .consented_caregivers(patient)
            .await?
            .iter()
            .any(|c| c.member_id == member))
    }

    async fn cancel(&self, m: &Due, why: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE outbound_messages SET status = 'cancelled', next_attempt_at = NULL, last_error = $2 WHERE id = $1",
        )
        .bind(m.id)
        .bind(why)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record(
        &self,
        m: &Due,
        outcome: Result<String, String>,
        configured: bool,
    ) -> anyhow::Result<()> {
        let now = Utc::now();
        match outcome {
            Ok(receipt) => {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE outbound_messages SET status = 'sent', sent_at = $2, receipt = $3, last_error = '',
                            next_attempt_at = NULL WHERE id = $1",
                )
                .bind(m.id)
                .bind(now)
                .bind(receipt)
                .execute(&mut *tx)
                .await?;
                crate::receipts::delivered(&mut tx, &[m.item_id], &m.channel).await?;
                if let (Some(patient), Some(_)) = (m.patient_id, m.caregiver_member_id) {
                    // Every send to a family caregiver is on the patient's audit trail.
                    careloop_runtime::write::Acting::new(&mut tx, crate::api::SOURCE, ACTOR)
                        .audit("SendCaregiverNotice", m.org_id, patient, m.id)
                        .await?;
                }
                tx.commit().await?;
            }
            Err(error) => {
                let last = !configured || m.attempt_count >= self.max_attempts;
                tracing::warn!(message_id = %m.id, channel = %m.channel, attempt = m.attempt_count, "notice not sent");
                sqlx::query(
                    "UPDATE outbound_messages SET status = $2, next_attempt_at = $3, last_error = $4 WHERE id = $1",
                )
                .bind(m.id)
                .bind(if last { "failed" } else { "pending" })
                .bind((!last).then(|| now + self.backoff(m.attempt_count)))
                .bind(error)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }
}

/// Dispatches every `interval` until the service stops.
pub fn schedule(
    background: &mut careloop_runtime::events::Background,
    dispatcher: Arc<MessageDispatcher>,
    interval: Duration,
) {
    background.sweep_every(interval, "email and SMS notices", move || {
        let dispatcher = Arc::clone(&dispatcher);
        async move { dispatcher.dispatch_due(Utc::now(), 50).await }
    });
}
