//! A real dnsmasq (Debian's dnsmasq-base) serves the options petitlab
//! writes, to a real DHCP client (busybox udhcpc requesting 209/210, as
//! petitboot's does), across a veth pair between two network namespaces this
//! test creates and removes. Needs root (ip netns); it fails, never skips,
//! when it cannot set up its peers.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SERVER_IP: &str = "10.203.0.1";
const NODE_MAC: &str = "52:54:00:20:30:01";
const NODE_IP: &str = "10.203.0.11";

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
        "{name} is not installed: apt-get install {package} (the test command in README.md does this)"
    );
}

/// Two namespaces joined by a veth pair; removed (with dnsmasq) on drop.
struct Net {
    server_ns: String,
    client_ns: String,
    client_if: String,
    server_if: String,
    dnsmasq: Option<Child>,
}

impl Net {
    fn new() -> Net {
        let id = std::process::id() % 100_000;
        let net = Net {
            server_ns: format!("plsrv{id}"),
            client_ns: format!("plcli{id}"),
            server_if: format!("pls{id}"),
            client_if: format!("plc{id}"),
            dnsmasq: None,
        };
        let probe = Command::new("ip")
            .args(["netns", "add", &net.server_ns])
            .output()
            .expect("ip (iproute2) must be installed");
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
        run(Command::new("ip").args([
            "-n",
            s,
            "addr",
            "add",
            &format!("{SERVER_IP}/24"),
            "dev",
            sif,
        ]));
        run(Command::new("ip").args(["-n", c, "link", "set", cif, "address", NODE_MAC]));
        for (ns, dev) in [(s, "lo"), (c, "lo"), (s, sif.as_str()), (c, cif.as_str())] {
            run(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
        }
        net
    }

    fn start_dnsmasq(&mut self, hostsdir: &Path, optsdir: &Path, work: &Path, extra: &[&str]) {
        let log = fs::File::create(work.join("dnsmasq.log")).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.server_ns,
            "dnsmasq",
            "-d",
            "--conf-file=/dev/null",
        ])
        .args(["--port=0", "--bind-interfaces", "--no-ping", "--log-dhcp"])
        .arg(format!("--interface={}", self.server_if))
        .arg("--dhcp-range=10.203.0.50,10.203.0.99,1h")
        .arg(format!("--dhcp-hostsdir={}", hostsdir.display()))
        .arg(format!("--dhcp-optsdir={}", optsdir.display()))
        .arg(format!(
            "--dhcp-leasefile={}",
            work.join("leases").display()
        ))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        // `ip netns exec` execs dnsmasq, so this child is dnsmasq itself.
        self.dnsmasq = Some(cmd.spawn().expect("cannot start dnsmasq"));
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

    /// One DHCP exchange; returns the variables udhcpc handed its script on `bound`.
    fn dhcp(&self, work: &Path) -> HashMap<String, String> {
        let dump = work.join("client.env");
        let _ = fs::remove_file(&dump);
        let script = work.join("dump.sh");
        fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = bound ] && env > \"$DUMP_OUT\"\nexit 0\n",
        )
        .unwrap();
        run(Command::new("chmod").arg("+x").arg(&script));
        let out = Command::new("timeout")
            .args(["20", "ip", "netns", "exec", &self.client_ns, "env", "-i"])
            .arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin")
            .arg(format!("DUMP_OUT={}", dump.display()))
            .args(["busybox", "udhcpc", "-i", &self.client_if, "-n", "-q", "-f"])
            .args(["-t", "5", "-T", "1", "-O", "209", "-O", "210", "-s"])
            .arg(&script)
            .output()
            .expect("cannot run busybox udhcpc");
        let text = fs::read_to_string(&dump).unwrap_or_else(|_| {
            panic!(
                "udhcpc got no lease ({}): {}{}\ndnsmasq log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                fs::read_to_string(work.join("dnsmasq.log")).unwrap_or_default()
            )
        });
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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

fn petitlab(lab: &Path, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(lab)
        .args(args))
}

