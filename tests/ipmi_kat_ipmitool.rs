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
