//! `petitlab sim`'s BMC toolbox judged by clients we did not write:
//! ipmitool -I lanplus for the SEL, FRU device 0, mc info and system info,
//! chassis identify and BMC cold reset; curl over TLS for the same data on
//! the Redfish node's simulated bmcweb. The example lab runs on loopback,
//! each test with its own `petitlab sim`, killed by pid however it ends.
//! The clients are required: without them these tests fail, never skip.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::lab::{NODES, REDFISH_NODE, loopback_lab, repo};

const INSTALL: &str = "apt-get install ipmitool curl";
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The BMC reset pause asked of `petitlab sim` (its knob, in ms).
/// ipmitool -N 1 -R 1 gives up after about 2 s: the pause is longer, so
/// that one failed try fits in it.
const RESET_PAUSE: Duration = Duration::from_millis(3500);

fn tool(name: &str) -> PathBuf {
    support::tools::tool(name, INSTALL)
}

/// `petitlab sim` with the reset pause set, and what it said at startup.
struct Sim {
    child: Child,
    startup: Vec<String>,
    lab: PathBuf,
    ports: Vec<u16>,
    password: String,
    _dir: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim() -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let (lab, ports) = loopback_lab(dir.path());
    let password = std::fs::read_to_string(repo().join("examples/secrets/bmc-password"))
        .unwrap()
        .trim()
        .to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(&lab)
        .arg("sim")
        .env(
            petitlab::sim::lab::BMC_RESET_PAUSE_ENV,
            RESET_PAUSE.as_millis().to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start petitlab sim");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut startup = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains("running") => break,
            Ok(line) => startup.push(line),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("petitlab sim did not start ({e}); it printed {startup:?}");
            }
        }
    }
    Sim {
        child,
        startup,
        lab,
        ports,
        password,
        _dir: dir,
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn run(program: &str, args: &[String]) -> Run {
    let child = tokio::process::Command::new(tool(program))
        .args(args)
        // Dates as the tests expect them, whatever the machine's zone.
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} hung for {COMMAND_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("{program} {args:?}: {}{}", run.stdout, run.stderr);
    run
}

/// ipmitool -I lanplus on IPMI port `port`, with `extra` options (e.g.
/// retries) before the command.
async fn ipmitool_at(sim: &Sim, port: u16, user: &str, extra: &[&str], command: &str) -> Run {
    let port = port.to_string();
    let mut args: Vec<String> = ["-I", "lanplus", "-H", "127.0.0.1", "-p", &port, "-U", user]
        .iter()
        .chain(&["-P", sim.password.as_str()])
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    args.extend(command.split_whitespace().map(String::from));
    run("ipmitool", &args).await
}

/// An ipmitool command on the first node that must succeed: its output.
async fn ok(sim: &Sim, command: &str) -> String {
    let run = ipmitool_at(sim, sim.ports[0], "admin", &[], command).await;
    assert!(run.ok, "ipmitool {command} failed: {}", run.stderr);
    run.stdout
}

/// `sel list` of an empty SEL (ipmitool says so on stderr).
fn assert_sel_empty(run: &Run) {
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "", "records left");
    assert!(run.stderr.contains("SEL has no entries"), "{}", run.stderr);
}

/// `Key : value` lines of `mc info`, `fru print`, `sel info`.
fn field<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .filter_map(|l| l.split_once(" : "))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .unwrap_or_else(|| panic!("no {key:?} in {output}"))
}

