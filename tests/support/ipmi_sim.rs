//! Test harness around OpenIPMI's `ipmi_sim`: a BMC on 127.0.0.1 speaking
//! IPMI 1.5/2.0 (RMCP+, cipher suites 0,1,2,3,6) with user `admin`/`password`.
//! Power and boot device are backed by files in a temp dir, written by a
//! `chassis_control` script that ipmi_sim runs as `sh -c "<script> get power"`,
//! `... set power 1`, `... set boot pxe`, `... set reset 1`, `... set shutdown 1`.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "password";

/// RMCP ASF Presence Ping (tag 1); ipmi_sim answers with a Presence Pong
/// (message type 0x40) once its LAN socket is up, without any session.
const ASF_PING: [u8; 12] = [6, 0, 0xff, 6, 0, 0, 0x11, 0xbe, 0x80, 1, 0, 0];

pub struct IpmiSim {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

/// Returns the binary's path, or fails the test: a missing tool must not
/// turn into a silently skipped test.
pub fn require_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found on PATH; install it with `apt-get install openipmi ipmitool`"
            )
        })
}

impl IpmiSim {
    pub fn start() -> IpmiSim {
        let ipmi_sim = require_binary("ipmi_sim");
        let dir = tempfile::tempdir().expect("create temp dir");
        let d = dir.path();
        // The script path goes through `sh -c` unquoted.
        let ds = d.to_str().expect("utf-8 temp dir");
        assert!(
            !ds.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)),
            "odd temp dir {ds}"
        );

        // Bind-and-drop to learn a free port. ipmi_sim sets SO_REUSEADDR, so a
        // concurrent twin could in theory share it; the window is tiny.
        let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();

        write(d, "power", "0\n");
        write(d, "boot", "none\n");
        write(d, "calls.log", "");
        // Runs synchronously inside ipmi_sim's event loop, so builtins only.
        let script = format!(
            r#"#!/bin/sh
cd '{ds}' || exit 1
echo "$*" >> calls.log
case "$1" in
get) shift
  for k in "$@"; do
    case "$k" in
    power) read v < power; echo "power:$v" ;;
    boot) read v < boot; echo "boot:$v" ;;
    esac
  done ;;
set) case "$2" in power|boot) echo "$3" > "$2" ;; esac ;;
esac
"#
        );
        write(d, "chassis.sh", &script);
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(d.join("chassis.sh"), fs::Permissions::from_mode(0o755)).unwrap();

        // Without `guid` ipmi_sim offers no IPMI 2.0 / RMCP+.
        let auths = "none md2 md5 straight";
        let lan = format!(
            "name \"petitlab-test\"\nset_working_mc 0x20\n\
             startlan 1\naddr 127.0.0.1 {port}\npriv_limit admin\n\
             allowed_auths_callback {auths}\nallowed_auths_user {auths}\n\
             allowed_auths_operator {auths}\nallowed_auths_admin {auths}\n\
             guid a123456789abcdefa123456789abcdef\nendlan\n\
             chassis_control \"{ds}/chassis.sh\"\n\
             user 2 true \"{USER}\" \"{PASSWORD}\" admin 10 {auths}\n"
        );
        write(d, "lan.conf", &lan);
        write(
            d,
            "emu.cmd",
            "mc_setbmc 0x20\n\
             mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
             mc_enable 0x20\n",
        );

        // Output goes to files: a full pipe would block ipmi_sim.
        let child = Command::new(ipmi_sim)
            .args(["-n", "-c", "lan.conf", "-f", "emu.cmd", "-s", "state"])
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(fs::File::create(d.join("ipmi_sim.out")).unwrap())
            .stderr(fs::File::create(d.join("ipmi_sim.err")).unwrap())
            .spawn()
            .expect("spawn ipmi_sim");
        // Constructed before waiting so that Drop kills the child if we panic.
        let mut sim = IpmiSim { dir, child, port };
        sim.wait_ready(Duration::from_secs(10));
        sim
    }

    fn wait_ready(&mut self, limit: Duration) {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "ipmi_sim exited early ({status}); stderr:\n{}",
                    self.stderr()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "ipmi_sim not answering RMCP ping after {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            sock.send_to(&ASF_PING, self.addr()).unwrap();
            let mut buf = [0u8; 64];
            if let Ok((n, from)) = sock.recv_from(&mut buf)
                && from == self.addr()
                && n >= 12
                && buf[8] == 0x40
            {
                return;
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    /// "0" or "1".
    pub fn power_file_value(&self) -> String {
        self.read("power").trim().to_string()
    }

    /// "none", "pxe", "default" (ipmitool's `disk`), "cdrom" or "bios".
    pub fn boot_file_value(&self) -> String {
        self.read("boot").trim().to_string()
    }

    /// One line per chassis_control invocation, e.g. "get power", "set boot pxe".
    pub fn calls(&self) -> Vec<String> {
        self.read("calls.log").lines().map(str::to_string).collect()
    }

    pub fn stderr(&self) -> String {
        self.read("ipmi_sim.err")
    }

    /// Runs `ipmitool -I lanplus -C 3` against this BMC; -C 3 avoids a 10 s
    /// stall probing other cipher suites.
    pub fn ipmitool(&self, password: &str, args: &[&str]) -> Output {
        let port = self.port.to_string();
        Command::new(require_binary("ipmitool"))
            .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port])
            .args(["-U", USER, "-P", password])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ipmitool")
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

fn write(dir: &Path, name: &str, contents: &str) {
    fs::write(dir.join(name), contents).unwrap_or_else(|e| panic!("write {name}: {e}"));
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        // Child::kill signals exactly our pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "ipmi_sim stderr:\n{}\nchassis calls: {:?}",
                self.stderr(),
                self.calls()
            );
        }
    }
}
