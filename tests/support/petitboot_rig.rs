//! A lab with one real node: upstream petitboot in a QEMU guest (x86-64, or
//! POWER9 `powernv9` with skiboot), behind OpenIPMI's `ipmi_sim` as its BMC,
//! a real dnsmasq reading petitlab's DHCP files, and `petitlab serve`, all
//! in a network namespace of the rig's own. Tests start one with
//! [`Rig::start`], drive it with the petitlab CLI ([`Rig::petitlab`]) as an
//! operator would, and read what the guest printed ([`Rig::wait_guest`]).
//! Dropping the rig stops everything it started, by pid, and deletes the
//! namespace; on a panic it first prints the tails of every log.
//!
//! Inside the namespace `plab-pb-<pid>-<n>`:
//! - bridge `br0` with 10.77.N.1/24, and tap `tap0` on it for the guest's NIC;
//! - dnsmasq on br0 (DHCP only), reading `<state>/dnsmasq/{hosts,opts}`;
//! - `petitlab serve`: HTTP on 10.77.N.1:8080, TFTP on 10.77.N.1:69;
//! - ipmi_sim: RMCP+ on 127.0.0.1:6230 (cipher suite 3, admin/password),
//!   SOL to the relay on 127.0.0.1:7001, and for ppc64le the in-band BT
//!   interface QEMU's `ipmi-bmc-extern` connects to on 127.0.0.1:7002;
//! - its chassis_control hook (`tests/peers/petitboot-vm/rig/chassis.sh`)
//!   starts and stops QEMU: power on is a QEMU process;
//! - the serial relay (threads of the test process): ipmi_sim's SOL ↔ QEMU's
//!   serial socket, keeping a copy of every byte the guest printed.
//!
//! Needs root (namespaces, taps), qemu-system-x86 / qemu-system-ppc 10,
//! dnsmasq, openipmi and ipmitool, and the guest artifacts that
//! `tests/peers/petitboot-vm/build.sh` makes (run from here when needed);
//! a missing one fails the test saying so.

pub mod artifacts;
pub mod netns;
pub mod relay;

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use super::lab::show;
pub use artifacts::{Arch, Artifacts};
use netns::Netns;
use relay::Relay;

pub const NODE: &str = "pb1";
pub const BMC_USER: &str = "admin";
pub const BMC_PASSWORD: &str = "password";
/// Inside the rig's namespace, so fixed ports never collide between rigs.
pub const BMC_PORT: u16 = 6230;
const SOL_PORT: u16 = 7001;
const BT_PORT: u16 = 7002;
const HTTP_PORT: u16 = 8080;

/// RMCP ASF Presence Ping; ipmi_sim answers with a Pong (type 0x40) once
/// its LAN side is up.
const ASF_PING: [u8; 12] = [6, 0, 0xff, 6, 0, 0, 0x11, 0xbe, 0x80, 1, 0, 0];

static RIGS: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootOption {
    Local,
    Netboot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Tftp,
}

/// `[deploy]` of the generated lab.toml, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct DeployTimeouts {
    pub power: u64,
    pub callback: u64,
    pub heartbeat: u64,
    pub write: u64,
    pub boot: u64,
}

#[derive(Clone, Debug)]
pub struct RigOptions {
    pub arch: Arch,
    pub boot_option: BootOption,
    /// The node's `protocol`: how petitboot fetches config and kernels.
    pub protocol: Protocol,
    /// The guest's disk: a copy of this file, else an empty (sparse) one of
    /// `disk_mib`, else one 64 MiB larger than the bigger instance image.
    pub disk_from: Option<PathBuf>,
    pub disk_mib: Option<u64>,
    /// Guest memory; by default 512 MiB on x86, 2 GiB on POWER9 (allocated
    /// as the guest touches it, so the size costs little).
    pub memory_mib: Option<u32>,
    pub deploy: DeployTimeouts,
}

impl RigOptions {
    /// A local-boot node fetching over HTTP, with deploy timeouts that fit an
    /// emulated guest on two busy cores (a whole deploy took 90-140 s here,
    /// x86 and POWER9 alike; the limits are several times each step, so only
    /// a stuck one trips them).
    pub fn new(arch: Arch) -> RigOptions {
        RigOptions {
            arch,
            boot_option: BootOption::Local,
            protocol: Protocol::Http,
            disk_from: None,
            disk_mib: None,
            memory_mib: None,
            deploy: DeployTimeouts {
                power: 60,
                callback: 240,
                heartbeat: 10,
                write: 300,
                boot: 240,
            },
        }
    }

