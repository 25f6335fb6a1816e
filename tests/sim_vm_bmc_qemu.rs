//! Real QEMU against `petitlab sim --vm-bmc`: an emulated POWER9
//! (`-M powernv9`, skiboot from qemu-system-data, no kernel) whose
//! `ipmi-bmc-extern` device connects to the node's simulated BMC. It checks
//! the VM protocol against QEMU's own implementation rather than our reading
//! of it: skiboot's in-band requests are answered (it logs no BT timeout),
//! its reboot request (skiboot reboots when it finds no kernel) comes back
//! as VM_CMD_RESET and QEMU really resets, and a LAN power off makes QEMU
//! exit. Needs qemu-system-ppc64 (QEMU 10.0 from bookworm-backports:
//! apt-get install -t bookworm-backports qemu-system-ppc qemu-system-data)
//! and ipmitool; it never skips.

mod support;

use support::guarded::Guarded;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::lab::{Daemon, loopback_lab};

const NODE: &str = "p9-rack1-02";

/// QEMU, killed by pid when the test ends however it ends.
struct Qemu {
    child: Guarded,
    serial: PathBuf,
}

impl Qemu {
    fn start(link: SocketAddr, dir: &Path) -> Qemu {
        let qemu = support::petitboot_rig::require(
            "qemu-system-ppc64",
            "-t bookworm-backports qemu-system-ppc qemu-system-data",
        );
        let serial = dir.join("serial.log");
        let child = Command::new(qemu)
            .args([
                "-M",
                "powernv9",
                "-nodefaults",
                "-nographic",
                "-monitor",
                "none",
            ])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .args(support::powernv::external_bmc_args(link))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("qemu.err")).unwrap())
            .spawn()
            .expect("start qemu-system-ppc64");
        Qemu {
            child: Guarded(child),
            serial,
        }
    }

    fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// Waits until the console shows `needle` `times` times.
    fn wait_for(&self, needle: &str, times: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.console().matches(needle).count() < times {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not seen {times} times in {limit:?}; console:\n{}",
                tail(&self.console())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(3000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    &text[start..]
}

fn ipmitool(port: u16, command: &str) -> String {
    support::ipmitool_c17::ipmitool(port, command)
        .trim()
        .to_string()
}

#[test]
fn skiboot_in_qemu_talks_to_the_simulated_bmc_in_band() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, ports) = loopback_lab(dir.path());
    let sim = Daemon::start(&lab, &["sim", "--vm-bmc", &format!("{NODE}=127.0.0.1:0")]);
    let line = sim
        .startup
        .iter()
        .find(|l| l.contains(NODE))
        .expect("a line for the node");
    let link: SocketAddr = line
        .rsplit_once(" on ")
        .map(|(_, a)| a.trim().parse().unwrap())
        .unwrap();
    let port = ports[support::lab::NODES.iter().position(|n| *n == NODE).unwrap()];
    assert_eq!(ipmitool(port, "power status"), "Chassis Power is off");

    let started = Instant::now();
    let mut qemu = Qemu::start(link, dir.path());
    // skiboot finds no kernel and asks its BMC to reboot the machine: the
    // sim sends VM_CMD_RESET and QEMU resets, so OPAL starts again. Without
    // an answer from the BMC skiboot would wait there forever.
    qemu.wait_for("OPAL v", 3, Duration::from_secs(60));
    eprintln!("three skiboot boots in {:?}", started.elapsed());
    let console = qemu.console();
    assert!(console.contains("Kernel is zeros"), "{}", tail(&console));
    // Every in-band request was answered (BT logs a timeout otherwise).
    assert!(
        !console.contains("Timeout sending message"),
        "{}",
        tail(&console)
    );
    assert_eq!(ipmitool(port, "power status"), "Chassis Power is on");

    // LAN power off: VM_CMD_POWEROFF, QEMU exits, the node is off.
    ipmitool(port, "power off");
    assert!(
        qemu.child.exited_within(Duration::from_secs(10)),
        "QEMU still runs after a LAN power off"
    );
    assert_eq!(ipmitool(port, "power status"), "Chassis Power is off");
    drop(sim);
}
