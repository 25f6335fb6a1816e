//! iSCSI deploys (`deploy_interface = "iscsi"`) end to end through the CLI:
//! the virtual host's deploy ramdisk exports its disk with a real tgtd on
//! loopback, petitlab's initiator writes the image (a qcow2 source is
//! converted by qemu-img first) and reads it back, the ramdisk checks its
//! disk and reports done, the node boots its instance. Then the failure: the
//! target vanishes mid-write, the deploy fails naming it, and the node
//! deploys again. Needs root (tgtd); fails, never skips, without it.

mod support;

use std::path::Path;
use std::process::Command;

use petitlab::engine::store::Store;
use petitlab::inventory::derived_uuid;
use sha2::{Digest, Sha256};
use support::cast::{console_path, console_text};
use support::lab::{Daemon, ok, petitlab, show};
use support::virtual_lab::{Proto, VNode, VirtualLab};

const SETTINGS: &str = "[deploy]\npower_timeout = 10\ncallback_timeout = 60\nheartbeat = 1\n\
                        write_timeout = 60\nboot_timeout = 60\n[iscsi]\ntimeout = 5\n";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The sha256 of the disk's first `len` bytes, and whether the rest is zeros.
fn disk_prefix(disk: &Path, len: usize) -> (String, bool) {
    let bytes = std::fs::read(disk).unwrap_or_else(|e| panic!("{}: {e}", disk.display()));
    assert!(bytes.len() >= len, "the disk is smaller than the image");
    (
        sha256_hex(&bytes[..len]),
        bytes[len..].iter().all(|b| *b == 0),
    )
}

fn console_log(v: &VirtualLab, node: &str) -> String {
    console_text(&console_path(&v.state(), node))
}

/// The portal the virtual ramdisk exported its disk on, from its console.
fn exported_portal(log: &str) -> String {
    let line = log
        .lines()
        .rfind(|l| l.contains("as iSCSI target"))
        .unwrap_or_else(|| panic!("the ramdisk never exported its disk:\n{log}"));
    line.rsplit(" on ").next().unwrap().trim().to_string()
}

/// No tgtd still serves `portal`: the ramdisk removed its target and daemon.
fn no_tgtd_on(portal: &str) {
    let out = Command::new("pgrep")
        .args(["-a", "tgtd"])
        .output()
        .expect("pgrep");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        !listing.contains(&format!("portal={portal}")),
        "a tgtd still serves {portal}:\n{listing}"
    );
}

#[test]
fn a_qcow2_image_is_written_over_iscsi_to_active_and_the_node_undeploys() {
    let nodes = vec![
        VNode::new("p9-iscsi-qcow2", Proto::Http, false, 0)
            .iscsi()
            .qcow2(),
        VNode::new("p9-iscsi-netboot", Proto::Tftp, true, 1).iscsi(),
    ];
    // Not a whole number of 512-byte blocks: the last block is padded.
    let image_len = (3 << 20) + 777;
    let v = VirtualLab::new(nodes, image_len, SETTINGS);
    let qcow2 = v.image("p9-iscsi-qcow2").with_extension("qcow2");
    assert!(
        petitlab::engine::image::is_qcow2(&qcow2).unwrap(),
        "the source really is qcow2"
    );
    let _serve = Daemon::start(&v.lab, &["serve", "--only", "files"]);
    let _sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "1"]);

    let out = petitlab(&v.lab, &["deploy", "p9-iscsi-qcow2", "p9-iscsi-netboot"]);
    let text = show(&out);
    assert!(out.status.success(), "{text}");
    for node in &v.nodes {
        let name = node.name.as_str();
        assert!(
            text.contains(&format!("{name}: deploy done: {name} is active")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{name}: write-image")) && text.contains("over iSCSI"),
            "no iSCSI progress for {name}:\n{text}"
        );
        assert_eq!(v.record(name).state, "active");
        assert_eq!(
            text.contains(&format!(
                "{name}: validate: converting the qcow2 image to raw"
            )),
            node.qcow2,
            "{text}"
        );

        // The virtual disk holds exactly the raw image, then zeros.
        let mut raw = std::fs::read(v.image(name)).unwrap();
        if node.qcow2 {
            // qcow2 sizes are whole 512-byte sectors: its raw form is padded.
            raw.resize(raw.len().div_ceil(512) * 512, 0);
        }
        let (sha, zeros) = disk_prefix(&v.disk(name), raw.len());
        assert_eq!(
            sha,
            sha256_hex(&raw),
            "{name}: disk differs from the raw image"
        );
        assert!(zeros, "{name}: junk after the image on the disk");

        let log = console_log(&v, name);
        for line in [
            "as iSCSI target iqn.2026-11.org.petitlab.sim:",
            "petitlab-agent: petitlab wrote the image; target",
            &format!(
                "petitlab-agent: read back {} bytes: sha256 {sha}",
                raw.len()
            ),
            "login: ",
        ] {
            assert!(log.contains(line), "{name}: {line:?} missing:\n{log}");
        }
        no_tgtd_on(&exported_portal(&log));

        let history = ok(&v.lab, &["history", name]);
        for action in [
            "agent-lookup",
            "agent-iscsi",
            "iscsi-write",
            "agent-done",
            "succeed",
        ] {
            assert!(
                history.contains(&format!("  {action}  ")),
                "{name}: {action} missing:\n{history}"
            );
        }
        assert!(
            history.contains(&format!("read back sha256 {sha}")),
            "{history}"
        );
    }
    // iSCSI publishes no image, and the qcow2's raw conversion is gone.
    let image_dir = v
        .state()
        .join(format!("http/{}", derived_uuid("p9-iscsi-qcow2")));
    assert!(
        !image_dir.exists(),
        "something was published for an iSCSI deploy"
    );
    let images = VirtualLab::files_under(&v.state().join("images"));
    assert!(images.is_empty(), "raw conversions left: {images:?}");

    let out = petitlab(&v.lab, &["undeploy", "p9-iscsi-qcow2", "p9-iscsi-netboot"]);
    assert!(out.status.success(), "{}", show(&out));
    for node in &v.nodes {
        assert_eq!(v.record(&node.name).state, "available");
    }
    for dir in ["http", "tftp", "dnsmasq/opts", "images"] {
        let left = VirtualLab::files_under(&v.state().join(dir));
        assert!(left.is_empty(), "{dir} still has {left:?}");
    }
}

