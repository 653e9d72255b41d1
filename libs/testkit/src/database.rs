//! Fresh databases for tests: the service schema owned by the service's own role (as in production), on
//! the real local Postgres.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::str::FromStr;
use uuid::Uuid;

/// The admin connection tests use to create databases; trust auth on the local machine.
pub fn admin_url() -> String {
    std::env::var("CARELOOP_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub struct TestDatabase {
    pub name: String,
    /// URL for the service's own (runtime) role.
    pub service_url: String,
    /// URL for the role that owns the schema and runs migrations (as in production).
    pub migration_url: String,
    /// An admin pool on the test database, search_path set to the schema, for assertions.
    pub admin: PgPool,
}

/// Creates `careloop_test_<uuid>` with `schema` owned by role `careloop_<schema>_owner` (which
/// runs migrations) and used by the runtime role `careloop_<schema>`, as in production.
pub async fn fresh_database(schema: &str) -> anyhow::Result<TestDatabase> {
    let admin_url = admin_url();
    let mut admin = PgConnection::connect(&admin_url).await?;
    let role = format!("careloop_{schema}");
    let owner = format!("careloop_{schema}_owner");
    // Roles are cluster-wide and tests run in parallel: tolerate a concurrent creation.
    for name in [&role, &owner] {
        let create_role = format!(
            "DO $$ BEGIN CREATE ROLE {name} LOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(create_role))
            .execute(&mut admin)
            .await?;
    }
    let name = format!("careloop_test_{}", Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    admin.close().await?;

    let db_options = PgConnectOptions::from_str(&admin_url)?.database(&name);
    let mut conn = db_options.connect().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA {schema} AUTHORIZATION {owner}; REVOKE ALL ON SCHEMA public FROM PUBLIC;"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;

    let admin = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(db_options.clone().options([("search_path", schema)]))
        .await?;
    let service_url = db_options
        .clone()
        .username(&role)
        .to_url_lossy()
        .to_string();
    let migration_url = db_options.username(&owner).to_url_lossy().to_string();
    Ok(TestDatabase {
        name,
        service_url,
        migration_url,
        admin,
    })
}
