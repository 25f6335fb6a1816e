//! Regenerates screenshots/*.png from the real dashboard: `petitlab demo`
//! runs in a private tmux at 120x36, is driven with keys, and each view is
//! captured (`capture-pane -e`), parsed by vt100 and drawn to a PNG.
//!
//! `cargo build && cargo run --example screenshots` (needs tmux).

mod png;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tui_term::vt100;

const ROWS: u16 = 36;
const COLS: u16 = 120;

struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux must be installed");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        self.run(&[&["send-keys", "-t", "shot"][..], keys].concat());
        std::thread::sleep(Duration::from_millis(300));
    }

    fn screen(&self) -> vt100::Parser {
        let text = self.run(&["capture-pane", "-p", "-e", "-t", "shot"]);
        let mut parser = vt100::Parser::new(ROWS, COLS, 0);
        for (i, line) in text.lines().enumerate() {
            if i > 0 {
                parser.process(b"\x1b[0m\r\n");
            }
            parser.process(line.as_bytes());
        }
        parser
    }

    fn wait_for(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self
            .run(&["capture-pane", "-p", "-t", "shot"])
            .contains(what)
        {
            assert!(Instant::now() < deadline, "no {what:?} on the dashboard");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn shot(&self, out: &Path, name: &str) {
        let path = out.join(format!("{name}.png"));
        png::write_png(self.screen().screen(), &path).expect("write png");
        println!("wrote {}", path.display());
    }
}

fn main() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    std::fs::create_dir_all(&out).expect("screenshots dir");
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/petitlab");
    assert!(bin.exists(), "build first: cargo build");
    let tmp = std::env::temp_dir().join(format!("petitlab-shots-{}", std::process::id()));
    let tmux = Tmux {
        socket: tmp.join("tmux.sock"),
    };
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let demo = format!("{} demo --dir {}", bin.display(), tmp.join("lab").display());
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "shot",
        "-x",
        &COLS.to_string(),
        "-y",
        &ROWS.to_string(),
        &demo,
    ]);

    tmux.wait_for("p8-rack2-01");
    tmux.keys(&["j", "Enter"]);
    tmux.wait_for("label deploy");
    tmux.shot(&out, "preview");

    tmux.keys(&["d", "y", "c"]);
    tmux.wait_for("Performing kexec reboot");
    tmux.shot(&out, "console-kexec");
    tmux.wait_for("login:");

    // The other two nodes deploy at once, watched on the console wall.
    tmux.keys(&["q", "Escape", "space", "k", "space", "j", "j", "space"]);
    tmux.keys(&["d", "y", "w"]);
    tmux.wait_for("kexec");
    tmux.shot(&out, "console-wall");

    // The table with the lab busy: one node active, two deploying.
    tmux.keys(&["q"]);
    std::thread::sleep(Duration::from_secs(3));
    tmux.shot(&out, "table");

    tmux.keys(&["?"]);
    tmux.wait_for("Help");
    tmux.shot(&out, "help");

    tmux.keys(&["Escape", "q"]);
    let _ = Command::new("tmux")
        .arg("-S")
        .arg(&tmux.socket)
        .arg("kill-server")
        .status();
    let _ = std::fs::remove_dir_all(&tmp);
}
