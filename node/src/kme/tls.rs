//! Mutual TLS for ETSI GS QKD 014: PEM files in, rustls configurations out
//! (TLS 1.2 and 1.3, ring), and the SAE id a client certificate names.
//!
//! Both ends trust one certificate authority (the `ca` file): the KME
//! accepts a client only with a certificate that CA signed, and a client
//! accepts a KME only with one too. An SAE's id is the first DNS name of its
//! certificate (subjectAltName), which is how `qward kme certs` makes them.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The PEM files of one end: the CA both ends trust, this end's
/// certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("a certificate in {} is not valid PEM", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

fn key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("reading the private key in {}", path.display()))
}

fn roots(path: &Path) -> anyhow::Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for c in certs(path)? {
        roots
            .add(c)
            .with_context(|| format!("{} is not a usable CA certificate", path.display()))?;
    }
    Ok(Arc::new(roots))
}

impl TlsFiles {
    fn not_a_pair(&self) -> String {
        format!(
            "{} and {} do not make a certificate and its key",
            self.cert.display(),
            self.key.display()
        )
    }

    /// The KME's side: its certificate, and every client must present one
    /// signed by the CA.
    pub fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(&self.ca)?, provider())
            .build()
            .context("building the client-certificate check")?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.cert)?, key(&self.key)?)
            .with_context(|| self.not_a_pair())?;
        Ok(Arc::new(config))
    }

    /// An SAE's side: the KME's certificate must chain to the CA; this end
    /// presents its own.
    pub fn client_config(&self) -> anyhow::Result<Arc<ClientConfig>> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots(&self.ca)?)
            .with_client_auth_cert(certs(&self.cert)?, key(&self.key)?)
            .with_context(|| self.not_a_pair())?;
        Ok(Arc::new(config))
    }
}

/// The SAE id a (verified) client certificate names: its first DNS name.
pub fn sae_id_of(cert: &CertificateDer<'_>) -> Option<String> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    cert.valid_dns_names().next().map(str::to_string)
}
