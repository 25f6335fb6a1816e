//! How petitlab trusts a BMC's certificate. BMCs mostly ship self-signed
//! certificates, so besides a CA file an admin can pin the leaf's SHA-256
//! fingerprint (what `openssl x509 -fingerprint -sha256` prints), or, for a
//! lab bench, accept anything (still TLS, still checking the handshake's
//! signatures against the certificate's key).
//!
//! Our verifier records why it refused a certificate: reqwest buries the
//! rustls error under hyper's connect error, and an admin needs "pin
//! mismatch: expected X, the BMC showed Y", not "connection error".

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use super::error::RedfishError;

/// Which certificates a BMC may present.
#[derive(Clone, PartialEq, Eq)]
pub enum TlsPolicy {
    /// PEM file of CA certificates; the BMC's certificate must chain to one
    /// and name the host in `base_url`.
    CaFile(PathBuf),
    /// SHA-256 of the leaf certificate's DER, hex; colons, spaces and case
    /// are ignored. The host name is not checked (the pin is the identity).
    Fingerprint(String),
    /// Any certificate. The connection is still encrypted, not authenticated.
    Insecure,
}

impl std::fmt::Debug for TlsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsPolicy::CaFile(p) => f.debug_tuple("CaFile").field(p).finish(),
            TlsPolicy::Fingerprint(fp) => f.debug_tuple("Fingerprint").field(fp).finish(),
            TlsPolicy::Insecure => f.write_str("Insecure"),
        }
    }
}

/// "AB:CD:..." (upper case, colon separated) SHA-256 of a certificate's DER.
pub fn fingerprint_of(cert_der: &[u8]) -> String {
    format_fingerprint(&Sha256::digest(cert_der))
}

