//! The tokio side of a node's in-band BMC for a QEMU guest: one TCP
//! listener and one task per node, QEMU's `ipmi-bmc-extern` chardev
//! connecting to it. The task locks only its own node's BMC, briefly and
//! never across an `.await`; reads are bounded and a guest that stops
//! reading is dropped after [`WRITE_TIMEOUT`], so a sick guest stalls
//! nothing but its own link.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::chassis::ChassisState;
use super::server::{Shared, lock};
use super::vm_guest::{GuestLink, Inbound, command_for};

const READ_BUF: usize = 4096;
/// A guest that has not taken our bytes within this long is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    link: GuestLink,
}

enum Event {
    Accepted(std::io::Result<(TcpStream, SocketAddr)>),
    Read(std::io::Result<usize>),
    Chassis,
}

/// Serves `node`'s guest link until the task is aborted. A new connection
/// replaces the current one (a restarted QEMU reconnects).
pub async fn serve(
    node: String,
    listener: TcpListener,
    bmc: Shared,
    mut chassis: watch::Receiver<ChassisState>,
) {
    let mut conn: Option<Conn> = None;
    let mut buf = vec![0u8; READ_BUF];
    // The chassis as the guest last followed it.
    let mut seen = *chassis.borrow_and_update();
    loop {
        let read = async {
            match conn.as_mut() {
                Some(c) => c.stream.read(&mut buf).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            accepted = listener.accept() => Event::Accepted(accepted),
            n = read => Event::Read(n),
            changed = chassis.changed() => match changed {
                Ok(()) => Event::Chassis,
                Err(_) => return, // the BMC is gone
            },
        };
        // Set when the guest's link is dead: it is hung up after the match.
        let mut dead = false;
        match event {
            Event::Accepted(Ok((stream, peer))) => {
                let _ = stream.set_nodelay(true);
                if let Some(old) = conn.take() {
                    tracing::info!(%node, old = %old.peer, new = %peer, "guest BMC link replaced");
                } else {
                    tracing::info!(%node, %peer, "guest connected to the in-band BMC");
                }
                {
                    // Our own change: marked seen under the same lock, so it
                    // sends the guest nothing.
                    let mut bmc = lock(&bmc);
                    bmc.attach_guest(Instant::now());
                    seen = *chassis.borrow_and_update();
                }
                let c = conn.insert(Conn {
                    stream,
                    peer,
                    link: GuestLink::new(),
                });
                dead = !send(c, &GuestLink::greeting()).await;
            }
            // Out of descriptors and the like: wait rather than spin.
            Event::Accepted(Err(e)) => {
                tracing::warn!(%node, "guest BMC accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Event::Read(Ok(0) | Err(_)) => dead = true,
            Event::Read(Ok(n)) => {
                let Some(c) = conn.as_mut() else { continue };
                let inbound = c.link.receive(&buf[..n]);
                if let Some(why) = c.link.take_drop() {
                    tracing::debug!(%node, ?why, "guest BMC link: frame dropped");
                }
                let out = answer(&node, &bmc, inbound);
                // Chassis changes the guest asked for (its own power-down)
                // come round as Event::Chassis, after this answer.
                dead = !out.is_empty() && !send(c, &out).await;
            }
            Event::Chassis => {
                let now = *chassis.borrow_and_update();
                let command = command_for(&seen, &now);
                seen = now;
                if let (Some(c), Some(bytes)) = (conn.as_mut(), command) {
                    dead = !send(c, &bytes).await;
                }
            }
        }
        if dead && let Some(c) = conn.take() {
            seen = detach(&node, c, &bmc, &mut chassis);
        }
    }
}

/// Runs the guest's requests on the node's BMC (one short lock for the
/// lot); returns the answers' frames.
fn answer(node: &str, bmc: &Shared, inbound: Vec<Inbound>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bmc = lock(bmc);
    let now = Instant::now();
    for item in inbound {
        match item {
            Inbound::Request { seq, request } => {
                let response = bmc.inband(&request, now);
                tracing::trace!(
                    %node,
                    netfn = request.netfn,
                    cmd = request.cmd,
                    completion = response.completion,
                    "in-band request"
                );
                out.extend(GuestLink::answer(seq, &response));
            }
            Inbound::GuestReset => tracing::debug!(%node, "guest reset (reported by QEMU)"),
        }
    }
    out
}

/// Writes `bytes` whole within [`WRITE_TIMEOUT`]; false if the link is dead.
async fn send(c: &mut Conn, bytes: &[u8]) -> bool {
    let write = tokio::time::timeout(WRITE_TIMEOUT, c.stream.write_all(bytes));
    matches!(write.await, Ok(Ok(())))
}

/// The guest is gone: the chassis goes off. Returns the chassis as seen.
fn detach(
    node: &str,
    conn: Conn,
    bmc: &Shared,
    chassis: &mut watch::Receiver<ChassisState>,
) -> ChassisState {
    let stats = conn.link.stats();
    tracing::info!(%node, peer = %conn.peer, ?stats, "guest disconnected from the in-band BMC");
    let mut bmc = lock(bmc);
    bmc.detach_guest();
    *chassis.borrow_and_update()
}
