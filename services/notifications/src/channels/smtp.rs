//! Email over SMTP (RFC 5321): EHLO, STARTTLS when configured (required then, never downgraded),
//! AUTH PLAIN when a user is set, MAIL FROM, RCPT TO, DATA with dot-stuffing, QUIT. Plain text,
//! one recipient per message.

use super::{Notice, Sender};
use anyhow::Context;
use base64::Engine as _;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

#[derive(Clone)]
pub struct SmtpSender {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub starttls: bool,
    pub username: String,
    pub password: careloop_runtime::secret::Secret,
    pub timeout: Duration,
    /// The name this client gives in EHLO.
    pub helo: String,
    pub tls: tokio_rustls::TlsConnector,
}

impl SmtpSender {
    /// Servers' certificates verified against `ca_file` (empty: the system's roots).
    pub fn tls_for(ca_file: &str) -> anyhow::Result<tokio_rustls::TlsConnector> {
        let roots = if ca_file.is_empty() {
            careloop_runtime::tls::system_roots()
        } else {
            careloop_runtime::tls::read_roots(std::path::Path::new(ca_file))?
        };
        let config = careloop_runtime::tls::client_config_with_roots(
            &careloop_runtime::config::TlsSettings::ca_only(String::new()),
            roots,
            false,
        )?;
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }

    async fn deliver(&self, notice: &Notice) -> anyhow::Result<String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .context("connect")?;
        let mut plain = BufReader::new(tcp);
        expect(&mut plain, 220).await?;
        command(&mut plain, &format!("EHLO {}", self.helo), 250).await?;
        if self.starttls {
            command(&mut plain, "STARTTLS", 220).await?;
            let name = rustls::pki_types::ServerName::try_from(self.host.clone())?;
            let tls = self.tls.connect(name, plain.into_inner()).await?;
            let mut secure = BufReader::new(tls);
            command(&mut secure, &format!("EHLO {}", self.helo), 250).await?;
            self.transaction(&mut secure, notice).await
        } else {
            self.transaction(&mut plain, notice).await
        }
    }

    async fn transaction<S>(&self, s: &mut BufReader<S>, notice: &Notice) -> anyhow::Result<String>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if !self.username.is_empty() {
            let token = base64::engine::general_purpose::STANDARD.encode(format!(
                "\0{}\0{}",
                self.username,
                self.password.expose()
            ));
            command(s, &format!("AUTH PLAIN {token}"), 235).await?;
        }
        command(s, &format!("MAIL FROM:<{}>", self.from), 250).await?;
        let rcpt = command_reply(s, &format!("RCPT TO:<{}>", notice.to)).await?;
        if !matches!(rcpt.0, 250 | 251) {
            anyhow::bail!("recipient refused: {}", rcpt.0);
        }
        command(s, "DATA", 354).await?;
        let id = format!(
            "<{}@{}>",
            uuid::Uuid::now_v7().simple(),
            self.helo.trim_matches(['[', ']'])
        );
        let mut message = String::new();
        message.push_str(&format!("From: CareLoop <{}>\r\n", self.from));
        message.push_str(&format!("To: <{}>\r\n", notice.to));
        message.push_str(&format!("Subject: {}\r\n", header_safe(&notice.subject)));
        message.push_str(&format!("Message-ID: {id}\r\n"));
        message.push_str(&format!(
            "Date: {}\r\n",
            chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000")
        ));
        message.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
        for line in notice.body.lines() {
            // Dot-stuffing: a line starting with "." gets another.
            if line.starts_with('.') {
                message.push('.');
            }
            message.push_str(line);
            message.push_str("\r\n");
        }
        message.push_str(".\r\n");
        s.get_mut().write_all(message.as_bytes()).await?;
        s.get_mut().flush().await?;
        let (code, accepted) = read_reply(s).await?;
        if code != 250 {
            anyhow::bail!("SMTP server answered {code} to the message");
        }
        let _ = command_reply(s, "QUIT").await;
        // The receipt: the server's acceptance (usually its queue id), then our Message-ID.
        Ok(format!("{} {id}", accepted.trim()).trim().to_owned())
    }
}

/// No line breaks in a header value.
fn header_safe(value: &str) -> String {
    value.replace(['\r', '\n'], " ")
}

async fn read_reply<S>(s: &mut BufReader<S>) -> anyhow::Result<(u16, String)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).await? == 0 {
            anyhow::bail!("server closed the connection");
        }
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .context("malformed SMTP reply")?;
        text.push_str(line.get(4..).unwrap_or("").trim_end());
        // "250-..." continues, "250 ..." ends.
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, text));
        }
        text.push(' ');
    }
}

async fn expect<S>(s: &mut BufReader<S>, code: u16) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (got, _) = read_reply(s).await?;
    if got != code {
        anyhow::bail!("SMTP server answered {got}, expected {code}");
    }
    Ok(())
}

async fn command_reply<S>(s: &mut BufReader<S>, line: &str) -> anyhow::Result<(u16, String)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    s.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await?;
    s.get_mut().flush().await?;
    read_reply(s).await
}

async fn command<S>(s: &mut BufReader<S>, line: &str, code: u16) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (got, _) = command_reply(s, line).await?;
    if got != code {
        // The command is not echoed: AUTH carries the password.
        let verb = line.split_whitespace().next().unwrap_or("");
        anyhow::bail!("SMTP server answered {got} to {verb}, expected {code}");
    }
    Ok(())
}

impl Sender for SmtpSender {
    fn send<'a>(&'a self, notice: &'a Notice) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            tokio::time::timeout(self.timeout, self.deliver(notice))
                .await
                .context("timed out")?
        })
    }
}
