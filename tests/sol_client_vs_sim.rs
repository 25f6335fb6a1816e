//! petitlab's SOL client against petitlab's simulator (itself checked with
//! ipmitool in tests/sim_sol_ipmitool.rs): both suites, break, takeover,
//! and reconnection after the BMC forgets the session.

use std::time::Duration;

use petitlab::ipmi::sol_driver::{self, Console, ConsoleEvent, ConsoleInput, SolOptions};
use petitlab::ipmi::{CipherChoice, CipherSuite, Credentials, Target, Timing};
use petitlab::sim::{BmcSpec, SerialInput, Sim};

fn target(sim: &Sim, suite: CipherSuite) -> Target {
    Target {
        addr: sim.addr(0),
        credentials: Credentials {
            username: "admin".into(),
            password: "password".into(),
        },
        cipher: CipherChoice::Fixed(suite),
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

/// Host output until `text` has been seen.
async fn read_until(c: &mut Console, text: &str) -> String {
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(text) {
        match event(c).await {
            ConsoleEvent::Data(d) => seen.extend(d),
            other => panic!("{other:?} while waiting for {text:?}"),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

async fn one() -> Sim {
    Sim::start(vec![BmcSpec::new("n1", 0, "admin", "password")])
        .await
        .unwrap()
}

#[tokio::test]
async fn text_and_break_both_ways_with_both_suites() {
    for suite in [CipherSuite::Suite3, CipherSuite::Suite17] {
        let sim = one().await;
        let host = sim.serial(0);
        let mut typed = host.input();
        let mut c = sol_driver::spawn(target(&sim, suite), SolOptions::default());
        assert_eq!(event(&mut c).await, ConsoleEvent::Connected);
        host.write(b"petitboot says hello\r\n");
        read_until(&mut c, "petitboot says hello").await;
        c.input
            .send(ConsoleInput::Data(b"ls\r".to_vec()))
            .await
            .unwrap();
        c.input.send(ConsoleInput::Break).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            got.push(
                tokio::time::timeout(Duration::from_secs(5), typed.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert_eq!(
            got,
            [SerialInput::Data(b"ls\r".to_vec()), SerialInput::Break],
            "suite {}",
            suite.id()
        );
        c.input.send(ConsoleInput::Close).await.unwrap();
        assert_eq!(
            event(&mut c).await,
            ConsoleEvent::Closed {
                reason: "closed".into()
            }
        );
        assert!(!sim.sol_active(0), "Deactivate Payload on close");
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn force_takes_over_and_the_first_console_is_told() {
    let sim = one().await;
    let t = target(&sim, CipherSuite::Suite17);
    let mut first = sol_driver::spawn(t.clone(), SolOptions::default());
    assert_eq!(event(&mut first).await, ConsoleEvent::Connected);

    let mut refused = sol_driver::spawn(t.clone(), SolOptions::default());
    match event(&mut refused).await {
        ConsoleEvent::Closed { reason } => assert!(reason.contains("--force"), "{reason}"),
        other => panic!("{other:?}"),
    }

    let forced = SolOptions {
        force: true,
        ..SolOptions::default()
    };
    let mut second = sol_driver::spawn(t, forced);
    assert_eq!(event(&mut second).await, ConsoleEvent::Connected);
    match event(&mut first).await {
        ConsoleEvent::Closed { reason } => assert!(reason.contains("deactivated SOL"), "{reason}"),
        other => panic!("{other:?}"),
    }
    sim.serial(0).write("to the new console\r\n");
    read_until(&mut second, "to the new console").await;
    sim.shutdown().await;
}

#[tokio::test]
async fn reconnects_when_the_bmc_forgets_the_session() {
    let sim = one().await;
    let options = SolOptions {
        keepalive: Duration::from_millis(100),
        ..SolOptions::default()
    };
    let mut c = sol_driver::spawn(target(&sim, CipherSuite::Suite17), options);
    assert_eq!(event(&mut c).await, ConsoleEvent::Connected);
    sim.forget_sessions(0);
    match event(&mut c).await {
        ConsoleEvent::Reconnecting { reason, .. } => {
            assert!(reason.contains("stopped answering"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(event(&mut c).await, ConsoleEvent::Connected);
    sim.serial(0).write("still here\r\n");
    read_until(&mut c, "still here").await;
    sim.shutdown().await;
}
