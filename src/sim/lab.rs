//! The simulator for a lab.toml's nodes: one BMC per node on its loopback
//! port, each with a virtual OpenPOWER host that netboots from the lab's
//! DHCP files and servers onto its own disk file. Used by `petitlab sim`
//! and by the in-process demo lab.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{BmcSpec, DhcpLog, Fault, HostFault, VirtualHost, virtual_firmware};
use crate::inventory::{self, Lab, Node};
use crate::ipmi::CipherSuite;

/// The faults injected into one node: its BMC's and its host's.
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeFaults {
    pub bmc: Fault,
    pub host: HostFault,
    /// The Redfish front end keeps a one-shot boot override (sushy-tools').
    pub redfish_keeps_once: bool,
}

#[derive(Debug, Clone)]
pub struct LabSim {
    /// Where the nodes' virtual disks live.
    pub disks: PathBuf,
    pub faults: HashMap<String, NodeFaults>,
    /// Pause after each console line (default: the simulator's).
    pub line_delay: Option<Duration>,
    /// Nodes whose host is a QEMU guest: where each listens for the
    /// guest's `ipmi-bmc-extern` chardev (see [`super::BmcSpec::vm_listen`]).
    pub vm_bmc: HashMap<String, SocketAddr>,
    /// How long a BMC reset leaves each BMC silent (default: the
    /// simulator's, or [`BMC_RESET_PAUSE_ENV`] in milliseconds).
    pub bmc_reset_pause: Option<Duration>,
}

/// Environment variable that sets the BMC reset pause of `petitlab sim`
/// and the demo, in milliseconds (tests shorten or lengthen it).
pub const BMC_RESET_PAUSE_ENV: &str = "PETITLAB_SIM_BMC_RESET_MS";

/// The pause [`BMC_RESET_PAUSE_ENV`] asks for, if it holds a number.
fn bmc_reset_pause_from_env() -> Option<Duration> {
    let value = std::env::var(BMC_RESET_PAUSE_ENV).ok()?;
    match value.trim().parse::<u64>() {
        Ok(ms) => Some(Duration::from_millis(ms.min(600_000))),
        Err(_) => {
            tracing::warn!(
                variable = BMC_RESET_PAUSE_ENV,
                "not a number of milliseconds; ignored"
            );
            None
        }
    }
}

