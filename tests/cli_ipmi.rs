//! The real binary end to end: `petitlab sim` serves the example lab's BMCs
//! on loopback, and `petitlab power`, `bootdev` and `sensors` drive them.
//! ipmitool confirms what the simulator was told.

mod support;

use std::process::{Command, Stdio};

use support::lab::{NODES, REDFISH_NODE, loopback_lab, ok, petitlab, repo, show, start_sim};

fn ipmitool(port: u16, suite: &str, args: &[&str]) -> String {
    let out = Command::new("ipmitool")
        .args([
            "-I",
            "lanplus",
            "-C",
            suite,
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["-U", "admin", "-f"])
        .arg(repo().join("examples/secrets/bmc-password"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ipmitool (apt-get install ipmitool)");
    assert!(out.status.success(), "ipmitool {args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn power_bootdev_and_sensors_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, ports) = loopback_lab(dir.path());
    let sim = start_sim(&lab);

    // --all spans both protocols: the IPMI nodes and the Redfish one.
    let status = ok(&lab, &["power", "--all", "status"]);
    for node in NODES.iter().chain([&REDFISH_NODE]) {
        assert!(status.contains(&format!("{node}: off")), "{status}");
    }
    assert!(ok(&lab, &["power", NODES[0], "on"]).contains("on sent; power is on"));
    assert!(
        ok(&lab, &["power", NODES[0], "on"]).contains("on (already)"),
        "idempotent"
    );
    assert!(ipmitool(ports[0], "17", &["power", "status"]).contains("Chassis Power is on"));

    let json: serde_json::Value =
        serde_json::from_str(&ok(&lab, &["--json", "power", "--all", "status"])).unwrap();
    let powers: Vec<&str> = (0..3)
        .map(|i| json[i]["result"]["power"].as_str().unwrap())
        .collect();
    assert_eq!(powers, ["on", "off", "off"], "{json}");

    let out = ok(&lab, &["bootdev", NODES[1], "pxe", "--persistent"]);
    assert!(out.contains("boot device pxe (persistent)"), "{out}");
    let param5 = ipmitool(ports[1], "17", &["chassis", "bootparam", "get", "5"]);
    assert!(
        param5.contains("Force PXE") && param5.contains("Options apply to all future boots"),
        "{param5}"
    );

    let sensors = ok(&lab, &["sensors", NODES[2]]);
    assert!(sensors.contains("DCMI power"), "{sensors}");
    assert!(sensors.lines().count() >= 4, "{sensors}");

    sim.stop();
}

#[test]
fn errors_name_the_node_and_never_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, _) = loopback_lab(dir.path());
    let sim = start_sim(&lab);

    let out = petitlab(&lab, &["power", "no-such-node", "on"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no node named \"no-such-node\""),
        "{}",
        show(&out)
    );

    let out = petitlab(&lab, &["power", "--all", "frobnicate"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not one of: status, on, off"),
        "{}",
        show(&out)
    );

    // The same lab but the first node's password taken from a wrong variable.
    let text = std::fs::read_to_string(&lab).unwrap();
    let wrong = text.replacen(
        &format!(
            "password_file = \"{}/examples/secrets/bmc-password\"",
            repo().display()
        ),
        "password_env = \"PETITLAB_TEST_WRONG_PW\"",
        1,
    );
    let wrong_lab = dir.path().join("wrong.toml");
    std::fs::write(&wrong_lab, wrong).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .env("PETITLAB_TEST_WRONG_PW", "s3cret-but-wrong")
        .arg("--lab")
        .arg(&wrong_lab)
        .args(["power", "--all", "status"])
        .output()
        .unwrap();
    let all = show(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("node p9-rack1-01: wrong password for user \"admin\""),
        "{all}"
    );
    assert!(
        all.contains("p9-rack1-02: off"),
        "the other nodes still answer: {all}"
    );
    assert!(!all.contains("s3cret-but-wrong"), "password printed: {all}");
    sim.stop();
}
