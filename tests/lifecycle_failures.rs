//! Deploys that go wrong, through the CLI against the virtual lab: an agent
//! that never calls back, a wrong token, an unreachable BMC, and petitlab
//! killed with SIGKILL mid-deploy (a wait resumes; an action fails as
//! "interrupted"), with nothing half-written left behind.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use petitlab::engine::store::{NodeRecord, Store};
use support::cast::{console_path, console_text};
use support::lab::{Daemon, ok, petitlab, show};
use support::virtual_lab::{Proto, VNode, VirtualLab};

const FAST: &str = "[deploy]\npower_timeout = 4\ncallback_timeout = 3\nheartbeat = 1\n\
                    write_timeout = 30\nboot_timeout = 30\n";

fn one_node(proto: Proto, deploy: &str) -> VirtualLab {
    VirtualLab::new(vec![VNode::new("n1", proto, false, 0)], 200 << 10, deploy)
}

fn history(v: &VirtualLab) -> String {
    ok(&v.lab, &["history", "n1", "--limit", "200"])
}

fn spawn_deploy(v: &VirtualLab) -> Child {
    Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(&v.lab)
        .args(["deploy", "n1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(v: &VirtualLab, what: &str, done: impl Fn(&NodeRecord) -> bool) -> NodeRecord {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(r)) = Store::open(&v.store()).and_then(|s| s.node("n1")) {
            if done(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last {r:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// No temp file (petitlab's start with a dot) anywhere in the served trees
/// or DHCP dirs, and every config there is complete.
fn nothing_half_written(v: &VirtualLab) {
    for dir in ["http", "tftp", "dnsmasq", "boot"] {
        for file in VirtualLab::files_under(&v.state().join(dir)) {
            let name = file.rsplit('/').next().unwrap();
            assert!(!name.starts_with('.'), "temp file left: {dir}/{file}");
            if name == "config" {
                let text = std::fs::read_to_string(v.state().join(dir).join(&file)).unwrap();
                let parsed = petitlab::boot::pxeconf::parse(&text);
                assert!(
                    parsed.default_label().is_some_and(|l| l.kernel.is_some()),
                    "{text}"
                );
            }
        }
    }
}

#[test]
fn a_silent_agent_fails_the_deploy_at_wait_callback_then_an_unreachable_bmc_names_itself() {
    let v = one_node(Proto::Http, FAST);
    let _serve = Daemon::start(&v.lab, &["serve", "--only", "files"]);
    let sim = Daemon::start(
        &v.lab,
        &["sim", "--line-delay-ms", "1", "--fault", "n1=agent-silent"],
    );
    let out = petitlab(&v.lab, &["deploy", "n1"]);
    let text = show(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "n1: deploy FAILED: wait-callback: no callback from the deploy agent within 3 s"
        ),
        "{text}"
    );
    assert!(
        text.contains("n1: deploy-failed: wait-callback: no callback"),
        "the state line names the step once: {text}"
    );
    assert!(!text.contains("wait-callback: wait-callback"), "{text}");
    assert!(!text.contains("FAILED: n1:"), "{text}");
    let r = v.record("n1");
    assert_eq!(r.state, "deploy-failed");
    assert_eq!(r.step.as_deref(), Some("wait-callback"));
    assert!(r.reason.unwrap().starts_with("wait-callback: no callback"));
    let store = Store::open(&v.store()).unwrap();
    assert!(
        store.deploy("n1").unwrap().is_none(),
        "the token died with the deploy"
    );
    assert!(store.reservations().unwrap().is_empty());
    let image = v.state().join(format!(
        "http/{}/image",
        petitlab::inventory::derived_uuid("n1")
    ));
    assert!(!image.exists(), "the image is unpublished");
    let log = history(&v);
    assert!(
        log.contains("  fail  deploy-failed: wait-callback: no callback"),
        "{log}"
    );
    // The node's console shows what it did: it booted the ramdisk, its agent stayed silent.
    let console = console_text(&console_path(&v.state(), "n1"));
    assert!(console.contains("agent silent"), "{console}");

    // Same node, now its BMC does not answer: the deploy fails naming the BMC.
    sim.stop();
    let _sim = Daemon::start(&v.lab, &["sim", "--fault", "n1=bmc-silent"]);
    let started = Instant::now();
    let out = petitlab(&v.lab, &["deploy", "n1"]);
    let text = show(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("set-boot-device: boot device pxe on the BMC at 127.0.0.1:"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded by power_timeout"
    );
    let r = v.record("n1");
    assert_eq!(r.state, "deploy-failed");
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .starts_with("set-boot-device: "),
        "{r:?}"
    );
    // And undeploy (power off) reports the same unreachable BMC, as an error state.
    let out = petitlab(&v.lab, &["undeploy", "n1"]);
    assert!(!out.status.success());
    assert_eq!(v.record("n1").state, "error");
}

#[test]
fn without_petitlab_serve_a_deploy_is_refused_and_the_node_untouched() {
    let v = one_node(Proto::Tftp, FAST);
    let _sim = Daemon::start(&v.lab, &["sim"]);
    let out = petitlab(&v.lab, &["deploy", "n1"]);
    let text = show(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "n1: deploy FAILED: refused, nothing changed: validate: petitlab's HTTP server on 127.0.0.1:"
        ),
        "{text}"
    );
    assert!(text.contains("`petitlab serve`"), "{text}");
    assert_eq!(
        v.record("n1").state,
        "available",
        "verified, then refused before any change"
    );
    assert!(VirtualLab::files_under(&v.state().join("tftp")).is_empty());
    // With only the HTTP server up, the TFTP node is refused for its TFTP server.
    let http = format!("127.0.0.1:{}", v.http_port);
    let _serve = Daemon::start(&v.lab, &["serve", "--only", "http", "--http", &http]);
    let text = show(&petitlab(&v.lab, &["deploy", "n1"]));
    assert!(
        text.contains("petitlab's TFTP server on 127.0.0.1:"),
        "{text}"
    );
    assert!(history(&v).contains("deploy  refused: "), "audited");
}

#[test]
fn an_unverifiable_bmc_keeps_a_new_node_in_enroll_with_the_reason() {
    let v = one_node(Proto::Http, FAST);
    let _serve = Daemon::start(&v.lab, &["serve", "--only", "files"]);
    let _sim = Daemon::start(&v.lab, &["sim", "--fault", "n1=bmc-silent"]);
    let out = petitlab(&v.lab, &["deploy", "n1"]);
    let text = show(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("n1: deploy FAILED: verify: power status on the BMC at 127.0.0.1:"),
        "{text}"
    );
    let r = v.record("n1");
    assert_eq!(
        (r.state.as_str(), r.step.as_deref()),
        ("enroll", Some("verify"))
    );
    assert!(!text.contains("s3cret-bmc"));
}

#[test]
fn a_wrong_token_is_rejected_audited_and_the_deploy_fails() {
    let v = one_node(Proto::Tftp, FAST);
    let _serve = Daemon::start(&v.lab, &["serve", "--only", "files"]);
    let _sim = Daemon::start(
        &v.lab,
        &["sim", "--line-delay-ms", "1", "--fault", "n1=wrong-token"],
    );
    let out = petitlab(&v.lab, &["deploy", "n1"]);
    assert!(!out.status.success(), "{}", show(&out));
    assert_eq!(v.record("n1").state, "deploy-failed");
    let log = history(&v);
    assert!(
        log.contains("agent-rejected  refused: lookup from 127.0.0.1"),
        "{log}"
    );
    assert!(log.contains("wrong deploy token"), "{log}");
    assert!(!log.contains("agent-lookup  ok"), "{log}");
}

#[test]
fn killed_while_waiting_on_the_node_a_rerun_resumes_the_deploy() {
    let v = one_node(
        Proto::Http,
        "[deploy]\ncallback_timeout = 60\nheartbeat = 2\n",
    );
    let _serve = Daemon::start(&v.lab, &["serve", "--only", "files"]);
    // Slow consoles: the node needs a few seconds to reach its agent.
    let _sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "60"]);
    let mut deploy = spawn_deploy(&v);
    wait_for(&v, "wait-callback", |r| r.state == "wait-callback");
    signal(deploy.id(), "-KILL");
    deploy.wait().unwrap();
    nothing_half_written(&v);

    let out = petitlab(&v.lab, &["deploy", "n1"]);
    let text = show(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("resuming the interrupted deploy at wait-callback"),
        "{text}"
    );
    assert_eq!(v.record("n1").state, "active");
    let log = history(&v);
    assert!(
        log.contains("recover  resumable: interrupted: petitlab ("),
        "{log}"
    );
    assert!(std::fs::read(v.disk("n1")).unwrap() == std::fs::read(v.image("n1")).unwrap());
}

#[test]
fn killed_while_driving_the_bmc_the_node_fails_as_interrupted_and_recovers() {
    let v = one_node(
        Proto::Tftp,
        "[deploy]\npower_timeout = 30\ncallback_timeout = 60\n",
    );
    let _serve = Daemon::start(&v.lab, &["serve", "--only", "files"]);
    let sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "1"]);
    // A full cycle first, so the node is verified and available.
    ok(&v.lab, &["deploy", "n1"]);
    ok(&v.lab, &["undeploy", "n1"]);
    // The BMC freezes: the deploy hangs in set-boot-device; then petitlab dies.
    signal(sim.pid(), "-STOP");
    let mut deploy = spawn_deploy(&v);
    wait_for(&v, "set-boot-device", |r| {
        r.step.as_deref() == Some("set-boot-device")
    });
    signal(deploy.id(), "-KILL");
    deploy.wait().unwrap();
    signal(sim.pid(), "-CONT");
    nothing_half_written(&v);

    let status = ok(&v.lab, &["status", "n1"]);
    assert!(
        status.contains("deploy-failed") && status.contains("interrupted: petitlab ("),
        "{status}"
    );
    assert!(
        status.contains("stopped during set-boot-device"),
        "{status}"
    );
    let r = v.record("n1");
    assert_eq!(r.state, "deploy-failed");
    assert!(
        Store::open(&v.store())
            .unwrap()
            .reservations()
            .unwrap()
            .is_empty()
    );
    // Undeploy cleans what the dead deploy wrote; the node deploys again.
    ok(&v.lab, &["undeploy", "n1"]);
    for dir in ["http", "tftp", "dnsmasq/opts"] {
        let left = VirtualLab::files_under(&v.state().join(dir));
        assert!(left.is_empty(), "{dir}: {left:?}");
    }
    let out = petitlab(&v.lab, &["deploy", "n1"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(v.record("n1").state, "active");
}

#[test]
fn abort_stops_a_running_deploy_and_one_left_behind_by_a_dead_petitlab() {
    let v = one_node(Proto::Http, "[deploy]\ncallback_timeout = 120\n");
    let _serve = Daemon::start(&v.lab, &["serve", "--only", "files"]);
    let _sim = Daemon::start(
        &v.lab,
        &["sim", "--line-delay-ms", "1", "--fault", "n1=agent-silent"],
    );

    // A deploy running in another process stops at its next check.
    let mut deploy = spawn_deploy(&v);
    wait_for(&v, "wait-callback", |r| r.state == "wait-callback");
    let said = ok(&v.lab, &["abort", "n1"]);
    assert!(said.contains("abort requested"), "{said}");
    let started = Instant::now();
    let status = deploy.wait().unwrap();
    assert!(!status.success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped promptly"
    );
    let r = v.record("n1");
    assert_eq!(r.state, "deploy-failed");
    assert!(
        r.reason.as_deref().unwrap().starts_with("aborted by "),
        "{r:?}"
    );
    assert!(
        Store::open(&v.store())
            .unwrap()
            .deploy("n1")
            .unwrap()
            .is_none()
    );

    // A deploy whose petitlab died while waiting: abort fails it right here.
    let mut deploy = spawn_deploy(&v);
    wait_for(&v, "wait-callback again", |r| r.state == "wait-callback");
    signal(deploy.id(), "-KILL");
    deploy.wait().unwrap();
    let said = ok(&v.lab, &["abort", "n1"]);
    assert!(said.contains("aborted by "), "{said}");
    assert_eq!(v.record("n1").state, "deploy-failed");
    assert!(
        Store::open(&v.store())
            .unwrap()
            .reservations()
            .unwrap()
            .is_empty()
    );
    // Nothing to abort any more.
    let out = petitlab(&v.lab, &["abort", "n1"]);
    assert!(!out.status.success());
    assert!(
        show(&out).contains("there is no deploy to abort"),
        "{}",
        show(&out)
    );
}
