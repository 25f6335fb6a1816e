//! Two network namespaces this test creates, joined by a veth pair: a real
//! dnsmasq (Debian's dnsmasq-base) serving DHCP in the server namespace and
//! busybox udhcpc asking for 209/210 (as petitboot does) in the client one.
//! Needs root (ip netns); fails, never skips, when it cannot set up its
//! peers. On drop every process started in them is killed by PID and both
//! namespaces are deleted.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::tools::tool;

/// Runs `cmd` and fails the test, with its output, unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Fails the test unless each `(tool, Debian package)` is installed.
pub fn require_tools(tools: &[(&str, &str)]) {
    for (name, package) in tools {
        tool(
            name,
            &format!("apt-get install {package} (scripts/test does this)"),
        );
    }
}

/// `ip netns exec NS PROGRAM`: ip execs the program, so a spawned child's
/// PID is the program's own.
pub fn exec_in(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// The namespaces, their veth ends, and the processes started in them.
pub struct NetPair {
    pub server_ns: String,
    pub client_ns: String,
    pub server_if: String,
    pub client_if: String,
    /// The server end's address (`/24`); DHCP leases come from .50–.99.
    pub server_ip: String,
    children: Vec<Child>,
    dnsmasq_log: Option<PathBuf>,
}

impl NetPair {
    /// Namespaces `pl{tag}s…`/`pl{tag}c…` joined by veths `{tag}s…`/`{tag}c…`
    /// (unique per process and per call: the tests of a process run at
    /// once); the server end gets `server_ip/24`, the client end `client_mac`.
    pub fn new(tag: &str, server_ip: &str, client_mac: &str) -> NetPair {
        require_tools(&[
            ("ip", "iproute2"),
            ("dnsmasq", "dnsmasq-base"),
            ("busybox", "busybox"),
        ]);
        // Interface names are at most 15 bytes.
        assert!(tag.len() <= 3, "netns tag {tag:?} is too long");
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let net = NetPair {
            server_ns: format!("pl{tag}s{id}"),
            client_ns: format!("pl{tag}c{id}"),
            server_if: format!("{tag}s{id}"),
            client_if: format!("{tag}c{id}"),
            server_ip: server_ip.to_string(),
            children: Vec::new(),
            dnsmasq_log: None,
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
        let addr = format!("{server_ip}/24");
        run(Command::new("ip").args(["-n", s, "addr", "add", &addr, "dev", sif]));
        run(Command::new("ip").args(["-n", c, "link", "set", cif, "address", client_mac]));
        for (ns, dev) in [(s, "lo"), (c, "lo"), (s, sif.as_str()), (c, cif.as_str())] {
            run(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
        }
        net
    }

    /// Takes a process started in a namespace, to kill it on drop.
    pub fn adopt(&mut self, child: Child) {
        self.children.push(child);
    }

    /// Waits until `ss FLAGS` (`-uln`, `-ltn`) in the server namespace shows
    /// `port`; fails with `diag()` if an adopted process exits first.
    pub fn wait_listening(
        &mut self,
        flags: &str,
        port: &str,
        what: &str,
        diag: &dyn Fn() -> String,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ss = run(exec_in(&self.server_ns, "ss").arg(flags));
            if String::from_utf8_lossy(&ss.stdout).contains(&format!(":{port} ")) {
                return;
            }
            for child in &mut self.children {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!(
                        "a server process exited ({status}) before {what}:\n{}",
                        diag()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "{what}: nothing listens on port {port} after 10 s:\n{}",
                diag()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// dnsmasq (in the foreground, `-k`) serving the server end from
    /// `hostsdir`/`optsdir` as petitlab writes them, logging its DHCP to
    /// `log` (`--log-dhcp --log-facility`); its stderr, lease and pid files
    /// go to `work`. Returns once it serves port 67.
    pub fn start_dnsmasq(&mut self, work: &Path, hostsdir: &Path, optsdir: &Path, log: &Path) {
        let (prefix, _) = self.server_ip.rsplit_once('.').expect("server_ip is IPv4");
        let stderr = fs::File::create(work.join("dnsmasq.stderr")).unwrap();
        let mut cmd = exec_in(&self.server_ns, "dnsmasq");
        cmd.args([
            "-k",
            "--conf-file=/dev/null",
            "--port=0",
            "--bind-interfaces",
        ])
        .args(["--no-ping", "--log-dhcp"])
        .arg(format!("--interface={}", self.server_if))
        .arg(format!("--dhcp-range={prefix}.50,{prefix}.99,1h"))
        .arg(format!("--dhcp-hostsdir={}", hostsdir.display()))
        .arg(format!("--dhcp-optsdir={}", optsdir.display()))
        .arg(format!("--log-facility={}", log.display()))
        .arg(format!(
            "--dhcp-leasefile={}",
            work.join("leases").display()
        ))
        .arg(format!("--pid-file={}", work.join("dnsmasq.pid").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
        self.adopt(cmd.spawn().expect("cannot start dnsmasq"));
        self.dnsmasq_log = Some(log.to_path_buf());
        let diag = || {
            format!(
                "{}\n{}",
                fs::read_to_string(work.join("dnsmasq.stderr")).unwrap_or_default(),
                fs::read_to_string(log).unwrap_or_default()
            )
        };
        self.wait_listening("-uln", "67", "dnsmasq serving DHCP", &diag);
    }

    /// dnsmasq's DHCP log so far (empty before it started).
    pub fn dnsmasq_log(&self) -> String {
        self.dnsmasq_log
            .as_ref()
            .and_then(|log| fs::read_to_string(log).ok())
            .unwrap_or_default()
    }

    /// Waits until dnsmasq logs that it (re)read `file` `times` times in all.
    pub fn wait_for_read(&self, file: &Path, times: usize) {
        let needle = format!("read {}", file.display());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.dnsmasq_log();
            if log.matches(&needle).count() >= times {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq never logged {needle:?} {times} times:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One DHCP exchange by busybox udhcpc on the client end, asking for 209
    /// and 210 as petitboot does; returns the variables udhcpc handed its
    /// script on `bound` (the script is written to `work`).
    pub fn udhcpc(&self, work: &Path) -> HashMap<String, String> {
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
                self.dnsmasq_log()
            )
        });
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Puts `ip/24` on the client end (udhcpc's script does not).
    pub fn add_client_addr(&self, ip: &str) {
        let addr = format!("{ip}/24");
        run(Command::new("ip")
            .args(["-n", &self.client_ns, "addr", "add", &addr, "dev"])
            .arg(&self.client_if));
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
