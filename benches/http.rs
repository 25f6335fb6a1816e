//! HTTP download throughput: one 512 MiB file (real bytes, not sparse)
//! fetched over 127.0.0.1 by the same client, `curl`, from petitlab's
//! server and, in the same run, from nginx (`sendfile on; tcp_nopush on`).
//! Runs are interleaved in pairs (who goes first alternates); each pair's
//! ratio petitlab/nginx is printed with the medians (target ≥ 0.9).
//!
//! `cargo bench --bench http` (env RUNS=N pairs, default 5)

#[path = "../tests/support/pairs.rs"]
mod pairs;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use petitlab::serve::http::{HttpOptions, HttpServer};

const SIZE: usize = 512 << 20;
const BLOCK: usize = 1 << 20;
const ROUNDS: usize = 5;
const NGINX: &str = "/usr/sbin/nginx";

/// Kills nginx by its PID when the benchmark ends, panics included.
struct NginxGuard(Child);

impl Drop for NginxGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 1 MiB of pseudo-random bytes (xorshift64), repeated to `SIZE`.
fn write_big_file(path: &Path) {
    let mut x: u64 = 0x243F_6A88_85A3_08D3;
    let mut block = Vec::with_capacity(BLOCK);
    while block.len() < BLOCK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        block.extend_from_slice(&x.to_le_bytes());
    }
    let mut file = std::fs::File::create(path).unwrap();
    for _ in 0..SIZE / BLOCK {
        std::io::Write::write_all(&mut file, &block).unwrap();
    }
    file.sync_all().unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_nginx(tmp: &Path, port: u16) -> NginxGuard {
    let t = tmp.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\n\
         error_log {t}/error.log;\npid {t}/nginx.pid;\n\
         events {{}}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n\
           default_type application/octet-stream;\n\
           client_body_temp_path {t}/client_body;\n  proxy_temp_path {t}/proxy;\n\
           fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n\
           scgi_temp_path {t}/scgi;\n\
           server {{ listen 127.0.0.1:{port}; root {t}/root; }}\n}}\n"
    );
    let conf_path = tmp.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(NGINX)
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(tmp)
        .arg("-e")
        .arg(tmp.join("error.log"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {NGINX} (apt-get install nginx-light): {e}"));
    let mut guard = NginxGuard(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = guard.0.try_wait() {
            let log = std::fs::read_to_string(tmp.join("error.log")).unwrap_or_default();
            panic!("nginx exited with {status}: {log}");
        }
        assert!(Instant::now() < deadline, "nginx does not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    guard
}

/// One download with curl; bytes per second.
fn fetch(url: &str) -> f64 {
    let out = Command::new("curl")
        .args(["-q", "-sS", "--noproxy", "*", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{size_download} %{speed_download}", url])
        .output()
        .expect("curl runs (apt-get install curl)");
    let text = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert!(
        out.status.success() && fields.len() == 3,
        "curl {url}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fields[0], "200", "{url}");
    assert_eq!(fields[1], SIZE.to_string(), "{url}: short download");
    fields[2].parse().unwrap()
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let started = Instant::now();
    write_big_file(&root.join("big.img"));
    println!(
        "http: {} MiB file written in {:.1} s",
        SIZE >> 20,
        started.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let listen = "127.0.0.1:0".parse().unwrap();
    let server = rt
        .block_on(HttpServer::bind(
            listen,
            root.clone(),
            HttpOptions::default(),
        ))
        .unwrap();
    let server = {
        let _entered = rt.enter();
        server.spawn()
    };
    let nginx_port = free_port();
    let nginx = start_nginx(tmp.path(), nginx_port);
    let ours = format!("http://{}/big.img", server.local_addr());
    let theirs = format!("http://127.0.0.1:{nginx_port}/big.img");

    // Warm the page cache and both servers; not counted.
    fetch(&ours);
    fetch(&theirs);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    println!("  load average at start: {}", pairs::loadavg());
    let mut pairs = pairs::Pairs::default();
    for round in 0..runs {
        // Alternate who goes first so neither always follows the other.
        let (p, n) = if round % 2 == 0 {
            let p = fetch(&ours);
            (p, fetch(&theirs))
        } else {
            let n = fetch(&theirs);
            (fetch(&ours), n)
        };
        pairs.push(p / 1e6, n / 1e6);
    }
    pairs.report("curl, 512 MiB", "petitlab", "nginx", "MB/s");
    let ratio = pairs.median_ratio();
    println!(
        "  ratio petitlab/nginx {ratio:.3} (target >= 0.9){}",
        if ratio >= 0.9 { "" } else { "  BELOW TARGET" }
    );
    println!("  load average at end: {}", pairs::loadavg());

    drop(nginx);
    rt.block_on(server.shutdown(Duration::from_secs(5)));
}
