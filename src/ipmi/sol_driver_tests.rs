//! The console driver against the simulator: calls in the console's
//! session, refusals while it is down, and a session that outlives an
//! unanswered call.

use super::*;
use crate::ipmi::rmcp::{CipherChoice, Credentials, Timing};
use crate::ipmi::{Bmc, CipherSuite, chassis};
use crate::sim::{BmcSpec, Sim};

fn target(addr: std::net::SocketAddr) -> Target {
    Target {
        addr,
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

#[tokio::test]
async fn calls_are_refused_at_once_while_activating_and_after_close() {
    // A socket that never answers: the console stays in its handshake.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (handle, calls) = call_channel();
    let options = SolOptions {
        reconnect: false,
        ..SolOptions::default()
    };
    let mut console = spawn_with_calls(target(silent.local_addr().unwrap()), options, calls);
    let started = Instant::now();
    let answer = handle
        .call(netfn::APP, GET_DEVICE_ID, &[], "Get Device ID")
        .await;
    assert!(
        matches!(answer, Err(IpmiError::ConsoleNotConnected)),
        "{answer:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "not at once"
    );
    match event(&mut console).await {
        ConsoleEvent::Closed { .. } => {}
        other => panic!("{other:?}"),
    }
    let answer = handle
        .call(netfn::APP, GET_DEVICE_ID, &[], "Get Device ID")
        .await;
    assert!(matches!(answer, Err(IpmiError::ConsoleNotConnected)));
}

#[tokio::test]
async fn calls_ride_in_the_console_session_with_completion_codes() {
    let sim = Sim::start(vec![BmcSpec::new("n1", 0, "admin", "password")])
        .await
        .unwrap();
    let (handle, calls) = call_channel();
    let options = SolOptions {
        keepalive: Duration::from_millis(50),
        ..SolOptions::default()
    };
    let mut console = spawn_with_calls(target(sim.addr(0)), options, calls);
    assert_eq!(event(&mut console).await, ConsoleEvent::Connected);
    // Several callers at once, with keepalives in between.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(u64::from(i) * 20)).await;
            handle
                .call(netfn::CHASSIS, 0x01, &[], "Get Chassis Status")
                .await
        }));
    }
    for task in tasks {
        let status = task.await.unwrap().expect("chassis status");
        assert_eq!(status[0] & 1, 0, "powered off");
    }
    // An unknown command: the BMC's completion code comes back as such.
    let unknown = handle.call(0x30, 0x99, &[], "OEM thing").await;
    assert!(
        matches!(
            unknown,
            Err(IpmiError::Completion {
                command: "OEM thing",
                code: 0xC1
            })
        ),
        "{unknown:?}"
    );
    // Bmc through the console: power on, read it back.
    let mut bmc = Bmc::with_console(target(sim.addr(0)), handle.clone());
    chassis::power(&mut bmc, chassis::PowerAction::On)
        .await
        .unwrap();
    assert!(chassis::power_status(&mut bmc).await.unwrap());
    assert!(!bmc.has_own_session());
    // Console bytes still flow.
    sim.serial(0).write("after the calls\r\n");
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("after the calls") {
        match event(&mut console).await {
            ConsoleEvent::Data(d) => seen.extend(d),
            other => panic!("{other:?}"),
        }
    }
    console.input.send(ConsoleInput::Close).await.unwrap();
    loop {
        if let ConsoleEvent::Closed { .. } = event(&mut console).await {
            break;
        }
    }
    // Console gone: Bmc falls back on a session of its own.
    assert!(chassis::power_status(&mut bmc).await.unwrap());
    assert!(bmc.has_own_session());
    bmc.close().await;
    sim.shutdown().await;
}

/// Between us and the BMC: forwards every datagram, except our IPMI
/// requests (payload type 0) while `drop_requests` is set.
async fn request_eating_relay(
    bmc: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let drop_requests = std::sync::Arc::new(AtomicBool::new(false));
    let eat = drop_requests.clone();
    tokio::spawn(async move {
        let mut client = None;
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let packet = &buf[..n];
            if from == bmc {
                if let Some(c) = client {
                    let _ = socket.send_to(packet, c).await;
                }
                continue;
            }
            client = Some(from);
            // RMCP+ session packets: byte 5 holds the payload type.
            let ipmi = n > 5 && packet[4] == 0x06 && packet[5] & 0x3F == 0;
            if ipmi && eat.load(Ordering::Relaxed) {
                continue;
            }
            let _ = socket.send_to(packet, bmc).await;
        }
    });
    (addr, drop_requests)
}

#[tokio::test]
async fn an_unanswered_call_fails_but_a_console_still_talking_stays_up() {
    let sim = Sim::start(vec![BmcSpec::new("n1", 0, "admin", "password")])
        .await
        .unwrap();
    let (relay, drop_requests) = request_eating_relay(sim.addr(0)).await;
    let (handle, calls) = call_channel();
    let mut console = spawn_with_calls(target(relay), SolOptions::default(), calls);
    assert_eq!(event(&mut console).await, ConsoleEvent::Connected);
    let chatter = tokio::spawn({
        let serial = sim.serial(0);
        async move {
            for i in 0.. {
                serial.write(format!("line {i}\r\n"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    drop_requests.store(true, std::sync::atomic::Ordering::Relaxed);
    let lost = handle
        .call(netfn::CHASSIS, 0x01, &[], "Get Chassis Status")
        .await;
    assert!(matches!(lost, Err(IpmiError::Timeout { .. })), "{lost:?}");
    drop_requests.store(false, std::sync::atomic::Ordering::Relaxed);
    // The console never went away: output, then the next call answered.
    let answered = handle
        .call(netfn::CHASSIS, 0x01, &[], "Get Chassis Status")
        .await;
    assert!(answered.is_ok(), "{answered:?}");
    let mut seen = 0;
    while seen < 5 {
        match event(&mut console).await {
            ConsoleEvent::Data(_) => seen += 1,
            other => panic!("the console was dropped: {other:?}"),
        }
    }
    chatter.abort();
    console.input.send(ConsoleInput::Close).await.unwrap();
    sim.shutdown().await;
}
