//! The dashboard's costs: frame render time with 1000 nodes (TestBackend,
//! target ≤ 1 ms), memory with 1000 nodes and their consoles (target
//! ≤ 60 MB), and the CPU `petitlab demo` uses while idle in a real terminal
//! (tmux; target ≤ 0.5%).
//!
//! `cargo bench --bench tui` (needs tmux).

#[path = "../tests/support/virtual_lab.rs"]
#[allow(dead_code)]
mod virtual_lab;

use std::process::Command;
use std::time::{Duration, Instant};

use petitlab::engine::lab::EngineEvent;
use petitlab::tui::app::{App, Msg};
use petitlab::tui::keymap::Keymap;
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

fn idle_cpu_of_demo() -> Option<f64> {
    let tmux = which("tmux")?;
    let dir = tempfile::tempdir().ok()?;
    let socket = dir.path().join("tmux.sock");
    let demo_dir = dir.path().join("demo");
    let command = format!(
        "exec {} demo --dir {}",
        env!("CARGO_BIN_EXE_petitlab"),
        demo_dir.display()
    );
    let tmux_cmd = |args: &[&str]| {
        Command::new(&tmux)
            .arg("-S")
            .arg(&socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
    };
    tmux_cmd(&["new-session", "-d", "-x", "200", "-y", "50", &command]).ok()?;
    let pid =
        String::from_utf8(tmux_cmd(&["list-panes", "-F", "#{pane_pid}"]).ok()?.stdout).ok()?;
    let pid = pid.trim().to_string();
    let ticks = || -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    };
    // Let it start and settle (first sweep, first draw).
    std::thread::sleep(Duration::from_secs(5));
    let (t0, at0) = (ticks(), Instant::now());
    std::thread::sleep(Duration::from_secs(20));
    let (t1, at1) = (ticks(), Instant::now());
    let _ = tmux_cmd(&["kill-server"]);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((t1? - t0?) as f64 / hz / (at1 - at0).as_secs_f64() * 100.0)
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
    match idle_cpu_of_demo() {
        Some(cpu) => println!(
            "  petitlab demo idle in tmux: {cpu:.2}% of one core over 20 s (target ≤ 0.5%)"
        ),
        None => panic!("could not run petitlab demo in tmux (is tmux installed?)"),
    }
}