/// One iSCSI node whose image is big enough (48 MiB) that petitlab is
/// still writing when the test interferes.
fn one_big_iscsi_node() -> VirtualLab {
    let nodes = vec![VNode::new("n1", Proto::Http, false, 0).iscsi()];
    VirtualLab::new(nodes, 48 << 20, SETTINGS)
}

/// The node's disk holds exactly its image, then zeros.
fn disk_holds_the_image(v: &VirtualLab) {
    let raw = std::fs::read(v.image("n1")).unwrap();
    let (sha, zeros) = disk_prefix(&v.disk("n1"), raw.len());
    assert_eq!(sha, sha256_hex(&raw), "disk differs from the image");
    assert!(zeros, "junk after the image on the disk");
}

#[test]
fn a_target_that_vanishes_mid_write_fails_the_deploy_and_the_node_deploys_again() {
    let v = one_big_iscsi_node();
    let _serve = Daemon::start(&v.lab, &["serve", "--only", "files"]);
    let sim = Daemon::start(
        &v.lab,
        &[
            "sim",
            "--line-delay-ms",
            "1",
            "--fault",
            "n1=iscsi-target-vanishes",
        ],
    );
    let out = petitlab(&v.lab, &["deploy", "n1"]);
    let text = show(&out);
    assert!(!out.status.success(), "{text}");
    // (The ramdisk's "(simulated fault)" line may come after petitlab has
    // failed the deploy and stopped logging its console: not checked.)
    let portal = exported_portal(&console_log(&v, "n1"));
    let r = v.record("n1");
    assert_eq!(
        (r.state.as_str(), r.step.as_deref()),
        ("deploy-failed", Some("write-image")),
        "{text}"
    );
    let reason = r.reason.unwrap();
    assert!(
        reason.starts_with("write-image: iSCSI WRITE(16) ")
            && reason.contains("iqn.2026-11.org.petitlab.sim:n1")
            && reason.contains(&portal),
        "the reason names the step, the command it hit, the target and the portal: {reason}"
    );
    assert!(text.contains(&reason), "the CLI shows the reason:\n{text}");
    let store = Store::open(&v.store()).unwrap();
    assert!(store.deploy("n1").unwrap().is_none(), "the token died");
    assert!(store.reservations().unwrap().is_empty());
    let history = ok(&v.lab, &["history", "n1"]);
    assert!(
        history.contains("  fail  deploy-failed: write-image: iSCSI "),
        "{history}"
    );
    no_tgtd_on(&portal);

    // The same node, its ramdisk healthy again: it deploys.
    sim.stop();
    let _sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "1"]);
    let out = petitlab(&v.lab, &["deploy", "n1"]);
    let text = show(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(v.record("n1").state, "active");
    disk_holds_the_image(&v);
}

#[test]
fn petitlab_killed_mid_iscsi_write_resumes_and_rewrites_the_image() {
    let v = one_big_iscsi_node();
    let _serve = Daemon::start(&v.lab, &["serve", "--only", "files"]);
    let _sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "1"]);
    let mut deploy = Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(&v.lab)
        .args(["deploy", "n1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the target is reported and its disk starts changing:
    // petitlab is writing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut first_write = None;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never started"
        );
        let target = Store::open(&v.store())
            .ok()
            .and_then(|s| s.deploy("n1").ok().flatten())
            .and_then(|d| d.iscsi);
        let modified = std::fs::metadata(v.disk("n1"))
            .and_then(|m| m.modified())
            .ok();
        match (target, first_write) {
            (Some(_), None) => first_write = modified,
            (Some(_), Some(at)) if modified != Some(at) => break,
            _ => {}
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Command::new("kill")
        .args(["-KILL", &deploy.id().to_string()])
        .status()
        .unwrap();
    deploy.wait().unwrap();
    let r = v.record("n1");
    assert_eq!(
        (r.state.as_str(), r.step.as_deref()),
        ("deploying", Some("write-image"))
    );

    let out = petitlab(&v.lab, &["deploy", "n1"]);
    let text = show(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("resuming the interrupted deploy at write-image"),
        "{text}"
    );
    assert_eq!(v.record("n1").state, "active");
    disk_holds_the_image(&v);
    let history = ok(&v.lab, &["history", "n1"]);
    assert!(history.contains("  iscsi-write  ok: "), "{history}");
}
