//! One connection's task: read request heads (and bodies) in order, answer
//! each, log each, until the peer or the server ends it.

use std::fmt::{Display, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::proto::{self, Head, Target};
use super::{AccessRecord, ApiRequest, ApiResponse, Shared, Stop, file, stopping};

/// How a response went.
pub(super) struct Sent {
    pub status: u16,
    /// Body bytes written.
    pub bytes: u64,
    /// Whether the connection may carry another request.
    pub keep: bool,
}

/// A response's status line and headers, built as text.
pub(super) struct ResponseHead(String);

impl ResponseHead {
    pub fn new(status: u16) -> ResponseHead {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut text = String::with_capacity(256);
        let _ = write!(
            text,
            "HTTP/1.1 {status} {}\r\nServer: petitlab\r\nDate: {}\r\n",
            reason(status),
            proto::http_date(now.as_secs())
        );
        ResponseHead(text)
    }

    pub fn header(mut self, name: &str, value: impl Display) -> ResponseHead {
        let _ = write!(self.0, "{name}: {value}\r\n");
        self
    }

    /// The head's bytes, with the `Connection` header `keep` calls for
    /// (HTTP/1.0 clients need keep-alive spelled out).
    pub fn finish(mut self, keep: bool, request: Option<&Head>) -> Vec<u8> {
        if !keep {
            self.0.push_str("Connection: close\r\n");
        } else if request.is_some_and(|h| h.minor_version == 0) {
            self.0.push_str("Connection: keep-alive\r\n");
        }
        self.0.push_str("\r\n");
        self.0.into_bytes()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Writes all of `bytes`, or gives up after `timeout`.
pub(super) async fn write_all(stream: &mut TcpStream, bytes: &[u8], timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Why no request could be read: the status to answer with, or `None`
/// when the peer is gone.
type ReadFailure = Option<u16>;

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    node: Option<String>,
    shared: Arc<Shared>,
    stop: Stop,
    /// Bytes received and not yet consumed (pipelined requests wait here).
    buf: Vec<u8>,
}

/// Turns away a connection over its address's cap: a 503 if the socket
/// takes it at once (a new socket's buffer does), then closed, without
/// waiting on the peer.
pub(super) fn refuse_busy(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let (time, started) = (SystemTime::now(), Instant::now());
    let status = 503;
    let body = "503 Service Unavailable: too many connections from your address\n";
    let mut response = ResponseHead::new(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Length", body.len())
        .header("Retry-After", 1)
        .finish(false, None);
    response.extend_from_slice(body.as_bytes());
    let written = stream
        .try_write(&response)
        .is_ok_and(|n| n == response.len());
    if let Some(log) = &shared.options.access_log {
        log(&AccessRecord {
            time,
            peer,
            node: node_of(shared, peer),
            method: "-".into(),
            path: "-".into(),
            status,
            bytes: if written { body.len() as u64 } else { 0 },
            duration: started.elapsed(),
        });
    }
}

fn node_of(shared: &Shared, peer: SocketAddr) -> Option<String> {
    shared
        .options
        .node_resolver
        .as_ref()
        .and_then(|resolve| resolve(peer.ip()))
}

pub(super) async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, stop: Stop) {
    let _ = stream.set_nodelay(true);
    let node = node_of(&shared, peer);
    let mut conn = Conn {
        stream,
        peer,
        node,
        shared,
        stop,
        buf: Vec::with_capacity(4096),
    };
    conn.run().await;
}

impl Conn {
    async fn run(&mut self) {
        loop {
            let head = match self.read_head().await {
                Ok(Some(head)) => head,
                Ok(None) | Err(None) => return,
                Err(Some(status)) => {
                    let (time, started) = (SystemTime::now(), Instant::now());
                    let sent = self.simple(None, status, false, &[]).await;
                    self.log(time, started, "-", "-", &sent);
                    self.linger().await;
                    return;
                }
            };
            let (time, started) = (SystemTime::now(), Instant::now());
            let Some(sent) = self.answer(&head).await else {
                return; // the peer left in the middle of its body
            };
            let path = head.target.split(['?', '#']).next().unwrap_or_default();
            self.log(time, started, &head.method, path, &sent);
            if !sent.keep {
                if matches!(sent.status, 400 | 408 | 413 | 431 | 501) {
                    self.linger().await; // input may be left unread
                }
                return;
            }
        }
    }

    fn log(&self, time: SystemTime, started: Instant, method: &str, path: &str, sent: &Sent) {
        if let Some(log) = &self.shared.options.access_log {
            log(&AccessRecord {
                time,
                peer: self.peer,
                node: self.node.clone(),
                method: method.to_owned(),
                path: path.to_owned(),
                status: sent.status,
                bytes: sent.bytes,
                duration: started.elapsed(),
            });
        }
    }

    /// The next request head; `Ok(None)` when the connection ends between
    /// requests (peer closed, idle too long, server stopping).
    async fn read_head(&mut self) -> Result<Option<Head>, ReadFailure> {
        let max = self.shared.options.max_header_bytes;
        let deadline = Instant::now() + self.shared.options.header_timeout;
        loop {
            if !self.buf.is_empty() {
                match proto::parse_head(&self.buf, max) {
                    Ok(Some(head)) => return Ok(Some(head)),
                    Ok(None) => {}
                    Err(reject) => return Err(Some(reject.status())),
                }
            } else if stopping(&self.stop) {
                return Ok(None);
            }
            let idle = self.buf.is_empty();
            self.buf.reserve(4096);
            tokio::select! {
                read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)) => {
                    match read {
                        Err(_) if idle => return Ok(None),
                        Err(_) => return Err(Some(408)),
                        Ok(Ok(0)) if idle => return Ok(None),
                        Ok(Ok(0) | Err(_)) => return Err(None),
                        Ok(Ok(_)) => {}
                    }
                }
                _ = self.stop.changed(), if idle => return Ok(None),
            }
        }
    }

    /// Reads the body after `head`, up to `need` bytes of head and body,
    /// and drops both from the buffer.
    async fn read_body(&mut self, head: &Head, need: usize) -> Result<Vec<u8>, ReadFailure> {
        if head.expects_continue() && self.buf.len() < need {
            let line = b"HTTP/1.1 100 Continue\r\n\r\n";
            if !write_all(&mut self.stream, line, self.shared.options.send_timeout).await {
                return Err(None);
            }
        }
        let deadline = Instant::now() + self.shared.options.request_timeout;
        while self.buf.len() < need {
            self.buf.reserve((need - self.buf.len()).min(64 * 1024));
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(Some(408)),
                Ok(Ok(0) | Err(_)) => return Err(None),
                Ok(Ok(_)) => {}
            }
        }
        let body = self.buf[head.len..need].to_vec();
        self.buf.drain(..need);
        Ok(body)
    }

    /// Answers one request; `None` if the peer is gone before an answer.
    async fn answer(&mut self, head: &Head) -> Option<Sent> {
        let length = match head.content_length() {
            Ok(length) => length,
            Err(reject) => return Some(self.simple(Some(head), reject.status(), false, &[]).await),
        };
        let need = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(head.len));
        let Some(need) = need.filter(|_| length <= self.shared.options.max_body_bytes) else {
            return Some(self.simple(Some(head), 413, false, &[]).await);
        };
        let body = match self.read_body(head, need).await {
            Ok(body) => body,
            Err(None) => return None,
            Err(Some(status)) => return Some(self.simple(Some(head), status, false, &[]).await),
        };
        let keep = head.keep_alive() && !stopping(&self.stop);
        let sent = match proto::classify(&head.target) {
            Target::Bad => self.simple(Some(head), 400, false, &[]).await,
            Target::NotFound => self.simple(Some(head), 404, keep, &[]).await,
            Target::Api { path, query } => match self.shared.options.api.clone() {
                None => self.simple(Some(head), 404, keep, &[]).await,
                Some(api) => {
                    let response = api.handle(&ApiRequest {
                        method: head.method.clone(),
                        path,
                        query,
                        headers: head.headers.clone(),
                        body,
                        peer: self.peer,
                        node: self.node.clone(),
                    });
                    self.api_response(head, response, keep).await
                }
            },
            Target::File(_) if !matches!(head.method.as_str(), "GET" | "HEAD") => {
                let allow = [("Allow", "GET, HEAD")];
                self.simple(Some(head), 405, keep, &allow).await
            }
            Target::File(requested) => match file::open(&self.shared.root, &requested) {
                Err(file::Refusal::NotFound) => self.simple(Some(head), 404, keep, &[]).await,
                Err(file::Refusal::Unreadable { path, error }) => {
                    let status = file::unreadable_status(&error);
                    tracing::warn!(
                        "HTTP: cannot open {} for {}: {error} (answered {status})",
                        crate::text::display_safe(&path.display().to_string()),
                        self.peer
                    );
                    self.simple(Some(head), status, keep, &[]).await
                }
                Ok(opened) => {
                    let timeout = self.shared.options.send_timeout;
                    file::respond(&mut self.stream, head, &opened, keep, timeout).await
                }
            },
        };
        Some(sent)
    }

    /// A short text response for `status`.
    async fn simple(
        &mut self,
        head: Option<&Head>,
        status: u16,
        keep: bool,
        extra: &[(&str, &str)],
    ) -> Sent {
        let body = format!("{status} {}\n", reason(status));
        let mut response = ResponseHead::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Content-Length", body.len());
        for (name, value) in extra {
            response = response.header(name, value);
        }
        self.send(head, response, body.as_bytes(), keep, status)
            .await
    }

    async fn api_response(&mut self, head: &Head, response: ApiResponse, keep: bool) -> Sent {
        let status = match response.status {
            s @ 200..=599 => s,
            _ => 500,
        };
        let content_type: String = (response.content_type.chars())
            .filter(|c| !c.is_control())
            .collect();
        let mut out = ResponseHead::new(status).header("Cache-Control", "no-store");
        let body: &[u8] = if matches!(status, 204 | 304) {
            &[]
        } else {
            out = out
                .header("Content-Type", content_type)
                .header("Content-Length", response.body.len());
            &response.body
        };
        self.send(Some(head), out, body, keep, status).await
    }

    /// Writes `response` and, unless the request was HEAD, `body`.
    async fn send(
        &mut self,
        head: Option<&Head>,
        response: ResponseHead,
        body: &[u8],
        keep: bool,
        status: u16,
    ) -> Sent {
        let mut bytes = response.finish(keep, head);
        let body = if head.is_some_and(|h| h.method == "HEAD") {
            &[]
        } else {
            body
        };
        bytes.extend_from_slice(body);
        let written = write_all(&mut self.stream, &bytes, self.shared.options.send_timeout).await;
        Sent {
            status,
            bytes: if written { body.len() as u64 } else { 0 },
            keep: keep && written,
        }
    }

    /// Before closing after an error, lets the peer read the response:
    /// closing with unread input would reset the connection and could
    /// destroy it. Sends FIN, then discards input for a little while.
    async fn linger(&mut self) {
        let _ = self.stream.shutdown().await;
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut sink = [0u8; 4096];
        let mut budget = 256 * 1024;
        while budget > 0 {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut sink)).await {
                Ok(Ok(n)) if n > 0 => budget -= n.min(budget),
                _ => return,
            }
        }
    }
}
