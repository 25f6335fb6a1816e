//! Scale run of the lifecycle: N virtual nodes (default 100) deployed at once
//! through `petitlab deploy`, against `petitlab serve` and `petitlab sim` (BMCs
//! and virtual petitboot hosts that fetch configs, kernels and images for
//! real), then undeployed. Reports wall times and each process's peak RSS.
//! Target: 100 nodes deployed in ≤ 60 s.
//!
//! `cargo bench --bench deploy_scale` (env NODES=N, IMAGE_KIB=K).

#[path = "../tests/support/lab.rs"]
#[allow(dead_code)]
mod lab;
#[path = "../tests/support/virtual_lab.rs"]
#[allow(dead_code)]
mod virtual_lab;

use std::process::{Command, Stdio};
use std::time::Instant;

use lab::Daemon;
use virtual_lab::{Proto, VNode, VirtualLab};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak RSS (VmHWM) of a running process, in MiB.
fn peak_rss(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Runs `petitlab ARGS` to completion; returns (seconds, peak RSS MiB).
// The child is reaped by wait4, which also reports its own peak RSS.
#[allow(clippy::zombie_processes)]
fn timed(lab: &std::path::Path, args: &[String]) -> (f64, f64) {
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(lab)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start petitlab");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; status and usage are valid out-pointers.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(waited, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "petitlab {} failed (status {status})",
        args[0]
    );
    (seconds, usage.ru_maxrss as f64 / 1024.0)
}

fn main() {
    let count = env("NODES", 100);
    let image_kib = env("IMAGE_KIB", 1024);
    let nodes: Vec<VNode> = (0..count)
        .map(|i| {
            let proto = if i % 2 == 0 { Proto::Http } else { Proto::Tftp };
            VNode::new(&format!("vnode{i:03}"), proto, i % 4 == 3, i)
        })
        .collect();
    let deploy = "[deploy]\ncallback_timeout = 120\nheartbeat = 5\nboot_timeout = 120\n";
    let v = VirtualLab::new(nodes, image_kib << 10, deploy);
    let serve = Daemon::start(&v.lab, &["serve"]);
    let sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "10"]);
    let names: Vec<String> = v.nodes.iter().map(|n| n.name.clone()).collect();

    let mut args = vec!["deploy".to_string()];
    args.extend(names.iter().cloned());
    let (deploy_s, deploy_rss) = timed(&v.lab, &args);
    for node in &v.nodes {
        let disk = std::fs::read(v.disk(&node.name)).expect("virtual disk");
        assert!(
            disk == std::fs::read(v.image(&node.name)).unwrap(),
            "{}: disk differs",
            node.name
        );
    }
    args[0] = "undeploy".into();
    let (undeploy_s, undeploy_rss) = timed(&v.lab, &args);
    let (serve_rss, sim_rss) = (peak_rss(serve.pid()), peak_rss(sim.pid()));
    serve.stop();
    sim.stop();

    println!(
        "deploy_scale: {count} virtual nodes, {image_kib} KiB images (half HTTP, half TFTP; a quarter netboot)"
    );
    println!(
        "  deploy to active:      {deploy_s:6.1} s  (target ≤ 60 s)  petitlab deploy peak RSS {deploy_rss:.0} MiB"
    );
    println!(
        "  undeploy to available: {undeploy_s:6.1} s                    petitlab undeploy peak RSS {undeploy_rss:.0} MiB"
    );
    println!(
        "  petitlab serve peak RSS {serve_rss:.0} MiB, petitlab sim peak RSS {sim_rss:.0} MiB"
    );
    assert!(
        deploy_s <= 60.0,
        "deploying {count} nodes took {deploy_s:.1} s (target ≤ 60 s)"
    );
}
