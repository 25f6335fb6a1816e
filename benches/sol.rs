//! SOL console speed against one simulated BMC: host → console throughput
//! and keystroke echo latency (the virtual host echoes at its login prompt),
//! for petitlab's SOL client and, in the same run, `ipmitool sol activate`
//! (in a pty made by `script`) on the same node.
//!
//! Rounds are interleaved pairs (petitlab, ipmitool, …), each pair's
//! throughput ratio printed with the medians.
//!
//! `cargo bench --bench sol` (env RUNS=N pairs, default 5)

#[path = "../tests/support/pairs.rs"]
mod pairs;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use petitlab::ipmi::chassis::{self, PowerAction};
use petitlab::ipmi::sol_driver::{self, ConsoleEvent, ConsoleInput, SolOptions};
use petitlab::ipmi::{Bmc, CipherChoice, CipherSuite, Credentials, Target, Timing};
use petitlab::sim::{BmcSpec, SerialPort, Sim};

const BYTES: usize = 2 << 20;
const CHUNK: usize = 16 * 1024;
const KEYSTROKES: usize = 300;
/// 115200 baud, 8N1: ten bits per byte.
const BAUD_115200_BYTES: f64 = 11_520.0;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn p50_ms(echoes: &[Duration]) -> f64 {
    let mut sorted = echoes.to_vec();
    sorted.sort();
    percentile(&sorted, 0.5).as_secs_f64() * 1e3
}

fn report(who: &str, elapsed: Duration, mut echoes: Vec<Duration>) -> f64 {
    echoes.sort();
    let rate = BYTES as f64 / elapsed.as_secs_f64();
    println!(
        "  {who:9} throughput {:8.0} KiB/s ({:5.1}x 115200 baud); echo p50 {:6.3} ms, p99 {:6.3} ms",
        rate / 1024.0,
        rate / BAUD_115200_BYTES,
        percentile(&echoes, 0.5).as_secs_f64() * 1e3,
        percentile(&echoes, 0.99).as_secs_f64() * 1e3,
    );
    rate
}

/// Printable data (no `~`, so nothing looks like an escape to ipmitool).
fn payload() -> Vec<u8> {
    (0..BYTES).map(|i| b'a' + (i % 26) as u8).collect()
}

fn target(sim: &Sim) -> Target {
    Target {
        addr: sim.addr(0),
        credentials: Credentials {
            username: "admin".into(),
            password: "password".into(),
        },
        cipher: CipherChoice::Fixed(CipherSuite::Suite17),
        timing: Timing::default(),
    }
}

