//! A private tmux server for tests whose programs need a terminal (ipmitool's
//! and petitlab's consoles). Its socket lives in a temp dir (`-S`, not
//! `-L name`): a killed server leaves its socket file behind, and this way it
//! goes with the dir. `-f /dev/null` and no `TMUX` keep the user's own tmux
//! out of it. Drop kills the server, and with it whatever runs in its
//! windows, however the test ends; a failing test first prints every window.

use std::cell::Cell;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::ipmi_sim::require_binary;

const SESSION: &str = "test";
/// What `run` prints once its command has ended: `[exit N]`.
const EXITED: &str = "[exit ";
/// The whole history; `-J` joins wrapped lines, so that a long line is found
/// whole, and keeps a prompt's trailing space.
const CAPTURE: [&str; 5] = ["capture-pane", "-p", "-J", "-S", "-"];

pub struct Tmux {
    tmux: PathBuf,
    socket: PathBuf,
    dir: tempfile::TempDir,
    /// How long a `wait_for` may take.
    wait: Duration,
    started: Cell<bool>,
}

impl Tmux {
    /// Fails (never skips) when tmux is missing.
    pub fn new(wait: Duration) -> Tmux {
        let dir = tempfile::tempdir().expect("create temp dir");
        Tmux {
            tmux: require_binary("tmux"),
            socket: dir.path().join("tmux.sock"),
            dir,
            wait,
            started: Cell::new(false),
        }
    }

    fn tmux(&self, args: &[&str]) -> std::io::Result<Output> {
        Command::new(&self.tmux)
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
    }

    fn cmd(&self, args: &[&str]) -> String {
        let out = self.tmux(args).expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `command` in a new window. The window outlives the command, so
    /// that its last words and exit status (see `wait_for_exit`) stay there.
    pub fn run(&self, window: &str, command: &str) {
        let shell = format!("{command}; echo \"{EXITED}$?]\"; sleep 600");
        if self.started.replace(true) {
            self.cmd(&["new-window", "-d", "-t", SESSION, "-n", window, &shell]);
        } else {
            let size = ["-x", "200", "-y", "50"];
            let session = ["new-session", "-d", "-s", SESSION, "-n", window];
            self.cmd(&[&session[..], &size, &[&shell]].concat());
        }
    }

    /// The window's screen and scrollback.
    pub fn screen(&self, window: &str) -> String {
        self.cmd(&[&CAPTURE[..], &["-t", &format!("{SESSION}:{window}")]].concat())
    }

    /// Only what the window shows now: a full-screen program's current frame.
    pub fn visible(&self, window: &str) -> String {
        self.cmd(&["capture-pane", "-p", "-t", &format!("{SESSION}:{window}")])
    }

    /// Waits until the visible frame passes `check`; returns the frame.
    pub fn wait_visible(&self, window: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        self.wait_until_in(window, what, true, |frame| {
            check(frame).then(|| frame.to_string())
        })
    }

    fn wait_until<T>(&self, window: &str, what: &str, found: impl Fn(&str) -> Option<T>) -> T {
        self.wait_until_in(window, what, false, found)
    }

    fn wait_until_in<T>(
        &self,
        window: &str,
        what: &str,
        visible_only: bool,
        found: impl Fn(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + self.wait;
        loop {
            let screen = if visible_only {
                self.visible(window)
            } else {
                self.screen(window)
            };
            if let Some(found) = found(&screen) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "window {window}: no {what} within {:?}:\n{}",
                self.wait,
                screen.trim_end()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the window shows `text`; returns the screen.
    pub fn wait_for(&self, window: &str, text: &str) -> String {
        self.wait_until(window, &format!("{text:?}"), |screen| {
            screen.contains(text).then(|| screen.to_string())
        })
    }

    /// Waits until the window's command has ended: its exit status and the
    /// screen. Whole `[exit N]` lines only, never one caught half printed.
    pub fn wait_for_exit(&self, window: &str) -> (i32, String) {
        self.wait_until(window, "exit status", |screen| {
            let (_, rest) = screen.rsplit_once(EXITED)?;
            let (code, _) = rest.split_once(']')?;
            Some((code.parse().ok()?, screen.to_string()))
        })
    }

    /// tmux key names (`Enter`); other words are typed as they are.
    pub fn keys(&self, window: &str, keys: &[&str]) {
        let target = format!("{SESSION}:{window}");
        self.cmd(&[&["send-keys", "-t", &target][..], keys].concat());
    }

    /// Typed literally, even a word that is also a key name.
    pub fn type_text(&self, window: &str, text: &str) {
        self.keys(window, &["-l", text]);
    }

    /// Raw bytes, any value, as typed.
    pub fn type_bytes(&self, window: &str, bytes: &[u8]) {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let hex: Vec<&str> = hex.iter().map(String::as_str).collect();
        self.keys(window, &[&["-H"][..], &hex].concat());
    }

    /// Starts copying what the window's program writes to its terminal, as
    /// written (the screen shows it rendered, and control bytes can garble
    /// that), to a file; returns a reader for it.
    pub fn record_output(&self, window: &str) -> impl Fn() -> Vec<u8> + use<> {
        let path = self.dir.path().join(format!("{window}.out"));
        let cat = format!("cat > '{}'", path.to_str().expect("utf-8 temp dir"));
        let target = format!("{SESSION}:{window}");
        self.cmd(&["pipe-pane", "-O", "-t", &target, &cat]);
        move || std::fs::read(&path).unwrap_or_default()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let list = ["list-windows", "-t", SESSION, "-F", "#{window_name}"];
        if std::thread::panicking()
            && let Ok(out) = self.tmux(&list)
        {
            for window in String::from_utf8_lossy(&out.stdout).lines() {
                let target = format!("{SESSION}:{window}");
                if let Ok(screen) = self.tmux(&[&CAPTURE[..], &["-t", &target]].concat()) {
                    let screen = String::from_utf8_lossy(&screen.stdout);
                    eprintln!("--- tmux window {window}:\n{}", screen.trim_end());
                }
            }
        }
        let _ = self.tmux(&["kill-server"]);
    }
}
