//! The poller's requests inside the SOL console's session, against our
//! simulator, which counts every session it opens: with `Bmc::with_console`
//! a BMC sees one session for the console and the poller together; while
//! the console is down the poller falls back on a session of its own and
//! closes it once the console is back.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use petitlab::ipmi::chassis::{self, BootDevice, PowerAction};
use petitlab::ipmi::sol_driver::{self, Console, ConsoleEvent, ConsoleInput, SolOptions};
use petitlab::ipmi::{Bmc, CipherChoice, CipherSuite, Credentials, Target, Timing};
use petitlab::sim::{BmcSpec, Sim};
use support::lossy_relay::LossyRelay;

fn target(sim: &Sim) -> Target {
    Target {
        addr: sim.addr(0),
        credentials: Credentials {
            username: "admin".into(),
            password: "password".into(),
        },
        cipher: CipherChoice::Fixed(CipherSuite::Suite17),
        timing: Timing {
            timeout: Duration::from_millis(200),
            retries: 1,
            ..Timing::default()
        },
    }
}

async fn event(c: &mut Console) -> ConsoleEvent {
    tokio::time::timeout(Duration::from_secs(10), c.events.recv())
        .await
        .expect("a console event in time")
        .expect("console running")
}

async fn one() -> Sim {
    Sim::start(vec![BmcSpec::new("n1", 0, "admin", "password")])
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_polls_beside_a_busy_console_open_one_session() {
    let sim = one().await;
    let (calls, served) = sol_driver::call_channel();
    let mut console = sol_driver::spawn_with_calls(target(&sim), SolOptions::default(), served);
    assert_eq!(event(&mut console).await, ConsoleEvent::Connected);

    // The host prints all along; every line must reach the console.
    let host = sim.serial(0);
    let printer = tokio::spawn(async move {
        for i in 0..200 {
            host.write(format!("line {i:03}\r\n"));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let mut bmc = Bmc::with_console(target(&sim), calls);
    // Power stays off: a powered host would print its firmware's lines
    // among the test's.
    chassis::set_boot_device(&mut bmc, BootDevice::Pxe, false)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..20 {
        assert!(!chassis::power_status(&mut bmc).await.unwrap());
        let flags = chassis::boot_flags(&mut bmc).await.unwrap();
        assert_eq!(flags.device, Some(BootDevice::Pxe), "{flags:?}");
        while let Ok(Some(ConsoleEvent::Data(d))) =
            tokio::time::timeout(Duration::from_millis(5), console.events.recv()).await
        {
            seen.extend(d);
        }
    }
    assert_eq!(sim.chassis(0).boot_device, petitlab::sim::BootDevice::Pxe);
    let count = sim.sessions(0);
    assert_eq!(count.opened_total, 1, "{count:?}");
    assert_eq!(count.active_ids.len(), 1, "{count:?}");
    assert!(!bmc.has_own_session());

    printer.await.unwrap();
    while !String::from_utf8_lossy(&seen).contains("line 199") {
        match event(&mut console).await {
            ConsoleEvent::Data(d) => seen.extend(d),
            other => panic!("{other:?}"),
        }
    }
    let text = String::from_utf8_lossy(&seen);
    let host_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("line ")).collect();
    let expected: Vec<String> = (0..200).map(|i| format!("line {i:03}")).collect();
    assert_eq!(host_lines, expected, "console bytes lost or reordered");
    console.input.send(ConsoleInput::Close).await.unwrap();
    assert_eq!(
        event(&mut console).await,
        ConsoleEvent::Closed {
            reason: "closed".into()
        }
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_while_the_console_reconnects_then_closes_its_own_session() {
    let sim = one().await;
    let (calls, served) = sol_driver::call_channel();
    let options = SolOptions {
        keepalive: Duration::from_millis(100),
        // Long enough for the poll below to land inside it.
        max_backoff: Duration::from_secs(10),
        ..SolOptions::default()
    };
    let mut console = sol_driver::spawn_with_calls(target(&sim), options, served);
    assert_eq!(event(&mut console).await, ConsoleEvent::Connected);
    let mut bmc = Bmc::with_console(target(&sim), calls);
    assert!(!chassis::power_status(&mut bmc).await.unwrap());
    assert_eq!(sim.sessions(0).opened_total, 1);

    // The BMC forgets the console's session (a BMC reboot).
    sim.forget_sessions(0);
    match event(&mut console).await {
        ConsoleEvent::Reconnecting { .. } => {}
        other => panic!("{other:?}"),
    }
    // Inside the backoff: the poll goes through a session of Bmc's own.
    assert!(!chassis::power_status(&mut bmc).await.unwrap());
    assert!(bmc.has_own_session());
    assert_eq!(sim.sessions(0).opened_total, 2);

    assert_eq!(event(&mut console).await, ConsoleEvent::Connected);
    assert!(!chassis::power_status(&mut bmc).await.unwrap());
    assert!(!bmc.has_own_session(), "own session closed again");
    let count = sim.sessions(0);
    assert_eq!(count.opened_total, 3, "{count:?}");
    assert_eq!(count.active_ids.len(), 1, "only the console's: {count:?}");
    // Actions go the same way.
    chassis::power(&mut bmc, PowerAction::On).await.unwrap();
    assert!(sim.chassis(0).power_on);
    // keepalive has nothing to do: the console keeps its session alive.
    bmc.keepalive().await.unwrap();
    assert_eq!(sim.sessions(0).opened_total, 3);
    sim.shutdown().await;
}

/// Through a relay that drops, duplicates or holds back 10% of the
/// datagrams each way: every call is resent until answered, and answered
/// with its own reply (two commands alternate, so a stale or duplicated
/// reply taken for the next call would show as the wrong data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_survive_a_lossy_link_with_their_own_answers() {
    let sim = one().await;
    let relay = LossyRelay::start(sim.addr(0), 0.10, 0xCA11_2026).await;
    let target = Target {
        addr: relay.addr(),
        timing: Timing {
            timeout: Duration::from_millis(100),
            retries: 8,
            ..Timing::default()
        },
        ..target(&sim)
    };
    let (calls, served) = sol_driver::call_channel();
    let options = SolOptions {
        reconnect: false,
        ..SolOptions::default()
    };
    let mut console = sol_driver::spawn_with_calls(target.clone(), options, served);
    assert_eq!(event(&mut console).await, ConsoleEvent::Connected);
    let mut bmc = Bmc::with_console(target, calls);
    chassis::set_boot_device(&mut bmc, BootDevice::Disk, true)
        .await
        .unwrap();
    for i in 0..60 {
        assert!(!chassis::power_status(&mut bmc).await.unwrap(), "poll {i}");
        let flags = chassis::boot_flags(&mut bmc).await.unwrap();
        assert_eq!(
            (flags.device, flags.persistent),
            (Some(BootDevice::Disk), true),
            "poll {i}"
        );
    }
    assert!(!bmc.has_own_session());
    assert_eq!(sim.sessions(0).opened_total, 1);
    let dropped = relay.counts.dropped.load(Ordering::Relaxed);
    assert!(
        dropped > 5,
        "the relay dropped datagrams: {}",
        relay.counts.summary()
    );
    console.input.send(ConsoleInput::Close).await.unwrap();
    sim.shutdown().await;
}
