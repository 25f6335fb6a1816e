//! A console that prints without pause for longer than a BMC's session idle
//! timeout (ipmi_sim: 30 s, counted on IPMI requests only; SOL packets do not
//! count) must stay connected: every byte arrives, and no reconnect happens.
//! Against OpenIPMI's ipmi_sim, and against our simulator, which now times
//! sessions out the same way.

mod support;

use std::time::{Duration, Instant};

use petitlab::ipmi::sol_driver::{self, Console, ConsoleEvent, SolOptions};
use petitlab::ipmi::{CipherChoice, CipherSuite, Credentials, Target, Timing};
use petitlab::sim::{BmcSpec, Sim};
use support::ipmi_sim::IpmiSim;

/// Longer than three of ipmi_sim's 30 s idle timeouts.
const PRINTING_FOR: Duration = Duration::from_secs(95);
const LINE_EVERY: Duration = Duration::from_millis(25);

fn line(n: usize) -> Vec<u8> {
    format!(
        "line {n:06}: petitboot is busy printing {:08x}\r\n",
        n * 2_654_435_761 % (1 << 32)
    )
    .into_bytes()
}

/// Every line the host prints during `PRINTING_FOR`, paced like a boot.
async fn print_continuously(mut write: impl FnMut(&[u8])) -> Vec<u8> {
    let start = Instant::now();
    let mut all = Vec::new();
    let mut n = 0;
    while start.elapsed() < PRINTING_FOR {
        let l = line(n);
        write(&l);
        all.extend_from_slice(&l);
        n += 1;
        tokio::time::sleep(LINE_EVERY).await;
    }
    all
}

/// Collects console output until `expected_len` bytes have arrived; panics on
/// a reconnect or close, naming when it happened.
async fn collect(
    console: &mut Console,
    mut expected_len: tokio::sync::watch::Receiver<usize>,
) -> Vec<u8> {
    let start = Instant::now();
    let mut got = Vec::new();
    loop {
        let want = *expected_len.borrow_and_update();
        if want > 0 && got.len() >= want {
            return got;
        }
        let event = tokio::select! {
            event = tokio::time::timeout(Duration::from_secs(20), console.events.recv()) => event
                .unwrap_or_else(|_| panic!("no console output for 20 s after {} bytes", got.len()))
                .expect("console running"),
            _ = expected_len.changed(), if want == 0 => continue,
        };
        match event {
            ConsoleEvent::Data(d) => got.extend(d),
            ConsoleEvent::Connected => {}
            other => panic!(
                "{other:?} {:.1} s into a busy console, after {} bytes",
                start.elapsed().as_secs_f64(),
                got.len()
            ),
        }
    }
}

fn assert_same(got: &[u8], sent: &[u8]) {
    assert_eq!(got.len(), sent.len(), "bytes received vs printed");
    assert!(
        got == sent,
        "output differs at byte {:?}",
        got.iter().zip(sent).position(|(a, b)| a != b)
    );
}

async fn connected(target: Target) -> Console {
    let mut console = sol_driver::spawn(target, SolOptions::default());
    let first = tokio::time::timeout(Duration::from_secs(20), console.events.recv())
        .await
        .expect("console event in time");
    assert_eq!(first, Some(ConsoleEvent::Connected));
    console
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmi_sim_keeps_a_busy_console_for_90_s() {
    let (sim, serial) = IpmiSim::start_with_sol();
    let mut console = connected(sim.target()).await;
    let (len_tx, len_rx) = tokio::sync::watch::channel(0usize);
    let (stream, _) = serial.into_inner();
    let printer = tokio::spawn(async move {
        let mut stream = stream;
        let sent = print_continuously(|l| {
            use std::io::Write;
            stream
                .write_all(l)
                .expect("write to ipmi_sim's serial side");
        })
        .await;
        let _ = len_tx.send(sent.len());
        (sent, stream)
    });
    let got = collect(&mut console, len_rx).await;
    let (sent, _stream) = printer.await.unwrap();
    assert_same(&got, &sent);
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_keeps_a_busy_console_for_90_s() {
    let sim = Sim::start(vec![BmcSpec::new("n1", 0, "admin", "password")])
        .await
        .unwrap();
    let target = Target {
        addr: sim.addr(0),
        credentials: Credentials {
            username: "admin".into(),
            password: "password".into(),
        },
        cipher: CipherChoice::Fixed(CipherSuite::Suite17),
        timing: Timing::default(),
    };
    let mut console = connected(target).await;
    let host = sim.serial(0);
    let (len_tx, len_rx) = tokio::sync::watch::channel(0usize);
    let printer = tokio::spawn(async move {
        let sent = print_continuously(|l| host.write(l)).await;
        let _ = len_tx.send(sent.len());
        sent
    });
    let got = collect(&mut console, len_rx).await;
    assert_same(&got, &printer.await.unwrap());
    sim.shutdown().await;
}
