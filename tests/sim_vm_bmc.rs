//! `petitlab sim --vm-bmc NODE=ADDR`: the node's BMC is also the in-band
//! BMC of a QEMU guest, over QEMU's `ipmi-bmc-extern` chardev ("VM"
//! protocol). A scripted client plays QEMU's side here, with its own tiny
//! encoder and decoder (written from QEMU's hw/ipmi/ipmi_bmc_extern.c, not
//! shared with petitlab's), while real `ipmitool -I lanplus -C 17` and
//! petitlab's own commands play the LAN side: what one side sets, the
//! other reads. ipmitool is required (apt-get install ipmitool); these
//! tests never skip.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::lab::{Daemon, loopback_lab, ok};

/// cipher_suite = 17 in lab.toml.example: an OpenBMC-like node.
const NODE: &str = "p9-rack1-02";
const OTHER: &str = "p9-rack1-01";

// QEMU's side of the protocol, from ipmi_bmc_extern.c.
const MSG: u8 = 0xA0;
const CMD: u8 = 0xA1;
const ESC: u8 = 0xAA;
const POWEROFF: u8 = 0x03;
const RESET: u8 = 0x04;
/// What QEMU 10 sends on connect: VERSION 1, CAPABILITIES (power,
/// reset, irq, nmi, attn, graceful shutdown).
const QEMU_HELLO: [u8; 6] = [0xFF, 0x01, CMD, 0x08, 0x3F, CMD];

fn escaped(out: &mut Vec<u8>, b: u8) {
    if matches!(b, MSG | CMD | ESC) {
        out.extend_from_slice(&[ESC, b | 0x10]);
    } else {
        out.push(b);
    }
}

/// seq, netfn << 2 | lun, cmd, data, checksum (sum zero), 0xA0.
fn request_frame(seq: u8, netfn: u8, cmd: u8, data: &[u8]) -> Vec<u8> {
    let bytes: Vec<u8> = [seq, netfn << 2, cmd]
        .into_iter()
        .chain(data.iter().copied())
        .collect();
    let sum = bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    let mut out = Vec::new();
    for &b in bytes.iter().chain([sum.wrapping_neg()].iter()) {
        escaped(&mut out, b);
    }
    out.push(MSG);
    out
}

#[derive(Debug, PartialEq)]
enum Frame {
    /// Unescaped, checksum stripped (and checked).
    Message(Vec<u8>),
    Command(Vec<u8>),
}

/// The guest side of one link.
struct Guest {
    stream: TcpStream,
    pending: Vec<u8>,
    /// Commands that arrived while waiting for a response.
    commands: Vec<Vec<u8>>,
}

