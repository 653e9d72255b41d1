//! Small values every service test needs: fresh idempotency keys, times relative to now, and
//! counts read straight from a service's schema.

use sqlx::PgPool;

/// A fresh idempotency key.
pub fn key() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `h` hours from now, as a request field.
pub fn in_hours(h: i64) -> Option<prost_types::Timestamp> {
    Some(careloop_runtime::time::to_timestamp(
        chrono::Utc::now() + chrono::Duration::hours(h),
    ))
}

/// A response's timestamp, which must be present and in range.
pub fn ts(t: &Option<prost_types::Timestamp>) -> chrono::DateTime<chrono::Utc> {
    careloop_runtime::time::from_timestamp(t.as_ref().expect("timestamp")).expect("in range")
}

/// One `count(*)`-shaped query against a test database.
pub async fn count(db: &PgPool, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(db).await.expect("count");
    n
}
