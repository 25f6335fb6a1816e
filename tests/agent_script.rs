//! The shipped POSIX-sh deploy agent (agent/petitlab-agent.sh) run by real
//! busybox (sh, wget, sha256sum) against `petitlab serve`'s agent API.

mod support;

use std::process::Command;

use petitlab::engine::agent_api::{new_token, token_hash};
use petitlab::engine::image;
use petitlab::engine::store::{AgentResult, NewDeploy, Store};
use support::lab::{Daemon, repo};
use support::virtual_lab::{Proto, VNode, VirtualLab};

struct Setup {
    v: VirtualLab,
    token: String,
    staged: image::StagedImage,
}

/// A lab whose node has a deploy waiting for its agent, as `petitlab deploy` leaves it.
fn setup(expected_sha: Option<&str>) -> Setup {
    let v = VirtualLab::new(
        vec![VNode::new("n1", Proto::Http, false, 0)],
        700 << 10,
        "[deploy]\nheartbeat = 1\n",
    );
    let (lab, _) = petitlab::inventory::load_valid(&v.lab).unwrap();
    let node = lab.node("n1").unwrap();
    let staged = image::stage(&lab, node).unwrap();
    let token = new_token();
    let mut store = Store::open(&v.store()).unwrap();
    store.ensure_nodes(&["n1"], "wait-callback").unwrap();
    store
        .begin_deploy(&NewDeploy {
            node: "n1".into(),
            token_sha256: token_hash(&token),
            image_url: staged.url.clone(),
            image_size: staged.size,
            image_sha256: expected_sha.unwrap_or(&staged.sha256).to_string(),
            image_name: staged.name.clone(),
        })
        .unwrap();
    Setup { v, token, staged }
}

fn run_agent(s: &Setup, token: &str) -> (bool, String) {
    let cmdline = s.v.dir.path().join("cmdline");
    std::fs::write(
        &cmdline,
        format!(
            "root=/dev/ram0 console=hvc0 petitlab.api=http://127.0.0.1:{}/v1/ petitlab.token={token} quiet\n",
            s.v.http_port
        ),
    )
    .unwrap();
    let out = Command::new("busybox")
        .arg("sh")
        .arg(repo().join("agent/petitlab-agent.sh"))
        .env("PETITLAB_CMDLINE", &cmdline)
        .env("PETITLAB_MACS", &s.v.nodes[0].mac)
        .env("PETITLAB_DISK", s.v.dir.path().join("disk"))
        .env("PATH", format!("{}:/usr/bin:/bin", busybox_dir(s)))
        .output()
        .expect("busybox must be installed (scripts/test installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A directory where wget, sha256sum, head and sed are busybox's own, so
/// the script runs with the tools a deploy ramdisk has.
fn busybox_dir(s: &Setup) -> String {
    let dir = s.v.dir.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let busybox = String::from_utf8(
        Command::new("which")
            .arg("busybox")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for tool in [
        "wget",
        "sha256sum",
        "head",
        "sed",
        "sleep",
        "cat",
        "sync",
        "kill",
    ] {
        let link = dir.join(tool);
        if !link.exists() {
            std::os::unix::fs::symlink(busybox.trim(), &link).unwrap();
        }
    }
    dir.display().to_string()
}

fn events(s: &Setup) -> Vec<String> {
    let store = Store::open(&s.v.store()).unwrap();
    store
        .last_events(Some("n1"), 50)
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {} {}", e.action, e.result, e.detail))
        .collect()
}

#[test]
fn the_agent_script_writes_the_image_and_reports_done() {
    let s = setup(None);
    let _serve = Daemon::start(&s.v.lab, &["serve"]);
    let (ok, text) = run_agent(&s, &s.token);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "deploying n1: writing n1.img ({} bytes)",
            s.staged.size
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("done (sha256 {})", s.staged.sha256)),
        "{text}"
    );
    let disk = std::fs::read(s.v.dir.path().join("disk")).unwrap();
    assert!(
        disk == std::fs::read(s.v.image("n1")).unwrap(),
        "the disk holds the image"
    );
    let store = Store::open(&s.v.store()).unwrap();
    let deploy = store.deploy("n1").unwrap().unwrap();
    assert_eq!(
        deploy.result,
        Some(AgentResult::Done {
            sha256: s.staged.sha256.clone()
        })
    );
    assert_eq!(
        (deploy.written, deploy.total),
        (s.staged.size, s.staged.size)
    );
    assert!(deploy.looked_up_at.is_some());
    let log = events(&s);
    assert!(
        log.iter().any(|e| e.starts_with("agent-lookup ok")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|e| e.starts_with("agent-done ok")),
        "{log:?}"
    );
}

#[test]
fn a_wrong_token_is_refused_audited_and_writes_nothing() {
    let s = setup(None);
    let _serve = Daemon::start(&s.v.lab, &["serve"]);
    let wrong = new_token();
    let (ok, text) = run_agent(&s, &wrong);
    assert!(!ok, "{text}");
    assert!(text.contains("lookup refused"), "{text}");
    assert!(
        text.contains("403"),
        "busybox wget names the status: {text}"
    );
    assert!(!s.v.dir.path().join("disk").exists());
    let log = events(&s);
    assert!(
        log.iter()
            .any(|e| e.starts_with("agent-rejected refused") && e.contains("wrong deploy token")),
        "{log:?}"
    );
    assert!(
        log.iter().all(|e| !e.contains(&wrong)),
        "the token is not in the audit log"
    );
    let deploy = Store::open(&s.v.store())
        .unwrap()
        .deploy("n1")
        .unwrap()
        .unwrap();
    assert!(deploy.looked_up_at.is_none());
}

#[test]
fn a_checksum_mismatch_is_reported_as_a_failure() {
    let s = setup(Some(&"0".repeat(64)));
    let _serve = Daemon::start(&s.v.lab, &["serve"]);
    let (ok, text) = run_agent(&s, &s.token);
    assert!(!ok, "{text}");
    assert!(text.contains("checksum mismatch"), "{text}");
    let deploy = Store::open(&s.v.store())
        .unwrap()
        .deploy("n1")
        .unwrap()
        .unwrap();
    match deploy.result {
        Some(AgentResult::Failed { reason }) => {
            assert!(
                reason.contains("checksum mismatch") && reason.contains(&s.staged.sha256),
                "{reason}"
            )
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}
