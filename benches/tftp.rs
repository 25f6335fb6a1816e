//! TFTP download speed of one 64 MiB file on 127.0.0.1, petitlab's server
//! against servers we did not write, in the same run, rounds interleaved
//! (petitlab, peer, petitlab, peer, ...) so that the machine's drift lands
//! on both sides; each pair's ratio is printed, then the medians.
//!
//! - Against tftpd-hpa (`in.tftpd`, no RFC 7440 `windowsize`) with busybox
//!   `tftp -b 1428`, tftp-hpa at blksize 512 and petitlab's own client at
//!   blksize 1428.
//! - `windowsize` 16 and 64 against atftpd 0.8 (RFC 7440), with petitlab's
//!   client and atftp's. Debian's atftpd conflicts with tftpd-hpa, so
//!   `scripts/test` unpacks it under `target/peers/atftp` (env `ATFTPD`,
//!   `ATFTP` name other binaries). Without it the bench says so.
//!
//! `cargo bench --bench tftp` (env RUNS=N pairs, default 5; as root, for
//! `in.tftpd -u root`). Needs busybox, tftp-hpa and tftpd-hpa. The load
//! average is printed at the start and the end: on a busy machine the
//! ratios move.
//!
//! `SERVE_ONLY=1 cargo bench --bench tftp` serves the same file from
//! petitlab alone until stdin closes, for `strace -c` and `perf stat`.

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use petitlab::serve::tftp::{TftpOptions, TftpServer, TransferRecord};
use petitlab::serve::tftp_client::{self, ClientOptions, TftpError};
use sha2::{Digest, Sha256};

const SIZE: usize = 64 << 20;
const FILE: &str = "image.bin";

