//! petitlab's Redfish client against an independent Redfish service:
//! OpenStack's sushy-tools (`sushy-emulator --fake`), over HTTPS with a
//! certificate made here, behind basic auth. What the fake driver really
//! does (and where that differs from a BMC) is in tests/support/sushy.rs.

mod support;

use std::time::{Duration, Instant};

use petitlab::redfish::{
    BootOverride, BootTarget, Client, OverrideEnabled, PowerState, RedfishError, ResetType,
    SerialConsoles, Target, TlsPolicy, fingerprint_of,
};
use support::sushy::{FakeSystem, PASSWORD, SYSTEM_UUIDS, Sushy, USER};

fn target(sushy: &Sushy, password: &str, tls: TlsPolicy) -> Target {
    Target {
        base_url: sushy.base_url(),
        username: USER.into(),
        password: password.into(),
        tls,
        system_id: None,
        timeout: Duration::from_secs(10),
    }
}

fn pinned(sushy: &Sushy) -> TlsPolicy {
    TlsPolicy::Fingerprint(fingerprint_of(sushy.leaf_der()))
}

/// The fake driver applies a power change 1-11 s after the request; polls
/// until `want` is read back, returning every state seen on the way.
async fn wait_power(client: &mut Client, want: PowerState) -> Vec<PowerState> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let state = client.power_state().await.expect("read power state");
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state == want {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "power state never became {want:?}; seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn connect_with_a_ca_file_and_read_the_system() {
    let sushy = Sushy::start();
    let t = target(&sushy, PASSWORD, TlsPolicy::CaFile(sushy.ca_file().into()));
    let mut client = Client::connect(&t).await.expect("connect");

    // sushy-tools has no SessionService: basic auth, no token.
    assert_eq!(client.session_token(), None);
    assert_eq!(
        client.system_url(),
        format!(
            "{}/redfish/v1/Systems/{}",
            sushy.base_url(),
            SYSTEM_UUIDS[0]
        )
    );
    let debug = format!("{client:?} {t:?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    assert!(debug.contains("basic"), "{debug}");

    assert_eq!(client.power_state().await.unwrap(), PowerState::Off);
    assert_eq!(
        client.allowed_resets().await.unwrap(),
        [
            "On",
            "ForceOff",
            "GracefulShutdown",
            "GracefulRestart",
            "ForceRestart",
            "Nmi",
            "ForceOn"
        ]
    );

    // The fake driver's chassis has a Thermal resource and nothing else.
    let sensors = client.sensors().await.unwrap();
    let summary: Vec<_> = sensors
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.reading,
                s.units.as_str(),
                s.health.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("CPU Temp", Some(41.0), "Cel", Some("OK")),
            ("Chassis Intake Temp", Some(25.0), "Cel", Some("OK")),
            ("BaseBoard System Fan", Some(2100.0), "RPM", Some("OK")),
            (
                "BaseBoard System Fan Backup",
                Some(2050.0),
                "RPM",
                Some("OK")
            ),
        ]
    );
    assert_eq!(
        client.power_watts().await.unwrap(),
        None,
        "no Power resource"
    );
    assert_eq!(client.event_log().await.unwrap(), [], "no LogServices");
    assert_eq!(
        client.serial_consoles().await.unwrap(),
        SerialConsoles::default(),
        "no SerialConsole"
    );
    client.logout().await;
    // The requests really went to this emulator, with credentials accepted.
    let log = sushy.requests();
    assert!(
        log.iter().any(|l| l.contains("GET /redfish/v1/Chassis/")
            && l.contains("/Thermal")
            && l.contains(" 200 ")),
        "{log:#?}"
    );
}

