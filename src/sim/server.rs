//! The tokio side: one UDP socket and one task per virtual BMC. Each task
//! owns its socket and locks only its own BMC's state, briefly and never
//! across an `.await`, so one BMC's work never blocks another.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::broadcast::{self, error::RecvError};

use super::Fault;
use super::serial::SerialPort;
use super::session::{Output, Responder};

/// Larger than any RMCP+ packet the simulator accepts.
const MAX_DATAGRAM: usize = 2048;

pub type Shared = Arc<Mutex<Responder>>;

/// The responder never panics while locked, but a poisoned lock must not
/// take the whole BMC down either.
pub fn lock(bmc: &Shared) -> MutexGuard<'_, Responder> {
    bmc.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What woke the task up.
enum Event {
    Datagram(usize, SocketAddr),
    Timer,
    HostOutput(Vec<u8>),
    HostOverrun,
    Nothing,
}

/// Serves one BMC until the task is aborted: datagrams from consoles,
/// timers (soft off, SOL retransmits) and the host's serial output.
pub async fn serve(
    socket: UdpSocket,
    bmc: Shared,
    fault: Fault,
    serial: SerialPort,
    mut host_output: broadcast::Receiver<Vec<u8>>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = lock(&bmc).next_deadline();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                // Errors here are transient (e.g. ICMP fallout); keep serving.
                Ok((len, peer)) if fault != Fault::Silent => Event::Datagram(len, peer),
                _ => Event::Nothing,
            },
            () = timer => Event::Timer,
            chunk = host_output.recv() => match chunk {
                Ok(bytes) => Event::HostOutput(bytes),
                Err(RecvError::Lagged(_)) => Event::HostOverrun,
                // `serial` holds a sender, so this cannot close.
                Err(RecvError::Closed) => Event::Nothing,
            },
        };
        let now = Instant::now();
        let (reply, outputs) = {
            let mut bmc = lock(&bmc);
            let reply = match event {
                Event::Datagram(len, peer) => {
                    bmc.handle_from(&buf[..len], peer, now).map(|r| (peer, r))
                }
                Event::Timer => {
                    bmc.tick(now);
                    None
                }
                Event::HostOutput(bytes) => {
                    bmc.host_output(&bytes, now);
                    None
                }
                Event::HostOverrun => {
                    bmc.host_overrun();
                    None
                }
                Event::Nothing => None,
            };
            (reply, bmc.take_output())
        };
        if let Some((peer, reply)) = reply {
            let _ = socket.send_to(&reply, peer).await;
        }
        for output in outputs {
            match output {
                Output::Datagram(peer, datagram) => {
                    let _ = socket.send_to(&datagram, peer).await;
                }
                Output::Serial(input) => serial.deliver(input),
            }
        }
    }
}
