//! Partner webhooks following the Standard Webhooks specification: every change of an item raised
//! by a rule with the webhook channel becomes one delivery per enabled endpoint of the item's
//! organization (in the transaction that changes the item), and a dispatcher POSTs it with the
//! `webhook-id`, `webhook-timestamp` and `webhook-signature` headers (HMAC-SHA256 over
//! "id.timestamp.body" with the endpoint's secret). A failed try is retried with exponential
//! backoff and jitter; after the last try the delivery is failed (a resend tries again); an
//! endpoint with `disable_after` failed deliveries in a row (each having used up its tries) is
//! disabled until re-enabled. Bodies carry ids, roles and states only.

use crate::store::ItemRow;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// Retries and endpoint health.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_attempts: i32,
    pub disable_after: i32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

pub use careloop_runtime::signing::{new_secret, sign};

/// The body for an item change: Standard Webhooks' {type, timestamp, data}.
fn body(item: &ItemRow, event_type: &str, at: DateTime<Utc>) -> String {
    serde_json::json!({
        "type": event_type,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "item_id": item.id,
            "org_id": item.org_id,
            "patient_id": item.patient_id,
            "loop": { "kind": careloop_runtime::events::fields::loop_kind_name(item.loop_kind), "id": item.loop_id },
            "stage": item.stage,
            "title": item.title,
            "priority": item.priority,
            "role": careloop_runtime::events::fields::care_role_name(item.role),
            "rung": item.rung,
            "status": item.status,
            "version": item.version,
        }
    })
    .to_string()
}

/// Queues the item's change for every enabled endpoint of its organization that takes this event
/// type, when the item's rule sends to webhooks; once per endpoint and item version.
pub async fn enqueue(
    conn: &mut PgConnection,
    item: &ItemRow,
    event_type: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<u64> {
    if !item.channels.iter().any(|c| c == "webhook") {
        return Ok(0);
    }
    let queued = sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, item_id, item_version, patient_id, event_type, payload,
                                         status, next_attempt_at, created_at)
         SELECT gen_random_uuid(), e.id, $2, $3, $4, $5, $6, 'pending', $7, $7
           FROM webhook_endpoints e
          WHERE e.org_id = $1 AND e.enabled
            AND (cardinality(e.event_types) = 0 OR $5 = ANY(e.event_types))
         ON CONFLICT (endpoint_id, item_id, item_version) DO NOTHING",
    )
    .bind(item.org_id)
    .bind(item.id)
    .bind(item.version)
    .bind(item.patient_id)
    .bind(event_type)
    .bind(body(item, event_type, at))
    .bind(at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(queued)
}

#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    item_id: Uuid,
    endpoint_id: Uuid,
    payload: String,
    attempt_count: i32,
    attempt_budget: Option<i32>,
    url: String,
    secret: String,
}

pub struct Dispatcher {
    pub pool: PgPool,
    pub client: careloop_runtime::http::HttpClient,
    pub policy: Policy,
    /// Whether plain http endpoints may be called (local tests only).
    pub allow_http: bool,
}

impl Dispatcher {
    /// The wait after try `n` failed: the first backoff doubling per try, capped, with up to 20%
    /// jitter so endpoints that fail together do not retry together.
    pub fn backoff(&self, attempt: i32) -> chrono::Duration {
        crate::retry::backoff(
            self.policy.first_backoff,
            self.policy.max_backoff,
            attempt,
            200,
        )
    }

