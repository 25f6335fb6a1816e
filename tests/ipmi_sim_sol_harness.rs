//! Proves the SOL side of the ipmi_sim harness with a reference console:
//! ipmitool's `sol activate`, run in a private tmux server because it needs a
//! terminal. Fails (never skips) when ipmi_sim, ipmitool or tmux is missing.

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::ipmi_sim::{IpmiSim, PASSWORD, SOL_BREAK, USER, require_binary};

const WAIT: Duration = Duration::from_secs(15);
const SESSION: &str = "sol";
const OPERATIONAL: &str = "[SOL Session operational";
/// Printed by the pane's shell once ipmitool has exited.
const EXITED: &str = "[ipmitool exited: ";

/// A private tmux server running ipmitool's SOL console; Drop kills that
/// server, and with it ipmitool, even when the test fails. Its socket lives in
/// a temp dir (`-S`, not `-L name`): a killed tmux server leaves its socket
/// file behind, and this way it goes with the dir.
struct Tmux {
    tmux: PathBuf,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Tmux {
    fn sol_console(sim: &IpmiSim) -> Tmux {
        let ipmitool = require_binary("ipmitool");
        let dir = tempfile::tempdir().expect("create temp dir");
        let guard = Tmux {
            tmux: require_binary("tmux"),
            socket: dir.path().join("tmux.sock"),
            dir,
        };
        // The shell outlives ipmitool so that its exit status stays readable.
        let command = format!(
            "{} -I lanplus -C 3 -H 127.0.0.1 -p {} -U {USER} -P {PASSWORD} sol activate; \
             echo \"{EXITED}$?]\"; sleep 600",
            ipmitool.display(),
            sim.port()
        );
        let out = guard.run(&[
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            "200",
            "-y",
            "50",
            &command,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        guard
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.tmux)
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn run_ok(&self, args: &[&str]) {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The pane as rendered text.
    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", SESSION]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the rendered pane contains `needle`.
    fn wait_for_screen(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not on the console within {WAIT:?}; pane:\n{}",
                screen.trim_end()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Keys typed at the console, taken literally.
    fn type_text(&self, text: &str) {
        self.run_ok(&["send-keys", "-t", SESSION, "-l", text]);
    }

    /// Raw bytes typed at the console.
    fn type_bytes(&self, bytes: &[u8]) {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut args = vec!["send-keys", "-t", SESSION, "-H"];
        args.extend(hex.iter().map(String::as_str));
        self.run_ok(&args);
    }

    /// Starts copying everything ipmitool writes to its terminal, unrendered,
    /// to a file; returns a reader for it.
    fn record_output(&self) -> impl Fn() -> Vec<u8> + use<> {
        let path = self.dir.path().join("pane.bin");
        let ps = path.to_str().expect("utf-8 temp dir");
        self.run_ok(&["pipe-pane", "-O", "-t", SESSION, &format!("cat > '{ps}'")]);
        move || fs::read(&path).unwrap_or_default()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("tmux pane:\n{}", self.screen().trim_end());
        }
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn ipmitool_sol_console_talks_to_serial_side() {
    let (sim, mut serial) = IpmiSim::start_with_sol();
    let console = Tmux::sol_console(&sim);
    console.wait_for_screen(OPERATIONAL);

    serial.write_all(b"hello-from-host\r\n");
    console.wait_for_screen("hello-from-host");

    console.type_text("typed-by-admin");
    let got = serial.read_until(b"typed-by-admin", WAIT);
    assert_eq!(got, b"typed-by-admin", "nothing else before it");

    console.run_ok(&["send-keys", "-t", SESSION, "Enter"]);
    assert_eq!(serial.read_exact_timeout(1, WAIT), b"\r");

    console.type_text("~.");
    let screen = console.wait_for_screen(EXITED);
    assert!(
        screen.contains(&format!("{EXITED}0]")),
        "ipmitool failed; pane:\n{}",
        screen.trim_end()
    );
    // `~.` itself is not sent to the host.
    assert_eq!(serial.read_for(Duration::from_millis(300)), b"");
}

#[test]
fn all_byte_values_and_break_pass_through_sol() {
    let (sim, mut serial) = IpmiSim::start_with_sol();
    let console = Tmux::sol_console(&sim);
    console.wait_for_screen(OPERATIONAL);
    let output = console.record_output();
    let all: Vec<u8> = (0..=255).collect();

    // Host → console: ipmitool writes SOL data to its terminal untouched.
    serial.write_all(&all);
    let deadline = Instant::now() + WAIT;
    while !output().windows(all.len()).any(|w| w == all) {
        assert!(
            Instant::now() < deadline,
            "256 byte values not on the console within {WAIT:?}; got \"{}\"",
            output().escape_ascii()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Console → host (no `~` right after a CR, so no ipmitool escape).
    console.type_bytes(&all);
    assert_eq!(serial.read_exact_timeout(all.len(), WAIT), all);

    // `~B` sets the "generate break" bit; ipmi_sim writes IAC BREAK, but
    // only together with the next data from the console.
    console.type_bytes(b"\r");
    assert_eq!(serial.read_exact_timeout(1, WAIT), b"\r");
    console.type_text("~B");
    wait_for_output(&output, "[send break]");
    console.type_text("Z");
    assert_eq!(
        serial.read_exact_timeout(3, WAIT),
        [&SOL_BREAK[..], b"Z"].concat()
    );

    console.type_text("\r~.");
    wait_for_output(&output, &format!("{EXITED}0]"));
    assert_eq!(serial.read_for(Duration::from_millis(300)), b"\r");
}

/// Waits until ipmitool's raw terminal output contains `needle` (the pane's
/// rendering may be garbled by the control bytes written to it).
fn wait_for_output(output: &impl Fn() -> Vec<u8>, needle: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = output();
        if String::from_utf8_lossy(&out).contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not in ipmitool's output within {WAIT:?}; it ends with \"{}\"",
            out[out.len().saturating_sub(300)..].escape_ascii()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
