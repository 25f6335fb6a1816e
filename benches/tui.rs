//! The dashboard's costs: frame render time with 1000 nodes (TestBackend,
//! target ≤ 1 ms), memory with 1000 nodes and their consoles (target
//! ≤ 60 MB), and the CPU `petitlab demo` uses while idle in a real terminal
//! (tmux; target ≤ 0.5%).
//!
//! "live": 1000 nodes whose readings arrive spread over 3 s, as from a farm
//! of slow BMCs: frames drawn per second and CPU, first through the App and
//! its frame pacer in this process, then with the real binary in tmux
//! polling `petitlab sim --count 1000` (targets ≤ 30 frames/s, ≤ 2 % of a
//! core once the readings change nothing).
//!
//! `cargo bench --bench tui` (needs tmux).

#[path = "../tests/support/big_lab.rs"]
mod big_lab;
#[path = "../tests/support/lab.rs"]
#[allow(dead_code)]
mod lab;

#[path = "../tests/support/virtual_lab.rs"]
#[allow(dead_code)]
mod virtual_lab;

use std::process::Command;
use std::time::{Duration, Instant};

use petitlab::engine::lab::EngineEvent;
use petitlab::tui::app::{App, Msg};
use petitlab::tui::keymap::Keymap;
use petitlab::tui::pacer::{FRAME, FramePacer};
use petitlab::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use virtual_lab::{Proto, VNode, VirtualLab};

const NODES: usize = 1000;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Enough lines to fill a console's whole scrollback.
fn boot_log(node: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..1200 {
        out.extend(format!("[{:>5}.{:06}] \x1b[32m{node}\x1b[0m: boot line {i} of a petitboot netboot, kexec and kernel\r\n", i / 10, i * 997).into_bytes());
    }
    out.extend(format!("{node} login: ").into_bytes());
    out
}

fn frames(app: &mut App, width: u16, height: u16, count: usize) -> (Duration, Duration) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        // A reading changes each frame, as on a busy lab.
        app.update(Msg::Engine(EngineEvent::Reading {
            node: format!("vnode{:04}", i % NODES),
            power_on: Some(i % 2 == 0),
            boot_device: Some("pxe".into()),
            error: None,
            at: petitlab::engine::store::now_ms(),
        }));
        let start = Instant::now();
        terminal.draw(|f| app.draw(f)).expect("draw");
        times.push(start.elapsed());
    }
    times.sort();
    (times[count / 2], times[count * 99 / 100])
}

/// CPU seconds this process has used.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// One sweep's frames and CPU, in real time: every node's reading arrives
/// once, spread evenly over `SWEEP`, with the one-second tick, drawn as the
/// dashboard's loop draws (the App marks what changed, the pacer caps the
/// frame rate). Returns (frames per second, % of one core).
fn live_sweep(
    app: &mut App,
    terminal: &mut Terminal<TestBackend>,
    names: &[String],
    power_on: bool,
) -> (f64, f64) {
    const SWEEP: Duration = Duration::from_secs(3);
    let mut pacer = FramePacer::new(FRAME);
    let mut owed: Option<Instant> = None;
    let mut frames = 0u32;
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let mut next_tick = start;
    let mut draw = |app: &mut App, pacer: &mut FramePacer, frames: &mut u32| {
        if app.needs_redraw() {
            terminal.draw(|f| app.draw(f)).expect("draw");
            *frames += 1;
        }
        pacer.drawn(Instant::now());
    };
    for (i, name) in names.iter().enumerate() {
        let at = start + SWEEP * i as u32 / names.len() as u32;
        // Sleep until the reading arrives, drawing an owed frame on the way.
        loop {
            let wake = owed.map_or(at, |o| o.min(at)).min(next_tick.max(start));
            let now = Instant::now();
            if wake > now {
                std::thread::sleep(wake - now);
            }
            let now = Instant::now();
            if now >= next_tick {
                app.update(Msg::Tick(petitlab::engine::store::now_ms()));
                next_tick += Duration::from_secs(1);
            }
            if owed.is_some_and(|o| now >= o) {
                owed = None;
                draw(app, &mut pacer, &mut frames);
            }
            if now >= at {
                break;
            }
        }
        app.update(Msg::Engine(EngineEvent::Reading {
            node: name.clone(),
            power_on: Some(power_on),
            boot_device: Some("pxe".into()),
            error: None,
            at: petitlab::engine::store::now_ms(),
        }));
        if app.needs_redraw() && owed.is_none() {
            let now = Instant::now();
            match pacer.due(now) {
                due if due <= now => draw(app, &mut pacer, &mut frames),
                due => owed = Some(due),
            }
        }
    }
    if owed.is_some() {
        std::thread::sleep(FRAME);
        draw(app, &mut pacer, &mut frames);
    }
    let secs = start.elapsed().as_secs_f64();
    (
        f64::from(frames) / secs,
        (cpu_seconds() - cpu0) / secs * 100.0,
    )
}

