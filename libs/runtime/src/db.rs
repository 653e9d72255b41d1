//! One Postgres pool per service, pinned to the service's own schema, and migrations run at start
//! under an advisory lock so replicas starting together apply them once.

use crate::config::DatabaseSettings;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// The tables every service shares (outbox, audit log, idempotency keys), tracked in their own
/// migrations table so service migrations keep their own numbering.
static COMMON: Migrator = sqlx::migrate!("./migrations");

pub async fn connect(settings: &DatabaseSettings, schema: &str) -> anyhow::Result<PgPool> {
    let timeout = settings.statement_timeout_ms.to_string();
    let options = PgConnectOptions::from_str(settings.url.expose())?
        .options([
            ("search_path", schema),
            ("statement_timeout", timeout.as_str()),
        ])
        .application_name(schema);
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Migrates the service's schema before the service connects: as the owner role when
/// `database.migration_url` is set (then grants the runtime role its rights, and on the audit log
/// only insert and select), else with the runtime role's own pool.
pub async fn prepare(
    settings: &DatabaseSettings,
    schema: &str,
    service: &Migrator,
    runtime_pool: &PgPool,
) -> anyhow::Result<()> {
    if settings.migration_url.expose().is_empty() {
        return migrate(runtime_pool, schema, service).await;
    }
    let runtime_role = PgConnectOptions::from_str(settings.url.expose())?
        .get_username()
        .to_owned();
    let owner_settings = DatabaseSettings {
        url: settings.migration_url.clone(),
        max_connections: 1,
        ..settings.clone()
    };
    let owner = connect(&owner_settings, schema).await?;
    let result = async {
        migrate(&owner, schema, service).await?;
        grant_runtime_rights(&owner, schema, &runtime_role).await
    }
    .await;
    owner.close().await;
    result
}

/// The runtime role reads and writes the service's tables, but the audit log only grows.
async fn grant_runtime_rights(owner: &PgPool, schema: &str, role: &str) -> anyhow::Result<()> {
    let plain = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    if !plain(schema) || !plain(role) {
        anyhow::bail!("schema and role names must be lowercase identifiers");
    }
    let sql = format!(
        "GRANT USAGE ON SCHEMA {schema} TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};
         GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role};
         REVOKE UPDATE, DELETE, TRUNCATE ON {schema}.audit_log FROM {role};"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(owner)
        .await?;
    Ok(())
}

/// Runs the shared migrations, then the service's, holding a per-schema advisory lock. Both migrators
/// ignore versions they do not know, so an older replica keeps working during a rolling upgrade.
pub async fn migrate(pool: &PgPool, schema: &str, service: &Migrator) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let lock_key = format!("careloop.migrate.{schema}");
    // Migrations may run longer than a request's statement timeout; the session default returns after.
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(&lock_key)
        .execute(&mut *conn)
        .await?;
    let result = run_both(&mut conn, service).await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(&lock_key)
        .execute(&mut *conn)
        .await?;
    sqlx::query("RESET statement_timeout")
        .execute(&mut *conn)
        .await?;
    result
}

async fn run_both(conn: &mut sqlx::PgConnection, service: &Migrator) -> anyhow::Result<()> {
    let mut common = Migrator {
        migrations: COMMON.migrations.clone(),
        ..Migrator::DEFAULT
    };
    common.dangerous_set_table_name("_careloop_common_migrations");
    common.set_ignore_missing(true).set_locking(false);
    common.run(&mut *conn).await?;
    let mut own = Migrator {
        migrations: service.migrations.clone(),
        ..Migrator::DEFAULT
    };
    own.set_ignore_missing(true).set_locking(false);
    own.run(&mut *conn).await?;
    conn.ping().await?;
    Ok(())
}

/// A row with an optimistic-concurrency version.
pub trait Versioned {
    fn version(&self) -> i64;
}

/// Locks row `id` of `table` for the rest of the transaction and checks the caller's expected
/// version (ABORTED, `STALE_VERSION`, when another change came first; no check when `None`). A
/// missing row is NOT_FOUND naming `what`. `table` is one of the service's own table names.
pub async fn lock_versioned<T>(
    conn: &mut sqlx::PgConnection,
    table: &'static str,
    what: &'static str,
    id: uuid::Uuid,
    expected_version: Option<i64>,
) -> crate::error::ApiResult<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Versioned + Send + Unpin,
{
    let sql = format!("SELECT * FROM {table} WHERE id = $1 FOR UPDATE");
    let row: T = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(crate::error::ApiError::NotFound(what))?;
    if let Some(expected) = expected_version {
        crate::error::ApiError::ensure_version(row.version(), expected)?;
    }
    Ok(row)
}

/// Implements [`Versioned`] for row types with a `version` column.
#[macro_export]
macro_rules! versioned {
    ($($row:ty),+ $(,)?) => {
        $(impl $crate::db::Versioned for $row {
            fn version(&self) -> i64 {
                self.version
            }
        })+
    };
}

/// The quoted literals of the first `<prefix>('a', 'b', ...)` list in `sql`, in order: lets a unit
/// test hold a query's status list to the domain's (one spelling of each status).
pub fn quoted_list<'a>(sql: &'a str, prefix: &str) -> Vec<&'a str> {
    let Some(start) = sql.find(prefix).map(|i| i + prefix.len()) else {
        return vec![];
    };
    let rest = &sql[start..];
    let end = rest.find(')').unwrap_or(rest.len());
    rest[..end]
        .split(',')
        .map(|item| item.trim().trim_matches('\''))
        .filter(|item| !item.is_empty())
        .collect()
}