/// A peer server in the foreground, stopped by PID when dropped (also on
/// panic).
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require(binary: &str, args: &[&str], package: &str) {
    let ok = Command::new(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(ok, "{binary} is missing: apt-get install {package}");
}

/// The first of `env`, then `candidates`, that exists.
fn find(env: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(p.into());
    }
    candidates.iter().find(|p| p.exists()).cloned()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mb_per_s(d: Duration) -> f64 {
    SIZE as f64 / 1e6 / d.as_secs_f64()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs a client quietly (busybox draws a progress bar); a failure is
/// returned with what the client said.
fn run(cmd: &mut Command) -> Result<(), String> {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} after {:.1} s: {}{}",
        out.status,
        start.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

#[derive(Clone, Debug)]
enum Client {
    Busybox(u16),
    TftpHpa,
    Own {
        blksize: u16,
        windowsize: Option<u16>,
    },
    Atftp {
        binary: PathBuf,
        blksize: u16,
        windowsize: u16,
    },
}

impl Client {
    fn name(&self) -> String {
        match self {
            Client::Busybox(b) => format!("busybox tftp -b {b}"),
            Client::TftpHpa => "tftp-hpa (blksize 512)".into(),
            Client::Own {
                blksize,
                windowsize: None,
            } => format!("petitlab client blksize {blksize}"),
            Client::Own {
                blksize,
                windowsize: Some(w),
            } => format!("petitlab client blksize {blksize} windowsize {w}"),
            Client::Atftp {
                blksize,
                windowsize,
                ..
            } => format!("atftp blksize {blksize} windowsize {windowsize}"),
        }
    }

    /// One download of FILE, timed; its bytes are checked against `want`.
    /// A client that fails is returned as an error, to be reported.
    fn fetch(
        &self,
        rt: &tokio::runtime::Runtime,
        server: SocketAddr,
        out: &Path,
        want: &[u8],
    ) -> Result<Duration, String> {
        let _ = std::fs::remove_file(out);
        let port = server.port().to_string();
        let local = out.to_str().unwrap();
        let start = Instant::now();
        let got = match self {
            Client::Busybox(b) => {
                let mut cmd = Command::new("busybox");
                cmd.args(["tftp", "-g", "-r", FILE, "-l", local, "-b", &b.to_string()]);
                run(cmd.args(["127.0.0.1", &port]))?;
                None
            }
            Client::TftpHpa => {
                let mut cmd = Command::new("tftp");
                run(cmd.args(["127.0.0.1", &port, "-m", "binary", "-c", "get", FILE, local]))?;
                None
            }
            Client::Own {
                blksize,
                windowsize,
            } => {
                let options = ClientOptions {
                    blksize: Some(*blksize),
                    windowsize: *windowsize,
                    tsize: true,
                    ..ClientOptions::default()
                };
                let r: Result<Vec<u8>, TftpError> =
                    rt.block_on(tftp_client::fetch(server, FILE, options));
                Some(r.map_err(|e| e.to_string())?)
            }
            Client::Atftp {
                binary,
                blksize,
                windowsize,
            } => {
                let mut cmd = Command::new(binary);
                cmd.args(["--option", &format!("blksize {blksize}")]);
                cmd.args(["--option", &format!("windowsize {windowsize}")]);
                run(cmd.args(["-g", "-r", FILE, "-l", local, "127.0.0.1", &port]))?;
                None
            }
        };
        let elapsed = start.elapsed();
        let got = got.unwrap_or_else(|| std::fs::read(out).unwrap());
        assert!(
            sha256(&got) == want,
            "{}: wrong bytes from {server}",
            self.name()
        );
        Ok(elapsed)
    }
}

/// Waits until a TFTP server answers on `addr` (with "file not found").
fn wait_answers(rt: &tokio::runtime::Runtime, addr: SocketAddr, what: &str) {
    let start = Instant::now();
    loop {
        let probe = ClientOptions {
            timeout: Duration::from_millis(100),
            retries: 0,
            ..ClientOptions::default()
        };
        match rt.block_on(tftp_client::fetch(addr, "missing", probe)) {
            Err(TftpError::Server { .. }) => return,
            _ if start.elapsed() < Duration::from_secs(5) => {}
            other => panic!("{what} on {addr} does not answer: {other:?}"),
        }
    }
}

/// The data: a fixed pseudo-random file, so compression or caching cannot
/// flatter anyone.
fn write_image(root: &Path) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let data: Vec<u8> = (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(root.join(FILE), &data).unwrap();
    sha256(&data)
}

struct Bench<'a> {
    rt: &'a tokio::runtime::Runtime,
    out: PathBuf,
    want: Vec<u8>,
    runs: usize,
    petitlab: SocketAddr,
}

impl Bench<'_> {
    /// `runs` interleaved pairs of one client against petitlab then the
    /// peer; prints each pair and the medians. The ratio is petitlab's
    /// throughput over the peer's (above 1: petitlab is faster).
    fn compare(&self, client: &Client, peer: &str, peer_addr: SocketAddr) {
        println!("  {} (petitlab vs {peer})", client.name());
        let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for pair in 1..=self.runs {
            let (a, b) = self.pair(client, peer, peer_addr);
            let ratio = b.as_secs_f64() / a.as_secs_f64();
            println!(
                "    pair {pair}: petitlab {:7.1} MB/s  {peer} {:7.1} MB/s  ratio {ratio:5.2}",
                mb_per_s(a),
                mb_per_s(b)
            );
            ours.push(mb_per_s(a));
            theirs.push(mb_per_s(b));
            ratios.push(ratio);
        }
        let faster = ratios.iter().filter(|&&r| r >= 1.0).count();
        println!(
            "    median: petitlab {:7.1} MB/s  {peer} {:7.1} MB/s  ratio {:5.2}  (petitlab >= 1.0x in {faster}/{} pairs)",
            median(ours),
            median(theirs),
            median(ratios),
            self.runs
        );
    }
}

impl Bench<'_> {
    /// One pair, repeated (and said so) when a client fails: on a machine
    /// shared with other UDP services, busybox (which sets SO_REUSEADDR
    /// before its implicit bind) can land on a port another process has
    /// bound to 127.0.0.1, which then gets the server's replies.
    fn pair(&self, client: &Client, peer: &str, peer_addr: SocketAddr) -> (Duration, Duration) {
        for _ in 0..3 {
            let a = client.fetch(self.rt, self.petitlab, &self.out, &self.want);
            let b = client.fetch(self.rt, peer_addr, &self.out, &self.want);
            match (a, b) {
                (Ok(a), Ok(b)) => return (a, b),
                (a, b) => {
                    for (server, r) in [("petitlab", a), (peer, b)] {
                        if let Err(e) = r {
                            println!("    (client failed against {server}: {e}; pair repeated)");
                        }
                    }
                }
            }
        }
        panic!("{}: three failed attempts in a row", client.name());
    }
}

