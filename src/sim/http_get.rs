//! A tiny HTTP/1.1 client for the virtual host: what petitboot's wget and a
//! deploy agent need. One request per connection (`Connection: close`); a
//! GET body is streamed piece by piece and checked against Content-Length,
//! so kernels and images never sit whole in memory.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Default connect and per-read timeout.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
const CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad URL {0:?}")]
    BadUrl(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("bad response: {0}")]
    Malformed(String),
    #[error("connection closed after {got} of {expected} bytes")]
    Short { got: u64, expected: u64 },
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: u64 },
}

/// A `scheme://host[:port]/path` URL split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// Starts with `/`; the query, if any, included.
    pub path: String,
}

impl HttpUrl {
    /// An `http://` URL.
    pub fn parse(url: &str) -> Result<HttpUrl, HttpError> {
        HttpUrl::parse_as(url, "http://", 80)
    }

    /// A URL of another scheme with the same shape (`tftp://`).
    pub fn parse_as(url: &str, scheme: &str, default_port: u16) -> Result<HttpUrl, HttpError> {
        let bad = || HttpError::BadUrl(url.to_string());
        let rest = url.strip_prefix(scheme).ok_or_else(bad)?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        // The path goes into the request line verbatim: no spaces or controls.
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) || authority.contains('@') {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => default_port,
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            path,
        })
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// A response whose head has been read; the body follows on demand.
#[derive(Debug)]
pub struct Response {
    /// As the server spelled it, e.g. `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub content_length: Option<u64>,
    chunked: bool,
    stream: TcpStream,
    /// Body bytes that came with the head, not yet handed out.
    early: Vec<u8>,
    buf: Vec<u8>,
    received: u64,
    finished: bool,
    read_timeout: Duration,
}

impl Response {
    /// `HTTP/1.0 404 File not found`, as wget reports it.
    pub fn status_line(&self) -> String {
        format!("{} {} {}", self.version, self.status, self.reason)
    }

    /// The next piece of the body, `None` at its end. A connection closed
    /// before Content-Length bytes is an error. Cancel-safe: the only wait
    /// is one read, and nothing changes until it completes.
    pub async fn chunk(&mut self) -> Result<Option<&[u8]>, HttpError> {
        if self.finished {
            return Ok(None);
        }
        if self.chunked {
            return Err(HttpError::Malformed(
                "chunked transfer encoding is not supported".into(),
            ));
        }
        let left = self.content_length.map(|len| len - self.received);
        if left == Some(0) {
            self.finished = true;
            return Ok(None);
        }
        let cap = left.map_or(CHUNK, |l| l.min(CHUNK as u64) as usize);
        let n = if !self.early.is_empty() {
            let n = self.early.len().min(cap);
            self.buf[..n].copy_from_slice(&self.early[..n]);
            self.early.drain(..n);
            n
        } else {
            let read = self.stream.read(&mut self.buf[..cap]);
            timeout(self.read_timeout, read)
                .await
                .map_err(|_| HttpError::Timeout("reading the body"))??
        };
        if n == 0 {
            self.finished = true;
            return match self.content_length {
                Some(expected) => Err(HttpError::Short {
                    got: self.received,
                    expected,
                }),
                None => Ok(None),
            };
        }
        self.received += n as u64;
        Ok(Some(&self.buf[..n]))
    }

    /// The whole body, refused beyond `limit` bytes.
    pub async fn read_to_end(mut self, limit: u64) -> Result<Vec<u8>, HttpError> {
        if self.content_length.is_some_and(|len| len > limit) {
            return Err(HttpError::TooLarge { limit });
        }
        let mut body = Vec::new();
        while let Some(piece) = self.chunk().await? {
            if body.len() as u64 + piece.len() as u64 > limit {
                return Err(HttpError::TooLarge { limit });
            }
            body.extend_from_slice(piece);
        }
        Ok(body)
    }

    /// Reads and discards the body; returns its length.
    pub async fn drain(mut self) -> Result<u64, HttpError> {
        while self.chunk().await?.is_some() {}
        Ok(self.received)
    }
}

/// `GET url`.
pub async fn get(url: &str, read_timeout: Duration) -> Result<Response, HttpError> {
    request("GET", url, &[], b"", read_timeout).await
}

/// `POST url` with extra headers and a small body.
pub async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    read_timeout: Duration,
) -> Result<Response, HttpError> {
    request("POST", url, headers, body, read_timeout).await
}

async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    read_timeout: Duration,
) -> Result<Response, HttpError> {
    let url = HttpUrl::parse(url)?;
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: petitlab-sim\r\nAccept: */*\r\nConnection: close\r\n",
        url.path,
        url.host_header()
    );
    for (name, value) in headers {
        let bad = |c: char| c == '\r' || c == '\n';
        if name.is_empty() || name.contains(bad) || name.contains(':') || value.contains(bad) {
            return Err(HttpError::BadRequest(format!("header {name:?}")));
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");

    let addr = format!("{}:{}", url.host_header(), url.port);
    let connect = TcpStream::connect((url.host.as_str(), url.port));
    let mut stream = match timeout(read_timeout, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(HttpError::Connect { addr, source }),
        Err(_) => return Err(HttpError::Timeout("connecting")),
    };
    let send = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await
    };
    timeout(read_timeout, send)
        .await
        .map_err(|_| HttpError::Timeout("sending the request"))??;
    read_head(stream, read_timeout).await
}

async fn read_head(mut stream: TcpStream, read_timeout: Duration) -> Result<Response, HttpError> {
    let mut buf = Vec::with_capacity(1024);
    let mut piece = [0u8; 4096];
    loop {
        let read = stream.read(&mut piece);
        let n = timeout(read_timeout, read)
            .await
            .map_err(|_| HttpError::Timeout("waiting for the response"))??;
        if n == 0 {
            return Err(HttpError::Malformed(format!(
                "connection closed after {} bytes, before the response head ended",
                buf.len()
            )));
        }
        buf.extend_from_slice(&piece[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let mut response = Response {
                    version: format!("HTTP/1.{}", parsed.version.unwrap_or(1)),
                    status: parsed.code.unwrap_or(0),
                    reason: parsed.reason.unwrap_or("").to_string(),
                    content_length: None,
                    chunked: false,
                    stream,
                    early: buf[len..].to_vec(),
                    buf: vec![0; CHUNK],
                    received: 0,
                    finished: false,
                    read_timeout,
                };
                for h in parsed.headers.iter() {
                    let value = String::from_utf8_lossy(h.value);
                    let value = value.trim();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let len: u64 = value.parse().map_err(|_| {
                            HttpError::Malformed(format!("Content-Length {value:?}"))
                        })?;
                        if response.content_length.is_some_and(|l| l != len) {
                            return Err(HttpError::Malformed("conflicting Content-Length".into()));
                        }
                        response.content_length = Some(len);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                        && !value.eq_ignore_ascii_case("identity")
                    {
                        response.chunked = true;
                    }
                }
                if matches!(response.status, 204 | 304) {
                    response.content_length = Some(0);
                }
                return Ok(response);
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(HttpError::Malformed(format!(
                    "response head longer than {MAX_HEAD} bytes"
                )));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(HttpError::Malformed(e.to_string())),
        }
    }
}

#[cfg(test)]
#[path = "http_get_tests.rs"]
mod tests;
