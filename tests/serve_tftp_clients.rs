//! petitlab's TFTP server against REAL clients: tftp-hpa's `tftp` and
//! busybox `tftp`, on 127.0.0.1 only. Files of 0, 1, 512·n bytes and past
//! 32 MiB (block numbers roll over at blksize 512), with and without
//! `blksize`; traversal and absolute paths, writes, our own client with
//! `windowsize`, and concurrent downloads. A missing client fails the test
//! (never skips) with the package to install.
//!
//! Client quirks this relies on:
//! - tftp-hpa 5.2 (`tftp 127.0.0.1 PORT -m binary -c get REMOTE LOCAL`)
//!   sends no RFC 2347 options at all (no `blksize` flag or command), so it
//!   is tested at 512 only; its default mode is netascii (hence
//!   `-m binary`); on an ERROR it prints `Error code N: ...`, leaves an
//!   empty LOCAL file and still exits 0.
//! - busybox (`busybox tftp -g -r REMOTE -l LOCAL [-b SIZE] 127.0.0.1 PORT`)
//!   sends `blksize` only when SIZE is not 512 and `tsize` always; on an
//!   ERROR it exits 1 and removes LOCAL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use petitlab::serve::tftp::{Outcome, TftpHandle, TftpOptions, TftpServer, TransferRecord};
use petitlab::serve::tftp_client::{self, ClientOptions};
use sha2::{Digest, Sha256};

/// Past 32 MiB, so block numbers wrap at blksize 512; not a multiple of 512.
const BIG: usize = (33 << 20) + 7;

fn require(binary: &str, args: &[&str], package: &str) {
    let ok = Command::new(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "{binary} is missing: apt-get install {package} (scripts/test installs the test peers)"
    );
}

fn tftp_hpa() -> &'static str {
    require("tftp", &["-V"], "tftp-hpa");
    "tftp"
}

fn busybox() -> &'static str {
    require("busybox", &["true"], "busybox");
    "busybox"
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_file(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Bytes that are neither all zero nor periodic at any block size.
fn content(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A server on 127.0.0.1 over a temp root, with its runtime and log.
struct Lab {
    dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    handle: Option<TftpHandle>,
    log: Arc<Mutex<Vec<TransferRecord>>>,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("secret"), b"outside the root").unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let options = TftpOptions {
            log: Some(Arc::new(move |r: &TransferRecord| {
                sink.lock().unwrap().push(r.clone())
            })),
            ..TftpOptions::default()
        };
        let server = TftpServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            dir.path().join("root"),
            options,
        )
        .unwrap();
        let handle = runtime.block_on(async { server.spawn() });
        Lab {
            dir,
            runtime,
            handle: Some(handle),
            log,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.handle.as_ref().unwrap().local_addr()
    }

    fn port(&self) -> String {
        self.addr().port().to_string()
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    /// Writes `name` under the root; returns its sha256.
    fn file(&self, name: &str, data: &[u8]) -> String {
        std::fs::write(self.root().join(name), data).unwrap();
        sha256(data)
    }

    fn hpa_get(&self, remote: &str, local: &Path, mode: &str) -> Output {
        let local = local.to_str().unwrap();
        let port = self.port();
        let args = ["127.0.0.1", &port, "-m", mode, "-c", "get", remote, local];
        run(Command::new(tftp_hpa()).args(args))
    }

    fn busybox_get(&self, remote: &str, local: &Path, blksize: Option<u16>) -> Output {
        let mut cmd = Command::new(busybox());
        cmd.args(["tftp", "-g", "-r", remote, "-l", local.to_str().unwrap()]);
        if let Some(b) = blksize {
            cmd.args(["-b", &b.to_string()]);
        }
        run(cmd.args(["127.0.0.1", &self.port()]))
    }

    fn fetch(&self, remote: &str, options: ClientOptions) -> Vec<u8> {
        self.runtime
            .block_on(tftp_client::fetch(self.addr(), remote, options))
            .unwrap_or_else(|e| panic!("{remote}: {e}"))
    }

    /// The log, once it holds at least `n` records (the server logs a
    /// transfer a moment after the client's last ACK).
    fn records(&self, n: usize) -> Vec<TransferRecord> {
        let start = Instant::now();
        loop {
            let log = self.log.lock().unwrap().clone();
            if log.len() >= n || start.elapsed() > Duration::from_secs(5) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = self.runtime.block_on(handle.shutdown());
        }
    }
}

/// Runs a client with a deadline (a hung client must not hang the test).
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sizes() -> Vec<(&'static str, usize)> {
    vec![
        ("empty", 0),
        ("one", 1),
        ("b512", 512),
        ("b1024", 1024),
        ("b512x100", 512 * 100),
        ("big", BIG),
    ]
}

#[test]
fn tftp_hpa_gets_every_size() {
    let lab = Lab::new();
    for (i, (name, len)) in sizes().into_iter().enumerate() {
        let want = lab.file(name, &content(len, i as u32));
        let local = lab.out(name);
        let out = lab.hpa_get(name, &local, "binary");
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert_eq!(sha256_file(&local), want, "{name}: {}", text(&out));
    }
    // netascii: the server sends CR LF / CR NUL, tftp-hpa turns them back.
    let config = b"label linux\n\tkernel tftp://host/vmlinux\r\n\tappend ro\rx\n".repeat(40);
    let want = lab.file("petitboot.conf", &config);
    let local = lab.out("petitboot.conf");
    let out = lab.hpa_get("petitboot.conf", &local, "netascii");
    assert_eq!(sha256_file(&local), want, "netascii: {}", text(&out));
    let records = lab.records(7);
    assert_eq!(records.len(), 7);
    assert!(
        records.iter().all(|r| r.outcome == Outcome::Sent),
        "{records:#?}"
    );
    assert!(records.iter().any(|r| r.bytes == BIG as u64));
}

#[test]
fn busybox_gets_every_size_with_and_without_blksize() {
    let lab = Lab::new();
    let files: Vec<_> = sizes()
        .into_iter()
        .enumerate()
        .map(|(i, (name, len))| (name, lab.file(name, &content(len, 100 + i as u32))))
        .collect();
    for blksize in [None, Some(1428), Some(8192)] {
        for (name, want) in &files {
            let local = lab.out(&format!("{name}-{blksize:?}"));
            let out = lab.busybox_get(name, &local, blksize);
            assert!(out.status.success(), "{name} {blksize:?}: {}", text(&out));
            assert_eq!(sha256_file(&local), *want, "{name} {blksize:?}");
            std::fs::remove_file(&local).unwrap();
        }
    }
    let records = lab.records(18);
    assert_eq!(records.len(), 18);
    assert!(
        records.iter().all(|r| r.outcome == Outcome::Sent),
        "{records:#?}"
    );
    for b in ["1428", "8192"] {
        assert!(
            records
                .iter()
                .any(|r| r.options.contains(&("blksize".into(), b.into()))),
            "busybox -b {b} negotiated it: {records:#?}"
        );
    }
}

#[test]
fn escapes_and_absolute_paths_get_an_error_and_no_data() {
    let lab = Lab::new();
    lab.file("inside", b"fine");
    for remote in ["../secret", "/../secret", "sub/../../secret", "/etc/passwd"] {
        let local = lab.out("hpa");
        let out = lab.hpa_get(remote, &local, "binary");
        let said = text(&out);
        assert!(said.contains("Error code"), "{remote}: {said}");
        assert!(!said.contains("secret") || said.contains(remote), "{said}");
        let got = std::fs::read(&local).unwrap_or_default();
        assert!(got.is_empty(), "{remote}: tftp-hpa got {} bytes", got.len());

        let local = lab.out("bb");
        let out = lab.busybox_get(remote, &local, Some(1428));
        assert!(!out.status.success(), "{remote}: {}", text(&out));
        let got = std::fs::read(&local).unwrap_or_default();
        assert!(got.is_empty(), "{remote}: busybox got {} bytes", got.len());
    }
    // What exists outside the root is not told apart from what does not.
    let said = |remote| {
        let out = lab.busybox_get(remote, &lab.out("x"), None);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_eq!(said("../secret"), said("../no-such-file"));
    assert_eq!(said("/etc/passwd"), said("/no-such-file"));
    let records = lab.records(12);
    assert_eq!(records.len(), 12);
    assert!(
        records
            .iter()
            .all(|r| r.bytes == 0 && r.outcome != Outcome::Sent),
        "{records:#?}"
    );
}

#[test]
fn writes_are_refused() {
    let lab = Lab::new();
    let local = lab.out("upload");
    std::fs::write(&local, b"payload").unwrap();
    let port = lab.port();
    let path = local.to_str().unwrap();
    let out = run(Command::new(tftp_hpa()).args([
        "127.0.0.1",
        &port,
        "-m",
        "binary",
        "-c",
        "put",
        path,
        "uploaded",
    ]));
    assert!(text(&out).contains("Error code 2"), "{}", text(&out));
    let out = run(Command::new(busybox()).args([
        "tftp",
        "-p",
        "-l",
        path,
        "-r",
        "uploaded",
        "127.0.0.1",
        &port,
    ]));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("read-only"), "{}", text(&out));
    assert!(!lab.root().join("uploaded").exists());
    let records = lab.records(2);
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.write));
}

