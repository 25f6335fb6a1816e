//! `petitlab why NODE`: each of the virtual lab's host faults
//! (`petitlab demo --fault NODE=KIND`) is diagnosed by its rule, with
//! causes that name what to fix, and the timeline shows the steps that
//! came before the stall. A healthy deploy has no diagnosis. The real
//! binary throughout: the demo's lab service records the boots.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const NODE: &str = "p9-rack1-01";
/// lab.toml's MAC for [`NODE`] (the demo's lab.toml.example).
const MAC: &str = "70:e2:84:14:00:01";

/// One `petitlab demo --headless`, stopped by PID (SIGINT, then wait) when
/// the test ends however it ends.
struct Demo {
    child: Child,
    dir: tempfile::TempDir,
}

impl Demo {
    /// Starts the demo with `faults` (`NODE=KIND`) and waits for its
    /// "running" line.
    fn start(faults: &[&str]) -> Demo {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_petitlab"));
        cmd.args(["demo", "--headless", "--dir"])
            .arg(dir.path().join("demo"));
        for fault in faults {
            cmd.args(["--fault", fault]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start petitlab demo: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let demo = Demo { child, dir };
        let mut said = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains("running") => break,
                Ok(line) => said.push(line),
                Err(e) => panic!("petitlab demo {faults:?} did not start ({e}): {said:?}"),
            }
        }
        demo
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("demo")
    }

