//! petitlab's client against petitlab's simulator, both cipher suites. The
//! simulator itself is checked against ipmitool and ipmipower in
//! tests/sim_ipmitool.rs, so these two are not only validated by each other.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use petitlab::ipmi::chassis::{self, BootDevice, PowerAction};
use petitlab::ipmi::sensors;
use petitlab::ipmi::{Bmc, CipherChoice, CipherSuite, Credentials, IpmiError, Target, Timing};
use petitlab::sim::{BmcSpec, Fault, Sim};

const SUITES: [CipherSuite; 2] = [CipherSuite::Suite3, CipherSuite::Suite17];

fn target(addr: SocketAddr, user: &str, password: &str, cipher: CipherChoice) -> Target {
    Target {
        addr,
        credentials: Credentials {
            username: user.into(),
            password: password.into(),
        },
        cipher,
        timing: Timing {
            timeout: Duration::from_millis(300),
            retries: 1,
            ..Timing::default()
        },
    }
}

fn bmc(sim: &Sim, i: usize, cipher: CipherChoice) -> Bmc {
    Bmc::new(target(sim.addr(i), "admin", "password", cipher))
}

async fn one(spec: BmcSpec) -> Sim {
    Sim::start(vec![spec]).await.expect("start simulator")
}

fn good() -> BmcSpec {
    BmcSpec::new("n1", 0, "admin", "password")
}

#[tokio::test]
async fn power_boot_and_sensors_with_both_suites() {
    for suite in SUITES {
        let sim = one(good()).await;
        let mut b = bmc(&sim, 0, CipherChoice::Fixed(suite));
        let ctx = format!("suite {}", suite.id());

        assert!(
            !chassis::power_status(&mut b).await.unwrap(),
            "{ctx}: starts off"
        );
        chassis::power(&mut b, PowerAction::On).await.unwrap();
        assert!(chassis::power_status(&mut b).await.unwrap(), "{ctx}");
        assert!(sim.chassis(0).power_on, "{ctx}: the simulator agrees");
        chassis::power(&mut b, PowerAction::Reset).await.unwrap();
        assert!(
            chassis::power_status(&mut b).await.unwrap(),
            "{ctx}: reset stays on"
        );
        chassis::power(&mut b, PowerAction::Off).await.unwrap();
        assert!(!chassis::power_status(&mut b).await.unwrap(), "{ctx}");

        chassis::set_boot_device(&mut b, BootDevice::Pxe, false)
            .await
            .unwrap();
        let flags = chassis::boot_flags(&mut b).await.unwrap();
        assert_eq!(
            (flags.device, flags.persistent, flags.valid),
            (Some(BootDevice::Pxe), false, true),
            "{ctx}"
        );
        chassis::set_boot_device(&mut b, BootDevice::Disk, true)
            .await
            .unwrap();
        assert_eq!(
            chassis::boot_flags(&mut b).await.unwrap().label(),
            "disk (persistent)",
            "{ctx}"
        );

        let readings = sensors::read_sensors(&mut b).await.unwrap();
        assert!(readings.len() >= 3, "{ctx}: {readings:?}");
        assert!(
            readings.iter().all(|r| r.reading.is_some()),
            "{ctx}: {readings:?}"
        );
        let power = sensors::dcmi_power(&mut b).await.unwrap();
        assert!(power.is_some(), "{ctx}: the simulator offers DCMI power");

        let stats = b.stats();
        assert_eq!(
            (stats.reconnects, stats.dropped),
            (0, 0),
            "{ctx}: {stats:?}"
        );
        b.close().await;
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn auto_prefers_17_and_falls_back_to_3() {
    let sim = one(good()).await;
    let mut b = bmc(&sim, 0, CipherChoice::Auto);
    chassis::power_status(&mut b).await.unwrap();
    assert_eq!(b.suite(), Some(CipherSuite::Suite17));
    sim.shutdown().await;

    let only3 = BmcSpec {
        cipher_suites: vec![CipherSuite::Suite3],
        ..good()
    };
    let sim = one(only3).await;
    let mut b = bmc(&sim, 0, CipherChoice::Auto);
    chassis::power_status(&mut b).await.unwrap();
    assert_eq!(b.suite(), Some(CipherSuite::Suite3));
    let mut b = bmc(&sim, 0, CipherChoice::Fixed(CipherSuite::Suite17));
    let err = chassis::power_status(&mut b).await.unwrap_err();
    assert!(matches!(err, IpmiError::CipherNotOffered { .. }), "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_name_their_cause() {
    let sim = one(good()).await;
    let addr = sim.addr(0);
    let fixed = CipherChoice::Fixed(CipherSuite::Suite17);

    let mut b = Bmc::new(target(addr, "admin", "wrong", fixed));
    let err = chassis::power_status(&mut b).await.unwrap_err();
    assert!(matches!(err, IpmiError::WrongPassword { .. }), "{err}");

    // The BMC refuses a hard reset while off: the completion code is named.
    let mut b = Bmc::new(target(addr, "admin", "password", fixed));
    let err = chassis::power(&mut b, PowerAction::Reset)
        .await
        .unwrap_err();
    assert!(
        matches!(err, IpmiError::Completion { code: 0xD5, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(
            "Chassis Control failed: command not supported in present state (completion code 0xD5)"
        ),
        "{text}"
    );

    let mut b = Bmc::new(target(addr, "nobody", "password", fixed));
    let err = chassis::power_status(&mut b).await.unwrap_err();
    assert!(matches!(err, IpmiError::UnknownUser { .. }), "{err}");
    assert!(err.to_string().contains("\"nobody\""), "{err}");
    sim.shutdown().await;

    let silent = one(BmcSpec {
        fault: Fault::Silent,
        ..good()
    })
    .await;
    let mut b = bmc(&silent, 0, fixed);
    let err = chassis::power_status(&mut b).await.unwrap_err();
    assert!(matches!(err, IpmiError::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains(&silent.addr(0).to_string()),
        "{err}"
    );
    silent.shutdown().await;

    // A port nobody listens on: the kernel answers with ICMP unreachable.
    let free = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let mut b = Bmc::new(target(free, "admin", "password", fixed));
    let err = chassis::power_status(&mut b).await.unwrap_err();
    assert!(matches!(err, IpmiError::PortUnreachable { .. }), "{err}");
}

#[tokio::test]
async fn reconnects_when_the_bmc_forgets_the_session() {
    for suite in SUITES {
        let sim = one(good()).await;
        let mut b = bmc(&sim, 0, CipherChoice::Fixed(suite));
        chassis::power(&mut b, PowerAction::On).await.unwrap();
        sim.forget_sessions(0);
        assert!(chassis::power_status(&mut b).await.unwrap());
        assert_eq!(b.stats().reconnects, 1, "suite {}", suite.id());
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn keepalive_keeps_an_idle_session() {
    let sim = one(good()).await;
    let mut t = target(
        sim.addr(0),
        "admin",
        "password",
        CipherChoice::Fixed(CipherSuite::Suite17),
    );
    t.timing.keepalive = Duration::from_millis(50);
    let mut b = Bmc::new(t);
    chassis::power_status(&mut b).await.unwrap();
    // Not idle long enough: no ping, so a lost session goes unnoticed.
    sim.forget_sessions(0);
    b.keepalive().await.unwrap();
    assert_eq!(b.stats().reconnects, 0);
    // Idle: the ping finds the session gone and opens a new one.
    tokio::time::sleep(Duration::from_millis(80)).await;
    b.keepalive().await.unwrap();
    assert_eq!(b.stats().reconnects, 1);
    sim.shutdown().await;
}