/// Wait until dnsmasq logs that it (re)read `file` `times` times in all.
fn wait_for_read(work: &Path, file: &Path, times: usize) {
    let needle = format!("read {}", file.display());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = fs::read_to_string(work.join("dnsmasq.log")).unwrap_or_default();
        if log.matches(&needle).count() >= times {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "dnsmasq never logged {needle:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Leased from the dhcp-range (petitlab's host lines carry no address).
fn in_range(vars: &HashMap<String, String>) -> bool {
    let Some(ip) = vars.get("ip") else {
        return false;
    };
    let Some(last) = ip.strip_prefix("10.203.0.") else {
        return false;
    };
    last.parse::<u8>().is_ok_and(|n| (50..=99).contains(&n))
}

fn write_lab(dir: &Path) -> PathBuf {
    for f in ["vmlinux", "initrd", "disk.img"] {
        fs::write(dir.join(f), f).unwrap();
    }
    fs::write(dir.join("pw"), "pw").unwrap();
    // 0600, as a real password file should be (no warning noise).
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    fs::set_permissions(dir.join("pw"), private).unwrap();
    let lab = dir.join("lab.toml");
    fs::write(
        &lab,
        format!(
            r#"state_dir = "state"
[http]
base_url = "http://{SERVER_IP}:8080/"
[dhcp]
backend = "dnsmasq"
[[node]]
name = "node1"
macs = ["{NODE_MAC}"]
ipv4 = "{NODE_IP}"
[node.bmc]
host = "127.0.0.1"
username = "admin"
password_file = "pw"
[node.deploy]
kernel = "vmlinux"
ramdisk = "initrd"
[node.instance]
image = "disk.img"
"#
        ),
    )
    .unwrap();
    lab
}

#[test]
fn dnsmasq_offers_exactly_the_options_petitlab_wrote_and_stops_after_clean_up() {
    require_tool("dnsmasq", "dnsmasq-base");
    require_tool("busybox", "busybox");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let lab = write_lab(work);
    let hostsdir = work.join("state/dnsmasq/hosts");
    let optsdir = work.join("state/dnsmasq/opts");
    fs::create_dir_all(&hostsdir).unwrap();
    fs::create_dir_all(&optsdir).unwrap();

    let mut net = Net::new();
    net.start_dnsmasq(&hostsdir, &optsdir, work, &[]);

    // Before prepare: a plain lease, no petitboot options.
    let before = net.dhcp(work);
    assert!(in_range(&before), "{before:?}");
    assert!(!before.contains_key("pxeconffile"), "{before:?}");

    petitlab(&lab, &["prepare-ramdisk", "node1"]);
    let render = petitlab(&lab, &["--json", "render", "node1"]);
    let render: serde_json::Value = serde_json::from_slice(&render.stdout).unwrap();
    let want_209 = render["rendered"]["dhcp"]["conf_file"].as_str().unwrap();
    let want_210 = render["rendered"]["dhcp"]["path_prefix"].as_str().unwrap();
    let node_file = |dir: &Path| {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files.remove(0)
    };
    let (hosts_file, opts_file) = (node_file(&hostsdir), node_file(&optsdir));
    wait_for_read(work, &hosts_file, 1);
    wait_for_read(work, &opts_file, 1);

    let offer = net.dhcp(work);
    // busybox names options 209/210 pxeconffile/pxepathprefix.
    assert_eq!(
        offer.get("pxeconffile").map(String::as_str),
        Some(want_209),
        "{offer:?}"
    );
    assert_eq!(
        offer.get("pxepathprefix").map(String::as_str),
        Some(want_210),
        "{offer:?}"
    );
    assert!(in_range(&offer), "{offer:?}");
    for option_67 in ["boot_file", "bootfile"] {
        assert!(
            !offer.contains_key(option_67),
            "option 67 must not be sent: {offer:?}"
        );
    }
    // What petitboot would fetch is the config petitlab wrote.
    let url = format!("{}{}", offer["pxepathprefix"], offer["pxeconffile"]);
    assert_eq!(url, render["rendered"]["config_url"].as_str().unwrap());
    let rel = url
        .strip_prefix(&format!("http://{SERVER_IP}:8080/"))
        .unwrap();
    let served = fs::read_to_string(work.join("state/http").join(rel)).unwrap();
    assert_eq!(served, render["rendered"]["config"].as_str().unwrap());

    petitlab(&lab, &["clean-up-ramdisk", "node1"]);
    wait_for_read(work, &hosts_file, 2);
    let after = net.dhcp(work);
    assert!(in_range(&after), "the node still gets a lease: {after:?}");
    assert!(
        !after.contains_key("pxeconffile"),
        "209 still offered: {after:?}"
    );
    assert!(
        !after.contains_key("pxepathprefix"),
        "210 still offered: {after:?}"
    );

    // And a second deploy brings them back, with dnsmasq still running.
    petitlab(&lab, &["prepare-ramdisk", "node1"]);
    wait_for_read(work, &hosts_file, 3);
    let again = net.dhcp(work);
    assert_eq!(
        again.get("pxeconffile").map(String::as_str),
        Some(want_209),
        "{again:?}"
    );
}