fn format_fingerprint(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// Parses a pinned fingerprint: 64 hex digits once colons and white space
/// are dropped.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], RedfishError> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    let bad = || {
        RedfishError::Tls(format!(
            "the pinned fingerprint {:?} is not a SHA-256 (64 hex digits, colons allowed)",
            crate::text::display_safe(text)
        ))
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The rustls configuration for a policy (ring provider, TLS 1.2 and 1.3,
/// no ALPN: the Redfish client and the websocket console speak HTTP/1.1).
pub fn client_config(policy: &TlsPolicy) -> Result<Arc<rustls::ClientConfig>, RedfishError> {
    Ok(build(policy)?.0)
}

/// rustls' ring provider. rustls 0.23.48 deprecates it for lacking
/// post-quantum key exchange; petitlab stays on ring (no cmake/aws-lc), and
/// BMCs do not offer post-quantum groups anyway.
#[allow(deprecated)]
pub fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the verifier last refused ("certificate pin mismatch: expected X,
/// the BMC presented Y", "unknown CA: ..."), for the error the caller sees:
/// a failed handshake only surfaces as a generic I/O error otherwise.
#[derive(Clone, Default)]
pub struct TlsRefusals(Arc<Mutex<Option<String>>>);

impl TlsRefusals {
    fn record(&self, why: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// The last refusal, cleared.
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl std::fmt::Debug for TlsRefusals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsRefusals")
    }
}

/// [`client_config`] plus the log of what its verifier refused, for
/// connections made outside [`crate::redfish::Client`] (the websocket
/// console): after a failed handshake, `take()` says why.
pub fn client_config_with_refusals(
    policy: &TlsPolicy,
) -> Result<(Arc<rustls::ClientConfig>, TlsRefusals), RedfishError> {
    build(policy)
}

pub(crate) fn build(
    policy: &TlsPolicy,
) -> Result<(Arc<rustls::ClientConfig>, TlsRefusals), RedfishError> {
    let provider = ring_provider();
    let refusals = TlsRefusals::default();
    let check = match policy {
        TlsPolicy::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                RedfishError::Tls(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    RedfishError::Tls(format!("bad PEM in CA file {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    RedfishError::Tls(format!("bad CA certificate in {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(RedfishError::Tls(format!(
                    "CA file {} holds no certificate",
                    path.display()
                )));
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| RedfishError::Tls(format!("CA file {}: {e}", path.display())))?;
            Check::Ca {
                webpki,
                file: path.clone(),
            }
        }
        TlsPolicy::Fingerprint(fp) => Check::Pin(parse_fingerprint(fp)?),
        TlsPolicy::Insecure => Check::Any,
    };
    let verifier = Arc::new(Verifier {
        check,
        algorithms: provider.signature_verification_algorithms,
        refusals: refusals.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RedfishError::Tls(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((Arc::new(config), refusals))
}

enum Check {
    Ca {
        webpki: Arc<WebPkiServerVerifier>,
        file: PathBuf,
    },
    Pin([u8; 32]),
    Any,
}

struct Verifier {
    check: Check,
    algorithms: WebPkiSupportedAlgorithms,
    refusals: TlsRefusals,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("petitlab::redfish::Verifier")
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Sha256::digest(end_entity.as_ref());
        match &self.check {
            Check::Any => Ok(ServerCertVerified::assertion()),
            Check::Pin(want) => {
                if seen.as_slice() == want {
                    Ok(ServerCertVerified::assertion())
                } else {
                    self.refusals.record(format!(
                        "certificate pin mismatch: expected {}, the BMC presented {}",
                        format_fingerprint(want),
                        format_fingerprint(&seen)
                    ));
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::ApplicationVerificationFailure,
                    ))
                }
            }
            Check::Ca { webpki, file } => webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .inspect_err(|e| {
                    self.refusals.record(describe_ca_refusal(
                        e,
                        file,
                        server_name,
                        &format_fingerprint(&seen),
                    ))
                }),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn describe_ca_refusal(
    e: &rustls::Error,
    file: &std::path::Path,
    server_name: &ServerName<'_>,
    seen: &str,
) -> String {
    let file = file.display();
    match e {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "unknown CA: the BMC's certificate (SHA-256 {seen}) is not signed by a CA in {file}"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the BMC's certificate (SHA-256 {seen}) is not valid for {}",
            server_name.to_str()
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => format!("the BMC's certificate (SHA-256 {seen}) has expired"),
        other => format!("the BMC's certificate (SHA-256 {seen}) was refused: {other}"),
    }
}

/// The rustls error inside a reqwest/hyper/io error chain, if any. io::Error
/// hides its payload from `source()`, hence the explicit `get_ref`.
pub fn rustls_error_in(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut depth = 0;
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(r.to_string());
        }
        depth += 1;
        if depth > 16 {
            break;
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_format_and_parse_round_trip() {
        let fp = fingerprint_of(b"hello");
        // sha256("hello")
        assert_eq!(
            fp,
            "2C:F2:4D:BA:5F:B0:A3:0E:26:E8:3B:2A:C5:B9:E2:9E:1B:16:1E:5C:1F:A7:42:5E:73:04:33:62:93:8B:98:24"
        );
        let parsed = parse_fingerprint(&fp.to_lowercase()).unwrap();
        assert_eq!(format_fingerprint(&parsed), fp);
        let bare: String = fp.chars().filter(|c| *c != ':').collect();
        assert_eq!(parse_fingerprint(&bare).unwrap(), parsed);
        assert_eq!(parse_fingerprint(&format!(" {fp}\n")).unwrap(), parsed);
    }

    #[test]
    fn bad_fingerprints_are_refused() {
        for bad in ["", "AB:CD", &"g".repeat(64), &"é".repeat(32)] {
            let e = parse_fingerprint(bad).unwrap_err();
            assert_eq!(e.kind(), "tls", "{bad:?}");
        }
    }

    #[test]
    fn missing_or_empty_ca_file_is_a_tls_error() {
        let e = client_config(&TlsPolicy::CaFile("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = client_config(&TlsPolicy::CaFile(empty)).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
    }

    #[test]
    fn each_policy_builds_a_config_without_alpn() {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let pin = fingerprint_of(cert.cert.der());
        for policy in [
            TlsPolicy::CaFile(ca),
            TlsPolicy::Fingerprint(pin),
            TlsPolicy::Insecure,
        ] {
            let config = client_config(&policy).unwrap();
            assert!(config.alpn_protocols.is_empty(), "{policy:?}");
        }
    }

    #[test]
    fn pin_verifier_records_both_fingerprints() {
        let a = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let refusals = TlsRefusals::default();
        let want = parse_fingerprint(&fingerprint_of(a.cert.der())).unwrap();
        let v = Verifier {
            check: Check::Pin(want),
            algorithms: ring_provider().signature_verification_algorithms,
            refusals: refusals.clone(),
        };
        let name = ServerName::try_from("127.0.0.1").unwrap();
        assert!(
            v.verify_server_cert(a.cert.der(), &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        assert!(refusals.take().is_none());
        assert!(
            v.verify_server_cert(b.cert.der(), &[], &name, &[], UnixTime::now())
                .is_err()
        );
        let why = refusals.take().unwrap();
        assert!(why.contains(&fingerprint_of(a.cert.der())), "{why}");
        assert!(why.contains(&fingerprint_of(b.cert.der())), "{why}");
    }
}
