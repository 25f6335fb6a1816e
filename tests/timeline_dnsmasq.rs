//! Issue 19's acceptance test: a boot's timeline as `petitlab serve` records
//! it from real peers. A real dnsmasq (Debian's dnsmasq-base) serves the
//! 209/210 options petitlab wrote and logs with `--log-dhcp
//! --log-facility=FILE`, which the service follows; a real DHCP client
//! (busybox udhcpc asking for 209 and 210, as petitboot does) gets a lease
//! and then fetches the config and the kernel it names from the service's
//! HTTP server (busybox wget), across a veth pair between two network
//! namespaces this test creates and removes. `petitlab why --json` must
//! then show the ACK with 209/210 as dnsmasq logged them, then the config
//! and kernel fetches. Needs root (ip netns); fails, never skips, when it
//! cannot set up its peers.

mod support;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::netns::{NetPair, exec_in, run};

const SERVER_IP: &str = "10.206.0.1";
const NODE: &str = "n1";
const NODE_MAC: &str = "52:54:00:20:60:01";
/// The deploy kernel petitlab stages: big enough to take a few TCP segments.
const KERNEL_SIZE: usize = 300_000;

/// `petitlab --lab LAB serve` in the server namespace, killed with `net`;
/// returns its output so far, collected as it comes (for failure messages).
fn start_serve(net: &mut NetPair, lab: &Path) -> Arc<Mutex<String>> {
    let mut child = exec_in(&net.server_ns, env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(lab)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start petitlab serve");
    let output = Arc::new(Mutex::new(String::new()));
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut out = output.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        });
    }
    net.adopt(child);
    let shown = output.clone();
    let diag = move || shown.lock().unwrap().clone();
    net.wait_listening("-ltn", "8080", "petitlab serve's HTTP", &diag);
    let socket = lab.parent().unwrap().join("petitlab.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !output.lock().unwrap().contains("running") {
        assert!(
            Instant::now() < deadline,
            "petitlab serve did not start its service on {}:\n{}",
            socket.display(),
            diag()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    output
}

/// GET `url` from the client namespace with busybox wget; the body.
fn fetch(net: &NetPair, url: &str, work: &Path) -> Vec<u8> {
    let out_file = work.join("fetched");
    let _ = fs::remove_file(&out_file);
    run(Command::new("timeout")
        .args(["10", "ip", "netns", "exec", &net.client_ns])
        .args(["busybox", "wget", "-q", "-O"])
        .arg(&out_file)
        .arg(url));
    fs::read(&out_file).unwrap()
}

fn petitlab(lab: &Path, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(lab)
        .args(args))
}

struct Lab {
    lab: PathBuf,
    hostsdir: PathBuf,
    optsdir: PathBuf,
    log: PathBuf,
    kernel: Vec<u8>,
}

fn write_lab(dir: &Path) -> Lab {
    // Not all one byte: a short or shifted body would not compare equal.
    let kernel: Vec<u8> = (0..KERNEL_SIZE).map(|i| (i % 251) as u8).collect();
    fs::write(dir.join("vmlinux"), &kernel).unwrap();
    fs::write(dir.join("initrd"), "initrd").unwrap();
    fs::write(dir.join("disk.img"), "disk").unwrap();
    fs::write(dir.join("pw"), "pw").unwrap();
    // 0600, as a real password file should be (no warning noise).
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    fs::set_permissions(dir.join("pw"), private).unwrap();
    let lab = Lab {
        lab: dir.join("lab.toml"),
        hostsdir: dir.join("dnsmasq/hosts"),
        optsdir: dir.join("dnsmasq/opts"),
        log: dir.join("dnsmasq.log"),
        kernel,
    };
    fs::create_dir_all(&lab.hostsdir).unwrap();
    fs::create_dir_all(&lab.optsdir).unwrap();
    fs::write(
        &lab.lab,
        format!(
            r#"state_dir = "state"
[http]
listen = "{SERVER_IP}:8080"
base_url = "http://{SERVER_IP}:8080/"
[tftp]
listen = "{SERVER_IP}:69"
[dhcp]
backend = "dnsmasq"
hostsdir = "{hosts}"
optsdir = "{opts}"
log = "{log}"
[service]
socket = "{socket}"
[[node]]
name = "{NODE}"
macs = ["{NODE_MAC}"]
[node.bmc]
host = "127.0.0.1"
username = "admin"
password_file = "pw"
[node.deploy]
kernel = "vmlinux"
ramdisk = "initrd"
[node.instance]
image = "disk.img"
"#,
            hosts = lab.hostsdir.display(),
            opts = lab.optsdir.display(),
            log = lab.log.display(),
            socket = dir.join("petitlab.sock").display(),
        ),
    )
    .unwrap();
    lab
}

