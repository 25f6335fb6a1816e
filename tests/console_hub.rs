//! The engine's shared consoles against the simulator: a console another
//! tool holds is reported closed, and opened afresh for the next user once
//! that tool lets go; the dead handle's release leaves the new one alone;
//! the last close returns only once SOL is deactivated; a console waiting
//! out a long reconnection backoff connects at once when a deploy asks.

mod support;

use std::sync::Arc;
use std::time::Duration;

use petitlab::engine::lab::{Engine, EngineEvent};
use petitlab::ipmi::sol_driver::{self, ConsoleEvent, ConsoleInput, SolOptions};
use petitlab::sim::Sim;
use petitlab::sim::lab::{LabSim, specs_for_lab};
use support::virtual_lab::{Proto, VNode, VirtualLab};

async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {what} in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_held_elsewhere_reopens_once_released() {
    let v = VirtualLab::new(vec![VNode::new("n1", Proto::Http, false, 0)], 16, "");
    let (lab, _) = petitlab::inventory::load_valid(&v.lab).unwrap();
    let lab = Arc::new(lab);
    let specs = specs_for_lab(&lab, &LabSim::new(&lab)).unwrap();
    let sim = Sim::start(specs.into_iter().map(|(s, _)| s).collect())
        .await
        .unwrap();
    let node = lab.node("n1").unwrap().clone();

    // Another tool (ipmitool, petitlab console) holds SOL.
    let target = petitlab::engine::targets::bmc_target(&node, Default::default())
        .await
        .unwrap();
    let mut other = sol_driver::spawn(target, SolOptions::default());
    let first = tokio::time::timeout(Duration::from_secs(10), other.events.recv())
        .await
        .unwrap();
    assert_eq!(first, Some(ConsoleEvent::Connected));

    let (engine, _events) = Engine::open(lab.clone()).unwrap();
    let refused = engine.consoles.attach(&node, vec![]).await.unwrap();
    let seen = refused.seen();
    let why = until("refusal", || seen.borrow().closed.clone()).await;
    assert!(why.contains("--force") || why.contains("active"), "{why}");

    // The other tool lets go; the next attach opens the console again.
    other.input.send(ConsoleInput::Close).await.unwrap();
    while let Some(event) = other.events.recv().await {
        if matches!(event, ConsoleEvent::Closed { .. }) {
            break;
        }
    }
    let fresh = engine.consoles.attach(&node, vec![]).await.unwrap();
    let seen = fresh.seen();
    until("a connected console", || {
        seen.borrow().connected.then_some(())
    })
    .await;
    assert!(sim.sol_active(0));

    // Releasing the dead handle does not close the live session.
    refused.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sim.sol_active(0), "the fresh console stays open");
    assert!(seen.borrow().closed.is_none());
    // The last user's close returns once SOL is deactivated: a process
    // exiting right after it leaves no active payload on the BMC.
    fresh.close().await;
    assert!(!sim.sol_active(0), "SOL is still active after close");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_console_tries_at_once_when_asked() {
    let v = VirtualLab::new(vec![VNode::new("n1", Proto::Http, false, 0)], 16, "");
    let (lab, _) = petitlab::inventory::load_valid(&v.lab).unwrap();
    let lab = Arc::new(lab);
    let node = lab.node("n1").unwrap().clone();

    // No BMC yet: the console keeps trying, each wait twice the last.
    let (engine, mut events) = Engine::open(lab.clone()).unwrap();
    let watch = engine.consoles.attach(&node, vec![]).await.unwrap();
    let long_wait = async {
        while let Some(event) = events.recv().await {
            if let EngineEvent::ConsoleStatus {
                message: Some(message),
                ..
            } = event
                && let Some(secs) = message
                    .strip_suffix(" s")
                    .and_then(|m| m.rsplit_once("reconnecting in "))
                    .and_then(|(_, n)| n.parse::<u64>().ok())
                && secs >= 4
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), long_wait)
        .await
        .expect("the console reconnecting with a backoff of 4 s or more");

    // The BMC is back (the simulator restarted, a BMC reset ended) in the
    // middle of that wait; a deploy about to boot the node asks for it now.
    let specs = specs_for_lab(&lab, &LabSim::new(&lab)).unwrap();
    let sim = Sim::start(specs.into_iter().map(|(s, _)| s).collect())
        .await
        .unwrap();
    assert!(
        watch.ensure_connected(Duration::from_secs(2)).await,
        "the console did not connect within 2 s of being asked"
    );
    assert!(sim.sol_active(0));
    watch.close().await;
    sim.shutdown().await;
}
