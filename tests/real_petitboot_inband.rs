//! Real petitboot, in an emulated POWER9, reads the boot override from
//! petitlab's simulated BMC in-band. `petitlab sim --vm-bmc` serves the
//! node's BMC to QEMU's `ipmi-bmc-extern` (skiboot → Linux's ipmi_powernv →
//! /dev/ipmi0 → petitboot), while the LAN side is ipmitool `-C 17` and
//! petitlab's own `bootdev` and `power`:
//!
//! 1. `bootdev pxe` (one-shot) over the LAN, then QEMU starts: petitboot
//!    logs `IPMI boot device 0x01`, never `boot flags are invalid` (what it
//!    says to stock ipmi_sim). There is no NIC, so nothing boots, and a
//!    one-shot override is only cleared when petitboot boots something
//!    (platform-powerpc.c: pre_boot, just before the kexec), so it stays.
//! 2. `bootdev disk` (one-shot) and a LAN power cycle: the guest is reset
//!    (VM_CMD_RESET), petitboot logs `IPMI boot device 0x02`, autoboots the
//!    disk's kboot.conf after its countdown, and on the way clears the
//!    override in-band: the LAN reads back "No override". The instance
//!    comes up from the disk.
//! 3. A LAN power off powers QEMU off (VM_CMD_POWEROFF).
//!
//! Needs the guest artifacts (tests/peers/petitboot-vm/build.sh, run by the
//! rig's artifacts::ensure when they are not built yet),
//! qemu-system-ppc64 (QEMU 10 from bookworm-backports) and ipmitool. It
//! never skips: without them it fails saying how to get them.

mod support;

use support::guarded::Guarded;

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::lab::{Daemon, loopback_lab, ok};
use support::petitboot_rig::{Arch, artifacts, require};

/// cipher_suite = 17 in lab.toml.example.
const NODE: &str = "p9-rack1-02";
const BOOT_LIMIT: Duration = Duration::from_secs(240);

/// QEMU and a reader of its serial console, stopped by pid on drop.
struct Guest {
    child: Guarded,
    console: Arc<Mutex<Vec<u8>>>,
}

