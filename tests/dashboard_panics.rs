//! While the dashboard runs, a panic petitlab catches and survives (vt100
//! on a wide character cut by a shrink) goes to the log file, not to stderr
//! over the dashboard. A panic that would end the dashboard still reaches
//! the hook before it (ratatui's, which gives the terminal back).
//!
//! The panic hook is process-wide, so the scenarios run in a child process:
//! this test binary again, with PANIC_CHILD naming the scenario.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use petitlab::console::ConsoleScreen;
use petitlab::panics::DashboardHook;

/// The child's side: set up as the dashboard does, then panic.
#[test]
fn child() {
    let Ok(scenario) = std::env::var("PANIC_CHILD") else {
        return;
    };
    let log = std::env::var("PANIC_LOG").unwrap();
    petitlab::logging::to_file(std::path::Path::new(&log), 0).unwrap();
    // Stands in for ratatui's hook, which restores the terminal.
    let before = Arc::new(AtomicBool::new(false));
    let called = before.clone();
    std::panic::set_hook(Box::new(move |_| called.store(true, Ordering::SeqCst)));
    let hook = DashboardHook::install();
    match scenario.as_str() {
        "caught" => {
            let mut s = ConsoleScreen::new(3, 10, 10);
            s.feed("\x1b[1;9H\u{4e2d}\x1b[2;1Hkept".as_bytes());
            s.resize(3, 9);
            s.feed(b"\x1b[1;9Hx");
            assert!(s.resets() > 0, "vt100 did not panic");
            assert!(!before.load(Ordering::SeqCst), "the hook before was called");
        }
        "task" => {
            let t = std::thread::spawn(|| panic!("a worker died"));
            assert!(t.join().is_err());
            assert!(!before.load(Ordering::SeqCst), "the hook before was called");
        }
        "fatal" => {
            let r = std::panic::catch_unwind(|| panic!("the dashboard dies"));
            assert!(r.is_err());
            assert!(
                before.load(Ordering::SeqCst),
                "the hook before was not called"
            );
        }
        other => panic!("unknown scenario {other}"),
    }
    drop(hook);
    println!("CHILD-OK");
}

fn run_child(scenario: &str) -> (String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("petitlab.log");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env("PANIC_CHILD", scenario)
        .env("PANIC_LOG", &log)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "{scenario}: {stdout}\n{stderr}"
    );
    (
        stderr,
        std::fs::read_to_string(&log).unwrap_or_default(),
        stdout,
    )
}

#[test]
fn a_caught_vt100_panic_goes_to_the_log_not_over_the_dashboard() {
    let (stderr, log, _) = run_child("caught");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(log.contains("panicked"), "log: {log:?}");
}

#[test]
fn a_dying_worker_thread_goes_to_the_log_only() {
    let (stderr, log, _) = run_child("task");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(log.contains("a worker died"), "log: {log:?}");
}

#[test]
fn a_panic_on_the_dashboards_thread_still_reaches_the_hook_before() {
    let (_, log, _) = run_child("fatal");
    assert!(log.contains("the dashboard dies"), "log: {log:?}");
}