/// The one file petitlab keeps in `dir` for the node.
fn node_file(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one file for {NODE} in {dir:?}: {files:?}");
    files.remove(0)
}

/// The value petitlab gave `code` in its dnsmasq opts file
/// (`tag:T,209,"VALUE"`).
fn opt_value(opts: &str, code: u16) -> String {
    let needle = format!(",{code},\"");
    let line = opts
        .lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no option {code} in petitlab's opts file:\n{opts}"));
    let start = line.find(&needle).unwrap() + needle.len();
    line[start..]
        .strip_suffix('"')
        .unwrap_or_else(|| panic!("unterminated option {code}: {line}"))
        .to_string()
}

/// The first event of `kind` in `events` (from `from` on) that `pick` likes.
fn find(events: &[Value], from: usize, pick: impl Fn(&Value) -> bool) -> Option<usize> {
    events
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, e)| pick(e))
        .map(|(i, _)| i)
}

/// What the timeline must show, checked on `why --json`'s answer; `Err`
/// says what is missing yet.
fn check_timeline(why: &Value, opt: &HashMap<u16, String>, kernel_size: u64) -> Result<(), String> {
    let events = why["boot"]["boot"]["events"]
        .as_array()
        .ok_or("no boot recorded yet")?;
    let ack = find(events, 0, |e| {
        e["kind"] == "dhcp" && e["message"] == "ACK" && e["mac"] == NODE_MAC
    })
    .ok_or("no DHCP ACK for the node's MAC")?;
    for (code, want) in opt {
        let sent = events[ack]["sent"]
            .as_array()
            .and_then(|s| s.iter().find(|o| o["code"] == *code))
            .ok_or(format!("the ACK carries no option {code}"))?;
        let size = sent["size"].as_u64().ok_or("no size")?;
        if size != want.len() as u64 {
            return Err(format!(
                "option {code}: size {size}, petitlab wrote {} bytes ({want:?})",
                want.len()
            ));
        }
        let value = sent["value"].as_str().ok_or("no value")?;
        if value.is_empty() || !want.starts_with(value) {
            return Err(format!(
                "option {code}: value {value:?} is not a prefix of {want:?}"
            ));
        }
        // dnsmasq cuts an option it has no name for after 14 bytes.
        if sent["truncated"] != (value.len() < want.len()) {
            return Err(format!("option {code}: truncated flag wrong in {sent}"));
        }
    }
    let is_fetch = |e: &Value, file: &str| {
        e["kind"] == "fetch" && e["file"] == file && e["proto"] == "http" && e["status"] == 200
    };
    let config = find(events, ack + 1, |e| is_fetch(e, "config"))
        .ok_or("no config fetch (status 200) after the ACK")?;
    let kernel = find(events, config + 1, |e| is_fetch(e, "kernel"))
        .ok_or("no kernel fetch (status 200) after the config fetch")?;
    if events[kernel]["bytes"].as_u64() != Some(kernel_size) {
        return Err(format!(
            "the kernel fetch counts {} bytes, the kernel has {kernel_size}",
            events[kernel]["bytes"]
        ));
    }
    let at = |i: usize| events[i]["at"].as_i64().unwrap_or(i64::MIN);
    if !(at(ack) <= at(config) && at(config) <= at(kernel)) {
        return Err(format!(
            "out of time order: ACK {}, config {}, kernel {}",
            at(ack),
            at(config),
            at(kernel)
        ));
    }
    let reached: Vec<&str> = why["boot"]["milestones"]["reached"]
        .as_array()
        .ok_or("no milestones")?
        .iter()
        .filter_map(|r| r[0].as_str())
        .collect();
    // serde's names for Milestone::{DhcpAck, Config, Kernel}.
    for m in ["dhcp", "config", "kernel"] {
        if !reached.contains(&m) {
            return Err(format!("milestone {m} not reached: {reached:?}"));
        }
    }
    Ok(())
}

