//! agent/init as a deploy ramdisk runs it. The ramdisk is built the way
//! docs/deploy-ramdisk.md says (a busybox base ramdisk, then
//! agent/add-to-initramfs.sh), unpacked, and its /init run in it with
//! `chroot`, in namespaces this test creates (root needed; it fails, never
//! skips, without them):
//! - its network bring-up in a network namespace against a real dnsmasq
//!   (Debian's dnsmasq-base) with busybox's real udhcpc and, as on Debian,
//!   no udhcpc default script in the ramdisk;
//! - its module loading over a stand-in /sys and a fake kernel module tree
//!   that add-to-initramfs.sh copied in; its `modprobe` writes down what
//!   busybox modprobe would load (`modprobe -D`), so nothing reaches the
//!   host's kernel.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use support::lab::repo;

const SUBNET: &str = "10.213.0";
const NODE_MAC: &str = "52:54:00:21:30:01";

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sh(dir: &Path, script: &str) -> String {
    text(&run(Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)))
}

/// A deploy ramdisk as an operator has one: busybox (with the libraries it
/// links) and its applets, as a gzip'ed newc cpio. Nothing else: no udhcpc
/// default script, as Debian's busybox package has none.
fn base_ramdisk(dir: &Path) -> PathBuf {
    let base = dir.join("base");
    let busybox = sh(dir, "command -v busybox");
    let busybox = busybox.trim();
    assert!(!busybox.is_empty(), "busybox must be installed");
    fs::create_dir_all(base.join("bin")).unwrap();
    fs::copy(busybox, base.join("bin/busybox")).unwrap();
    let ldd = sh(dir, &format!("ldd {busybox} || true"));
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let to = base.join(lib.trim_start_matches('/'));
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(lib, &to).unwrap_or_else(|e| panic!("copy {lib}: {e}"));
    }
    for applet in sh(dir, "busybox --list-full").lines() {
        let link = base.join(applet);
        if link.exists() || applet == "bin/busybox" {
            continue;
        }
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/bin/busybox", &link).unwrap();
    }
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        fs::create_dir_all(base.join(d)).unwrap();
    }
    sh(
        dir,
        "(cd base && find . | busybox cpio -o -H newc 2>/dev/null) | gzip > deploy.initramfs",
    );
    dir.join("deploy.initramfs")
}

/// The base ramdisk plus add-to-initramfs.sh ARGS, unpacked into dir/root
/// as the kernel would: the first archive, then the appended one over it.
fn ramdisk(dir: &Path, args: &[&str]) -> (PathBuf, String) {
    let base = base_ramdisk(dir);
    let script = repo().join("agent/add-to-initramfs.sh");
    let out = run(Command::new("sh")
        .arg(&script)
        .args(args)
        .arg(&base)
        .arg(dir.join("out.initramfs"))
        .current_dir(dir));
    let report = text(&out);
    let base_len = fs::metadata(&base).unwrap().len();
    sh(
        dir,
        &format!(
            "mkdir root && zcat deploy.initramfs | (cd root && busybox cpio -idm 2>/dev/null) && \
             tail -c +{} out.initramfs | zcat | (cd root && busybox cpio -idmu 2>/dev/null)",
            base_len + 1
        ),
    );
    (dir.join("root"), report)
}

