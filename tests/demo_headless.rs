//! `petitlab demo --headless`: the built-in virtual lab runs in one process,
//! and the CLI deploys its four example nodes to active and back: three
//! behind IPMI with SOL consoles, one behind Redfish with an SSH console.

mod support;

use std::path::Path;

use support::cast::{console_path, console_text};
use support::lab::{Daemon, ok};

#[test]
fn the_demo_lab_deploys_its_example_nodes_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    let demo = Daemon::start(
        Path::new("unused.toml"),
        &["demo", "--headless", "--dir", keep.to_str().unwrap()],
    );
    let lab = keep.join("lab.toml");
    let said = demo.startup.join("\n");
    assert!(said.contains(&format!("lab {}", lab.display())), "{said}");
    for node in ["p9-rack1-01", "p9-rack1-02", "p8-rack2-01"] {
        assert!(
            said.contains(&format!("{node}: BMC on 127.0.0.1:")),
            "{said}"
        );
    }
    assert!(
        said.contains("p10-rack3-01: Redfish BMC on https://127.0.0.1:"),
        "{said}"
    );
    // Generated from lab.toml.example: valid, on loopback, no example paths left.
    let checked = ok(&lab, &["check"]);
    assert!(checked.contains("ok, 4 node(s)"), "{checked}");
    let text = std::fs::read_to_string(&lab).unwrap();
    assert!(
        !text.contains("host = \"10.77.") && !text.contains("examples/"),
        "{text}"
    );

    let all = ["p9-rack1-01", "p9-rack1-02", "p8-rack2-01", "p10-rack3-01"];
    let out = ok(&lab, &[&["deploy"][..], &all].concat());
    assert_eq!(out.matches("is active").count(), 4, "{out}");
    // The Redfish node: powered and set to netboot over Redfish, its boot
    // watched on the SSH console to the instance's login prompt.
    let log = console_text(&console_path(&keep.join("state"), "p10-rack3-01"));
    assert!(
        log.contains("Welcome to rhel-9.4-ppc64le (petitlab demo)!") && log.contains("login:"),
        "{log}"
    );
    let power = ok(&lab, &["power", "p10-rack3-01", "status"]);
    assert_eq!(power.trim(), "p10-rack3-01: on", "{power}");
    let log = console_text(&console_path(&keep.join("state"), "p9-rack1-01"));
    assert!(
        log.contains("Welcome to rhel-9.4-ppc64le (petitlab demo)!"),
        "{log}"
    );
    let log = console_text(&console_path(&keep.join("state"), "p9-rack1-02"));
    assert!(
        log.contains("Kernel command line: root=/dev/sda2"),
        "netboot instance: {log}"
    );
    let out = ok(&lab, &[&["undeploy"][..], &all].concat());
    assert_eq!(out.matches("is available").count(), 4, "{out}");
    let power = ok(&lab, &["power", "p10-rack3-01", "status"]);
    assert_eq!(power.trim(), "p10-rack3-01: off", "{power}");
    demo.stop();
    assert!(lab.exists(), "--dir is the caller's and stays");
}
