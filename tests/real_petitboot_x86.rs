//! Deploys through REAL upstream petitboot in an x86-64 QEMU guest (the rig
//! of tests/support/petitboot_rig.rs: ipmi_sim as the BMC, real dnsmasq,
//! `petitlab serve`, the lab service): a netboot node deployed and netbooted over TFTP on
//! every boot, deploys that fail because a file petitboot needs is gone
//! (failing with petitboot's own words), and `petitlab console` (attached through the service) following
//! the guest across a power cycle and a kexec without losing a line.
//!
//! Needs root, QEMU, dnsmasq, openipmi and the guest that
//! tests/peers/petitboot-vm/build.sh makes; fails, never skips, when one is
//! missing. Emulated (TCG) guests are slow, more so two at a time on two
//! cores: the waits below are generous, and only a stuck step trips them.

mod support;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Child, ChildStdin, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::petitboot_rig::{
    Arch, BootOption, NODE, Protocol, Rig, RigOptions, artifacts, poll_until, show,
};

/// A whole deploy: its own step limits (power, callback, write, boot) end
/// it well before this.
const DEPLOY_WAIT: Duration = Duration::from_secs(900);
/// Power-on to the instance's login prompt (petitboot, its 10 s countdown,
/// kexec, the instance): ~30-60 s on a loaded machine.
const BOOT_WAIT: Duration = Duration::from_secs(240);

fn uuid() -> String {
    petitlab::inventory::derived_uuid(NODE).to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `node` object of `petitlab status --json pb1`.
fn status(rig: &Rig) -> serde_json::Value {
    let out = rig.petitlab_ok(&["status", "--json", NODE]);
    let rows: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}:\n{out}"));
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r["node"]["name"] == NODE))
        .map(|r| r["node"].clone())
        .unwrap_or_else(|| panic!("status --json has no {NODE}:\n{out}"))
}

/// `petitlab history --json pb1`: its audit events.
fn history(rig: &Rig) -> Vec<serde_json::Value> {
    let out = rig.petitlab_ok(&["history", "--json", "--limit", "1000", NODE]);
    let events: Vec<serde_json::Value> =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("history --json: {e}:\n{out}"));
    events
}

/// `petitlab serve`'s TFTP log lines for `pb1` whose request names `file`
/// (a path under the node's directory) and that were sent whole.
fn tftp_sent<'a>(log: &'a str, file: &str) -> Vec<&'a str> {
    let name = format!("{}/{file}\"", uuid());
    log.lines()
        .filter(|l| {
            l.starts_with(&format!("tftp {NODE} "))
                && l.contains(" RRQ \"")
                && l.contains(&name)
                && l.ends_with(" sent")
        })
        .collect()
}

/// Waits for the deploy to reach `power-on` (its files staged in the
/// served root by then), then deletes `file` from the node's directory
/// under `root`: petitboot fetches it only 10-30 s after power-on.
fn delete_when_powered_on(
    deploy: &support::petitboot_rig::RigProcess<'_>,
    root: &Path,
    file: &str,
) {
    let path = root.join(uuid()).join(file);
    poll_until(
        "the deploy reaching power-on with its files staged",
        Duration::from_secs(120),
        || {
            let out = deploy.stdout_so_far();
            (out.contains(&format!("{NODE}: deploying › power-on")) && path.is_file()).then_some(())
        },
        || {
            format!(
                "deploy stdout:\n{}\nstderr:\n{}\nstaged: {} exists: {}",
                deploy.stdout_so_far(),
                deploy.stderr_so_far(),
                path.display(),
                path.exists()
            )
        },
    );
    fs::remove_file(&path).unwrap_or_else(|e| panic!("delete {}: {e}", path.display()));
}

/// `petitlab serve` answered pb1's request for `file` with a 404.
fn assert_served_404(rig: &Rig, file: &str) {
    let served = rig.serve_log();
    let request = format!(" {NODE} \"GET /{}/{file}\" 404 ", uuid());
    assert!(
        served.lines().any(|l| l.contains(&request)),
        "petitlab serve logged no 404 for {file} to {NODE}:\n{served}"
    );
}

