//! agent/init's network bring-up as a deploy ramdisk runs it: the ramdisk
//! is built the way docs/deploy-ramdisk.md says (a busybox base ramdisk, then
//! agent/add-to-initramfs.sh), unpacked, and its /init run in it with
//! `chroot`, in a network namespace this test creates (root needed; it
//! fails, never skips, without one), against a real dnsmasq (Debian's
//! dnsmasq-base) with busybox's real udhcpc and, as on Debian, no udhcpc
//! default script in the ramdisk. tests/agent_init_modules.rs has its
//! module loading.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use support::ramdisk::{ramdisk, run, run_init, text};

const SUBNET: &str = "10.213.0";
const NODE_MAC: &str = "52:54:00:21:30:01";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A server and a client namespace joined by a veth pair; removed (with
/// dnsmasq) on drop.
struct Net {
    server_ns: String,
    client_ns: String,
    server_if: String,
    client_if: String,
    dnsmasq: Option<Child>,
}

impl Net {
    fn new() -> Net {
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let net = Net {
            server_ns: format!("pirs{id}"),
            client_ns: format!("pirc{id}"),
            server_if: format!("pis{id}"),
            client_if: format!("pic{id}"),
            dnsmasq: None,
        };
        let probe = Command::new("ip")
            .args(["netns", "add", &net.server_ns])
            .output()
            .expect("ip (iproute2) must be installed");
        assert!(
            probe.status.success(),
            "cannot create a network namespace (this test needs root): {}",
            text(&probe)
        );
        let (s, c) = (&net.server_ns, &net.client_ns);
        let (sif, cif) = (&net.server_if, &net.client_if);
        run(Command::new("ip").args(["netns", "add", c]));
        run(Command::new("ip").args(["link", "add", sif, "type", "veth", "peer", "name", cif]));
        run(Command::new("ip").args(["link", "set", sif, "netns", s]));
        run(Command::new("ip").args(["link", "set", cif, "netns", c]));
        let server_ip = format!("{SUBNET}.1/24");
        run(Command::new("ip").args(["-n", s, "addr", "add", &server_ip, "dev", sif]));
        run(Command::new("ip").args(["-n", c, "link", "set", cif, "address", NODE_MAC]));
        for (ns, dev) in [(s, "lo"), (c, "lo"), (s, sif.as_str())] {
            run(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
        }
        net
    }

    /// dnsmasq leasing SUBNET.50-99 with a router, a name server and a domain.
    fn start_dnsmasq(&mut self, work: &Path) {
        let log = fs::File::create(work.join("dnsmasq.log")).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.server_ns, "dnsmasq", "-d"])
            .args(["--conf-file=/dev/null", "--port=0", "--bind-interfaces"])
            .args(["--no-ping", "--log-dhcp"])
            .arg(format!("--interface={}", self.server_if))
            .arg(format!("--dhcp-range={SUBNET}.50,{SUBNET}.99,1h"))
            .arg(format!("--dhcp-option=option:router,{SUBNET}.1"))
            .arg(format!("--dhcp-option=option:dns-server,{SUBNET}.1"))
            .arg("--dhcp-option=option:domain-name,lab.test")
            .arg(format!(
                "--dhcp-leasefile={}",
                work.join("leases").display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // `ip netns exec` execs dnsmasq, so this child is dnsmasq itself.
        self.dnsmasq = Some(
            cmd.spawn()
                .expect("dnsmasq (dnsmasq-base) must be installed"),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ss = run(Command::new("ip").args(["netns", "exec", &self.server_ns, "ss", "-uln"]));
            if String::from_utf8_lossy(&ss.stdout).contains(":67 ") {
                return;
            }
            if let Some(status) = self.dnsmasq.as_mut().unwrap().try_wait().unwrap() {
                let log = fs::read_to_string(work.join("dnsmasq.log")).unwrap_or_default();
                panic!("dnsmasq exited ({status}) before serving DHCP:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not bind port 67 within 5 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Another NIC on the client, its cable to a port where no DHCP server
    /// answers; returns its name.
    fn add_unserved_nic(&self, k: u32) -> String {
        let suffix = &self.client_if[3..];
        let (far, near) = (format!("piy{suffix}{k}"), format!("pix{suffix}{k}"));
        run(Command::new("ip").args(["link", "add", &far, "type", "veth", "peer", "name", &near]));
        run(Command::new("ip").args(["link", "set", &far, "netns", &self.server_ns]));
        run(Command::new("ip").args(["link", "set", &near, "netns", &self.client_ns]));
        run(Command::new("ip").args(["-n", &self.server_ns, "link", "set", &far, "up"]));
        near
    }

    fn client(&self, args: &[&str]) -> String {
        let out = run(Command::new("ip").args(["-n", &self.client_ns]).args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The IPv4 address/prefix the client's NIC holds, if any.
    fn client_address(&self) -> Option<String> {
        let shown = self.client(&["-4", "-o", "addr", "show", "dev", &self.client_if]);
        let words: Vec<&str> = shown.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "inet")
            .map(|i| words[i + 1].to_string())
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

#[test]
fn the_init_configures_the_leased_address_although_busybox_has_no_default_udhcpc_script() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let (root, _) = ramdisk(work, &[]);
    // Debian's situation: udhcpc's default script is in neither place.
    for script in [
        "etc/udhcpc/default.script",
        "usr/share/udhcpc/default.script",
    ] {
        assert!(!root.join(script).exists(), "{script} is in the ramdisk");
    }
    let mut net = Net::new();
    net.start_dnsmasq(work);
    // Two more NICs whose DHCP goes unanswered (15 s each): they must not
    // stop the one that gets a lease, nor be tried one after the other.
    let unserved = [net.add_unserved_nic(1), net.add_unserved_nic(2)];

    let started = Instant::now();
    let out = run_init(&root, &["ip", "netns", "exec", &net.client_ns], &[]);
    let took = started.elapsed();

    let leases = fs::read_to_string(work.join("leases")).unwrap_or_default();
    let leased = leases
        .lines()
        .find(|l| l.contains(NODE_MAC))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_else(|| panic!("dnsmasq leased nothing to {NODE_MAC}: {leases}\n{out}"))
        .to_string();
    let held = net.client_address();
    assert_eq!(
        held.as_deref(),
        Some(format!("{leased}/24").as_str()),
        "the NIC holds the address dnsmasq leased:\n{out}"
    );
    let up = format!(
        "petitlab-init: {} up: {leased}/24 via udhcpc (MAC {NODE_MAC})",
        net.client_if
    );
    assert!(out.contains(&up), "{up:?} missing:\n{out}");
    let route = net.client(&["route", "show", "default"]);
    assert!(
        route.contains(&format!("default via {SUBNET}.1 dev {}", net.client_if)),
        "{route}"
    );
    let resolv = fs::read_to_string(root.join("etc/resolv.conf")).unwrap_or_default();
    assert!(
        resolv.contains(&format!("nameserver {SUBNET}.1")) && resolv.contains("search lab.test"),
        "{resolv}"
    );
    for nic in &unserved {
        let none = format!("petitlab-init: {nic}: no IPv4 address after DHCP");
        assert!(out.contains(&none), "{none:?} missing:\n{out}");
    }
    assert!(
        took < Duration::from_secs(28),
        "DHCP on the NICs ran one after the other: {took:?}\n{out}"
    );
    // The agent runs once the network is up (here it stops at once: this
    // kernel's command line has no petitlab.api=).
    let agent = out
        .find("petitlab-agent:")
        .unwrap_or_else(|| panic!("the agent did not run:\n{out}"));
    assert!(out.find(&up).unwrap() < agent, "{out}");
}

#[test]
fn the_init_stops_loudly_and_runs_no_agent_when_no_address_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = ramdisk(dir.path(), &[]);
    let net = Net::new(); // no DHCP server answers

    let out = run_init(&root, &["ip", "netns", "exec", &net.client_ns], &[]);

    assert_eq!(net.client_address(), None, "{out}");
    let nic = format!(
        "petitlab-init: {}: no IPv4 address after DHCP (MAC {NODE_MAC})",
        net.client_if
    );
    for line in [
        nic.as_str(),
        "petitlab-init: no network interface got an IPv4 address",
        "petitlab-init: no network: the agent cannot reach petitlab; dropping to a shell",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    assert!(
        !out.contains("configured") && !out.contains(" up: "),
        "{out}"
    );
    assert!(
        !out.contains("petitlab-agent:"),
        "the agent ran without a network:\n{out}"
    );
}
