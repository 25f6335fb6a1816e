//! `petitlab demo --headless`: the built-in virtual lab runs in one process,
//! and the CLI deploys its three example nodes to active and back.

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
    // Generated from lab.toml.example: valid, on loopback, no example paths left.
    let checked = ok(&lab, &["check"]);
    assert!(checked.contains("ok, 3 node(s)"), "{checked}");
    let text = std::fs::read_to_string(&lab).unwrap();
    assert!(
        !text.contains("host = \"10.77.") && !text.contains("examples/"),
        "{text}"
    );

    let out = ok(
        &lab,
        &["deploy", "p9-rack1-01", "p9-rack1-02", "p8-rack2-01"],
    );
    assert_eq!(out.matches("is active").count(), 3, "{out}");
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
    let out = ok(
        &lab,
        &["undeploy", "p9-rack1-01", "p9-rack1-02", "p8-rack2-01"],
    );
    assert_eq!(out.matches("is available").count(), 3, "{out}");
    demo.stop();
    assert!(lab.exists(), "--dir is the caller's and stays");
}
