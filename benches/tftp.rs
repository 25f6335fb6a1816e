//! TFTP download speed of one 64 MiB file on 127.0.0.1: petitlab's server
//! against tftpd-hpa (`in.tftpd`), in the same run, with the same clients
//! and options (busybox `tftp -b 1428`, tftp-hpa at 512, petitlab's own
//! client at blksize 1428), then petitlab with RFC 7440 `windowsize`
//! (which tftpd-hpa 5.2 does not support) against the best tftpd-hpa
//! number of the same client without it.
//!
//! `cargo bench --bench tftp` (env RUNS=N, default 3; as root, for
//! `in.tftpd -u root`). Needs busybox, tftp-hpa and tftpd-hpa.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use petitlab::serve::tftp::{TftpOptions, TftpServer};
use petitlab::serve::tftp_client::{self, ClientOptions, TftpError};
use sha2::{Digest, Sha256};

const SIZE: usize = 64 << 20;
const FILE: &str = "image.bin";

/// in.tftpd in the foreground, stopped by PID when dropped (also on panic).
struct Tftpd(Child);

impl Drop for Tftpd {
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

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mb_per_s(d: Duration) -> f64 {
    SIZE as f64 / 1e6 / d.as_secs_f64()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Runs a client quietly (busybox draws a progress bar); fails loudly.
fn run(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Clone, Copy, Debug)]
enum Client {
    Busybox(u16),
    TftpHpa,
    Own {
        blksize: u16,
        windowsize: Option<u16>,
    },
}

impl Client {
    fn name(self) -> String {
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
        }
    }

    /// One download of FILE, timed; its bytes are checked against `want`.
    fn fetch(
        self,
        rt: &tokio::runtime::Runtime,
        server: SocketAddr,
        out: &Path,
        want: &[u8],
    ) -> Duration {
        let _ = std::fs::remove_file(out);
        let port = server.port().to_string();
        let local = out.to_str().unwrap();
        let start = Instant::now();
        let got = match self {
            Client::Busybox(b) => {
                let mut cmd = Command::new("busybox");
                cmd.args(["tftp", "-g", "-r", FILE, "-l", local, "-b", &b.to_string()]);
                run(cmd.args(["127.0.0.1", &port]));
                None
            }
            Client::TftpHpa => {
                let mut cmd = Command::new("tftp");
                run(cmd.args(["127.0.0.1", &port, "-m", "binary", "-c", "get", FILE, local]));
                None
            }
            Client::Own {
                blksize,
                windowsize,
            } => {
                let options = ClientOptions {
                    blksize: Some(blksize),
                    windowsize,
                    tsize: true,
                    ..ClientOptions::default()
                };
                let r: Result<Vec<u8>, TftpError> =
                    rt.block_on(tftp_client::fetch(server, FILE, options));
                Some(r.unwrap())
            }
        };
        let elapsed = start.elapsed();
        let got = got.unwrap_or_else(|| std::fs::read(out).unwrap());
        assert!(
            sha256(&got) == want,
            "{}: wrong bytes from {server}",
            self.name()
        );
        elapsed
    }
}

fn main() {
    require("busybox", &["true"], "busybox");
    require("tftp", &["-V"], "tftp-hpa");
    require("/usr/sbin/in.tftpd", &["-V"], "tftpd-hpa");
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
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
    let want = sha256(&data);
    drop(data);
    let out = dir.path().join("download");

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

    let port = free_udp_port();
    let tftpd = Tftpd(
        Command::new("/usr/sbin/in.tftpd")
            .args(["-L", "-u", "root", "-s"])
            .arg(&root)
            .args(["-a", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()
            .expect("cannot start in.tftpd"),
    );
    let hpa: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Wait until in.tftpd answers.
    let start = Instant::now();
    loop {
        let probe = ClientOptions {
            timeout: Duration::from_millis(100),
            retries: 0,
            ..ClientOptions::default()
        };
        match rt.block_on(tftp_client::fetch(hpa, "missing", probe)) {
            Err(TftpError::Server { .. }) => break,
            _ if start.elapsed() < Duration::from_secs(5) => {}
            other => panic!("in.tftpd on {hpa} does not answer: {other:?}"),
        }
    }

    println!(
        "TFTP, {} MiB file on 127.0.0.1, median of {runs} runs (MB/s = 10^6 bytes/s)",
        SIZE >> 20
    );
    let measure = |client: Client, server: SocketAddr| {
        median(
            (0..runs)
                .map(|_| client.fetch(&rt, server, &out, &want))
                .collect(),
        )
    };

    let mut best_own_hpa = Duration::MAX;
    for client in [
        Client::Busybox(1428),
        Client::TftpHpa,
        Client::Own {
            blksize: 1428,
            windowsize: None,
        },
    ] {
        let ours = measure(client, petitlab);
        let theirs = measure(client, hpa);
        if matches!(client, Client::Own { .. }) {
            best_own_hpa = best_own_hpa.min(theirs);
        }
        println!(
            "  {:42} petitlab {:7.1} MB/s ({:6.2} s)  tftpd-hpa {:7.1} MB/s ({:6.2} s)  ratio {:5.2}",
            client.name(),
            mb_per_s(ours),
            ours.as_secs_f64(),
            mb_per_s(theirs),
            theirs.as_secs_f64(),
            theirs.as_secs_f64() / ours.as_secs_f64(),
        );
    }
    println!(
        "  windowsize (tftpd-hpa 5.2 has none): against tftpd-hpa with the same client at blksize 1428, {:.1} MB/s",
        mb_per_s(best_own_hpa)
    );
    for windowsize in [16, 64] {
        let client = Client::Own {
            blksize: 1428,
            windowsize: Some(windowsize),
        };
        let ours = measure(client, petitlab);
        println!(
            "  {:42} petitlab {:7.1} MB/s ({:6.2} s)  {:5.2}x tftpd-hpa",
            client.name(),
            mb_per_s(ours),
            ours.as_secs_f64(),
            best_own_hpa.as_secs_f64() / ours.as_secs_f64(),
        );
    }

    drop(tftpd);
    server_rt.block_on(handle.shutdown()).unwrap();
}
