//! The notifications service: routing rules send every overdue or abnormal loop to a role's inbox,
//! escalation ladders move unresolved items up until the loop itself moves, and watchers get each
//! item pushed as it arrives. `Application` is what main and the tests both run.

pub mod api;
pub mod channels;
pub mod directory;
pub mod domain;
pub mod escalation;
pub mod feed;
pub mod messages;
pub mod receipts;
pub mod retry;
pub mod router;
pub mod settings;
pub mod store;
pub mod webhooks;

use careloop_proto::notifications::v1::notifications_service_server::NotificationsServiceServer;
use careloop_runtime::config::Settings;
use careloop_runtime::events::{Consumer, ConsumerConfig, EventBus};
use careloop_runtime::service::Host;
use settings::NotificationSettings;
use sqlx::PgPool;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const SCHEMA: &str = "notifications";
pub const SERVICE_NAME: &str = "notifications";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// https, or plain http to a provider gateway on this host (a sidecar).
fn https_or_loopback(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]")),
        _ => false,
    }
}

/// The email and SMS senders the settings turn on, and how notices are retried.
pub fn messages_dispatcher(
    pool: PgPool,
    own: &NotificationSettings,
    plans: Option<careloop_runtime::access::PlansAccess>,
) -> anyhow::Result<messages::MessageDispatcher> {
    if own.email.enabled && !own.email.username.is_empty() && !own.email.starttls {
        anyhow::bail!(
            "notifications.email: a username needs starttls = true (the password never crosses in plain text)"
        );
    }
    if own.sms.enabled && !https_or_loopback(&own.sms.url) {
        anyhow::bail!("notifications.sms.url must be https (plain http only to this host)");
    }
    let email: Option<Arc<dyn channels::Sender>> = if own.email.enabled {
        Some(Arc::new(channels::smtp::SmtpSender {
            host: own.email.host.clone(),
            port: own.email.port,
            from: own.email.from.clone(),
            starttls: own.email.starttls,
            username: own.email.username.clone(),
            password: own.email.password.clone(),
            timeout: Duration::from_millis(own.email.timeout_ms),
            helo: own.email.helo.clone(),
            tls: channels::smtp::SmtpSender::tls_for(&own.email.ca_file)?,
        }))
    } else {
        None
    };
    let sms: Option<Arc<dyn channels::Sender>> = if own.sms.enabled {
        Some(Arc::new(channels::sms::HttpSms {
            url: own.sms.url.clone(),
            token: own.sms.token.clone(),
            client: careloop_runtime::http::HttpClient::with_ca_file(
                &own.sms.ca_file,
                Duration::from_millis(own.sms.timeout_ms),
                16 * 1024,
            )?,
        }))
    } else {
        None
    };
    Ok(messages::MessageDispatcher {
        pool,
        plans,
        email,
        sms,
        max_attempts: own.message_max_attempts,
        first_backoff: Duration::from_millis(own.message_first_backoff_ms),
        max_backoff: Duration::from_secs(900),
    })
}

pub struct Application {
    host: Host,
}

impl Application {
    pub async fn build(settings: Settings, own: NotificationSettings) -> anyhow::Result<Self> {
        let mut host = Host::start(&settings, SERVICE_NAME, SCHEMA, &MIGRATOR).await?;
        let (waker, listener) = feed::FeedWaker::start(
            host.pool.clone(),
            Duration::from_millis(own.watch_poll_ms),
            host.background.signal(),
        );
        host.background.push(listener);
        let directory = directory::Directory::new(Duration::from_secs(5));
        let api = api::NotificationsApi::new(
            host.pool.clone(),
            waker,
            Arc::clone(&directory),
            host.background.signal(),
            api::WebhookRules {
                allow_http: own.webhooks.allow_http,
                max_attempts: own.webhooks.max_attempts,
            },
        );
        let auth = host.interceptor();
        host.server
            .routes()
            .add_service(tonic::service::interceptor::InterceptedService::new(
                NotificationsServiceServer::new(api)
                    .max_decoding_message_size(settings.grpc.max_message_bytes),
                auth,
            ));
        let access = careloop_runtime::access::PlansAccess::new(
            &own.plans_addr,
            &settings.tls,
            Arc::clone(&host.auth),
            SERVICE_NAME,
        )?;
        host.serve_audit(Arc::new(access.clone()));
        host.server
            .mark_serving(&[
                "careloop.notifications.v1.NotificationsService",
                "careloop.audit.v1.AuditService",
            ])
            .await;
        // Background work starts last, once nothing else in build can fail.
        let router = if settings.events.enabled && own.router_enabled {
            let bus = EventBus::connect(&settings.events).await?;
            let mut config = ConsumerConfig::new(
                "notifications-router",
                format!("{}.>", settings.events.subject_prefix),
            );
            // Events applied together share one commit. Measured with W4 at 500/s: a batch of 16
            // doubled the median and raised p99 (more commits, a backlog); 100 is the default.
            config.batch = own.router_batch;
            Some(Consumer::new(
                host.pool.clone(),
                bus,
                config,
                router::Router {
                    clock: router::system_clock(),
                    directory,
                },
                Arc::clone(&host.metrics),
            ))
        } else {
            None
        };
        let dispatcher = Arc::new(webhooks::Dispatcher {
            pool: host.pool.clone(),
            client: careloop_runtime::http::HttpClient::with_ca_file(
                &own.webhooks.ca_file,
                Duration::from_millis(own.webhooks.timeout_ms),
                64 * 1024,
            )?,
            policy: webhooks::Policy {
                max_attempts: own.webhooks.max_attempts,
                disable_after: own.webhooks.disable_after,
                first_backoff: Duration::from_millis(own.webhooks.first_backoff_ms),
                max_backoff: Duration::from_millis(own.webhooks.max_backoff_ms),
            },
            allow_http: own.webhooks.allow_http,
        });
        let messages = Arc::new(messages_dispatcher(
            host.pool.clone(),
            &own,
            Some(access.clone()),
        )?);
        host.start_publishing(&settings).await?;
        if let Some(consumer) = router {
            let task = consumer.spawn(host.background.signal());
            host.background.push(task);
        }
        webhooks::schedule(
            &mut host.background,
            dispatcher,
            Duration::from_millis(own.webhooks.dispatch_interval_ms),
        );
        messages::schedule(
            &mut host.background,
            messages,
            Duration::from_millis(own.message_dispatch_interval_ms),
        );
        escalation::schedule(
            &mut host.background,
            host.pool.clone(),
            Duration::from_millis(own.sweep_interval_ms),
            chrono::Duration::minutes(i64::from(own.fallback_after_minutes)),
        );
        Ok(Self { host })
    }

    /// Migrates the schema and returns (`--migrate-only`, the chart's init container).
    pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
        Host::migrate_only(settings, SCHEMA, &MIGRATOR).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.host.addr()
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.host.metrics_addr()
    }

    pub fn pool(&self) -> PgPool {
        self.host.pool.clone()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        self.host.run_until_stopped(shutdown).await
    }
}
