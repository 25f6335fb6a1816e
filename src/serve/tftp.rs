//! The embedded read-only TFTP server petitboot fetches configs, kernels and
//! initrds from (RFC 1350, with RFC 2347 option negotiation: `blksize`,
//! `tsize`, `timeout` and RFC 7440 `windowsize`).
//!
//! Each read request gets its own task and its own ephemeral UDP port, as
//! RFC 1350 asks; writes are refused. Every requested name goes through
//! [`path::resolve`](super::path::resolve), so nothing outside the root is
//! ever read, and the error for a refused name is the same whether or not
//! something exists outside the root.
//!
//! Transfers are capped in all and per client address (beyond either, a
//! request is answered "server busy"), and the total is kept to a quarter
//! of the process's descriptor limit (a transfer holds two), so a flood of
//! never-answered requests cannot starve the HTTP server. A `timeout`
//! option above [`TftpOptions::max_timeout`] is not granted (RFC 2349 lets
//! a server leave it out), which bounds how long an abandoned transfer
//! lives.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use petitlab::serve::tftp::{TftpOptions, TftpServer};
//! let server = TftpServer::bind("0.0.0.0:69".parse().unwrap(), "/srv/tftp".into(), TftpOptions::default())?;
//! let handle = server.spawn();
//! // ...
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::limits::{self, Full, Slots};
use super::tftp_packet::{
    self as packet, ERR_ACCESS_VIOLATION, ERR_ILLEGAL_OPERATION, ERR_NOT_DEFINED, MAX_BLKSIZE,
    Mode, Packet,
};

/// Called once per request when it ends, like an access log line.
pub type TransferLog = Arc<dyn Fn(&TransferRecord) + Send + Sync>;

/// Server settings.
#[derive(Clone)]
pub struct TftpOptions {
    /// How long to wait for an ACK before sending again, unless the client
    /// negotiates `timeout`.
    pub timeout: Duration,
    /// How many times one packet is sent again before the transfer is given
    /// up and its port freed.
    pub retries: u32,
    /// The longest `timeout` a client may negotiate (5 s); a longer one is
    /// left out of the OACK, so an abandoned transfer ends within
    /// `(retries + 1) × max_timeout`.
    pub max_timeout: Duration,
    /// Transfers at once (64), further capped to a quarter of the
    /// process's descriptor limit, two per transfer.
    pub max_transfers: usize,
    /// Transfers at once from one client address (8).
    pub max_transfers_per_client: usize,
    /// The largest `blksize` granted. It is further capped so that a block
    /// fits one unfragmented datagram on the path to the client (1468 on
    /// Ethernet, 65464 on loopback).
    pub max_blksize: u16,
    /// The largest `windowsize` granted (RFC 7440).
    pub max_windowsize: u16,
    /// The per-transfer log.
    pub log: Option<TransferLog>,
}

impl Default for TftpOptions {
    fn default() -> Self {
        TftpOptions {
            timeout: Duration::from_secs(1),
            retries: 5,
            max_timeout: Duration::from_secs(5),
            max_transfers: 64,
            max_transfers_per_client: 8,
            max_blksize: MAX_BLKSIZE,
            max_windowsize: 64,
            log: None,
        }
    }
}

impl fmt::Debug for TftpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TftpOptions")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("max_timeout", &self.max_timeout)
            .field("max_transfers", &self.max_transfers)
            .field("max_transfers_per_client", &self.max_transfers_per_client)
            .field("max_blksize", &self.max_blksize)
            .field("max_windowsize", &self.max_windowsize)
            .field("log", &self.log.is_some())
            .finish()
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The whole file was sent and acknowledged.
    Sent,
    /// The request was answered with an ERROR packet (not found, access
    /// violation, write refused, server busy, malformed).
    Refused { code: u16, message: String },
    /// The client ended the transfer with an ERROR packet.
    ClientError { code: u16, message: String },
    /// The client stopped acknowledging.
    TimedOut,
    /// A local failure (socket or file I/O); the client got a generic
    /// ERROR when one could be sent.
    Failed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Sent => f.write_str("sent"),
            Outcome::Refused { code, message } => write!(f, "refused (error {code}: {message})"),
            Outcome::ClientError { code, message } => {
                write!(f, "aborted by client (error {code}: {message})")
            }
            Outcome::TimedOut => f.write_str("timed out"),
            Outcome::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// One request, as the log callback sees it.
#[derive(Debug, Clone)]
pub struct TransferRecord {
    pub peer: SocketAddr,
    /// Whether the client asked to write (always refused).
    pub write: bool,
    /// The requested name as sent (lossily UTF-8).
    pub file: String,
    pub mode: Mode,
    /// The options granted in the OACK (empty when none was sent).
    pub options: Vec<(String, String)>,
    /// Bytes acknowledged by the client (as on the wire for netascii).
    pub bytes: u64,
    pub duration: Duration,
    pub outcome: Outcome,
}

impl fmt::Display for TransferRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.write { "WRQ" } else { "RRQ" };
        write!(f, "{} {op} {:?} {}", self.peer, self.file, self.mode)?;
        for (name, value) in &self.options {
            write!(f, " {name}={value}")?;
        }
        write!(
            f,
            " {} bytes {:.3}s {}",
            self.bytes,
            self.duration.as_secs_f64(),
            self.outcome
        )
    }
}

/// Counters of the listening socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TftpStats {
    /// Read and write requests received.
    pub requests: u64,
    /// Malformed requests, answered with ERROR 4.
    pub malformed: u64,
    /// Datagrams dropped unanswered (not a request, or not TFTP at all).
    pub dropped: u64,
    /// Read requests refused because the transfer caps were reached.
    pub busy: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    malformed: AtomicU64,
    dropped: AtomicU64,
    busy: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> TftpStats {
        TftpStats {
            requests: self.requests.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
        }
    }
}

