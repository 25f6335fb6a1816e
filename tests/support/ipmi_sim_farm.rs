//! Many OpenIPMI `ipmi_sim` BMCs on 127.0.0.1: `per_process` BMCs in each
//! ipmi_sim process (each an MC of its own, 0x20, 0x22, … with its own LAN
//! port, session table and `chassis_control` hook), as many processes as
//! needed. Every Get Chassis Status and Chassis Control runs the hook, a
//! `/bin/sh` script forked synchronously inside ipmi_sim's event loop, so a
//! BMC here costs what a BMC with a real power-control backend costs.
//!
//! What ipmi_sim (openipmi 2.0.33) does, checked by `tests/ipmi_sim_farm.rs`:
//! - `chassis_control` belongs to the working MC (`set_working_mc`), and
//!   ipmi_sim runs it as `sh -c "<string> get power"` without naming the MC,
//!   so the string carries it: `"<dir>/chassis.sh 0x22"`;
//! - MC addresses are IPMB addresses (even, 0x20..=0xFE): at most 112 BMCs
//!   per process;
//! - freeipmi's `ipmipower` needs `-W opensesspriv` (ipmi_sim answers Open
//!   Session with privilege 4 where ipmipower asked for the highest).
//!
//! Used by `benches/power_sweep.rs` (`#[path]`) and the farm's test.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "password";
/// The most MCs one process can hold (even IPMB addresses 0x20..=0xFE).
pub const MAX_PER_PROCESS: usize = 112;

const ASF_PING: [u8; 12] = [6, 0, 0xff, 6, 0, 0, 0x11, 0xbe, 0x80, 1, 0, 0];

pub struct Farm {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    /// Per BMC: (process index, MC address, port).
    bmcs: Vec<(usize, u8, u16)>,
}

fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found on PATH; apt-get install openipmi"))
}