/// A failed deploy: exit status, printed reason, store state and reason,
/// history, and that the console really showed `quote`.
fn assert_deploy_failed_quoting(rig: &Rig, out: &Output, quote: &str) {
    let stdout = text(&out.stdout);
    assert!(
        !out.status.success(),
        "the deploy succeeded without the file:\n{}",
        show(out)
    );
    let failed = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{NODE}: deploy FAILED: ")))
        .unwrap_or_else(|| panic!("no `deploy FAILED` line:\n{}", show(out)));
    assert!(
        failed.contains(quote),
        "the printed reason does not quote petitboot's {quote:?}: {failed}\n{}",
        show(out)
    );
    let node = status(rig);
    assert_eq!(node["state"], "deploy-failed", "status: {node}");
    let reason = node["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(quote),
        "the stored reason does not quote {quote:?}: {node}"
    );
    // petitboot idles after such a failure: the deploy fails waiting for an
    // agent that never comes.
    assert!(
        reason.starts_with("wait-callback: "),
        "the deploy failed in another step: {node}"
    );
    let events = history(rig);
    assert!(
        events
            .iter()
            .any(|e| e["detail"].as_str().is_some_and(|d| d.contains(quote))
                && e["result"]
                    .as_str()
                    .is_some_and(|r| r.contains("deploy-failed"))),
        "no deploy-failed event quoting {quote:?} in the history:\n{}",
        serde_json::to_string_pretty(&events).unwrap()
    );
    let console = text(&rig.guest_output());
    assert!(
        console.contains(quote),
        "the guest never printed {quote:?}; its console:\n{}",
        rig.guest_tail(6000)
    );
}

