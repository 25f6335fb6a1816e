//! `petitlab console` for real, in tmux (it needs a terminal), against
//! `petitlab sim`: the boot scrolls by, typing reaches the host, `~.` quits,
//! the log follows with `--log`, `--force` takes a console over, and the
//! log never holds the BMC password even when it is typed at the console.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::lab::{NODES, SimProcess, loopback_lab, ok, repo};

/// A private tmux server, killed when the test ends however it ends.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn new(dir: &Path) -> Tmux {
        let socket = dir.join("tmux.sock");
        Tmux { socket }
    }

    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux (apt-get install tmux)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `command` in a new window; the window stays after it exits,
    /// with its exit status printed.
    fn run(&self, window: &str, command: &str) {
        let shell = format!("{command}; echo \"[exit $?]\"; sleep 600");
        if self.socket.exists() {
            self.cmd(&["new-window", "-d", "-t", "s", "-n", window, &shell]);
        } else {
            self.cmd(&[
                "new-session",
                "-d",
                "-s",
                "s",
                "-x",
                "160",
                "-y",
                "50",
                "-n",
                window,
                &shell,
            ]);
        }
    }

    fn screen(&self, window: &str) -> String {
        self.cmd(&[
            "capture-pane",
            "-p",
            "-S",
            "-200",
            "-t",
            &format!("s:{window}"),
        ])
    }

    fn keys(&self, window: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t"];
        let target = format!("s:{window}");
        args.push(&target);
        args.extend_from_slice(keys);
        self.cmd(&args);
    }

    fn wait_for(&self, window: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen(window);
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} in window {window}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if std::thread::panicking() && self.socket.exists() {
            for w in ["a", "b", "c", "log"] {
                if let Ok(out) = Command::new("tmux")
                    .arg("-S")
                    .arg(&self.socket)
                    .args(["capture-pane", "-p", "-t", &format!("s:{w}")])
                    .output()
                {
                    eprintln!("--- window {w}:\n{}", String::from_utf8_lossy(&out.stdout));
                }
            }
        }
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

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
    let sim = SimProcess::start(&lab);
    let node = NODES[0];
    let password = std::fs::read_to_string(repo().join("examples/secrets/bmc-password")).unwrap();
    let password = password.trim_end();
    let tmux = Tmux::new(dir.path());

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
    tmux.wait_for("b", "[exit 1]");
    tmux.run("c", &console(&lab, &format!("{node} --force")));
    tmux.wait_for("c", "console of p9-rack1-01 over SOL");
    tmux.wait_for("a", "the BMC deactivated SOL");
    tmux.wait_for("a", "[exit 1]");
    tmux.keys("c", &["Enter", "~."]);
    tmux.wait_for("c", "ended: closed");
    tmux.wait_for("c", "[exit 0]");

    let log_path = dir.path().join("state/console/p9-rack1-01.log");
    let log = std::fs::read(&log_path).unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("login: root"), "{log}");
    assert!(
        log.contains("<redacted>"),
        "the typed password was echoed: {log}"
    );
    assert!(
        !log.contains(password),
        "the BMC password is in the console log:\n{log}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // --log follows the same log without attaching.
    tmux.run("log", &console(&lab, &format!("--log {node}")));
    tmux.wait_for("log", "kexec_core: Starting new kernel");
    sim.stop();
}
