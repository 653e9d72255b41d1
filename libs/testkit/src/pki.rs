//! A throwaway certificate authority for tests: workload certificates for CareLoop services (SAN URI
//! `spiffe://careloop/service/<name>`, valid for 127.0.0.1 and localhost, server and client use),
//! server certificates for private PostgreSQL and NATS servers, written as PEM files in a temporary
//! folder removed on drop.

use careloop_runtime::config::TlsSettings;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};
use uuid::Uuid;

pub struct TestCa {
    dir: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub ca_file: PathBuf,
}

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("careloop-pki-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("pki folder");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key")).expect("ca");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, issuer.pem()).expect("write ca");
        Self {
            dir,
            issuer,
            ca_file,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A certificate for `file_name` with these subject alternative names, signed by this CA.
    pub fn issue(&self, file_name: &str, sans: Vec<SanType>, common_name: &str) -> CertFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params.subject_alt_names = sans;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &*self.issuer).expect("leaf");
        let files = CertFiles {
            cert_file: self.dir.join(format!("{file_name}.crt")),
            key_file: self.dir.join(format!("{file_name}.key")),
        };
        std::fs::write(&files.cert_file, cert.pem()).expect("write cert");
        std::fs::write(&files.key_file, key.serialize_pem()).expect("write key");
        files
    }

    /// The names a server on this machine answers to.
    pub fn local_names() -> Vec<SanType> {
        vec![
            SanType::DnsName("localhost".try_into().expect("dns")),
            SanType::IpAddress("127.0.0.1".parse().expect("ip")),
        ]
    }

    /// A CareLoop workload certificate for `service`, with the settings that use it.
    pub fn workload(&self, service: &str) -> TlsSettings {
        self.workload_in_domain(service, "careloop")
    }

    /// A workload certificate in another trust domain (which CareLoop must not take as its own).
    pub fn workload_in_domain(&self, service: &str, trust_domain: &str) -> TlsSettings {
        let mut sans = Self::local_names();
        sans.push(SanType::URI(
            format!("spiffe://{trust_domain}/service/{service}")
                .try_into()
                .expect("uri"),
        ));
        let files = self.issue(&format!("{trust_domain}-{service}"), sans, service);
        self.settings(&files)
    }

    /// A client certificate that names no service at all (a person's, an app's).
    pub fn anonymous_client(&self, name: &str) -> TlsSettings {
        let files = self.issue(name, Self::local_names(), name);
        self.settings(&files)
    }

    pub fn settings(&self, files: &CertFiles) -> TlsSettings {
        TlsSettings {
            cert_file: files.cert_file.display().to_string(),
            key_file: files.key_file.display().to_string(),
            ca_file: self.ca_file.display().to_string(),
            reload_secs: 0,
        }
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
