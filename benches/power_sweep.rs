//! Power over many BMCs, petitlab against freeipmi's `ipmipower -F 128` on
//! the same `host:port` targets in the same run, rounds interleaved (A B A
//! B …) so drift in the machine's load lands on both sides; each pair's
//! ratio and the median are printed.
//!
//! Two farms:
//! 1. petitlab's own simulator (cipher 17), in this process: answers in
//!    microseconds, so it measures the clients. petitlab's poller (one
//!    persistent session per BMC) against `ipmipower --stat`.
//! 2. OpenIPMI `ipmi_sim` (cipher 3): `PER_PROCESS` BMCs per process, each
//!    status and control answered through a `chassis_control` hook (a
//!    forked shell script, as a BMC with a real power backend has to do
//!    something). The real `petitlab --local power --all status|on|off`
//!    process against `ipmipower --stat|--on|--off`, cold (each tool's
//!    first run) then warm; and petitlab's poller warm sweep. CPU of the
//!    ipmi_sim processes (hooks included) and of the client is printed per
//!    run, to tell which side limits.
//!
//! `cargo bench --bench power_sweep` (env BMCS, SIM_BMCS, PER_PROCESS,
//! PAIRS to change the sizes; CASES=status,on,off,poller for some cases; FARMS=sim or FARMS=ipmi_sim for one farm).

#[path = "../tests/support/ipmi_sim_farm.rs"]
#[allow(dead_code)]
mod ipmi_sim_farm;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use petitlab::engine::poller::{Poller, PollerConfig, Reading};
use petitlab::ipmi::{CipherChoice, CipherSuite, Credentials, Target, Timing};
use petitlab::sim::{BmcSpec, Sim};

const USER: &str = "admin";
const PASSWORD: &str = "password";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The sum of two fields of /proc/self/stat, counted after the command
/// name (field 11 is utime).
fn self_stat_sum(a: usize, b: usize) -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f[a] + f[b]
}

/// CPU ticks of this process's reaped children (cutime + cstime).
fn children_ticks() -> u64 {
    self_stat_sum(13, 14)
}

/// CPU ticks of this process itself (utime + stime).
fn own_ticks() -> u64 {
    self_stat_sum(11, 12)
}

fn tick_ms() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on Linux.
    10.0
}

fn ipmipower(hosts: &str, cipher: &str, workaround: bool, op: &str) -> Output {
    let mut cmd = Command::new("ipmipower");
    cmd.args(["-D", "LAN_2_0", "-I", cipher, "-u", USER, "-p", PASSWORD]);
    if workaround {
        // ipmi_sim answers Open Session with privilege 4 (see the farm).
        cmd.args(["-W", "opensesspriv"]);
    }
    cmd.args(["-F", "128", "-h", hosts])
        .args(op.split_whitespace())
        .stdin(Stdio::null())
        .output()
        .expect("run ipmipower (apt-get install freeipmi-tools)")
}

/// Lines of `stdout` that end with `suffix`.
fn count_lines(out: &Output, suffix: &str) -> usize {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(suffix))
        .count()
}

fn main() {
    let farms = std::env::var("FARMS").unwrap_or_default();
    let pairs = env("PAIRS", 5);
    println!("power_sweep: load average at start {}", loadavg());
    if farms.is_empty() || farms == "sim" {
        sim_farm(env("SIM_BMCS", env("BMCS", 1000)), pairs);
    }
    if farms.is_empty() || farms == "ipmi_sim" {
        ipmi_sim_farm(env("BMCS", 1000), env("PER_PROCESS", 100), pairs);
    }
    println!("power_sweep: load average at end {}", loadavg());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn targets(
    addrs: &[std::net::SocketAddr],
    suite: CipherSuite,
) -> Vec<(String, Result<petitlab::hardware::Target, String>)> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let target = Target {
                addr: *addr,
                credentials: Credentials {
                    username: USER.into(),
                    password: PASSWORD.into(),
                },
                cipher: CipherChoice::Fixed(suite),
                timing: Timing::default(),
            };
            (
                format!("bmc{i}"),
                Ok(petitlab::hardware::Target::Ipmi(target)),
            )
        })
        .collect()
}

