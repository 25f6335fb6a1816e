//! Power-status sweep over 1000 simulated BMCs: petitlab's poller (one
//! persistent RMCP+ session per BMC, bounded concurrency) against freeipmi's
//! `ipmipower --stat` over the same `host:port` targets, in one run.
//!
//! `cargo bench --bench power_sweep` (env BMCS=N to change the count).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use petitlab::engine::poller::{Poller, PollerConfig, Reading};
use petitlab::ipmi::{CipherChoice, CipherSuite, Credentials, Target, Timing};
use petitlab::sim::{BmcSpec, Sim};

const USER: &str = "admin";
const PASSWORD: &str = "password";
const ROUNDS: usize = 10;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let count: usize = std::env::var("BMCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let specs = (0..count)
        .map(|i| BmcSpec::new(&format!("bmc{i}"), 0, USER, PASSWORD))
        .collect();
    let sim = rt.block_on(Sim::start(specs)).expect("start the simulator");
    let addrs: Vec<_> = (0..count).map(|i| sim.addr(i)).collect();
    println!("power-status sweep over {count} simulated BMCs (cipher suite 17)");

    let targets = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let target = Target {
                addr: *addr,
                credentials: Credentials {
                    username: USER.into(),
                    password: PASSWORD.into(),
                },
                cipher: CipherChoice::Fixed(CipherSuite::Suite17),
                timing: Timing::default(),
            };
            (format!("bmc{i}"), Ok(target))
        })
        .collect();
    let config = PollerConfig {
        boot_flags: false,
        ..PollerConfig::default()
    };
    let mut poller = Poller::new(targets, config);
    let (cold, warm) = rt.block_on(async {
        let start = Instant::now();
        let first = poller.sweep().await;
        let cold = start.elapsed();
        let ok = first
            .changes
            .iter()
            .filter(|u| matches!(u.reading, Reading::Ok { .. }))
            .count();
        assert_eq!(ok, count, "every BMC must answer the first sweep");
        let mut warm = Vec::new();
        for _ in 0..ROUNDS {
            let start = Instant::now();
            let sweep = poller.sweep().await;
            warm.push(start.elapsed());
            assert!(sweep.changes.is_empty(), "nothing changed between sweeps");
        }
        (cold, median(warm))
    });
    println!(
        "  petitlab: first sweep (opens {count} sessions) {:.1} ms; warm sweep median of {ROUNDS}: {:.1} ms",
        ms(cold),
        ms(warm)
    );

    let hosts: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let hosts = hosts.join(",");
    let mut runs = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let out = Command::new("ipmipower")
            .args(["-D", "LAN_2_0", "-I", "17", "-u", USER, "-p", PASSWORD])
            .args(["-F", "128", "-h", &hosts, "--stat"])
            .stdin(Stdio::null())
            .output()
            .expect("run ipmipower (apt-get install freeipmi-tools)");
        runs.push(start.elapsed());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let on_or_off = stdout
            .lines()
            .filter(|l| l.ends_with(": on") || l.ends_with(": off"))
            .count();
        assert_eq!(
            on_or_off,
            count,
            "ipmipower must report every BMC; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let theirs = median(runs);
    println!(
        "  ipmipower -F 128 --stat: median of 3: {:.1} ms",
        ms(theirs)
    );
    println!(
        "  ratio: petitlab warm sweep is {:.1}x faster than ipmipower (target >= 10x, <= 100 ms); \
         even the first sweep, which opens every session, is {:.1}x faster",
        theirs.as_secs_f64() / warm.as_secs_f64(),
        theirs.as_secs_f64() / cold.as_secs_f64()
    );
    rt.block_on(poller.close());
    rt.block_on(sim.shutdown());
}