impl Guest {
    fn start(link: SocketAddr, images: &Path, dir: &Path) -> Guest {
        let qemu = require(
            "qemu-system-ppc64",
            "-t bookworm-backports qemu-system-ppc qemu-system-data",
        );
        let socket = dir.join("serial.sock");
        let serial = format!("unix:{},server=on,wait=off", socket.display());
        // The artifact stays untouched: writes go to a temporary overlay.
        let drive = format!(
            "file={},if=none,format=raw,id=d0,snapshot=on",
            images.join("instance.img").display()
        );
        let child = Command::new(qemu)
            .args(["-accel", "tcg", "-M", "powernv9", "-m", "2048", "-smp", "1"])
            .args(["-nographic", "-nodefaults", "-monitor", "none"])
            .arg("-kernel")
            .arg(images.join("kernel"))
            .arg("-initrd")
            .arg(images.join("petitboot.initrd"))
            .args(["-append", "console=hvc0", "-serial", &serial])
            .args(support::powernv::phb_args())
            .args([
                "-drive",
                &drive,
                "-device",
                "virtio-blk-pci,drive=d0,bus=rp1",
            ])
            .args(support::powernv::external_bmc_args(link))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("qemu.err")).unwrap())
            .spawn()
            .expect("start qemu-system-ppc64");
        let mut guest = Guest {
            child: Guarded(child),
            console: Arc::default(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match UnixStream::connect(&socket) {
                Ok(s) => break s,
                Err(e) => {
                    if let Some(status) = guest.child.0.try_wait().unwrap() {
                        let err = std::fs::read_to_string(dir.join("qemu.err"));
                        panic!("QEMU exited ({status}): {}", err.unwrap_or_default());
                    }
                    assert!(Instant::now() < deadline, "no serial socket: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        let console = guest.console.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                console.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        guest
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.console.lock().unwrap()).into_owned()
    }

    fn len(&self) -> usize {
        self.console.lock().unwrap().len()
    }

    /// The console from byte `from` on, once it shows `needle`.
    fn wait_for(&self, from: usize, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let text = {
                let console = self.console.lock().unwrap();
                String::from_utf8_lossy(&console[from.min(console.len())..]).into_owned()
            };
            if text.contains(needle) {
                eprintln!("{needle:?} after {:?}", started.elapsed());
                return text;
            }
            assert!(
                started.elapsed() < BOOT_LIMIT,
                "no {needle:?} within {BOOT_LIMIT:?}; console:\n{}",
                tail(&text)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn ipmitool(port: u16, command: &str) -> String {
    let stdout = support::ipmitool_c17::ipmitool(port, command);
    eprintln!("ipmitool {command}: {stdout}");
    stdout
}

fn boot_device(port: u16) -> String {
    let param = ipmitool(port, "chassis bootparam get 5");
    param
        .lines()
        .find_map(|l| l.split_once("Boot Device Selector :"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| panic!("no boot device selector in {param}"))
}

#[test]
fn petitboot_reads_the_override_in_band_and_clears_a_one_shot_before_kexec() {
    let images = artifacts::ensure(Arch::Ppc64le).dir;
    let dir = tempfile::tempdir().unwrap();
    let (lab, ports) = loopback_lab(dir.path());
    let port = ports[support::lab::NODES.iter().position(|n| *n == NODE).unwrap()];
    let sim = Daemon::start(&lab, &["sim", "--vm-bmc", &format!("{NODE}=127.0.0.1:0")]);
    let link: SocketAddr = sim
        .startup
        .iter()
        .find(|l| l.contains(NODE))
        .and_then(|l| l.rsplit_once(" on "))
        .map(|(_, a)| a.trim().parse().unwrap())
        .expect("the node's guest link address");

    // 1. A one-shot PXE override over the LAN, cipher suite 17.
    assert!(ipmitool(port, "chassis bootdev pxe").contains("Set Boot Device to pxe"));
    let started = Instant::now();
    let mut guest = Guest::start(link, &images, dir.path());
    let console = guest.wait_for(0, "IPMI boot device 0x01");
    eprintln!(
        "petitboot read the override {:?} after power-on",
        started.elapsed()
    );
    for line in console
        .lines()
        .filter(|l| l.contains("IPMI") || l.contains("ipmi"))
    {
        eprintln!("console: {}", line.trim_end());
    }
    assert!(
        !console.contains("boot flags are invalid"),
        "{}",
        tail(&console)
    );
    assert!(
        console.contains("IPMI boot device 0x01\r\n")
            || console.contains("IPMI boot device 0x01\n"),
        "one-shot, not persistent: {}",
        tail(&console)
    );
    // Nothing to netboot (no NIC): no kexec, so the one-shot stays.
    assert_eq!(boot_device(port), "Force PXE");
    assert!(ipmitool(port, "power status").contains("on"));

    // 2. A one-shot disk override with petitlab's own bootdev, then a LAN
    // power cycle: the guest resets and petitboot boots the disk.
    ok(&lab, &["bootdev", NODE, "disk"]);
    let mark = guest.len();
    ok(&lab, &["power", NODE, "cycle"]);
    let console = guest.wait_for(mark, "IPMI boot device 0x02");
    assert!(
        !console.contains("boot flags are invalid"),
        "{}",
        tail(&console)
    );
    let console = guest.wait_for(mark, "Performing kexec reboot");
    assert!(
        console.contains("Timeout expired, booting default option"),
        "{}",
        tail(&console)
    );
    // petitboot cleared the one-shot override in-band before the kexec.
    assert_eq!(boot_device(port), "No override");
    guest.wait_for(mark, "petitlab-instance: booted from disk");
    eprintln!("instance up {:?} after power-on", started.elapsed());

    // 3. LAN power off: QEMU is told to power off and exits.
    ok(&lab, &["power", NODE, "off"]);
    assert!(
        guest.child.exited_within(Duration::from_secs(20)),
        "QEMU runs on after a LAN power off; console:\n{}",
        tail(&guest.text())
    );
    assert!(ipmitool(port, "power status").contains("off"));
    drop(sim);
}