    pub fn boot_option(mut self, b: BootOption) -> RigOptions {
        self.boot_option = b;
        self
    }

    pub fn protocol(mut self, p: Protocol) -> RigOptions {
        self.protocol = p;
        self
    }
}

/// One call of the chassis hook, as ipmi_sim made it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChassisCall {
    pub at: SystemTime,
    /// e.g. "get power", "set power 1", "set boot pxe", "set reset 1".
    pub args: String,
}

pub struct Rig {
    opts: RigOptions,
    artifacts: Artifacts,
    subnet: u8,
    mac: String,
    /// Dropped last (after the netns), unless kept for debugging.
    dir: Option<tempfile::TempDir>,
    lab: PathBuf,
    disk: PathBuf,
    relay: Option<Relay>,
    dnsmasq: Option<Child>,
    serve: Option<Child>,
    ipmi_sim: Option<Child>,
    ns: Option<Netns>,
    started: Instant,
}

fn hook_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/petitboot-vm/rig/chassis.sh")
}

/// The program's path, or a failed test naming the package that has it.
pub fn require(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbin = std::env::split_paths("/usr/sbin:/sbin");
    std::env::split_paths(&path)
        .chain(sbin)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: apt-get install {package} (the real-petitboot rig needs it)")
        })
}

fn file(path: &Path) -> fs::File {
    fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Polls `ready` every 20 ms until it gives Some, or panics with `what` and
/// `context()` after `timeout`.
pub fn poll_until<T>(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Option<T>,
    context: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = ready() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("{what}: not within {timeout:?}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Rig {
    /// Builds (or finds) the guest, then sets up the namespace, dnsmasq,
    /// `petitlab serve`, ipmi_sim and the relay, each checked to answer.
    /// The guest stays off: power it on through the BMC
    /// (`rig.petitlab(&["power", NODE, "on"])`, or a deploy).
    pub fn start(opts: RigOptions) -> Rig {
        for (name, package) in [
            ("ip", "iproute2"),
            ("dnsmasq", "dnsmasq-base"),
            ("ipmi_sim", "openipmi"),
            ("ipmitool", "ipmitool"),
            ("setsid", "util-linux"),
        ] {
            require(name, package);
        }
        match opts.arch {
            Arch::X86_64 => require("qemu-system-x86_64", "qemu-system-x86"),
            Arch::Ppc64le => require("qemu-system-ppc64", "qemu-system-ppc"),
        };
        let hook = hook_script();
        assert!(hook.is_file(), "{} is missing", hook.display());
        // ipmi_sim runs the hook through `sh -c`, its path unquoted.
        let hs = hook.to_str().unwrap_or("\n");
        assert!(
            !hs.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)),
            "the repository's path {hs:?} cannot go into ipmi_sim's chassis_control line"
        );
        let artifacts = artifacts::ensure(opts.arch);

        netns::sweep_stale();
        sweep_stale_dirs();
        let n = RIGS.fetch_add(1, Ordering::SeqCst);
        let ns_name = format!("{}{}-{n}", netns::PREFIX, std::process::id());
        let subnet = 10 + (n % 200) as u8;
        // Named after the namespace, so that a later run can tell whose it is.
        let dir = tempfile::Builder::new()
            .prefix(&format!("{ns_name}-"))
            .tempdir()
            .expect("create the rig's temp dir");
        let d = dir.path().to_path_buf();
        // Paths go into ipmi_sim's config and a `sh -c` command line unquoted.
        let ds = d.to_str().expect("utf-8 temp dir");
        assert!(
            !ds.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)),
            "odd temp dir {ds}"
        );
        let mut rig = Rig {
            mac: format!("52:54:00:77:{subnet:02x}:01"),
            opts,
            artifacts,
            subnet,
            lab: d.join("lab.toml"),
            disk: d.join("disk.img"),
            dir: Some(dir),
            relay: None,
            dnsmasq: None,
            serve: None,
            ipmi_sim: None,
            ns: None,
            started: Instant::now(),
        };
        rig.ns = Some(Netns::create(&ns_name));
        rig.setup_network();
        rig.make_disk();
        rig.write_lab();
        rig.write_qemu_argv();
        rig.start_dnsmasq();
        rig.start_serve();
        let relay = Relay::start(rig.ns(), SOL_PORT, &rig.serial_socket());
        rig.relay = Some(relay);
        rig.start_ipmi_sim();
        rig
    }

    /// An x86-64 guest with the default options.
    pub fn x86() -> Rig {
        Rig::start(RigOptions::new(Arch::X86_64))
    }

    fn ns(&self) -> &Netns {
        self.ns.as_ref().expect("rig namespace")
    }

    fn relay(&self) -> &Relay {
        self.relay.as_ref().expect("rig relay")
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("rig dir").path()
    }

    pub fn options(&self) -> &RigOptions {
        &self.opts
    }

    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    pub fn arch(&self) -> Arch {
        self.opts.arch
    }

    pub fn netns(&self) -> &str {
        self.ns().name()
    }

    pub fn node(&self) -> &'static str {
        NODE
    }

    pub fn mac(&self) -> &str {
        &self.mac
    }

    /// The host's address on br0: petitlab serve's.
    pub fn server_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.subnet, 1)
    }

    /// The one address dnsmasq leases: the node's `ipv4`.
    pub fn node_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.subnet, 50)
    }

    pub fn http_base(&self) -> String {
        format!("http://{}:{HTTP_PORT}/", self.server_ip())
    }

    pub fn lab_dir(&self) -> &Path {
        self.dir()
    }

    pub fn lab_path(&self) -> &Path {
        &self.lab
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir().join("state")
    }

    pub fn disk_path(&self) -> &Path {
        &self.disk
    }

    /// QEMU's serial socket (the relay's guest side).
    pub fn serial_socket(&self) -> PathBuf {
        self.dir().join("serial.sock")
    }

    /// When the rig began to start its peers.
    pub fn started(&self) -> Instant {
        self.started
    }

    fn setup_network(&self) {
        let ns = self.ns();
        // No STP and no forwarding delay: the tap forwards as soon as QEMU
        // opens it, else the guest's first DHCP requests would be dropped.
        ns.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ]);
        let cidr = format!("{}/24", self.server_ip());
        ns.ip(&["addr", "add", &cidr, "dev", "br0"]);
        ns.ip(&["link", "set", "br0", "up"]);
        ns.ip(&["tuntap", "add", "tap0", "mode", "tap"]);
        ns.ip(&["link", "set", "tap0", "master", "br0"]);
        ns.ip(&["link", "set", "tap0", "up"]);
    }

    fn make_disk(&self) {
        if let Some(from) = &self.opts.disk_from {
            fs::copy(from, &self.disk)
                .unwrap_or_else(|e| panic!("copy {} to the rig's disk: {e}", from.display()));
            return;
        }
        let size = match self.opts.disk_mib {
            Some(mib) => mib << 20,
            None => {
                let len = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                let image =
                    len(&self.artifacts.instance_img).max(len(&self.artifacts.instance_part_img));
                (image.div_ceil(1 << 20) + 64) << 20
            }
        };
        // Sparse: only what the guest writes takes space.
        file(&self.disk)
            .set_len(size)
            .unwrap_or_else(|e| panic!("size the rig's disk: {e}"));
    }

    fn write_lab(&self) {
        let d = self.dir();
        let pw = d.join("bmc-password");
        fs::write(&pw, BMC_PASSWORD).unwrap();
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
        let a = &self.artifacts;
        let t = self.opts.deploy;
        let ip = self.server_ip();
        let protocol = match self.opts.protocol {
            Protocol::Http => "http",
            Protocol::Tftp => "tftp",
        };
        let instance = match self.opts.boot_option {
            BootOption::Local => format!("image = \"{}\"\n", a.instance_img.display()),
            BootOption::Netboot => format!(
                "image = \"{}\"\nkernel = \"{}\"\nramdisk = \"{}\"\nroot_device = \"{}\"\n",
                a.instance_part_img.display(),
                a.kernel.display(),
                a.instance_initrd.display(),
                a.root_device
            ),
        };
        let boot_option = match self.opts.boot_option {
            BootOption::Local => "local",
            BootOption::Netboot => "netboot",
        };
        let text = format!(
            r#"# Generated by tests/support/petitboot_rig.rs
state_dir = "{state}"

[http]
listen = "{ip}:{HTTP_PORT}"

[tftp]
listen = "{ip}:69"

[dhcp]
backend = "dnsmasq"
hostsdir = "{state}/dnsmasq/hosts"
optsdir = "{state}/dnsmasq/opts"

[deploy]
power_timeout = {power}
callback_timeout = {callback}
heartbeat = {heartbeat}
write_timeout = {write}
boot_timeout = {boot}

[[node]]
name = "{NODE}"
macs = ["{mac}"]
ipv4 = "{node_ip}"
boot_option = "{boot_option}"
console = "{console}"
kernel_args = "petitlab.disk={disk}"
protocol = "{protocol}"

[node.bmc]
host = "127.0.0.1"
port = {BMC_PORT}
username = "{BMC_USER}"
password_file = "{pw}"
cipher_suite = 3

[node.deploy]
kernel = "{kernel}"
ramdisk = "{ramdisk}"

[node.instance]
{instance}"#,
            state = self.state_dir().display(),
            power = t.power,
            callback = t.callback,
            heartbeat = t.heartbeat,
            write = t.write,
            boot = t.boot,
            mac = self.mac,
            node_ip = self.node_ip(),
            console = a.console,
            disk = a.disk,
            pw = pw.display(),
            kernel = a.kernel.display(),
            ramdisk = a.deploy_initrd.display(),
        );
        fs::write(&self.lab, text).unwrap();
        // The directories dnsmasq watches must exist when it starts.
        for sub in ["hosts", "opts"] {
            fs::create_dir_all(self.state_dir().join("dnsmasq").join(sub)).unwrap();
        }
        let out = self.petitlab(&["check"]);
        assert!(
            out.status.success(),
            "petitlab check of the rig's lab failed:\n{}\n{}",
            show(&out),
            read_lossy(&self.lab)
        );
    }

    /// QEMU's command line, one argument per line, for the chassis hook.
    fn write_qemu_argv(&self) {
        let a = &self.artifacts;
        let d = self.dir();
        let mem = match self.opts.arch {
            Arch::X86_64 => self.opts.memory_mib.unwrap_or(512),
            Arch::Ppc64le => self.opts.memory_mib.unwrap_or(2048),
        };
        let mut q = Argv(Vec::new());
        match self.opts.arch {
            Arch::X86_64 => q.words("qemu-system-x86_64 -accel tcg"),
            Arch::Ppc64le => q.words("qemu-system-ppc64 -accel tcg -M powernv9"),
        }
        q.opt("-m", &mem.to_string());
        q.words("-smp 1 -nographic -nodefaults -monitor none");
        q.opt("-name", NODE);
        q.opt("-kernel", path(&a.kernel));
        q.opt("-initrd", path(&a.petitboot_initrd));
        q.opt("-append", &format!("console={}", a.console));
        let serial = self.serial_socket();
        q.opt(
            "-serial",
            &format!("unix:{},server=on,wait=off", serial.display()),
        );
        q.opt("-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no");
        let drive = format!("file={},if=none,format=raw,id=d0", self.disk.display());
        q.opt("-drive", &drive);
        match self.opts.arch {
            Arch::X86_64 => {
                // No option ROM: petitboot is the firmware here, and iPXE's
                // ROM would only print its banner and cost boot time.
                q.opt(
                    "-device",
                    &format!("virtio-net-pci,netdev=n0,mac={},romfile=", self.mac),
                );
                q.opt("-device", "virtio-blk-pci,drive=d0");
            }
            Arch::Ppc64le => {
                q.0.extend(super::powernv::phb_args());
                q.opt(
                    "-device",
                    &format!("virtio-net-pci,netdev=n0,mac={},bus=rp0", self.mac),
                );
                q.opt("-device", "virtio-blk-pci,drive=d0,bus=rp1");
                // skiboot, Linux and petitboot talk in-band to ipmi_sim,
                // which listens before any QEMU starts.
                let bmc = SocketAddr::from((Ipv4Addr::LOCALHOST, BT_PORT));
                q.0.extend(super::powernv::external_bmc_args(bmc));
            }
        }
        assert!(q.0.iter().all(|a| !a.contains('\n')));
        fs::write(d.join("qemu.argv"), q.0.join("\n") + "\n").unwrap();
        fs::write(d.join("boot"), "none\n").unwrap();
        fs::write(d.join("calls.log"), "").unwrap();
        fs::write(d.join("qemu.out"), "").unwrap();
    }

    fn start_dnsmasq(&mut self) {
        let d = self.dir().to_path_buf();
        let state = self.state_dir();
        let ip = self.node_ip();
        let log = d.join("dnsmasq.log");
        let mut cmd = self.ns().command(require("dnsmasq", "dnsmasq-base"));
        cmd.args(["--no-daemon", "--conf-file=/dev/null", "--port=0"])
            .args(["--interface=br0", "--bind-interfaces", "--log-dhcp"])
            // One address, so the node always gets its `ipv4` (petitlab's host
            // lines carry none); without client ids, petitboot's udhcpc, the
            // ramdisk's and the instance's all get that one lease. No ping
            // before an offer: nothing else lives on this bridge, and it
            // would delay every first offer by seconds.
            .arg(format!("--dhcp-range={ip},{ip},12h"))
            .args(["--dhcp-ignore-clid", "--no-ping"])
            .arg(format!(
                "--dhcp-hostsdir={}",
                state.join("dnsmasq/hosts").display()
            ))
            .arg(format!(
                "--dhcp-optsdir={}",
                state.join("dnsmasq/opts").display()
            ))
            .arg(format!(
                "--dhcp-leasefile={}",
                d.join("dnsmasq.leases").display()
            ))
            .arg(format!("--log-facility={}", log.display()))
            .arg("--pid-file=")
            .stdin(Stdio::null())
            .stdout(file(&d.join("dnsmasq.out")))
            .stderr(file(&d.join("dnsmasq.err")));
        self.dnsmasq = Some(cmd.spawn().expect("start dnsmasq"));
        let ns = self.ns.as_ref().unwrap();
        let child = self.dnsmasq.as_mut().unwrap();
        poll_until(
            "dnsmasq serving DHCP on br0",
            Duration::from_secs(10),
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "dnsmasq exited ({status}) before serving DHCP:\n{}{}",
                        read_lossy(&d.join("dnsmasq.err")),
                        read_lossy(&log)
                    );
                }
                // The reading thread's namespace decides what
                // /proc/thread-self/net shows. 0043 is port 67.
                let udp = ns
                    .within(|| fs::read_to_string("/proc/thread-self/net/udp").unwrap_or_default());
                udp.lines()
                    .any(|l| {
                        l.split_whitespace()
                            .nth(1)
                            .is_some_and(|a| a.ends_with(":0043"))
                    })
                    .then_some(())
            },
            || read_lossy(&log),
        );
    }

    fn start_serve(&mut self) {
        let d = self.dir().to_path_buf();
        let log = file(&d.join("serve.log"));
        let child = self
            .ns()
            .command(env!("CARGO_BIN_EXE_petitlab"))
            .arg("--lab")
            .arg(&self.lab)
            .arg("serve")
            .current_dir(&d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start petitlab serve");
        self.serve = Some(child);
        let addr = SocketAddr::from((self.server_ip(), HTTP_PORT));
        let ns = self.ns.as_ref().unwrap();
        let serve = self.serve.as_mut().unwrap();
        poll_until(
            "petitlab serve answering HTTP",
            Duration::from_secs(20),
            || {
                if let Ok(Some(status)) = serve.try_wait() {
                    panic!(
                        "petitlab serve exited ({status}):\n{}",
                        read_lossy(&d.join("serve.log"))
                    );
                }
                ns.within(|| http_answers(addr)).then_some(())
            },
            || read_lossy(&d.join("serve.log")),
        );
    }

    fn start_ipmi_sim(&mut self) {
        let d = self.dir().to_path_buf();
        let ds = d.to_str().unwrap();
        let hook = hook_script();
        let auths = "none md2 md5 straight";
        // Without `guid` ipmi_sim offers no IPMI 2.0 / RMCP+.
        let mut lan = format!(
            "name \"{NODE}\"\nset_working_mc 0x20\n\
             startlan 1\naddr 127.0.0.1 {BMC_PORT}\npriv_limit admin\n\
             allowed_auths_callback {auths}\nallowed_auths_user {auths}\n\
             allowed_auths_operator {auths}\nallowed_auths_admin {auths}\n\
             guid a123456789abcdefa123456789abcdef\nendlan\n\
             chassis_control \"{} {ds}\"\n\
             user 2 true \"{BMC_USER}\" \"{BMC_PASSWORD}\" admin 10 {auths}\n\
             sol \"tcp:127.0.0.1:{SOL_PORT}\" 115200\n",
            hook.display()
        );
        if self.opts.arch == Arch::Ppc64le {
            lan.push_str(&format!("serial bt 127.0.0.1 {BT_PORT} codec VM\n"));
        }
        fs::write(d.join("lan.conf"), lan).unwrap();
        fs::write(
            d.join("emu.cmd"),
            "mc_setbmc 0x20\n\
             mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
             mc_enable 0x20\n",
        )
        .unwrap();
        fs::create_dir_all(d.join("ipmi-state")).unwrap();
        let log = file(&d.join("ipmi_sim.log"));
        let child = self
            .ns()
            .command(require("ipmi_sim", "openipmi"))
            .args(["-n", "-c", "lan.conf", "-f", "emu.cmd", "-s", "ipmi-state"])
            .current_dir(&d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start ipmi_sim");
        self.ipmi_sim = Some(child);
        let ns = self.ns.as_ref().unwrap();
        let sim = self.ipmi_sim.as_mut().unwrap();
        let log_path = d.join("ipmi_sim.log");
        poll_until(
            "ipmi_sim answering RMCP pings",
            Duration::from_secs(10),
            || {
                if let Ok(Some(status)) = sim.try_wait() {
                    panic!("ipmi_sim exited ({status}):\n{}", read_lossy(&log_path));
                }
                ns.within(rmcp_pong).then_some(())
            },
            || read_lossy(&log_path),
        );
        // ipmi_sim connects its SOL port while it starts (then retries only
        // every 10 s): the relay listened before it was started.
        let relay = self.relay.as_ref().unwrap();
        poll_until(
            "ipmi_sim connecting its SOL serial port to the relay",
            Duration::from_secs(15),
            || (relay.sol_connections() > 0).then_some(()),
            || read_lossy(&log_path),
        );
    }

    /// `petitlab --lab LAB ARGS…` inside the namespace, to completion.
    pub fn petitlab(&self, args: &[&str]) -> Output {
        self.petitlab_command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run petitlab {args:?}: {e}"))
    }

    /// As [`Rig::petitlab`], failing the test unless it exits 0; its stdout.
    pub fn petitlab_ok(&self, args: &[&str]) -> String {
        let out = self.petitlab(args);
        assert!(out.status.success(), "petitlab {args:?}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The command [`Rig::petitlab`] runs, to add environment or stdin.
    pub fn petitlab_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.ns().command(env!("CARGO_BIN_EXE_petitlab"));
        cmd.arg("--lab")
            .arg(&self.lab)
            .args(args)
            .current_dir(self.dir());
        cmd
    }

    /// A long-running petitlab command (`deploy`, `console --log`…) inside
    /// the namespace, its output going to files; killed when dropped.
    pub fn spawn_petitlab(&self, args: &[&str]) -> RigProcess<'_> {
        static SPAWNED: AtomicU32 = AtomicU32::new(0);
        let k = SPAWNED.fetch_add(1, Ordering::SeqCst);
        let stdout = self.dir().join(format!("petitlab-{k}.out"));
        let stderr = self.dir().join(format!("petitlab-{k}.err"));
        let child = self
            .petitlab_command(args)
            .stdin(Stdio::null())
            .stdout(file(&stdout))
            .stderr(file(&stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("start petitlab {args:?}: {e}"));
        RigProcess {
            _rig: self,
            child: Some(child),
            args: args.iter().map(|s| s.to_string()).collect(),
            stdout,
            stderr,
        }
    }

    /// `ipmitool -I lanplus -C 3` against the node's BMC, inside the
    /// namespace (-C 3 avoids a 10 s stall probing other suites).
    pub fn ipmitool(&self, args: &[&str]) -> Output {
        let port = BMC_PORT.to_string();
        self.ns()
            .command(require("ipmitool", "ipmitool"))
            .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port])
            .args(["-U", BMC_USER, "-P", BMC_PASSWORD])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ipmitool")
    }

    /// Everything the guest printed so far, across power cycles.
    pub fn guest_output(&self) -> Vec<u8> {
        self.relay().with_log(|l| l.bytes.clone())
    }

    pub fn guest_len(&self) -> usize {
        self.relay().with_log(|l| l.bytes.len())
    }

    /// Where in [`Rig::guest_output`] each QEMU's output began, and when
    /// the relay connected to it (a power-on or a reset).
    pub fn guest_boots(&self) -> Vec<(usize, Instant)> {
        self.relay().with_log(|l| l.boots.clone())
    }

    /// Waits for `pattern` anywhere in the guest's output; returns the
    /// offset just past its first occurrence.
    pub fn wait_guest(&self, pattern: &str, timeout: Duration) -> usize {
        self.wait_guest_from(0, pattern, timeout)
    }

    /// Waits for `pattern` in the guest's output at or after offset `from`
    /// (e.g. [`Rig::guest_len`] before an action); returns the offset just
    /// past it. Fails the test with the output's tail otherwise.
    pub fn wait_guest_from(&self, from: usize, pattern: &str, timeout: Duration) -> usize {
        let needle = pattern.as_bytes();
        assert!(!needle.is_empty());
        let found = self.relay().wait(Instant::now() + timeout, |log| {
            let hay = log.bytes.get(from.min(log.bytes.len())..)?;
            hay.windows(needle.len())
                .position(|w| w == needle)
                .map(|i| from + i + needle.len())
        });
        found.unwrap_or_else(|| {
            let (len, dropped) = self.relay().with_log(|l| (l.bytes.len(), l.dropped));
            panic!(
                "the guest did not print {pattern:?} within {timeout:?} (after offset {from}; \
                 {len} bytes so far, {dropped} beyond the cap; QEMU {});\n--- guest output, last 3000 bytes ---\n{}",
                match self.qemu_pid() {
                    Some(pid) => format!("running as pid {pid}"),
                    None => "not running".to_string(),
                },
                self.guest_tail(3000)
            )
        })
    }

    /// The last `n` bytes the guest printed, as text.
    pub fn guest_tail(&self, n: usize) -> String {
        self.relay().with_log(|l| {
            let start = l.bytes.len().saturating_sub(n);
            String::from_utf8_lossy(&l.bytes[start..]).into_owned()
        })
    }

    /// Every call of the chassis hook so far, oldest first.
    pub fn chassis_calls(&self) -> Vec<ChassisCall> {
        read_lossy(&self.dir().join("calls.log"))
            .lines()
            .filter_map(|l| {
                let (t, args) = l.split_once(' ')?;
                let secs: f64 = t.parse().ok()?;
                Some(ChassisCall {
                    at: UNIX_EPOCH + Duration::from_secs_f64(secs),
                    args: args.to_string(),
                })
            })
            .collect()
    }

    /// The chassis hook's calls that changed something (`set …`).
    pub fn chassis_sets(&self) -> Vec<String> {
        self.chassis_calls()
            .into_iter()
            .filter(|c| c.args.starts_with("set "))
            .map(|c| c.args)
            .collect()
    }

    /// The boot device the BMC holds (`none`, `pxe`, `default`…).
    pub fn boot_device(&self) -> String {
        read_lossy(&self.dir().join("boot")).trim().to_string()
    }

    /// The running QEMU's pid, checked as the hook checks it (exists, not a
    /// zombie, started when recorded).
    pub fn qemu_pid(&self) -> Option<i32> {
        let rec = read_lossy(&self.dir().join("qemu.pid"));
        let mut it = rec.split_whitespace();
        let pid: i32 = it.next()?.parse().ok()?;
        let start = it.next()?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = stat.rsplit_once(") ")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is stat field 3 (state), fields[19] field 22 (start time).
        let alive = !matches!(fields.first(), Some(&"Z") | Some(&"X"));
        (alive && fields.get(19) == Some(&start)).then_some(pid)
    }

    /// Waits until no QEMU runs; panics after `timeout`.
    pub fn wait_qemu_gone(&self, timeout: Duration) {
        poll_until(
            "QEMU gone",
            timeout,
            || self.qemu_pid().is_none().then_some(()),
            || format!("chassis calls: {:?}", self.chassis_sets()),
        );
    }

    pub fn dnsmasq_log(&self) -> String {
        read_lossy(&self.dir().join("dnsmasq.log"))
    }

    /// `petitlab serve`'s output: one line per HTTP/TFTP request.
    pub fn serve_log(&self) -> String {
        read_lossy(&self.dir().join("serve.log"))
    }

    pub fn ipmi_sim_log(&self) -> String {
        read_lossy(&self.dir().join("ipmi_sim.log"))
    }

    /// QEMU's own stdout and stderr, every boot, with the hook's markers.
    pub fn qemu_log(&self) -> String {
        read_lossy(&self.dir().join("qemu.out"))
    }

    /// Guest bytes the relay could not pass to ipmi_sim (it was not reading).
    pub fn sol_bytes_dropped(&self) -> u64 {
        self.relay().to_bmc_dropped()
    }

    fn dump(&self) {
        let tail = |text: String| artifacts::tail_lines(&text, 40);
        eprintln!(
            "===== petitboot rig {} ({}) after a failure =====",
            self.netns(),
            self.dir().display()
        );
        eprintln!("--- dnsmasq ---\n{}", tail(self.dnsmasq_log()));
        eprintln!("--- petitlab serve ---\n{}", tail(self.serve_log()));
        eprintln!("--- ipmi_sim ---\n{}", tail(self.ipmi_sim_log()));
        eprintln!(
            "--- chassis hook calls ---\n{}",
            tail(read_lossy(&self.dir().join("calls.log")))
        );
        eprintln!("--- QEMU ---\n{}", tail(self.qemu_log()));
        eprintln!(
            "--- guest console, last 8000 bytes ---\n{}",
            self.guest_tail(8000)
        );
        eprintln!("===== end of rig {} =====", self.netns());
    }

    /// Stops the QEMU the hook started: it is not our child, so by its
    /// recorded pid (checked against its start time), SIGTERM, then SIGKILL.
    fn stop_qemu(&self) {
        let Some(pid) = self.qemu_pid() else { return };
        // SAFETY: kill(2) on the pid the hook recorded, verified just now.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.qemu_pid().is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(pid) = self.qemu_pid() {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.qemu_pid().is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Written into a rig dir kept with PETITLAB_RIG_KEEP: the sweep spares it.
const KEEP_MARK: &str = "KEPT";

/// Removes the temp dirs of rigs whose test process is gone (killed before
/// its rig was dropped), except those kept on purpose.
fn sweep_stale_dirs() {
    let tmp = std::env::temp_dir();
    let Ok(entries) = fs::read_dir(&tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(netns::PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        if !Path::new(&format!("/proc/{pid}")).exists() && !dir.join(KEEP_MARK).exists() {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// A command line being built.
struct Argv(Vec<String>);

impl Argv {
    /// Fixed arguments, written as one space-separated string.
    fn words(&mut self, s: &str) {
        self.0.extend(s.split_whitespace().map(String::from));
    }

    fn opt(&mut self, flag: &str, value: &str) {
        self.0.push(flag.to_string());
        self.0.push(value.to_string());
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 artifact path")
}

/// An HTTP answer of any status from `addr`.
fn http_answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    s.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

fn rmcp_pong() -> bool {
    let Ok(sock) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let bmc = SocketAddr::from((Ipv4Addr::LOCALHOST, BMC_PORT));
    if sock.send_to(&ASF_PING, bmc).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(sock.recv_from(&mut buf), Ok((n, from)) if from == bmc && n >= 12 && buf[8] == 0x40)
}

fn stop_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        // Child::kill signals exactly this pid (SIGKILL); wait reaps it.
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() && self.dir.is_some() && self.relay.is_some() {
            self.dump();
        }
        // The BMC first, so nothing powers QEMU on again meanwhile.
        stop_child(&mut self.ipmi_sim);
        if self.dir.is_some() {
            self.stop_qemu();
        }
        stop_child(&mut self.serve);
        stop_child(&mut self.dnsmasq);
        if let Some(mut relay) = self.relay.take() {
            relay.stop();
        }
        // Deletes the namespace (ending anything left in it).
        self.ns.take();
        if let Some(dir) = self.dir.take()
            && std::env::var_os("PETITLAB_RIG_KEEP").is_some()
        {
            let _ = fs::write(dir.path().join(KEEP_MARK), "kept by PETITLAB_RIG_KEEP\n");
            let kept = dir.keep();
            eprintln!(
                "petitboot rig: PETITLAB_RIG_KEEP is set; kept {}",
                kept.display()
            );
        }
    }
}

/// A petitlab command running in the rig's namespace; killed (by pid) when
/// dropped. Borrows the rig so that it cannot outlive it.
pub struct RigProcess<'a> {
    _rig: &'a Rig,
    child: Option<Child>,
    args: Vec<String>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl RigProcess<'_> {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn stdout_so_far(&self) -> String {
        read_lossy(&self.stdout)
    }

    pub fn stderr_so_far(&self) -> String {
        read_lossy(&self.stderr)
    }

    /// Its exit status, once it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().unwrap().try_wait().ok().flatten()
    }

    /// Waits for it to exit; after `timeout` kills it and fails the test with
    /// what it printed.
    pub fn wait_timeout(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.try_wait() {
                break status;
            }
            if Instant::now() >= deadline {
                let args = self.args.clone();
                let (out, err) = (self.stdout_so_far(), self.stderr_so_far());
                drop(self);
                panic!(
                    "petitlab {args:?} still running after {timeout:?}; killed.\nstdout:\n{out}\nstderr:\n{err}"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.child = None;
        Output {
            status,
            stdout: fs::read(&self.stdout).unwrap_or_default(),
            stderr: fs::read(&self.stderr).unwrap_or_default(),
        }
    }

    /// SIGINT, as Ctrl-C would, then waits for it (at most `timeout`).
    pub fn interrupt(self, timeout: Duration) -> Output {
        // SAFETY: kill(2) on our own child's pid, not yet reaped.
        unsafe { libc::kill(self.pid() as i32, libc::SIGINT) };
        self.wait_timeout(timeout)
    }
}

impl Drop for RigProcess<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if std::thread::panicking() {
                eprintln!(
                    "--- petitlab {:?} ---\nstdout:\n{}\nstderr:\n{}",
                    self.args,
                    artifacts::tail_lines(&read_lossy(&self.stdout), 40),
                    artifacts::tail_lines(&read_lossy(&self.stderr), 40)
                );
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
