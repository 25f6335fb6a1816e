//! SOL through a relay that drops, duplicates or holds back 10% of the
//! datagrams each way: a 1 MiB random stream arrives exactly, both ways.

mod support;

use std::time::Duration;

use petitlab::ipmi::sol::SolConfig;
use petitlab::ipmi::sol_driver::{self, ConsoleEvent, ConsoleInput, SolOptions};
use petitlab::ipmi::{CipherChoice, CipherSuite, Credentials, Target, Timing};
use petitlab::sim::{BmcSpec, SerialInput, Sim};
use support::lossy_relay::LossyRelay;

const MIB: usize = 1 << 20;
/// Override with SOL_RELAY_SEED=N to try other mistreatment patterns.
const SEED: u64 = 0x5017_2026;

fn seed() -> u64 {
    std::env::var("SOL_RELAY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED)
}
/// Host writes go out in chunks this size, each after the previous one
/// arrived: the virtual serial port, like a UART, has a bounded buffer.
const CHUNK: usize = 16 * 1024;

fn random_bytes(len: usize, mut x: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn event(c: &mut sol_driver::Console) -> ConsoleEvent {
    tokio::time::timeout(Duration::from_secs(30), c.events.recv())
        .await
        .expect("console event in time")
        .expect("console running")
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mebibyte_each_way_survives_a_lossy_link() {
    let mut spec = BmcSpec::new("lossy", 0, "admin", "password");
    spec.sol_retry = Duration::from_millis(10);
    let sim = Sim::start(vec![spec]).await.unwrap();
    let relay = LossyRelay::start(sim.addr(0), 0.10, seed()).await;
    let target = Target {
        addr: relay.addr(),
        credentials: Credentials {
            username: "admin".into(),
            password: "password".into(),
        },
        cipher: CipherChoice::Fixed(CipherSuite::Suite17),
        timing: Timing {
            timeout: Duration::from_millis(100),
            retries: 8,
            ..Timing::default()
        },
    };
    let options = SolOptions {
        reconnect: false,
        machine: SolConfig {
            retransmit_after: Duration::from_millis(10),
            max_retransmits: 20,
            ..SolConfig::default()
        },
        ..SolOptions::default()
    };
    let mut console = sol_driver::spawn(target, options);
    assert_eq!(
        event(&mut console).await,
        ConsoleEvent::Connected,
        "{}",
        relay.counts.summary()
    );

    // Host → console.
    let host = sim.serial(0);
    let sent = random_bytes(MIB, seed());
    let mut got = Vec::with_capacity(MIB);
    for chunk in sent.chunks(CHUNK) {
        host.write(chunk);
        let want = got.len() + chunk.len();
        while got.len() < want {
            match event(&mut console).await {
                ConsoleEvent::Data(d) => got.extend(d),
                other => panic!(
                    "{other:?} after {} bytes; {}",
                    got.len(),
                    relay.counts.summary()
                ),
            }
        }
    }
    if let Some(at) = first_difference(&got, &sent) {
        let show = |v: &[u8]| format!("{:02x?}", &v[at.saturating_sub(8)..(at + 24).min(v.len())]);
        eprintln!(
            "got  {}\nsent {}\ngot len {}",
            show(&got),
            show(&sent),
            got.len()
        );
    }
    assert_eq!(
        first_difference(&got, &sent),
        None,
        "host → console; {}",
        relay.counts.summary()
    );

    // Console → host.
    let mut typed_rx = host.input();
    let typed = random_bytes(MIB, seed() + 1);
    let reader = tokio::spawn(async move {
        let mut arrived = Vec::with_capacity(MIB);
        while arrived.len() < MIB {
            match typed_rx.recv().await {
                Ok(SerialInput::Data(d)) => arrived.extend(d),
                Ok(SerialInput::Break) => panic!("unexpected break"),
                Err(e) => panic!("host input after {} bytes: {e}", arrived.len()),
            }
        }
        arrived
    });
    for chunk in typed.chunks(4096) {
        console
            .input
            .send(ConsoleInput::Data(chunk.to_vec()))
            .await
            .unwrap();
    }
    let arrived = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("all typed bytes arrive")
        .unwrap();
    assert_eq!(
        first_difference(&arrived, &typed),
        None,
        "console → host; {}",
        relay.counts.summary()
    );

    let counts = &relay.counts;
    let impaired = [&counts.dropped, &counts.duplicated, &counts.reordered]
        .map(|c| c.load(std::sync::atomic::Ordering::Relaxed));
    assert!(
        impaired.iter().all(|&n| n > 100),
        "the relay really mistreated datagrams: {}",
        counts.summary()
    );
    eprintln!("lossy relay (seed {}): {}", seed(), counts.summary());
    console.input.send(ConsoleInput::Close).await.unwrap();
    sim.shutdown().await;
}