async fn petitlab_run(sim: &Sim, serial: &SerialPort) -> (Duration, Vec<Duration>) {
    let mut console = sol_driver::spawn(target(sim), SolOptions::default());
    assert_eq!(console.events.recv().await, Some(ConsoleEvent::Connected));
    let data = payload();
    let start = Instant::now();
    let mut got = 0;
    for chunk in data.chunks(CHUNK) {
        serial.write(chunk);
        let want = got + chunk.len();
        while got < want {
            match console.events.recv().await {
                Some(ConsoleEvent::Data(d)) => got += d.len(),
                other => panic!("{other:?}"),
            }
        }
    }
    let elapsed = start.elapsed();
    let mut echoes = Vec::new();
    for _ in 0..KEYSTROKES {
        let start = Instant::now();
        console
            .input
            .send(ConsoleInput::Data(b"x".to_vec()))
            .await
            .unwrap();
        loop {
            match console.events.recv().await {
                Some(ConsoleEvent::Data(d)) if d.contains(&b'x') => break,
                Some(ConsoleEvent::Data(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        echoes.push(start.elapsed());
    }
    console.input.send(ConsoleInput::Close).await.unwrap();
    while !matches!(
        console.events.recv().await,
        Some(ConsoleEvent::Closed { .. }) | None
    ) {}
    (elapsed, echoes)
}

/// ipmitool in a pty; its terminal output arrives on a channel.
struct Ipmitool {
    child: Child,
    stdin: ChildStdin,
    output: mpsc::Receiver<Vec<u8>>,
}

impl Ipmitool {
    fn start(port: u16) -> Ipmitool {
        let command = format!(
            "ipmitool -I lanplus -C 17 -H 127.0.0.1 -p {port} -U admin -P password sol activate"
        );
        let mut child = Command::new("script")
            .args(["-qfec", &command, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run script(1) and ipmitool");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Ipmitool {
            child,
            stdin,
            output,
        }
    }

    /// Reads until `pattern` has been seen; panics after 30 s.
    fn wait_for(&self, pattern: &[u8], seen: &mut Vec<u8>) {
        while !seen.windows(pattern.len()).any(|w| w == pattern) {
            let chunk = self
                .output
                .recv_timeout(Duration::from_secs(30))
                .expect("ipmitool output");
            // Keep only a tail: the pattern may straddle two chunks.
            let keep = seen.len().saturating_sub(pattern.len());
            seen.drain(..keep);
            seen.extend(chunk);
        }
        seen.clear();
    }
}

fn ipmitool_run(port: u16, serial: &SerialPort) -> (Duration, Vec<Duration>) {
    let mut tool = Ipmitool::start(port);
    let mut seen = Vec::new();
    tool.wait_for(b"SOL Session operational", &mut seen);
    let data = payload();
    let start = Instant::now();
    for chunk in data.chunks(CHUNK) {
        serial.write(chunk);
        let mut got = 0;
        while got < chunk.len() {
            got += tool
                .output
                .recv_timeout(Duration::from_secs(30))
                .expect("ipmitool output")
                .len();
        }
    }
    let elapsed = start.elapsed();
    let mut echoes = Vec::new();
    for _ in 0..KEYSTROKES {
        let start = Instant::now();
        tool.stdin.write_all(b"x").unwrap();
        tool.stdin.flush().unwrap();
        tool.wait_for(b"x", &mut seen);
        echoes.push(start.elapsed());
    }
    let _ = tool.stdin.write_all(b"\r~.");
    let _ = tool.stdin.flush();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tool.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = tool.child.kill();
    let _ = tool.child.wait();
    (elapsed, echoes)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sim = rt
        .block_on(Sim::start(vec![BmcSpec::new("n1", 0, "admin", "password")]))
        .unwrap();
    let serial = sim.serial(0);
    // Boot the virtual host to its login prompt, where it echoes.
    rt.block_on(async {
        let mut prompt = serial.output();
        let mut bmc = Bmc::new(target(&sim));
        chassis::power(&mut bmc, PowerAction::On).await.unwrap();
        let mut text = Vec::new();
        while !String::from_utf8_lossy(&text).contains("login: ") {
            text.extend(prompt.recv().await.unwrap());
        }
        bmc.close().await;
    });
    println!(
        "SOL over loopback, one simulated BMC, cipher suite 17, {} MiB host output, {KEYSTROKES} keystrokes",
        BYTES >> 20
    );
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    println!("  load average at start: {}", pairs::loadavg());
    let (mut rates, mut ours_echo, mut theirs_echo) = (pairs::Pairs::default(), vec![], vec![]);
    for run in 0..runs {
        println!("  pair {}:", run + 1);
        let (elapsed, echoes) = rt.block_on(petitlab_run(&sim, &serial));
        ours_echo.push(p50_ms(&echoes));
        let ours = report("petitlab", elapsed, echoes);
        let (elapsed, echoes) = ipmitool_run(sim.addr(0).port(), &serial);
        theirs_echo.push(p50_ms(&echoes));
        let theirs = report("ipmitool", elapsed, echoes);
        rates.push(ours / 1024.0, theirs / 1024.0);
    }
    rates.report("host output", "petitlab", "ipmitool", "KiB/s");
    println!(
        "    echo p50, median of the pairs: petitlab {:.3} ms, ipmitool {:.3} ms",
        pairs::median(ours_echo),
        pairs::median(theirs_echo)
    );
    println!("  load average at end: {}", pairs::loadavg());
    rt.block_on(sim.shutdown());
}
