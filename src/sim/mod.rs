//! A virtual lab's BMCs: thousands of RMCP+ BMC simulators in one process,
//! each on its own UDP socket on 127.0.0.1, speaking cipher suites 3 and 17
//! with chassis power, boot flags, sensors, DCMI and Serial-over-LAN —
//! enough for ipmitool, freeipmi and petitlab's own poller and console.
//! Behind each BMC a virtual host boots on power-on and talks on its serial
//! port ([`Sim::serial`]), which SOL consoles see.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use petitlab::sim::{BmcSpec, Sim};
//! let sim = Sim::start(vec![BmcSpec::new("node1", 0, "admin", "password")]).await?;
//! println!("ipmitool -I lanplus -H 127.0.0.1 -p {} ...", sim.addr(0).port());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod agent;
mod agent_iscsi;
mod chassis;
pub mod chatter;
mod commands;
mod dcmi;
pub mod dhcp_log;
mod dhcp_view;
mod firmware;
mod fru;
mod handshake;
mod host;
mod http_get;
pub mod lab;
mod mc_info;
mod petitboot;
pub mod redfish;
mod sdr;
mod sel;
mod serial;
mod server;
mod session;
mod sol;
mod sol_commands;
pub mod tgt;
pub mod vm_codec;
mod vm_guest;
mod vm_server;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod test_console;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::ipmi::CipherSuite;
pub use chassis::{BootDevice, ChassisState, Identify};
pub use dhcp_log::DhcpLog;
pub use firmware::Firmware;
pub use fru::Inventory;
pub use host::Boot;
pub use mc_info::{BMC_FIRMWARE_VERSION, HOST_FIRMWARE_VERSION};
pub use petitboot::{HostFault, VirtualHost, virtual_firmware};
pub use sel::{Event as SelEvent, Record as SelRecord};
pub use serial::{SerialInput, SerialPort};
pub use session::DEFAULT_BMC_RESET_PAUSE;
pub use session::SessionCount;

use chassis::{Chassis, DEFAULT_SOFT_OFF_DELAY};
use commands::Controller;
use handshake::Identity;
use host::HostSpec;
use sel::SelHandle;
use session::{Limits, Responder};

/// Default pause after each line the virtual host prints: a boot takes
/// well under a second, yet output arrives line by line as on a real host.
pub const DEFAULT_LINE_DELAY: Duration = Duration::from_millis(10);

/// How a BMC misbehaves, for tests of the poller's error paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Bound but never answers (a hung or unreachable BMC).
    Silent,
    /// Answers every RAKP 1, a retransmitted one too, with a new challenge
    /// (ipmi_sim does not, some BMCs do): a client that resends RAKP 1 to a
    /// slow BMC must go on with the last RAKP 2.
    FreshChallenges,
}

/// One virtual BMC.
#[derive(Debug, Clone)]
pub struct BmcSpec {
    pub name: String,
    /// UDP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    pub username: String,
    pub password: String,
    /// The cipher suites offered (Get Channel Cipher Suites, Open Session).
    pub cipher_suites: Vec<CipherSuite>,
    pub fault: Fault,
    /// How long a soft off (Chassis Control 5) takes to power the host off.
    pub soft_off_delay: Duration,
    /// What the host prints after each power-on (default: petitboot-like).
    pub firmware: Firmware,
    /// Pause after each line the host prints; tests use ~1 ms.
    pub line_delay: Duration,
    /// SOL: resend an unacknowledged packet after this long (500 ms, as
    /// slow as a real BMC; lossy-link tests shorten it).
    pub sol_retry: Duration,
    /// Sessions that send no IPMI request for this long are closed; SOL
    /// traffic does not count (30 s, as ipmi_sim).
    pub session_timeout: Duration,
    /// Listen here (TCP, loopback) for a QEMU guest's `ipmi-bmc-extern`
    /// chardev: the guest's in-band BMC is then this one (port 0 picks a
    /// free port). None: no guest link.
    pub vm_listen: Option<SocketAddr>,
    /// How long a BMC reset (IPMI cold/warm reset, Redfish Manager.Reset)
    /// leaves the BMC silent before it answers again.
    pub bmc_reset_pause: Duration,
}

impl BmcSpec {
    /// A well-behaved BMC offering cipher suites 17 and 3.
    pub fn new(name: &str, port: u16, username: &str, password: &str) -> BmcSpec {
        BmcSpec {
            name: name.to_string(),
            port,
            username: username.to_string(),
            password: password.to_string(),
            cipher_suites: vec![CipherSuite::Suite17, CipherSuite::Suite3],
            fault: Fault::None,
            soft_off_delay: DEFAULT_SOFT_OFF_DELAY,
            firmware: Firmware::default(),
            line_delay: DEFAULT_LINE_DELAY,
            sol_retry: sol::RETRY_INTERVAL,
            session_timeout: Limits::default().idle_timeout,
            vm_listen: None,
            bmc_reset_pause: session::DEFAULT_BMC_RESET_PAUSE,
        }
    }

