//! Proves the SOL side of the ipmi_sim harness with a reference console:
//! ipmitool's `sol activate`, run in a private tmux server because it needs a
//! terminal. Fails (never skips) when ipmi_sim, ipmitool or tmux is missing.

mod support;

use std::time::{Duration, Instant};

use support::ipmi_sim::{IpmiSim, PASSWORD, SOL_BREAK, USER, require_binary};
use support::tmux::Tmux;

const WAIT: Duration = Duration::from_secs(15);
/// The tmux window of ipmitool's console.
const SOL: &str = "sol";
const OPERATIONAL: &str = "[SOL Session operational";

/// ipmitool's SOL console against `sim`, in the window [`SOL`].
fn sol_console(sim: &IpmiSim) -> Tmux {
    let ipmitool = require_binary("ipmitool");
    let tmux = Tmux::new(WAIT);
    tmux.run(
        SOL,
        &format!(
            "{} -I lanplus -C 3 -H 127.0.0.1 -p {} -U {USER} -P {PASSWORD} sol activate",
            ipmitool.display(),
            sim.port()
        ),
    );
    tmux
}

#[test]
fn ipmitool_sol_console_talks_to_serial_side() {
    let (sim, mut serial) = IpmiSim::start_with_sol();
    let console = sol_console(&sim);
    console.wait_for(SOL, OPERATIONAL);

    serial.write_all(b"hello-from-host\r\n");
    console.wait_for(SOL, "hello-from-host");

    console.type_text(SOL, "typed-by-admin");
    let got = serial.read_until(b"typed-by-admin", WAIT);
    assert_eq!(got, b"typed-by-admin", "nothing else before it");

    console.keys(SOL, &["Enter"]);
    assert_eq!(serial.read_exact_timeout(1, WAIT), b"\r");

    console.type_text(SOL, "~.");
    let (status, screen) = console.wait_for_exit(SOL);
    assert_eq!(status, 0, "ipmitool failed; pane:\n{}", screen.trim_end());
    // `~.` itself is not sent to the host.
    assert_eq!(serial.read_for(Duration::from_millis(300)), b"");
}

#[test]
fn all_byte_values_and_break_pass_through_sol() {
    let (sim, mut serial) = IpmiSim::start_with_sol();
    let console = sol_console(&sim);
    console.wait_for(SOL, OPERATIONAL);
    let output = console.record_output(SOL);
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
    console.type_bytes(SOL, &all);
    assert_eq!(serial.read_exact_timeout(all.len(), WAIT), all);

    // `~B` sets the "generate break" bit; ipmi_sim writes IAC BREAK, but
    // only together with the next data from the console.
    console.type_bytes(SOL, b"\r");
    assert_eq!(serial.read_exact_timeout(1, WAIT), b"\r");
    console.type_text(SOL, "~B");
    wait_for_output(&output, "[send break]");
    console.type_text(SOL, "Z");
    assert_eq!(
        serial.read_exact_timeout(3, WAIT),
        [&SOL_BREAK[..], b"Z"].concat()
    );

    console.type_text(SOL, "\r~.");
    // The exit status line of `Tmux::run`.
    wait_for_output(&output, "[exit 0]");
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
