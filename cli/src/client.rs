//! Where the CLI connects and how it proves who it is: the gateway by default (the one door), each
//! service directly for the commands that administer it; the bearer token on every call; TLS for
//! https:// addresses. Also what every request needs: the idempotency key and parsed enum names.

use careloop_proto::common::v1::CareRole;
use clap::Args;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

#[derive(Args, Clone)]
pub struct Connection {
    /// Address of the gateway, the door partners and apps use (also what `health` and `services`
    /// ask unless given another address).
    #[arg(
        long = "addr",
        env = "CARELOOP_GATEWAY_ADDR",
        default_value = "http://127.0.0.1:50050",
        global = true
    )]
    pub gateway_addr: String,
    /// Address of the plans service.
    #[arg(
        long,
        env = "CARELOOP_PLANS_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub plans_addr: String,
    /// Address of the referrals service.
    #[arg(
        long,
        env = "CARELOOP_REFERRALS_ADDR",
        default_value = "http://127.0.0.1:50052",
        global = true
    )]
    pub referrals_addr: String,
    /// Address of the prior-auth service.
    #[arg(
        long,
        env = "CARELOOP_PRIOR_AUTH_ADDR",
        default_value = "http://127.0.0.1:50053",
        global = true
    )]
    pub prior_auth_addr: String,
    /// Address of the notifications service.
    #[arg(
        long,
        env = "CARELOOP_NOTIFICATIONS_ADDR",
        default_value = "http://127.0.0.1:50054",
        global = true
    )]
    pub notifications_addr: String,
    /// Address of the metrics service.
    #[arg(
        long,
        env = "CARELOOP_METRICS_ADDR",
        default_value = "http://127.0.0.1:50055",
        global = true
    )]
    pub metrics_addr: String,
    /// CA bundle that verifies the services' certificates, for https:// addresses.
    #[arg(long, env = "CARELOOP_TLS_CA", global = true)]
    pub ca: Option<String>,
    /// Client certificate (PEM) presented over https, e.g. a workload certificate for probes.
    #[arg(long, env = "CARELOOP_TLS_CERT", global = true)]
    pub cert: Option<String>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "CARELOOP_TLS_KEY", global = true)]
    pub key: Option<String>,
    /// Bearer token (see `careloop dev-token`).
    #[arg(long, env = "CARELOOP_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Idempotency key for the write this command makes; repeat a command with the same key to
    /// retry it safely. A fresh key is used when absent.
    #[arg(long, global = true)]
    pub idempotency_key: Option<String>,
}

#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            req.metadata_mut().insert("authorization", token.clone());
        }
        Ok(req)
    }
}

type Transport = InterceptedService<Channel, Bearer>;
pub type Gateway =
    careloop_proto::gateway::v1::gateway_service_client::GatewayServiceClient<Transport>;
pub type Plans = careloop_proto::plans::v1::plans_service_client::PlansServiceClient<Transport>;
pub type Referrals =
    careloop_proto::referrals::v1::referrals_service_client::ReferralsServiceClient<Transport>;
pub type PriorAuth =
    careloop_proto::priorauth::v1::prior_auth_service_client::PriorAuthServiceClient<Transport>;
pub type Notifications =
    careloop_proto::notifications::v1::notifications_service_client::NotificationsServiceClient<
        Transport,
    >;
pub type Metrics =
    careloop_proto::metrics::v1::metrics_service_client::MetricsServiceClient<Transport>;

impl Connection {
    /// A channel to `addr`: TLS for https:// (verified with `--ca`, presenting `--cert` when given).
    pub fn channel(&self, addr: &str) -> anyhow::Result<Channel> {
        let tls = careloop_runtime::config::TlsSettings {
            cert_file: self.cert.clone().unwrap_or_default(),
            key_file: self.key.clone().unwrap_or_default(),
            ca_file: self.ca.clone().unwrap_or_default(),
            reload_secs: 0,
        };
        careloop_runtime::client::channel(addr, &tls)
    }

    fn bearer(&self) -> anyhow::Result<Bearer> {
        let token = self.token.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "no token: pass --token or set CARELOOP_TOKEN (try `careloop dev-token`)"
            )
        })?;
        Ok(Bearer(Some(format!("Bearer {token}").parse()?)))
    }

    fn transport(&self, addr: &str) -> anyhow::Result<Transport> {
        Ok(InterceptedService::new(self.channel(addr)?, self.bearer()?))
    }

    pub fn gateway(&self) -> anyhow::Result<Gateway> {
        Ok(Gateway::new(self.transport(&self.gateway_addr)?))
    }

    pub fn plans(&self) -> anyhow::Result<Plans> {
        Ok(Plans::new(self.transport(&self.plans_addr)?))
    }

    pub fn referrals(&self) -> anyhow::Result<Referrals> {
        Ok(Referrals::new(self.transport(&self.referrals_addr)?))
    }

    pub fn prior_auth(&self) -> anyhow::Result<PriorAuth> {
        Ok(PriorAuth::new(self.transport(&self.prior_auth_addr)?))
    }

    pub fn notifications(&self) -> anyhow::Result<Notifications> {
        Ok(Notifications::new(
            self.transport(&self.notifications_addr)?,
        ))
    }

    pub fn metrics(&self) -> anyhow::Result<Metrics> {
        Ok(Metrics::new(self.transport(&self.metrics_addr)?))
    }
}

/// Parses names such as "care_manager" into proto enums by their CONSTANT_CASE names.
pub fn parse_enum<E>(prefix: &str, value: &str, from: fn(&str) -> Option<E>) -> anyhow::Result<E> {
    let name = format!("{prefix}_{}", value.trim().to_uppercase().replace('-', "_"));
    from(&name).ok_or_else(|| anyhow::anyhow!("unknown value {value:?} ({prefix})"))
}

pub fn role(value: &str) -> anyhow::Result<i32> {
    Ok(parse_enum("CARE_ROLE", value, CareRole::from_str_name)? as i32)
}

static KEY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Remembers the key given on the command line for this command's one write.
pub fn set_key(key: Option<String>) {
    let _ = KEY.set(key);
}

/// The idempotency key for this command's write: the one given, or a fresh one.
pub fn key() -> String {
    KEY.get()
        .cloned()
        .flatten()
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

pub fn hours_from_now(h: i64) -> Option<prost_types::Timestamp> {
    Some(careloop_runtime::time::to_timestamp(
        chrono::Utc::now() + chrono::Duration::hours(h),
    ))
}