#[test]
fn netboot_tftp_node_deploys_and_netboots_its_instance_every_time() {
    let t0 = Instant::now();
    let rig = Rig::start(
        RigOptions::new(Arch::X86_64)
            .boot_option(BootOption::Netboot)
            .protocol(Protocol::Tftp),
    );
    let uuid = uuid();
    let server = rig.server_ip();

    let out = rig
        .spawn_petitlab(&["deploy", NODE])
        .wait_timeout(DEPLOY_WAIT);
    assert!(out.status.success(), "deploy: {}", show(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("{NODE}: deploy done: {NODE} is active")),
        "deploy: {}",
        show(&out)
    );
    let deployed = t0.elapsed();
    let node = status(&rig);
    assert_eq!(node["state"], "active", "status after the deploy: {node}");
    assert!(node["reason"].is_null(), "status after the deploy: {node}");

    // petitboot fetched the deploy config, kernel and ramdisk over TFTP,
    // then (after the reboot) the instance's.
    let base = format!("tftp://{server}/{uuid}");
    for line in [
        format!("Requesting config {base}/config"),
        format!("Loaded kernel image from {base}/deploy_kernel"),
        format!("Loaded initrd from {base}/deploy_ramdisk"),
        format!("Loaded kernel image from {base}/kernel"),
        format!("Loaded initrd from {base}/ramdisk"),
    ] {
        rig.wait_guest(&line, Duration::from_secs(1));
    }
    // (Only the agent talks HTTP, to petitlab's API.)
    let console = text(&rig.guest_output());
    let fetched_over_http: Vec<&str> = console
        .lines()
        .filter(|l| {
            l.contains("http://")
                && ["pxeconffile", "Requesting config", "Loaded ", "load "]
                    .iter()
                    .any(|w| l.contains(w))
        })
        .collect();
    assert!(
        fetched_over_http.is_empty(),
        "petitboot fetched something over HTTP for a TFTP node:\n{}",
        fetched_over_http.join("\n")
    );
    let served = rig.serve_log();
    for file in [
        "config",
        "deploy_kernel",
        "deploy_ramdisk",
        "kernel",
        "ramdisk",
    ] {
        assert!(
            !tftp_sent(&served, file).is_empty(),
            "petitlab serve logged no TFTP transfer of {file} to {NODE}:\n{served}"
        );
    }
    let configs_before = tftp_sent(&served, "config").len();
    assert!(
        configs_before >= 2,
        "the deploy config and the instance config make two fetches:\n{served}"
    );

    // The agent wrote the partition image at the start of the disk.
    let part = fs::read(&rig.artifacts().instance_part_img).expect("read instance-part.img");
    let mut head = vec![0u8; part.len()];
    fs::File::open(rig.disk_path())
        .and_then(|mut f| f.read_exact(&mut head))
        .expect("read the disk's first bytes");
    assert_eq!(
        sha256_hex(&head),
        sha256_hex(&part),
        "the disk's first {} bytes are not instance-part.img",
        part.len()
    );

    let boots = rig.guest_boots();
    assert_eq!(
        boots.len(),
        2,
        "a deploy is two boots (deploy ramdisk, instance): {boots:?}"
    );
    let first = rig.wait_guest_from(
        boots[1].0,
        "petitlab-instance: booted from netboot",
        Duration::from_secs(1),
    );
    assert!(
        !console.contains("petitlab-instance: booted from disk"),
        "a netboot node booted its disk"
    );

    // Every boot netboots: a power cycle brings the instance back over TFTP.
    let t1 = Instant::now();
    let serve_len = rig.serve_log().len();
    let cycle = rig.petitlab_ok(&["power", NODE, "cycle"]);
    let third = poll_until(
        "a new QEMU after the power cycle",
        Duration::from_secs(60),
        || rig.guest_boots().get(2).map(|b| b.0),
        || {
            format!(
                "power cycle said: {cycle}\nchassis: {:?}",
                rig.chassis_sets()
            )
        },
    );
    assert!(third >= first, "the third boot begins after the second");
    let booted = rig.wait_guest_from(third, "petitlab-instance: booted from netboot", BOOT_WAIT);
    rig.wait_guest_from(booted, "petitlab-instance login: ", Duration::from_secs(60));
    let again = t1.elapsed();
    for line in [
        format!("Requesting config {base}/config"),
        format!("Loaded kernel image from {base}/kernel"),
        format!("Loaded initrd from {base}/ramdisk"),
    ] {
        rig.wait_guest_from(third, &line, Duration::from_secs(1));
    }
    let served = rig.serve_log();
    let fresh = &served[serve_len..];
    for file in ["config", "kernel", "ramdisk"] {
        assert!(
            !tftp_sent(fresh, file).is_empty(),
            "no TFTP fetch of {file} by {NODE} after the power cycle:\n{fresh}"
        );
    }
    assert!(
        tftp_sent(fresh, "deploy_kernel").is_empty(),
        "the deploy kernel again after the deploy:\n{fresh}"
    );
    let netboots = text(&rig.guest_output())
        .matches("petitlab-instance: booted from netboot")
        .count();
    assert_eq!(netboots, 2, "two instance boots, both netboots");
    assert_eq!(status(&rig)["state"], "active");
    eprintln!(
        "netboot over TFTP: deploy to active {:.1} s, power cycle to the instance's login {:.1} s, test {:.1} s",
        deployed.as_secs_f64(),
        again.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

/// A rig whose deploys give up on the callback sooner. petitboot prints
/// its failure and then idles, but a deploy fails only when its callback
/// limit runs out, quoting the last failure the console showed: the limit
/// is the test's length. The failure came 16-26 s after power-on with two
/// of these guests at once on two cores; 75 s leaves room for a slower
/// machine.
fn failing_rig() -> Rig {
    let mut opts = RigOptions::new(Arch::X86_64);
    opts.deploy.callback = 75;
    Rig::start(opts)
}

#[test]
fn a_missing_kernel_fails_the_deploy_quoting_petitboot() {
    let t0 = Instant::now();
    let rig = failing_rig();
    let root = rig.state_dir().join("http");
    let deploy = rig.spawn_petitlab(&["deploy", NODE]);
    delete_when_powered_on(&deploy, &root, "deploy_kernel");
    let out = deploy.wait_timeout(DEPLOY_WAIT);
    let quote = "Couldn't load kernel image";
    assert_deploy_failed_quoting(&rig, &out, quote);
    let url = format!("{}{}/deploy_kernel", rig.http_base(), uuid());
    assert!(
        text(&rig.guest_output()).contains(&format!("{quote} from {url}")),
        "petitboot names the URL it could not load:\n{}",
        rig.guest_tail(6000)
    );
    assert_served_404(&rig, "deploy_kernel");
    eprintln!(
        "missing kernel: deploy failed after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn a_missing_config_fails_the_deploy_quoting_petitboot() {
    let t0 = Instant::now();
    let rig = failing_rig();
    let root = rig.state_dir().join("http");
    let deploy = rig.spawn_petitlab(&["deploy", NODE]);
    delete_when_powered_on(&deploy, &root, "config");
    let out = deploy.wait_timeout(DEPLOY_WAIT);
    let quote = "Failed to download";
    assert_deploy_failed_quoting(&rig, &out, quote);
    let url = format!("{}{}/config", rig.http_base(), uuid());
    assert!(
        text(&rig.guest_output()).contains(&format!("{quote} {url}")),
        "petitboot names the config URL it could not download:\n{}",
        rig.guest_tail(6000)
    );
    assert_served_404(&rig, "config");
    assert!(
        !text(&rig.guest_output()).contains("Performing kexec reboot"),
        "petitboot booted something without its config:\n{}",
        rig.guest_tail(6000)
    );
    eprintln!(
        "missing config: deploy failed after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// `petitlab console pb1` with a pipe for stdout and its stdin held open
/// (end of input would end the session); killed by pid when dropped.
struct ConsoleClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

impl ConsoleClient {
    fn start(rig: &Rig) -> ConsoleClient {
        let mut child = rig
            .petitlab_command(&["console", NODE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start petitlab console");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        ConsoleClient {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
        }
    }

    fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        text(&self.stderr.lock().unwrap())
    }

    /// Ends its input, which ends the session as `~.` does without typing
    /// anything at the guest (whose tty would echo a keystroke, completing
    /// a line the client never saw); waits for the exit.
    fn quit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let stderr = self.stderr.clone();
        let child = &mut self.child;
        let status = poll_until(
            "petitlab console exiting at the end of its input",
            timeout,
            || child.try_wait().ok().flatten(),
            || format!("its stderr:\n{}", text(&stderr.lock().unwrap())),
        );
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        status
    }
}

impl Drop for ConsoleClient {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // Child::kill signals exactly this pid.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CRLF → LF; nothing else changes.
fn normalise(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The complete (newline-terminated) lines of `bytes`, CRLF normalised.
fn complete_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let norm = normalise(bytes);
    let mut lines: Vec<Vec<u8>> = norm.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    // The last piece has no newline after it: not a complete line.
    lines.pop();
    lines
}

/// Every complete line the guest printed (`boots`: the relay's copy cut
/// at each QEMU's first byte, so that a boot's unfinished last line is not
/// glued to the next boot's first) must appear in `client`'s output, in
/// order. A boot's first line may follow the previous boot's unfinished
/// one (a login prompt) on the client's line: it then ends that line.
/// Returns how many lines were compared, or the first one missing with
/// context.
fn lines_in_order(boots: &[&[u8]], client: &[u8]) -> Result<usize, String> {
    let have = complete_lines(client);
    let mut at = 0;
    let mut compared = 0;
    for (b, boot) in boots.iter().enumerate() {
        for (i, line) in complete_lines(boot).iter().enumerate() {
            let found = have[at..]
                .iter()
                .position(|h| h == line || (i == 0 && h.ends_with(line)));
            match found {
                Some(k) => at += k + 1,
                None => {
                    let show = |l: &[u8]| format!("{:?}", text(l));
                    let near: Vec<String> = have[at.saturating_sub(3)..(at + 5).min(have.len())]
                        .iter()
                        .map(|l| show(l))
                        .collect();
                    return Err(format!(
                        "guest line {} of boot {b} missing from the console client's output \
                         after its line {at} ({compared} lines matched before):\n  {}\n\
                         the client's lines around there:\n  {}",
                        i + 1,
                        show(line),
                        near.join("\n  ")
                    ));
                }
            }
            compared += 1;
        }
    }
    Ok(compared)
}

#[test]
fn console_follows_the_guest_across_a_power_cycle_and_a_kexec() {
    let t0 = Instant::now();
    let mut opts = RigOptions::new(Arch::X86_64);
    opts.disk_from = Some(artifacts::ensure(Arch::X86_64).instance_img);
    let rig = Rig::start(opts);

    let mut client = ConsoleClient::start(&rig);
    poll_until(
        "petitlab console attached",
        Duration::from_secs(30),
        || {
            client
                .stderr()
                // Through the rig's lab service, which holds the SOL session.
                .contains(&format!("console of {NODE} from the lab service"))
                .then_some(())
        },
        || format!("its stderr:\n{}", client.stderr()),
    );
    let attached = rig.guest_len();
    assert_eq!(attached, 0, "the guest printed before it was powered on");

    rig.petitlab_ok(&["power", NODE, "on"]);
    // No config for the node (404): petitboot boots the disk's kboot.conf
    // after its countdown, kexecing the instance.
    let first = rig.wait_guest("petitlab-instance: booted from disk", BOOT_WAIT);
    rig.wait_guest_from(first, "petitlab-instance login: ", Duration::from_secs(60));
    let t1 = Instant::now();
    rig.petitlab_ok(&["power", NODE, "cycle"]);
    let second = poll_until(
        "a new QEMU after the power cycle",
        Duration::from_secs(60),
        || rig.guest_boots().get(1).map(|b| b.0),
        || format!("chassis: {:?}", rig.chassis_sets()),
    );
    let booted = rig.wait_guest_from(second, "petitlab-instance: booted from disk", BOOT_WAIT);
    rig.wait_guest_from(booted, "petitlab-instance login: ", Duration::from_secs(60));
    let cycled = t1.elapsed();
    // The client shows the second prompt a moment later (SOL's pace).
    let prompts = |c: &ConsoleClient| {
        text(&c.stdout())
            .matches("petitlab-instance login: ")
            .count()
    };
    poll_until(
        "the console client showing the second login prompt",
        Duration::from_secs(30),
        || (prompts(&client) >= 2).then_some(()),
        || {
            format!(
                "client stdout, last 3000 bytes:\n{}\nstderr:\n{}",
                tail(&text(&client.stdout()), 3000),
                client.stderr()
            )
        },
    );
    // What the guest printed until now: the client has shown its last
    // line, the second prompt.
    let guest = rig.guest_output();
    let boots = rig.guest_boots();
    let status = client.quit(Duration::from_secs(30));
    let got = client.stdout();
    let stderr = client.stderr();
    assert!(status.success(), "petitlab console: {status}\n{stderr}");
    assert_eq!(
        rig.guest_len(),
        guest.len(),
        "the guest printed more after the second prompt: {:?}",
        rig.guest_tail(500)
    );
    assert_eq!(boots.len(), 2, "two QEMUs: {boots:?}");
    let mut pieces: Vec<&[u8]> = Vec::new();
    for (i, (start, _)) in boots.iter().enumerate() {
        let end = boots.get(i + 1).map_or(guest.len(), |b| b.0);
        pieces.push(&guest[(*start).max(attached)..end]);
    }
    for (i, piece) in pieces.iter().enumerate() {
        assert!(
            text(piece).contains("Performing kexec reboot"),
            "boot {i}: petitboot kexecs the instance"
        );
    }
    match lines_in_order(&pieces, &got) {
        Ok(n) => eprintln!(
            "console: all {n} complete guest lines ({} bytes) appear in petitlab console's output ({} bytes{}), in order",
            guest.len() - attached,
            got.len(),
            if got == guest[attached..] {
                ", the very same bytes"
            } else {
                ""
            }
        ),
        Err(missing) => panic!(
            "{missing}\n--- petitlab console stderr ---\n{stderr}\n\
             relay: {} guest bytes dropped towards the BMC\n\
             --- ipmi_sim log ---\n{}",
            rig.sol_bytes_dropped(),
            tail(&rig.ipmi_sim_log(), 3000)
        ),
    }
    eprintln!(
        "console across a power cycle: power cycle to the second login {:.1} s, test {:.1} s",
        cycled.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
