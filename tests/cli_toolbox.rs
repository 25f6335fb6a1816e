//! The BMC toolbox through the real CLI (`events`, `inventory`, `firmware`,
//! `identify`, `bmc-reset`, `sensors` on node ranges) against `petitlab
//! sim`, each answer cross-checked with ipmitool on the same BMC: the same
//! SEL entries (`sel list`), FRU fields (`fru print 0`) and firmware
//! (`mc info`).

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::lab::{NODES, REDFISH_NODE, loopback_lab, ok, petitlab, repo, show, start_sim};

fn ipmitool(port: u16, args: &[&str]) -> String {
    let out = Command::new(support::tools::tool("ipmitool", "apt-get install ipmitool"))
        .args(["-I", "lanplus", "-C", "17", "-H", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-U", "admin", "-f"])
        .arg(repo().join("examples/secrets/bmc-password"))
        .args(args)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .output()
        .expect("run ipmitool");
    assert!(out.status.success(), "ipmitool {args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--json` output: each node's result, by node.
fn results(lab: &std::path::Path, args: &[&str]) -> BTreeMap<String, Value> {
    let out = ok(lab, &[&["--json"][..], args].concat());
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    rows.into_iter()
        .map(|row| {
            assert_eq!(row["ok"], true, "{row}");
            (
                row["node"].as_str().unwrap().to_string(),
                row["result"].clone(),
            )
        })
        .collect()
}

/// `ipmitool sel list` as (id, description, direction).
fn sel_list(port: u16) -> Vec<(String, String, String)> {
    ipmitool(port, &["sel", "list"])
        .lines()
        .filter(|l| l.contains('|'))
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            assert_eq!(c.len(), 6, "{l}");
            (c[0].to_string(), c[4].to_string(), c[5].to_lowercase())
        })
        .collect()
}

#[test]
fn events_inventory_and_firmware_agree_with_ipmitool_on_the_same_bmc() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, ports) = loopback_lab(dir.path());
    let sim = start_sim(&lab);
    // Something happens, so the SEL holds more than the simulator's seeds.
    ok(&lab, &["power", "p9-rack1-[01-02]", "on"]);
    // ... and settles: the hosts boot to their OS, the last entry it logs.
    for port in &ports[..2] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !sel_list(*port)
            .iter()
            .any(|(_, what, _)| what == "C: boot completed")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                sel_list(*port)
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    // A range of two nodes, one JSON row each.
    let events = results(&lab, &["events", "group:rack1"]);
    assert_eq!(events.len(), 2, "{events:?}");
    for (node, port) in NODES.iter().zip(&ports).take(2) {
        let ours: Vec<(String, String, String)> = events[*node]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap().to_string(),
                    e["message"].as_str().unwrap().to_string(),
                    e["direction"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let theirs = sel_list(*port);
        assert!(theirs.len() >= 3, "{node}: {theirs:?}");
        assert_eq!(ours, theirs, "{node}: petitlab events vs ipmitool sel list");
    }
    // The text table: one line per entry, each starting with its node.
    let table = ok(&lab, &["events", NODES[0]]);
    assert_eq!(table.lines().count(), sel_list(ports[0]).len(), "{table}");
    assert!(table.lines().all(|l| l.starts_with(NODES[0])), "{table}");

    let inventory = results(&lab, &["inventory", NODES[0]]);
    let inv = &inventory[NODES[0]]["inventory"];
    let ours: Vec<(String, String)> = ["chassis", "board", "product"]
        .iter()
        .flat_map(|area| inv[area].as_array().unwrap().clone())
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let theirs: Vec<(String, String)> = ipmitool(ports[0], &["fru", "print", "0"])
        .lines()
        .filter_map(|l| l.split_once(" : "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    assert!(theirs.len() >= 10, "{theirs:?}");
    assert_eq!(ours, theirs, "petitlab inventory vs ipmitool fru print 0");

    let firmware = results(&lab, &["firmware", NODES[0]]);
    let fw = &firmware[NODES[0]]["firmware"];
    let mc = ipmitool(ports[0], &["mc", "info"]);
    let field = |name: &str| {
        mc.lines()
            .find_map(|l| l.split_once(" : ").filter(|(k, _)| k.trim() == name))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in mc info:\n{mc}"))
    };
    assert_eq!(fw["bmc"].as_str().unwrap(), field("Firmware Revision"));
    assert_eq!(fw["manufacturer_id"].to_string(), field("Manufacturer ID"));
    assert!(field("Product ID").starts_with(&fw["product_id"].to_string()));
    assert_eq!(fw["ipmi_version"].as_str().unwrap(), field("IPMI Version"));
    assert!(fw["host"].as_str().is_some_and(|h| !h.is_empty()), "{fw}");

    // Clearing: what the log held is printed first, then it is empty for
    // ipmitool too (but for the entry saying it was cleared, if any).
    let before = sel_list(ports[1]).len();
    let cleared = results(&lab, &["events", NODES[1], "--clear"]);
    assert_eq!(
        cleared[NODES[1]]["events"].as_array().unwrap().len(),
        before,
        "{cleared:?}"
    );
    let after = sel_list(ports[1]);
    assert!(after.len() <= 1, "after --clear: {after:?}");

    sim.stop();
}

#[test]
fn identify_sensors_and_bmc_reset_across_a_range_of_both_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, _ports) = loopback_lab(dir.path());
    let sim = start_sim(&lab);
    let range = format!("{},{REDFISH_NODE}", NODES[0]);

    let out = ok(&lab, &["identify", &range, "on"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with(NODES[0]) && l.contains("identify on")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(REDFISH_NODE) && l.contains("identify on")),
        "{out}"
    );
    assert!(ok(&lab, &["identify", &range, "off"]).contains("identify off"));

    // One table: NODE SENSOR READING, both nodes' rows.
    let table = ok(&lab, &["sensors", &range]);
    for node in [NODES[0], REDFISH_NODE] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(node) && l.contains("DCMI power")),
            "{table}"
        );
    }

    // bmc-reset asks first; without a terminal and without --yes it refuses.
    let out = petitlab(&lab, &["bmc-reset", NODES[2]]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(show(&out).contains("give --yes"), "{}", show(&out));
    let out = ok(&lab, &["bmc-reset", NODES[2], "--yes"]);
    assert!(
        out.starts_with(NODES[2]) && out.contains("BMC reset"),
        "{out}"
    );
    // The BMC comes back (the simulator's pause), the host's power as it was.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = petitlab(&lab, &["power", NODES[2], "status"]);
        if out.status.success() {
            assert!(show(&out).contains(": off"), "{}", show(&out));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", show(&out));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    sim.stop();
}
