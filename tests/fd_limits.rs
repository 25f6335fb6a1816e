//! The long-running commands that hold a socket per node (the demo's whole
//! lab, the simulator) raise their soft descriptor limit to the hard one at
//! start, as `petitlab serve` does: a soft 1024 would cap a big lab. Each is
//! started from a shell with a soft limit of 256, and its
//! /proc/PID/limits read while it runs.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::guarded::Guarded;

/// Starts `petitlab ARGS` with a soft descriptor limit of 256 (`exec`
/// keeps the shell's pid), waits for its "running" line, and returns its
/// soft and hard "Max open files".
fn limits_of(args: &str) -> (String, String) {
    let bin = env!("CARGO_BIN_EXE_petitlab");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -Sn 256 && exec {bin} {args}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start petitlab");
    let stdout = child.stdout.take().unwrap();
    let running = Guarded(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut said = Vec::new();
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("petitlab {args} did not start ({e}): {said:?}"));
        if line.contains("running") {
            break;
        }
        said.push(line);
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", running.0.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open-files line in {limits}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

#[test]
fn the_demo_and_the_simulator_raise_their_descriptor_limit() {
    let hard = {
        let out = Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_ne!(
        hard, "256",
        "the hard limit must be above 256 for this test to show anything"
    );
    let dir = tempfile::tempdir().unwrap();
    let demo = format!(
        "demo --headless --dir {}",
        dir.path().join("demo").display()
    );
    for args in [demo.as_str(), "sim --count 2"] {
        let (soft, hard_seen) = limits_of(args);
        assert_eq!(
            soft, hard_seen,
            "petitlab {args} left its soft descriptor limit at {soft} (hard {hard_seen})"
        );
        assert_ne!(soft, "256", "petitlab {args}");
    }
}
