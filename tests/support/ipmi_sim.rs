//! Test harness around OpenIPMI's `ipmi_sim`: a BMC on 127.0.0.1 speaking
//! IPMI 1.5/2.0 (RMCP+, cipher suites 0,1,2,3,6) with user `admin`/`password`.
//! Power and boot device are backed by files in a temp dir, written by a
//! `chassis_control` script that ipmi_sim runs as `sh -c "<script> get power"`,
//! `... set power 1`, `... set boot pxe`, `... set reset 1`, `... set shutdown 1`.
//!
//! [`IpmiSim::start_with_sol`] also gives the BMC a serial-over-LAN port whose
//! host end is a [`SerialSide`]. What this ipmi_sim (openipmi 2.0.33) does
//! with it, measured with ipmitool as the console:
//! - every byte value 0x00..=0xFF passes unchanged both ways (`tcp:` mode does
//!   no telnet escaping); the "generate break" bit reaches the host as the two
//!   bytes [`SOL_BREAK`] (0xFF 0xF3) in the stream, indistinguishable from data,
//!   and only once the console sends more data (ipmi_sim queues them without
//!   waking its writer), just before that data;
//! - Activate Payload reports inbound (console → BMC) payload size 32 and
//!   outbound (BMC → console) 16384: its buffer sizes;
//! - host → console: it reads the TCP socket 128 bytes at a time into a 16 KiB
//!   buffer (full buffer: it stops reading, so `write_all` blocks), sends one
//!   packet of at most 255 bytes and waits for its ACK before the next
//!   (whatever arrived meanwhile goes in the next packet); an unACKed packet is
//!   resent every second, and after 6 sends everything buffered is dropped.
//!   Bytes the host writes while no SOL session is active are discarded;
//! - a second activation gets completion 0x80 (already active); closing the
//!   session deactivates the payload, a crashed console's stays busy ~30 s;
//! - it does not reset its last-seen sequence number on a new activation, so
//!   the first console → host packet of a second session in the same process
//!   can be ACKed and dropped: use a fresh `IpmiSim` per SOL session.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "password";

/// RMCP ASF Presence Ping (tag 1); ipmi_sim answers with a Presence Pong
/// (message type 0x40) once its LAN socket is up, without any session.
const ASF_PING: [u8; 12] = [6, 0, 0xff, 6, 0, 0, 0x11, 0xbe, 0x80, 1, 0, 0];

/// What ipmi_sim writes to the serial port when the console sets the SOL
/// "generate break" bit (telnet IAC BREAK, even in plain `tcp:` mode); it is
/// held back until the console's next data, which follows it.
pub const SOL_BREAK: [u8; 2] = [0xff, 0xf3];

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
            let package = match name {
                "ipmi_sim" => "openipmi",
                other => other,
            };
            panic!("`{name}` not found on PATH; install it with `apt-get install {package}`")
        })
}

impl IpmiSim {
    pub fn start() -> IpmiSim {
        IpmiSim::launch(None, &[], "")
    }

    /// A BMC with extra files in its directory and extra emulator commands
    /// run after the MC is enabled (`sel_enable`, `sel_add`,
    /// `mc_add_fru_data … file 0 "{dir}/fru.bin"`…); `{dir}` in `emu` is
    /// the BMC's directory. For the toolbox tests: SEL and FRU contents.
    pub fn start_with_emu(files: &[(&str, &[u8])], emu: &str) -> IpmiSim {
        IpmiSim::launch(None, files, emu)
    }

