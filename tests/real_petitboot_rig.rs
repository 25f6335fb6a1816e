//! The real-petitboot rig itself (tests/support/petitboot_rig.rs): an x86-64
//! QEMU guest running upstream petitboot, powered on through ipmi_sim by
//! `petitlab power`, gets its DHCP lease with petitlab's options from the
//! rig's dnsmasq, fetches the config `petitlab serve` serves, and is gone
//! again after `petitlab power off`. Needs root, QEMU, dnsmasq, openipmi and
//! the guest that tests/peers/petitboot-vm/build.sh makes; fails, never
//! skips, when one is missing.

mod support;

use std::time::{Duration, Instant};

use support::petitboot_rig::{NODE, Rig, poll_until};

#[test]
fn petitboot_powers_on_through_the_bmc_and_gets_its_lease_and_config() {
    let rig = Rig::x86();
    let uuid = petitlab::inventory::derived_uuid(NODE).to_string();
    // The deploy config and DHCP options, so that petitboot has something to
    // fetch (and the options prove dnsmasq tags the node).
    rig.petitlab_ok(&["prepare-ramdisk", NODE]);

    let t0 = Instant::now();
    let out = rig.petitlab_ok(&["power", NODE, "on"]);
    assert!(out.contains(NODE), "power on said: {out}");
    assert!(
        rig.qemu_pid().is_some(),
        "the chassis hook started no QEMU:\n{}",
        rig.qemu_log()
    );

    let minute = Duration::from_secs(60);
    rig.wait_guest("Running DHCPv4 client", minute);
    let dhcp = t0.elapsed();
    let mac = rig.mac().to_string();
    let log = poll_until(
        "dnsmasq's DHCPACK to the guest",
        minute,
        || {
            let log = rig.dnsmasq_log();
            log.lines()
                .any(|l| l.contains("DHCPACK(br0)") && l.contains(&mac))
                .then_some(log)
        },
        || rig.dnsmasq_log(),
    );
    let lease = t0.elapsed();
    assert!(
        log.contains(&format!("DHCPACK(br0) {} {mac}", rig.node_ip())),
        "the node gets its ipv4:\n{log}"
    );
    assert!(
        log.contains(&format!("tags: petitlab-{uuid}")),
        "dnsmasq tags the node with petitlab's host file:\n{log}"
    );
    for option in ["option:209", "option:210"] {
        assert!(log.contains(option), "dnsmasq sent no {option}:\n{log}");
    }

    let config = format!("{}{uuid}/config", rig.http_base());
    // pb-discover -v prints the lease's options as udhcpc got them (209 is
    // relative to 210), then the URL it joined them into.
    rig.wait_guest(&format!("pxeconffile  => {uuid}/config"), minute);
    rig.wait_guest(&format!("Requesting config {config}"), minute);
    rig.wait_guest("Download complete: config", minute);
    let fetched = t0.elapsed();
    let served = rig.serve_log();
    assert!(
        served
            .lines()
            .any(|l| l.contains(&format!(" {NODE} \"GET /{uuid}/config\" 200 "))),
        "petitlab serve logged no config download by {NODE}:\n{served}"
    );

    rig.petitlab_ok(&["power", NODE, "off"]);
    assert!(rig.qemu_pid().is_none(), "QEMU still runs after power off");
    let status = rig.petitlab_ok(&["power", NODE, "status"]);
    assert!(status.contains("off"), "power status after off: {status}");
    let sets = rig.chassis_sets();
    assert_eq!(sets, ["set power 1", "set power 0"], "chassis calls");
    eprintln!(
        "x86 petitboot: DHCP client started {:.1} s after power on, lease at {:.1} s, config at {:.1} s",
        dhcp.as_secs_f64(),
        lease.as_secs_f64(),
        fetched.as_secs_f64()
    );
}
