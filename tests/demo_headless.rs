//! `petitlab demo --headless`: the built-in virtual lab runs in one process,
//! and the CLI deploys its four example nodes to active and back (named by
//! node ranges: `all`, `state:active`): three behind IPMI with SOL
//! consoles, one behind Redfish with an SSH console.

mod support;

use std::path::Path;

use support::cast::{console_path, console_text};
use support::lab::{Daemon, ok, petitlab, show};

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

    // Node ranges, resolved by the lab service (groups and states are its).
    let out = ok(&lab, &["power", "p9-rack1-[01-02],p8-rack2-01", "status"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["p9-rack1-01: off", "p9-rack1-02: off", "p8-rack2-01: off"],
        "{out}"
    );
    let out = ok(&lab, &["power", "group:rack1", "status"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let out = petitlab(&lab, &["power", "p9-rack9-[01-03],group:rack1", "status"]);
    assert!(!out.status.success());
    assert!(
        show(&out).contains("p9-rack9-[01-03] matches no node"),
        "{}",
        show(&out)
    );
    let out = ok(&lab, &["deploy", "all"]);
    assert_eq!(out.matches("is active").count(), 4, "{out}");
    let out = ok(&lab, &["status", "state:active,-group:rack1"]);
    assert!(
        out.contains("p8-rack2-01") && out.contains("p10-rack3-01") && !out.contains("p9-rack1"),
        "{out}"
    );
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
    let out = ok(&lab, &["undeploy", "state:active"]);
    assert_eq!(out.matches("is available").count(), 4, "{out}");
    let power = ok(&lab, &["power", "p10-rack3-01", "status"]);
    assert_eq!(power.trim(), "p10-rack3-01: off", "{power}");
    demo.stop();
    assert!(lab.exists(), "--dir is the caller's and stays");
}
