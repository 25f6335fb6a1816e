//! Known answers from an independent implementation at run time: ipmitool
//! derives the session keys itself and prints them; petitlab must agree.

mod support;

use petitlab::ipmi::CipherSuite;
use support::ipmi_sim::{IpmiSim, PASSWORD};
use support::ipmitool_kat::assert_same_derivation;

#[test]
fn suite_3_derivation_matches_ipmitool_against_ipmi_sim() {
    let sim = IpmiSim::start();
    let out = sim.ipmitool(PASSWORD, &["-vvvv", "mc", "info"]);
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ipmitool failed:\n{log}");
    assert_eq!(
        assert_same_derivation(&log, CipherSuite::Suite3, PASSWORD),
        6
    );
}

/// ipmi_sim has no suite 17, so ipmitool -C 17 runs against our simulator;
/// what is compared is ipmitool's derivation with petitlab's, not the
/// simulator's.
#[test]
fn suite_17_derivation_matches_ipmitool() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let spec = petitlab::sim::BmcSpec::new("kat", 0, "admin", PASSWORD);
    let sim = rt.block_on(petitlab::sim::Sim::start(vec![spec])).unwrap();
    let port = sim.addr(0).port().to_string();
    let out = std::process::Command::new(support::ipmi_sim::require_binary("ipmitool"))
        .args(["-I", "lanplus", "-C", "17", "-H", "127.0.0.1", "-p", &port])
        .args(["-U", "admin", "-P", PASSWORD, "-vvvv", "mc", "info"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ipmitool -C 17 failed:\n{log}");
    assert_eq!(
        assert_same_derivation(&log, CipherSuite::Suite17, PASSWORD),
        6
    );
    rt.block_on(sim.shutdown());
}