/// `sel elist` lines as (description, event) pairs: the record's sensor
/// (its "#0x.." number dropped) and what happened.
fn events(list: &str) -> Vec<(String, String)> {
    list.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split(" | ").map(str::trim).collect();
            let sensor = cols.get(3)?.split(" #0x").next()?.to_string();
            Some((sensor, cols.get(4)?.to_string()))
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const SEEDS: [(&str, &str); 2] = [
    ("Event Logging Disabled", "Log area reset/cleared"),
    ("System Event", "Timestamp Clock Sync"),
];

/// Polls `sel elist` until it has `count` records (the host's boot
/// milestones arrive as it prints them).
async fn elist_until(sim: &Sim, count: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = events(&ok(sim, "sel elist").await);
        if list.len() >= count || Instant::now() > deadline {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn sel_records_power_and_boot_and_clears() {
    let sim = start_sim();
    let info = ok(&sim, "sel info").await;
    assert_eq!(field(&info, "Entries"), "2");
    assert_eq!(field(&info, "Overflow"), "false");
    assert_eq!(field(&info, "# of Alloc Units"), "512");
    assert!(info.contains("'Reserve'"), "{info}");
    let list = ok(&sim, "sel list").await;
    assert_eq!(events(&list), pairs(&SEEDS));
    // Real timestamps: the BMC's date (Get SEL Time), not "Pre-Init".
    assert!(!list.contains("Pre-Init"), "{list}");
    let today = ok(&sim, "sel time get").await;
    let today = today.split_whitespace().next().unwrap().to_string();
    assert!(list.contains(&format!("| {today} |")), "{list} vs {today}");

    assert!(ok(&sim, "chassis power on").await.contains("Up/On"));
    let mut expected = SEEDS.to_vec();
    expected.extend([
        ("System ACPI Power State", "S0/G0: working"),
        ("System Boot Initiated", "Initiated by power up"),
        // ipmitool's names for sensor type 0Fh and progress code 13h.
        ("System Firmwares", "System boot initiated"),
        ("OS Boot", "C: boot completed"),
    ]);
    assert_eq!(elist_until(&sim, expected.len()).await, pairs(&expected));

    ok(&sim, "chassis power reset").await;
    expected.extend([
        ("System Boot Initiated", "Initiated by hard reset"),
        ("System Firmwares", "System boot initiated"),
        ("OS Boot", "C: boot completed"),
    ]);
    assert_eq!(elist_until(&sim, expected.len()).await, pairs(&expected));
    ok(&sim, "chassis power off").await;
    expected.push(("System ACPI Power State", "S5/G2: soft-off"));
    assert_eq!(elist_until(&sim, expected.len()).await, pairs(&expected));

    let entry = ok(&sim, "sel get 3").await;
    assert_eq!(field(&entry, "Sensor Type"), "System ACPI Power State");
    assert_eq!(field(&entry, "Description"), "S0/G0: working");
    assert_eq!(field(&entry, "Generator ID"), "0020");

    assert!(ok(&sim, "sel clear").await.contains("Clearing SEL"));
    assert_sel_empty(&ipmitool_at(&sim, sim.ports[0], "admin", &[], "sel list").await);
    let info = ok(&sim, "sel info").await;
    assert_eq!(field(&info, "Entries"), "0");
    assert_ne!(field(&info, "Last Del Time"), "Not Available");
}

/// The deterministic FRU of each example node: what the lead's client
/// tests can cross-check too.
const FRUS: [(&str, [(&str, &str); 14]); 2] = [
    (
        "p9-rack1-01",
        [
            ("Chassis Type", "Rack Mount Chassis"),
            ("Chassis Part Number", "9006-22P"),
            ("Chassis Serial", "PLBFB60CC4"),
            ("Board Mfg Date", "Thu Sep 19 00:00:00 2019 UTC"),
            ("Board Mfg", "IBM"),
            ("Board Product", "P9 Romulus"),
            ("Board Serial", "YA889D5B47"),
            ("Board Part Number", "01DH391"),
            ("Product Manufacturer", "IBM"),
            ("Product Name", "P9 Romulus"),
            ("Product Part Number", "9006-22P"),
            ("Product Version", "1.0"),
            ("Product Serial", "PLBFB60CC4"),
            ("Product Asset Tag", "p9-rack1-01"),
        ],
    ),
    (
        "p8-rack2-01",
        [
            ("Chassis Type", "Rack Mount Chassis"),
            ("Chassis Part Number", "8335-GTA"),
            ("Chassis Serial", P8_SERIAL),
            ("Board Mfg Date", P8_DATE),
            ("Board Mfg", "IBM"),
            ("Board Product", "P8 Palmetto"),
            ("Board Serial", P8_BOARD_SERIAL),
            ("Board Part Number", P8_BOARD_PART),
            ("Product Manufacturer", "IBM"),
            ("Product Name", "P8 Palmetto"),
            ("Product Part Number", "8335-GTA"),
            ("Product Version", "1.0"),
            ("Product Serial", P8_SERIAL),
            ("Product Asset Tag", "p8-rack2-01"),
        ],
    ),
];
const P8_SERIAL: &str = "PL60C57BB7";
const P8_DATE: &str = "Thu Feb  6 00:00:00 2020 UTC";
const P8_BOARD_SERIAL: &str = "YAECA0558D";
const P8_BOARD_PART: &str = "01DH341";

#[tokio::test]
async fn fru_mc_info_and_system_firmware_version() {
    let sim = start_sim();
    for (node, fields) in FRUS {
        let index = NODES.iter().position(|n| *n == node).unwrap();
        // p8-rack2-01's BMC user is ADMIN (as lab.toml.example says).
        let user = if node.starts_with("p8") {
            "ADMIN"
        } else {
            "admin"
        };
        let run = ipmitool_at(&sim, sim.ports[index], user, &[], "fru print 0").await;
        assert!(run.ok, "fru print 0 on {node}: {}", run.stderr);
        for (key, value) in fields {
            assert_eq!(field(&run.stdout, key), value, "{node}: {key}");
        }
    }
    let fru = ok(&sim, "fru print").await;
    assert_eq!(
        field(&fru, "FRU Device Description"),
        "Builtin FRU Device (ID 0)"
    );

    let info = ok(&sim, "mc info").await;
    assert_eq!(field(&info, "Firmware Revision"), "2.10");
    assert_eq!(field(&info, "IPMI Version"), "2.0");
    assert_eq!(field(&info, "Manufacturer ID"), "2");
    assert!(
        field(&info, "Manufacturer Name").starts_with("IBM"),
        "{info}"
    );
    assert_eq!(field(&info, "Product ID"), "1 (0x0001)");
    for support in ["SEL Device", "FRU Inventory Device", "Chassis Device"] {
        assert!(info.contains(support), "{info}");
    }
    let fw = ok(&sim, "mc getsysinfo system_fw_version").await;
    assert_eq!(fw.trim(), petitlab::sim::HOST_FIRMWARE_VERSION);
    assert_eq!(ok(&sim, "mc getsysinfo system_name").await.trim(), NODES[0]);
    // Write FRU Data is refused: the FRU is read-only.
    let raw = ipmitool_at(&sim, sim.ports[0], "admin", &[], "raw 0x0a 0x12 0 0 0 1").await;
    assert!(!raw.ok, "{}", raw.stdout);
}

/// Get Chassis Status' misc byte (identify state in bits 5:4).
async fn identify_bits(sim: &Sim) -> u8 {
    let raw = ok(sim, "raw 0x00 0x01").await;
    let bytes: Vec<u8> = raw
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    bytes[2]
}

#[tokio::test]
async fn chassis_identify_force_interval_and_off() {
    let sim = start_sim();
    assert_eq!(identify_bits(&sim).await, 0x40, "off, state reported");
    let said = ok(&sim, "chassis identify force").await;
    assert!(said.contains("indefinite"), "{said}");
    assert_eq!(identify_bits(&sim).await, 0x60, "indefinite on");
    assert!(ok(&sim, "chassis identify 0").await.contains("off"));
    assert_eq!(identify_bits(&sim).await, 0x40);
    ok(&sim, "chassis identify 1").await;
    assert_eq!(identify_bits(&sim).await, 0x50, "timed on");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(identify_bits(&sim).await, 0x40, "its second is over");
}

#[tokio::test]
async fn mc_reset_cold_silences_the_bmc_and_keeps_the_host_on() {
    let sim = start_sim();
    ok(&sim, "chassis power on").await;
    assert!(ok(&sim, "mc reset cold").await.contains("Sent cold reset"));
    let reset_at = Instant::now();
    // Rebooting: not even a session opens (one try, one second).
    let quick = ["-N", "1", "-R", "1"];
    let down = ipmitool_at(&sim, sim.ports[0], "admin", &quick, "mc info").await;
    assert!(!down.ok, "answered while rebooting: {}", down.stdout);
    assert!(reset_at.elapsed() < RESET_PAUSE, "too slow to tell");
    // Back, after the pause asked for, with the host still on.
    let back = loop {
        let run = ipmitool_at(&sim, sim.ports[0], "admin", &quick, "power status").await;
        if run.ok {
            break run;
        }
        assert!(
            reset_at.elapsed() < RESET_PAUSE + Duration::from_secs(10),
            "the BMC did not come back"
        );
    };
    assert!(
        reset_at.elapsed() >= RESET_PAUSE - Duration::from_millis(200),
        "back after {:?}, before the pause",
        reset_at.elapsed()
    );
    assert_eq!(back.stdout.trim(), "Chassis Power is on");
    let list = events(&ok(&sim, "sel elist").await);
    assert_eq!(
        list.last().unwrap(),
        &(
            "System Event".to_string(),
            "Timestamp Clock Sync".to_string()
        )
    );
    // The host did not go through a power event: one power-on only.
    let ons = list.iter().filter(|(_, e)| e == "S0/G0: working").count();
    assert_eq!(ons, 1, "{list:?}");
    // Only an administrator may reset the BMC: a USER session's reset is
    // refused (ipmitool does not wait for the answer), so it still answers.
    ipmitool_at(
        &sim,
        sim.ports[0],
        "admin",
        &["-L", "USER"],
        "mc reset cold",
    )
    .await;
    let still = ipmitool_at(&sim, sim.ports[0], "admin", &quick, "mc info").await;
    assert!(still.ok, "a USER session reset the BMC: {}", still.stderr);
}

/// The Redfish node's HTTPS port, IPMI port (same number, UDP) and CA,
/// from `petitlab sim`'s startup line.
fn redfish_of(sim: &Sim) -> (u16, PathBuf) {
    let prefix = format!("{REDFISH_NODE}: Redfish on https://127.0.0.1:");
    let line = sim
        .startup
        .iter()
        .find_map(|l| l.split_once(&prefix).map(|(_, rest)| rest.to_string()))
        .unwrap_or_else(|| panic!("no Redfish line in {:?}", sim.startup));
    let (port, rest) = line.split_once(' ').unwrap();
    let ca = rest
        .strip_prefix("(CA ")
        .and_then(|r| r.split_once(')'))
        .map(|(ca, _)| PathBuf::from(ca))
        .unwrap_or_else(|| panic!("no CA in {line:?}"));
    (port.parse().unwrap(), ca)
}

/// curl with the front end's CA and the node's (root) credentials: the
/// status and the body.
async fn curl(
    sim: &Sim,
    https: u16,
    ca: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let out = sim.lab.with_file_name("curl-body");
    let auth = format!("root:{}", sim.password);
    let url = format!("https://127.0.0.1:{https}{path}");
    let mut args: Vec<String> = [
        "-sS",
        "--cacert",
        ca.to_str().unwrap(),
        "-u",
        &auth,
        "-X",
        method,
        "-o",
        out.to_str().unwrap(),
        "-w",
        "%{http_code}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(body) = body {
        args.extend(
            [
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ]
            .map(String::from),
        );
    }
    args.push(url);
    let run = run("curl", &args).await;
    assert!(run.ok, "curl {method} {path}: {}", run.stderr);
    let body = std::fs::read_to_string(&out).unwrap_or_default();
    (run.stdout.trim().parse().unwrap(), body)
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

#[tokio::test]
async fn redfish_shows_the_same_inventory_identify_log_and_reset() {
    let sim = start_sim();
    let (https, ca) = redfish_of(&sim);
    let ipmi = |command: &'static str| {
        let sim = &sim;
        async move {
            let run = ipmitool_at(sim, https, "root", &[], command).await;
            assert!(
                run.ok,
                "ipmitool {command} on {REDFISH_NODE}: {}",
                run.stderr
            );
            run.stdout
        }
    };
    let inv = petitlab::sim::Inventory::for_node(REDFISH_NODE);
    let (status, body) = curl(&sim, https, &ca, "GET", "/redfish/v1/Systems/system", None).await;
    assert_eq!(status, 200);
    let system = json(&body);
    assert_eq!(system["Manufacturer"], "IBM");
    assert_eq!(system["Model"], "P10 Rainier");
    assert_eq!(system["PartNumber"], "9105-22A");
    assert_eq!(system["SerialNumber"], inv.serial_number.as_str());
    assert_eq!(system["BiosVersion"], petitlab::sim::HOST_FIRMWARE_VERSION);
    assert_eq!(system["LocationIndicatorActive"], false);
    // The same serial over IPMI's FRU.
    let fru = ipmi("fru print 0").await;
    assert_eq!(field(&fru, "Product Serial"), inv.serial_number);
    let (_, body) = curl(&sim, https, &ca, "GET", "/redfish/v1/Managers/bmc", None).await;
    let manager = json(&body);
    assert_eq!(
        manager["FirmwareVersion"],
        petitlab::sim::BMC_FIRMWARE_VERSION
    );
    assert!(
        field(&ipmi("mc info").await, "Firmware Revision") == "2.10",
        "IPMI and Redfish agree on the BMC firmware"
    );

    // Identify: PATCHed over Redfish, seen over IPMI, and back.
    let on = r#"{"LocationIndicatorActive":true}"#;
    let (status, _) = curl(
        &sim,
        https,
        &ca,
        "PATCH",
        "/redfish/v1/Systems/system",
        Some(on),
    )
    .await;
    assert_eq!(status, 204);
    let raw = ipmi("raw 0x00 0x01").await;
    assert_eq!(raw.split_whitespace().nth(2), Some("60"), "{raw}");
    ipmi("chassis identify 0").await;
    let (_, body) = curl(&sim, https, &ca, "GET", "/redfish/v1/Systems/system", None).await;
    assert_eq!(json(&body)["LocationIndicatorActive"], false);

    // The event log is the SEL's power records.
    let reset = "/redfish/v1/Systems/system/Actions/ComputerSystem.Reset";
    let (status, _) = curl(
        &sim,
        https,
        &ca,
        "POST",
        reset,
        Some(r#"{"ResetType":"On"}"#),
    )
    .await;
    assert_eq!(status, 204);
    // Until the host is up (its boot's records are in), so that none
    // arrives after the clear below.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ipmi("sel elist").await.contains("C: boot completed") {
        assert!(Instant::now() < deadline, "the host did not boot");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let entries = "/redfish/v1/Systems/system/LogServices/EventLog/Entries";
    let (_, body) = curl(&sim, https, &ca, "GET", entries, None).await;
    let log = json(&body);
    assert_eq!(log["Members@odata.count"], 1, "{log}");
    assert_eq!(log["Members"][0]["MessageId"], "OpenBMC.0.1.DCPowerOn");
    // Its Id is the SEL record's (3: after the two seeds), in hex there.
    assert_eq!(log["Members"][0]["Id"], "3");
    let sel = ipmi("sel get 3").await;
    assert_eq!(field(&sel, "Description"), "S0/G0: working");

    let service = "/redfish/v1/Systems/system/LogServices/EventLog";
    let (_, body) = curl(&sim, https, &ca, "GET", service, None).await;
    let clear = json(&body)["Actions"]["#LogService.ClearLog"]["target"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = curl(&sim, https, &ca, "POST", &clear, Some("{}")).await;
    assert_eq!(status, 204);
    assert_sel_empty(&ipmitool_at(&sim, https, "root", &[], "sel list").await);

    // Manager.Reset: the BMC reboots (Redfish and IPMI both silent or
    // refusing), the host stays on.
    let target = manager["Actions"]["#Manager.Reset"]["target"]
        .as_str()
        .unwrap()
        .to_string();
    let body = r#"{"ResetType":"GracefulRestart"}"#;
    let (status, _) = curl(&sim, https, &ca, "POST", &target, Some(body)).await;
    assert_eq!(status, 204);
    let (status, _) = curl(&sim, https, &ca, "GET", "/redfish/v1/Systems/system", None).await;
    assert_eq!(status, 503, "rebooting");
    let quick = ["-N", "1", "-R", "1"];
    let down = ipmitool_at(&sim, https, "root", &quick, "power status").await;
    assert!(!down.ok, "IPMI answered while rebooting");
    tokio::time::sleep(RESET_PAUSE).await;
    let (status, body) = curl(&sim, https, &ca, "GET", "/redfish/v1/Systems/system", None).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["PowerState"], "On");
    assert_eq!(ipmi("power status").await.trim(), "Chassis Power is on");
}