#[test]
fn own_client_with_windowsize_16() {
    let lab = Lab::new();
    let data = content(BIG, 7);
    let want = lab.file("big", &data);
    for blksize in [Some(1428), None] {
        let got = lab.fetch(
            "big",
            ClientOptions {
                blksize,
                windowsize: Some(16),
                tsize: true,
                ..ClientOptions::default()
            },
        );
        assert_eq!(sha256(&got), want, "blksize {blksize:?}");
    }
    let records = lab.records(2);
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.options.contains(&("windowsize".into(), "16".into()))),
        "{records:#?}"
    );
}

#[test]
fn concurrent_downloads() {
    let lab = Lab::new();
    let wants: Vec<String> = (0..8)
        .map(|i| {
            lab.file(
                &format!("f{i}"),
                &content((3 << 20) + i * 1000, 50 + i as u32),
            )
        })
        .collect();
    std::thread::scope(|s| {
        let mut jobs = Vec::new();
        for (i, want) in wants.iter().enumerate() {
            let lab = &lab;
            jobs.push(s.spawn(move || {
                let name = format!("f{i}");
                let local = lab.out(&name);
                let out = match i % 4 {
                    0 => lab.hpa_get(&name, &local, "binary"),
                    1 => lab.busybox_get(&name, &local, None),
                    2 => lab.busybox_get(&name, &local, Some(8192)),
                    _ => {
                        let got = lab.fetch(
                            &name,
                            ClientOptions {
                                blksize: Some(1428),
                                windowsize: Some(8),
                                ..ClientOptions::default()
                            },
                        );
                        assert_eq!(sha256(&got), *want, "{name}");
                        return;
                    }
                };
                assert_eq!(sha256_file(&local), *want, "{name}: {}", text(&out));
            }));
        }
        for job in jobs {
            job.join().unwrap();
        }
    });
    let records = lab.records(8);
    assert_eq!(records.len(), 8);
    assert!(
        records.iter().all(|r| r.outcome == Outcome::Sent),
        "{records:#?}"
    );
}
