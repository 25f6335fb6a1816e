//! The SSH console against real SSH servers playing OpenBMC's port 2200:
//! Debian's OpenSSH sshd and dropbear (what OpenBMC runs), each with a
//! forced command that prints obmc-console-client's banner and echoes
//! (tests/support/sshd.rs). Bytes both ways with all 256 values, `~.`
//! untouched, reconnection when the session's child dies or the server
//! restarts, trust on first use, a changed host key and refused logins.

mod support;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use petitlab::console_link::reconnect::LinkOptions;
use petitlab::console_link::ssh::{self, SshAuth, SshConsole};
use petitlab::console_link::{Console, ConsoleEvent, ConsoleInput};
use support::sshd::{BANNER, Kind, Options, PASSWORD, SshServer};

const WAIT: Duration = Duration::from_secs(10);

fn options() -> LinkOptions {
    LinkOptions {
        reconnect: true,
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        connect_timeout: Duration::from_secs(5),
    }
}

fn console_for(server: &SshServer, auth: SshAuth, known_hosts: &Path) -> SshConsole {
    SshConsole {
        host: "127.0.0.1".into(),
        port: server.port(),
        username: server.user(),
        auth,
        known_hosts: known_hosts.to_path_buf(),
        node: "node7".into(),
    }
}

fn start(server: &SshServer, known_hosts: &Path) -> Console {
    ssh::spawn(
        console_for(server, SshAuth::Key(server.client_key()), known_hosts),
        options(),
    )
}

async fn next(console: &mut Console, server: &SshServer) -> ConsoleEvent {
    match tokio::time::timeout(WAIT, console.events.recv()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the console's events ended"),
        Err(_) => panic!(
            "no console event within {WAIT:?}; server log:\n{}",
            server.log()
        ),
    }
}

async fn expect_connected(console: &mut Console, server: &SshServer) {
    let event = next(console, server).await;
    assert_eq!(
        event,
        ConsoleEvent::Connected,
        "server log:\n{}",
        server.log()
    );
}

/// Host output until exactly `expected` arrived; any other event fails.
async fn expect_output(console: &mut Console, server: &SshServer, expected: &[u8]) {
    let mut got = Vec::new();
    while got.len() < expected.len() {
        match next(console, server).await {
            ConsoleEvent::Data(bytes) => got.extend_from_slice(&bytes),
            other => panic!(
                "expected {} more bytes of output, got {other:?} after {:?}",
                expected.len() - got.len(),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    assert!(
        got == expected,
        "output differs:\n got {got:?}\nwant {expected:?}"
    );
}

/// Events until the console reconnects; returns the reasons it gave.
async fn expect_reconnection(console: &mut Console, server: &SshServer) -> Vec<String> {
    let mut reasons = Vec::new();
    loop {
        match next(console, server).await {
            ConsoleEvent::Reconnecting { reason, .. } => reasons.push(reason),
            ConsoleEvent::Connected => break,
            other => panic!("expected a reconnection, got {other:?} (reasons so far {reasons:?})"),
        }
    }
    assert!(!reasons.is_empty(), "Connected again without Reconnecting");
    reasons
}

/// Events until the console ends; returns why.
async fn expect_closed(console: &mut Console, server: &SshServer) -> (String, usize) {
    let mut reconnections = 0;
    loop {
        match next(console, server).await {
            ConsoleEvent::Closed { reason } => return (reason, reconnections),
            ConsoleEvent::Reconnecting { .. } => reconnections += 1,
            ConsoleEvent::Data(_) => {}
            ConsoleEvent::Connected => panic!("connected when a refusal was expected"),
        }
    }
}

async fn send(console: &Console, bytes: &[u8]) {
    console
        .input
        .send(ConsoleInput::Data(bytes.to_vec()))
        .await
        .unwrap();
}

fn all_bytes(times: usize) -> Vec<u8> {
    (0..times).flat_map(|_| 0u8..=255).collect()
}

/// The `tracing` warnings of every test in this binary (one global
/// subscriber: per-thread ones miss events when tests run in parallel, as
/// tracing caches callsite interest globally). Tests pick their own lines
/// by the server's port.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .init();
        logs
    })
}