/// The real binary in tmux: the dashboard (`--local`, polling every BMC
/// itself) on a 1000-node lab whose BMCs are `petitlab sim --count 1000`.
/// Returns (frames per second from its log, % of one core) over 20 s
/// after the first sweeps.
fn live_in_tmux(nodes: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = big_lab::free_udp_base(nodes);
    let lab = big_lab::write_lab(&dir.path().join("lab"), nodes, base);
    let sim = lab::Daemon::start(
        &lab,
        &[
            "sim",
            "--count",
            &nodes.to_string(),
            "--base-port",
            &base.to_string(),
        ],
    );
    let log = dir.path().join("lab/state/petitlab.log");
    let command = format!(
        "RUST_LOG=petitlab::tui=debug exec {} --lab {} --local",
        env!("CARGO_BIN_EXE_petitlab"),
        lab.display()
    );
    let tmux = Tmux::new(dir.path()).expect("tmux is missing: apt-get install tmux");
    let pid = tmux.start(&command).expect("start the dashboard in tmux");
    let ticks = || cpu_ticks(&pid).unwrap_or_else(|| panic!("the dashboard (pid {pid}) is gone"));
    let frame_lines = || -> Vec<(f64, f64)> {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("dashboard frames drawn"))
            .filter_map(|l| {
                let field = |k: &str| -> Option<f64> {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(k))?
                        .parse()
                        .ok()
                };
                Some((field("frames=")?, field("seconds=")?))
            })
            .collect()
    };
    // The first sweeps (sessions opened, every reading new) settle first.
    std::thread::sleep(Duration::from_secs(15));
    let seen = frame_lines().len();
    let (t0, at0) = (ticks(), Instant::now());
    std::thread::sleep(Duration::from_secs(20));
    let (t1, at1) = (ticks(), Instant::now());
    // Frames are logged every 10 s of frames; a quiet dashboard logs
    // nothing new, which is zero frames.
    let later: Vec<(f64, f64)> = frame_lines().into_iter().skip(seen).collect();
    let frames: f64 = later.iter().map(|(f, _)| f).sum();
    drop(tmux);
    drop(sim);
    let secs = (at1 - at0).as_secs_f64();
    (
        frames / secs,
        (t1 - t0) as f64 / ticks_per_s() / secs * 100.0,
    )
}

/// A tmux server of its own (its own socket, no config file), killed when
/// dropped.
struct Tmux {
    bin: String,
    socket: std::path::PathBuf,
}

impl Tmux {
    fn new(dir: &std::path::Path) -> Option<Tmux> {
        Some(Tmux {
            bin: which("tmux")?,
            socket: dir.join("tmux.sock"),
        })
    }

    fn run(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
        Command::new(&self.bin)
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
    }

