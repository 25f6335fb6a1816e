//! A file in the HTTP root that `petitlab serve` may not read is not a
//! "missing file": petitboot would print "Failed to download" and send the
//! admin looking for a file that is there. Real `curl` against `petitlab
//! serve --only http` running as `nobody` (setpriv, from util-linux): the
//! unreadable file gets 403 and serve's log names it and the cause; a
//! missing one still gets 404, a readable one 200. Needs root (to drop to
//! nobody); fails, never skips.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::guarded::Guarded;
use support::petitboot_rig::require;

const NOBODY: &str = "65534";

fn curl_status(url: &str) -> String {
    let out = Command::new(require("curl", "curl"))
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
            url,
        ])
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_unreadable_file_is_403_and_logged_not_a_silent_404() {
    assert!(
        nix_is_root(),
        "this test drops to nobody with setpriv: run it as root (scripts/test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let state = dir.path().join("state");
    let root = state.join("http");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("readable"), b"fine\n").unwrap();
    std::fs::write(root.join("unreadable"), b"secret\n").unwrap();
    let lab = dir.path().join("lab.toml");
    std::fs::write(
        &lab,
        format!(
            "state_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
            state.display()
        ),
    )
    .unwrap();
    // serve runs as nobody: everything is its own but the one file, root's
    // and readable by root only.
    let chown = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let unreadable = root.join("unreadable");
    std::os::unix::fs::chown(&unreadable, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o600)).unwrap();

    let mut child = Command::new(require("setpriv", "util-linux"))
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(&lab)
        .args(["serve", "--only", "http"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start petitlab serve as nobody");
    let stderr = child.stderr.take().unwrap();
    let serve = Guarded(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while curl_status(&format!("{base}/readable")) != "200" {
        assert!(
            Instant::now() < deadline,
            "petitlab serve (as nobody) never answered 200 for a readable file: {:?}",
            rx.try_iter().collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(curl_status(&format!("{base}/missing")), "404");
    assert_eq!(
        curl_status(&format!("{base}/unreadable")),
        "403",
        "a file serve may not read"
    );

    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.iter().any(|l: &String| l.contains("cannot open")) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            log.push(line);
        }
    }
    let line = log
        .iter()
        .find(|l| l.contains("cannot open"))
        .unwrap_or_else(|| panic!("serve logged nothing about the unreadable file: {log:?}"));
    assert!(
        line.contains(&unreadable.display().to_string()) && line.contains("Permission denied"),
        "the log line names the file and the cause: {line}"
    );
    drop(serve);
}

fn nix_is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}
