//! The many-BMCs-per-process ipmi_sim farm that `benches/power_sweep.rs`
//! measures against: each BMC answers on its own port with its own power
//! state (ipmitool), and `petitlab --local power` drives the whole farm with
//! the right answers, idempotent on and off included.

mod support;

use std::path::Path;

use support::ipmi_sim_farm::Farm;

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {}\nstdout:\n{}stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn petitlab(lab: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--local")
        .arg("--lab")
        .arg(lab)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run petitlab");
    stdout(&out)
}

/// `n0000: <answer>` lines, in node order.
fn answers(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_once(": ").expect("NODE: answer").1.to_string())
        .collect()
}

#[test]
fn each_bmc_of_a_shared_process_has_its_own_port_and_power() {
    // 3 processes: 5, 5 and 2 BMCs.
    let farm = Farm::start(12, 5);
    assert_eq!((farm.len(), farm.processes()), (12, 3));
    for i in [0, 4, 5, 11] {
        let out = stdout(&farm.ipmitool(i, &["power", "status"]));
        assert_eq!(out.trim(), "Chassis Power is off", "BMC {i}");
    }
    // BMC 6 is the second MC (0x22) of the second process: its hook gets
    // its own MC address, so its neighbours stay off.
    stdout(&farm.ipmitool(6, &["power", "on"]));
    let on: Vec<bool> = (0..12).map(|i| farm.power(i)).collect();
    assert_eq!(on.iter().filter(|&&p| p).count(), 1, "{on:?}");
    assert!(farm.power(6));
    assert_eq!(
        stdout(&farm.ipmitool(6, &["power", "status"])).trim(),
        "Chassis Power is on"
    );
    assert_eq!(
        stdout(&farm.ipmitool(1, &["power", "status"])).trim(),
        "Chassis Power is off"
    );
    // Behind ipmi_sim's back, as a power button would.
    farm.set_power(1, true);
    assert_eq!(
        stdout(&farm.ipmitool(1, &["power", "status"])).trim(),
        "Chassis Power is on"
    );
}

#[test]
fn petitlab_power_drives_the_whole_farm() {
    let farm = Farm::start(30, 10);
    let dir = tempfile::tempdir().unwrap();
    let lab = farm.write_lab(dir.path());
    for i in (0..30).step_by(3) {
        farm.set_power(i, true);
    }
    let status = answers(&petitlab(&lab, &["power", "--all", "status"]));
    let expected: Vec<&str> = (0..30)
        .map(|i| if i % 3 == 0 { "on" } else { "off" })
        .collect();
    assert_eq!(status, expected);

    // On: the ten already on say so and are left alone; the rest are
    // switched on, and the reported power is what the BMC says after.
    let on = answers(&petitlab(&lab, &["power", "--all", "on"]));
    for (i, answer) in on.iter().enumerate() {
        let want = if i % 3 == 0 {
            "on (already)"
        } else {
            "on sent; power is on"
        };
        assert_eq!(answer, want, "n{i:04}");
        assert!(farm.power(i), "n{i:04} is off after `power on`");
    }
    let again = answers(&petitlab(&lab, &["power", "--all", "on"]));
    assert!(again.iter().all(|a| a == "on (already)"), "{again:?}");

    // Off for two nodes in different processes; the others stay on.
    let off = answers(&petitlab(&lab, &["power", "n0004", "n0025", "off"]));
    assert_eq!(off, ["off sent; power is off", "off sent; power is off"]);
    let off: Vec<usize> = (0..30).filter(|&i| !farm.power(i)).collect();
    assert_eq!(off, [4, 25]);

    // Cycle: sent whatever the power is, and the power reported is the
    // BMC's right after: ipmi_sim switches off at once and back on later.
    let cycle = answers(&petitlab(&lab, &["power", "n0007", "cycle"]));
    assert_eq!(cycle, ["cycle sent; power is off"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !farm.power(7) {
        assert!(
            std::time::Instant::now() < deadline,
            "n0007 not back on after its cycle"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
