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
    setup_with(VNode::new("n1", Proto::Http, false, 0), expected_sha)
}

fn setup_with(vnode: VNode, expected_sha: Option<&str>) -> Setup {
    let iscsi = vnode.iscsi;
    let v = VirtualLab::new(vec![vnode], 700 << 10, "[deploy]\nheartbeat = 1\n");
    let (lab, _) = petitlab::inventory::load_valid(&v.lab).unwrap();
    let node = lab.node("n1").unwrap();
    let staged = if iscsi {
        image::prepare_raw(&lab, node).unwrap()
    } else {
        image::stage(&lab, node).unwrap()
    };
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
    // The node's disk, there before the agent runs as a real one is.
    std::fs::write(v.dir.path().join("disk"), b"").unwrap();
    Setup { v, token, staged }
}

fn run_agent(s: &Setup, token: &str) -> (bool, String) {
    let out = agent_command(s, token)
        .output()
        .expect("busybox must be installed (scripts/test installs it)");
    (out.status.success(), show_output(&out))
}

/// The agent under busybox sh, with its kernel command line, MAC and disk.
fn agent_command(s: &Setup, token: &str) -> Command {
    let cmdline = s.v.dir.path().join("cmdline");
    std::fs::write(
        &cmdline,
        format!(
            "root=/dev/ram0 console=hvc0 petitlab.api=http://127.0.0.1:{}/v1/ petitlab.token={token} quiet\n",
            s.v.http_port
        ),
    )
    .unwrap();
    let mut cmd = Command::new("busybox");
    cmd.arg("sh")
        .arg(repo().join("agent/petitlab-agent.sh"))
        .env("PETITLAB_CMDLINE", &cmdline)
        .env("PETITLAB_MACS", &s.v.nodes[0].mac)
        .env("PETITLAB_DISK", s.v.dir.path().join("disk"))
        // tgtd and tgtadm (iSCSI) are the only tools not from busybox.
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/bin", busybox_dir(s)),
        );
    cmd
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
        "ip",
        "tr",
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
    assert_eq!(
        std::fs::metadata(s.v.dir.path().join("disk"))
            .unwrap()
            .len(),
        0,
        "nothing written"
    );
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

/// A disk whose driver never loaded: the agent must not write the image to
/// a file it creates in the ramdisk's /dev (and report done), it says so.
#[test]
fn a_disk_that_never_appears_is_reported_as_a_failure_and_nothing_is_written() {
    let s = setup(None);
    let disk = s.v.dir.path().join("disk");
    std::fs::remove_file(&disk).unwrap();
    let _serve = Daemon::start(&s.v.lab, &["serve"]);
    let out = agent_command(&s, &s.token)
        .env("PETITLAB_DISK_WAIT", "2")
        .output()
        .expect("busybox must be installed");
    let text = show_output(&out);
    assert!(!out.status.success(), "{text}");
    let said = format!("no disk {} after 2 s", disk.display());
    assert!(text.contains(&said), "{said:?} missing:\n{text}");
    assert!(!disk.exists(), "the agent created {disk:?}:\n{text}");
    let deploy = Store::open(&s.v.store())
        .unwrap()
        .deploy("n1")
        .unwrap()
        .unwrap();
    match deploy.result {
        Some(AgentResult::Failed { reason }) => assert!(reason.contains(&said), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A disk behind a module (a SAS HBA's scan) may appear after the network
/// is up: the agent waits for it.
#[test]
fn the_agent_waits_for_a_disk_that_appears_late() {
    let s = setup(None);
    let disk = s.v.dir.path().join("disk");
    std::fs::remove_file(&disk).unwrap();
    let _serve = Daemon::start(&s.v.lab, &["serve"]);
    let mut agent = agent_command(&s, &s.token);
    agent
        .env("PETITLAB_DISK_WAIT", "20")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let agent = agent.spawn().expect("busybox must be installed");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::fs::write(&disk, b"").unwrap();
    let out = agent.wait_with_output().unwrap();
    let text = show_output(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("waiting for {} to appear", disk.display())),
        "{text}"
    );
    assert!(
        std::fs::read(&disk).unwrap() == std::fs::read(s.v.image("n1")).unwrap(),
        "the disk holds the image"
    );
}

/// The iSCSI side of the script: it exports its disk with a real tgtd and
/// reports the target; this test plays petitlab's part with petitlab's own
/// initiator (write, read back, mark written); the script then removes its
/// target, checks its disk and reports done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_script_exports_its_disk_over_iscsi_and_checks_what_petitlab_wrote() {
    use petitlab::iscsi::{LoginOptions, Portal, Session};
    let s = setup_with(VNode::new("n1", Proto::Http, false, 0).iscsi(), None);
    let disk = s.v.dir.path().join("disk");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let _serve = Daemon::start(&s.v.lab, &["serve"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut agent = agent_command(&s, &s.token);
    agent
        .env("PETITLAB_ISCSI_PORT", port.to_string())
        .env("PETITLAB_TGTD_CONTROL", (port % 32768).to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let agent = agent.spawn().expect("busybox must be installed");

    // The target, as the script reported it to petitlab's API.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let target = loop {
        let deploy = Store::open(&s.v.store()).unwrap().deploy("n1").unwrap();
        if let Some(t) = deploy.and_then(|d| d.iscsi) {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the script never reported its target: {:?}",
            agent.wait_with_output().map(|o| show_output(&o))
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(target.portal, format!("127.0.0.1:{port}"));
    assert_eq!(target.target, "iqn.2026-11.org.petitlab.agent:n1");
    let portal = Portal {
        addr: target.portal.parse().unwrap(),
    };
    let mut session = Session::login(&portal, &LoginOptions::new(&target.target, target.lun))
        .await
        .unwrap_or_else(|e| panic!("login to the script's target: {e}"));
    let mut image = tokio::fs::File::open(&s.staged.path).await.unwrap();
    let sha = petitlab::iscsi::write_image(&mut session, &mut image, s.staged.size, |_, _| {})
        .await
        .unwrap_or_else(|e| panic!("writing over iSCSI: {e}"));
    session.logout().await.unwrap();
    assert_eq!(sha, s.staged.sha256);
    Store::open(&s.v.store())
        .unwrap()
        .iscsi_written("n1", &sha)
        .unwrap();

    let out = agent.wait_with_output().unwrap();
    let text = show_output(&out);
    assert!(out.status.success(), "{text}");
    for line in [
        "petitlab writes n1.img",
        &format!("as iSCSI target iqn.2026-11.org.petitlab.agent:n1 LUN 1 on 127.0.0.1:{port}"),
        "petitlab wrote the image; target",
        &format!("done (sha256 {sha})"),
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    let written = std::fs::read(&disk).unwrap();
    assert!(written[..s.staged.size as usize] == std::fs::read(s.v.image("n1")).unwrap()[..]);
    let deploy = Store::open(&s.v.store())
        .unwrap()
        .deploy("n1")
        .unwrap()
        .unwrap();
    assert_eq!(deploy.result, Some(AgentResult::Done { sha256: sha }));
    let tgtds = Command::new("pgrep").args(["-a", "tgtd"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&tgtds.stdout).contains(&format!("127.0.0.1:{port}")),
        "the script left its tgtd running"
    );
    let log = events(&s);
    assert!(
        log.iter().any(|e| e.starts_with("agent-iscsi ok")),
        "{log:?}"
    );
}

fn show_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
