//! `qward kme certs`: a certificate authority and the certificates a KME
//! and its SAEs present to each other (ECDSA P-256), for a deployment
//! without a PKI of its own and for tests. A KME's certificate names the
//! KME, `localhost` and 127.0.0.1 (and any `--host`); an SAE's names only
//! its SAE id, which the KME reads as the caller's identity.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use qward_core::etsi014::check_sae_id;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// What `certs` wrote.
#[derive(Debug)]
pub struct Written {
    pub files: Vec<PathBuf>,
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Makes a CA in `out` (created if missing, files never overwritten) and a
/// certificate and key for every KME and SAE named.
pub fn make(
    out: &Path,
    kmes: &[String],
    saes: &[String],
    hosts: &[String],
) -> anyhow::Result<Written> {
    if kmes.is_empty() && saes.is_empty() {
        bail!("name at least one --kme or --sae");
    }
    for name in kmes.iter().chain(saes) {
        check_sae_id(name).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = Vec::new();
    let ca_key = KeyPair::generate().context("a CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "qward ETSI 014 CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).context("signing the CA")?;
    let ca_path = out.join("ca.pem");
    write_private(&ca_path, &ca_cert.pem())?;
    write_private(&out.join("ca.key"), &ca_key.serialize_pem())?;
    files.push(ca_path);
    let mut leaf = |prefix: &str, name: &str, sans: Vec<String>, usage| -> anyhow::Result<()> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(sans)?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![usage];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = p.signed_by(&key, &ca_cert, &ca_key)?;
        let pem = out.join(format!("{prefix}-{name}.pem"));
        write_private(&pem, &cert.pem())?;
        write_private(
            &out.join(format!("{prefix}-{name}.key")),
            &key.serialize_pem(),
        )?;
        files.push(pem);
        Ok(())
    };
    for name in kmes {
        let mut sans = vec![name.clone(), "localhost".into(), "127.0.0.1".into()];
        sans.extend(hosts.iter().cloned());
        leaf("kme", name, sans, ExtendedKeyUsagePurpose::ServerAuth)?;
    }
    for name in saes {
        leaf(
            "sae",
            name,
            vec![name.clone()],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
    }
    Ok(Written { files })
}
