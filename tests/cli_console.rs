//! `petitlab console` for real, in tmux (it needs a terminal), against
//! `petitlab sim`: the boot scrolls by, typing reaches the host, `~.` quits,
//! the log follows with `--log`, `--force` takes a console over, and the
//! log never holds the BMC password even when it is typed at the console.

mod support;

use std::path::Path;
use std::time::Duration;

use support::cast::{console_path, console_text};
use support::lab::{NODES, loopback_lab, ok, repo, start_sim};
use support::tmux::Tmux;

fn console(lab: &Path, args: &str) -> String {
    format!(
        "{} --lab {} console {args}",
        env!("CARGO_BIN_EXE_petitlab"),
        lab.display()
    )
}

#[test]
fn console_session_with_escapes_log_follow_and_takeover() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, _) = loopback_lab(dir.path());
    let sim = start_sim(&lab);
    let node = NODES[0];
    let password = std::fs::read_to_string(repo().join("examples/secrets/bmc-password")).unwrap();
    let password = password.trim_end();
    let tmux = Tmux::new(Duration::from_secs(15));

    tmux.run("a", &console(&lab, node));
    tmux.wait_for("a", "console of p9-rack1-01 over SOL");
    ok(&lab, &["power", node, "on"]);
    let boot = tmux.wait_for("a", "p9-rack1-01 login:");
    assert!(boot.contains("kexec_core: Starting new kernel"), "{boot}");

    // The host echoes at its prompt: typing arrives and comes back. The
    // BMC password, typed here, must reach the screen but not the log.
    tmux.keys("a", &["root", "Enter"]);
    tmux.wait_for("a", "login: root");
    tmux.keys("a", &[password, "Enter"]);
    tmux.wait_for("a", &format!("login: {password}"));
    tmux.keys("a", &["~?"]);
    tmux.wait_for("a", "~B  send a serial break");

    // A second console is refused without --force, then takes over with it.
    tmux.run("b", &console(&lab, node));
    tmux.wait_for(
        "b",
        "already active in another session; take it over with --force",
    );
    let (status, screen) = tmux.wait_for_exit("b");
    assert_eq!(status, 1, "{screen}");
    tmux.run("c", &console(&lab, &format!("{node} --force")));
    tmux.wait_for("c", "console of p9-rack1-01 over SOL");
    tmux.wait_for("a", "the BMC deactivated SOL");
    let (status, screen) = tmux.wait_for_exit("a");
    assert_eq!(status, 1, "{screen}");
    tmux.keys("c", &["Enter", "~."]);
    tmux.wait_for("c", "ended: closed");
    let (status, screen) = tmux.wait_for_exit("c");
    assert_eq!(status, 0, "{screen}");

    let log_path = console_path(&dir.path().join("state"), "p9-rack1-01");
    let log = console_text(&log_path);
    assert!(log.contains("login: root"), "{log}");
    assert!(
        log.contains("<redacted>"),
        "the typed password was echoed: {log}"
    );
    assert!(
        !log.contains(password),
        "the BMC password is in the console log:\n{log}"
    );
    let raw = String::from_utf8_lossy(&std::fs::read(&log_path).unwrap()).into_owned();
    assert!(!raw.contains(password), "the BMC password is in the file");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // --log follows the same log without attaching.
    tmux.run("log", &console(&lab, &format!("--log {node}")));
    tmux.wait_for("log", "kexec_core: Starting new kernel");
    // --timestamps starts each line with its UTC time.
    tmux.run(
        "times",
        &console(&lab, &format!("--log --timestamps {node}")),
    );
    let screen = tmux.wait_for("times", "kexec_core: Starting new kernel");
    let line = screen
        .lines()
        .find(|l| l.contains("kexec_core: Starting new kernel"))
        .unwrap();
    let (time, _) = line.split_once(' ').unwrap();
    assert!(
        time.len() == 24 && time.as_bytes()[10] == b'T' && time.ends_with('Z'),
        "{line}"
    );
    let year = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 31_556_952
        + 1970;
    assert!(
        time.starts_with(&year.to_string()) || time.starts_with(&(year - 1).to_string()),
        "{line}"
    );
    sim.stop();
}
