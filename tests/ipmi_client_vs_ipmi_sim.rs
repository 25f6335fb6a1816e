//! petitlab's RMCP+ client against an independent BMC: OpenIPMI's ipmi_sim
//! (cipher suite 3), whose chassis_control script records what it was told.

mod support;

use std::time::Duration;

use petitlab::ipmi::chassis::{self, BootDevice, PowerAction};
use petitlab::ipmi::{Bmc, CipherChoice, CipherSuite, Credentials, IpmiError, Target, Timing};
use support::ipmi_sim::{IpmiSim, PASSWORD, USER};

fn target(sim: &IpmiSim, password: &str, cipher: CipherChoice) -> Target {
    Target {
        addr: sim.addr(),
        credentials: Credentials {
            username: USER.into(),
            password: password.into(),
        },
        cipher,
        timing: Timing {
            timeout: Duration::from_millis(500),
            retries: 2,
            ..Timing::default()
        },
    }
}

#[tokio::test]
async fn power_and_boot_device_through_ipmi_sim() {
    let sim = IpmiSim::start();
    let mut bmc = Bmc::new(target(
        &sim,
        PASSWORD,
        CipherChoice::Fixed(CipherSuite::Suite3),
    ));

    chassis::power(&mut bmc, PowerAction::On).await.unwrap();
    assert!(
        chassis::power_status(&mut bmc).await.unwrap(),
        "status after power on"
    );
    assert_eq!(sim.power_file_value(), "1");

    chassis::power(&mut bmc, PowerAction::Off).await.unwrap();
    assert!(
        !chassis::power_status(&mut bmc).await.unwrap(),
        "status after power off"
    );
    assert_eq!(sim.power_file_value(), "0");

    chassis::set_boot_device(&mut bmc, BootDevice::Pxe, false)
        .await
        .unwrap();
    assert_eq!(sim.boot_file_value(), "pxe", "calls: {:?}", sim.calls());
    let flags = chassis::boot_flags(&mut bmc).await.unwrap();
    assert_eq!(flags.device, Some(BootDevice::Pxe));

    assert_eq!(bmc.stats().reconnects, 0, "one persistent session");
    assert_eq!(bmc.stats().dropped, 0);
    bmc.close().await;
}

#[tokio::test]
async fn wrong_password_is_named() {
    let sim = IpmiSim::start();
    let mut bmc = Bmc::new(target(
        &sim,
        "not-the-password",
        CipherChoice::Fixed(CipherSuite::Suite3),
    ));
    let err = chassis::power_status(&mut bmc).await.unwrap_err();
    assert!(
        matches!(err, IpmiError::WrongPassword { .. }),
        "expected a wrong-password error, got: {err}"
    );
    assert!(
        err.to_string()
            .contains("wrong password for user \"admin\""),
        "{err}"
    );
}

#[tokio::test]
async fn suite_17_is_refused_and_auto_picks_3() {
    let sim = IpmiSim::start();
    let mut bmc = Bmc::new(target(
        &sim,
        PASSWORD,
        CipherChoice::Fixed(CipherSuite::Suite17),
    ));
    let err = chassis::power_status(&mut bmc).await.unwrap_err();
    assert!(
        matches!(err, IpmiError::CipherNotOffered { .. }),
        "got: {err}"
    );

    let mut bmc = Bmc::new(target(&sim, PASSWORD, CipherChoice::Auto));
    chassis::power_status(&mut bmc).await.unwrap();
    assert_eq!(bmc.suite(), Some(CipherSuite::Suite3));
}