    fn host(&self, sel: SelHandle) -> HostSpec {
        HostSpec {
            node: self.name.clone(),
            firmware: self.firmware.clone(),
            line_delay: self.line_delay,
            sel: Some(sel),
        }
    }

    fn responder(&self, port: u16, sel: SelHandle) -> Responder {
        let identity = Identity {
            username: self.username.as_bytes().to_vec(),
            password: self.password.as_bytes().to_vec(),
            suites: self.cipher_suites.clone(),
            guid: crate::ipmi::crypto::random(),
        };
        let chassis = Chassis::new(self.soft_off_delay);
        let controller = Controller::new(chassis, self.cipher_suites.clone(), identity.guid)
            .for_node(&self.name, sel);
        let limits = Limits {
            sol_retry: self.sol_retry,
            idle_timeout: self.session_timeout,
            fresh_challenges: self.fault == Fault::FreshChallenges,
            bmc_reset_pause: self.bmc_reset_pause,
            ..Limits::default()
        };
        Responder::new(identity, controller, limits, port)
    }
}

struct Bmc {
    name: String,
    addr: SocketAddr,
    state: server::Shared,
    chassis: watch::Receiver<ChassisState>,
    serial: SerialPort,
    task: JoinHandle<()>,
    host: JoinHandle<()>,
    /// The guest link's address and task, if the spec asked for one.
    vm: Option<(SocketAddr, JoinHandle<()>)>,
}

impl Bmc {
    fn abort(&self) {
        self.task.abort();
        self.host.abort();
        if let Some((_, vm)) = &self.vm {
            vm.abort();
        }
    }
}

/// The running simulator. Dropping it stops the BMCs too; `shutdown` also
/// waits until every socket is closed.
pub struct Sim {
    bmcs: Vec<Bmc>,
}

