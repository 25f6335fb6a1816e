//! The tokio side: one UDP socket and one task per virtual BMC. Each task
//! owns its socket and locks only its own BMC's state, briefly and never
//! across an `.await`, so one BMC's work never blocks another.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::net::UdpSocket;

use super::Fault;
use super::session::Responder;

/// Larger than any RMCP+ packet the simulator accepts.
const MAX_DATAGRAM: usize = 2048;

pub type Shared = Arc<Mutex<Responder>>;

/// The responder never panics while locked, but a poisoned lock must not
/// take the whole BMC down either.
pub fn lock(bmc: &Shared) -> MutexGuard<'_, Responder> {
    bmc.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves one BMC until the task is aborted.
pub async fn serve(socket: UdpSocket, bmc: Shared, fault: Fault) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = lock(&bmc).next_deadline();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                // Errors here are transient (e.g. ICMP fallout); keep serving.
                let Ok((len, peer)) = received else { continue };
                if fault == Fault::Silent {
                    continue;
                }
                let reply = lock(&bmc).handle(&buf[..len], Instant::now());
                if let Some(reply) = reply {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
            () = timer => lock(&bmc).tick(Instant::now()),
        }
    }
}
