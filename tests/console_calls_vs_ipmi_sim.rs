//! The poller's requests inside petitlab's SOL session, against OpenIPMI's
//! ipmi_sim (a peer we did not write): power and boot device through
//! `Bmc::with_console` while host output flows, with no second session.
//!
//! How "no second session" is checked: ipmi_sim answers Get Session Info
//! (`ipmitool session info active`) with its count of active sessions,
//! which includes ipmitool's own. With the console and the polling Bmc it
//! must say 2 (console + ipmitool); as a control, the same query with one
//! more session of petitlab's own open must say 3.

mod support;

use std::time::Duration;

use petitlab::ipmi::chassis::{self, BootDevice, PowerAction};
use petitlab::ipmi::sol_driver::{self, ConsoleEvent, ConsoleInput, SolOptions};
use petitlab::ipmi::{Bmc, Session};
use support::ipmi_sim::{IpmiSim, PASSWORD};

async fn next_event(console: &mut sol_driver::Console) -> ConsoleEvent {
    tokio::time::timeout(Duration::from_secs(20), console.events.recv())
        .await
        .expect("a console event in time")
        .expect("console still running")
}

/// ipmi_sim's count of active sessions, ipmitool's own included.
async fn active_sessions(sim: &IpmiSim) -> usize {
    let out =
        tokio::task::block_in_place(|| sim.ipmitool(PASSWORD, &["session", "info", "active"]));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ipmitool session info active: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "active sessions")
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no active session count in {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_and_boot_flags_through_the_console_session() {
    let (sim, serial) = IpmiSim::start_with_sol();
    let (calls, served) = sol_driver::call_channel();
    let mut console = sol_driver::spawn_with_calls(sim.target(), SolOptions::default(), served);
    assert_eq!(next_event(&mut console).await, ConsoleEvent::Connected);

    // The host prints all along while the Bmc polls.
    let printer = std::thread::spawn(move || {
        let mut serial = serial;
        for i in 0..100 {
            serial.write_all(format!("line {i:03}\r\n").as_bytes());
            std::thread::sleep(Duration::from_millis(10));
        }
        serial
    });
    let mut bmc = Bmc::with_console(sim.target(), calls);
    chassis::power(&mut bmc, PowerAction::On).await.unwrap();
    chassis::set_boot_device(&mut bmc, BootDevice::Pxe, false)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..10 {
        assert!(chassis::power_status(&mut bmc).await.unwrap());
        let flags = chassis::boot_flags(&mut bmc).await.unwrap();
        assert_eq!(flags.device, Some(BootDevice::Pxe), "{flags:?}");
        while let Ok(Some(ConsoleEvent::Data(d))) =
            tokio::time::timeout(Duration::from_millis(20), console.events.recv()).await
        {
            seen.extend(d);
        }
    }
    // What ipmi_sim's chassis_control hook was told.
    assert_eq!(sim.power_file_value(), "1");
    assert_eq!(sim.boot_file_value(), "pxe");
    assert_eq!(active_sessions(&sim).await, 2, "console + ipmitool only");
    assert!(!bmc.has_own_session());
    // Control: a second session of ours is counted.
    let extra = Session::open(&sim.target()).await.unwrap();
    assert_eq!(active_sessions(&sim).await, 3);
    extra.close().await;

    let _serial = tokio::task::block_in_place(|| printer.join().unwrap());
    while !String::from_utf8_lossy(&seen).contains("line 099") {
        match next_event(&mut console).await {
            ConsoleEvent::Data(d) => seen.extend(d),
            other => panic!("{other:?}"),
        }
    }
    let text = String::from_utf8_lossy(&seen);
    let lines: Vec<&str> = text.lines().collect();
    let expected: Vec<String> = (0..100).map(|i| format!("line {i:03}")).collect();
    assert_eq!(lines, expected, "host output lost or reordered");

    console.input.send(ConsoleInput::Close).await.unwrap();
    loop {
        match next_event(&mut console).await {
            ConsoleEvent::Closed { reason } => {
                assert_eq!(reason, "closed");
                break;
            }
            ConsoleEvent::Data(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