    /// Starts a BMC whose SOL payload is wired to the returned serial port.
    ///
    /// ipmi_sim connects out to the host's TCP end of the serial port while
    /// it starts up, not at SOL activation (and retries only every 10 s), so
    /// the listener is bound first and this returns once ipmi_sim has
    /// connected. If the `SerialSide` is dropped, ipmi_sim notices the EOF and
    /// tries to reconnect every 10 s to a listener that no longer exists.
    pub fn start_with_sol() -> (IpmiSim, SerialSide) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind serial listener");
        let sol_port = listener.local_addr().unwrap().port();
        let mut sim = IpmiSim::launch(Some(sol_port), &[], "");
        let serial = sim.accept_serial(&listener, Duration::from_secs(15));
        (sim, serial)
    }

    fn launch(sol_port: Option<u16>, files: &[(&str, &[u8])], extra_emu: &str) -> IpmiSim {
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
        let mut lan = format!(
            "name \"petitlab-test\"\nset_working_mc 0x20\n\
             startlan 1\naddr 127.0.0.1 {port}\npriv_limit admin\n\
             allowed_auths_callback {auths}\nallowed_auths_user {auths}\n\
             allowed_auths_operator {auths}\nallowed_auths_admin {auths}\n\
             guid a123456789abcdefa123456789abcdef\nendlan\n\
             chassis_control \"{ds}/chassis.sh\"\n\
             user 2 true \"{USER}\" \"{PASSWORD}\" admin 10 {auths}\n"
        );
        if let Some(p) = sol_port {
            // Still in the set_working_mc 0x20 context. The bitrate is only
            // reported; `tcp:` ignores it.
            lan.push_str(&format!("sol \"tcp:127.0.0.1:{p}\" 115200\n"));
        }
        write(d, "lan.conf", &lan);
        for (name, bytes) in files {
            fs::write(d.join(name), bytes).unwrap_or_else(|e| panic!("write {name}: {e}"));
        }
        let emu = format!(
            "mc_setbmc 0x20\n\
             mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
             mc_enable 0x20\n{}",
            extra_emu.replace("{dir}", ds)
        );
        write(d, "emu.cmd", &emu);

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

    fn accept_serial(&mut self, listener: &TcpListener, limit: Duration) -> SerialSide {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + limit;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    return SerialSide {
                        stream,
                        pending: Vec::new(),
                    };
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept on the serial listener: {e}"),
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "ipmi_sim exited ({status}) before connecting its SOL port; stderr:\n{}",
                    self.stderr()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "ipmi_sim did not connect its SOL port within {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// petitlab's target for this BMC: admin/password, cipher suite 3 (all
    /// ipmi_sim offers of 3 and 17), default timing.
    pub fn target(&self) -> petitlab::ipmi::Target {
        use petitlab::ipmi::{CipherChoice, CipherSuite, Credentials, Target, Timing};
        Target {
            addr: self.addr(),
            credentials: Credentials {
                username: USER.into(),
                password: PASSWORD.into(),
            },
            cipher: CipherChoice::Fixed(CipherSuite::Suite3),
            timing: Timing::default(),
        }
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

    /// [`IpmiSim::ipmitool`] with extra environment (TZ=UTC for dates).
    pub fn ipmitool_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let port = self.port.to_string();
        Command::new(require_binary("ipmitool"))
            .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port])
            .args(["-U", USER, "-P", PASSWORD])
            .args(args)
            .envs(env.iter().copied())
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

/// The host's end of the BMC's serial port: what the host writes shows up on
/// the SOL console, what the console types arrives here. Blocking; every
/// wait has a timeout and fails the test with the bytes received so far.
pub struct SerialSide {
    stream: TcpStream,
    /// Received but not yet returned.
    pending: Vec<u8>,
}

impl SerialSide {
    /// Host → console.
    pub fn write_all(&mut self, data: &[u8]) {
        self.stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        self.stream
            .write_all(data)
            .unwrap_or_else(|e| panic!("write {} bytes to the serial port: {e}", data.len()));
    }

    /// The next `n` bytes from the console.
    pub fn read_exact_timeout(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.pending.len() < n {
            if !self.fill(deadline) {
                self.fail(&format!("{n} bytes within {timeout:?}"));
            }
        }
        self.pending.drain(..n).collect()
    }

    /// Everything from the console up to and including the first `pattern`;
    /// what follows it stays for the next read.
    pub fn read_until(&mut self, pattern: &[u8], timeout: Duration) -> Vec<u8> {
        assert!(!pattern.is_empty());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self
                .pending
                .windows(pattern.len())
                .position(|w| w == pattern)
            {
                return self.pending.drain(..i + pattern.len()).collect();
            }
            if !self.fill(deadline) {
                self.fail(&format!(
                    "\"{}\" within {timeout:?}",
                    pattern.escape_ascii()
                ));
            }
        }
    }

    /// Whatever the console sends during `window` (plus anything already
    /// received); for checking that nothing, or only so much, arrives.
    pub fn read_for(&mut self, window: Duration) -> Vec<u8> {
        let deadline = Instant::now() + window;
        while self.fill(deadline) {}
        std::mem::take(&mut self.pending)
    }

    /// The socket and any bytes received but not yet returned, for tests
    /// that drive the serial port themselves (e.g. wrapped in tokio).
    pub fn into_inner(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.pending)
    }

    /// Reads once; false when `deadline` has passed. Panics on EOF.
    fn fill(&mut self, deadline: Instant) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => self.fail("more bytes, but ipmi_sim closed the serial connection"),
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    return true;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => self.fail(&format!("more bytes, but reading failed: {e}")),
            }
        }
    }

    fn fail(&self, wanted: &str) -> ! {
        panic!(
            "serial port: expected {wanted}; received {} bytes: \"{}\"",
            self.pending.len(),
            self.pending.escape_ascii()
        )
    }
}