/// Runs the ramdisk's /init with `chroot`, inside `wrapper` (the command
/// that puts it in its namespaces), with no input: the shell it drops to on
/// failure reads EOF and exits.
fn run_init(root: &Path, wrapper: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("timeout");
    cmd.arg("120")
        .args(wrapper)
        .args(["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
        .args(env.iter().map(|(k, v)| format!("{k}={v}")))
        .arg("chroot")
        .arg(root)
        .arg("/init")
        .stdin(Stdio::null());
    let out = cmd.output().expect("run the ramdisk's /init");
    let shown = text(&out);
    assert!(
        out.status.code() != Some(124),
        "/init did not finish within 120 s:\n{shown}"
    );
    shown
}

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

/// A stand-in kernel module: the NUL-separated .modinfo strings busybox
/// depmod reads, compressed as the file name says.
fn fake_module(tree: &Path, path: &str, modinfo: &[&str]) {
    let file = tree.join(path);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut body = b"\x7fELF fake module\0".to_vec();
    for field in modinfo {
        body.extend_from_slice(field.as_bytes());
        body.push(0);
    }
    let compress = match path.rsplit('.').next() {
        Some("xz") => Some("xz"),
        Some("gz") => Some("gzip"),
        Some("zst") => Some("zstd"),
        _ => None,
    };
    match compress {
        None => fs::write(&file, body).unwrap(),
        Some(tool) => {
            let raw = file.with_extension("");
            fs::write(&raw, body).unwrap();
            let status = Command::new(tool)
                .arg("-q")
                .arg(&raw)
                .status()
                .unwrap_or_else(|e| {
                    panic!("{tool} must be installed (scripts/test installs it): {e}")
                });
            assert!(status.success() && file.exists(), "{tool} {raw:?}");
            let _ = fs::remove_file(&raw);
        }
    }
}

/// The modprobe the test puts first on /init's PATH: it writes down what
/// real busybox modprobe would load, in order (`-D` loads nothing), and
/// plays the kernel: virtio_pci's probe registers the virtio devices,
/// virtio_net's the NIC eth0.
const STUB_MODPROBE: &str = r#"#!/bin/sh
echo "modprobe $*" >> /modprobe.log
busybox modprobe -D "$@" 2>/dev/null | tee -a /modprobe.log > /tmp/deps
S=$PETITLAB_SYS
if grep -q virtio_pci.ko /tmp/deps; then
    mkdir -p $S/bus/virtio/devices/virtio0 $S/bus/virtio/devices/virtio1
    echo virtio:d00000001v00001AF4 > $S/bus/virtio/devices/virtio0/modalias
    echo virtio:d00000002v00001AF4 > $S/bus/virtio/devices/virtio1/modalias
fi
if grep -q virtio_net.ko /tmp/deps; then
    mkdir -p $S/class/net/eth0/device $S/bus/virtio/drivers/virtio_net
    echo 52:54:00:12:34:56 > $S/class/net/eth0/address
    ln -sf $S/bus/virtio/drivers/virtio_net $S/class/net/eth0/device/driver
fi
exit 0
"#;

#[test]
fn the_init_loads_the_nic_and_disk_modules_in_dependency_order_before_dhcp() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    // The deploy kernel is "this" kernel: busybox modprobe looks in
    // /lib/modules/$(uname -r).
    let version = sh(work, "uname -r").trim().to_string();
    let tree = work.join("linux-image/lib/modules").join(&version);
    let pci = "alias=pci:v00001AF4d*sv*sd*bc*sc*i*";
    for (path, modinfo) in [
        ("kernel/drivers/virtio/virtio.ko", vec!["depends="]),
        (
            "kernel/drivers/virtio/virtio_ring.ko",
            vec!["depends=virtio"],
        ),
        (
            "kernel/drivers/virtio/virtio_pci.ko.xz",
            vec!["depends=virtio,virtio_ring", pci],
        ),
        (
            "kernel/drivers/net/virtio_net.ko.zst",
            vec![
                "depends=virtio_ring,virtio,net_failover",
                "alias=virtio:d00000001v*",
            ],
        ),
        (
            "kernel/drivers/net/net_failover.ko",
            vec!["depends=failover"],
        ),
        // Outside the NIC and disk directories: copied as a dependency.
        ("kernel/net/core/failover.ko", vec!["depends="]),
        (
            "kernel/drivers/block/virtio_blk.ko.gz",
            vec!["depends=virtio,virtio_ring", "alias=virtio:d00000002v*"],
        ),
        ("kernel/drivers/scsi/scsi_mod.ko", vec!["depends="]),
        (
            "kernel/drivers/scsi/sd_mod.ko",
            vec!["depends=scsi_mod,crc-t10dif", "alias=scsi:t-0x00*"],
        ),
        (
            "kernel/lib/crc-t10dif.ko",
            vec!["depends=", "softdep=pre: crct10dif"],
        ),
        // Named by the soft dependency only: "crct10dif" is its algorithm.
        (
            "kernel/crypto/crct10dif_generic.ko",
            vec!["depends=", "alias=crypto-crct10dif"],
        ),
        // Neither NIC nor disk: stays out of the ramdisk.
        (
            "kernel/sound/pci/hda/snd-hda-intel.ko",
            vec!["depends=", "alias=pci:v00008086d*sv*sd*bc04sc03i*"],
        ),
    ] {
        fake_module(&tree, path, &modinfo);
    }

    let (root, report) = ramdisk(work, &["--modules-from", tree.to_str().unwrap()]);
    assert!(
        report.contains(&format!("petitlab: 11 modules of {version} from")),
        "{report}"
    );
    let modules = root.join("lib/modules").join(&version);
    for ko in [
        "kernel/drivers/net/virtio_net.ko",
        "kernel/drivers/virtio/virtio_pci.ko",
        "kernel/drivers/block/virtio_blk.ko",
        "kernel/net/core/failover.ko",
        "kernel/crypto/crct10dif_generic.ko",
    ] {
        let body = fs::read(modules.join(ko)).unwrap_or_else(|e| panic!("{ko}: {e}"));
        assert!(body.starts_with(b"\x7fELF"), "{ko} is copied decompressed");
    }
    let listing = sh(&modules, "find . -type f | sort");
    assert!(!listing.contains("snd"), "{listing}");
    assert!(
        !listing.contains(".xz") && !listing.contains(".gz") && !listing.contains(".zst"),
        "{listing}"
    );
    let dep = fs::read_to_string(modules.join("modules.dep")).unwrap();
    assert!(dep.contains("kernel/drivers/net/virtio_net.ko: "), "{dep}");

    // /sys as the kernel shows it before any module is loaded.
    let sys = root.join("fakesys");
    for (dev, alias) in [
        (
            "pci/devices/0000:00:03.0",
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
        ),
        (
            "pci/devices/0000:00:1b.0",
            "pci:v00008086d0000293Esv00001AF4sd00001100bc04sc03i00",
        ),
        ("platform/devices/serial8250", "platform:serial8250"),
    ] {
        fs::create_dir_all(sys.join("bus").join(dev)).unwrap();
        fs::write(
            sys.join("bus").join(dev).join("modalias"),
            format!("{alias}\n"),
        )
        .unwrap();
    }
    fs::create_dir_all(sys.join("class/net/lo")).unwrap();
    let stub = |name: &str, body: &str| {
        let path = root.join("usr/sbin").join(name);
        let _ = fs::remove_file(&path);
        fs::write(&path, body).unwrap();
        sh(work, &format!("chmod 755 {}", path.display()));
    };
    stub("modprobe", STUB_MODPROBE);
    stub(
        "udhcpc",
        "#!/bin/sh\necho \"udhcpc $*\" >> /modprobe.log\nexit 1\n",
    );

    let out = run_init(
        &root,
        &["unshare", "--net", "--mount"],
        &[("PETITLAB_SYS", "/fakesys")],
    );

    let log = fs::read_to_string(root.join("modprobe.log"))
        .unwrap_or_else(|e| panic!("/init never ran modprobe ({e}):\n{out}"));
    let at = |needle: &str| {
        log.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} never loaded:\n{log}\n{out}"))
    };
    for chain in [
        &["/virtio.ko", "/virtio_ring.ko", "/virtio_pci.ko"][..],
        &["/failover.ko", "/net_failover.ko", "/virtio_net.ko"],
        &["/virtio_ring.ko", "/virtio_blk.ko"],
        &["/scsi_mod.ko", "/sd_mod.ko"],
    ] {
        for pair in chain.windows(2) {
            assert!(
                at(pair[0]) < at(pair[1]),
                "{} loads before {}:\n{log}",
                pair[0],
                pair[1]
            );
        }
    }
    let dhcp = at("udhcpc -i eth0");
    let lines: Vec<&str> = log.lines().collect();
    let last_insmod = lines.iter().rposition(|l| l.starts_with("insmod")).unwrap();
    assert!(last_insmod < dhcp, "every module loads before DHCP:\n{log}");
    assert!(!log.contains("snd"), "{log}");
    for line in [
        format!("petitlab-init: looked up the drivers of 5 devices in /lib/modules/{version}; loaded: "),
        "petitlab-init: eth0: no IPv4 address after DHCP (MAC 52:54:00:12:34:56, driver virtio_net)"
            .to_string(),
    ] {
        assert!(out.contains(&line), "{line:?} missing:\n{out}");
    }
}
