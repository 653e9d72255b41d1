//! A small HTTP/1.1 client for the outside parties CareLoop calls (identity providers' keys,
//! partners' webhook endpoints): one request per connection, TLS for https verified against the
//! given roots, an overall timeout, and a bounded response body.

use anyhow::Context;
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct HttpClient {
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
    max_body: usize,
}

/// What the server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpClient {
    /// Servers verified against `roots`; the whole exchange bounded by `timeout`, the answer's
    /// body by `max_body` bytes.
    pub fn new(roots: RootCertStore, timeout: Duration, max_body: usize) -> anyhow::Result<Self> {
        let config = crate::tls::client_config_with_roots(
            &crate::config::TlsSettings::ca_only(String::new()),
            roots,
            false,
        )?;
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout,
            max_body,
        })
    }

    /// Roots from `ca_file`, or the system's when empty.
    pub fn with_ca_file(ca_file: &str, timeout: Duration, max_body: usize) -> anyhow::Result<Self> {
        let roots = if ca_file.is_empty() {
            crate::tls::system_roots()
        } else {
            crate::tls::read_roots(std::path::Path::new(ca_file))?
        };
        Self::new(roots, timeout, max_body)
    }

    /// Sends one request; any status is an answer (the caller judges it), a transport failure or
    /// the timeout an error.
    pub async fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        tokio::time::timeout(self.timeout, self.exchange(method, url, headers, body))
            .await
            .context("timed out")?
    }

    async fn exchange(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        let uri: http::Uri = url.parse().context("invalid URL")?;
        let host = uri.host().context("URL has no host")?.to_owned();
        let bare = host.trim_matches(['[', ']']).to_owned();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => anyhow::bail!("URL scheme must be http or https"),
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = tokio::net::TcpStream::connect((bare.as_str(), port)).await?;
        let _ = tcp.set_nodelay(true);
        let request = build(method, &uri, headers, body)?;
        if https {
            let name = rustls::pki_types::ServerName::try_from(bare)?;
            let stream = self.tls.connect(name, tcp).await?;
            self.over(TokioIo::new(stream), request).await
        } else {
            self.over(TokioIo::new(tcp), request).await
        }
    }

    async fn over<IO>(
        &self,
        io: IO,
        request: http::Request<http_body_util::Full<Bytes>>,
    ) -> anyhow::Result<Answer>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), self.max_body)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("failed to read the answer: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            body: body.to_vec(),
        })
    }
}

fn build(
    method: http::Method,
    uri: &http::Uri,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> anyhow::Result<http::Request<http_body_util::Full<Bytes>>> {
    let authority = uri
        .authority()
        .context("URL has no host")?
        .as_str()
        .to_owned();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, authority);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Ok(request.body(http_body_util::Full::new(Bytes::from(body)))?)
}
