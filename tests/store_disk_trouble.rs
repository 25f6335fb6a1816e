//! The state store on a disk that is full, or mounted read-only: a full
//! disk is named as such (not "disk I/O error: Error code 4874"), and the
//! readers (`status`, `history`) still work on a read-only store. The state
//! dir is a small tmpfs in a private mount namespace (`unshare -m`, root).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::lab::{ok, show};
use support::virtual_lab::{Proto, VNode, VirtualLab};

/// Runs `script` in a private mount namespace with `$STATE` a fresh tmpfs
/// of 2 MiB holding a copy of the lab's state dir, and `$PL` petitlab
/// with the lab.
fn in_private_mount(v: &VirtualLab, script: &str) -> Output {
    let state = v.state();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-ec"])
        .arg(format!(
            "cp -a \"$STATE\" /tmp/petitlab-state-copy.$$\n\
             mount -t tmpfs -o size=2m petitlab-test \"$STATE\"\n\
             cp -a /tmp/petitlab-state-copy.$$/. \"$STATE\"/\n\
             rm -rf /tmp/petitlab-state-copy.$$\n\
             {script}"
        ))
        .env("STATE", &state)
        .env(
            "PL",
            format!(
                "{} --lab {}",
                env!("CARGO_BIN_EXE_petitlab"),
                v.lab.display()
            ),
        )
        .output()
        .expect("run unshare (util-linux; needs root)");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("unshare failed"),
        "cannot make a mount namespace (root needed): {}",
        show(&out)
    );
    out
}

fn lab_with_a_store() -> VirtualLab {
    let v = VirtualLab::new(vec![VNode::new("n1", Proto::Http, false, 0)], 4096, "");
    // A store with the node in it, closed (no -wal/-shm left).
    ok(&v.lab, &["status"]);
    assert!(Path::new(&v.store()).exists());
    v
}

#[test]
fn a_full_disk_is_named_as_such() {
    let v = lab_with_a_store();
    let out = in_private_mount(
        &v,
        "dd if=/dev/zero of=\"$STATE/filler\" bs=4k 2>/dev/null || true\n\
         echo '--- deploy'; if $PL deploy n1; then echo 'deploy: exit 0'; fi\n\
         echo '--- status'; $PL status",
    );
    let text = show(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("deploy: exit 0"),
        "a deploy cannot run: {text}"
    );
    assert!(
        stderr.contains("state store") && stderr.contains("the disk is full"),
        "{text}"
    );
    assert!(!text.contains("Error code"), "{text}");
    // The readers still show the state, with the reason they could not update it.
    assert!(
        out.status.success(),
        "status reads a full disk's store: {text}"
    );
    assert!(stdout.contains("n1"), "{text}");
}

#[test]
fn status_and_history_read_a_read_only_store() {
    let v = lab_with_a_store();
    let out = in_private_mount(
        &v,
        "mount -o remount,ro \"$STATE\"\n\
         echo '--- status'; $PL status\n\
         echo '--- history'; $PL history n1",
    );
    let text = show(&out);
    assert!(out.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let status = stdout.split("--- history").next().unwrap();
    assert!(status.contains("n1") && status.contains("enroll"), "{text}");
    let history = stdout.split("--- history").nth(1).unwrap();
    assert!(history.contains("enroll"), "{text}");
    assert!(
        text.contains("read-only"),
        "says it could not update the store: {text}"
    );
}