/// A bound, not yet running, TFTP server.
pub struct TftpServer {
    socket: StdUdpSocket,
    local_addr: SocketAddr,
    root: PathBuf,
    options: TftpOptions,
    counters: Arc<Counters>,
}

/// A running server: stop it with [`shutdown`](TftpHandle::shutdown);
/// dropping the handle stops it too.
pub struct TftpHandle {
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl TftpServer {
    /// Binds the listening socket; the error names the address.
    pub fn bind(listen: SocketAddr, root: PathBuf, options: TftpOptions) -> io::Result<TftpServer> {
        let named = |e: io::Error| {
            io::Error::new(e.kind(), format!("cannot listen for TFTP on {listen}: {e}"))
        };
        let socket = StdUdpSocket::bind(listen).map_err(named)?;
        socket.set_nonblocking(true).map_err(named)?;
        let local_addr = socket.local_addr().map_err(named)?;
        Ok(TftpServer {
            socket,
            local_addr,
            root,
            options,
            counters: Arc::default(),
        })
    }

    /// The address actually bound (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters so far.
    pub fn stats(&self) -> TftpStats {
        self.counters.snapshot()
    }

    /// Serves on a new task of the current tokio runtime (panics outside
    /// one).
    pub fn spawn(self) -> TftpHandle {
        let (stop, stopped) = oneshot::channel::<()>();
        let local_addr = self.local_addr;
        let counters = self.counters.clone();
        let task = tokio::spawn(self.run(async {
            let _ = stopped.await;
        }));
        TftpHandle {
            local_addr,
            counters,
            stop: Some(stop),
            task,
        }
    }

    /// Serves until `shutdown` completes, then ends every transfer in flight.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let socket = UdpSocket::from_std(self.socket)?;
        let total = limits::fit(self.options.max_transfers, 2, 4, limits::descriptor_limit());
        let ctx = Arc::new(Ctx {
            slots: Slots::new(total, self.options.max_transfers_per_client),
            root: self.root,
            options: self.options,
            local_ip: self.local_addr.ip(),
        });
        let counters = self.counters;
        let mut transfers = JoinSet::new();
        let mut buf = vec![0u8; 65536];
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = transfers.join_next(), if !transfers.is_empty() => {}
                received = socket.recv_from(&mut buf) => {
                    // Errors (ICMP and the like) leave nothing to do but go on.
                    if let Ok((n, peer)) = received {
                        on_request(&socket, &ctx, &counters, &mut transfers, &buf[..n], peer).await;
                    }
                }
            }
        }
        transfers.shutdown().await;
        Ok(())
    }
}

/// One datagram on the listening port: a read starts a transfer, anything
/// else is answered (writes, malformed requests) or dropped.
async fn on_request(
    socket: &UdpSocket,
    ctx: &Arc<Ctx>,
    counters: &Counters,
    transfers: &mut JoinSet<()>,
    datagram: &[u8],
    peer: SocketAddr,
) {
    match Packet::decode(datagram) {
        Ok(Packet::Rrq(request)) => {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            match ctx.slots.try_acquire(peer.ip()) {
                Ok(slot) => {
                    transfers.spawn(serve_read(ctx.clone(), peer, request, slot));
                }
                Err(full) => {
                    counters.busy.fetch_add(1, Ordering::Relaxed);
                    let message = match full {
                        Full::All => "server busy, try again later",
                        Full::Address => "server busy: too many transfers from your address",
                    };
                    refuse_request(socket, ctx, peer, false, &request, ERR_NOT_DEFINED, message)
                        .await;
                }
            }
        }
        Ok(Packet::Wrq(request)) => {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            let message = "read-only server";
            refuse_request(
                socket,
                ctx,
                peer,
                true,
                &request,
                ERR_ACCESS_VIOLATION,
                message,
            )
            .await;
        }
        Err(e) if e.is_request() => {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            let answer = packet::error(ERR_ILLEGAL_OPERATION, &e.to_string());
            let _ = socket.send_to(&answer, peer).await;
        }
        // Stray DATA/ACK/ERROR/OACK from old transfers, or noise: answering
        // could start a loop with another host.
        _ => {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Answers a request from the listening port with an ERROR, and logs it.
async fn refuse_request(
    socket: &UdpSocket,
    ctx: &Ctx,
    peer: SocketAddr,
    write: bool,
    request: &packet::Request,
    code: u16,
    message: &str,
) {
    let _ = socket.send_to(&packet::error(code, message), peer).await;
    ctx.log(TransferRecord {
        peer,
        write,
        file: String::from_utf8_lossy(&request.filename).into_owned(),
        mode: request.mode,
        options: Vec::new(),
        bytes: 0,
        duration: Duration::ZERO,
        outcome: Outcome::Refused {
            code,
            message: message.into(),
        },
    });
}

impl TftpHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters so far.
    pub fn stats(&self) -> TftpStats {
        self.counters.snapshot()
    }

    /// Stops listening, ends every transfer in flight and waits for it.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

impl Drop for TftpHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Ctx {
    /// One per transfer in flight.
    slots: Arc<Slots>,
    root: PathBuf,
    options: TftpOptions,
    local_ip: std::net::IpAddr,
}

impl Ctx {
    fn log(&self, record: TransferRecord) {
        if let Some(log) = &self.options.log {
            log(&record);
        }
    }
}

#[path = "tftp_transfer.rs"]
mod transfer;
pub(crate) use transfer::grow_buffer;
use transfer::serve_read;

#[cfg(test)]
#[path = "tftp_abuse_tests.rs"]
mod abuse_tests;
#[cfg(test)]
#[path = "tftp_tests.rs"]
mod tests;
