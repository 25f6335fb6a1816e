//! A real dnsmasq (Debian's dnsmasq-base) serves the options petitlab
//! writes, to a real DHCP client (busybox udhcpc requesting 209/210, as
//! petitboot's does), across a veth pair between two network namespaces this
//! test creates and removes. Needs root (ip netns); it fails, never skips,
//! when it cannot set up its peers.

mod support;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::netns::{NetPair, run};

const SERVER_IP: &str = "10.203.0.1";
const NODE_MAC: &str = "52:54:00:20:30:01";
const NODE_IP: &str = "10.203.0.11";

fn petitlab(lab: &Path, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(lab)
        .args(args))
}

/// Leased from the dhcp-range (petitlab's host lines carry no address).
fn in_range(vars: &HashMap<String, String>) -> bool {
    let Some(ip) = vars.get("ip") else {
        return false;
    };
    let Some(last) = ip.strip_prefix("10.203.0.") else {
        return false;
    };
    last.parse::<u8>().is_ok_and(|n| (50..=99).contains(&n))
}

fn write_lab(dir: &Path) -> PathBuf {
    for f in ["vmlinux", "initrd", "disk.img"] {
        fs::write(dir.join(f), f).unwrap();
    }
    fs::write(dir.join("pw"), "pw").unwrap();
    // 0600, as a real password file should be (no warning noise).
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    fs::set_permissions(dir.join("pw"), private).unwrap();
    let lab = dir.join("lab.toml");
    fs::write(
        &lab,
        format!(
            r#"state_dir = "state"
[http]
base_url = "http://{SERVER_IP}:8080/"
[dhcp]
backend = "dnsmasq"
[[node]]
name = "node1"
macs = ["{NODE_MAC}"]
ipv4 = "{NODE_IP}"
[node.bmc]
host = "127.0.0.1"
username = "admin"
password_file = "pw"
[node.deploy]
kernel = "vmlinux"
ramdisk = "initrd"
[node.instance]
image = "disk.img"
"#
        ),
    )
    .unwrap();
    lab
}

#[test]
fn dnsmasq_offers_exactly_the_options_petitlab_wrote_and_stops_after_clean_up() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let lab = write_lab(work);
    let hostsdir = work.join("state/dnsmasq/hosts");
    let optsdir = work.join("state/dnsmasq/opts");
    fs::create_dir_all(&hostsdir).unwrap();
    fs::create_dir_all(&optsdir).unwrap();

    let mut net = NetPair::new("dh", SERVER_IP, NODE_MAC);
    net.start_dnsmasq(work, &hostsdir, &optsdir, &work.join("dnsmasq.log"));

    // Before prepare: a plain lease, no petitboot options.
    let before = net.udhcpc(work);
    assert!(in_range(&before), "{before:?}");
    assert!(!before.contains_key("pxeconffile"), "{before:?}");

    petitlab(&lab, &["prepare-ramdisk", "node1"]);
    let render = petitlab(&lab, &["--json", "render", "node1"]);
    let render: serde_json::Value = serde_json::from_slice(&render.stdout).unwrap();
    let want_209 = render["rendered"]["dhcp"]["conf_file"].as_str().unwrap();
    let want_210 = render["rendered"]["dhcp"]["path_prefix"].as_str().unwrap();
    let node_file = |dir: &Path| {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files.remove(0)
    };
    let (hosts_file, opts_file) = (node_file(&hostsdir), node_file(&optsdir));
    net.wait_for_read(&hosts_file, 1);
    net.wait_for_read(&opts_file, 1);

    let offer = net.udhcpc(work);
    // busybox names options 209/210 pxeconffile/pxepathprefix.
    assert_eq!(
        offer.get("pxeconffile").map(String::as_str),
        Some(want_209),
        "{offer:?}"
    );
    assert_eq!(
        offer.get("pxepathprefix").map(String::as_str),
        Some(want_210),
        "{offer:?}"
    );
    assert!(in_range(&offer), "{offer:?}");
    for option_67 in ["boot_file", "bootfile"] {
        assert!(
            !offer.contains_key(option_67),
            "option 67 must not be sent: {offer:?}"
        );
    }
    // What petitboot would fetch is the config petitlab wrote.
    let url = format!("{}{}", offer["pxepathprefix"], offer["pxeconffile"]);
    assert_eq!(url, render["rendered"]["config_url"].as_str().unwrap());
    let rel = url
        .strip_prefix(&format!("http://{SERVER_IP}:8080/"))
        .unwrap();
    let served = fs::read_to_string(work.join("state/http").join(rel)).unwrap();
    assert_eq!(served, render["rendered"]["config"].as_str().unwrap());

    petitlab(&lab, &["clean-up-ramdisk", "node1"]);
    net.wait_for_read(&hosts_file, 2);
    let after = net.udhcpc(work);
    assert!(in_range(&after), "the node still gets a lease: {after:?}");
    assert!(
        !after.contains_key("pxeconffile"),
        "209 still offered: {after:?}"
    );
    assert!(
        !after.contains_key("pxepathprefix"),
        "210 still offered: {after:?}"
    );

    // And a second deploy brings them back, with dnsmasq still running.
    petitlab(&lab, &["prepare-ramdisk", "node1"]);
    net.wait_for_read(&hosts_file, 3);
    let again = net.udhcpc(work);
    assert_eq!(
        again.get("pxeconffile").map(String::as_str),
        Some(want_209),
        "{again:?}"
    );
}
