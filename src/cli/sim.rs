//! `petitlab sim`: run simulated BMCs on 127.0.0.1 until interrupted — the
//! lab's own nodes (from lab.toml) or `--count N` anonymous ones. A lab's
//! nodes get a virtual OpenPOWER host (virtual petitboot + deploy agent)
//! that netboots from the lab's DHCP files and servers onto a disk file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use petitlab::inventory::Lab;
use petitlab::sim::lab::{LabSim, NodeFaults, specs_for_lab};
use petitlab::sim::{BmcSpec, Fault, HostFault, Sim};

use super::out::outln;

/// Credentials of `--count` BMCs unless overridden: a simulator's, not a secret.
pub const DEFAULT_USER: &str = "admin";
pub const DEFAULT_PASSWORD: &str = "password";

pub struct Options {
    pub count: Option<usize>,
    pub base_port: u16,
    pub user: String,
    /// Environment variable holding the password of `--count` BMCs.
    pub password_env: Option<String>,
    /// Where the lab's virtual disks live (default `<state_dir>/sim/disks`).
    pub disks: Option<PathBuf>,
    /// `NODE=KIND` fault injections.
    pub faults: Vec<String>,
    /// Pause after each line a host prints (default: the simulator's).
    pub line_delay_ms: Option<u64>,
    /// `NODE=ADDR`: the node's host is a QEMU guest whose BMC chardev
    /// connects here.
    pub vm_bmc: Vec<String>,
    /// Chatter lines a second over all hosts (0: none).
    pub chatter: f64,
}

/// The BMC's fault kinds, beside the host's ([`HostFault`]).
const BMC_FAULTS: [&str; 2] = ["bmc-silent", "redfish-keeps-once"];

/// Every `--fault` kind, for "known:" messages.
fn known_faults() -> String {
    format!("{}, {}", HostFault::known(), BMC_FAULTS.join(", "))
}

/// `--fault NODE=KIND`, each node checked against the lab (`petitlab sim`
/// and `petitlab demo`).
pub(crate) fn parse_faults(
    lab: &Lab,
    faults: &[String],
) -> anyhow::Result<HashMap<String, NodeFaults>> {
    let mut out: HashMap<String, NodeFaults> = HashMap::new();
    for fault in faults {
        let Some((node, kind)) = fault.split_once('=') else {
            bail!(
                "--fault {fault:?}: expected NODE=KIND (KIND: {})",
                known_faults()
            );
        };
        if lab.node(node).is_none() {
            let known: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
            bail!(
                "--fault {fault:?}: no node named {node:?} in {} (nodes: {})",
                lab.path.display(),
                known.join(", ")
            );
        }
        let entry = out.entry(node.to_string()).or_default();
        match kind {
            "bmc-silent" => entry.bmc = Fault::Silent,
            "redfish-keeps-once" => entry.redfish_keeps_once = true,
            other => match other.parse::<HostFault>() {
                Ok(HostFault::None) | Err(_) => bail!(
                    "--fault {fault:?}: unknown fault kind {other:?} (known: {})",
                    known_faults()
                ),
                Ok(host) => entry.host = host,
            },
        }
    }
    Ok(out)
}

/// `--vm-bmc NODE=ADDR`, each node checked against the lab and each
/// address on loopback (the simulator serves 127.0.0.1 only).
fn parse_vm_bmc(lab: &Lab, links: &[String]) -> anyhow::Result<HashMap<String, SocketAddr>> {
    let mut out = HashMap::new();
    for link in links {
        let Some((node, addr)) = link.split_once('=') else {
            bail!("--vm-bmc {link:?}: expected NODE=ADDR, e.g. p9-rack1-01=127.0.0.1:9002");
        };
        if lab.node(node).is_none() {
            let known: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
            bail!(
                "--vm-bmc {link:?}: no node named {node:?} in {} (nodes: {})",
                lab.path.display(),
                known.join(", ")
            );
        }
        let addr: SocketAddr = addr
            .parse()
            .map_err(|e| anyhow::anyhow!("--vm-bmc {link:?}: {addr:?} is not IP:PORT ({e})"))?;
        if !addr.ip().is_loopback() {
            bail!(
                "--vm-bmc {link:?}: {addr} is not on loopback; the simulator listens on 127.0.0.1 only"
            );
        }
        if out.insert(node.to_string(), addr).is_some() {
            bail!("--vm-bmc {link:?}: node {node} is given twice");
        }
    }
    Ok(out)
}

fn counted_specs(opts: &Options, count: usize) -> anyhow::Result<Vec<BmcSpec>> {
    let password = match &opts.password_env {
        Some(var) => std::env::var(var)
            .with_context(|| format!("--password-env: environment variable {var} is not set"))?,
        None => DEFAULT_PASSWORD.to_string(),
    };
    let last = opts.base_port as usize + count.saturating_sub(1);
    if count == 0 || last > u16::MAX as usize {
        bail!(
            "--count {count} from --base-port {} does not fit in the port range",
            opts.base_port
        );
    }
    Ok((0..count)
        .map(|i| {
            let port = opts.base_port + i as u16;
            BmcSpec::new(&format!("bmc{i}"), port, &opts.user, &password)
        })
        .collect())
}