/// The poller's first sweep (opens every session) and then `pairs` warm
/// sweeps interleaved with `ipmipower --stat` runs.
fn poller_vs_ipmipower(
    rt: &tokio::runtime::Runtime,
    addrs: &[std::net::SocketAddr],
    suite: CipherSuite,
    pairs: usize,
    ipmi_sim: Option<&ipmi_sim_farm::Farm>,
) {
    let count = addrs.len();
    let config = PollerConfig {
        boot_flags: false,
        ..PollerConfig::default()
    };
    let mut poller = Poller::new(targets(addrs, suite), config);
    let start = Instant::now();
    let first = rt.block_on(poller.sweep());
    let cold = start.elapsed();
    let ok = first
        .changes
        .iter()
        .filter(|u| matches!(u.reading, Reading::Ok { .. }))
        .count();
    assert_eq!(ok, count, "every BMC must answer the first sweep");
    println!(
        "  petitlab poller, first sweep (opens {count} sessions): {:.1} ms",
        ms(cold)
    );
    let hosts: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let hosts = hosts.join(",");
    let (cipher, workaround) = match suite {
        CipherSuite::Suite3 => ("3", true),
        _ => ("17", false),
    };
    let mut ratios = Vec::new();
    for pair in 1..=pairs {
        let farm0 = ipmi_sim.map_or(0, |f| f.cpu_ticks());
        let own0 = own_ticks();
        let start = Instant::now();
        let sweep = rt.block_on(poller.sweep());
        let ours = start.elapsed();
        let own = own_ticks() - own0;
        let farm_ours = ipmi_sim.map_or(0, |f| f.cpu_ticks()) - farm0;
        assert!(sweep.changes.is_empty(), "nothing changed between sweeps");

        let farm0 = ipmi_sim.map_or(0, |f| f.cpu_ticks());
        let child0 = children_ticks();
        let start = Instant::now();
        let out = ipmipower(&hosts, cipher, workaround, "--stat");
        let theirs = start.elapsed();
        let their_cpu = children_ticks() - child0;
        let farm_theirs = ipmi_sim.map_or(0, |f| f.cpu_ticks()) - farm0;
        let answered = count_lines(&out, ": on") + count_lines(&out, ": off");
        let ratio = theirs.as_secs_f64() / ours.as_secs_f64();
        ratios.push(ratio);
        let farm_note = if ipmi_sim.is_some() {
            format!(
                " | ipmi_sim CPU {:.0} / {:.0} ms",
                farm_ours as f64 * tick_ms(),
                farm_theirs as f64 * tick_ms()
            )
        } else {
            String::new()
        };
        println!(
            "  pair {pair}: poller warm sweep {:.1} ms (CPU {:.0} ms) | ipmipower --stat {:.1} ms (CPU {:.0} ms, {answered}/{count} answered){farm_note} | {ratio:.2}x",
            ms(ours),
            own as f64 * tick_ms(),
            ms(theirs),
            their_cpu as f64 * tick_ms(),
        );
    }
    println!(
        "  median: poller warm sweep is {:.2}x ipmipower --stat's speed (load {})",
        median(ratios),
        loadavg()
    );
    rt.block_on(poller.close());
}

fn sim_farm(count: usize, pairs: usize) {
    let rt = runtime();
    let specs = (0..count)
        .map(|i| BmcSpec::new(&format!("bmc{i}"), 0, USER, PASSWORD))
        .collect();
    let sim = rt.block_on(Sim::start(specs)).expect("start the simulator");
    let addrs: Vec<_> = (0..count).map(|i| sim.addr(i)).collect();
    println!(
        "\n[farm 1] {count} BMCs of petitlab's simulator, in this process (cipher 17); load {}",
        loadavg()
    );
    poller_vs_ipmipower(&rt, &addrs, CipherSuite::Suite17, pairs, None);
    rt.block_on(sim.shutdown());
}

fn petitlab(lab: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--local")
        .arg("--lab")
        .arg(lab)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run petitlab")
}

/// One timed whole-process run: wall time, the process's CPU, the farm's.
struct Run {
    wall: Duration,
    cpu_ms: f64,
    farm_ms: f64,
    out: Output,
}