/// The whole boot, with dnsmasq started before or after `petitlab serve`
/// (the service follows a log that does not exist yet, or one that does).
fn boot_is_recorded(dnsmasq_first: bool) {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let lab = write_lab(work);
    let mut net = NetPair::new("tl", SERVER_IP, NODE_MAC);

    // petitlab stages the config and kernel and writes dnsmasq's files.
    petitlab(&lab.lab, &["prepare-ramdisk", NODE]);
    let (hosts_file, opts_file) = (node_file(&lab.hostsdir), node_file(&lab.optsdir));
    let opts = fs::read_to_string(&opts_file).unwrap();
    let opt: HashMap<u16, String> = [209, 210].map(|c| (c, opt_value(&opts, c))).into();

    let serve = if dnsmasq_first {
        net.start_dnsmasq(work, &lab.hostsdir, &lab.optsdir, &lab.log);
        start_serve(&mut net, &lab.lab)
    } else {
        let serve = start_serve(&mut net, &lab.lab);
        net.start_dnsmasq(work, &lab.hostsdir, &lab.optsdir, &lab.log);
        serve
    };
    net.wait_for_read(&hosts_file, 1);
    net.wait_for_read(&opts_file, 1);

    // The node boots: DHCP, then at once (as petitboot does) the config
    // the options name and the kernel the config names.
    let lease = net.udhcpc(work);
    let ip = lease
        .get("ip")
        .unwrap_or_else(|| panic!("no ip: {lease:?}"));
    net.add_client_addr(ip);
    let conf = lease
        .get("pxeconffile")
        .unwrap_or_else(|| panic!("no option 209 in the lease: {lease:?}"));
    let prefix = lease
        .get("pxepathprefix")
        .unwrap_or_else(|| panic!("no option 210 in the lease: {lease:?}"));
    assert_eq!(conf, &opt[&209], "209 as the client got it");
    assert_eq!(prefix, &opt[&210], "210 as the client got it");
    // petitboot: a 209 that is a URL stands alone, else it is under 210.
    let config_url = if conf.contains("://") {
        conf.clone()
    } else {
        format!("{prefix}{conf}")
    };
    let config = String::from_utf8(fetch(&net, &config_url, work)).unwrap();
    let kernel_url = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("kernel "))
        .unwrap_or_else(|| panic!("no kernel line in the config:\n{config}"))
        .trim()
        .to_string();
    let kernel = fetch(&net, &kernel_url, work);
    assert!(
        kernel == lab.kernel,
        "the kernel served differs from vmlinux"
    );
    let client_done = started.elapsed();

    // The service's timeline, as `petitlab why --json` shows it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let why = loop {
        let out = petitlab(&lab.lab, &["--json", "why", NODE]);
        let why: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "why --json is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        match check_timeline(&why, &opt, lab.kernel.len() as u64) {
            Ok(()) => break why,
            Err(missing) if Instant::now() > deadline => panic!(
                "after 10 s the timeline still lacks: {missing}\nwhy: {}\n\ndnsmasq log:\n{}\n\npetitlab serve:\n{}",
                serde_json::to_string_pretty(&why).unwrap(),
                fs::read_to_string(&lab.log).unwrap_or_default(),
                serve.lock().unwrap()
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert_eq!(why["node"], NODE);
    // The fetched paths are the node's files, as staged.
    let events = why["boot"]["boot"]["events"].as_array().unwrap();
    let config_path = config_url.split_once(":8080/").unwrap().1;
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "fetch" && e["path"] == config_path),
        "no fetch of {config_path}: {events:?}"
    );
    eprintln!(
        "dnsmasq {}: client done after {client_done:?}, timeline complete after {:?}",
        if dnsmasq_first { "first" } else { "second" },
        started.elapsed()
    );
}

#[test]
fn timeline_has_the_ack_with_209_210_then_config_and_kernel_dnsmasq_started_after_serve() {
    boot_is_recorded(false);
}

#[test]
fn timeline_has_the_ack_with_209_210_then_config_and_kernel_dnsmasq_started_before_serve() {
    boot_is_recorded(true);
}