pub async fn run(lab: Option<&Lab>, opts: Options) -> anyhow::Result<ExitCode> {
    // A socket per simulated BMC (and per virtual host's connections).
    petitlab::serve::limits::raise_descriptor_limit();
    if opts.chatter < 0.0 || !opts.chatter.is_finite() {
        bail!(
            "--chatter {}: expected lines a second, 0 or more",
            opts.chatter
        );
    }
    let faults = match (opts.count, lab) {
        (None, Some(lab)) => parse_faults(lab, &opts.faults)?,
        _ => HashMap::new(),
    };
    let with_disks = match (opts.count, lab) {
        (Some(_), _)
            if !opts.faults.is_empty() || opts.disks.is_some() || !opts.vm_bmc.is_empty() =>
        {
            bail!("--fault, --disks and --vm-bmc apply to a lab's nodes, not to --count BMCs")
        }
        (Some(count), _) => counted_specs(&opts, count)?
            .into_iter()
            .map(|spec| (spec, PathBuf::new()))
            .collect(),
        (None, Some(lab)) => {
            let mut sim = LabSim::new(lab);
            if let Some(dir) = &opts.disks {
                sim.disks = dir.clone();
            }
            sim.faults = faults.clone();
            sim.vm_bmc = parse_vm_bmc(lab, &opts.vm_bmc)?;
            specs_for_lab(lab, &sim)?
        }
        (None, None) => bail!("give --count N, or a lab.toml whose nodes to simulate"),
    };
    let (mut specs, disks): (Vec<BmcSpec>, Vec<PathBuf>) = with_disks.into_iter().unzip();
    if let Some(ms) = opts.line_delay_ms {
        for spec in &mut specs {
            spec.line_delay = Duration::from_millis(ms);
        }
    }
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let sim = Sim::start(specs).await.context("starting the simulator")?;
    if opts.count.is_some() {
        let (first, last) = (sim.addr(0), sim.addr(sim.len() - 1));
        outln!(
            "petitlab sim: {} BMCs on {}..{} (user {}, cipher suites 17 and 3)",
            sim.len(),
            first,
            last.port(),
            opts.user
        );
    } else {
        for (i, (name, disk)) in names.iter().zip(&disks).enumerate() {
            let guest = match sim.vm_addr(i) {
                Some(addr) => format!(", guest BMC link (ipmi-bmc-extern) on {addr}"),
                None => String::new(),
            };
            outln!(
                "petitlab sim: {name}: BMC on {}, disk {}{guest}",
                sim.addr(i),
                disk.display()
            );
        }
    }
    // Kept until the simulator stops: dropping one stops it.
    let redfish = match lab.filter(|_| opts.count.is_none()) {
        Some(lab) => petitlab::sim::lab::start_redfish(&sim, lab, &faults).await?,
        None => Vec::new(),
    };
    for (name, front) in &redfish {
        outln!(
            "petitlab sim: {name}: Redfish on https://{} (CA {}), SSH console on {}",
            front.https,
            front.ca_pem.display(),
            front.ssh
        );
    }
    let chatter = (opts.chatter > 0.0).then(|| spawn_chatter(&sim, opts.chatter));
    outln!("petitlab sim: running; Ctrl-C stops");
    super::wait_for_stop().await?;
    if let Some(chatter) = chatter {
        chatter.abort();
    }
    for (_, front) in redfish {
        front.shutdown().await;
    }
    sim.shutdown().await;
    outln!("petitlab sim: stopped");
    Ok(ExitCode::SUCCESS)
}

/// `--chatter N`: the hosts print N lines a second in all; SIGUSR1 pauses
/// and resumes them.
fn spawn_chatter(sim: &Sim, rate: f64) -> tokio::task::JoinHandle<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::signal::unix::{SignalKind, signal};

    let ports = (0..sim.len()).map(|i| sim.serial(i)).collect();
    let paused = Arc::new(AtomicBool::new(false));
    let toggle = paused.clone();
    outln!("petitlab sim: hosts chatter {rate} lines/s in all; SIGUSR1 pauses and resumes");
    tokio::spawn(async move {
        let lines = petitlab::sim::chatter::run(ports, rate, paused);
        let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
            return lines.await;
        };
        tokio::pin!(lines);
        loop {
            tokio::select! {
                () = &mut lines => return,
                Some(()) = usr1.recv() => {
                    let now = !toggle.fetch_xor(true, Ordering::Relaxed);
                    outln!("petitlab sim: chatter {}", if now { "paused" } else { "resumed" });
                }
            }
        }
    })
}