    /// Sends every delivery due at `now` (up to `batch`); returns how many were tried. A try is
    /// claimed first (its next attempt moved a lease away), so replicas never send one twice at
    /// once, and a dispatcher that dies mid-try lets the lease lapse into a retry.
    pub async fn dispatch_due(&self, now: DateTime<Utc>, batch: i64) -> anyhow::Result<usize> {
        let lease = now + chrono::Duration::seconds(120);
        let due: Vec<Due> = sqlx::query_as(
            "WITH claimed AS (
                 UPDATE webhook_deliveries d SET next_attempt_at = $2, attempt_count = d.attempt_count + 1
                  WHERE d.id IN (SELECT x.id FROM webhook_deliveries x JOIN webhook_endpoints e ON e.id = x.endpoint_id
                                  WHERE x.status = 'pending' AND x.next_attempt_at <= $1 AND e.enabled
                                  ORDER BY x.next_attempt_at LIMIT $3 FOR UPDATE OF x SKIP LOCKED)
                 RETURNING d.id, d.item_id, d.endpoint_id, d.payload, d.attempt_count, d.attempt_budget)
             SELECT c.id, c.item_id, c.endpoint_id, c.payload, c.attempt_count, c.attempt_budget, e.url, e.secret
               FROM claimed c JOIN webhook_endpoints e ON e.id = c.endpoint_id",
        )
        .bind(now)
        .bind(lease)
        .bind(batch)
        .fetch_all(&self.pool)
        .await?;
        let tried = due.len();
        let sends = due.into_iter().map(|d| async move {
            let outcome = self.send(&d).await;
            if let Err(error) = self.record(&d, outcome).await {
                tracing::warn!(delivery_id = %d.id, error = %careloop_runtime::error::redacted(&error), "webhook outcome not recorded; the lease will retry it");
            }
        });
        futures::future::join_all(sends).await;
        Ok(tried)
    }

    /// One POST; Ok(status) for any answer, Err(reason) when the endpoint was not reached.
    async fn send(&self, d: &Due) -> Result<u16, String> {
        if !self.allow_http && !d.url.starts_with("https://") {
            return Err("endpoint is not https".into());
        }
        let id = d.id.to_string();
        let timestamp = Utc::now().timestamp();
        let signature = sign(&d.secret, &id, timestamp, &d.payload).map_err(|e| e.to_string())?;
        let timestamp = timestamp.to_string();
        let headers = [
            ("content-type", "application/json"),
            ("webhook-id", id.as_str()),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
            ("user-agent", "CareLoop-Webhooks/1"),
        ];
        self.client
            .send(
                http::Method::POST,
                &d.url,
                &headers,
                d.payload.clone().into_bytes(),
            )
            .await
            .map(|a| a.status)
            .map_err(|e| format!("{e:#}").chars().take(300).collect())
    }

    async fn record(&self, d: &Due, outcome: Result<u16, String>) -> anyhow::Result<()> {
        let now = Utc::now();
        let (code, error) = match &outcome {
            Ok(code) if (200..300).contains(code) => (i32::from(*code), String::new()),
            Ok(code) => (i32::from(*code), format!("answered {code}")),
            Err(reason) => (0, reason.clone()),
        };
        let delivered = error.is_empty();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(d.id)
        .bind(d.attempt_count)
        .bind(now)
        .bind(code)
        .bind(&error)
        .execute(&mut *tx)
        .await?;
        if delivered {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $2, next_attempt_at = NULL WHERE id = $1",
            )
            .bind(d.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id = $1")
                .bind(d.endpoint_id)
                .execute(&mut *tx)
                .await?;
            crate::receipts::delivered(&mut tx, &[d.item_id], "webhook").await?;
        } else {
            let last = d.attempt_count >= d.attempt_budget.unwrap_or(self.policy.max_attempts);
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3 WHERE id = $1",
            )
            .bind(d.id)
            .bind(if last { "failed" } else { "pending" })
            .bind((!last).then(|| now + self.backoff(d.attempt_count)))
            .execute(&mut *tx)
            .await?;
            // A delivery that used up its tries counts against the endpoint; a success clears it.
            let disabled: Option<bool> = if last {
                sqlx::query_scalar(
                    "UPDATE webhook_endpoints
                        SET consecutive_failures = consecutive_failures + 1,
                            enabled = enabled AND consecutive_failures + 1 < $2,
                            disabled_at = CASE WHEN enabled AND consecutive_failures + 1 >= $2 THEN $3 ELSE disabled_at END,
                            version = version + CASE WHEN enabled AND consecutive_failures + 1 >= $2 THEN 1 ELSE 0 END
                      WHERE id = $1
                      RETURNING NOT enabled",
                )
                .bind(d.endpoint_id)
                .bind(self.policy.disable_after)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
            } else {
                None
            };
            if disabled == Some(true) {
                tracing::warn!(endpoint_id = %d.endpoint_id, "webhook endpoint disabled after consecutive failures");
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Dispatches every `interval` until the service stops.
pub fn schedule(
    background: &mut careloop_runtime::events::Background,
    dispatcher: std::sync::Arc<Dispatcher>,
    interval: Duration,
) {
    background.sweep_every(interval, "webhook deliveries", move || {
        let dispatcher = std::sync::Arc::clone(&dispatcher);
        async move { dispatcher.dispatch_due(Utc::now(), 50).await }
    });
}
