//! The built-in virtual lab: lab.toml.example moved onto loopback, with
//! small generated kernels, ramdisks and images, then run in one process:
//! simulated BMCs with virtual petitboot hosts, the HTTP (with the agent
//! API) and TFTP servers. `petitlab demo` runs it.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::agent_api::AgentApi;
use crate::engine::store::Store;
use crate::inventory::Lab;
use crate::serve::http::{HttpHandle, HttpOptions, HttpServer};
use crate::serve::tftp::{TftpHandle, TftpOptions, TftpServer};
use crate::sim::Sim;
use crate::sim::lab::{LabSim, LabSimError, NodeFaults, specs_for_lab};

/// The example inventory the demo lab is made from.
pub const EXAMPLE: &str = include_str!("../lab.toml.example");

/// The demo's BMC password: a simulator's, not a secret.
const PASSWORD: &str = "demo-password";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("writing the demo lab in {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lab.toml.example: {0}")]
    Example(String),
    #[error(transparent)]
    Sim(#[from] LabSimError),
    #[error("starting the demo lab's {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
}

impl DemoError {
    fn from_start(source: std::io::Error) -> DemoError {
        DemoError::Start {
            what: "simulated BMCs",
            source,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + use<> {
    let path = path.to_path_buf();
    move |source| DemoError::Io { path, source }
}

fn free_ports(count: usize) -> Result<(u16, Vec<u16>), DemoError> {
    let start = |source| DemoError::Start {
        what: "ports",
        source,
    };
    let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(start)?;
    // All held until all are chosen, so no port is handed out twice.
    let udp: Vec<UdpSocket> = (0..count)
        .map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<_, _>>()
        .map_err(start)?;
    let ports = udp
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(start)?;
    Ok((tcp.local_addr().map_err(start)?.port(), ports))
}

/// A TCP port free on 127.0.0.1 now (the demo's simulated SSH consoles).
fn free_tcp_port() -> Result<u16, DemoError> {
    let start = |source| DemoError::Start {
        what: "ports",
        source,
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(start)?;
    Ok(listener.local_addr().map_err(start)?.port())
}

/// Deterministic filler bytes, different per seed (artifacts for virtual labs).
pub fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes the artifact a lab.toml path names into `dir/artifacts` and
/// returns its new path: images carry the name the virtual host prints.
fn artifact(dir: &Path, raw: &str, seed: u64) -> Result<String, DemoError> {
    let name = Path::new(raw).file_name().map_or_else(
        || format!("artifact{seed}"),
        |n| n.to_string_lossy().into_owned(),
    );
    let path = dir.join("artifacts").join(&name);
    let is_image = name.ends_with(".img") || name.ends_with(".qcow2") || name.ends_with(".raw");
    let mut bytes = Vec::new();
    if is_image {
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        bytes.extend(format!("PETITLAB-IMAGE {stem} (petitlab demo)\n").into_bytes());
    }
    bytes.extend(filler(seed, if is_image { 256 << 10 } else { 64 << 10 }));
    std::fs::write(&path, bytes).map_err(io(&path))?;
    Ok(path.display().to_string())
}

/// Writes the demo lab into `dir` (lab.toml, artifacts, password, state
/// dir) and returns the lab.toml's path.
pub fn generate(dir: &Path) -> Result<PathBuf, DemoError> {
    use toml::Value;
    let mut lab: toml::Table = EXAMPLE
        .parse()
        .map_err(|e: toml::de::Error| DemoError::Example(e.to_string()))?;
    let nodes = lab
        .get_mut("node")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| DemoError::Example("no [[node]] tables".into()))?;
    let (http_port, mut udp) = free_ports(nodes.len() + 1)?;
    let tftp_port = udp.pop().unwrap_or(0);
    std::fs::create_dir_all(dir.join("artifacts")).map_err(io(dir))?;
    let password = dir.join("bmc-password");
    std::fs::write(&password, format!("{PASSWORD}\n")).map_err(io(&password))?;
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600))
        .map_err(io(&password))?;

    // The virtual lab's CA, which signs the simulated Redfish BMCs' certificates.
    let ca = dir.join("virtual-lab-bmc-ca.pem");
    std::fs::write(&ca, crate::sim::redfish::VIRTUAL_LAB_CA).map_err(io(&ca))?;

    let mut seed = 1;
    for (node, port) in nodes.iter_mut().zip(udp) {
        let Some(node) = node.as_table_mut() else {
            continue;
        };
        if let Some(bmc) = node.get_mut("bmc").and_then(Value::as_table_mut) {
            bmc.insert("host".into(), "127.0.0.1".into());
            bmc.insert("port".into(), i64::from(port).into());
            bmc.insert(
                "password_file".into(),
                password.display().to_string().into(),
            );
            if bmc.get("protocol").and_then(Value::as_str) == Some("redfish") {
                // HTTPS on the same number as its IPMI (TCP beside UDP),
                // the SSH console on a port of its own.
                bmc.insert("ssh_port".into(), i64::from(free_tcp_port()?).into());
                bmc.insert("ca_file".into(), ca.display().to_string().into());
            }
        }
        for section in ["deploy", "instance"] {
            let Some(table) = node.get_mut(section).and_then(Value::as_table_mut) else {
                continue;
            };
            for key in ["kernel", "ramdisk", "image"] {
                if let Some(raw) = table.get(key).and_then(Value::as_str).map(str::to_string) {
                    seed += 1;
                    table.insert(key.into(), artifact(dir, &raw, seed)?.into());
                }
            }
        }
    }
    let state = dir.join("state");
    lab.insert("state_dir".into(), state.display().to_string().into());
    // The virtual lab writes the log dnsmasq would, for the boot timeline.
    if let Some(dhcp) = lab.get_mut("dhcp").and_then(Value::as_table_mut) {
        let log = state.join("dnsmasq.log");
        dhcp.insert("log".into(), log.display().to_string().into());
    }
    // Virtual hosts boot in seconds: a boot stalls (and is diagnosed) soon.
    let mut timeline = toml::Table::new();
    timeline.insert("stall_after".into(), 5.into());
    timeline.insert("firmware_allowance".into(), 20.into());
    lab.insert("timeline".into(), Value::Table(timeline));
    let server = |scheme: &str, port: u16| {
        let mut t = toml::Table::new();
        t.insert(
            "base_url".into(),
            format!("{scheme}://127.0.0.1:{port}/").into(),
        );
        t.insert("listen".into(), format!("127.0.0.1:{port}").into());
        Value::Table(t)
    };
    lab.insert("http".into(), server("http", http_port));
    lab.insert("tftp".into(), server("tftp", tftp_port));
    let text = format!(
        "# The petitlab demo lab: lab.toml.example on loopback, written by petitlab demo.\n{}",
        toml::to_string(&lab).map_err(|e| DemoError::Example(e.to_string()))?
    );
    let path = dir.join("lab.toml");
    std::fs::write(&path, text).map_err(io(&path))?;
    Ok(path)
}

/// The demo lab's servers and simulator, running in this process.
pub struct Running {
    pub sim: Sim,
    /// The Redfish nodes' bmcweb-shaped front ends; dropping one stops it.
    redfish: Vec<crate::sim::redfish::RedfishFrontend>,
    http: HttpHandle,
    tftp: TftpHandle,
    /// Following dnsmasq's log (the virtual lab writes it).
    _dhcp: Option<crate::engine::boot_record::AbortOnDrop>,
    /// The simulated BMCs and hosts run on threads of their own, as real
    /// BMCs are machines of their own: the lab's engine busy (a store
    /// write waiting on the disk) never stalls them.
    sim_runtime: tokio::runtime::Runtime,
}

impl Running {
    /// Starts the simulator (virtual hosts pacing their consoles at
    /// `line_delay`, with `faults` injected as `petitlab demo --fault`
    /// says) and the servers; the agent API records into `store`, and the
    /// fetches, agent calls and dnsmasq's log go to `recorder`.
    pub async fn start(
        lab: &Arc<Lab>,
        store: Arc<Mutex<Store>>,
        recorder: Arc<crate::engine::boot_record::Recorder>,
        line_delay: Duration,
        faults: HashMap<String, NodeFaults>,
    ) -> Result<Running, DemoError> {
        let mut sim = LabSim::new(lab);
        sim.line_delay = Some(line_delay);
        sim.faults = faults.clone();
        let specs = specs_for_lab(lab, &sim)?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        let start = |source| DemoError::Start {
            what: "simulated BMCs",
            source,
        };
        let sim_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("petitlab-sim")
            .enable_all()
            .build()
            .map_err(start)?;
        let lab_for_sim = lab.clone();
        let (sim, redfish) = sim_runtime
            .spawn(async move {
                let sim = Sim::start(specs).await.map_err(DemoError::from_start)?;
                let redfish = crate::sim::lab::start_redfish(&sim, &lab_for_sim, &faults).await?;
                Ok::<_, DemoError>((sim, redfish))
            })
            .await
            .map_err(|e| start(std::io::Error::other(e)))??;
        for root in [&lab.http.root, &lab.tftp.root] {
            std::fs::create_dir_all(root).map_err(io(root))?;
        }
        let options = HttpOptions {
            api: Some(Arc::new(
                AgentApi::new(lab.clone(), store).with_recorder(recorder.clone()),
            )),
            access_log: Some(crate::engine::boot_record::http_hook(recorder.clone())),
            ..HttpOptions::default()
        };
        let http = HttpServer::bind(lab.http.listen, lab.http.root.clone(), options)
            .await
            .map_err(|source| DemoError::Start {
                what: "HTTP server",
                source,
            })?
            .spawn();
        let tftp_options = TftpOptions {
            log: Some(crate::engine::boot_record::tftp_hook(recorder.clone())),
            ..TftpOptions::default()
        };
        let dhcp = lab.dhcp_log.clone().map(|path| recorder.follow_dhcp(path));
        let tftp = TftpServer::bind(lab.tftp.listen, lab.tftp.root.clone(), tftp_options)
            .map_err(|source| DemoError::Start {
                what: "TFTP server",
                source,
            })?
            .spawn();
        Ok(Running {
            sim,
            redfish: redfish.into_iter().map(|(_, front)| front).collect(),
            http,
            tftp,
            sim_runtime,
            _dhcp: dhcp.map(crate::engine::boot_record::AbortOnDrop),
        })
    }

    /// The simulated BMCs' sessions by node, for the service's `sessions`
    /// method: `{"NODE": {"active": [ids], "opened": total}}`.
    pub fn sessions_counter(&self, lab: &Lab) -> Arc<dyn Fn() -> serde_json::Value + Send + Sync> {
        let count = self.sim.session_counter();
        let names: Vec<String> = lab.nodes.iter().map(|n| n.name.clone()).collect();
        Arc::new(move || {
            let nodes = names.iter().enumerate().filter_map(|(i, name)| {
                let c = count(i)?;
                Some((
                    name.clone(),
                    serde_json::json!({"active": c.active_ids, "opened": c.opened_total}),
                ))
            });
            serde_json::Value::Object(nodes.collect())
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    pub async fn shutdown(self) {
        self.http.shutdown(Duration::from_secs(2)).await;
        let _ = self.tftp.shutdown().await;
        for front in self.redfish {
            front.shutdown().await;
        }
        self.sim.shutdown().await;
        // Dropping a runtime may not block inside another one.
        self.sim_runtime.shutdown_background();
    }
}