/// Serves the image from petitlab alone until stdin closes, for profiling
/// the server process by itself.
fn serve_only(root: PathBuf) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = std::env::var("SERVE_ONLY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
    let options = TftpOptions {
        log: Some(std::sync::Arc::new(|r: &TransferRecord| eprintln!("{r}"))),
        ..TftpOptions::default()
    };
    let server = TftpServer::bind(addr, root.clone(), options).unwrap();
    println!(
        "serving {} on {} (pid {}) until stdin closes",
        root.join(FILE).display(),
        server.local_addr(),
        std::process::id()
    );
    let handle = rt.block_on(async { server.spawn() });
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    rt.block_on(handle.shutdown()).unwrap();
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let want = write_image(&root);
    if std::env::var_os("SERVE_ONLY").is_some() {
        return serve_only(root);
    }

    require("busybox", &["true"], "busybox");
    require("tftp", &["-V"], "tftp-hpa");
    require("/usr/sbin/in.tftpd", &["-V"], "tftpd-hpa");
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/atftp");
    let atftpd = find(
        "ATFTPD",
        &["/usr/sbin/atftpd".into(), peers.join("usr/sbin/atftpd")],
    );
    let atftp = find(
        "ATFTP",
        &["/usr/bin/atftp".into(), peers.join("usr/bin/atftp")],
    );

    // The server has a runtime of its own, as it would in petitlab; the
    // bench's own client runs on another, like a separate process.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = TftpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        root.clone(),
        TftpOptions::default(),
    )
    .unwrap();
    let petitlab = server.local_addr();
    let handle = server_rt.block_on(async { server.spawn() });

    let hpa: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let tftpd = Daemon(
        Command::new("/usr/sbin/in.tftpd")
            .args(["-L", "-u", "root", "-s"])
            .arg(&root)
            .args(["-a", &hpa.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("cannot start in.tftpd"),
    );
    wait_answers(&rt, hpa, "in.tftpd");

    let bench = Bench {
        rt: &rt,
        out: dir.path().join("download"),
        want,
        runs,
        petitlab,
    };
    println!(
        "TFTP, {} MiB file on 127.0.0.1, {runs} interleaved pairs (MB/s = 10^6 bytes/s; ratio = petitlab/peer throughput)",
        SIZE >> 20
    );
    println!("petitlab on {petitlab}, tftpd-hpa on {hpa}");
    println!("load average at start: {}", loadavg());
    for client in [
        Client::Busybox(1428),
        Client::TftpHpa,
        Client::Own {
            blksize: 1428,
            windowsize: None,
        },
    ] {
        bench.compare(&client, "tftpd-hpa", hpa);
    }
    drop(tftpd);

    windowsize(&bench, &rt, &root, atftpd, atftp);
    println!("load average at end: {}", loadavg());
    server_rt.block_on(handle.shutdown()).unwrap();
}

/// RFC 7440 against atftpd, which supports it (tftpd-hpa 5.2 does not).
fn windowsize(
    bench: &Bench,
    rt: &tokio::runtime::Runtime,
    root: &Path,
    atftpd: Option<PathBuf>,
    atftp: Option<PathBuf>,
) {
    let Some(atftpd) = atftpd else {
        println!(
            "  windowsize: not compared: tftpd-hpa 5.2 lacks RFC 7440 and atftpd (which has it) was not found (scripts/test unpacks it under target/peers/atftp)"
        );
        return;
    };
    let addr: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let port = addr.port().to_string();
    let _daemon = Daemon(
        Command::new(&atftpd)
            .args(["--daemon", "--no-fork", "--user", "root.root"])
            .args(["--bind-address", "127.0.0.1", "--port", &port])
            .args(["--maxthread", "100", "--logfile", "/dev/null"])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start atftpd"),
    );
    wait_answers(rt, addr, "atftpd");
    println!("  windowsize (RFC 7440; tftpd-hpa 5.2 lacks it, so against atftpd 0.8):");
    for windowsize in [16, 64] {
        let own = Client::Own {
            blksize: 1428,
            windowsize: Some(windowsize),
        };
        bench.compare(&own, "atftpd", addr);
        if let Some(binary) = &atftp {
            let theirs = Client::Atftp {
                binary: binary.clone(),
                blksize: 1428,
                windowsize,
            };
            bench.compare(&theirs, "atftpd", addr);
        }
    }
}
