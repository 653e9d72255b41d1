//! Channels to other CareLoop services (and the OTLP collector). An `https://` address is dialled
//! with rustls: the server verified against the configured CA under the host name of the address,
//! and the workload certificate presented, so the callee knows which service calls. `http://` stays
//! plaintext, for dev mode on loopback.

use crate::config::TlsSettings;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Dials TCP, then TLS with the server name taken from the URI.
#[derive(Clone)]
pub struct TlsDialer {
    connector: TlsConnector,
    /// Verify the server under this name instead of the URI's host: a replica dialled by its
    /// resolved address still proves the service's name.
    server_name: Option<String>,
}

impl TlsDialer {
    pub fn new(config: ClientConfig) -> Self {
        Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name: None,
        }
    }

    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }
}

impl tower_service::Service<Uri> for TlsDialer {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.connector.clone();
        let server_name = self.server_name.clone();
        Box::pin(async move {
            let invalid =
                |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
            let host = uri.host().ok_or_else(|| invalid("address has no host"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(server_name.unwrap_or_else(|| host.clone()))
                .map_err(|_| invalid("invalid host name"))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let tls = connector.connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// A lazily connected channel to `addr`: TLS (mutual, when the workload has a certificate) for
/// `https://`, plaintext for `http://`.
pub fn channel(addr: &str, tls: &TlsSettings) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(addr.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if addr.starts_with("https://") {
        let dialer = TlsDialer::new(crate::tls::client_config(tls)?);
        Ok(endpoint.connect_with_connector_lazy(dialer))
    } else if addr.starts_with("http://") {
        Ok(endpoint.connect_lazy())
    } else {
        anyhow::bail!("service address must start with https:// or http://")
    }
}

/// A lazily connected channel to one replica of `addr`'s service at `replica` (a resolved socket
/// address): TLS still verifies the server under `addr`'s host name.
pub fn replica_channel(
    addr: &str,
    replica: std::net::SocketAddr,
    tls: &TlsSettings,
) -> anyhow::Result<Channel> {
    let uri: Uri = addr.parse()?;
    let host = uri
        .host()
        .ok_or_else(|| anyhow::anyhow!("{addr}: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let scheme = uri.scheme_str().unwrap_or("http");
    let endpoint = Endpoint::from_shared(format!("{scheme}://{replica}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    match scheme {
        "https" => {
            let dialer = TlsDialer::new(crate::tls::client_config(tls)?).with_server_name(host);
            Ok(endpoint.connect_with_connector_lazy(dialer))
        }
        "http" => Ok(endpoint.connect_lazy()),
        _ => anyhow::bail!("service address must start with https:// or http://"),
    }
}
