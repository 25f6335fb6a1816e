//! The deploy agent API under `petitlab serve`, spoken to with curl: a call
//! without a valid token gets one answer whatever its body says (nothing
//! tells a known node or MAC from an unknown one), it is audited, a flood of
//! them adds a bounded number of audit rows, and progress beyond its total
//! is refused.

mod support;

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Command;

use petitlab::engine::agent_api::token_hash;
use petitlab::engine::store::{NewDeploy, Store};
use support::lab::{Daemon, NODES, loopback_lab};

const TOKEN: &str = "00112233445566778899aabbccddeeff";

fn free_tcp() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The example lab, its HTTP server on a free loopback port.
fn lab(dir: &Path) -> (std::path::PathBuf, u16) {
    let (path, _) = loopback_lab(dir);
    let port = free_tcp();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\"0.0.0.0:8080\""),
        "lab.toml.example changed"
    );
    let text = text.replace("\"0.0.0.0:8080\"", &format!("\"127.0.0.1:{port}\""));
    std::fs::write(&path, text).unwrap();
    (path, port)
}

/// POSTs `body` to `/v1/<call>`; returns (status, body).
fn post(port: u16, call: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-H", "Content-Type: text/plain", "--data-binary", body]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("X-Petitlab-Token: {t}")]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}/v1/{call}"))
        .output()
        .expect("run curl (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

fn store(dir: &Path) -> Store {
    Store::open(&dir.join("state/petitlab.db")).unwrap()
}

fn rejections(dir: &Path) -> Vec<String> {
    store(dir)
        .last_events(None, 100_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "agent-rejected")
        .map(|e| format!("{:?} {} {}", e.node, e.who, e.detail))
        .collect()
}

#[test]
fn unauthenticated_calls_get_one_answer_are_audited_and_coalesced() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, port) = lab(dir.path());
    let serve = Daemon::start(&lab, &["serve", "--only", "http"]);
    // A deploy in progress for the first node, with a token we know.
    let node = NODES[0];
    {
        let mut s = store(dir.path());
        s.ensure_nodes(&[node], "wait-callback").unwrap();
        s.begin_deploy(&NewDeploy {
            node: node.into(),
            token_sha256: token_hash(TOKEN),
            image_url: "http://127.0.0.1/x/image".into(),
            image_size: 4096,
            image_sha256: "ab".into(),
            image_name: "disk.raw".into(),
        })
        .unwrap();
    }

    let bodies = [
        ("lookup", "mac=70:e2:84:14:00:01\n".to_string()),
        ("lookup", "mac=70:e2:84:99:99:99\n".to_string()),
        ("lookup", "mac=garbage\n".to_string()),
        ("heartbeat", format!("node={node}\n")),
        ("heartbeat", "node=no-such-node\n".to_string()),
        ("progress", "not key value at all".to_string()),
    ];
    let wrong = "ffffffffffffffffffffffffffffffff";
    for (token, status) in [(None, 401), (Some(wrong), 403)] {
        let answers: Vec<(u16, String)> = bodies
            .iter()
            .map(|(call, body)| post(port, call, token, body))
            .collect();
        for ((call, body), answer) in bodies.iter().zip(&answers) {
            assert_eq!(answer.0, status, "{call} {body:?}: {}", answer.1);
            assert_eq!(answer, &answers[0], "{call} {body:?}");
            assert!(
                !answer.1.contains(node) && !answer.1.contains("no-such-node"),
                "{call} {body:?}: {}",
                answer.1
            );
        }
    }
    // All from 127.0.0.1 in one window: the first is recorded, the rest counted.
    let audited = rejections(dir.path());
    assert_eq!(audited.len(), 1, "{audited:#?}");
    assert!(
        audited[0].contains("agent 127.0.0.1 lookup from 127.0.0.1:"),
        "{audited:?}"
    );

    // A flood from the same peer.
    for _ in 0..300 {
        assert_eq!(post(port, "heartbeat", None, "node=x").0, 401);
    }
    let audited = rejections(dir.path());
    assert_eq!(audited.len(), 1, "{audited:#?}");

    // With the token: progress beyond its total is refused, naming the field.
    let (status, body) = post(
        port,
        "progress",
        Some(TOKEN),
        &format!("node={node}\nwritten=5000\ntotal=4096\n"),
    );
    assert_eq!(
        (status, body.as_str()),
        (400, "error=written=5000 is more than total=4096\n")
    );
    let (status, body) = post(
        port,
        "progress",
        Some(TOKEN),
        &format!("node={node}\nwritten=4096\ntotal=4096\n"),
    );
    assert_eq!(status, 200, "{body}");

    // Stopping the server writes the count of its open window.
    serve.stop();
    let audited = rejections(dir.path());
    assert_eq!(audited.len(), 2, "{audited:#?}");
    let expected = format!(
        "None agent 127.0.0.1 {} more refused calls from 127.0.0.1 in ",
        bodies.len() * 2 - 1 + 300
    );
    assert!(audited[1].starts_with(&expected), "{audited:#?}");
}
