//! TLS for every hop, with rustls and the ring provider: the workload's certificate (served to gRPC
//! callers and presented as a client certificate to other services and NATS), re-read from disk so a
//! renewed certificate applies without a restart, the CA that verifies peers, and the workload
//! identity a verified peer certificate carries (a SAN URI `spiffe://<trust domain>/service/<name>`).

use crate::config::TlsSettings;
use anyhow::Context as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// Whether a gRPC server asks callers for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// No client certificates: callers are users with bearer tokens only.
    None,
    /// A certificate is verified when presented (services), tokens otherwise (users, probes).
    Optional,
    /// Every caller must present a certificate signed by the CA.
    Required,
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("failed to read certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("failed to parse certificates in {}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}

pub fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("failed to read a private key from {}", path.display()))
}

/// The trust anchors in a PEM bundle (several CAs overlap while a CA is rotated).
pub fn read_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .with_context(|| format!("invalid CA certificate in {}", path.display()))?;
    }
    Ok(roots)
}

/// The system's trust anchors, for endpoints with public certificates (an identity provider).
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    roots
}

/// The workload certificate, re-read when its files change (cert-manager rewrites them on renewal).
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Option<SystemTime>)>,
}

impl ReloadingCert {
    pub fn load(settings: &TlsSettings) -> anyhow::Result<Arc<Self>> {
        if settings.cert_file.is_empty() || settings.key_file.is_empty() {
            anyhow::bail!("tls.cert_file and tls.key_file are required for TLS");
        }
        let cert_file = PathBuf::from(&settings.cert_file);
        let key_file = PathBuf::from(&settings.key_file);
        let key = certified_key(&cert_file, &key_file)?;
        let stamp = modified(&cert_file);
        let this = Arc::new(Self {
            cert_file,
            key_file,
            current: RwLock::new((key, stamp)),
        });
        if settings.reload_secs > 0 {
            let weak = Arc::downgrade(&this);
            let every = Duration::from_secs(settings.reload_secs);
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        let Some(this) = weak.upgrade() else { return };
                        this.reload_if_changed();
                    }
                });
            }
        }
        Ok(this)
    }

    /// Re-reads the files when the certificate changed on disk; a half-written pair keeps the old one.
    pub fn reload_if_changed(&self) {
        let stamp = modified(&self.cert_file);
        let unchanged = self
            .current
            .read()
            .map(|current| current.1 == stamp)
            .unwrap_or(false);
        if unchanged {
            return;
        }
        match certified_key(&self.cert_file, &self.key_file) {
            Ok(key) => {
                if let Ok(mut current) = self.current.write() {
                    *current = (key, stamp);
                }
                tracing::info!(cert_file = %self.cert_file.display(), "workload certificate reloaded");
            }
            Err(error) => {
                tracing::warn!(error = %error, "workload certificate changed but could not be loaded; keeping the old one");
            }
        }
    }

    fn key(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|current| current.0.clone())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn certified_key(cert_file: &Path, key_file: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let certs = read_certs(cert_file)?;
    let key = read_key(key_file)?;
    let key = CertifiedKey::from_der(certs, key, &provider())
        .context("the workload certificate does not match its key")?;
    Ok(Arc::new(key))
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.key()
    }
}

impl rustls::client::ResolvesClientCert for ReloadingCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.key()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The gRPC server's TLS: the workload certificate, HTTP/2, and client certificates verified
/// against `tls.ca_file` as `client_auth` says.
pub fn server_config(
    settings: &TlsSettings,
    client_auth: ClientAuth,
) -> anyhow::Result<ServerConfig> {
    let cert = ReloadingCert::load(settings)?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            if settings.ca_file.is_empty() {
                anyhow::bail!("tls.ca_file is required to verify client certificates");
            }
            let roots = Arc::new(read_roots(Path::new(&settings.ca_file))?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = if client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A client's TLS: servers verified against `roots`; the workload certificate presented when set.
pub fn client_config_with_roots(
    settings: &TlsSettings,
    roots: RootCertStore,
    alpn_h2: bool,
) -> anyhow::Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = if settings.cert_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_resolver(ReloadingCert::load(settings)?)
    };
    if alpn_h2 {
        config.alpn_protocols = vec![b"h2".to_vec()];
    }
    Ok(config)
}

/// A client of other CareLoop services: peers verified against `tls.ca_file`, HTTP/2.
pub fn client_config(settings: &TlsSettings) -> anyhow::Result<ClientConfig> {
    if settings.ca_file.is_empty() {
        anyhow::bail!("tls.ca_file is required to call services over https");
    }
    let roots = read_roots(Path::new(&settings.ca_file))?;
    client_config_with_roots(settings, roots, true)
}

/// The CareLoop service a verified certificate belongs to: its SAN URI
/// `spiffe://<trust_domain>/service/<name>`. Any other certificate names no service.
pub fn service_identity(cert: &CertificateDer<'_>, trust_domain: &str) -> Option<String> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let prefix = format!("spiffe://{trust_domain}/service/");
    parsed.valid_uri_names().find_map(|uri| {
        let name = uri.strip_prefix(&prefix)?;
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        valid.then(|| name.to_owned())
    })
}