impl Logs {
    /// The lines that mention `needle`.
    fn lines_with(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

fn known_hosts_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("petitlab/known_hosts")
}

// --- bytes both ways, `~.`, first use -------------------------------------

async fn bytes_pass_untouched_and_first_use_records_the_key(kind: Kind) {
    let logs = logs();
    let server = SshServer::start(kind, Options::default());
    let state = tempfile::tempdir().unwrap();
    let known_hosts = known_hosts_path(&state);
    let mut console = start(&server, &known_hosts);
    expect_connected(&mut console, &server).await;
    expect_output(&mut console, &server, BANNER).await;

    // First use: the key is on record, with a warning naming the node,
    // host:port and the fingerprint ssh-keygen gives for the server's key.
    let fingerprint = server.host_key_fingerprint();
    let recorded = std::fs::read_to_string(&known_hosts).unwrap();
    let pattern = format!("[127.0.0.1]:{} ssh-ed25519 ", server.port());
    assert!(recorded.starts_with(&pattern), "{recorded}");
    assert_eq!(recorded.lines().count(), 1, "{recorded}");
    let address = format!("[127.0.0.1]:{}", server.port());
    let warnings = logs.lines_with(&address);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = &warnings[0];
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("node7"), "{warning}");
    assert!(warning.contains(&fingerprint), "{fingerprint} in {warning}");

    // Every byte value, several times over, in one write and byte by byte.
    let payload = all_bytes(4);
    send(&console, &payload).await;
    expect_output(&mut console, &server, &payload).await;
    for byte in [0u8, 0x03, 0x04, 0x11, 0x13, 0x1a, 0x1c, 0x7f, 0xff] {
        send(&console, &[byte]).await;
        expect_output(&mut console, &server, &[byte]).await;
    }

    // `~.` at the start of a line (ssh's escape) reaches the host as is,
    // and the console stays up.
    let escape = b"\r~.\n~.\r\n~?~~.";
    send(&console, escape).await;
    expect_output(&mut console, &server, escape).await;
    // A break is not available over SSH here; it must not end the console.
    console.input.send(ConsoleInput::Break).await.unwrap();
    send(&console, b"still here\r\n").await;
    expect_output(&mut console, &server, b"still here\r\n").await;
    assert_eq!(server.console_pids().len(), 1);

    // A second console to the same BMC: the key is known, nothing is added
    // and nothing is said.
    let mut second = start(&server, &known_hosts);
    expect_connected(&mut second, &server).await;
    expect_output(&mut second, &server, BANNER).await;
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), recorded);
    assert_eq!(logs.lines_with(&address), warnings, "a known key is silent");

    console.input.send(ConsoleInput::Close).await.unwrap();
    let (reason, _) = expect_closed(&mut console, &server).await;
    assert_eq!(reason, "closed");
}

#[tokio::test]
async fn openssh_bytes_pass_untouched_and_first_use_records_the_key() {
    bytes_pass_untouched_and_first_use_records_the_key(Kind::OpenSsh).await;
}

#[tokio::test]
async fn dropbear_bytes_pass_untouched_and_first_use_records_the_key() {
    bytes_pass_untouched_and_first_use_records_the_key(Kind::Dropbear).await;
}

// --- reconnection ----------------------------------------------------------

async fn reconnects_when_the_session_or_the_server_goes(kind: Kind) {
    let mut server = SshServer::start(kind, Options::default());
    let state = tempfile::tempdir().unwrap();
    let mut console = start(&server, &known_hosts_path(&state));
    expect_connected(&mut console, &server).await;
    expect_output(&mut console, &server, BANNER).await;

    // The forced command dies (obmc-console-client crashing or killed).
    server.wait_for_consoles(1);
    assert_eq!(server.kill_consoles(), 1);
    let reasons = expect_reconnection(&mut console, &server).await;
    assert!(reasons[0].contains("closed the connection"), "{reasons:?}");
    expect_output(&mut console, &server, BANNER).await;
    send(&console, b"after the session died\n").await;
    expect_output(&mut console, &server, b"after the session died\n").await;

    // The server goes away and comes back (the BMC rebooting): refused
    // connections meanwhile are retried.
    server.stop();
    let mut reasons = Vec::new();
    while reasons.len() < 2 {
        match next(&mut console, &server).await {
            ConsoleEvent::Reconnecting { reason, .. } => reasons.push(reason),
            other => panic!("expected reconnections while the server is down, got {other:?}"),
        }
    }
    assert!(
        reasons[1].contains("node7") && reasons[1].contains("refused"),
        "{reasons:?}"
    );
    server.restart();
    // Reconnecting events while it starts, if any, then connected.
    loop {
        match next(&mut console, &server).await {
            ConsoleEvent::Reconnecting { .. } => {}
            ConsoleEvent::Connected => break,
            other => panic!("expected a reconnection, got {other:?}"),
        }
    }
    expect_output(&mut console, &server, BANNER).await;
    let payload = all_bytes(1);
    send(&console, &payload).await;
    expect_output(&mut console, &server, &payload).await;
}

#[tokio::test]
async fn openssh_reconnects_when_the_session_or_the_server_goes() {
    reconnects_when_the_session_or_the_server_goes(Kind::OpenSsh).await;
}

