//! Test harness around OpenStack's sushy-tools (`sushy-emulator --fake`), a
//! Redfish service we did not write, installed by scripts/test into the
//! venv target/peers/sushy. Each [`Sushy`] runs its own emulator on a free
//! 127.0.0.1 port, over HTTPS with a leaf certificate signed by a test CA
//! made here with rcgen, behind an htpasswd (bcrypt) file for
//! [`USER`]/[`PASSWORD`], with its state in its own temp dir.
//!
//! What sushy-tools 2.2.0's fake driver does (read from its source and seen
//! on the wire):
//! - no SessionService: basic auth only. `POST
//!   /redfish/v1/SessionService/Sessions` is 401 without credentials (the
//!   auth middleware runs before routing), 404 with them; only the service
//!   root (`/redfish/v1/`) answers without credentials;
//! - power changes land 1-11 s (random) after the request, seen on the
//!   next read; ForceRestart/GracefulRestart read "Off" at once and "On"
//!   after the delay;
//! - reset types advertised: On ForceOff GracefulShutdown GracefulRestart
//!   ForceRestart Nmi ForceOn; `Nmi` is advertised but refused with 501;
//! - `BootSourceOverrideEnabled` is ignored on PATCH and always reads
//!   "Continuous"; the target is stored as sent;
//! - the one chassis has a Thermal resource (two temperatures, two fans),
//!   no Power, no Sensors; no LogServices anywhere; no SerialConsole;
//! - TLS 1.2 only (Python's `ssl.PROTOCOL_TLSv1_2`).

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub const USER: &str = "labadmin";
pub const PASSWORD: &str = "sushy-test-pw";

/// The fake systems' UUIDs (sushy lists them as `/redfish/v1/Systems/<uuid>`).
pub const SYSTEM_UUIDS: [&str; 3] = [
    "6e3c2f1a-0b5d-4c1e-9a37-2f0d8b1c4a01",
    "6e3c2f1a-0b5d-4c1e-9a37-2f0d8b1c4a02",
    "6e3c2f1a-0b5d-4c1e-9a37-2f0d8b1c4a03",
];

/// The venv scripts/test installs sushy-tools into.
pub fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/sushy")
}

fn require_venv_binary(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test, which installs sushy-tools into {}",
        path.display(),
        venv().display()
    );
    path
}

/// A fake system: its UUID, name and power state at start.
pub struct FakeSystem {
    pub uuid: &'static str,
    pub name: &'static str,
    pub power_on: bool,
}

pub struct Sushy {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    ca_pem: PathBuf,
    leaf_der: Vec<u8>,
}

impl Sushy {
    /// One fake system, powered off.
    pub fn start() -> Sushy {
        Sushy::start_with(&[FakeSystem {
            uuid: SYSTEM_UUIDS[0],
            name: "node0",
            power_on: false,
        }])
    }

