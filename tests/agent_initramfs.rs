//! docs/deploy-ramdisk.md's recipe: agent/add-to-initramfs.sh appends the
//! agent to a deploy ramdisk. The result is checked with busybox cpio: the
//! original archive is intact, and the appended one holds an executable
//! agent, /init and udhcpc script that busybox sh parses. tests/agent_init.rs
//! runs that /init.

mod support;

use std::process::Command;

use support::lab::repo;

fn sh(dir: &std::path::Path, script: &str) -> String {
    let out = Command::new("busybox")
        .args(["sh", "-ec", script])
        .current_dir(dir)
        .output()
        .expect("busybox");
    assert!(
        out.status.success(),
        "{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_agent_is_appended_to_a_deploy_ramdisk() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A stand-in deploy ramdisk: one file, as a gzip'ed newc cpio.
    sh(
        d,
        "mkdir -p base/bin && echo original > base/bin/marker && \
           (cd base && find . | busybox cpio -o -H newc) | gzip > deploy.initramfs",
    );
    let script = repo().join("agent/add-to-initramfs.sh");
    let out = sh(
        d,
        &format!(
            "{} deploy.initramfs deploy-petitlab.initramfs",
            script.display()
        ),
    );
    assert!(out.contains("bytes of petitlab agent"), "{out}");

    // The first archive is untouched; the second starts right after it.
    let base_len = std::fs::metadata(d.join("deploy.initramfs")).unwrap().len();
    let listing = sh(d, "zcat deploy.initramfs | busybox cpio -t");
    assert!(listing.contains("bin/marker"), "{listing}");
    let overlay = sh(
        d,
        &format!(
            "mkdir x && tail -c +{} deploy-petitlab.initramfs | zcat | (cd x && busybox cpio -idm) && \
             ls -l x/init x/usr/bin/petitlab-agent x/usr/share/petitlab/udhcpc.script && \
             busybox sh -n x/init && busybox sh -n x/usr/bin/petitlab-agent && \
             busybox sh -n x/usr/share/petitlab/udhcpc.script",
            base_len + 1
        ),
    );
    assert_eq!(overlay.lines().count(), 3, "{overlay}");
    for line in overlay.lines() {
        assert!(line.starts_with("-rwxr-xr-x"), "executable: {overlay}");
    }
    let agent = std::fs::read(d.join("x/usr/bin/petitlab-agent")).unwrap();
    assert_eq!(
        agent,
        std::fs::read(repo().join("agent/petitlab-agent.sh")).unwrap()
    );
    // The whole file is one valid multi-member gzip stream, as the kernel reads it.
    sh(d, "gzip -t deploy-petitlab.initramfs");
}
