//! petitlab's reading of dnsmasq's DHCP log against a real dnsmasq
//! (Debian's dnsmasq-base) writing `--log-dhcp --log-facility=FILE`, and a
//! real client (busybox udhcpc asking for 209 and 210, as petitboot does),
//! across a veth pair between two network namespaces this test creates and
//! removes. The log is followed with `timeline::follow` as it grows and
//! parsed with `timeline::dnsmasq_log`. Needs root (ip netns); fails, never
//! skips, when it cannot set up its peers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use petitlab::timeline::dnsmasq_log::Parser;
use petitlab::timeline::{DhcpMessage, follow};
use tokio::sync::mpsc;

const SERVER_IP: &str = "10.204.0.1";
const OPT_209: &str = "http://10.204.0.1:8080/n1/config";
const OPT_210: &str = "http://10.204.0.1:8080/";

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn require_tool(name: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is not installed: apt-get install {package} (scripts/test does this)"
    );
}

/// Two namespaces joined by a veth pair, and the dnsmasq serving one end;
/// all removed on drop (dnsmasq killed by its PID).
struct Net {
    server_ns: String,
    client_ns: String,
    server_if: String,
    client_if: String,
    dnsmasq: Option<Child>,
    work: PathBuf,
}

impl Net {
    fn new(work: &Path, client_mac: &str) -> Net {
        require_tool("ip", "iproute2");
        require_tool("dnsmasq", "dnsmasq-base");
        require_tool("busybox", "busybox");
        // Unique per process and per test (the tests of one process run at once).
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let net = Net {
            server_ns: format!("pldqs{id}"),
            client_ns: format!("pldqc{id}"),
            server_if: format!("dqs{id}"),
            client_if: format!("dqc{id}"),
            dnsmasq: None,
            work: work.to_path_buf(),
        };
        let probe = Command::new("ip")
            .args(["netns", "add", &net.server_ns])
            .output()
            .expect("cannot run ip (iproute2)");
        assert!(
            probe.status.success(),
            "cannot create a network namespace (this test needs root): {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        let (s, c) = (&net.server_ns, &net.client_ns);
        let (sif, cif) = (&net.server_if, &net.client_if);
        run(Command::new("ip").args(["netns", "add", c]));
        run(Command::new("ip").args(["link", "add", sif, "type", "veth", "peer", "name", cif]));
        run(Command::new("ip").args(["link", "set", sif, "netns", s]));
        run(Command::new("ip").args(["link", "set", cif, "netns", c]));
        let addr = format!("{SERVER_IP}/24");
        run(Command::new("ip").args(["-n", s, "addr", "add", &addr, "dev", sif]));
        run(Command::new("ip").args(["-n", c, "link", "set", cif, "address", client_mac]));
        for (ns, dev) in [(s, "lo"), (c, "lo"), (s, sif.as_str()), (c, cif.as_str())] {
            run(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
        }
        net
    }

    fn log(&self) -> PathBuf {
        self.work.join("dnsmasq.log")
    }

    fn log_text(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Starts dnsmasq writing its DHCP log to `self.log()`; returns once it
    /// serves port 67 and has read `files`.
    fn start_dnsmasq(&mut self, hostsdir: &Path, optsdir: &Path, files: &[PathBuf]) {
        let stderr = fs::File::create(self.work.join("dnsmasq.stderr")).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.server_ns, "dnsmasq", "-k"])
            .args(["--conf-file=/dev/null", "--port=0", "--bind-interfaces"])
            .args(["--no-ping", "--log-dhcp"])
            .arg(format!("--interface={}", self.server_if))
            .arg("--dhcp-range=10.204.0.50,10.204.0.99,1h")
            .arg(format!("--dhcp-hostsdir={}", hostsdir.display()))
            .arg(format!("--dhcp-optsdir={}", optsdir.display()))
            .arg(format!("--log-facility={}", self.log().display()))
            .arg(format!(
                "--dhcp-leasefile={}",
                self.work.join("leases").display()
            ))
            .arg(format!("--pid-file={}", self.work.join("pid").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // `ip netns exec` execs dnsmasq (-k: in the foreground), so this
        // child's PID is dnsmasq's.
        self.dnsmasq = Some(cmd.spawn().expect("cannot start dnsmasq"));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ss = run(Command::new("ip").args(["netns", "exec", &self.server_ns, "ss", "-uln"]));
            let log = self.log_text();
            let read_all = files
                .iter()
                .all(|f| log.contains(&format!("read {}", f.display())));
            if String::from_utf8_lossy(&ss.stdout).contains(":67 ") && read_all {
                return;
            }
            if let Some(status) = self.dnsmasq.as_mut().unwrap().try_wait().unwrap() {
                let err = fs::read_to_string(self.work.join("dnsmasq.stderr")).unwrap_or_default();
                panic!("dnsmasq exited ({status}) before serving DHCP:\n{err}\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not serve port 67 and read {files:?} within 5 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One DHCP exchange by busybox udhcpc; panics when it gets no lease.
    fn dhcp(&self) {
        let out = Command::new("timeout")
            .args(["20", "ip", "netns", "exec", &self.client_ns])
            .args(["busybox", "udhcpc", "-i", &self.client_if, "-n", "-q", "-f"])
            .args([
                "-t",
                "5",
                "-T",
                "1",
                "-O",
                "209",
                "-O",
                "210",
                "-s",
                "/bin/true",
            ])
            .output()
            .expect("cannot run busybox udhcpc");
        assert!(
            out.status.success(),
            "udhcpc got no lease ({}): {}{}\ndnsmasq log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut child) = self.dnsmasq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The messages parsed from the followed log until `done` holds for them.
/// A batch is flushed once no line came for a while (several polls), so a
/// reply is never closed between two reads of its option lines.
async fn messages_until(
    rx: &mut mpsc::Receiver<String>,
    net: &Net,
    done: impl Fn(&[DhcpMessage]) -> bool,
) -> Vec<DhcpMessage> {
    let mut parser = Parser::new();
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let quiet = tokio::time::Instant::now() + Duration::from_millis(300);
        match tokio::time::timeout_at(quiet.min(deadline), rx.recv()).await {
            Ok(Some(line)) => messages.extend(parser.line(&line)),
            Ok(None) => panic!("the follower ended"),
            Err(_) => {
                messages.extend(parser.flush());
                if done(&messages) {
                    return messages;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the followed log never gave what was expected; parsed {messages:#?}\nlog:\n{}",
                    net.log_text()
                );
            }
        }
    }
}

fn find<'a>(messages: &'a [DhcpMessage], kind: &str, mac: &str) -> Option<&'a DhcpMessage> {
    messages.iter().find(|m| m.message == kind && m.mac == mac)
}

struct Dirs {
    _tmp: tempfile::TempDir,
    work: PathBuf,
    hostsdir: PathBuf,
    optsdir: PathBuf,
    opts_file: PathBuf,
}

/// A hostsdir (empty) and an optsdir sending 209/210 to tag pl-n1, as
/// petitlab writes them.
fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().to_path_buf();
    let hostsdir = work.join("hosts");
    let optsdir = work.join("opts");
    fs::create_dir_all(&hostsdir).unwrap();
    fs::create_dir_all(&optsdir).unwrap();
    let opts_file = optsdir.join("n1");
    fs::write(
        &opts_file,
        format!("tag:pl-n1,209,\"{OPT_209}\"\ntag:pl-n1,210,\"{OPT_210}\"\n"),
    )
    .unwrap();
    Dirs {
        _tmp: tmp,
        work,
        hostsdir,
        optsdir,
        opts_file,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_followed_log_shows_the_exchange_and_the_boot_options_sent() {
    const MAC: &str = "52:54:00:dd:00:01";
    let d = dirs();
    let hosts_file = d.hostsdir.join("n1");
    fs::write(&hosts_file, format!("{MAC},set:pl-n1\n")).unwrap();
    let mut net = Net::new(&d.work, MAC);
    net.start_dnsmasq(&d.hostsdir, &d.optsdir, &[hosts_file, d.opts_file.clone()]);

    // From the log's end, as petitlab follows a dnsmasq already running.
    let (tx, mut rx) = mpsc::channel(64);
    let follower = follow::spawn(net.log(), Duration::from_millis(50), tx);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let net = tokio::task::spawn_blocking(move || {
        net.dhcp();
        net
    })
    .await
    .unwrap();

    let messages = messages_until(&mut rx, &net, |m| find(m, "ACK", MAC).is_some()).await;
    for kind in ["DISCOVER", "OFFER", "REQUEST", "ACK"] {
        let m = find(&messages, kind, MAC)
            .unwrap_or_else(|| panic!("no {kind} for {MAC} in {messages:#?}"));
        assert_eq!(m.interface, net.server_if, "{m:?}");
    }
    let offer = find(&messages, "OFFER", MAC).unwrap();
    let ack = find(&messages, "ACK", MAC).unwrap();
    assert_eq!(offer.ip, ack.ip);
    assert!(
        ack.ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.204.0.")),
        "{ack:?}"
    );
    for (code, want) in [(209, OPT_209), (210, OPT_210)] {
        for m in [offer, ack] {
            let o = m
                .option(code)
                .unwrap_or_else(|| panic!("{} has no option {code}: {m:#?}", m.message));
            assert_eq!(o.size, want.len(), "{o:?}");
            assert!(
                !o.value.is_empty() && want.starts_with(&o.value),
                "{o:?} vs {want:?}"
            );
            assert_eq!(o.truncated, want.len() > 14, "{o:?}");
        }
    }
    assert_eq!(
        ack.option(53).map(|o| o.value.as_str()),
        Some("5"),
        "{ack:?}"
    );
    assert_eq!(
        offer.option(53).map(|o| o.value.as_str()),
        Some("2"),
        "{offer:?}"
    );
    assert_eq!(
        ack.option(54).map(|o| o.value.as_str()),
        Some(SERVER_IP),
        "{ack:?}"
    );
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the follower did not end with its channel")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_host_entry_gets_a_lease_without_boot_options() {
    const MAC: &str = "52:54:00:dd:00:02";
    let d = dirs();
    // Another node's entry: this MAC is unknown, so it is not tagged pl-n1.
    let hosts_file = d.hostsdir.join("n1");
    fs::write(&hosts_file, "52:54:00:dd:00:99,set:pl-n1\n").unwrap();
    let mut net = Net::new(&d.work, MAC);
    net.start_dnsmasq(&d.hostsdir, &d.optsdir, &[hosts_file, d.opts_file.clone()]);

    let (tx, mut rx) = mpsc::channel(64);
    let _follower = follow::spawn(net.log(), Duration::from_millis(50), tx);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let net = tokio::task::spawn_blocking(move || {
        net.dhcp();
        net
    })
    .await
    .unwrap();

    let messages = messages_until(&mut rx, &net, |m| find(m, "ACK", MAC).is_some()).await;
    let ack = find(&messages, "ACK", MAC).unwrap();
    assert!(
        ack.ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.204.0.")),
        "{ack:?}"
    );
    assert_eq!(
        ack.option(53).map(|o| o.value.as_str()),
        Some("5"),
        "{ack:?}"
    );
    // The options were read through the router, logged just before 209/210.
    assert!(ack.option(3).is_some(), "{ack:#?}");
    assert!(
        ack.option(209).is_none(),
        "209 sent to an unknown node: {ack:#?}"
    );
    assert!(
        ack.option(210).is_none(),
        "210 sent to an unknown node: {ack:#?}"
    );
}
