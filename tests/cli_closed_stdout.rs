//! A closed stdout (`petitlab status | head -1`) must not kill petitlab:
//! read-only commands drop their output and exit as they would have, and a
//! deploy whose reader went away still runs to its end.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use petitlab::engine::store::Store;
use support::lab::{Daemon, loopback_lab, petitlab, show};
use support::virtual_lab::{Proto, VNode, VirtualLab};

/// `petitlab --lab LAB ARGS…` with its stdout a pipe whose reader is gone
/// before it writes anything (every write fails with EPIPE). Returns the
/// exit status and stderr.
fn closed_stdout(lab: &Path, args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(lab)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run petitlab");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_quiet(args: &[&str], status: ExitStatus, stderr: &str, expected: Option<i32>) {
    assert_ne!(
        status.code(),
        Some(101),
        "petitlab {args:?} panicked:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "petitlab {args:?} with a closed stdout said:\n{stderr}"
    );
    assert_eq!(
        status.code(),
        expected,
        "petitlab {args:?}: exit status differs from a run whose output is read:\n{stderr}"
    );
}

#[test]
fn read_only_commands_exit_quietly_when_stdout_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, _) = loopback_lab(dir.path());
    // Enrolls the nodes, so history has lines to print.
    let first = petitlab(&lab, &["status"]);
    assert!(first.status.success(), "{}", show(&first));
    let commands: [&[&str]; 8] = [
        &["status"],
        &["history"],
        &["check"],
        &["properties"],
        &["--json", "status"],
        &["--json", "history"],
        &["--json", "check"],
        &["--json", "properties"],
    ];
    for args in commands {
        let read = petitlab(&lab, args);
        assert!(
            !read.stdout.is_empty(),
            "petitlab {args:?} prints nothing, so the test proves nothing"
        );
        let (status, stderr) = closed_stdout(&lab, args);
        assert_quiet(args, status, &stderr, read.status.code());
    }
}

#[test]
fn a_closed_stderr_does_not_kill_a_command_either() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, _) = loopback_lab(dir.path());
    // The example's password file is world-readable in the repository, so
    // loading the lab writes a warning to stderr.
    let read = petitlab(&lab, &["status"]);
    assert!(
        String::from_utf8_lossy(&read.stderr).contains("warning"),
        "{}",
        show(&read)
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(&lab)
        .arg("status")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "status with stdout and stderr closed"
    );
}

const DEPLOY: &str = "[deploy]\npower_timeout = 10\ncallback_timeout = 60\nheartbeat = 2\n\
                      write_timeout = 60\nboot_timeout = 60\n";

/// `petitlab deploy N | head -1`: the reader takes the first progress line
/// and goes; the deploy must still reach `active` and say so in its status.
#[test]
fn a_deploy_whose_stdout_closes_still_reaches_active() {
    let node = "p9-head";
    let v = VirtualLab::new(
        vec![VNode::new(node, Proto::Http, false, 0)],
        200 << 10,
        DEPLOY,
    );
    let _serve = Daemon::start(&v.lab, &["serve"]);
    let _sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "5"]);
    let mut deploy = Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(&v.lab)
        .args(["deploy", node])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    // Asserted once the deploy has ended, so that no panic leaves it running.
    let read = BufReader::new(deploy.stdout.take().unwrap()).read_line(&mut first);
    // The reader is dropped here, like `head -1` exiting.
    let started = Instant::now();
    let out = deploy.wait_with_output().unwrap();
    assert!(
        read.is_ok() && first.starts_with(node),
        "first line: {first:?} ({read:?})"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "deploy panicked after its reader left:\n{stderr}"
    );
    assert!(
        out.status.success(),
        "deploy exit {} after {:?}:\n{stderr}",
        out.status,
        started.elapsed()
    );
    assert_eq!(v.record(node).state, "active", "stderr:\n{stderr}");
    let history = petitlab(&v.lab, &["history", node]);
    let text = String::from_utf8_lossy(&history.stdout);
    assert!(text.contains("  succeed  "), "{}", show(&history));
    // The deploy released its node: nothing is left for a later run to recover.
    let store = Store::open(&v.store()).unwrap();
    assert!(store.reservations().unwrap().is_empty());
}
