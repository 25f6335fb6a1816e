//! Text from the network reaches the admin's terminal escaped: a deploy
//! agent (anyone holding the deploy token) reports a failure whose reason
//! carries terminal escapes, a bell and a right-to-left override; the running
//! `deploy`, `status` and `history` show it with those characters made
//! visible, and the store keeps what the agent sent.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use petitlab::engine::store::Store;
use petitlab::inventory::derived_uuid;
use support::lab::{Daemon, petitlab, show};
use support::virtual_lab::{Proto, VNode, VirtualLab};

const DEPLOY: &str = "[deploy]\npower_timeout = 10\ncallback_timeout = 60\nheartbeat = 2\n\
                      write_timeout = 60\nboot_timeout = 60\n";

/// An OSC that retitles the window, a colour change, a bell and U+202E.
const HOSTILE: &str = "disk \u{1b}]0;pwned\u{7} \u{1b}[31mgone\u{1b}[0m \u{202e}gpj.exe";
/// How it must look on a terminal.
const SHOWN: &str = r"disk \x1b]0;pwned\x07 \x1b[31mgone\x1b[0m \u{202e}gpj.exe";

/// No terminal control or bidi override in `bytes`; `what` names the output.
fn assert_inert(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for (bad, name) in [("\u{1b}", "ESC"), ("\u{7}", "BEL"), ("\u{202e}", "U+202E")] {
        assert!(
            !text.contains(bad),
            "{what}: a raw {name} reached the terminal:\n{text:?}"
        );
    }
}

/// Whether some string in `value` contains `needle`.
fn holds(value: &serde_json::Value, needle: &str) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains(needle),
        serde_json::Value::Array(a) => a.iter().any(|v| holds(v, needle)),
        serde_json::Value::Object(o) => o.values().any(|v| holds(v, needle)),
        _ => false,
    }
}

/// The token on the deploy kernel's command line, once the node waits for its agent.
fn token_when_waiting(v: &VirtualLab, node: &str) -> String {
    let config = v
        .state()
        .join("http")
        .join(format!("{}/config", derived_uuid(node)));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let store = Store::open(&v.store()).unwrap();
        let waiting = store
            .node(node)
            .unwrap()
            .is_some_and(|r| r.state == "wait-callback");
        if waiting && let Ok(text) = std::fs::read_to_string(&config) {
            let token = text.split("petitlab.token=").nth(1).expect("a token");
            return token.split_whitespace().next().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{node} never waited for its agent"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `POST /v1/failed` with curl, as a hostile token holder would.
fn report_failure(v: &VirtualLab, node: &str, token: &str, reason: &str) {
    let body = v.dir.path().join("failed.body");
    std::fs::write(&body, format!("node={node}\nreason={reason}\n")).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-H"])
        .arg(format!("X-Petitlab-Token: {token}"))
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("http://127.0.0.1:{}/v1/failed", v.http_port))
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e} (apt-get install curl)"));
    assert!(
        out.status.success(),
        "curl: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_agents_failure_reason_reaches_the_terminal_escaped() {
    let node = "p9-evil";
    let v = VirtualLab::new(
        vec![VNode::new(node, Proto::Http, false, 0)],
        64 << 10,
        DEPLOY,
    );
    let _serve = Daemon::start(&v.lab, &["serve"]);
    let silent = format!("{node}=agent-silent");
    let _sim = Daemon::start(&v.lab, &["sim", "--fault", &silent]);
    let mut deploy = Killed(
        Command::new(env!("CARGO_BIN_EXE_petitlab"))
            .arg("--lab")
            .arg(&v.lab)
            .args(["deploy", node])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = deploy.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let token = token_when_waiting(&v, node);
    report_failure(&v, node, &token, HOSTILE);
    let status = deploy.0.wait().unwrap();
    let mut stderr = Vec::new();
    deploy
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let running = reader.join().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&running),
        String::from_utf8_lossy(&stderr)
    );
    assert_eq!(status.code(), Some(1), "the deploy fails:\n{said}");

    // The store keeps what the agent sent; only what is shown is escaped.
    let record = Store::open(&v.store())
        .unwrap()
        .node(node)
        .unwrap()
        .unwrap();
    assert_eq!(record.state, "deploy-failed");
    assert!(
        record.reason.as_deref().unwrap_or("").contains(HOSTILE),
        "{record:?}"
    );

    assert_inert("the running deploy's stdout", &running);
    assert_inert("the running deploy's stderr", &stderr);
    assert!(
        said.contains(SHOWN),
        "the deploy did not show the reason:\n{said}"
    );
    for args in [&["status"][..], &["history", node], &["status", node]] {
        let out = petitlab(&v.lab, args);
        assert!(out.status.success(), "{}", show(&out));
        assert_inert(&format!("petitlab {args:?}"), &out.stdout);
        assert_inert(&format!("petitlab {args:?} (stderr)"), &out.stderr);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(SHOWN), "petitlab {args:?}:\n{text}");
    }
    // JSON keeps the exact text, written with JSON's own escapes.
    for args in [&["--json", "status"][..], &["--json", "history", node]] {
        let out = petitlab(&v.lab, args);
        assert!(out.status.success(), "{}", show(&out));
        assert_inert(&format!("petitlab {args:?}"), &out.stdout);
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(holds(&value, HOSTILE), "petitlab {args:?}: {value}");
    }
}

