//! BMCs that misbehave, and what petitlab says about them.
//!
//! - Every answer takes 1.5–2 s (longer than the 1 s timeout, so each
//!   handshake step is resent): the session still opens and the command
//!   works, against ipmi_sim, our simulator, and a simulated BMC that answers
//!   a resent RAKP 1 with a new challenge. Before, that last one was reported
//!   as a wrong password.
//! - Every answer is garbage: said so, not "no answer".

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use petitlab::ipmi::{Bmc, CipherChoice, CipherSuite, Credentials, IpmiError, Target, Timing};
use petitlab::sim::{BmcSpec, Fault, Sim};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use support::ipmi_sim::{IpmiSim, PASSWORD, USER};
use tokio::net::UdpSocket;
use tokio::sync::Mutex;

/// A UDP relay on 127.0.0.1 that passes requests at once and holds every
/// answer back 1.5–2 s (seeded). Stops with the test's runtime.
async fn slow_relay(bmc: SocketAddr, seed: u64) -> SocketAddr {
    let front = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap());
    let back = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap());
    back.connect(bmc).await.unwrap();
    let addr = front.local_addr().unwrap();
    let client = Arc::new(Mutex::new(None::<SocketAddr>));
    {
        let (front, back, client) = (front.clone(), back.clone(), client.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                *client.lock().await = Some(from);
                let _ = back.send(&buf[..n]).await;
            }
        });
    }
    tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut buf = [0u8; 2048];
        while let Ok(n) = back.recv(&mut buf).await {
            let delay = Duration::from_millis(rng.random_range(1500..=2000));
            let (front, client, answer) = (front.clone(), client.clone(), buf[..n].to_vec());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Some(to) = *client.lock().await {
                    let _ = front.send_to(&answer, to).await;
                }
            });
        }
    });
    addr
}

fn target(addr: SocketAddr, user: &str, password: &str, suite: CipherSuite) -> Target {
    Target {
        addr,
        credentials: Credentials {
            username: user.into(),
            password: password.into(),
        },
        cipher: CipherChoice::Fixed(suite),
        timing: Timing::default(),
    }
}

/// Get Chassis Status through the slow relay: it works, after resends.
async fn chassis_status_through_a_slow_link(target: Target) {
    let mut bmc = Bmc::new(target);
    let status = bmc.call(0x00, 0x01, &[], "Get Chassis Status").await;
    let stats = bmc.stats();
    match status {
        Ok(data) => assert!(!data.is_empty()),
        Err(e) => panic!("through a 1.5–2 s link: {e} ({stats:?})"),
    }
    assert!(
        stats.retransmits > 0,
        "the link was slow enough to resend: {stats:?}"
    );
    bmc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_ipmi_sim_opens_a_session() {
    let sim = IpmiSim::start();
    let relay = slow_relay(sim.addr(), 1).await;
    chassis_status_through_a_slow_link(target(relay, USER, PASSWORD, CipherSuite::Suite3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_simulated_bmc_opens_a_session_whatever_its_challenges() {
    for fault in [Fault::None, Fault::FreshChallenges] {
        let mut spec = BmcSpec::new("n1", 0, "admin", "password");
        spec.fault = fault;
        let sim = Sim::start(vec![spec]).await.unwrap();
        let relay = slow_relay(sim.addr(0), 2).await;
        let t = target(relay, "admin", "password", CipherSuite::Suite17);
        chassis_status_through_a_slow_link(t).await;
        sim.shutdown().await;
    }
}

#[test]
fn a_refused_rakp3_names_the_message_and_status_not_the_password() {
    let e = IpmiError::Rakp3Refused {
        code: 0x0F,
        rakp1_resent: true,
    };
    let text = e.to_string();
    assert!(
        text.contains("RAKP 3") && text.contains("0x0F") && text.contains("resent"),
        "{text}"
    );
    assert!(!text.contains("wrong password"), "{text}");
}

#[tokio::test]
async fn a_bmc_that_answers_garbage_is_not_called_silent() {
    let bmc = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = bmc.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = bmc.recv_from(&mut buf).await {
            let _ = bmc.send_to(b"HTTP/1.1 400 Bad Request\r\n\r\n", from).await;
        }
    });
    let mut t = target(addr, "admin", "password", CipherSuite::Suite17);
    t.timing.timeout = Duration::from_millis(200);
    let err = Bmc::new(t)
        .call(0x00, 0x01, &[], "Get Chassis Status")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("only with malformed packets") && text.contains("not RMCP version 1.0"),
        "{text}"
    );
    assert!(!text.contains("no answer"), "{text}");
}
