//! Smoke test for tests/support/ipmi_sim.rs, driven by a reference client
//! (ipmitool) so harness bugs are not confused with petitlab bugs.

mod support;

use std::process::Output;
use support::ipmi_sim::{IpmiSim, PASSWORD, require_binary};

fn show(out: &Output) -> String {
    format!(
        "exit {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs ipmitool with the right password and requires success.
fn ok(sim: &IpmiSim, args: &[&str]) -> String {
    let out = sim.ipmitool(PASSWORD, args);
    assert!(
        out.status.success(),
        "expected `ipmitool {}` to succeed; {}",
        args.join(" "),
        show(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ipmitool_drives_power_and_boot_through_ipmi_sim() {
    require_binary("ipmitool");
    let sim = IpmiSim::start();

    ok(&sim, &["power", "on"]);
    let status = ok(&sim, &["power", "status"]);
    assert!(
        status.contains("Chassis Power is on"),
        "expected power on, got: {status}"
    );
    assert_eq!(
        sim.power_file_value(),
        "1",
        "expected power file 1 after power on"
    );
    assert!(
        sim.calls().iter().any(|c| c == "set power 1"),
        "expected a `set power 1` call, got {:?}",
        sim.calls()
    );

    ok(&sim, &["chassis", "bootdev", "pxe"]);
    assert_eq!(
        sim.boot_file_value(),
        "pxe",
        "expected boot file pxe after bootdev pxe"
    );

    ok(&sim, &["power", "off"]);
    let status = ok(&sim, &["power", "status"]);
    assert!(
        status.contains("Chassis Power is off"),
        "expected power off, got: {status}"
    );
    assert_eq!(
        sim.power_file_value(),
        "0",
        "expected power file 0 after power off"
    );

    let out = sim.ipmitool("wrong-password", &["power", "status"]);
    assert!(
        !out.status.success(),
        "expected ipmitool to fail with a wrong password; {}",
        show(&out)
    );
}
