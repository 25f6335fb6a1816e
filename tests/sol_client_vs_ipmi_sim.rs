//! petitlab's SOL client against OpenIPMI's ipmi_sim, whose serial side is a
//! TCP socket played by the test: bytes both ways arrive exactly, all 256
//! values and ANSI sequences included.

mod support;

use std::time::Duration;

use petitlab::ipmi::sol_driver::{self, ConsoleEvent, ConsoleInput, SolOptions};
use support::ipmi_sim::IpmiSim;

/// Several KiB: every byte value, terminal escape sequences, then a
/// deterministic pseudo-random tail.
fn stream(len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = (0..=255u8).collect();
    out.extend_from_slice(b"\x1b[1;31mred\x1b[0m \x1b[2J\x1b[H\x1b[?1h\x1b=\r\n");
    let mut x: u32 = 0x9E37_79B9;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push(x as u8);
    }
    out
}

async fn next_event(console: &mut sol_driver::Console) -> ConsoleEvent {
    tokio::time::timeout(Duration::from_secs(20), console.events.recv())
        .await
        .expect("a console event in time")
        .expect("console still running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_both_ways_arrive_exactly() {
    let (sim, serial) = IpmiSim::start_with_sol();
    let target = sim.target();
    let mut console = sol_driver::spawn(target, SolOptions::default());
    assert_eq!(next_event(&mut console).await, ConsoleEvent::Connected);

    // Host → console.
    let host_out = stream(6 * 1024);
    let (mut stream_in, mut serial) = {
        let expected = host_out.clone();
        let writer = std::thread::spawn(move || {
            let mut serial = serial;
            serial.write_all(&expected);
            serial
        });
        let mut got = Vec::new();
        while got.len() < host_out.len() {
            match next_event(&mut console).await {
                ConsoleEvent::Data(d) => got.extend(d),
                other => panic!("unexpected {other:?} after {} bytes", got.len()),
            }
        }
        (got, writer.join().unwrap())
    };
    stream_in.truncate(host_out.len());
    assert!(
        stream_in == host_out,
        "host output differs at byte {:?}",
        stream_in.iter().zip(&host_out).position(|(a, b)| a != b)
    );

    // Console → host, in keystroke-sized and larger writes.
    let typed = stream(5 * 1024);
    for chunk in typed.chunks(97) {
        console
            .input
            .send(ConsoleInput::Data(chunk.to_vec()))
            .await
            .unwrap();
    }
    let n = typed.len();
    let arrived = tokio::task::spawn_blocking(move || {
        let got = serial.read_exact_timeout(n, Duration::from_secs(30));
        (got, serial)
    })
    .await
    .unwrap();
    assert!(
        arrived.0 == typed,
        "typed bytes differ at byte {:?}",
        arrived.0.iter().zip(&typed).position(|(a, b)| a != b)
    );

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