impl Guest {
    /// Connects as QEMU does and checks the BMC's VERSION greeting.
    fn connect(addr: SocketAddr) -> Guest {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut guest = Guest {
            stream,
            pending: Vec::new(),
            commands: Vec::new(),
        };
        guest.send(&QEMU_HELLO);
        let hello = guest.frame(Duration::from_secs(5));
        assert_eq!(
            hello,
            Some(Frame::Command(vec![0xFF, 0x01])),
            "BMC greeting"
        );
        guest
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next frame within `limit`, if any.
    fn frame(&mut self, limit: Duration) -> Option<Frame> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(end) = self.pending.iter().position(|b| matches!(*b, MSG | CMD)) {
                let raw: Vec<u8> = self.pending.drain(..=end).collect();
                let mut body = Vec::new();
                let mut esc = false;
                for &b in &raw[..raw.len() - 1] {
                    match (esc, b) {
                        (false, ESC) => esc = true,
                        (true, b) => {
                            body.push(b & !0x10);
                            esc = false;
                        }
                        (false, b) => body.push(b),
                    }
                }
                if raw[raw.len() - 1] == CMD {
                    return Some(Frame::Command(body));
                }
                let sum = body.iter().fold(0u8, |a, b| a.wrapping_add(*b));
                assert_eq!(sum, 0, "bad checksum from the BMC: {raw:02X?}");
                body.pop();
                return Some(Frame::Message(body));
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut buf = [0u8; 512];
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("the BMC closed the guest link"),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("guest link: {e}"),
            }
        }
    }

    /// One in-band request: (completion code, data). Commands arriving
    /// meanwhile are kept for [`Guest::command`].
    fn request(&mut self, seq: u8, netfn: u8, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
        self.send(&request_frame(seq, netfn, cmd, data));
        loop {
            match self.frame(Duration::from_secs(5)) {
                Some(Frame::Message(m)) => {
                    assert_eq!(m[..3], [seq, (netfn | 1) << 2, cmd], "response {m:02X?}");
                    return (m[3], m[4..].to_vec());
                }
                Some(Frame::Command(c)) => self.commands.push(c),
                None => panic!("no response to netfn {netfn:#x} cmd {cmd:#x}"),
            }
        }
    }

    /// The next command from the BMC, within 5 s.
    fn command(&mut self) -> Vec<u8> {
        if !self.commands.is_empty() {
            return self.commands.remove(0);
        }
        match self.frame(Duration::from_secs(5)) {
            Some(Frame::Command(c)) => c,
            other => panic!("expected a command from the BMC, got {other:?}"),
        }
    }

    /// Nothing arrives for a while.
    fn quiet(&mut self) {
        assert!(self.commands.is_empty(), "{:02X?}", self.commands);
        let got = self.frame(Duration::from_millis(300));
        assert_eq!(got, None, "unexpected frame from the BMC");
    }

    /// Get System Boot Options, parameter 5, as petitboot asks for it.
    fn boot_flags(&mut self) -> Vec<u8> {
        let (cc, data) = self.request(0x10, 0x00, 0x09, &[0x05, 0x00, 0x00]);
        assert_eq!(cc, 0, "get boot flags");
        assert_eq!(data[..2], [0x01, 0x05], "version 1, parameter 5 unlocked");
        data[2..].to_vec()
    }
}

struct Lab {
    _dir: tempfile::TempDir,
    path: PathBuf,
    ports: Vec<u16>,
    sim: Daemon,
}

