//! The poller over 200 simulated BMCs plus one that never answers and one
//! with a wrong password: both are reported, and the good ones' sweep time
//! does not grow because of them.

use std::time::Duration;

use petitlab::engine::poller::{Poller, PollerConfig, Reading, Update};
use petitlab::ipmi::chassis::{self, PowerAction};
use petitlab::ipmi::{Bmc, CipherChoice, CipherSuite, Credentials, Target, Timing};
use petitlab::sim::{BmcSpec, Fault, Sim};

const GOOD: usize = 200;

fn target(sim: &Sim, i: usize) -> Target {
    Target {
        addr: sim.addr(i),
        credentials: Credentials {
            username: "admin".into(),
            password: "password".into(),
        },
        cipher: CipherChoice::Fixed(CipherSuite::Suite17),
        timing: Timing {
            timeout: Duration::from_millis(400),
            retries: 1,
            ..Timing::default()
        },
    }
}

async fn lab(sick: bool) -> Sim {
    let mut specs: Vec<BmcSpec> = (0..GOOD)
        .map(|i| BmcSpec::new(&format!("n{i}"), 0, "admin", "password"))
        .collect();
    if sick {
        specs.push(BmcSpec {
            fault: Fault::Silent,
            ..BmcSpec::new("silent", 0, "admin", "password")
        });
        specs.push(BmcSpec::new("wrongpw", 0, "admin", "another-password"));
    }
    Sim::start(specs).await.expect("start simulator")
}

fn poller(sim: &Sim, config: PollerConfig) -> Poller {
    let nodes = (0..sim.len())
        .map(|i| {
            (
                format!("n{i}"),
                Ok(petitlab::hardware::Target::Ipmi(target(sim, i))),
            )
        })
        .collect();
    Poller::new(nodes, config)
}

/// Warm-sweep time of the good nodes: the slowest of them, median of 5 sweeps.
async fn good_sweep_time(p: &mut Poller) -> Duration {
    let mut times = Vec::new();
    for _ in 0..5 {
        let sweep = p.sweep().await;
        times.push(*sweep.finished_after[..GOOD].iter().max().unwrap());
    }
    times.sort();
    times[2]
}

fn failed_kind(u: &Update) -> Option<&'static str> {
    match &u.reading {
        Reading::Failed { kind, .. } => Some(kind),
        Reading::Ok { .. } => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sick_bmcs_are_reported_and_do_not_slow_the_others() {
    let config = PollerConfig::default();
    let healthy = lab(false).await;
    let mut p = poller(&healthy, config);
    assert_eq!(p.sweep().await.changes.len(), GOOD);
    let baseline = good_sweep_time(&mut p).await;
    p.close().await;
    healthy.shutdown().await;

    let sick = lab(true).await;
    let mut p = poller(&sick, config);
    let first = p.sweep().await;
    assert_eq!(
        first.changes.len(),
        GOOD + 2,
        "everything is new the first time"
    );
    let silent = &first.changes[GOOD];
    let wrongpw = &first.changes[GOOD + 1];
    assert_eq!(failed_kind(silent), Some("unreachable"), "{silent:?}");
    assert_eq!(failed_kind(wrongpw), Some("auth"), "{wrongpw:?}");
    assert!(
        first.changes[..GOOD]
            .iter()
            .all(|u| failed_kind(u).is_none())
    );

    let with_sick = good_sweep_time(&mut p).await;
    // The silent BMC costs 800 ms of timeouts per sweep; the good ones must
    // finish long before that, about as fast as without it.
    assert!(
        with_sick < baseline * 3 + Duration::from_millis(30)
            && with_sick < Duration::from_millis(400),
        "good nodes swept in {with_sick:?} with sick neighbours, {baseline:?} without"
    );
    p.close().await;
    sick.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_changes_are_emitted() {
    let sim = lab(false).await;
    let mut p = poller(&sim, PollerConfig::default());
    assert_eq!(p.sweep().await.changes.len(), GOOD);
    assert!(p.sweep().await.changes.is_empty(), "nothing changed");

    let mut other = Bmc::new(target(&sim, 7));
    chassis::power(&mut other, PowerAction::On).await.unwrap();
    let changes = p.sweep().await.changes;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].node, "n7");
    assert!(matches!(
        changes[0].reading,
        Reading::Ok { power_on: true, .. }
    ));
    p.close().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_poller_streams_changes_and_stops_when_dropped() {
    let sim = lab(true).await;
    let config = PollerConfig {
        interval: Duration::from_millis(100),
        ..PollerConfig::default()
    };
    let p = poller(&sim, config);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let task = tokio::spawn(p.run(tx));

    let mut seen = std::collections::HashSet::new();
    while seen.len() < GOOD {
        let u = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if failed_kind(&u).is_none() {
            seen.insert(u.index);
        }
    }
    let mut other = Bmc::new(target(&sim, 3));
    chassis::power(&mut other, PowerAction::On).await.unwrap();
    // The next update for a good node is n3 turning on; sick nodes may
    // report in between.
    let update = loop {
        let u = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if u.index < GOOD {
            break u;
        }
    };
    assert_eq!(update.node, "n3");
    assert!(matches!(update.reading, Reading::Ok { power_on: true, .. }));

    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("poller stops")
        .unwrap();
    sim.shutdown().await;
}