    pub fn start_with(systems: &[FakeSystem]) -> Sushy {
        // A free port can be taken between our probe and sushy's bind: start
        // again on "Address already in use".
        let mut last = String::new();
        for _ in 0..3 {
            match Sushy::launch(systems) {
                Ok(s) => return s,
                Err(e) if e.contains("Address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("sushy-emulator could not bind a free port three times: {last}");
    }

    fn launch(systems: &[FakeSystem]) -> Result<Sushy, String> {
        let emulator = require_venv_binary("sushy-emulator");
        let python = require_venv_binary("python");
        let dir = tempfile::tempdir().expect("create temp dir");
        let d = dir.path().to_path_buf();

        let (ca_pem, leaf_pem, leaf_key, leaf_der) = certificates();
        fs::write(d.join("ca.pem"), ca_pem).unwrap();
        fs::write(d.join("cert.pem"), leaf_pem).unwrap();
        fs::write(d.join("key.pem"), leaf_key).unwrap();
        fs::write(d.join("htpasswd"), htpasswd_line(&python)).unwrap();

        // The config is Python; JSON string literals are Python literals too.
        let q = |p: &Path| serde_json::to_string(p.to_str().expect("utf-8 temp dir")).unwrap();
        let mut config = format!(
            "SUSHY_EMULATOR_AUTH_FILE = {}\nSUSHY_EMULATOR_STATE_DIR = {}\n\
             SUSHY_EMULATOR_FAKE_SYSTEMS = [\n",
            q(&d.join("htpasswd")),
            q(&d.join("state")),
        );
        for s in systems {
            config.push_str(&format!(
                "    {{'uuid': '{}', 'name': '{}', 'power_state': '{}', \
                 'external_notifier': False, \
                 'nics': [{{'mac': '52:54:00:12:34:56', 'ip': '127.0.0.2'}}]}},\n",
                s.uuid,
                s.name,
                if s.power_on { "On" } else { "Off" }
            ));
        }
        config.push_str("]\n");
        fs::write(d.join("emulator.conf"), config).unwrap();

        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&emulator)
            .args([
                "--config",
                "emulator.conf",
                "--fake",
                "-i",
                "127.0.0.1",
                "-p",
            ])
            .arg(port.to_string())
            .args(["--ssl-certificate", "cert.pem", "--ssl-key", "key.pem"])
            .current_dir(&d)
            .env("PYTHONUNBUFFERED", "1")
            .env("TMPDIR", &d)
            .stdin(Stdio::null())
            .stdout(fs::File::create(d.join("sushy.out")).unwrap())
            .stderr(fs::File::create(d.join("sushy.err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", emulator.display()));
        // Built before waiting so that Drop kills the child on any failure.
        let mut sushy = Sushy {
            dir,
            child,
            port,
            ca_pem: d.join("ca.pem"),
            leaf_der,
        };
        sushy.wait_ready(Duration::from_secs(30))?;
        Ok(sushy)
    }

    /// Until the emulator accepts TCP on its port (werkzeug serves as soon
    /// as it has bound), or it dies, or `limit` passes.
    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!(
                    "sushy-emulator exited at start ({status}); stderr:\n{}",
                    self.stderr()
                ));
            }
            if TcpStream::connect_timeout(
                &(Ipv4Addr::LOCALHOST, self.port).into(),
                Duration::from_millis(200),
            )
            .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "sushy-emulator not listening on 127.0.0.1:{} after {limit:?}; stderr:\n{}",
                    self.port,
                    self.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// PEM of the CA that signed the emulator's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_pem
    }

    /// DER of the emulator's (leaf) certificate.
    pub fn leaf_der(&self) -> &[u8] {
        &self.leaf_der
    }

    pub fn stderr(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.dir.path().join("sushy.err")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The emulator's request log: werkzeug's lines on stderr, `"METHOD
    /// /path HTTP/1.1" status -`, without the colours it gives non-200s.
    pub fn requests(&self) -> Vec<String> {
        self.stderr()
            .lines()
            .map(strip_ansi)
            .filter(|l| {
                ["\"GET ", "\"POST ", "\"PATCH ", "\"DELETE "]
                    .iter()
                    .any(|m| l.contains(m))
            })
            .collect()
    }
}

impl Drop for Sushy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ parameters final-letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// "user:$2b$..." made by the venv's bcrypt (what sushy-tools checks with).
fn htpasswd_line(python: &Path) -> String {
    let out = Command::new(python)
        .args([
            "-c",
            "import bcrypt, sys; print(sys.argv[1] + ':' + bcrypt.hashpw(sys.argv[2].encode(), bcrypt.gensalt(rounds=4)).decode())",
            USER,
            PASSWORD,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run the venv's python for bcrypt");
    assert!(
        out.status.success(),
        "bcrypt hash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// (CA PEM, leaf PEM, leaf key PEM, leaf DER): a test CA and a leaf for
/// 127.0.0.1 signed by it.
pub fn certificates() -> (String, String, String, Vec<u8>) {
    let (ca_pem, issuer) = new_ca("petitlab test CA");
    let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "sushy-emulator");
    params.use_authority_key_identifier_extension = true;
    params.key_usages.push(KeyUsagePurpose::DigitalSignature);
    params
        .extended_key_usages
        .push(ExtendedKeyUsagePurpose::ServerAuth);
    let key = KeyPair::generate().unwrap();
    let leaf = params.signed_by(&key, &issuer).unwrap();
    (ca_pem, leaf.pem(), key.serialize_pem(), leaf.der().to_vec())
}

/// A CA certificate (PEM) and the issuer to sign with.
pub fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages.push(KeyUsagePurpose::KeyCertSign);
    params.key_usages.push(KeyUsagePurpose::DigitalSignature);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}
