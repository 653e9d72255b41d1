//! The connection to NATS JetStream and the stream every service publishes to. The client connects
//! in the background and reconnects by itself, so a NATS outage never stops a service from starting
//! or from committing writes: events wait in the outbox.

use crate::config::EventSettings;
use async_nats::jetstream::{self, stream};
use std::time::Duration;

#[derive(Clone)]
pub struct EventBus {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub settings: EventSettings,
}

impl EventBus {
    /// Connects (in the background when the server is not reachable yet).
    pub async fn connect(settings: &EventSettings) -> anyhow::Result<Self> {
        let mut options = async_nats::ConnectOptions::new();
        if !settings.user.is_empty() {
            options = options
                .user_and_password(settings.user.clone(), settings.password.expose().to_owned());
        }
        if settings.tls {
            // NATS's certificate verified with the CareLoop CA; the workload certificate (re-read
            // on renewal) presented when NATS asks for one.
            let tls = crate::config::TlsSettings {
                cert_file: settings.cert_file.clone(),
                key_file: settings.key_file.clone(),
                ca_file: settings.ca_file.clone(),
                reload_secs: 60,
            };
            let roots = crate::tls::read_roots(std::path::Path::new(&settings.ca_file))?;
            let config = crate::tls::client_config_with_roots(&tls, roots, false)?;
            options = options.require_tls(true).tls_client_config(config);
        }
        let client = options
            .name("careloop")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis((100 * 2u64.pow(attempt.min(6) as u32)).min(5_000))
            })
            .connect(settings.nats_url.as_str())
            .await?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(Duration::from_millis(settings.publish_timeout_ms));
        Ok(Self {
            client,
            jetstream,
            settings: settings.clone(),
        })
    }

    /// The subject an event type is published on.
    pub fn subject(&self, event_type: &str) -> String {
        format!("{}.{event_type}", self.settings.subject_prefix)
    }

    /// Where a consumer's dead letters go.
    pub fn dead_letter_subject(&self, consumer: &str) -> String {
        format!("{}_dlq.{consumer}", self.settings.subject_prefix)
    }

    fn stream_config(&self) -> stream::Config {
        let s = &self.settings;
        stream::Config {
            name: s.stream.clone(),
            subjects: vec![format!("{}.>", s.subject_prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(s.duplicate_window_secs),
            max_age: Duration::from_secs(s.max_age_hours * 3600),
            max_bytes: s.max_bytes,
            num_replicas: s.replicas,
            ..Default::default()
        }
    }

    fn dead_letter_config(&self) -> stream::Config {
        let s = &self.settings;
        stream::Config {
            name: format!("{}_DLQ", s.stream),
            subjects: vec![format!("{}_dlq.>", s.subject_prefix)],
            storage: stream::StorageType::File,
            max_age: Duration::from_secs(s.max_age_hours * 3600),
            num_replicas: s.replicas,
            ..Default::default()
        }
    }

    /// Creates the event stream and the dead-letter stream, or brings their limits up to date.
    pub async fn ensure_streams(&self) -> anyhow::Result<()> {
        for config in [self.stream_config(), self.dead_letter_config()] {
            match self.jetstream.get_stream(&config.name).await {
                Ok(mut existing) => {
                    let current = existing.info().await?.config.clone();
                    let changed = current.subjects != config.subjects
                        || current.duplicate_window != config.duplicate_window
                        || current.max_age != config.max_age
                        || current.max_bytes != config.max_bytes
                        || current.num_replicas != config.num_replicas;
                    if changed {
                        self.jetstream.update_stream(&config).await?;
                        tracing::info!(stream = %config.name, "stream limits updated");
                    }
                }
                Err(_) => {
                    self.jetstream.get_or_create_stream(config.clone()).await?;
                    tracing::info!(stream = %config.name, "stream created");
                }
            }
        }
        Ok(())
    }

    /// Ensures the streams, retrying until NATS answers.
    pub async fn ensure_streams_with_retry(&self) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.ensure_streams().await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(error = %error, "event stream not ready; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}
