//! A whole deploy through real upstream petitboot on an emulated POWER9
//! (QEMU powernv9, Debian's skiboot, a Debian ppc64el kernel, petitboot
//! cross-built from its pinned source): `petitlab deploy` powers the node on
//! through OpenIPMI's ipmi_sim, real dnsmasq hands out 209/210, petitboot
//! fetches the config from `petitlab serve` and kexecs our ppc64le deploy
//! ramdisk, our agent writes the image, and the node reboots into the
//! instance from its disk (kboot.conf), its console on hvc0 through SOL.
//! Then `undeploy`. Needs root, QEMU 10, dnsmasq, openipmi and the guest that
//! tests/peers/petitboot-vm/build.sh makes; fails, never skips, when one is
//! missing.

mod support;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::cast::{console_path, console_text};
use support::petitboot_rig::{Arch, NODE, Rig, RigOptions, show};

fn record(rig: &Rig) -> petitlab::engine::store::NodeRecord {
    petitlab::engine::store::Store::open(&rig.state_dir().join("petitlab.db"))
        .unwrap()
        .node(NODE)
        .unwrap()
        .unwrap_or_else(|| panic!("{NODE} is not in the store"))
}

/// sha256 of the first `len` bytes of `path`.
fn sha256_prefix(path: &Path, len: u64) -> String {
    let mut file = fs::File::open(path).unwrap().take(len);
    let mut hash = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut copied = 0;
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        copied += n as u64;
    }
    assert_eq!(
        copied,
        len,
        "{} is shorter than {len} bytes",
        path.display()
    );
    hex(&hash.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Files under the served roots, relative to the state dir.
fn served_files(rig: &Rig) -> Vec<String> {
    let mut files = Vec::new();
    for root in ["http", "tftp"] {
        let root = rig.state_dir().join(root);
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.map(Result::unwrap) {
                let path = entry.path();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(path);
                } else {
                    files.push(
                        path.strip_prefix(rig.state_dir())
                            .unwrap()
                            .display()
                            .to_string(),
                    );
                }
            }
        }
    }
    files.sort();
    files
}

/// The console stages a `--json` deploy reported (its console-stage events),
/// in order.
fn console_stages(json_lines: &str) -> Vec<String> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "console-stage")
        .filter_map(|v| Some(v["stage"].as_str()?.to_string()))
        .collect()
}

#[test]
fn powernv9_deploys_through_real_petitboot_to_active_and_undeploys() {
    let t0 = Instant::now();
    let rig = Rig::start(RigOptions::new(Arch::Ppc64le));
    let image = rig.artifacts().instance_img.clone();
    let image_len = fs::metadata(&image).unwrap().len();
    let image_sha = sha256_prefix(&image, image_len);
    let uuid = petitlab::inventory::derived_uuid(NODE).to_string();

    let deploy = rig.petitlab(&["--json", "deploy", NODE]);
    let deployed_in = t0.elapsed();
    let events = String::from_utf8_lossy(&deploy.stdout).into_owned();
    let console = || rig.guest_tail(60);
    assert!(
        deploy.status.success(),
        "deploy failed:\n{}\nguest console:\n{}",
        show(&deploy),
        console()
    );

    // The store.
    let node = record(&rig);
    assert_eq!(node.state, "active", "{node:?}");
    assert_eq!(node.reason, None, "{node:?}");

    // The disk holds the image, byte for byte.
    assert_eq!(
        sha256_prefix(rig.disk_path(), image_len),
        image_sha,
        "the guest's disk does not start with the instance image"
    );
    assert!(
        events.contains(&image_sha),
        "the agent's checksum is not in the deploy's events:\n{events}"
    );

    // Real DHCP: dnsmasq sent petitlab's 209/210 to the node's MAC.
    let dhcp = rig.dnsmasq_log();
    assert!(
        dhcp.lines()
            .any(|l| l.contains("DHCPACK(br0)") && l.contains(rig.mac())),
        "no DHCPACK to {}:\n{dhcp}",
        rig.mac()
    );
    for option in ["option:209", "option:210"] {
        assert!(dhcp.contains(option), "dnsmasq sent no {option}:\n{dhcp}");
    }

    // A local node has nothing served once it is active: the deploy's config,
    // kernel, ramdisk, image and discovery files are gone.
    let served = served_files(&rig);
    assert!(
        served
            .iter()
            .all(|f| !f.contains(&uuid) && !f.contains("pxelinux.cfg")),
        "files left in the served roots after the deploy: {served:?}"
    );

    // The real boot, as the guest printed it, in order: skiboot, petitboot
    // fetching the config and kexecing the deploy ramdisk, our agent, then
    // (after the power cycle) petitboot booting the disk and the instance.
    let guest = String::from_utf8_lossy(&rig.guest_output()).into_owned();
    let mut at = 0;
    for want in [
        "OPAL v",
        "--- pb-discover ---",
        &format!(
            "Requesting config http://{}:8080/{uuid}/config",
            rig.server_ip()
        ),
        "Performing kexec reboot",
        // The deploy kernel, on hvc0 as lab.toml's `console` says.
        "console=hvc0",
        "petitlab-agent: done (sha256 ",
        "OPAL v",
        "--- pb-discover ---",
        "Performing kexec reboot",
        "petitlab-instance: booted from disk (ppc64le",
        "petitlab-instance login:",
    ] {
        let found = guest[at..].find(want).unwrap_or_else(|| {
            panic!(
                "the guest never printed {want:?} after offset {at}; its console from there:\n{}",
                &guest[at.saturating_sub(2000)..]
            )
        });
        at += found + want.len();
    }

    // What petitlab logged of the console holds the same boot, with no gap.
    let log = console_text(&console_path(&rig.state_dir(), NODE));
    for want in [
        "OPAL v",
        "--- pb-discover ---",
        "Performing kexec reboot",
        "petitlab-agent: done (sha256 ",
        "petitlab-instance: booted from disk",
        "petitlab-instance login:",
    ] {
        assert!(
            log.contains(want),
            "petitlab's console log lacks {want:?}:\n{log}"
        );
    }
    assert!(
        !log.contains("[petitlab: console lost"),
        "the console had a gap:\n{log}"
    );

    // The stage detector saw the boot go by.
    let stages = console_stages(&events);
    for stage in ["firmware", "petitboot", "kexec", "login_prompt"] {
        assert!(
            stages.iter().any(|s| s == stage),
            "the deploy never reported console stage {stage}; it reported {stages:?}\n{events}"
        );
    }

    // Undeploy: powered off, nothing served, available.
    let undeploy = rig.petitlab(&["undeploy", NODE]);
    assert!(
        undeploy.status.success(),
        "undeploy failed:\n{}",
        show(&undeploy)
    );
    rig.wait_qemu_gone(Duration::from_secs(60));
    let node = record(&rig);
    assert_eq!(node.state, "available", "{node:?}");
    let served = served_files(&rig);
    assert!(served.is_empty(), "files left after undeploy: {served:?}");
    assert_eq!(
        sha256_prefix(rig.disk_path(), image_len),
        image_sha,
        "undeploy keeps the disk's contents"
    );
    eprintln!(
        "powernv9: deploy to active in {:.0} s, with undeploy {:.0} s; console stages {stages:?}",
        deployed_in.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
