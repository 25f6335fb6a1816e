//! The embedded HTTP/1.1 server petitboot fetches configs, kernels and
//! initrds from: static files under one root, sent with `sendfile(2)`.
//!
//! - GET and HEAD of regular files, with `Last-Modified`, `ETag`,
//!   conditional requests (304), single byte ranges (206/416) and
//!   keep-alive/pipelining. Anything that does not resolve to a regular
//!   file inside the root — missing, a directory, `..` in any encoding, an
//!   encoded `/`, a symlink out — is the same 404. A regular file inside
//!   that cannot be opened is not: 403 (permissions), 503 (out of
//!   descriptors) or 500, with a warning naming it in the log.
//! - `/v1/...` is reserved for an [`ApiHandler`]; it is never a file path,
//!   and without a handler it is 404.
//! - One task per connection, at most [`HttpOptions::max_connections`] at a
//!   time (fewer when, at two descriptors each, they would take more than
//!   half the process's descriptor limit), at most [`HttpOptions::max_connections_per_client`] from
//!   one address (beyond it a connection gets 503 and is closed, so one
//!   host trickling bytes cannot hold every connection). A request head
//!   must arrive within [`HttpOptions::header_timeout`], a body within
//!   [`HttpOptions::request_timeout`], and a peer that stops reading for
//!   [`HttpOptions::send_timeout`] is dropped.
//! - One [`AccessRecord`] per request to the caller's sink; bodies and
//!   headers (so `Authorization`) are never part of it.

#[path = "http_conn.rs"]
mod conn;
#[path = "http_file.rs"]
mod file;
#[path = "http_proto.rs"]
mod proto;
#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::limits::{self, Slots};

/// Connections the kernel completes before we accept them.
const BACKLOG: u32 = 1024;

/// Where access records go: called once per request, after the response.
pub type AccessLog = Arc<dyn Fn(&AccessRecord) + Send + Sync>;
/// Maps a peer's address to a node name for the access log (called once
/// per connection; keep it quick).
pub type NodeResolver = Arc<dyn Fn(IpAddr) -> Option<String> + Send + Sync>;

/// The handler of the reserved `/v1/` API. Called on the connection's task:
/// it must not block (hand slow work to a channel).
pub trait ApiHandler: Send + Sync {
    fn handle(&self, request: &ApiRequest) -> ApiResponse;
}

/// A request under `/v1/`, body read in full (up to
/// [`HttpOptions::max_body_bytes`]).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: String,
    /// Percent-decoded, `.` and empty segments removed: `/v1/nodes/n1`.
    pub path: String,
    /// The raw query after `?`, if any.
    pub query: Option<String>,
    /// Every header as received (names as the client spelled them).
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
    /// The node the [`NodeResolver`] named for `peer`.
    pub node: Option<String>,
}

impl ApiRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// The handler's answer; the server adds framing headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    /// 200..=599 (anything else is sent as 500).
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn json(status: u16, value: &serde_json::Value) -> ApiResponse {
        ApiResponse {
            status,
            content_type: "application/json".into(),
            body: value.to_string().into_bytes(),
        }
    }

    pub fn text(status: u16, text: &str) -> ApiResponse {
        ApiResponse {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: text.as_bytes().to_vec(),
        }
    }
}

/// One served request, for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// When the request head was complete.
    pub time: SystemTime,
    pub peer: SocketAddr,
    pub node: Option<String>,
    /// `-` when the request could not be parsed.
    pub method: String,
    /// The request path as sent (still percent-encoded), query dropped.
    pub path: String,
    pub status: u16,
    /// Body bytes sent (headers not counted).
    pub bytes: u64,
    /// From the complete request head to the end of the response.
    pub duration: Duration,
}

/// `peer node "METHOD path" status bytes duration_ms`, control characters
/// in the path escaped so a request cannot forge log lines.
impl fmt::Display for AccessRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path: String = self.path.chars().flat_map(char::escape_default).collect();
        write!(
            f,
            "{} {} \"{} {}\" {} {} {:.1}ms",
            self.peer,
            self.node.as_deref().unwrap_or("-"),
            self.method,
            path,
            self.status,
            self.bytes,
            self.duration.as_secs_f64() * 1e3
        )
    }
}