impl Lab {
    /// The example lab on loopback, `petitlab sim` with guest links for
    /// `nodes` on ports it picks.
    fn start(nodes: &[&str]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let (path, ports) = loopback_lab(dir.path());
        let mut args = vec!["sim".to_string(), "--line-delay-ms".into(), "1".into()];
        for node in nodes {
            args.push("--vm-bmc".into());
            args.push(format!("{node}=127.0.0.1:0"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let sim = Daemon::start(&path, &args);
        Lab {
            _dir: dir,
            path,
            ports,
            sim,
        }
    }

    /// The guest link address `petitlab sim` printed for `node`.
    fn link(&self, node: &str) -> SocketAddr {
        let prefix = format!("petitlab sim: {node}: ");
        let line = self
            .sim
            .startup
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no line for {node}: {:?}", self.sim.startup));
        let (_, addr) = line
            .split_once("guest BMC link (ipmi-bmc-extern) on ")
            .unwrap_or_else(|| panic!("no guest link for {node}: {line}"));
        addr.trim().parse().unwrap()
    }

    fn port(&self, node: &str) -> u16 {
        let i = support::lab::NODES.iter().position(|n| *n == node).unwrap();
        self.ports[i]
    }

    fn lab(&self) -> &Path {
        &self.path
    }
}

fn ipmitool_path() -> PathBuf {
    [
        "/usr/bin/ipmitool",
        "/usr/local/bin/ipmitool",
        "/usr/sbin/ipmitool",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("ipmitool is not installed; these tests need it: apt-get install ipmitool")
}

/// `ipmitool -I lanplus -C 17` against `node`'s simulated BMC; must succeed.
fn ipmitool(lab: &Lab, node: &str, command: &str) -> String {
    let port = lab.port(node).to_string();
    let started = Instant::now();
    let out = Command::new("timeout")
        .arg("30")
        .arg(ipmitool_path())
        .args(["-I", "lanplus", "-C", "17", "-H", "127.0.0.1", "-p", &port])
        .args(["-U", "admin", "-P", "password"])
        .args(command.split_whitespace())
        .output()
        .expect("run ipmitool");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "ipmitool {command} ({:?}): {stdout}{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ipmitool {command} failed");
    stdout
}

fn power_status(lab: &Lab, node: &str) -> String {
    ipmitool(lab, node, "power status").trim().to_string()
}

#[test]
fn a_lan_override_is_read_in_band_valid_and_an_in_band_clear_is_read_over_the_lan() {
    let lab = Lab::start(&[NODE]);
    let mut guest = Guest::connect(lab.link(NODE));
    // The guest runs: the node is on, and connecting sent it nothing.
    assert_eq!(power_status(&lab, NODE), "Chassis Power is on");
    guest.quiet();

    // The LAN sets a one-shot PXE override (cipher suite 17), then power
    // cycles: the guest gets a reset, and its firmware, booting again,
    // reads the override with the valid bit set (petitboot: "IPMI boot
    // device 0x01"; a clear bit: "boot flags are invalid, ignoring").
    assert!(ipmitool(&lab, NODE, "chassis bootdev pxe").contains("Set Boot Device to pxe"));
    assert!(ipmitool(&lab, NODE, "power cycle").contains("Cycle"));
    assert_eq!(guest.command(), [RESET], "power cycle → VM_CMD_RESET");
    let flags = guest.boot_flags();
    assert_eq!(flags, [0x80, 0x04, 0, 0, 0], "valid, one-shot, PXE");
    assert_eq!(
        (flags[1] >> 2) & 0x0F,
        0x01,
        "petitboot's IPMI_BOOTDEV_NETWORK"
    );

    // petitboot clears a one-shot override before it kexecs, with exactly
    // this request (platform-powerpc.c, clear_ipmi_bootdev_ipmi).
    let (cc, _) = guest.request(0x11, 0x00, 0x08, &[0x05, 0x80, 0x00, 0x00, 0x00, 0x00]);
    assert_eq!(cc, 0);
    let param = ipmitool(&lab, NODE, "chassis bootparam get 5");
    assert!(param.contains("No override"), "{param}");
    assert_eq!(guest.boot_flags(), [0x80, 0x00, 0, 0, 0]);

    // petitlab's own bootdev (cipher 17, persistent): read in-band too, and
    // a hard reset keeps it.
    ok(lab.lab(), &["bootdev", NODE, "disk", "--persistent"]);
    assert!(ipmitool(&lab, NODE, "power reset").contains("Reset"));
    assert_eq!(guest.command(), [RESET], "hard reset → VM_CMD_RESET");
    let flags = guest.boot_flags();
    assert_eq!(flags[..2], [0xC0, 0x08], "valid, persistent, disk");
    guest.quiet();
}

#[test]
fn power_off_from_either_side_powers_the_guest_off() {
    let lab = Lab::start(&[NODE]);
    // No guest yet: the LAN side behaves as for any simulated node.
    assert_eq!(power_status(&lab, NODE), "Chassis Power is off");
    assert!(ipmitool(&lab, NODE, "power cycle").contains("Cycle"));
    assert_eq!(power_status(&lab, NODE), "Chassis Power is on");
    ipmitool(&lab, NODE, "power off");

    let mut guest = Guest::connect(lab.link(NODE));
    assert_eq!(power_status(&lab, NODE), "Chassis Power is on");
    // skiboot's "OPAL: Shutdown request": Chassis Control, power down. It
    // is answered, then QEMU is told to power off (it exits), as by ipmi_sim.
    let (cc, _) = guest.request(0x20, 0x00, 0x02, &[0x00]);
    assert_eq!(cc, 0);
    assert_eq!(guest.command(), [POWEROFF]);
    assert_eq!(power_status(&lab, NODE), "Chassis Power is off");

    // LAN power on and off while the guest is still connected.
    ipmitool(&lab, NODE, "power on");
    assert_eq!(guest.command(), [RESET], "power on → the guest boots again");
    ipmitool(&lab, NODE, "power off");
    assert_eq!(guest.command(), [POWEROFF], "power off → VM_CMD_POWEROFF");

    // QEMU exits: its link closes and the node is off; a new QEMU connects:
    // on again.
    ipmitool(&lab, NODE, "power on");
    assert_eq!(guest.command(), [RESET]);
    drop(guest);
    let deadline = Instant::now() + Duration::from_secs(5);
    while power_status(&lab, NODE) != "Chassis Power is off" {
        assert!(Instant::now() < deadline, "still on after the guest left");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut guest = Guest::connect(lab.link(NODE));
    assert_eq!(power_status(&lab, NODE), "Chassis Power is on");
    guest.quiet();
}

#[test]
fn unknown_commands_get_c1_and_garbage_or_a_stuck_guest_stalls_nobody() {
    let lab = Lab::start(&[NODE, OTHER]);
    let mut guest = Guest::connect(lab.link(NODE));

    // Unknown command (OEM netfn 0x30) and unknown App command: 0xC1.
    assert_eq!(guest.request(1, 0x30, 0x01, &[1, 2, 3]).0, 0xC1);
    assert_eq!(guest.request(2, 0x06, 0x7F, &[]).0, 0xC1);
    // A short request: answered with an error, not a crash.
    assert_eq!(guest.request(3, 0x00, 0x09, &[0x05]).0, 0xC7);
    // Get Device ID works in-band.
    let (cc, id) = guest.request(4, 0x06, 0x01, &[]);
    assert_eq!((cc, id[4]), (0, 0x02), "IPMI 2.0");

    // Garbage: no terminator for a long while, bad checksums, a frame
    // ending in an escape, stray terminators — dropped, never answered,
    // and the link goes on.
    guest.send(&vec![0x55; 100_000]);
    guest.send(&[MSG]);
    let mut bad = request_frame(5, 0x06, 0x01, &[]);
    bad[1] ^= 0x04;
    guest.send(&bad);
    guest.send(&[0x01, 0x02, ESC, MSG, CMD, MSG, 0x42, CMD]);
    guest.quiet();
    assert_eq!(guest.request(6, 0x06, 0x01, &[]).0, 0);

    // A stuck guest on the other node: floods requests and never reads
    // its answers. This node's link and LAN side keep answering promptly.
    let mut stuck = TcpStream::connect(lab.link(OTHER)).unwrap();
    stuck
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let flood: Vec<u8> = (0..2000)
        .flat_map(|i| request_frame(i as u8, 0x06, 0x01, &[]))
        .collect();
    let writer = std::thread::spawn(move || {
        for _ in 0..200 {
            if stuck.write_all(&flood).is_err() {
                break;
            }
        }
        stuck
    });
    for seq in 10..20 {
        let started = Instant::now();
        assert_eq!(guest.request(seq, 0x00, 0x01, &[]).0, 0);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    let started = Instant::now();
    assert_eq!(power_status(&lab, NODE), "Chassis Power is on");
    assert!(started.elapsed() < Duration::from_secs(5));
    let _stuck = writer.join().unwrap();
    guest.quiet();
}

#[test]
fn bad_vm_bmc_flags_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, _) = loopback_lab(dir.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let cases = [
        (
            vec!["--vm-bmc", "nosuch=127.0.0.1:0"],
            "no node named \"nosuch\"",
        ),
        (vec!["--vm-bmc", NODE], "expected NODE=ADDR"),
        (vec!["--vm-bmc", "p9-rack1-02=localhost"], "is not IP:PORT"),
        (
            vec!["--vm-bmc", "p9-rack1-02=10.0.0.1:9002"],
            "not on loopback",
        ),
        (
            vec![
                "--vm-bmc",
                "p9-rack1-02=127.0.0.1:0",
                "--vm-bmc",
                "p9-rack1-02=127.0.0.1:0",
            ],
            "given twice",
        ),
        (
            vec!["--count", "1", "--vm-bmc", "bmc0=127.0.0.1:0"],
            "not to --count BMCs",
        ),
    ];
    let taken_arg = format!("{NODE}={taken}");
    let cases = cases
        .into_iter()
        .chain([(vec!["--vm-bmc", taken_arg.as_str()], "cannot listen on TCP")]);
    for (args, why) in cases {
        let args: Vec<&str> = ["sim"].into_iter().chain(args.iter().copied()).collect();
        let out = support::lab::petitlab(&lab, &args);
        let text = support::lab::show(&out);
        assert!(!out.status.success(), "{args:?} accepted: {text}");
        assert!(text.contains(why), "{args:?}: no {why:?} in {text}");
    }
}
