//! The lab service at scale: `petitlab serve` for 1000 simulated nodes,
//! every console connected and logged, against `petitlab sim --count 1000
//! --chatter 100` (the hosts print 100 timestamped lines a second in all).
//! Measures the service's RSS and CPU with the consoles quiet (chatter
//! paused) and loaded (chatter on, 10 clients each attached to all 1000
//! consoles), and the fan-out latency: a client's receive time minus the
//! time the simulated host printed the line. Targets: ≤ 150 MB, ≤ 2 % of a
//! core quiet, p99 ≤ 10 ms.
//!
//! The anchor, in the same run: Debian's conserver (`apt-get install
//! conserver-server`) holding 100 consoles through `ipmitool sol activate`
//! (its `exec` console type), against `petitlab serve` holding 100 other
//! consoles of a second simulator, both up at once; RSS (and PSS, which
//! counts shared pages once) of conserver and all its children beside the
//! service's.
//!
//! `cargo bench --bench service` (env NODES, QUIET_S, LOADED_S, CLIENTS,
//! ANCHOR, ROUNDS to change the sizes).

#[path = "../tests/support/big_lab.rs"]
mod big_lab;
#[path = "../tests/support/lab.rs"]
#[allow(dead_code)]
mod lab;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use big_lab::{PASSWORD, USER, free_tcp, free_udp_base, write_lab};
use lab::Daemon;
use petitlab::service::Client;
use petitlab::sim::chatter;
use serde_json::json;

/// Aggregate chatter over the big lab's hosts, lines a second.
const CHATTER: f64 = 100.0;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---- /proc readings ----

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn pss_kib(pid: u32) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// (parent pid, utime + stime in ticks) of a process.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((ppid, ticks))
}

/// The process and all its descendants.
fn tree(root: u32) -> Vec<u32> {
    let mut parent = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
            && let Some((ppid, _)) = stat(pid)
        {
            parent.insert(pid, ppid);
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|&(_, &pp)| pp == p).map(|(&c, _)| c));
        i += 1;
    }
    out
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// CPU time of some processes over a window, as % of one core.
struct CpuWindow {
    start: Instant,
    ticks: Vec<u64>,
    machine: (u64, u64),
}

fn cpu_ticks(pid: u32) -> u64 {
    stat(pid).map_or(0, |(_, t)| t)
}

/// (busy, total) jiffies of the whole machine.
fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

impl CpuWindow {
    fn start(pids: &[u32]) -> CpuWindow {
        CpuWindow {
            start: Instant::now(),
            ticks: pids.iter().map(|&p| cpu_ticks(p)).collect(),
            machine: machine_ticks(),
        }
    }