/// A child killed by pid when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TFTP client ends a transfer with an ERROR packet whose message is
/// hostile; `petitlab serve` logs the transfer with that message escaped.
#[test]
fn a_tftp_clients_error_message_is_escaped_in_the_serve_log() {
    use std::io::{BufRead, BufReader};
    use std::net::UdpSocket;

    let v = VirtualLab::new(
        vec![VNode::new("p9-t", Proto::Tftp, false, 0)],
        1024,
        DEPLOY,
    );
    let root = v.state().join("tftp");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("f"), vec![7u8; 2000]).unwrap();
    let mut serve = Killed(
        Command::new(env!("CARGO_BIN_EXE_petitlab"))
            .arg("--lab")
            .arg(&v.lab)
            .args(["serve", "--only", "tftp"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = serve.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        // Whole lines as bytes: a raw control must be seen as it was written.
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("serve printed no {what}: {e}"))
    };
    while !String::from_utf8_lossy(&next("running line")).contains("running") {}

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
        .send_to(b"\0\x01f\0octet\0", ("127.0.0.1", v.tftp_port))
        .unwrap();
    let mut buf = [0u8; 600];
    let (n, from) = client.recv_from(&mut buf).expect("the first DATA block");
    assert_eq!(&buf[..4], b"\0\x03\0\x01", "DATA 1, got {:?}", &buf[..n]);
    let mut error = b"\0\x05\0\0".to_vec();
    error.extend_from_slice(HOSTILE.as_bytes());
    error.push(0);
    client.send_to(&error, from).unwrap();

    let line = next("log line for the transfer");
    assert_inert("petitlab serve's TFTP log", &line);
    let line = String::from_utf8_lossy(&line);
    assert!(
        line.starts_with("tftp ")
            && line.contains(&format!("aborted by client (error 0: {SHOWN})")),
        "{line}"
    );
}

/// A boot timeline holds what the network sent: a console line and a DHCP
/// note. `petitlab why` shows both made visible, and `--json` keeps the
/// text whole but escaped inert.
#[test]
fn a_boot_timelines_console_line_and_dhcp_note_are_escaped_by_why() {
    use petitlab::timeline::{BootEvent, DhcpMessage, What};

    let v = VirtualLab::new(
        vec![VNode::new("p9-w", Proto::Http, false, 0)],
        1024,
        DEPLOY,
    );
    {
        let mut store = Store::open(&v.store()).unwrap();
        let at = petitlab::engine::store::now_ms();
        store
            .start_boot("p9-w", at, "power on by test", 20)
            .unwrap();
        let console = What::Console {
            stage: petitlab::console::Stage::Petitboot,
            line: HOSTILE.to_string(),
        };
        let dhcp = What::Dhcp(DhcpMessage {
            message: "NAK".into(),
            mac: "52:54:00:00:00:01".into(),
            ip: None,
            interface: "eth0".into(),
            sent: Vec::new(),
            note: Some(HOSTILE.to_string()),
        });
        let events: Vec<_> = [console, dhcp]
            .into_iter()
            .map(|what| ("p9-w".to_string(), BootEvent { at: at + 1, what }))
            .collect();
        store.append_boot_events(&events, 20).unwrap();
    }
    let text = petitlab(&v.lab, &["--local", "why", "p9-w"]);
    assert!(text.status.success(), "{}", show(&text));
    assert_inert("why", &text.stdout);
    let shown = String::from_utf8_lossy(&text.stdout);
    assert_eq!(shown.matches(SHOWN).count(), 2, "{shown}");

    let json = petitlab(&v.lab, &["--local", "--json", "why", "p9-w"]);
    assert!(json.status.success(), "{}", show(&json));
    assert_inert("why --json", &json.stdout);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        holds(&value, HOSTILE),
        "the JSON keeps what was sent: {value}"
    );
}
