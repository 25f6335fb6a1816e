//! Deploy ramdisks for tests: a busybox base ramdisk as an operator has one,
//! agent/add-to-initramfs.sh applied to it, the result unpacked as the
//! kernel would, and its /init run there with `chroot`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::lab::repo;

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    out
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn sh(dir: &Path, script: &str) -> String {
    text(&run(Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)))
}

/// A deploy ramdisk as an operator has one: busybox (with the libraries it
/// links) and its applets, as a gzip'ed newc cpio. Nothing else: no udhcpc
/// default script, as Debian's busybox package has none.
pub fn base_ramdisk(dir: &Path) -> PathBuf {
    let base = dir.join("base");
    let busybox = sh(dir, "command -v busybox");
    let busybox = busybox.trim();
    assert!(!busybox.is_empty(), "busybox must be installed");
    fs::create_dir_all(base.join("bin")).unwrap();
    fs::copy(busybox, base.join("bin/busybox")).unwrap();
    let ldd = sh(dir, &format!("ldd {busybox} || true"));
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let to = base.join(lib.trim_start_matches('/'));
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(lib, &to).unwrap_or_else(|e| panic!("copy {lib}: {e}"));
    }
    for applet in sh(dir, "busybox --list-full").lines() {
        let link = base.join(applet);
        if link.exists() || applet == "bin/busybox" {
            continue;
        }
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/bin/busybox", &link).unwrap();
    }
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        fs::create_dir_all(base.join(d)).unwrap();
    }
    sh(
        dir,
        "(cd base && find . | busybox cpio -o -H newc 2>/dev/null) | gzip > deploy.initramfs",
    );
    dir.join("deploy.initramfs")
}

/// The base ramdisk plus add-to-initramfs.sh ARGS, unpacked into dir/root
/// as the kernel would: the first archive, then the appended one over it.
pub fn ramdisk(dir: &Path, args: &[&str]) -> (PathBuf, String) {
    let base = base_ramdisk(dir);
    let script = repo().join("agent/add-to-initramfs.sh");
    let out = run(Command::new("sh")
        .arg(&script)
        .args(args)
        .arg(&base)
        .arg(dir.join("out.initramfs"))
        .current_dir(dir));
    let report = text(&out);
    let base_len = fs::metadata(&base).unwrap().len();
    sh(
        dir,
        &format!(
            "mkdir root && zcat deploy.initramfs | (cd root && busybox cpio -idm 2>/dev/null) && \
             tail -c +{} out.initramfs | zcat | (cd root && busybox cpio -idmu 2>/dev/null)",
            base_len + 1
        ),
    );
    (dir.join("root"), report)
}

/// Runs the ramdisk's /init with `chroot`, inside `wrapper` (the command
/// that puts it in its namespaces), with no input: the shell it drops to on
/// failure reads EOF and exits.
pub fn run_init(root: &Path, wrapper: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("timeout");
    cmd.arg("120")
        .args(wrapper)
        .args(["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
        .args(env.iter().map(|(k, v)| format!("{k}={v}")))
        .arg("chroot")
        .arg(root)
        .arg("/init")
        .stdin(Stdio::null());
    let out = cmd.output().expect("run the ramdisk's /init");
    let shown = text(&out);
    assert!(
        out.status.code() != Some(124),
        "/init did not finish within 120 s:\n{shown}"
    );
    shown
}