fn timed(farm: &ipmi_sim_farm::Farm, run: impl FnOnce() -> Output) -> Run {
    let farm0 = farm.cpu_ticks();
    let child0 = children_ticks();
    let start = Instant::now();
    let out = run();
    let wall = start.elapsed();
    Run {
        wall,
        cpu_ms: (children_ticks() - child0) as f64 * tick_ms(),
        farm_ms: (farm.cpu_ticks() - farm0) as f64 * tick_ms(),
        out,
    }
}

/// How a whole-process case starts, what it runs, and what a good answer
/// from each tool looks like.
struct Case {
    name: &'static str,
    petitlab: &'static str,
    ipmipower: &'static str,
    /// Every chassis is set to this before each run (None: left alone).
    before: Option<bool>,
    /// Every chassis must be this after each run.
    after: Option<bool>,
    /// What each of petitlab's lines ends with.
    ours_ok: &'static [&'static str],
    /// What each of ipmipower's lines ends with.
    theirs_ok: &'static [&'static str],
}

fn ipmi_sim_farm(count: usize, per_process: usize, pairs: usize) {
    let farm = ipmi_sim_farm::Farm::start(count, per_process);
    println!(
        "\n[farm 2] {count} OpenIPMI ipmi_sim BMCs, {per_process} per process ({} processes), \
         cipher 3, power through a chassis_control hook; load {}",
        farm.processes(),
        loadavg()
    );
    let dir = tempfile::tempdir().unwrap();
    let lab = farm.write_lab(dir.path());
    let hosts: Vec<String> = (0..count).map(|i| farm.addr(i).to_string()).collect();
    let hosts = hosts.join(",");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Startup: one node's status is one session with one BMC (a few ms);
    // the rest of the process's time is loading the lab and starting.
    let mut one = Vec::new();
    for _ in 0..5 {
        let run = timed(&farm, || petitlab(&lab, &["power", "n0000", "status"]));
        assert!(run.out.status.success(), "{:?}", run.out);
        one.push((ms(run.wall), run.cpu_ms));
    }
    let lone = median(one.iter().map(|o| o.0).collect());
    println!(
        "  startup: `petitlab --local power n0000 status` on this {count}-node lab: median {lone:.1} ms \
         (CPU {:.0} ms): lab loading and process start, plus one BMC's session",
        median(one.iter().map(|o| o.1).collect())
    );

    let cases = [
        Case {
            name: "status",
            petitlab: "status",
            ipmipower: "--stat",
            before: None,
            after: None,
            ours_ok: &[": on", ": off"],
            theirs_ok: &[": on", ": off"],
        },
        Case {
            name: "on (from off)",
            petitlab: "on",
            ipmipower: "--on",
            before: Some(false),
            after: Some(true),
            ours_ok: &["power is on"],
            theirs_ok: &[": ok"],
        },
        Case {
            name: "off (from on)",
            petitlab: "off",
            ipmipower: "--off",
            before: Some(true),
            after: Some(false),
            ours_ok: &["power is off"],
            theirs_ok: &[": ok"],
        },
        // ipmipower's own verification, what petitlab's read after does.
        Case {
            name: "on (from off), verified",
            petitlab: "on",
            ipmipower: "--on --wait-until-on",
            before: Some(false),
            after: Some(true),
            ours_ok: &["power is on"],
            theirs_ok: &[": ok"],
        },
        Case {
            name: "on (already on)",
            petitlab: "on",
            ipmipower: "--on",
            before: Some(true),
            after: Some(true),
            ours_ok: &["on (already)"],
            theirs_ok: &[": ok"],
        },
    ];
    // Half the chassis on for the status case.
    for i in 0..count {
        farm.set_power(i, i % 2 == 0);
    }
    let prepare = |state: Option<bool>| {
        if let Some(on) = state {
            for i in 0..count {
                farm.set_power(i, on);
            }
        }
    };
    let check = |case: &Case, who: &str| -> usize {
        let Some(on) = case.after else { return 0 };
        let wrong = (0..count).filter(|&i| farm.power(i) != on).count();
        if wrong > 0 {
            println!(
                "    {who}: {wrong} chassis not {} after {}",
                if on { "on" } else { "off" },
                case.name
            );
        }
        wrong
    };
    let only = std::env::var("CASES").unwrap_or_default();
    for case in cases
        .iter()
        .filter(|c| only.is_empty() || only.split(',').any(|o| c.name.starts_with(o)))
    {
        println!(
            "  power --all {} vs ipmipower {} (load {}):",
            case.name,
            case.ipmipower,
            loadavg()
        );
        let mut ratios = Vec::new();
        // Pairs where both tools answered for every BMC.
        let mut clean = Vec::new();
        let (mut our_cores, mut their_cores) = (Vec::new(), Vec::new());
        // Round 0 is cold: each tool's first run of this case.
        for pair in 0..=pairs {
            prepare(case.before);
            let ours = timed(&farm, || petitlab(&lab, &["power", "--all", case.petitlab]));
            let ours_good = case
                .ours_ok
                .iter()
                .map(|s| count_lines(&ours.out, s))
                .sum::<usize>();
            let ours_wrong = check(case, "petitlab");
            if ours_good != count {
                println!(
                    "    petitlab: {ours_good}/{count} good answers; stderr: {}",
                    String::from_utf8_lossy(&ours.out.stderr)
                        .lines()
                        .take(5)
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
            }
            prepare(case.before);
            let theirs = timed(&farm, || ipmipower(&hosts, "3", true, case.ipmipower));
            let theirs_good = case
                .theirs_ok
                .iter()
                .map(|s| count_lines(&theirs.out, s))
                .sum::<usize>();
            let theirs_wrong = check(case, "ipmipower");
            let ratio = theirs.wall.as_secs_f64() / ours.wall.as_secs_f64();
            let label = if pair == 0 {
                "cold  ".to_string()
            } else {
                ratios.push(ratio);
                if ours_good == count && theirs_good == count {
                    clean.push(ratio);
                }
                our_cores.push(ours.farm_ms / ms(ours.wall));
                their_cores.push(theirs.farm_ms / ms(theirs.wall));
                format!("pair {pair}")
            };
            println!(
                "    {label}: petitlab {:.0} ms (CPU {:.0} ms, farm {:.0} ms, {ours_good}/{count} ok{}) | \
                 ipmipower {:.0} ms (CPU {:.0} ms, farm {:.0} ms, {theirs_good}/{count} ok{}) | {ratio:.2}x",
                ms(ours.wall),
                ours.cpu_ms,
                ours.farm_ms,
                if ours_wrong > 0 {
                    format!(", {ours_wrong} wrong")
                } else {
                    String::new()
                },
                ms(theirs.wall),
                theirs.cpu_ms,
                theirs.farm_ms,
                if theirs_wrong > 0 {
                    format!(", {theirs_wrong} wrong")
                } else {
                    String::new()
                },
            );
        }
        println!(
            "    median of {pairs} warm pairs: petitlab is {:.2}x ipmipower's speed; of the {} clean pairs \
             (every BMC answered both): {} (load {})",
            median(ratios),
            clean.len(),
            if clean.is_empty() {
                "none".to_string()
            } else {
                format!("{:.2}x", median(clean))
            },
            loadavg()
        );
        println!(
            "    the ipmi_sim processes kept {:.2} of {cores} cores busy during petitlab's runs, \
             {:.2} during ipmipower's (medians): near the cores the machine has left, the farm is the limit",
            median(our_cores),
            median(their_cores),
        );
    }

    if !only.is_empty() && !only.split(',').any(|o| o == "poller") {
        return;
    }
    println!("  petitlab's poller (persistent sessions) vs ipmipower --stat on this farm:");
    let rt = runtime();
    let addrs: Vec<_> = (0..count).map(|i| farm.addr(i)).collect();
    poller_vs_ipmipower(&rt, &addrs, CipherSuite::Suite3, pairs, Some(&farm));
    let idle0 = farm.cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "  ipmi_sim farm CPU while idle: {:.0} ms a second",
        (farm.cpu_ticks() - idle0) as f64 * tick_ms()
    );
}
