//! A Redfish BMC that keeps a one-shot boot override for every boot (as
//! sushy-tools' emulator does, tests/redfish_sushy.rs): the deploy of
//! lab.toml.example's Redfish node says so, clears the override itself
//! before the instance boots, and the node still reaches active from its
//! own disk. `petitlab sim --fault NODE=redfish-keeps-once` plays that BMC.

mod support;

use std::path::Path;
use std::process::Command;

use support::lab::{Daemon, REDFISH_NODE, ok, repo, served_loopback_lab};

/// The Redfish node's ComputerSystem, as curl gets it from its BMC.
fn curl_system(lab: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(lab).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    let node = doc["node"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"].as_str() == Some(REDFISH_NODE))
        .expect("the Redfish node");
    let bmc = &node["bmc"];
    let password = std::fs::read_to_string(repo().join("examples/secrets/bmc-password")).unwrap();
    let user = format!(
        "{}:{}",
        bmc["username"].as_str().unwrap(),
        password.trim_end()
    );
    let url = format!(
        "https://127.0.0.1:{}/redfish/v1/Systems/system",
        bmc["port"].as_integer().unwrap()
    );
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20", "--cacert"])
        .arg(repo().join("examples/secrets/virtual-lab-bmc-ca.pem"))
        .args(["-u", &user, &url])
        .output()
        .expect("run curl (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_kept_once_is_reported_and_cleared_by_the_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let lab = served_loopback_lab(dir.path(), "http");
    let fault = format!("{REDFISH_NODE}=redfish-keeps-once");
    let _sim = Daemon::start(&lab, &["sim", "--fault", &fault]);
    let _serve = Daemon::start(&lab, &["serve"]);

    let out = ok(&lab, &["deploy", REDFISH_NODE]);
    assert!(
        out.contains(
            "the BMC ignored \"once\" and keeps pxe for every boot; petitlab clears it before the instance boots"
        ),
        "{out}"
    );
    assert!(
        out.contains(&format!("deploy done: {REDFISH_NODE} is active")),
        "{out}"
    );
    // What it left on the BMC, read with curl: no override, as an
    // honoured "once" would have left.
    let system = curl_system(&lab);
    assert_eq!(
        system["Boot"]["BootSourceOverrideEnabled"], "Disabled",
        "{system:#}"
    );

    // Asked by hand, the same BMC is reported too.
    let set = ok(&lab, &["bootdev", REDFISH_NODE, "pxe"]);
    assert!(
        set.contains("boot device pxe (persistent) (the BMC keeps it for every boot"),
        "{set}"
    );
}
