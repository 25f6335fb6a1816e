//! What a command costs on a big lab, as a whole process: `petitlab render
//! NODE` on labs of 1000 and 4000 nodes (target ≤ 30 ms at 4000), `check`
//! (which reads everything) for scale, and `petitlab power NODE status`
//! against `ipmitool power status` on the same simulated BMC, in
//! interleaved pairs.
//!
//! `cargo bench --bench big_lab` (env RUNS=N, default 11; needs ipmitool).

#[path = "../tests/support/big_lab.rs"]
mod big_lab;
#[path = "../tests/support/lab.rs"]
#[allow(dead_code)]
mod lab;
#[path = "../tests/support/pairs.rs"]
mod pairs;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

fn runs() -> usize {
    std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(11)
}

/// Wall-clock milliseconds of one run of `cmd`, which must succeed.
fn time_ms(cmd: &mut Command) -> f64 {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let ms = start.elapsed().as_secs_f64() * 1e3;
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    ms
}

fn petitlab(lab: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_petitlab"));
    cmd.arg("--lab").arg(lab).args(args);
    cmd
}

fn main() {
    let runs = runs();
    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "a big lab, whole processes, median of {runs} runs (load average {} at start)",
        pairs::loadavg()
    );
    for nodes in [1000, 4000] {
        let lab = big_lab::write_lab(&dir.path().join(format!("lab{nodes}")), nodes, 20000);
        let node = format!("n{:04}", nodes / 2);
        let render: Vec<f64> = (0..runs)
            .map(|_| time_ms(&mut petitlab(&lab, &["render", &node])))
            .collect();
        // `check` exits 0 here (warnings only: the password file's mode).
        let check: Vec<f64> = (0..3.min(runs))
            .map(|_| time_ms(&mut petitlab(&lab, &["check"])))
            .collect();
        println!(
            "  {nodes} nodes: render {node} {:.1} ms (target at 4000: <= 30 ms); check (every node, every file) {:.1} ms",
            pairs::median(render),
            pairs::median(check)
        );
    }

    // power NODE status on the 4000-node lab, against one simulated BMC.
    let count = 4000;
    let base = big_lab::free_udp_base(count);
    let lab = big_lab::write_lab(&dir.path().join("power"), count, base);
    let _sim = lab::Daemon::start(
        &lab,
        &[
            "sim",
            "--count",
            &count.to_string(),
            "--base-port",
            &base.to_string(),
        ],
    );
    let port = (base + 2000).to_string();
    let mut pairs = pairs::Pairs::default();
    for run in 0..runs {
        let mut ours = petitlab(&lab, &["--local", "power", "n2000", "status"]);
        let mut theirs = Command::new("ipmitool");
        theirs
            .args(["-I", "lanplus", "-C", "17", "-H", "127.0.0.1", "-p", &port])
            .args([
                "-U",
                big_lab::USER,
                "-P",
                big_lab::PASSWORD,
                "power",
                "status",
            ]);
        // Alternate who goes first; rates are runs per second.
        let (o, t) = if run % 2 == 0 {
            let o = time_ms(&mut ours);
            (o, time_ms(&mut theirs))
        } else {
            let t = time_ms(&mut theirs);
            (time_ms(&mut ours), t)
        };
        pairs.push(1e3 / o, 1e3 / t);
    }
    pairs.report(
        "power status of one node of 4000, whole process (runs/s; ratio > 1: petitlab faster)",
        "petitlab",
        "ipmitool",
        "runs/s",
    );
    println!("  load average at end: {}", pairs::loadavg());
}
