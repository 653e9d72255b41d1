//! Private NATS JetStream servers (the real nats-server binary on a free loopback port, with its own
//! store) for tests that stop and restart the bus, and per-test streams on any server.

use careloop_runtime::config::{EventSettings, Settings};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use uuid::Uuid;

pub struct NatsServer {
    port: u16,
    dir: PathBuf,
    /// A configuration file (TLS, users and permissions) instead of the plain flags.
    config: Option<PathBuf>,
    child: Option<Child>,
}

fn binary() -> String {
    std::env::var("CARELOOP_NATS_SERVER_BIN").unwrap_or_else(|_| {
        [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server")
        .to_owned()
    })
}

impl NatsServer {
    /// Starts a JetStream server on a free 127.0.0.1 port.
    pub async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("careloop-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self {
            port,
            dir,
            config: None,
            child: None,
        };
        server.restart().await?;
        Ok(server)
    }

    /// Starts a JetStream server whose configuration is `body` (TLS, authorization, ...) after the
    /// listen address and the store, which this function writes.
    pub async fn start_with_config(body: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("careloop-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\n{body}\n",
                dir.join("store").display()
            ),
        )?;
        let mut server = Self {
            port,
            dir,
            config: Some(config),
            child: None,
        };
        server.restart().await?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as an outage would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same store, and waits until it accepts connections.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let mut command = Command::new(binary());
        match &self.config {
            Some(config) => command.arg("-c").arg(config),
            None => command
                .args([
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-sd",
                ])
                .arg(&self.dir),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("nats-server did not start on port {}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Event settings with a stream and subject prefix of their own, so tests never see each other's
/// events, and short delays so tests run fast.
pub fn event_settings(nats_url: &str) -> EventSettings {
    let id = Uuid::new_v4().simple().to_string();
    let mut settings = Settings::defaults().events;
    settings.nats_url = nats_url.to_owned();
    settings.stream = format!("TEST_{}", &id[..12]);
    settings.subject_prefix = format!("t{}", &id[..12]);
    settings.max_age_hours = 1;
    settings.relay_poll_ms = 100;
    settings.publish_timeout_ms = 1000;
    settings
}

/// Deletes a test's streams so the shared server does not collect them.
pub async fn remove_streams(settings: &EventSettings) {
    if let Ok(client) = async_nats::connect(settings.nats_url.as_str()).await {
        let js = async_nats::jetstream::new(client);
        let _ = js.delete_stream(&settings.stream).await;
        let _ = js.delete_stream(format!("{}_DLQ", settings.stream)).await;
    }
}
