use careloop_runtime::config::Settings;
use careloop_runtime::secret::Secret;
use careloop_testkit::{PostgresServer, TestCa};

fn database(url: String) -> careloop_runtime::config::DatabaseSettings {
    let mut settings = Settings::defaults().database;
    settings.url = Secret::new(url);
    settings.acquire_timeout_ms = 3000;
    settings.max_connections = 2;
    settings
}

#[tokio::test]
async fn a_service_reaches_postgres_with_verify_full_and_the_session_is_encrypted() {
    let ca = TestCa::new("careloop test ca");
    let server = PostgresServer::start_tls_only(&ca).expect("private postgres with tls");
    let url = server.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        ca.ca_file.display()
    ));
    let pool = careloop_runtime::db::connect(&database(url), "public")
        .await
        .expect("verify-full connects");
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(encrypted, "the session runs over TLS");
    pool.close().await;
}

#[tokio::test]
async fn plaintext_and_an_unknown_ca_are_refused() {
    let ca = TestCa::new("careloop test ca");
    let server = PostgresServer::start_tls_only(&ca).expect("private postgres with tls");

    let plaintext =
        careloop_runtime::db::connect(&database(server.url("sslmode=disable")), "public").await;
    assert!(
        plaintext.is_err(),
        "the server accepts no plaintext session"
    );

    let stranger = TestCa::new("someone else's ca");
    let forged = careloop_runtime::db::connect(
        &database(server.url(&format!(
            "sslmode=verify-full&sslrootcert={}",
            stranger.ca_file.display()
        ))),
        "public",
    )
    .await;
    assert!(
        forged.is_err(),
        "a server certificate from another CA is not trusted"
    );
}
