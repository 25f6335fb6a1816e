//! The URLs petitlab renders into petitboot configs and DHCP option 209/210
//! are exactly the ones `petitlab serve` answers: for HTTP and for TFTP,
//! fetched with curl (an independent client for both schemes), every
//! config, kernel and initrd matches what was rendered and staged.

mod support;

use std::path::Path;
use std::process::Command;

use petitlab::boot::pxeconf;
use support::lab::{Daemon, NODES, ok, repo, served_loopback_lab};

/// The example lab on loopback, its servers on free ports, using `protocol`.
fn lab(dir: &Path, protocol: &str) -> std::path::PathBuf {
    served_loopback_lab(dir, protocol)
}

fn fetch(url: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20", url])
        .output()
        .expect("run curl (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn check(protocol: &str) {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(dir.path(), protocol);
    ok(&lab, &["prepare-ramdisk", "--all"]);
    ok(&lab, &["prepare-instance", NODES[1]]);
    let _serve = Daemon::start(&lab, &["serve"]);

    let cases = [
        (NODES[0], "deploy", "deploy.vmlinux", "deploy.initramfs"),
        (NODES[2], "deploy", "deploy.vmlinux", "deploy.initramfs"),
        (
            NODES[1],
            "instance",
            "ubuntu-24.04.vmlinux",
            "ubuntu-24.04.initrd",
        ),
    ];
    for (node, stage, kernel, initrd) in cases {
        let out = ok(&lab, &["--json", "render", node, "--stage", stage]);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        let r = &json["rendered"];
        let config_url = format!(
            "{}{}",
            r["dhcp"]["path_prefix"].as_str().unwrap(),
            r["dhcp"]["conf_file"].as_str().unwrap()
        );
        assert!(
            config_url.starts_with(&format!("{protocol}://")),
            "{config_url}"
        );
        let config = String::from_utf8(fetch(&config_url)).unwrap();
        assert_eq!(
            config,
            r["config"].as_str().unwrap(),
            "{node}: the served config"
        );

        // The URLs petitboot will read from that config.
        let parsed = pxeconf::parse(&config);
        let label = &parsed.labels[0];
        let kernel_url = label.kernel.as_deref().unwrap();
        let initrd_url = label.initrd.as_deref().unwrap();
        assert_eq!(kernel_url, r["kernel_url"].as_str().unwrap());
        assert_eq!(initrd_url, r["initrd_url"].as_str().unwrap());
        let artifacts = repo().join("examples/artifacts");
        assert_eq!(
            fetch(kernel_url),
            std::fs::read(artifacts.join(kernel)).unwrap(),
            "{node}: {kernel_url}"
        );
        assert_eq!(
            fetch(initrd_url),
            std::fs::read(artifacts.join(initrd)).unwrap(),
            "{node}: {initrd_url}"
        );
    }
}

#[test]
fn http_urls_in_configs_are_served() {
    check("http");
}

#[test]
fn tftp_urls_in_configs_are_served() {
    check("tftp");
}
