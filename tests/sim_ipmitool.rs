//! The BMC simulator against the reference clients: real `ipmitool -I
//! lanplus` (cipher suites 3 and 17) and freeipmi's `ipmipower`, each run
//! with a timeout so a hang fails the test instead of stalling CI. The
//! clients are required: without them these tests fail, they never skip.

mod support;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use petitlab::sim::{BmcSpec, BootDevice, Fault, Sim};

const INSTALL: &str = "apt-get install ipmitool freeipmi-tools";
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The tool's path, or a failure that says what to install.
fn tool(name: &str) -> PathBuf {
    support::tools::tool(name, INSTALL)
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn run(program: &str, args: &[String]) -> Run {
    let started = Instant::now();
    let child = tokio::process::Command::new(tool(program))
        .args(args)
        .kill_on_drop(true)
        .output();
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} hung for {COMMAND_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let run = Run {
        ok: status.success(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    eprintln!(
        "{program} {args:?} ({:?}): {}{}",
        started.elapsed(),
        run.stdout,
        run.stderr
    );
    run
}

async fn ipmitool(sim: &Sim, index: usize, cipher: u8, password: &str, command: &str) -> Run {
    let port = sim.addr(index).port().to_string();
    let mut args: Vec<String> = [
        "-I",
        "lanplus",
        "-C",
        &cipher.to_string(),
        "-H",
        "127.0.0.1",
    ]
    .iter()
    .chain(&["-p", &port, "-U", "admin", "-P", password])
    .map(|s| s.to_string())
    .collect();
    args.extend(command.split_whitespace().map(String::from));
    run("ipmitool", &args).await
}

/// Runs an ipmitool command that must succeed; returns its output.
async fn ok(sim: &Sim, cipher: u8, command: &str) -> String {
    let run = ipmitool(sim, 0, cipher, "password", command).await;
    assert!(
        run.ok,
        "ipmitool -C {cipher} {command} failed: {}",
        run.stderr
    );
    run.stdout
}

/// `Key : value` lines of `mc info` and friends.
fn field<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .unwrap_or_else(|| panic!("no {key:?} in {output}"))
}

async fn one_bmc() -> Sim {
    Sim::start(vec![BmcSpec::new("node1", 0, "admin", "password")])
        .await
        .unwrap()
}

async fn ipmitool_power_and_boot(cipher: u8) {
    // A soft off slow enough that "still on right after" is not a race.
    let mut spec = BmcSpec::new("node1", 0, "admin", "password");
    spec.soft_off_delay = Duration::from_secs(2);
    let sim = Sim::start(vec![spec]).await.unwrap();
    assert_eq!(
        ok(&sim, cipher, "power status").await.trim(),
        "Chassis Power is off"
    );

    assert!(ok(&sim, cipher, "power on").await.contains("Up/On"));
    assert_eq!(
        ok(&sim, cipher, "power status").await.trim(),
        "Chassis Power is on"
    );
    let state = sim.chassis(0);
    assert!(state.power_on && state.power_on_count == 1, "{state:?}");

    ok(&sim, cipher, "power off").await;
    assert_eq!(
        ok(&sim, cipher, "power status").await.trim(),
        "Chassis Power is off"
    );
    assert!(!sim.chassis(0).power_on);

    assert!(ok(&sim, cipher, "power cycle").await.contains("Cycle"));
    let state = sim.chassis(0);
    assert!(state.power_on && state.power_on_count == 2, "{state:?}");

    assert!(
        ok(&sim, cipher, "chassis bootdev pxe")
            .await
            .contains("Set Boot Device to pxe")
    );
    let param = ok(&sim, cipher, "chassis bootparam get 5").await;
    assert!(param.contains("Boot Flag Valid"), "{param}");
    assert!(param.contains("Options apply to only next boot"), "{param}");
    assert_eq!(field(&param, "- Boot Device Selector"), "Force PXE");
    let state = sim.chassis(0);
    assert_eq!(
        (state.boot_device, state.persistent),
        (BootDevice::Pxe, false)
    );

    // The one-shot override is consumed by the next boot.
    ok(&sim, cipher, "power cycle").await;
    assert_eq!(sim.chassis(0).booted_from, BootDevice::Pxe);
    assert_eq!(sim.chassis(0).boot_device, BootDevice::None);

    assert!(ok(&sim, cipher, "power reset").await.contains("Reset"));
    let state = sim.chassis(0);
    assert!(state.power_on && state.resets == 1, "{state:?}");

    // Soft off: still on right after, off once the OS "has shut down".
    let mut watch = sim.watch(0);
    assert!(ok(&sim, cipher, "power soft").await.contains("Soft"));
    assert!(sim.chassis(0).power_on);
    let off = tokio::time::timeout(Duration::from_secs(10), watch.wait_for(|s| !s.power_on));
    off.await.expect("soft off completes").unwrap();
    assert_eq!(
        ok(&sim, cipher, "power status").await.trim(),
        "Chassis Power is off"
    );
    sim.shutdown().await;
}

async fn ipmitool_mc_info_and_sensors(cipher: u8) {
    let sim = one_bmc().await;
    let info = ok(&sim, cipher, "mc info").await;
    assert_eq!(field(&info, "IPMI Version"), "2.0");
    assert_eq!(field(&info, "Manufacturer ID"), "2");
    assert_eq!(field(&info, "Firmware Revision"), "2.10");
    assert_eq!(field(&info, "Provides Device SDRs"), "no");
    for support in ["Sensor Device", "SDR Repository Device", "Chassis Device"] {
        assert!(info.contains(support), "{info}");
    }

    ok(&sim, cipher, "power on").await;
    let list = ok(&sim, cipher, "sensor list").await;
    let expected = [
        ("CPU Temp", "degrees C", 50.0..=56.0),
        ("Inlet Temp", "degrees C", 24.0..=27.0),
        ("Fan 1", "RPM", 4500.0..=5000.0),
        ("Total Power", "Watts", 330.0..=350.0),
    ];
    for (name, unit, range) in expected {
        let row: Vec<&str> = list
            .lines()
            .find(|l| l.split('|').next().map(str::trim) == Some(name))
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .split('|')
            .map(str::trim)
            .collect();
        let value: f64 = row[1].parse().unwrap_or_else(|_| panic!("{name}: {row:?}"));
        assert!(range.contains(&value), "{name} = {value}");
        assert_eq!((row[2], row[3]), (unit, "ok"), "{name}: {row:?}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_cipher_3_power_and_boot_device() {
    ipmitool_power_and_boot(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_cipher_17_power_and_boot_device() {
    ipmitool_power_and_boot(17).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_cipher_3_mc_info_and_sensors() {
    ipmitool_mc_info_and_sensors(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_cipher_17_mc_info_and_sensors() {
    ipmitool_mc_info_and_sensors(17).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_wrong_password_fails_with_both_suites() {
    let sim = one_bmc().await;
    for cipher in [3, 17] {
        let run = ipmitool(&sim, 0, cipher, "wrong", "power status").await;
        assert!(!run.ok, "-C {cipher} logged in with a wrong password");
        assert!(run.stderr.contains("Unable to establish"), "{}", run.stderr);
    }
    assert!(!sim.chassis(0).power_on);
    sim.shutdown().await;
}

/// `ipmipower` against several BMCs at once; lines omit the port and come
/// in any order, so count them.
async fn ipmipower(sim: &Sim, cipher: u8, password: &str, action: &str) -> Vec<String> {
    let hosts: Vec<String> = (0..sim.len()).map(|i| sim.addr(i).to_string()).collect();
    let args = [
        "-D",
        "LAN_2_0",
        "-I",
        &cipher.to_string(),
        "-h",
        &hosts.join(","),
        "-u",
        "admin",
        "-p",
        password,
        action,
        "--session-timeout=3000",
        "--retransmission-timeout=500",
    ];
    let run = run("ipmipower", &args.map(String::from)).await;
    let mut lines: Vec<String> = run.stdout.lines().map(String::from).collect();
    lines.sort();
    lines
}

fn times(line: &str, n: usize) -> Vec<String> {
    vec![line.to_string(); n]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmipower_drives_several_bmcs_with_both_suites() {
    let specs = (1..=3).map(|i| BmcSpec::new(&format!("node{i}"), 0, "admin", "password"));
    let sim = Sim::start(specs.collect()).await.unwrap();
    let all_on = |sim: &Sim, on: bool| (0..sim.len()).all(|i| sim.chassis(i).power_on == on);
    for cipher in [3, 17] {
        assert_eq!(
            ipmipower(&sim, cipher, "password", "--stat").await,
            times("127.0.0.1: off", 3)
        );
        assert_eq!(
            ipmipower(&sim, cipher, "password", "--on").await,
            times("127.0.0.1: ok", 3)
        );
        assert!(all_on(&sim, true));
        assert_eq!(
            ipmipower(&sim, cipher, "password", "--stat").await,
            times("127.0.0.1: on", 3)
        );
        assert_eq!(
            ipmipower(&sim, cipher, "password", "--off").await,
            times("127.0.0.1: ok", 3)
        );
        assert!(all_on(&sim, false));
    }
    let wrong = ipmipower(&sim, 17, "wrong", "--stat").await;
    assert_eq!(wrong, times("127.0.0.1: password invalid", 3));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmipower_sees_a_silent_bmc_time_out() {
    let mut silent = BmcSpec::new("hung", 0, "admin", "password");
    silent.fault = Fault::Silent;
    let sim = Sim::start(vec![BmcSpec::new("fine", 0, "admin", "password"), silent])
        .await
        .unwrap();
    let lines = ipmipower(&sim, 17, "password", "--stat").await;
    assert_eq!(lines, ["127.0.0.1: connection timeout", "127.0.0.1: off"]);
    sim.shutdown().await;
}

/// `ipmitool session info active` (Get Session Info for its own session)
/// against the simulator with two of our sessions open: ipmitool counts
/// three active sessions (ours and its own), which is the simulator's own
/// count plus ipmitool's; once ipmitool has closed its session the
/// simulator is back at two, having opened three in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_session_info_matches_the_simulators_session_count() {
    use petitlab::ipmi::{CipherChoice, CipherSuite, Credentials, Session, Target, Timing};
    let sim = one_bmc().await;
    let target = Target {
        addr: sim.addr(0),
        credentials: Credentials {
            username: "admin".into(),
            password: "password".into(),
        },
        cipher: CipherChoice::Fixed(CipherSuite::Suite17),
        timing: Timing::default(),
    };
    let ours = [
        Session::open(&target).await.unwrap(),
        Session::open(&target).await.unwrap(),
    ];
    let before = sim.sessions(0);
    assert_eq!((before.active_ids.len(), before.opened_total), (2, 2));
    for cipher in [3, 17] {
        let info = ok(&sim, cipher, "session info active").await;
        let active: usize = field(&info, "active sessions").parse().unwrap();
        assert_eq!(active, sim.sessions(0).active_ids.len() + 1, "{info}");
        assert_eq!(field(&info, "slot count"), "32");
        assert_eq!(field(&info, "session type"), "IPMIv2/RMCP+");
        assert_eq!(field(&info, "console ip"), "127.0.0.1");
        // ipmitool's is the third session: the lowest free handle.
        assert_eq!(field(&info, "session handle"), "3");
    }
    let after = sim.sessions(0);
    assert_eq!(after.active_ids, before.active_ids);
    assert_eq!(after.opened_total, 4, "two of ours, one per ipmitool run");
    for session in ours {
        session.close().await;
    }
    assert!(sim.sessions(0).active_ids.is_empty());
    sim.shutdown().await;
}