impl Sim {
    /// Binds every BMC's socket, then starts serving them all. Fails, with
    /// the BMC's name and port, if any socket cannot be bound.
    pub async fn start(specs: Vec<BmcSpec>) -> std::io::Result<Sim> {
        let mut sockets = Vec::with_capacity(specs.len());
        for spec in &specs {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, spec.port));
            let socket = UdpSocket::bind(addr).await.map_err(|e| {
                let what = format!("BMC {}: cannot bind UDP {addr}: {e}", spec.name);
                std::io::Error::new(e.kind(), what)
            })?;
            let listener = match spec.vm_listen {
                Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                    let what = format!("BMC {}: cannot listen on TCP {addr}: {e}", spec.name);
                    std::io::Error::new(e.kind(), what)
                })?),
                None => None,
            };
            sockets.push((socket, listener));
        }
        let mut bmcs = Vec::with_capacity(specs.len());
        for (spec, (socket, listener)) in specs.iter().zip(sockets) {
            let addr = socket.local_addr()?;
            // Seeded with what a BMC's own boot leaves in its log.
            let sel = SelHandle::seeded(sel::unix_now());
            let responder = spec.responder(addr.port(), sel.clone());
            let chassis = responder.subscribe();
            let state = Arc::new(Mutex::new(responder));
            let serial = SerialPort::default();
            // Subscribed now, so no host output is missed before it runs.
            let host_output = serial.output();
            let task = server::serve(
                socket,
                state.clone(),
                spec.fault,
                serial.clone(),
                host_output,
            );
            let task = tokio::spawn(task);
            let host = host::run(spec.host(sel), chassis.clone(), serial.clone());
            let host = tokio::spawn(host);
            let vm = match listener {
                Some(listener) => {
                    let vm_addr = listener.local_addr()?;
                    let link = vm_server::serve(
                        spec.name.clone(),
                        listener,
                        state.clone(),
                        chassis.clone(),
                    );
                    Some((vm_addr, tokio::spawn(link)))
                }
                None => None,
            };
            bmcs.push(Bmc {
                name: spec.name.clone(),
                addr,
                state,
                chassis,
                serial,
                task,
                host,
                vm,
            });
        }
        Ok(Sim { bmcs })
    }

    /// The BMC's address (127.0.0.1 and its port).
    pub fn addr(&self, index: usize) -> SocketAddr {
        self.bmcs[index].addr
    }

    /// Where the BMC listens for a QEMU guest's `ipmi-bmc-extern` chardev,
    /// if it does.
    pub fn vm_addr(&self, index: usize) -> Option<SocketAddr> {
        self.bmcs[index].vm.as_ref().map(|(addr, _)| *addr)
    }

    pub fn len(&self) -> usize {
        self.bmcs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bmcs.is_empty()
    }

    /// The BMC's chassis right now.
    pub fn chassis(&self, index: usize) -> ChassisState {
        *self.bmcs[index].chassis.borrow()
    }

    /// Follows the BMC's chassis: every power or boot flag change.
    pub fn watch(&self, index: usize) -> watch::Receiver<ChassisState> {
        self.bmcs[index].chassis.clone()
    }

    /// The serial port of the BMC's host: write to it as the host would
    /// (SOL consoles see it), follow what consoles type into it.
    pub fn serial(&self, index: usize) -> SerialPort {
        self.bmcs[index].serial.clone()
    }

    /// Whether a session has the BMC's SOL payload activated.
    pub fn sol_active(&self, index: usize) -> bool {
        server::lock(&self.bmcs[index].state).sol_active()
    }

    /// The BMC's active sessions and how many it ever opened (cheap: one
    /// short lock of that BMC's state).
    pub fn sessions(&self, index: usize) -> SessionCount {
        server::lock(&self.bmcs[index].state).sessions(std::time::Instant::now())
    }

    /// Every BMC's session count, readable after the Sim moved on (the
    /// demo's lab service reports them).
    pub fn session_counter(
        &self,
    ) -> impl Fn(usize) -> Option<SessionCount> + Send + Sync + 'static {
        let states: Vec<server::Shared> = self.bmcs.iter().map(|b| b.state.clone()).collect();
        move |index| {
            let state = states.get(index)?;
            Some(server::lock(state).sessions(std::time::Instant::now()))
        }
    }

    /// The BMC's System Event Log, oldest record first.
    pub fn sel(&self, index: usize) -> Vec<SelRecord> {
        server::lock(&self.bmcs[index].state).sel().records()
    }

    /// The BMC's chassis identify light now.
    pub fn identify(&self, index: usize) -> Identify {
        server::lock(&self.bmcs[index].state).identify(std::time::Instant::now())
    }

    /// Whether the BMC is rebooting (after a BMC reset) and not answering.
    pub fn bmc_down(&self, index: usize) -> bool {
        server::lock(&self.bmcs[index].state).is_down(std::time::Instant::now())
    }

    /// Forgets the BMC's sessions, as a BMC reboot does.
    pub fn forget_sessions(&self, index: usize) {
        server::lock(&self.bmcs[index].state).forget_sessions();
    }

    /// Datagrams the BMC dropped: malformed, unknown session, failed
    /// integrity or decryption, replayed or outside the sequence window.
    pub fn dropped_packets(&self, index: usize) -> u64 {
        server::lock(&self.bmcs[index].state).dropped_packets()
    }

    /// Stops every BMC and waits until their sockets are closed.
    pub async fn shutdown(mut self) {
        let bmcs = std::mem::take(&mut self.bmcs);
        for bmc in &bmcs {
            bmc.abort();
        }
        for bmc in bmcs {
            let _ = bmc.task.await;
            let _ = bmc.host.await;
            if let Some((_, vm)) = bmc.vm {
                let _ = vm.await;
            }
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        for bmc in &self.bmcs {
            bmc.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_ephemeral_ports_and_names_the_one_that_fails() {
        let sim = Sim::start(vec![BmcSpec::new("a", 0, "admin", "pw"); 3])
            .await
            .unwrap();
        assert_eq!(sim.len(), 3);
        let taken = sim.addr(1).port();
        assert!(sim.addr(0).ip().is_loopback() && taken != 0);
        let err = Sim::start(vec![BmcSpec::new("dup", taken, "admin", "pw")])
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains(&format!("dup: cannot bind UDP 127.0.0.1:{taken}"))
        );
        sim.shutdown().await;
        // Closed: the port can be bound again.
        std::net::UdpSocket::bind(("127.0.0.1", taken)).unwrap();
    }

    #[tokio::test]
    async fn answers_pings_over_udp_unless_silent() {
        let mut silent = BmcSpec::new("s", 0, "admin", "pw");
        silent.fault = Fault::Silent;
        let sim = Sim::start(vec![BmcSpec::new("a", 0, "admin", "pw"), silent])
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ping = [6, 0, 0xFF, 6, 0, 0, 0x11, 0xBE, 0x80, 7, 0, 0];
        let mut buf = [0u8; 64];
        client.send_to(&ping, sim.addr(0)).await.unwrap();
        let (n, _) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, buf[9]), (28, 7));
        client.send_to(&ping, sim.addr(1)).await.unwrap();
        let wait = tokio::time::timeout(Duration::from_millis(200), client.recv_from(&mut buf));
        assert!(wait.await.is_err(), "silent BMC answered");
        sim.forget_sessions(0);
        assert_eq!(sim.dropped_packets(0), 0);
        assert!(!sim.chassis(0).power_on);
        sim.shutdown().await;
    }
}
