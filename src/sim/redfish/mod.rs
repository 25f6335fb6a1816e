//! A BMC shaped like OpenBMC's bmcweb in front of a simulated BMC: Redfish
//! over HTTPS, bmcweb's `/console0` websocket, and an SSH console like
//! dropbear + obmc-console-client. It drives the very chassis the IPMI side
//! drives (through the controller's in-band path), so IPMI and Redfish see
//! the same power state and boot override.
//!
//! ```no_run
//! # async fn demo(dir: std::path::PathBuf) -> std::io::Result<()> {
//! use petitlab::sim::{BmcSpec, Sim};
//! use petitlab::sim::redfish::RedfishSpec;
//! let sim = Sim::start(vec![BmcSpec::new("node1", 0, "admin", "password")]).await?;
//! let spec = RedfishSpec::new(dir, "admin", "password");
//! let front = sim.start_redfish(0, spec).await?;
//! println!("curl --cacert {} https://{}/redfish/v1", front.ca_pem.display(), front.https);
//! front.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! A front end runs until its [`RedfishFrontend`] is dropped or shut down
//! (not tied to the [`Sim`]: keep the handle as long as the Sim).

mod event_log;
mod http;
mod model;
mod resources;
mod routes;
#[cfg(test)]
mod routes_tests;
mod sessions;
mod ssh_console;
mod tls;
mod websocket;

pub use tls::VIRTUAL_LAB_CA;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::sel::SelHandle;
use super::server::Shared;
use super::{SerialPort, Sim};
use sessions::{Credentials, Sessions};

/// What a Redfish front end needs besides its BMC.
#[derive(Clone)]
pub struct RedfishSpec {
    /// The TLS certificate, its CA and the SSH host key live here; made on
    /// first start and reused after, so fingerprints stay the same.
    pub dir: PathBuf,
    /// HTTPS (Redfish and `/console0`) on 127.0.0.1; 0 picks a free port.
    pub https_port: u16,
    /// The SSH console on 127.0.0.1; 0 picks a free port.
    pub ssh_port: u16,
    pub username: String,
    pub password: String,
    /// Keep a one-shot boot override for every boot, as sushy-tools'
    /// emulator does (`--fault NODE=redfish-keeps-once`).
    pub keeps_once: bool,
}

impl RedfishSpec {
    /// Both ports picked by the system.
    pub fn new(dir: PathBuf, username: &str, password: &str) -> RedfishSpec {
        RedfishSpec {
            dir,
            https_port: 0,
            ssh_port: 0,
            username: username.to_string(),
            password: password.to_string(),
            keeps_once: false,
        }
    }
}

impl std::fmt::Debug for RedfishSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishSpec")
            .field("dir", &self.dir)
            .field("https_port", &self.https_port)
            .field("ssh_port", &self.ssh_port)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A running front end. Dropping it stops its servers and every console
