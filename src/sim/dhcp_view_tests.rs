use std::fs;

use super::*;
use crate::dhcp::{DhcpOptions, provider_for, write_planned};
use crate::inventory::{self, Lab};

/// A two-node lab with the dnsmasq backend, in a temp dir.
fn lab() -> (tempfile::TempDir, Lab) {
    let dir = tempfile::tempdir().unwrap();
    for f in ["k", "r", "img"] {
        fs::write(dir.path().join(f), f).unwrap();
    }
    fs::write(dir.path().join("pw"), "pw").unwrap();
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    fs::set_permissions(dir.path().join("pw"), private).unwrap();
    let node = |name: &str, macs: &str| {
        format!(
            "[[node]]\nname = \"{name}\"\nmacs = [{macs}]\n\
             [node.bmc]\nhost = \"h\"\nusername = \"u\"\npassword_file = \"pw\"\n\
             [node.deploy]\nkernel = \"k\"\nramdisk = \"r\"\n[node.instance]\nimage = \"img\"\n"
        )
    };
    let text = format!(
        "state_dir = \"state\"\n[http]\nbase_url = \"http://10.77.0.1:8080\"\n\
         [dhcp]\nbackend = \"dnsmasq\"\n{}{}",
        node("n1", "\"52:54:00:00:00:01\", \"52:54:00:00:00:11\""),
        node("n2", "\"52:54:00:00:00:02\""),
    );
    let path = dir.path().join("lab.toml");
    fs::write(&path, text).unwrap();
    let (lab, _) = inventory::load_valid(&path).unwrap();
    (dir, lab)
}

fn options(uuid: &str) -> DhcpOptions {
    DhcpOptions {
        conf_file: format!("{uuid}/config"),
        path_prefix: "http://10.77.0.1:8080/".into(),
    }
}

fn dirs(lab: &Lab) -> (PathBuf, PathBuf) {
    match &lab.dhcp {
        Dhcp::Dnsmasq { hostsdir, optsdir } => (hostsdir.clone(), optsdir.clone()),
        Dhcp::None => panic!("the test lab uses dnsmasq"),
    }
}

#[test]
fn a_tagged_mac_gets_its_nodes_209_and_210() {
    let (_dir, lab) = lab();
    let provider = provider_for(&lab.dhcp);
    for node in &lab.nodes {
        let uuid = node.uuid.to_string();
        write_planned(&provider.plan(node, &options(&uuid))).unwrap();
    }
    let n1 = lab.node("n1").unwrap();
    let first = offer(&lab.dhcp, &n1.macs).unwrap();
    let uuid = n1.uuid.to_string();
    assert_eq!((first.nic, first.mac), (0, n1.macs[0]));
    assert_eq!(first.tags, vec![format!("petitlab-{uuid}")]);
    assert_eq!(first.option(209), Some(format!("{uuid}/config").as_str()));
    assert_eq!(first.option(210), Some("http://10.77.0.1:8080/"));
    // Its second NIC alone matches too; another node's tag never leaks in.
    let second = offer(&lab.dhcp, &n1.macs[1..]).unwrap();
    assert_eq!((second.nic, second.option(209)), (0, first.option(209)));
    let n2 = lab.node("n2").unwrap();
    let other = offer(&lab.dhcp, &n2.macs).unwrap();
    assert_eq!(
        other.option(209),
        Some(format!("{}/config", n2.uuid).as_str())
    );
    let stranger: MacAddr = "52:54:00:99:99:99".parse().unwrap();
    assert_eq!(offer(&lab.dhcp, &[stranger]), None);
    // The first tagged MAC counts, not the first MAC.
    let either = offer(&lab.dhcp, &[stranger, n2.macs[0]]).unwrap();
    assert_eq!((either.nic, either.mac), (1, n2.macs[0]));
}

#[test]
fn a_released_node_is_tagged_but_gets_no_options() {
    let (_dir, lab) = lab();
    let provider = provider_for(&lab.dhcp);
    let n1 = lab.node("n1").unwrap();
    write_planned(&provider.plan(n1, &options(&n1.uuid.to_string()))).unwrap();
    provider.release(n1).unwrap();
    let offer = offer(&lab.dhcp, &n1.macs).unwrap();
    assert_eq!(offer.tags, vec!["petitlab-released".to_string()]);
    assert_eq!((offer.option(209), offer.option(210)), (None, None));
}

#[test]
fn no_files_or_no_dnsmasq_means_no_offer() {
    let (_dir, lab) = lab();
    let n1 = lab.node("n1").unwrap();
    assert_eq!(offer(&lab.dhcp, &n1.macs), None, "directories missing");
    let (hosts, opts) = dirs(&lab);
    fs::create_dir_all(&hosts).unwrap();
    fs::create_dir_all(&opts).unwrap();
    assert_eq!(offer(&lab.dhcp, &n1.macs), None, "directories empty");
    assert_eq!(offer(&Dhcp::None, &n1.macs), None);
}

#[test]
fn dnsmasq_syntax_quotes_comments_wildcards_and_temp_files() {
    let (_dir, lab) = lab();
    let (hosts, opts) = dirs(&lab);
    fs::create_dir_all(&hosts).unwrap();
    fs::create_dir_all(&opts).unwrap();
    let n1 = lab.node("n1").unwrap();
    // A temp file (dot) and a backup are ignored; a wildcard MAC matches.
    fs::write(hosts.join(".tmp"), "52:54:00:00:00:01,set:wrong\n").unwrap();
    fs::write(hosts.join("h~"), "52:54:00:00:00:01,set:wrong\n").unwrap();
    fs::write(hosts.join("h"), "# comment\n52-54-00-*-00-01,set:a,set:b\n").unwrap();
    fs::write(
        opts.join("o"),
        "# 209 for tag a\ntag:a,209,\"x/conf,with comma\"\n\
         210,\"tftp://untagged/\"\ntag:b,210,\"http://tagged/\"\n\
         tag:a,tag:!b,66,\"never\"\nencap:175,209,\"not plain\"\n",
    )
    .unwrap();
    fs::write(opts.join(".o"), "tag:a,209,\"temp\"\n").unwrap();
    let offer = offer(&lab.dhcp, &n1.macs).unwrap();
    assert_eq!(offer.tags, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(offer.option(209), Some("x/conf,with comma"));
    assert_eq!(
        offer.option(210),
        Some("http://tagged/"),
        "tagged beats untagged"
    );
    assert_eq!(offer.option(66), None, "tag:!b excludes it");
}