    /// Runs `command` in a 200x50 session; returns the pane's process id.
    fn start(&self, command: &str) -> Option<String> {
        self.run(&["new-session", "-d", "-x", "200", "-y", "50", command])
            .ok()?;
        let out = self.run(&["list-panes", "-F", "#{pane_pid}"]).ok()?;
        Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// User plus system clock ticks a process has used.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

fn idle_cpu_of_demo() -> Option<f64> {
    let dir = tempfile::tempdir().ok()?;
    let demo_dir = dir.path().join("demo");
    let command = format!(
        "exec {} demo --dir {}",
        env!("CARGO_BIN_EXE_petitlab"),
        demo_dir.display()
    );
    let tmux = Tmux::new(dir.path())?;
    let pid = tmux.start(&command)?;
    // Let it start and settle (first sweep, first draw).
    std::thread::sleep(Duration::from_secs(5));
    let (t0, at0) = (cpu_ticks(&pid), Instant::now());
    std::thread::sleep(Duration::from_secs(20));
    let (t1, at1) = (cpu_ticks(&pid), Instant::now());
    drop(tmux);
    Some((t1? - t0?) as f64 / ticks_per_s() / (at1 - at0).as_secs_f64() * 100.0)
}

fn which(name: &str) -> Option<String> {
    let out = Command::new("which").arg(name).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let nodes = (0..NODES)
        .map(|i| {
            VNode::new(
                &format!("vnode{i:04}"),
                if i % 2 == 0 { Proto::Http } else { Proto::Tftp },
                i % 4 == 3,
                i,
            )
        })
        .collect();
    let v = VirtualLab::new(nodes, 16, "");
    let (lab, _) = petitlab::inventory::load_valid(&v.lab).expect("lab");
    let before = rss_mib();
    let mut app = App::new(&lab, Theme::dark(), Keymap::default(), false);
    for (i, node) in lab.nodes.iter().enumerate() {
        app.update(Msg::Engine(EngineEvent::PowerDraw {
            node: node.name.clone(),
            watts: 300 + (i % 200) as u16,
            at: 0,
        }));
    }
    let (p50, p99) = frames(&mut app, 200, 60, 500);
    let (s50, s99) = frames(&mut app, 80, 24, 500);
    // A console wall over the first nodes (as many as a 200x60 terminal
    // tiles), then every node's console talks; only watched ones keep a screen.
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
    app.update(Msg::Resize(200, 60));
    let wall = crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('w'),
        crossterm::event::KeyModifiers::NONE,
    );
    app.update(Msg::Key(wall));
    terminal.draw(|f| app.draw(f)).expect("draw");
    for node in &lab.nodes {
        app.update(Msg::Engine(EngineEvent::ConsoleData {
            node: node.name.clone(),
            bytes: boot_log(&node.name),
        }));
    }
    terminal.draw(|f| app.draw(f)).expect("draw");
    let watched = app.console_screens();
    let after = rss_mib();
    println!("tui: {NODES} nodes");
    println!(
        "  frame render 200x60: p50 {:.3} ms, p99 {:.3} ms (target ≤ 1 ms)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    println!(
        "  frame render 80x24:  p50 {:.3} ms, p99 {:.3} ms",
        s50.as_secs_f64() * 1e3,
        s99.as_secs_f64() * 1e3
    );
    println!(
        "  memory: {:.1} MiB for the app with {NODES} nodes and a wall of {watched} consoles, scrollback full ({:.1} MiB process RSS; target ≤ 60 MB)",
        after - before,
        after
    );
    // ---- live: readings spread over 3 s ----
    let names: Vec<String> = lab.nodes.iter().map(|n| n.name.clone()).collect();
    let mut app = App::new(&lab, Theme::dark(), Keymap::default(), false);
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
    app.update(Msg::Resize(200, 60));
    terminal.draw(|f| app.draw(f)).expect("draw");
    let (fps1, cpu1) = live_sweep(&mut app, &mut terminal, &names, true);
    let (fps2, cpu2) = live_sweep(&mut app, &mut terminal, &names, true);
    let (fps3, cpu3) = live_sweep(&mut app, &mut terminal, &names, false);
    println!("  live, {NODES} readings spread over 3 s (App + frame pacer, 200x60):");
    println!(
        "    first sweep, every power reading new: {fps1:.1} frames/s, {cpu1:.2}% of one core"
    );
    println!(
        "    next sweep, every reading the same:   {fps2:.1} frames/s, {cpu2:.2}% of one core"
    );
    println!(
        "    every node powers off:                {fps3:.1} frames/s, {cpu3:.2}% of one core"
    );
    println!("    (targets ≤ 30 frames/s; ≤ 2% of one core when nothing changes)");
    let (fps, cpu) = live_in_tmux(NODES);
    println!(
        "  live, real binary in tmux polling `petitlab sim --count {NODES}` (--local): \
         {fps:.1} frames/s, {cpu:.2}% of one core over 20 s"
    );
    match idle_cpu_of_demo() {
        Some(cpu) => println!(
            "  petitlab demo idle in tmux: {cpu:.2}% of one core over 20 s (target ≤ 0.5%)"
        ),
        None => panic!("could not run petitlab demo in tmux (is tmux installed?)"),
    }
}