/// and connection they serve; [`shutdown`](Self::shutdown) also waits
/// until the listening sockets are closed.
#[derive(Debug)]
pub struct RedfishFrontend {
    /// Redfish and `/console0` (HTTPS).
    pub https: SocketAddr,
    /// The SSH console.
    pub ssh: SocketAddr,
    /// SHA-256 of the server certificate's DER, "AB:CD:…".
    pub fingerprint: String,
    /// The CA that signed the server certificate (for `curl --cacert`).
    pub ca_pem: PathBuf,
    /// The server certificate itself.
    pub cert_pem: PathBuf,
    /// OpenSSH's form of the host key's fingerprint, "SHA256:…".
    pub ssh_host_key_fingerprint: String,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RedfishFrontend {
    /// Stops everything and waits for the listeners to close.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for RedfishFrontend {
    fn drop(&mut self) {
        self.stop.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One front end's view of its BMC, shared by its servers.
pub(crate) struct Bmc {
    pub name: String,
    pub state: Shared,
    pub serial: SerialPort,
    pub credentials: Credentials,
    pub sessions: Sessions,
    /// The BMC's SEL: the EventLog's store.
    pub sel: SelHandle,
    /// The BMC resets this front end has seen (its sessions die with each).
    pub bmc_resets: AtomicU64,
    pub uuid: String,
    pub ports: Ports,
    /// Bumped per sensor read, so a running host's readings wobble.
    pub readings: AtomicU8,
    /// `/console0` clients at once (an upgraded connection no longer
    /// counts against the HTTPS connection limit).
    pub websockets: Arc<Semaphore>,
    /// Cancelled when the front end stops: every task it spawned ends.
    pub stop: CancellationToken,
    /// See [`RedfishSpec::keeps_once`].
    pub keeps_once: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub https: u16,
    pub ssh: u16,
    pub ipmi: u16,
}

impl Bmc {
    fn new(node: &super::Bmc, spec: &RedfishSpec, ports: Ports, stop: CancellationToken) -> Bmc {
        // One short lock, released before the model's own calls lock again.
        let (sel, bmc_resets) = {
            let state = super::server::lock(&node.state);
            (state.sel(), state.bmc_resets())
        };
        Bmc {
            name: node.name.clone(),
            uuid: model::uuid(&node.state),
            state: node.state.clone(),
            serial: node.serial.clone(),
            credentials: Credentials::new(&spec.username, &spec.password),
            sessions: Sessions::default(),
            sel,
            bmc_resets: AtomicU64::new(bmc_resets),
            ports,
            readings: AtomicU8::new(0),
            websockets: Arc::new(Semaphore::new(websocket::MAX_CLIENTS)),
            stop,
            keeps_once: spec.keeps_once,
        }
    }

    /// Runs `task` until it ends or the front end stops.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        until(&self.stop, task);
    }
}

fn bind_error(name: &str, what: &str, addr: SocketAddr, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!("BMC {name}: cannot listen for {what} on TCP {addr}: {e}"),
    )
}

impl Sim {
    /// Starts a bmcweb-like front end for BMC `index`: Redfish and the
    /// `/console0` websocket on `spec.https_port`, the SSH console on
    /// `spec.ssh_port`, both on 127.0.0.1. Fails, naming the port or file,
    /// if a socket cannot be bound or the key material cannot be made.
    pub async fn start_redfish(
        &self,
        index: usize,
        spec: RedfishSpec,
    ) -> std::io::Result<RedfishFrontend> {
        let node = &self.bmcs[index];
        let name = &node.name;
        let tls = tls::load_or_create(&spec.dir)?;
        let host_key = ssh_console::load_or_create_host_key(&spec.dir)?;
        let https_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, spec.https_port));
        let https = TcpListener::bind(https_addr)
            .await
            .map_err(|e| bind_error(name, "HTTPS", https_addr, e))?;
        let ssh_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, spec.ssh_port));
        let ssh = TcpListener::bind(ssh_addr)
            .await
            .map_err(|e| bind_error(name, "SSH", ssh_addr, e))?;
        let (https_addr, ssh_addr) = (https.local_addr()?, ssh.local_addr()?);
        let stop = CancellationToken::new();
        let ports = Ports {
            https: https_addr.port(),
            ssh: ssh_addr.port(),
            ipmi: node.addr.port(),
        };
        let bmc = Arc::new(Bmc::new(node, &spec, ports, stop.clone()));
        let ssh_host_key_fingerprint = ssh_console::fingerprint(&host_key);
        let tasks = vec![
            until(&stop, http::serve(https, tls.acceptor, bmc.clone())),
            until(&stop, ssh_console::serve(ssh, host_key, bmc.clone())),
        ];
        tracing::info!(node = %bmc.name, https = %https_addr, ssh = %ssh_addr, "Redfish front end up");
        Ok(RedfishFrontend {
            https: https_addr,
            ssh: ssh_addr,
            fingerprint: tls.fingerprint,
            ca_pem: tls.ca_pem,
            cert_pem: tls.cert_pem,
            ssh_host_key_fingerprint,
            stop,
            tasks,
        })
    }
}

/// Spawns `task`, to run until it ends or `stop` is cancelled.
fn until(
    stop: &CancellationToken,
    task: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    let stop = stop.clone();
    tokio::spawn(async move {
        stop.run_until_cancelled(task).await;
    })
}