#[tokio::test]
async fn power_on_off_and_restart_read_back() {
    // Three systems so the three transitions (each 1-11 s in the fake
    // driver) run at once.
    let sushy = Sushy::start_with(&[
        FakeSystem {
            uuid: SYSTEM_UUIDS[0],
            name: "off-to-on",
            power_on: false,
        },
        FakeSystem {
            uuid: SYSTEM_UUIDS[1],
            name: "on-to-off",
            power_on: true,
        },
        FakeSystem {
            uuid: SYSTEM_UUIDS[2],
            name: "restart",
            power_on: true,
        },
    ]);

    // Without a system_id the client cannot choose, and says among what.
    let e = Client::connect(&target(&sushy, PASSWORD, pinned(&sushy)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "protocol");
    for uuid in SYSTEM_UUIDS {
        assert!(e.to_string().contains(uuid), "{e}");
    }
    let mut t = target(&sushy, PASSWORD, pinned(&sushy));
    t.system_id = Some("no-such-system".into());
    let e = Client::connect(&t).await.unwrap_err().to_string();
    assert!(
        e.contains("no-such-system") && e.contains(SYSTEM_UUIDS[2]),
        "{e}"
    );

    let connect = |i: usize| {
        let mut t = target(&sushy, PASSWORD, pinned(&sushy));
        t.system_id = Some(SYSTEM_UUIDS[i].into());
        async move { Client::connect(&t).await.expect("connect") }
    };
    let (mut a, mut b, mut c) = tokio::join!(connect(0), connect(1), connect(2));
    assert_eq!(a.power_state().await.unwrap(), PowerState::Off);
    assert_eq!(b.power_state().await.unwrap(), PowerState::On);
    assert_eq!(c.power_state().await.unwrap(), PowerState::On);

    assert_eq!(a.reset(&[ResetType::On]).await.unwrap(), ResetType::On);
    assert_eq!(
        b.reset(&[ResetType::ForceOff]).await.unwrap(),
        ResetType::ForceOff
    );
    // PowerCycle is not offered by sushy-tools; the next preference goes.
    assert_eq!(
        c.reset(&[ResetType::PowerCycle, ResetType::ForceRestart])
            .await
            .unwrap(),
        ResetType::ForceRestart
    );
    let (seen_a, seen_b, seen_c) = tokio::join!(
        wait_power(&mut a, PowerState::On),
        wait_power(&mut b, PowerState::Off),
        wait_power(&mut c, PowerState::On),
    );
    eprintln!("states seen: on {seen_a:?}, off {seen_b:?}, restart {seen_c:?}");
    // The fake driver has no PoweringOn/PoweringOff: only On and Off are
    // ever read. (A restart reads Off at once, then On; with its 1-11 s
    // delay rounded down to a whole second, the Off can be missed.)
    for seen in [&seen_a, &seen_b, &seen_c] {
        assert!(
            seen.iter()
                .all(|s| matches!(s, PowerState::On | PowerState::Off)),
            "{seen:?}"
        );
    }

    // And back: the read-back follows each request.
    a.reset(&[ResetType::GracefulShutdown]).await.unwrap();
    wait_power(&mut a, PowerState::Off).await;
}

#[tokio::test]
async fn resets_the_system_does_not_offer() {
    let sushy = Sushy::start();
    let mut client = Client::connect(&target(&sushy, PASSWORD, pinned(&sushy)))
        .await
        .unwrap();

    let e = client
        .reset(&[ResetType::PowerCycle, ResetType::PushPowerButton])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "unsupported");
    let text = e.to_string();
    eprintln!("not offered: {text}");
    assert!(text.contains("PowerCycle or PushPowerButton"), "{text}");
    assert!(
        text.contains("GracefulRestart") && text.contains("ForceOn"),
        "{text}"
    );
    match &e {
        RedfishError::Unsupported { allowed, .. } => assert_eq!(allowed.len(), 7),
        other => panic!("{other:?}"),
    }
    // Nothing was sent.
    assert!(
        !sushy.requests().iter().any(|l| l.contains("POST")),
        "{:#?}",
        sushy.requests()
    );

    // Nmi is advertised, but the fake driver refuses it: the BMC's own
    // words come back with the status.
    let e = client.reset(&[ResetType::Nmi]).await.unwrap_err();
    eprintln!("Nmi: {e}");
    match &e {
        RedfishError::Http {
            url,
            status,
            message,
        } => {
            assert_eq!(*status, 501);
            assert!(url.ends_with("/Actions/ComputerSystem.Reset"), "{url}");
            assert_eq!(message, "Power state Nmi is not supported");
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.is_transient());
    assert_eq!(client.power_state().await.unwrap(), PowerState::Off);
}

#[tokio::test]
async fn boot_override_pxe_once_reads_back_continuous() {
    let sushy = Sushy::start();
    let mut client = Client::connect(&target(&sushy, PASSWORD, TlsPolicy::Insecure))
        .await
        .unwrap();

    assert_eq!(
        client.boot_override().await.unwrap(),
        BootOverride {
            target: BootTarget::Hdd,
            enabled: OverrideEnabled::Continuous
        }
    );
    // sushy-tools' fake driver stores the target and ignores "Once": the
    // client returns what the BMC reads back, so the caller sees that its
    // one-time override became a permanent one.
    let got = client
        .set_boot_override(BootTarget::Pxe, OverrideEnabled::Once)
        .await
        .unwrap();
    assert_eq!(got.target, BootTarget::Pxe);
    assert_eq!(got.enabled, OverrideEnabled::Continuous, "Once ignored");
    assert_ne!(got.enabled, OverrideEnabled::Once);
    assert_eq!(client.boot_override().await.unwrap(), got);
    let patch = sushy
        .requests()
        .into_iter()
        .filter(|l| l.contains("PATCH /redfish/v1/Systems/"))
        .collect::<Vec<_>>();
    assert_eq!(patch.len(), 1, "{patch:?}");
    assert!(patch[0].contains(" 204 "), "{patch:?}");

    let got = client
        .set_boot_override(BootTarget::Hdd, OverrideEnabled::Continuous)
        .await
        .unwrap();
    assert_eq!(
        got,
        BootOverride {
            target: BootTarget::Hdd,
            enabled: OverrideEnabled::Continuous
        }
    );

    // A target outside BootSourceOverrideTarget@Redfish.AllowableValues is
    // refused before anything is sent.
    let e = client
        .set_boot_override(BootTarget::Other("Floppy".into()), OverrideEnabled::Once)
        .await
        .unwrap_err();
    match e {
        RedfishError::Unsupported { what, allowed } => {
            assert!(what.contains("Floppy"), "{what}");
            assert_eq!(allowed, ["Pxe", "Cd", "Hdd", "UefiHttp"]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wrong_password_is_unauthorized() {
    let sushy = Sushy::start();
    let e = Client::connect(&target(&sushy, "not-the-password", pinned(&sushy)))
        .await
        .unwrap_err();
    eprintln!("wrong password: {e}");
    assert_eq!(e.kind(), "auth", "{e:?}");
    assert!(!e.is_transient());
    match &e {
        RedfishError::Unauthorized { url } => {
            assert_eq!(url, &format!("{}/redfish/v1/Systems", sushy.base_url()))
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.to_string().contains("not-the-password"), "{e}");

    let mut t = target(&sushy, PASSWORD, pinned(&sushy));
    t.username = "nobody".into();
    assert_eq!(Client::connect(&t).await.unwrap_err().kind(), "auth");
}

#[tokio::test]
async fn tls_pins_and_cas() {
    let sushy = Sushy::start();
    let real = fingerprint_of(sushy.leaf_der());

    // Another certificate's fingerprint: refused, both named.
    let (_, _, _, other_der) = support::sushy::certificates();
    let wrong = fingerprint_of(&other_der);
    let e = Client::connect(&target(
        &sushy,
        PASSWORD,
        TlsPolicy::Fingerprint(wrong.clone()),
    ))
    .await
    .unwrap_err();
    assert_eq!(e.kind(), "tls", "{e:?}");
    let text = e.to_string();
    eprintln!("pin mismatch: {text}");
    assert!(text.contains("pin mismatch"), "{text}");
    assert!(text.contains(&wrong), "expected pin missing: {text}");
    assert!(text.contains(&real), "seen fingerprint missing: {text}");
    assert!(!e.is_transient());

    // The right one, written the way `openssl x509 -fingerprint` users
    // might paste it (lower case, no colons): works.
    let bare: String = real.chars().filter(|c| *c != ':').collect();
    let mut client = Client::connect(&target(
        &sushy,
        PASSWORD,
        TlsPolicy::Fingerprint(bare.to_lowercase()),
    ))
    .await
    .expect("right pin");
    assert_eq!(client.power_state().await.unwrap(), PowerState::Off);
    // The same trust for the websocket console.
    assert!(client.tls_config().alpn_protocols.is_empty());

    // A CA that did not sign the emulator's certificate.
    let (other_ca, _) = support::sushy::new_ca("some other CA");
    let dir = tempfile::tempdir().unwrap();
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, other_ca).unwrap();
    let e = Client::connect(&target(&sushy, PASSWORD, TlsPolicy::CaFile(other_ca_file)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "tls", "{e:?}");
    eprintln!("other CA: {e}");
    assert!(e.to_string().contains("unknown CA"), "{e}");
    assert!(e.to_string().contains(&real), "{e}");

    // The right CA works (also in connect_with_a_ca_file_and_read_the_system).
    Client::connect(&target(
        &sushy,
        PASSWORD,
        TlsPolicy::CaFile(sushy.ca_file().into()),
    ))
    .await
    .expect("right CA");
}

#[tokio::test]
async fn unreachable_and_silent_services() {
    // Nothing listens: unreachable, worth retrying.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Target {
        base_url: format!("https://127.0.0.1:{port}"),
        username: USER.into(),
        password: PASSWORD.into(),
        tls: TlsPolicy::Insecure,
        system_id: None,
        timeout: Duration::from_secs(2),
    };
    let e = Client::connect(&t).await.unwrap_err();
    eprintln!("closed port: {e}");
    assert_eq!(e.kind(), "unreachable", "{e:?}");
    assert!(e.is_transient());
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");

    // Accepts TCP, never speaks: a timeout within the target's bound.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let t = Target {
        base_url: format!("https://{}", silent.local_addr().unwrap()),
        timeout: Duration::from_millis(800),
        ..t
    };
    let started = Instant::now();
    let e = Client::connect(&t).await.unwrap_err();
    eprintln!("silent port: {e}");
    assert_eq!(e.kind(), "timeout", "{e:?}");
    assert!(e.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

/// The engine's view (petitlab::hardware, what deploys use) of sushy's
/// ignored "Once": reported as kept, and cleared by setting none, as a
/// deploy does before the instance boots.
#[tokio::test]
async fn the_management_interface_reports_a_kept_once_and_clears_it() {
    use petitlab::hardware::{self, BootDevice};
    let sushy = Sushy::start();
    let target = target(&sushy, PASSWORD, pinned(&sushy));
    let mut bmc = hardware::Bmc::new(hardware::Target::Redfish(Box::new(target)));
    let set = bmc.set_boot_device(BootDevice::Pxe, false).await.unwrap();
    assert!(set.once_ignored, "{set:?}");
    assert_eq!(set.flags.label(), "pxe (persistent)");
    let cleared = bmc.set_boot_device(BootDevice::None, false).await.unwrap();
    assert!(!cleared.once_ignored, "{cleared:?}");
    let now = bmc.boot_flags().await.unwrap().expect("an override");
    assert_eq!(now.device, Some(BootDevice::None), "{now:?}");
    // The same session goes on serving the other interfaces.
    bmc.power_status().await.expect("the power state");
    bmc.close().await;
}

/// The toolbox over Redfish. sushy-tools 2.2.0's fake driver has: the
/// System's Manufacturer ("Sushy Emulator") and IndicatorLED, the Chassis'
/// Manufacturer/Model/SKU/SerialNumber/PartNumber (Contoso's), a Manager
/// with FirmwareVersion "1.00" and Model "Joo Janta 200"; it has no
/// BiosVersion from the fake driver, no `#Manager.Reset` action and no
/// LogServices, so BMC reset and clearing the event log are "unsupported".
#[tokio::test]
async fn toolbox_inventory_firmware_identify_and_what_sushy_lacks() {
    use petitlab::hardware::{self, Bmc};

    let sushy = Sushy::start();
    let t = target(&sushy, PASSWORD, pinned(&sushy));
    let mut bmc = Bmc::new(hardware::Target::Redfish(Box::new(t.clone())));

    let inv = bmc.inventory().await.expect("inventory");
    assert_eq!(inv.get("Product Manufacturer"), Some("Sushy Emulator"));
    assert_eq!(inv.get("Chassis Manufacturer"), Some("Contoso"));
    assert_eq!(inv.get("Chassis Model"), Some("3500RX"));
    assert_eq!(inv.get("Chassis SKU"), Some("8675309"));
    assert_eq!(inv.get("Chassis Serial"), Some("437XR1138R2"));
    assert_eq!(inv.get("Chassis Part Number"), Some("224071-J23"));
    assert!(inv.board.is_empty());

    let fw = bmc.firmware().await.expect("firmware");
    assert_eq!(fw.bmc.as_deref(), Some("1.00"));
    assert_eq!(fw.model.as_deref(), Some("Joo Janta 200"));
    assert_eq!(fw.host, None, "the fake driver reports no BiosVersion");

    // Each set is read back: a LED still off after "Lit" is an error.
    let on = bmc.identify(true).await.expect("identify on");
    assert!(
        on.how
            .starts_with("IndicatorLED Lit on /redfish/v1/Systems/"),
        "{on:?}"
    );
    let off = bmc.identify(false).await.expect("identify off");
    assert!(off.how.starts_with("IndicatorLED Off"), "{off:?}");
    let logged = sushy.requests();
    let patches: Vec<&String> = logged
        .iter()
        .filter(|r| r.contains("\"PATCH /redfish/v1/Systems/"))
        .collect();
    assert_eq!(patches.len(), 2, "{logged:?}");

    let err = bmc.bmc_reset().await.unwrap_err();
    assert_eq!(err.kind(), "unsupported", "{err}");
    assert!(err.to_string().contains("#Manager.Reset"), "{err}");

    let err = bmc.clear_events().await.unwrap_err();
    assert_eq!(err.kind(), "unsupported", "{err}");
    assert_eq!(bmc.events().await.expect("events"), []);
    bmc.close().await;
}
