//! The front end's TLS identity: a CA made once, and a server certificate
//! it signed for 127.0.0.1 and localhost, kept in the caller's directory so
//! the fingerprint clients pin survives restarts. The CA's key is never
//! written: nothing needs to sign again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

pub const CA_FILE: &str = "redfish-ca.pem";
pub const CERT_FILE: &str = "redfish-cert.pem";
pub const KEY_FILE: &str = "redfish-key.pem";

pub struct Identity {
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the server certificate's DER, "AB:CD:…".
    pub fingerprint: String,
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
}

fn error(what: String) -> std::io::Error {
    std::io::Error::other(what)
}

/// Colon-separated upper-case hex of the SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Writes `contents` to `path` (mode 0600 when `secret`), atomically.
pub fn write_file(path: &Path, contents: &[u8], secret: bool) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(contents).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|e| error(format!("writing {}: {e}", path.display())))
}

/// Makes a CA and a server certificate signed by it, in `dir`.
fn create(dir: &Path) -> std::io::Result<()> {
    let failed = |e: rcgen::Error| error(format!("generating the Redfish certificate: {e}"));
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "petitlab simulated BMC CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(failed)?).map_err(failed)?;

    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(failed)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "petitlab simulated bmcweb");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().map_err(failed)?;
    let cert = server.signed_by(&key, &*ca).map_err(failed)?;

    write_file(&dir.join(KEY_FILE), key.serialize_pem().as_bytes(), true)?;
    write_file(&dir.join(CA_FILE), ca.pem().as_bytes(), false)?;
    // Last: its presence means the set is complete.
    write_file(&dir.join(CERT_FILE), cert.pem().as_bytes(), false)
}

/// The identity in `dir`, made first if any part is missing.
pub fn load_or_create(dir: &Path) -> std::io::Result<Identity> {
    std::fs::create_dir_all(dir).map_err(|e| error(format!("creating {}: {e}", dir.display())))?;
    let (ca_pem, cert_pem, key_pem) = (dir.join(CA_FILE), dir.join(CERT_FILE), dir.join(KEY_FILE));
    if ![&ca_pem, &cert_pem, &key_pem].iter().all(|p| p.is_file()) {
        create(dir)?;
    }
    let bad = |path: &Path, e: rustls::pki_types::pem::Error| {
        error(format!("reading {}: {e}", path.display()))
    };
    let cert = CertificateDer::from_pem_file(&cert_pem).map_err(|e| bad(&cert_pem, e))?;
    let ca = CertificateDer::from_pem_file(&ca_pem).map_err(|e| bad(&ca_pem, e))?;
    let key = PrivateKeyDer::from_pem_file(&key_pem).map_err(|e| bad(&key_pem, e))?;
    let fingerprint = fingerprint(&cert);
    // ring is the project's provider (no cmake); post-quantum key exchange
    // is not what a loopback lab BMC needs.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_no_client_auth()
                .with_single_cert(vec![cert, ca], key)
        })
        .map_err(|e| error(format!("TLS setup with {}: {e}", cert_pem.display())))?;
    Ok(Identity {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
        ca_pem,
        cert_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let second = load_or_create(dir.path()).unwrap();
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A missing part: a new identity.
        std::fs::remove_file(dir.path().join(CA_FILE)).unwrap();
        let third = load_or_create(dir.path()).unwrap();
        assert_ne!(third.fingerprint, first.fingerprint);
    }
}
