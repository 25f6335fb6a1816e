//! The front end's TLS identity: a server certificate for 127.0.0.1 and
//! localhost, signed by the virtual lab's own CA and kept in the caller's
//! directory so the fingerprint clients pin survives restarts.
//!
//! The CA is fixed and in the source tree
//! (`examples/secrets/virtual-lab-bmc-ca.pem`, its key beside this file), so
//! a lab.toml can name it as `ca_file` before any simulator has run (the
//! demo, the docs' examples). Its key is a simulator's, published with
//! petitlab: never trust that CA for anything but the virtual lab.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

pub const CA_FILE: &str = "redfish-ca.pem";
pub const CERT_FILE: &str = "redfish-cert.pem";
pub const KEY_FILE: &str = "redfish-key.pem";

/// The virtual lab's CA certificate (what lab.toml's `ca_file` names).
pub const VIRTUAL_LAB_CA: &str = include_str!("../../../examples/secrets/virtual-lab-bmc-ca.pem");
/// Its key: a simulator's, public.
const VIRTUAL_LAB_CA_KEY: &str = include_str!("virtual_lab_ca/ca-key.pem");
/// `openssl x509 -noout -ext subjectKeyIdentifier` of that certificate.
const VIRTUAL_LAB_CA_SKI: [u8; 20] = [
    0xA8, 0x5D, 0x84, 0x08, 0xE8, 0xF7, 0xBA, 0x9A, 0xE6, 0xE2, 0xEA, 0xAF, 0x4D, 0x3C, 0xEE, 0xDC,
    0xA3, 0x15, 0xA3, 0xDD,
];

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

/// The virtual lab's CA as an issuer: its subject written as the CA
/// certificate has it (openssl's UTF8Strings, O then CN), so certificates
/// it signs chain to that certificate.
fn virtual_lab_ca() -> Result<Issuer<'static, KeyPair>, rcgen::Error> {
    let key = KeyPair::from_pem(VIRTUAL_LAB_CA_KEY)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Fresh, not the default one: its CommonName would come first.
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(
        DnType::OrganizationName,
        "petitlab virtual lab (a simulator: never trust for real BMCs)",
    );
    params
        .distinguished_name
        .push(DnType::CommonName, "petitlab virtual lab BMC CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // The CA certificate's subject key identifier (openssl's SHA-1 of the
    // key): OpenSSL finds a leaf's issuer by it, and rcgen would otherwise
    // name a different one in the leaf.
    params.key_identifier_method = KeyIdMethod::PreSpecified(VIRTUAL_LAB_CA_SKI.to_vec());
    Ok(Issuer::new(params, key))
}

/// Makes a server certificate signed by the virtual lab's CA, in `dir`.
fn create(dir: &Path) -> std::io::Result<()> {
    let failed = |e: rcgen::Error| error(format!("generating the Redfish certificate: {e}"));
    let ca = virtual_lab_ca().map_err(failed)?;

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
    let cert = server.signed_by(&key, &ca).map_err(failed)?;

    write_file(&dir.join(KEY_FILE), key.serialize_pem().as_bytes(), true)?;
    write_file(&dir.join(CA_FILE), VIRTUAL_LAB_CA.as_bytes(), false)?;
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
        // A missing part: a new certificate, from the same CA.
        std::fs::remove_file(dir.path().join(CERT_FILE)).unwrap();
        let third = load_or_create(dir.path()).unwrap();
        assert_ne!(third.fingerprint, first.fingerprint);
        let ca = std::fs::read_to_string(dir.path().join(CA_FILE)).unwrap();
        assert_eq!(ca, VIRTUAL_LAB_CA);
    }

    /// OpenSSL (not ours) must chain the certificate to the committed CA,
    /// as curl and Python do when lab.toml names it as `ca_file`.
    #[test]
    fn openssl_chains_the_certificate_to_the_virtual_lab_ca() {
        let dir = tempfile::tempdir().unwrap();
        let identity = load_or_create(dir.path()).unwrap();
        let out = std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&identity.ca_pem)
            .arg(&identity.cert_pem)
            .output()
            .expect("run openssl (Debian openssl)");
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "openssl verify: {said}");
    }
}
