//! A websocket console server we did not write: Python's `websockets`
//! (Debian's python3-websockets) playing bmcweb's `/console0` over TLS with
//! a certificate made here by rcgen (tests/support/ws_console.py says what
//! it does). Runs on 127.0.0.1:<free port>; killed when dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Debian's interpreter, where python3-websockets is installed (not
/// whatever `python3` comes first on PATH).
const PYTHON: &str = "/usr/bin/python3";

pub const TOKEN: &str = "tok-3f9a1c";
pub const COOKIE: &str = "cookie-77b2";
pub const XSRF: &str = "xsrf-5d1e";

pub struct WsConsolePeer {
    _dir: tempfile::TempDir,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
    stderr: PathBuf,
    port: u16,
    cert: rustls::pki_types::CertificateDer<'static>,
}

impl WsConsolePeer {
    /// Starts the server; it pings every `ping_interval`.
    pub async fn start(ping_interval: Duration) -> WsConsolePeer {
        let dir = tempfile::tempdir().unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, certified.cert.pem()).unwrap();
        std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
        let stderr = dir.path().join("stderr.log");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/ws_console.py");
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .arg(&cert_path)
            .arg(&key_path)
            .args([TOKEN, COOKIE, XSRF])
            .arg(ping_interval.as_secs_f64().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {PYTHON}: {e} (scripts/test installs python3-websockets)")
            });
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut peer = WsConsolePeer {
            _dir: dir,
            child,
            stdin,
            lines,
            seen,
            stderr,
            port: 0,
            cert: certified.cert.der().clone(),
        };
        let listening = peer.expect("listening ").await;
        peer.port = listening["listening ".len()..].parse().unwrap();
        peer
    }

    pub fn url(&self) -> String {
        format!("wss://127.0.0.1:{}/console0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A client config trusting only this server's certificate.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        client_config(roots)
    }

    /// The next event line starting with `prefix` (earlier ones skipped).
    pub async fn expect(&mut self, prefix: &str) -> String {
        let wait = Duration::from_secs(10);
        loop {
            match tokio::time::timeout(wait, self.lines.recv()).await {
                Ok(Some(line)) if line.starts_with(prefix) => return line,
                Ok(Some(_)) => {}
                Ok(None) => panic!(
                    "the websocket server exited before saying {prefix:?}; stderr:\n{}",
                    self.stderr_text()
                ),
                Err(_) => panic!(
                    "the websocket server did not say {prefix:?} within {wait:?}; said {:?}; stderr:\n{}",
                    self.seen(),
                    self.stderr_text()
                ),
            }
        }
    }

    /// Runs a command (`close`, `abort`) on every open connection.
    pub async fn command(&mut self, command: &str) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        self.expect(&format!("done {command}")).await;
    }

    /// Every event line so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for WsConsolePeer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        // Reap it if it is already gone; tokio reaps it otherwise.
        let _ = self.child.try_wait();
    }
}

/// A rustls client config on ring trusting `roots`.
// ring's provider without post-quantum key exchange is fine over loopback.
#[allow(deprecated)]
pub fn client_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}