    fn lab(&self) -> PathBuf {
        self.home().join("lab.toml")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_petitlab"))
            .arg("--lab")
            .arg(self.lab())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run petitlab")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "petitlab {args:?}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The node's virtual disk emptied: with nothing on its disk a node
    /// whose netboot fails stops in petitboot instead of booting the disk
    /// to a login prompt (which would leave nothing to diagnose).
    fn empty_disk(&self, node: &str) {
        let disk = self.home().join(format!("state/sim/disks/{node}.img"));
        assert!(disk.exists(), "no virtual disk at {}", disk.display());
        std::fs::write(&disk, b"").unwrap();
    }

    /// The node set to netboot the deploy ramdisk and powered on.
    fn netboot(&self, node: &str) {
        self.ok(&["prepare-ramdisk", node]);
        self.ok(&["bootdev", node, "pxe"]);
        self.ok(&["power", node, "on"]);
    }

    fn why_json(&self, node: &str) -> Value {
        let out = self.ok(&["why", node, "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("why --json: {e}: {out}"))
    }

    fn why_text(&self, node: &str) -> String {
        show(&self.run(&["why", node]))
    }

    /// Polls `why --json` every 500 ms, at most 60 s, until `done` holds;
    /// on timeout fails with the last plain-text `why` and the console log.
    fn until(&self, node: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let why = self.why_json(node);
            if done(&why) {
                return why;
            }
            if start.elapsed() > Duration::from_secs(60) {
                panic!(
                    "{node}: no {what} within 60 s; `why` said:\n{}\nlast JSON diagnosis: {}\nconsole:\n{}",
                    self.why_text(node),
                    why["boot"]["diagnosis"],
                    self.console(node)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Polls until the diagnosis is `rule`.
    fn diagnosed(&self, node: &str, rule: &str) -> Value {
        self.until(node, &format!("diagnosis {rule}"), |why| {
            why["boot"]["diagnosis"]["rule"] == rule
        })["boot"]
            .clone()
    }

    /// Polls until the diagnosis is `rule` and the DHCP ACK is in the
    /// timeline: the recorder closes an ACK once dnsmasq's log has been
    /// quiet 750 ms, and rules like file-missing fire at once.
    fn diagnosed_after_ack(&self, node: &str, rule: &str) -> Value {
        self.until(node, &format!("diagnosis {rule} with a DHCP ACK"), |why| {
            why["boot"]["diagnosis"]["rule"] == rule && ack(&why["boot"]).is_some()
        })["boot"]
            .clone()
    }

    /// The console log's printable text (for failure messages).
    fn console(&self, node: &str) -> String {
        let dir = self.home().join("state/console");
        let mut text = String::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().contains(node) {
                let bytes = std::fs::read(entry.path()).unwrap_or_default();
                let s = String::from_utf8_lossy(&bytes);
                let tail: String = s.chars().rev().take(3000).collect();
                text.push_str(&tail.chars().rev().collect::<String>());
            }
        }
        text
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn show(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn causes(boot: &Value) -> Vec<String> {
    strings(&boot["diagnosis"]["causes"])
}

fn evidence(boot: &Value) -> Vec<String> {
    strings(&boot["diagnosis"]["evidence"])
}

fn events(boot: &Value) -> Vec<Value> {
    boot["boot"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A DHCP ACK for [`MAC`], and whether it carried option 209.
fn ack(boot: &Value) -> Option<bool> {
    events(boot)
        .iter()
        .find(|e| e["kind"] == "dhcp" && e["message"] == "ACK" && e["mac"] == MAC)
        .map(|e| {
            e["sent"]
                .as_array()
                .is_some_and(|s| s.iter().any(|o| o["code"] == 209))
        })
}

/// The status of the first fetch of a file of `kind` (config, kernel, …).
fn fetched(boot: &Value, kind: &str) -> Option<u64> {
    events(boot)
        .iter()
        .find(|e| e["kind"] == "fetch" && e["file"] == kind)
        .and_then(|e| e["status"].as_u64())
}

/// The milestones reached, by name (`{"reached": [["power-on", ms], …]}`).
fn milestones(boot: &Value) -> Vec<String> {
    boot["milestones"]["reached"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m[0].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn has_console_stage(boot: &Value, stage: &str) -> bool {
    events(boot)
        .iter()
        .any(|e| e["kind"] == "console" && e["stage"] == stage)
}

#[test]
fn no_dhcp_reply_is_diagnosed_no_dhcp_naming_the_mac() {
    let demo = Demo::start(&[&format!("{NODE}=no-dhcp-reply")]);
    // Nothing on the disk: else, with no lease, it boots the disk to login.
    demo.empty_disk(NODE);
    demo.netboot(NODE);
    let boot = demo.diagnosed(NODE, "no-dhcp");
    let causes = causes(&boot);
    assert!(
        causes
            .iter()
            .any(|c| c.contains("NIC or MAC in lab.toml") && c.contains(MAC)),
        "{causes:?}"
    );
    let text = demo.why_text(NODE);
    assert!(text.contains(MAC), "{text}");
    // The steps before: powered on with a pxe override (set by `bootdev`
    // just before), petitboot ran, and nothing from dnsmasq.
    assert!(
        events(&boot)
            .iter()
            .any(|e| e["kind"] == "boot-override" && e["device"] == "pxe"),
        "{boot:#}"
    );
    assert!(has_console_stage(&boot, "petitboot"), "{boot:#}");
    assert!(
        !events(&boot).iter().any(|e| e["kind"] == "dhcp"),
        "{boot:#}"
    );
}

#[test]
fn no_pxe_options_is_diagnosed_ack_without_209() {
    let demo = Demo::start(&[&format!("{NODE}=no-pxe-options")]);
    // Nothing on the disk: else, without 209, it boots the disk to login.
    demo.empty_disk(NODE);
    demo.netboot(NODE);
    let boot = demo.diagnosed(NODE, "ack-without-209");
    let causes = causes(&boot);
    assert!(
        causes
            .iter()
            .any(|c| c.contains(MAC) && c.contains("not tagged")),
        "{causes:?}"
    );
    assert!(
        causes
            .iter()
            .any(|c| c.contains("dnsmasq has not re-read") && c.contains("SIGHUP")),
        "{causes:?}"
    );
    assert_eq!(ack(&boot), Some(false), "an ACK without 209: {boot:#}");
    assert_eq!(fetched(&boot, "config"), None, "{boot:#}");
}

#[test]
fn autoboot_off_is_diagnosed_after_the_config_came() {
    let demo = Demo::start(&[&format!("{NODE}=autoboot-off")]);
    demo.netboot(NODE);
    let boot = demo.diagnosed_after_ack(NODE, "autoboot-off");
    let causes = causes(&boot);
    assert!(
        causes.iter().any(|c| c.contains("autoboot is off")),
        "{causes:?}"
    );
    assert_eq!(ack(&boot), Some(true), "an ACK with 209: {boot:#}");
    assert_eq!(fetched(&boot, "config"), Some(200), "{boot:#}");
    assert_eq!(fetched(&boot, "kernel"), None, "{boot:#}");
}

#[test]
fn kernel_404_is_diagnosed_file_missing_not_staged() {
    let demo = Demo::start(&[&format!("{NODE}=kernel-404")]);
    demo.netboot(NODE);
    let boot = demo.diagnosed_after_ack(NODE, "file-missing");
    let expected = boot["diagnosis"]["expected"].as_str().unwrap_or_default();
    assert!(
        expected.starts_with("the kernel ") && expected.contains("-missing, which was not found"),
        "{expected}"
    );
    let causes = causes(&boot);
    assert!(
        causes
            .iter()
            .any(|c| c.starts_with("petitlab did not stage") && c.contains("-missing")),
        "{causes:?}"
    );
    assert_eq!(ack(&boot), Some(true), "{boot:#}");
    assert_eq!(fetched(&boot, "config"), Some(200), "{boot:#}");
    assert_eq!(fetched(&boot, "kernel"), Some(404), "{boot:#}");
}

#[test]
fn kexec_fail_is_diagnosed_quoting_the_console() {
    let demo = Demo::start(&[&format!("{NODE}=kexec-fail")]);
    demo.netboot(NODE);
    let boot = demo.diagnosed_after_ack(NODE, "kexec-failed");
    let evidence = evidence(&boot);
    assert!(
        evidence
            .iter()
            .any(|e| e.starts_with("console: ") && e.contains("kexec load failed")),
        "{evidence:?}"
    );
    assert_eq!(ack(&boot), Some(true), "{boot:#}");
    assert_eq!(fetched(&boot, "config"), Some(200), "{boot:#}");
    assert_eq!(fetched(&boot, "kernel"), Some(200), "{boot:#}");
    assert_eq!(fetched(&boot, "initrd"), Some(200), "{boot:#}");
}

#[test]
fn silent_kernel_is_diagnosed_naming_console_and_endianness() {
    let demo = Demo::start(&[&format!("{NODE}=silent-kernel")]);
    demo.netboot(NODE);
    let boot = demo.diagnosed_after_ack(NODE, "silent-kernel");
    let causes = causes(&boot);
    assert!(causes.iter().any(|c| c.contains("console=")), "{causes:?}");
    assert!(
        causes.iter().any(|c| c.contains("endianness")),
        "{causes:?}"
    );
    assert_eq!(fetched(&boot, "kernel"), Some(200), "{boot:#}");
    assert!(has_console_stage(&boot, "kexec"), "{boot:#}");
    let milestones = milestones(&boot);
    assert!(milestones.iter().any(|m| m == "kexec"), "{milestones:?}");
}

#[test]
fn a_healthy_deploy_boots_with_no_diagnosis() {
    // The demo's netboot-instance node: its last boot (the instance's) is a
    // netboot too, so it has every milestone; a local-instance node's last
    // boot is from its disk (no DHCP, config or kernel fetch).
    const NODE: &str = "p9-rack1-02";
    let demo = Demo::start(&[]);
    let out = demo.ok(&["deploy", NODE]);
    assert!(out.contains("is active"), "{out}");
    let boot = demo.until(NODE, "boot up", |why| {
        milestones(&why["boot"]).iter().any(|m| m == "up")
    })["boot"]
        .clone();
    assert!(boot["diagnosis"].is_null(), "{boot:#}");
    let milestones = milestones(&boot);
    for m in ["dhcp", "config", "kernel", "kexec", "up"] {
        assert!(milestones.iter().any(|x| x == m), "{m}: {milestones:?}");
    }
    let text = demo.why_text(NODE);
    assert!(text.contains("booted"), "{text}");
}