    /// % of one core for each pid, and the machine's busy % of all cores.
    fn end(&self, pids: &[u32]) -> (Vec<f64>, f64) {
        let secs = self.start.elapsed().as_secs_f64();
        let per = pids
            .iter()
            .zip(&self.ticks)
            .map(|(&p, &t0)| (cpu_ticks(p) - t0) as f64 / ticks_per_sec() / secs * 100.0)
            .collect();
        let (busy, total) = machine_ticks();
        let machine = (busy - self.machine.0) as f64 / (total - self.machine.1).max(1) as f64;
        (per, machine * 100.0)
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

// ---- waiting for consoles ----

/// How many of the files hold a chatter line.
fn chattering(files: &[PathBuf]) -> usize {
    files
        .iter()
        .filter(|f| {
            std::fs::read(f)
                .map(|b| b.windows(8).any(|w| w == b"chatter "))
                .unwrap_or(false)
        })
        .count()
}

fn wait_chattering(what: &str, files: &[PathBuf], within: Duration) -> Duration {
    let start = Instant::now();
    let mut last = 0;
    while start.elapsed() < within {
        last = chattering(files);
        if last == files.len() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "{what}: only {last} of {} consoles logged a chatter line within {within:?}",
        files.len()
    );
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this bench started.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

// ---- the attached clients ----

#[derive(Default)]
struct Latencies {
    /// Receive time minus send time, nanoseconds.
    samples: Vec<i64>,
    lagged: u64,
}

async fn client(socket: PathBuf, nodes: Vec<String>, out: Arc<Mutex<Latencies>>) -> Client {
    let client = Client::connect(&socket)
        .await
        .expect("connect to the service")
        .expect("the service listens");
    let mut notes = client.notifications().unwrap();
    client.call("hello", json!({})).await.expect("hello");
    // Receives and times lines as they come, from the first attach on.
    tokio::spawn(async move {
        let mut partial: HashMap<String, Vec<u8>> = HashMap::new();
        while let Some((method, params)) = notes.recv().await {
            let now = chatter::unix_nanos() as i64;
            if method == "lagged" {
                out.lock().unwrap().lagged += 1;
                continue;
            }
            if method != "console" || params["scrollback"] == true {
                continue;
            }
            let (Some(node), Some(data)) = (params["node"].as_str(), params["data"].as_str())
            else {
                continue;
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap_or_default();
            let buf = partial.entry(node.to_string()).or_default();
            buf.extend(bytes);
            while let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = buf.drain(..end + 2).collect();
                if let Some((_, sent)) = chatter::parse(&String::from_utf8_lossy(&line)) {
                    out.lock().unwrap().samples.push(now - sent as i64);
                }
            }
        }
    });
    for node in nodes {
        client
            .call("console.attach", json!({"node": node, "mode": "read-only"}))
            .await
            .expect("console.attach");
    }
    client
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1e6
}

// ---- conserver ----

/// conserver in the foreground with its own config, port and logs; on
/// drop its whole process tree is ended by pid.
struct Conserver {
    child: Child,
    logs: Vec<PathBuf>,
}

impl Conserver {
    fn start(dir: &Path, base: u16, count: usize) -> Conserver {
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let mut cf = format!(
            "config * {{ }}\n\
             default full {{ rw *; }}\n\
             default * {{ logfile {}/logs/&.log; timestamp \"\"; include full; master localhost; }}\n\
             access * {{ trusted 127.0.0.1; }}\n",
            dir.display()
        );
        let mut logs = Vec::new();
        for i in 0..count {
            let port = base as usize + i;
            cf.push_str(&format!(
                "console c{i:03} {{ type exec; exec ipmitool -I lanplus -C 17 -H 127.0.0.1 -p {port} -U {USER} -P {PASSWORD} sol activate; }}\n"
            ));
            logs.push(dir.join(format!("logs/c{i:03}.log")));
        }
        std::fs::write(dir.join("conserver.cf"), cf).unwrap();
        std::fs::write(dir.join("conserver.passwd"), "").unwrap();
        let child = Command::new("conserver")
            .arg("-C")
            .arg(dir.join("conserver.cf"))
            .arg("-P")
            .arg(dir.join("conserver.passwd"))
            .args(["-M", "127.0.0.1", "-p", &free_tcp().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("conserver.err")).unwrap())
            .spawn()
            .expect("run conserver (apt-get install conserver-server)");
        Conserver { child, logs }
    }

    fn pids(&self) -> Vec<u32> {
        tree(self.child.id())
    }
}

impl Drop for Conserver {
    fn drop(&mut self) {
        let pids = self.pids();
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in pids {
            // Those still alive: its children, listed before it was told to stop.
            if stat(pid).is_some() {
                signal(pid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

/// (RSS KiB, PSS KiB, processes) of some processes.
fn memory(pids: &[u32]) -> (u64, u64, usize) {
    let rss = pids.iter().map(|&p| status_kib(p, "VmRSS:")).sum();
    let pss = pids.iter().map(|&p| pss_kib(p)).sum();
    (rss, pss, pids.len())
}

fn main() {
    let nodes = env("NODES", 1000);
    let quiet_s = env("QUIET_S", 30) as u64;
    let loaded_s = env("LOADED_S", 30) as u64;
    let clients = env("CLIENTS", 10);
    let anchor = env("ANCHOR", 100);
    let rounds = env("ROUNDS", 2);
    let work = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // ---- 1000 nodes: quiet, then loaded ----
    let base = free_udp_base(nodes);
    let lab = write_lab(&work.path().join("big"), nodes, base);
    let chatter_arg = CHATTER.to_string();
    let sim = Daemon::start(
        &lab,
        &[
            "sim",
            "--count",
            &nodes.to_string(),
            "--base-port",
            &base.to_string(),
            "--chatter",
            &chatter_arg,
        ],
    );
    let started = Instant::now();
    let serve = Daemon::start(&lab, &["serve"]);
    let state = work.path().join("big/state");
    let casts: Vec<PathBuf> = (0..nodes)
        .map(|i| state.join(format!("console/n{i:04}.cast")))
        .collect();
    wait_chattering("petitlab serve", &casts, Duration::from_secs(600));
    let up = started.elapsed();
    println!(
        "lab service: {nodes} simulated nodes, every console connected and logged ({:.1} s from start to a chatter line in all {nodes} logs)",
        up.as_secs_f64()
    );

    // Quiet: chatter paused, nobody attached.
    signal(sim.pid(), libc::SIGUSR1);
    std::thread::sleep(Duration::from_secs(3));
    let pids = [serve.pid(), sim.pid()];
    let window = CpuWindow::start(&pids);
    std::thread::sleep(Duration::from_secs(quiet_s));
    let (cpu, machine) = window.end(&pids);
    let quiet = (
        status_kib(serve.pid(), "VmRSS:"),
        cpu[0],
        cpu[1],
        machine,
        status_kib(sim.pid(), "VmRSS:"),
    );

    // Loaded: clients attached to every console, chatter on.
    let socket = state.join("petitlab.sock");
    let names: Vec<String> = (0..nodes).map(|i| format!("n{i:04}")).collect();
    let lat = Arc::new(Mutex::new(Latencies::default()));
    let attach_start = Instant::now();
    let held: Vec<Client> = rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| tokio::spawn(client(socket.clone(), names.clone(), lat.clone())))
            .collect();
        let mut held = Vec::new();
        for t in tasks {
            held.push(t.await.unwrap());
        }
        held
    });
    let attach = attach_start.elapsed();
    signal(sim.pid(), libc::SIGUSR1);
    std::thread::sleep(Duration::from_secs(3));
    lat.lock().unwrap().samples.clear();
    let me = std::process::id();
    let pids = [serve.pid(), sim.pid(), me];
    let window = CpuWindow::start(&pids);
    std::thread::sleep(Duration::from_secs(loaded_s));
    let (cpu, machine) = window.end(&pids);
    let (mut samples, lagged) = {
        let l = lat.lock().unwrap();
        (l.samples.clone(), l.lagged)
    };
    samples.sort();
    let loaded_rss = status_kib(serve.pid(), "VmRSS:");
    let hwm = status_kib(serve.pid(), "VmHWM:");
    let sim_rss = status_kib(sim.pid(), "VmRSS:");
    drop(held);
    serve.stop();
    sim.stop();

    let expected = CHATTER * loaded_s as f64 * clients as f64;
    let (p50, p99, max) = (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0),
    );
    let ok = |met: bool| if met { "met" } else { "MISSED" };
    println!(
        "  {clients} clients attached to all {nodes} consoles each (read-only) in {:.1} s",
        attach.as_secs_f64()
    );
    println!();
    println!(
        "  {:44} {:>10} {:>10} {:>12}",
        format!("petitlab serve, {nodes} consoles"),
        "measured",
        "target",
        ""
    );
    println!(
        "  {:44} {:>7.1} MB {:>10} {:>12}",
        "RSS, quiet",
        mb(quiet.0),
        "≤ 150 MB",
        ok(mb(quiet.0) <= 150.0)
    );
    println!(
        "  {:44} {:>7.1} MB {:>10} {:>12}",
        "RSS, loaded",
        mb(loaded_rss),
        "≤ 150 MB",
        ok(mb(loaded_rss) <= 150.0)
    );
    println!(
        "  {:44} {:>7.1} MB {:>10} {:>12}",
        "peak RSS (VmHWM) over the run",
        mb(hwm),
        "≤ 150 MB",
        ok(mb(hwm) <= 150.0)
    );
    println!(
        "  {:44} {:>8.2} % {:>10} {:>12}",
        format!("CPU, quiet ({quiet_s} s, % of one core)"),
        quiet.1,
        "≤ 2 %",
        ok(quiet.1 <= 2.0)
    );
    println!(
        "  {:44} {:>8.2} %",
        format!("CPU, loaded ({loaded_s} s, % of one core)"),
        cpu[0]
    );
    println!(
        "  {:44} {:>7.2} ms {:>10} {:>12}",
        "fan-out latency p50", p50, "", ""
    );
    println!(
        "  {:44} {:>7.2} ms {:>10} {:>12}",
        "fan-out latency p99",
        p99,
        "≤ 10 ms",
        ok(p99 <= 10.0)
    );
    println!("  {:44} {:>7.2} ms", "fan-out latency max", max);
    println!(
        "  lines received {} of ~{expected:.0} ({CHATTER} lines/s × {loaded_s} s × {clients} clients), lagged notices {lagged}",
        samples.len()
    );
    println!(
        "  the machine: petitlab sim {:.2} % quiet / {:.2} % loaded of a core (RSS {:.0} / {:.0} MB); this bench's clients {:.2} % loaded; all {} cores busy {:.1} % quiet / {:.1} % loaded",
        quiet.2,
        cpu[1],
        mb(quiet.4),
        mb(sim_rss),
        cpu[2],
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        quiet.3,
        machine
    );

    // ---- the anchor: conserver + ipmitool against petitlab serve, 100 consoles each ----
    if which("conserver").is_none() || which("ipmitool").is_none() {
        println!(
            "\n  anchor skipped: conserver or ipmitool is missing (apt-get install conserver-server ipmitool)"
        );
        return;
    }
    let abase = free_udp_base(2 * anchor);
    let alab = write_lab(&work.path().join("anchor"), anchor, abase + anchor as u16);
    // The same rate per host as the big lab (chatter only shows they are up).
    let per_host = (CHATTER / nodes as f64 * (2 * anchor) as f64).to_string();
    let asim = Daemon::start(
        &alab,
        &[
            "sim",
            "--count",
            &(2 * anchor).to_string(),
            "--base-port",
            &abase.to_string(),
            "--chatter",
            &per_host,
        ],
    );
    println!(
        "\n  anchor: {anchor} consoles held by conserver (exec: ipmitool -C 17 sol activate) and {anchor} by petitlab serve, up at once, {rounds} rounds"
    );
    println!(
        "  {:7} {:>26} {:>26} {:>14}",
        "round", "conserver + ipmitool", "petitlab serve", "RSS ratio"
    );
    let astate = work.path().join("anchor/state");
    let acasts: Vec<PathBuf> = (0..anchor)
        .map(|i| astate.join(format!("console/n{i:04}.cast")))
        .collect();
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let cdir = work.path().join(format!("conserver{round}"));
        // The service's logs from the last round would show chatter at once.
        for f in &acasts {
            let _ = std::fs::remove_file(f);
        }
        // Alternate which starts first.
        let (cons, serve) = if round % 2 == 0 {
            let c = Conserver::start(&cdir, abase, anchor);
            (c, Daemon::start(&alab, &["serve"]))
        } else {
            let s = Daemon::start(&alab, &["serve"]);
            (Conserver::start(&cdir, abase, anchor), s)
        };
        wait_chattering("conserver", &cons.logs, Duration::from_secs(300));
        wait_chattering("petitlab serve (anchor)", &acasts, Duration::from_secs(300));
        std::thread::sleep(Duration::from_secs(5));
        let cpids = cons.pids();
        let (crss, cpss, cn) = memory(&cpids);
        let (prss, ppss, _) = memory(&[serve.pid()]);
        let ratio = crss as f64 / prss as f64;
        ratios.push(ratio);
        println!(
            "  {:7} {:>9.1} MB RSS ({cn:3} procs) {:>9.1} MB RSS {:>12.1}x",
            round + 1,
            mb(crss),
            mb(prss),
            ratio
        );
        println!(
            "  {:7} {:>9.1} MB PSS             {:>9.1} MB PSS {:>12.1}x",
            "",
            mb(cpss),
            mb(ppss),
            cpss as f64 / ppss as f64
        );
        println!("  {:7} conserver's processes: {}", "", kinds(&cpids));
        drop(cons);
        serve.stop();
    }
    asim.stop();
    let _ = std::io::stdout().flush();
}

/// "1 conserver, 100 ipmitool, …": the processes by name.
fn kinds(pids: &[u32]) -> String {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for pid in pids {
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        *by.entry(name.trim().to_string()).or_default() += 1;
    }
    let parts: Vec<String> = by.iter().map(|(n, c)| format!("{c} {n}")).collect();
    parts.join(", ")
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}
