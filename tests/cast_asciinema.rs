//! Console logs against a player we did not write: Debian's `asciinema`
//! (2.x) prints a cast's output with `asciinema cat`, which must be exactly
//! the text petitlab's own reader renders, for every file of a rotated log.
//! `asciinema cat` reads the terminal (/dev/tty), so it runs under `script`
//! (util-linux) with its output to a file. A missing peer fails the test.

use std::path::Path;
use std::process::Command;

use petitlab::console::{ConsoleLog, LogLimits, cast};

/// `asciinema cat FILE`'s output, or a panic saying why it could not run.
fn asciinema_cat(dir: &Path, file: &Path) -> Vec<u8> {
    let out = dir.join("asciinema.out");
    let run = format!("asciinema cat '{}' > '{}'", file.display(), out.display());
    let status = Command::new("script")
        .args(["-q", "-e", "-c", &run, "/dev/null"])
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("LC_ALL", "C.UTF-8")
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run `script` (util-linux) for asciinema's tty: {e}"));
    assert!(
        status.success(),
        "asciinema cat {}: {status}",
        file.display()
    );
    std::fs::read(&out).unwrap()
}

fn require_asciinema_2() {
    let version = Command::new("asciinema")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "asciinema is not installed ({e}): apt-get install asciinema (scripts/test does)"
            )
        });
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with("asciinema 2."),
        "this test needs asciinema 2.x, whose `cat` prints a cast's output; found {version:?}"
    );
}

#[test]
fn asciinema_cat_prints_what_petitlab_reads_from_its_logs() {
    require_asciinema_2();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p9-rack1-01.cast");
    let limits = LogLimits {
        max_bytes: 2048,
        keep: 5,
    };
    let mut log = ConsoleLog::open(&path, limits, &["bmc-s3cret"]).unwrap();
    // What consoles print: escapes, CR LF, quotes and backslashes, tabs,
    // control characters, wide characters split across writes, bytes that
    // are not UTF-8, and a secret split across writes.
    let chunks: Vec<&[u8]> = vec![
        b"\x1b[2J\x1b[1;1HPetitboot (v1.15)\r\n",
        b" \"quoted\" C:\\path\ttab\x07bell\x00nul\x7fdel\r\n",
        b"\xe4\xb8",
        b"\xad\xe6\x96\x87 \xf0\x9f\x94\xa5\r\n",
        b"bad \xff\xfe\xc3 bytes\r\n",
        b"password: bmc-s3",
        b"cret\r\nlogin: ",
    ];
    let mut written = Vec::new();
    for round in 0..30 {
        for chunk in &chunks {
            log.write(chunk).unwrap();
            written.extend_from_slice(chunk);
        }
        log.write(format!("round {round}\r\n").as_bytes()).unwrap();
    }
    log.close().unwrap();

    let mut files = vec![path.clone()];
    files.extend(
        (1..=5)
            .map(|n| ConsoleLog::rotated_path(&path, n))
            .filter(|p| p.exists()),
    );
    assert!(files.len() >= 3, "the log rotated: {files:?}");
    let mut all = String::new();
    for file in files.iter().rev() {
        let ours = cast::render(&cast::read(file).unwrap(), false);
        let theirs = asciinema_cat(dir.path(), file);
        assert_eq!(
            String::from_utf8_lossy(&theirs),
            ours,
            "asciinema cat {} differs from petitlab's reading",
            file.display()
        );
        all.push_str(&ours);
    }
    assert!(all.contains("C:\\path\ttab\x07bell\x00nul\x7fdel"));
    assert!(all.contains("中文 🔥"));
    assert!(all.contains("bad \u{fffd}\u{fffd}\u{fffd} bytes"));
    assert!(all.contains("password: <redacted>\r\nlogin: round 29\r\n"));
    assert!(!all.contains("s3cret"));
}