/// Callbacks and limits. `Default` gives no log, no resolver, no API and
/// the limits documented on each field.
#[derive(Clone)]
pub struct HttpOptions {
    pub access_log: Option<AccessLog>,
    pub node_resolver: Option<NodeResolver>,
    pub api: Option<Arc<dyn ApiHandler>>,
    /// Connections served at once (1024, fewer if at two descriptors each
    /// they would take more than half the descriptor limit); more wait in
    /// the listen backlog (1024).
    pub max_connections: usize,
    /// Connections one client address may hold at once (32); beyond it a
    /// connection is answered 503 and closed.
    pub max_connections_per_client: usize,
    /// Largest request head (16 KiB → 431 beyond).
    pub max_header_bytes: usize,
    /// Largest request body (1 MiB → 413 beyond).
    pub max_body_bytes: u64,
    /// To receive a request's head, from the connection's start or the end
    /// of the previous response (idle keep-alive time included): 5 s, a
    /// deadline for the whole head however slowly its bytes trickle in.
    pub header_timeout: Duration,
    /// To receive a request's body (10 s).
    pub request_timeout: Duration,
    /// Longest wait for the peer to accept more response bytes (30 s).
    pub send_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> HttpOptions {
        HttpOptions {
            access_log: None,
            node_resolver: None,
            api: None,
            max_connections: 1024,
            max_connections_per_client: 32,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1 << 20,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("access_log", &self.access_log.is_some())
            .field("node_resolver", &self.node_resolver.is_some())
            .field("api", &self.api.is_some())
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_client",
                &self.max_connections_per_client,
            )
            .field("max_header_bytes", &self.max_header_bytes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("header_timeout", &self.header_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("send_timeout", &self.send_timeout)
            .finish()
    }
}

/// What every connection task shares.
struct Shared {
    root: PathBuf,
    options: HttpOptions,
}

/// The shutdown signal: `None` while serving, then the grace period.
type Stop = watch::Receiver<Option<Duration>>;

/// Whether the server is shutting down (a dropped handle counts).
fn stopping(stop: &Stop) -> bool {
    stop.has_changed().is_err() || stop.borrow().is_some()
}

/// A bound, not yet serving, server.
pub struct HttpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl HttpServer {
    /// Listens on `listen` (port 0 picks one) to serve files under `root`.
    pub async fn bind(
        listen: SocketAddr,
        root: PathBuf,
        options: HttpOptions,
    ) -> io::Result<HttpServer> {
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("HTTP root {} is not a directory", root.display()),
            ));
        }
        let listener = listen_on(listen).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen for HTTP on {listen}: {e}"))
        })?;
        let local_addr = listener.local_addr()?;
        Ok(HttpServer {
            listener,
            local_addr,
            shared: Arc::new(Shared { root, options }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts serving on a task of the current tokio runtime.
    pub fn spawn(self) -> HttpHandle {
        let (stop_tx, stop) = watch::channel(None);
        let local_addr = self.local_addr;
        let task = tokio::spawn(self.serve(stop));
        HttpHandle {
            local_addr,
            stop: stop_tx,
            task,
        }
    }

    /// Accepts until stopped, then lets connections finish within the
    /// grace period and aborts the rest; returns how many were aborted.
    async fn serve(self, mut stop: Stop) -> usize {
        let HttpServer {
            listener, shared, ..
        } = self;
        let options = &shared.options;
        let most = limits::fit(options.max_connections, 2, 2, limits::descriptor_limit());
        let permits = Arc::new(Semaphore::new(most.max(1)));
        let slots = Slots::new(usize::MAX, options.max_connections_per_client);
        let mut conns = JoinSet::new();
        loop {
            let accept = async {
                let permit = permits.clone().acquire_owned().await;
                match listener.accept().await {
                    Ok((stream, peer)) => Some((stream, peer, permit)),
                    Err(e) => {
                        // Out of fds or memory: back off instead of spinning.
                        if !matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                        ) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        None
                    }
                }
            };
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                Some(_) = conns.join_next() => {}
                accepted = accept => {
                    let Some((stream, peer, permit)) = accepted else { continue };
                    let Ok(slot) = slots.try_acquire(peer.ip()) else {
                        conn::refuse_busy(stream, peer, &shared);
                        continue;
                    };
                    let (shared, stop) = (shared.clone(), stop.clone());
                    conns.spawn(async move {
                        conn::serve(stream, peer, shared, stop).await;
                        drop((permit, slot));
                    });
                }
            }
        }
        drop(listener);
        let grace = if stop.has_changed().is_err() {
            Duration::ZERO
        } else {
            stop.borrow().unwrap_or_default()
        };
        let drain = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_ok() {
            return 0;
        }
        let left = conns.len();
        conns.shutdown().await;
        left
    }
}

/// A listening socket with a backlog that absorbs a burst of connections
/// (the standard library's 128 fills in an instant).
fn listen_on(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// A running server. Dropping it stops the server and aborts transfers at
/// once; [`HttpHandle::shutdown`] lets them finish.
pub struct HttpHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<usize>,
}

impl HttpHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes idle keep-alive connections, lets requests
    /// in progress finish for up to `grace`, then aborts the rest. Returns
    /// the number of connections aborted.
    pub async fn shutdown(mut self, grace: Duration) -> usize {
        let _ = self.stop.send(Some(grace));
        (&mut self.task).await.unwrap_or(0)
    }
}

impl Drop for HttpHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(Some(Duration::ZERO));
    }
}
