//! The real `petitlab serve` under abuse, each attack with a normal client
//! in the same test, whose worst latency is printed and asserted (≤ 1 s):
//!
//! - a TFTP flood of RRQs asking `timeout=255` and never answered, under a
//!   256-descriptor limit, first from one address, then from 40: HTTP
//!   (files and the agent API) and, for the one-address flood, TFTP
//!   (tftp-hpa and busybox) must still be served;
//! - 2000 HTTP connections from one address trickling a header line per
//!   second: curl from another address must still be served.
//!
//! Attackers use 127.0.0.3 and 127.0.1.x, normal clients 127.0.0.1 and
//! 127.0.0.2 (every 127/8 address is loopback). Fails, never skips, without
//! curl, tftp-hpa or busybox.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use support::lab::loopback_lab;

/// The most a normal client may wait during an attack.
const WORST: Duration = Duration::from_secs(1);

fn require(binary: &str, args: &[&str], package: &str) {
    let ok = Command::new(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(ok, "{binary} is missing: apt-get install {package}");
}

fn free_port(udp: bool) -> u16 {
    if udp {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        s.local_addr().unwrap().port()
    } else {
        let s = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        s.local_addr().unwrap().port()
    }
}

/// `petitlab serve` on 127.0.0.1, optionally under a descriptor limit,
/// killed by pid when the test ends however it ends.
struct Serve {
    child: Child,
    /// Everything it printed on stdout so far (one line per request).
    lines: Arc<Mutex<Vec<String>>>,
    http: SocketAddr,
    tftp: SocketAddr,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(nofile: Option<u64>, extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let (lab, _) = loopback_lab(dir.path());
        let state = dir.path().join("state");
        let http: SocketAddr = (Ipv4Addr::LOCALHOST, free_port(false)).into();
        let tftp: SocketAddr = (Ipv4Addr::LOCALHOST, free_port(true)).into();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_petitlab"));
        cmd.arg("--lab")
            .arg(&lab)
            .args(["serve", "--http", &http.to_string(), "--tftp"])
            .arg(tftp.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = nofile {
            let limit = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("start petitlab serve");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        // Read to the end so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("running") {
                    let _ = tx.send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let errors = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                errors.lock().unwrap().push(format!("stderr: {line}"));
            }
        });
        let serve = Serve {
            child,
            lines,
            http,
            tftp,
            state,
            _dir: dir,
        };
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            panic!("petitlab serve did not start: {:?}", serve.log());
        }
        serve
    }

    fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a normal client, timing it; the command is bounded by `timeout 5`
/// so a starved server fails the test instead of hanging it.
fn timed(what: &str, args: &[&str]) -> (Duration, std::process::Output) {
    let started = Instant::now();
    let out = Command::new("timeout")
        .arg("5")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    (started.elapsed(), out)
}

/// Worst latency among the normal clients' requests, with a line per
/// request for the test's output.
#[derive(Default)]
struct Latency {
    worst: Duration,
    seen: Vec<String>,
}

impl Latency {
    fn add(&mut self, what: &str, took: Duration) {
        println!("  {what}: {:.0} ms", took.as_secs_f64() * 1e3);
        self.seen.push(format!("{what} {took:?}"));
        self.worst = self.worst.max(took);
    }

    fn check(&self, attack: &str) {
        println!(
            "{attack}: normal client's worst latency {:.0} ms over {} requests",
            self.worst.as_secs_f64() * 1e3,
            self.seen.len()
        );
        assert!(
            self.worst <= WORST,
            "{attack}: a normal client waited {:?} (> {WORST:?}): {:?}",
            self.worst,
            self.seen
        );
    }
}