#[tokio::test]
async fn dropbear_reconnects_when_the_session_or_the_server_goes() {
    reconnects_when_the_session_or_the_server_goes(Kind::Dropbear).await;
}

// --- a changed host key ----------------------------------------------------

async fn a_changed_host_key_is_refused(kind: Kind) {
    let mut server = SshServer::start(kind, Options::default());
    let state = tempfile::tempdir().unwrap();
    let known_hosts = known_hosts_path(&state);
    let mut console = start(&server, &known_hosts);
    expect_connected(&mut console, &server).await;
    expect_output(&mut console, &server, BANNER).await;
    let old = server.host_key_fingerprint();
    let recorded = std::fs::read_to_string(&known_hosts).unwrap();

    // The BMC comes back with another key while the console is attached.
    server.restart_with_new_host_key();
    let new = server.host_key_fingerprint();
    assert_ne!(old, new);
    let (reason, reconnections) = expect_closed(&mut console, &server).await;
    assert!(reconnections >= 1, "the lost session is retried first");
    for part in [
        "node7",
        &format!("[127.0.0.1]:{}", server.port()),
        "CHANGED",
        &known_hosts.display().to_string(),
        "line 1",
        &old,
        &new,
        "remove line 1",
    ] {
        assert!(reason.contains(part), "{part:?} missing from: {reason}");
    }
    assert_eq!(
        std::fs::read_to_string(&known_hosts).unwrap(),
        recorded,
        "a changed key is never written"
    );
    assert!(
        server.console_pids().is_empty(),
        "no session was opened with the new key"
    );

    // Removing the line, as the message says, lets the new key in.
    std::fs::write(&known_hosts, "").unwrap();
    let mut console = start(&server, &known_hosts);
    expect_connected(&mut console, &server).await;
    expect_output(&mut console, &server, BANNER).await;
    assert!(
        std::fs::read_to_string(&known_hosts)
            .unwrap()
            .starts_with(&format!("[127.0.0.1]:{} ", server.port()))
    );
}

#[tokio::test]
async fn openssh_a_changed_host_key_is_refused() {
    a_changed_host_key_is_refused(Kind::OpenSsh).await;
}

#[tokio::test]
async fn dropbear_a_changed_host_key_is_refused() {
    a_changed_host_key_is_refused(Kind::Dropbear).await;
}

// --- logins ------------------------------------------------------------------

async fn logins(kind: Kind) {
    let server = SshServer::start(kind, Options { password: true });
    let state = tempfile::tempdir().unwrap();
    let known_hosts = known_hosts_path(&state);
    let target = format!("{}@127.0.0.1:{}", server.user(), server.port());

    // A key the server does not know: refused for good, naming who and where.
    let mut console = ssh::spawn(
        console_for(&server, SshAuth::Key(server.stranger_key()), &known_hosts),
        options(),
    );
    let (reason, reconnections) = expect_closed(&mut console, &server).await;
    assert_eq!(reconnections, 0, "a refused login is not retried: {reason}");
    assert!(
        reason.contains(&target) && reason.contains("node7"),
        "{reason}"
    );
    assert!(reason.contains("stranger_key"), "{reason}");

    // A wrong password: the same, without the password in the message.
    let wrong = "wrong-pw-Zq9";
    let mut console = ssh::spawn(
        console_for(&server, SshAuth::Password(wrong.into()), &known_hosts),
        options(),
    );
    let (reason, reconnections) = expect_closed(&mut console, &server).await;
    assert_eq!(reconnections, 0, "{reason}");
    assert!(reason.contains(&target), "{reason}");
    assert!(!reason.contains(wrong), "{reason}");

    // The right password: a working console.
    let mut console = ssh::spawn(
        console_for(&server, SshAuth::Password(PASSWORD.into()), &known_hosts),
        options(),
    );
    expect_connected(&mut console, &server).await;
    expect_output(&mut console, &server, BANNER).await;
    let payload = all_bytes(2);
    send(&console, &payload).await;
    expect_output(&mut console, &server, &payload).await;
}

#[tokio::test]
async fn openssh_logins_by_key_and_password_and_refusals() {
    logins(Kind::OpenSsh).await;
}

#[tokio::test]
async fn dropbear_logins_by_key_and_password_and_refusals() {
    logins(Kind::Dropbear).await;
}

#[test]
fn server_versions() {
    let openssh = support::sshd::openssh_version();
    let dropbear = support::sshd::dropbear_version();
    eprintln!("OpenSSH {}.{}; {dropbear}", openssh.0, openssh.1);
    assert!(openssh >= (8, 0), "OpenSSH {openssh:?}");
    assert!(dropbear.starts_with("Dropbear v"), "{dropbear}");
}