/// `count` UDP ports free right now: all bound at once (so distinct), then
/// released for ipmi_sim.
fn free_ports(count: usize) -> Vec<u16> {
    let held: Vec<UdpSocket> = (0..count)
        .map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port"))
        .collect();
    held.iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

fn write(dir: &Path, name: &str, contents: &str) {
    fs::write(dir.join(name), contents).unwrap_or_else(|e| panic!("write {name}: {e}"));
}

impl Farm {
    /// Starts `count` BMCs, `per_process` per ipmi_sim, all powered off, and
    /// returns once every one answers an RMCP ping.
    pub fn start(count: usize, per_process: usize) -> Farm {
        assert!((1..=MAX_PER_PROCESS).contains(&per_process));
        let ipmi_sim = binary("ipmi_sim");
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = free_ports(count);
        let mut farm = Farm {
            dir,
            children: Vec::new(),
            bmcs: Vec::new(),
        };
        let auths = "none md2 md5 straight";
        for (p, chunk) in ports.chunks(per_process).enumerate() {
            let d = farm.dir.path().join(format!("p{p}"));
            fs::create_dir(&d).unwrap();
            let ds = d.to_str().expect("utf-8 temp dir");
            assert!(
                !ds.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)),
                "odd temp dir {ds}"
            );
            // Builtins only: it runs inside ipmi_sim's event loop.
            let script = format!(
                "#!/bin/sh\ncd '{ds}' || exit 1\nmc=$1; shift\n\
                 case \"$1\" in\n\
                 get) shift\n  for k in \"$@\"; do\n    case \"$k\" in\n    \
                 power) read v < power-$mc; echo \"power:$v\" ;;\n    esac\n  done ;;\n\
                 set) case \"$2\" in power) echo \"$3\" > power-$mc ;; esac ;;\n\
                 esac\n"
            );
            write(&d, "chassis.sh", &script);
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(d.join("chassis.sh"), fs::Permissions::from_mode(0o755)).unwrap();
            let mut lan = String::from("name \"petitlab-farm\"\n");
            let mut emu = String::from("mc_setbmc 0x20\n");
            for (j, port) in chunk.iter().enumerate() {
                let mc = 0x20 + 2 * j as u8;
                write(&d, &format!("power-0x{mc:02x}"), "0\n");
                lan.push_str(&format!(
                    "set_working_mc 0x{mc:02x}\n\
                     startlan 1\naddr 127.0.0.1 {port}\npriv_limit admin\n\
                     allowed_auths_callback {auths}\nallowed_auths_user {auths}\n\
                     allowed_auths_operator {auths}\nallowed_auths_admin {auths}\n\
                     guid a123456789abcdefa1234567{p:04x}{mc:04x}\nendlan\n\
                     chassis_control \"{ds}/chassis.sh 0x{mc:02x}\"\n\
                     user 2 true \"{USER}\" \"{PASSWORD}\" admin 10 {auths}\n"
                ));
                emu.push_str(&format!(
                    "mc_add 0x{mc:02x} 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
                     mc_enable 0x{mc:02x}\n"
                ));
                farm.bmcs.push((p, mc, *port));
            }
            write(&d, "lan.conf", &lan);
            write(&d, "emu.cmd", &emu);
            let child = Command::new(&ipmi_sim)
                .args(["-n", "-c", "lan.conf", "-f", "emu.cmd", "-s", "state"])
                .current_dir(&d)
                .stdin(Stdio::null())
                .stdout(fs::File::create(d.join("ipmi_sim.out")).unwrap())
                .stderr(fs::File::create(d.join("ipmi_sim.err")).unwrap())
                .spawn()
                .expect("spawn ipmi_sim");
            farm.children.push(child);
        }
        farm.wait_ready(Duration::from_secs(30));
        farm
    }

    fn wait_ready(&mut self, limit: Duration) {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let deadline = Instant::now() + limit;
        for i in 0..self.bmcs.len() {
            let addr = self.addr(i);
            loop {
                let p = self.bmcs[i].0;
                if let Some(status) = self.children[p].try_wait().unwrap() {
                    panic!("ipmi_sim {p} exited ({status}): {}", self.stderr(p));
                }
                assert!(
                    Instant::now() < deadline,
                    "BMC {i} ({addr}) not answering RMCP ping: {}",
                    self.stderr(p)
                );
                sock.send_to(&ASF_PING, addr).unwrap();
                let mut buf = [0u8; 64];
                if let Ok((n, from)) = sock.recv_from(&mut buf)
                    && from == addr
                    && n >= 12
                    && buf[8] == 0x40
                {
                    break;
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.bmcs.len()
    }

    pub fn processes(&self) -> usize {
        self.children.len()
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.bmcs[i].2).into()
    }

    pub fn port(&self, i: usize) -> u16 {
        self.bmcs[i].2
    }

    fn power_path(&self, i: usize) -> PathBuf {
        let (p, mc, _) = self.bmcs[i];
        self.dir
            .path()
            .join(format!("p{p}"))
            .join(format!("power-0x{mc:02x}"))
    }

    /// What BMC `i`'s chassis is: true when on ("1" in its power file).
    pub fn power(&self, i: usize) -> bool {
        fs::read_to_string(self.power_path(i))
            .unwrap_or_default()
            .trim()
            == "1"
    }

    /// Sets BMC `i`'s chassis power behind ipmi_sim's back (what pressing
    /// the power button would do).
    pub fn set_power(&self, i: usize, on: bool) {
        write(
            self.power_path(i).parent().unwrap(),
            self.power_path(i).file_name().unwrap().to_str().unwrap(),
            if on { "1\n" } else { "0\n" },
        );
    }

    pub fn stderr(&self, p: usize) -> String {
        fs::read_to_string(self.dir.path().join(format!("p{p}/ipmi_sim.err"))).unwrap_or_default()
    }

    /// A lab.toml in `dir` with one node per BMC, `n0000`, `n0001`, …,
    /// cipher suite 3, and the files its nodes name.
    pub fn write_lab(&self, dir: &Path) -> PathBuf {
        let farm = self;
        std::fs::write(dir.join("bmc-password"), format!("{PASSWORD}\n")).unwrap();
        for f in ["deploy.vmlinux", "deploy.initramfs", "instance.img"] {
            std::fs::write(dir.join(f), b"bench").unwrap();
        }
        let mut text = format!(
            "state_dir = \"{}/state\"\n\
         [http]\nbase_url = \"http://127.0.0.1:1/\"\nlisten = \"127.0.0.1:1\"\n\
         [tftp]\nbase_url = \"tftp://127.0.0.1:1/\"\nlisten = \"127.0.0.1:1\"\n\
         [dhcp]\nbackend = \"dnsmasq\"\n",
            dir.display()
        );
        for i in 0..farm.len() {
            use std::fmt::Write;
            let _ = write!(
                text,
                "\n[[node]]\nname = \"n{i:04}\"\nmacs = [\"52:54:00:{:02x}:{:02x}:{:02x}\"]\n\
             [node.bmc]\nhost = \"127.0.0.1\"\nport = {}\nusername = \"{USER}\"\n\
             password_file = \"bmc-password\"\ncipher_suite = 3\n\
             [node.deploy]\nkernel = \"deploy.vmlinux\"\nramdisk = \"deploy.initramfs\"\n\
             [node.instance]\nimage = \"instance.img\"\n",
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff,
                farm.port(i),
            );
        }
        let path = dir.join("lab.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `ipmitool -I lanplus -C 3` against BMC `i`.
    pub fn ipmitool(&self, i: usize, args: &[&str]) -> std::process::Output {
        let port = self.port(i).to_string();
        Command::new(binary("ipmitool"))
            .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port])
            .args(["-U", USER, "-P", PASSWORD])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ipmitool")
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// CPU time of the ipmi_sim processes and the hooks they ran (reaped
    /// children count in cutime/cstime), in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.pids().into_iter().map(proc_cpu_ticks).sum()
    }
}

/// utime + stime + cutime + cstime of `pid`, in clock ticks (0 if gone).
pub fn proc_cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" that ends the command name: state is field 3,
    // utime 14, stime 15, cutime 16, cstime 17.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (11..15)
        .filter_map(|k| fields.get(k).and_then(|f| f.parse::<u64>().ok()))
        .sum()
}

impl Drop for Farm {
    fn drop(&mut self) {
        // Child::kill signals exactly our pids.
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