/// curl from `from`, checking status and body; returns the time taken.
fn curl(from: &str, url: &str, want_status: &str, want_body: &[u8], lat: &mut Latency) {
    let (took, out) = timed(
        "curl",
        &[
            "curl",
            "-sS",
            "--interface",
            from,
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            url,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    lat.add(&format!("curl {url} from {from}"), took);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    assert_eq!(
        (status, body),
        (want_status, &*String::from_utf8_lossy(want_body)),
        "curl {url} from {from} after {took:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A normal TFTP download with tftp-hpa, then busybox, each checked.
fn tftp_fetches(serve: &Serve, want: &[u8], out_dir: &Path, lat: &mut Latency) {
    let port = serve.tftp.port().to_string();
    let hpa_out = out_dir.join("hpa");
    let (took, out) = timed(
        "tftp-hpa",
        &[
            "tftp",
            "127.0.0.1",
            &port,
            "-m",
            "binary",
            "-c",
            "get",
            "kernel",
            hpa_out.to_str().unwrap(),
        ],
    );
    lat.add("tftp-hpa get kernel", took);
    let got = std::fs::read(&hpa_out).unwrap_or_default();
    assert!(
        got == want,
        "tftp-hpa got {} of {} bytes after {took:?}: {}{}",
        got.len(),
        want.len(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bb_out = out_dir.join("busybox");
    let (took, out) = timed(
        "busybox tftp",
        &[
            "busybox",
            "tftp",
            "-g",
            "-r",
            "kernel",
            "-l",
            bb_out.to_str().unwrap(),
            "-b",
            "1468",
            "127.0.0.1",
            &port,
        ],
    );
    lat.add("busybox tftp get kernel", took);
    let got = std::fs::read(&bb_out).unwrap_or_default();
    assert!(
        out.status.success() && got == want,
        "busybox tftp got {} of {} bytes after {took:?}: {}",
        got.len(),
        want.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&hpa_out);
    let _ = std::fs::remove_file(&bb_out);
}

fn rrq_timeout_255(name: &str) -> Vec<u8> {
    let mut p = vec![0, 1];
    for part in [
        name, "octet", "timeout", "255", "blksize", "1468", "tsize", "0",
    ] {
        p.extend_from_slice(part.as_bytes());
        p.push(0);
    }
    p
}

/// RRQs that are never answered, from each of `sources`: `burst` at once,
/// then a few more every 100 ms until `stop`.
fn tftp_flood(
    server: SocketAddr,
    sources: Vec<Ipv4Addr>,
    burst: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let sockets: Vec<UdpSocket> = sources
        .iter()
        .map(|ip| UdpSocket::bind((*ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}")))
        .collect();
    let rrq = rrq_timeout_255("kernel");
    let mut sent = 0;
    for s in &sockets {
        for _ in 0..burst {
            s.send_to(&rrq, server).unwrap();
            sent += 1;
        }
    }
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            for s in &sockets {
                for _ in 0..4 {
                    let _ = s.send_to(&rrq, server);
                    sent += 1;
                }
            }
        }
        sent
    })
}

#[test]
fn a_tftp_flood_leaves_http_and_other_tftp_clients_served() {
    require("curl", &["--version"], "curl");
    require("tftp", &["-V"], "tftp-hpa");
    require("busybox", &["true"], "busybox");
    let serve = Serve::start(Some(256), &[]);
    let kernel: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(serve.state.join("tftp/kernel"), &kernel).unwrap();
    std::fs::write(serve.state.join("http/config"), b"default deploy\n").unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let config_url = format!("http://{}/config", serve.http);
    let ping_url = format!("http://{}/v1/ping", serve.http);

    // One host: 200 RRQs at once (2 descriptors each while they last),
    // then more all along.
    let attacker = Ipv4Addr::new(127, 0, 0, 3);
    let stop = Arc::new(AtomicBool::new(false));
    let flood = tftp_flood(serve.tftp, vec![attacker], 200, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let mut lat = Latency::default();
    for _ in 0..3 {
        curl(
            "127.0.0.2",
            &config_url,
            "200",
            b"default deploy\n",
            &mut lat,
        );
        curl("127.0.0.2", &ping_url, "200", b"ok=petitlab\n", &mut lat);
        tftp_fetches(&serve, &kernel, out_dir.path(), &mut lat);
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().unwrap();
    println!("one-host flood: {sent} RRQs from {attacker}");
    lat.check("TFTP flood from one host");

    // 40 hosts, 16 RRQs each at once: more than the server's transfers in
    // all, so what is left of the descriptors must still serve HTTP.
    let hosts: Vec<Ipv4Addr> = (1..=40).map(|i| Ipv4Addr::new(127, 0, 1, i)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let flood = tftp_flood(serve.tftp, hosts, 16, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let mut lat = Latency::default();
    for _ in 0..4 {
        curl(
            "127.0.0.2",
            &config_url,
            "200",
            b"default deploy\n",
            &mut lat,
        );
        curl("127.0.0.2", &ping_url, "200", b"ok=petitlab\n", &mut lat);
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().unwrap();
    println!("40-host flood: {sent} RRQs");
    lat.check("TFTP flood from 40 hosts");

    let log = serve.log();
    let busy = log
        .iter()
        .filter(|l| l.contains("127.0.0.3:") && l.contains("server busy"))
        .count();
    assert!(busy > 0, "the flood was never refused: {log:?}");
    let exhausted: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("os error 24") || l.contains("Too many open files"))
        .collect();
    assert!(
        exhausted.is_empty(),
        "the server ran out of descriptors: {exhausted:?}"
    );
}

/// Raises this process's descriptor limit to what 2000 connections need.
fn allow_descriptors(n: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit to fill and then pass back.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < n {
            limit.rlim_cur = n.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= n,
        "this test needs {n} descriptors, the hard limit is {}",
        limit.rlim_max
    );
}

#[test]
fn slow_http_clients_from_one_address_do_not_starve_another() {
    require("curl", &["--version"], "curl");
    allow_descriptors(4096);
    let serve = Serve::start(None, &["--only", "http"]);
    std::fs::write(serve.state.join("http/config"), b"default deploy\n").unwrap();
    let url = format!("http://{}/config", serve.http);

    // 2000 connections from 127.0.0.3, each sending a request head one
    // header line per second, never finishing it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let connected = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let server = serve.http;
    for i in 0..2000usize {
        let (connected, open) = (connected.clone(), open.clone());
        runtime.spawn(async move {
            use tokio::io::AsyncWriteExt;
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
            let Ok(mut stream) = socket.connect(server).await else {
                return;
            };
            connected.fetch_add(1, Ordering::Relaxed);
            open.fetch_add(1, Ordering::Relaxed);
            let mut line = b"GET /config HTTP/1.1\r\nHost: x\r\n".to_vec();
            for n in 0.. {
                if stream.write_all(&line).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                line = format!("X-Slow-{i}-{n}: z\r\n").into_bytes();
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    // The normal client comes once all 2000 are connected (what a backlog
    // cannot take retries its SYN), or after 5 s: the attack is on either way.
    let started = Instant::now();
    while connected.load(Ordering::Relaxed) < 2000 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "slow clients: {} connected in {:?}",
        connected.load(Ordering::Relaxed),
        started.elapsed()
    );
    let mut lat = Latency::default();
    for _ in 0..6 {
        curl("127.0.0.2", &url, "200", b"default deploy\n", &mut lat);
        std::thread::sleep(Duration::from_millis(300));
    }
    println!(
        "slow clients: {} of {} still open after {:?}",
        open.load(Ordering::Relaxed),
        connected.load(Ordering::Relaxed),
        started.elapsed()
    );
    runtime.shutdown_background();
    lat.check("2000 slow HTTP clients from one address");
}