impl LabSim {
    /// Disks in `<state_dir>/sim/disks`, no faults, default pacing.
    pub fn new(lab: &Lab) -> LabSim {
        LabSim {
            disks: lab.state_dir.join("sim").join("disks"),
            faults: HashMap::new(),
            line_delay: None,
            vm_bmc: HashMap::new(),
            bmc_reset_pause: bmc_reset_pause_from_env(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LabSimError {
    #[error(
        "node {node}: bmc.host: {host:?} is not on loopback; the simulator listens on 127.0.0.1 only"
    )]
    NotLoopback { node: String, host: String },
    #[error("node {node}: bmc.password: {why}")]
    Password { node: String, why: String },
    #[error("node {node}: starting its simulated Redfish BMC: {source}")]
    Redfish {
        node: String,
        source: std::io::Error,
    },
    #[error("creating the virtual disk {}: {source}", .path.display())]
    Disk {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The node's BMC password: the simulated BMC's too.
fn password_of(node: &Node) -> Result<String, LabSimError> {
    node.bmc
        .password
        .read()
        .map_err(|why| LabSimError::Password {
            node: node.name.clone(),
            why,
        })
}

/// One BMC spec per node, with the node's disk file.
pub fn specs_for_lab(lab: &Lab, opts: &LabSim) -> Result<Vec<(BmcSpec, PathBuf)>, LabSimError> {
    let mut specs = Vec::new();
    for (index, node) in lab.nodes.iter().enumerate() {
        let host = &node.bmc.host;
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(LabSimError::NotLoopback {
                node: node.name.clone(),
                host: host.clone(),
            });
        }
        let password = password_of(node)?;
        let mut spec = BmcSpec::new(&node.name, node.bmc.port, &node.bmc.username, &password);
        spec.cipher_suites = suites(node.bmc.cipher_suite);
        if let Some(delay) = opts.line_delay {
            spec.line_delay = delay;
        }
        if let Some(pause) = opts.bmc_reset_pause {
            spec.bmc_reset_pause = pause;
        }
        let fault = opts.faults.get(&node.name).copied().unwrap_or_default();
        spec.fault = fault.bmc;
        spec.vm_listen = opts.vm_bmc.get(&node.name).copied();
        let disk = disk_for(&opts.disks, node)?;
        spec.firmware = virtual_firmware(VirtualHost {
            node: node.name.clone(),
            macs: node.macs.clone(),
            dhcp: lab.dhcp.clone(),
            disk: disk.clone(),
            fault: fault.host,
            dhcp_log: dhcp_log_for(lab, index, node),
        });
        specs.push((spec, disk));
    }
    Ok(specs)
}

/// Where the node's virtual host logs its DHCP exchanges: the lab's
/// `[dhcp] log`, when its DHCP is dnsmasq (no dnsmasq, no log).
fn dhcp_log_for(lab: &Lab, index: usize, node: &Node) -> Option<DhcpLog> {
    let path = lab.dhcp_log.as_ref()?;
    matches!(lab.dhcp, inventory::Dhcp::Dnsmasq { .. })
        .then(|| DhcpLog::new(path.clone(), index, node.ipv4))
}

/// A node's disk file; a missing one is created holding the node's
/// instance image name, as if deployed before, so a fresh lab boots to a
/// login prompt (an empty disk would stop at petitboot's prompt).
fn disk_for(dir: &Path, node: &Node) -> Result<PathBuf, LabSimError> {
    let disk = dir.join(format!("{}.img", node.name));
    if !disk.exists() {
        let error = |source| LabSimError::Disk {
            path: disk.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(error)?;
        let image = match &node.instance {
            inventory::InstanceImage::WholeDisk { image } => image,
            inventory::InstanceImage::Partition { image, .. } => image,
        };
        let name = image
            .file_name()
            .map_or_else(|| "instance".into(), |n| n.to_string_lossy().into_owned());
        std::fs::write(&disk, format!("PETITLAB-IMAGE {name}\n")).map_err(error)?;
    }
    Ok(disk)
}

fn suites(choice: inventory::CipherSuite) -> Vec<CipherSuite> {
    match choice {
        inventory::CipherSuite::Auto => vec![CipherSuite::Suite17, CipherSuite::Suite3],
        inventory::CipherSuite::Suite3 => vec![CipherSuite::Suite3],
        inventory::CipherSuite::Suite17 => vec![CipherSuite::Suite17],
    }
}

/// The bmcweb-shaped front end of every node whose lab.toml says
/// `protocol = "redfish"`: HTTPS on the node's `bmc.port` (TCP, beside its
/// simulated IPMI on UDP) and the SSH console on `bmc.ssh_port`, with the
/// certificate and host key kept in `<state_dir>/sim/redfish/<node>`. Each
/// runs until its handle is dropped.
pub async fn start_redfish(
    sim: &super::Sim,
    lab: &Lab,
    faults: &HashMap<String, NodeFaults>,
) -> Result<Vec<(String, super::redfish::RedfishFrontend)>, LabSimError> {
    let mut started = Vec::new();
    for (index, node) in lab.nodes.iter().enumerate() {
        if node.bmc.protocol != inventory::BmcProtocol::Redfish {
            continue;
        }
        let password = password_of(node)?;
        let mut spec = super::redfish::RedfishSpec::new(
            lab.state_dir.join("sim").join("redfish").join(&node.name),
            &node.bmc.username,
            &password,
        );
        spec.https_port = node.bmc.port;
        spec.ssh_port = node.bmc.ssh_port;
        spec.keeps_once = faults.get(&node.name).is_some_and(|f| f.redfish_keeps_once);
        let front =
            sim.start_redfish(index, spec)
                .await
                .map_err(|source| LabSimError::Redfish {
                    node: node.name.clone(),
                    source,
                })?;
        started.push((node.name.clone(), front));
    }
    Ok(started)
}
