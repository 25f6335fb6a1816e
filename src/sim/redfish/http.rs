//! The HTTPS server: TLS (rustls), HTTP/1.1 (hyper), bounded everywhere —
//! connections, handshake and header time, header and body size — then
//! [`routes`](super::routes) or the `/console0` websocket.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::Bmc;
use super::routes::{self, Reply, Req};
use super::websocket;

/// Connections served at once; more are closed right away.
const MAX_CONNECTIONS: usize = 64;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Also how long an idle keep-alive connection stays open.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Request bodies are small JSON documents.
pub const MAX_BODY: usize = 64 * 1024;
/// Read and dropped past [`MAX_BODY`] before answering 413.
const MAX_DRAINED: usize = 1024 * 1024;
/// hyper's read buffer, so the most header bytes a request may have.
const MAX_HEADER_BUF: usize = 16 * 1024;

pub type Body = Full<Bytes>;

/// Accepts connections until the front end stops.
pub async fn serve(listener: TcpListener, tls: TlsAcceptor, bmc: Arc<Bmc>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!(node = %bmc.name, "Redfish accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(node = %bmc.name, %peer, "Redfish: too many connections, closing");
            continue;
        };
        let (tls, task_bmc) = (tls.clone(), bmc.clone());
        bmc.spawn(async move {
            connection(tcp, peer, tls, task_bmc).await;
            drop(permit);
        });
    }
}

async fn connection(tcp: TcpStream, peer: SocketAddr, tls: TlsAcceptor, bmc: Arc<Bmc>) {
    let _ = tcp.set_nodelay(true);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(node = %bmc.name, %peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    let service = service_fn(move |req| {
        let bmc = bmc.clone();
        async move { Ok::<_, Infallible>(handle(bmc, peer, req).await) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BUF)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

async fn handle(bmc: Arc<Bmc>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let path = routes::normalize(req.uri().path()).to_string();
    if path == "/console0" {
        return websocket::upgrade(bmc, req);
    }
    let head = req.method() == Method::HEAD;
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_body(body)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(BodyError::TooLarge)) => {
            let text = format!("The request body is larger than {MAX_BODY} bytes.");
            return response(
                routes::general_error(StatusCode::PAYLOAD_TOO_LARGE, &text),
                false,
            );
        }
        Ok(Err(BodyError::Broken)) => {
            let text = "The request body could not be read.";
            return response(routes::general_error(StatusCode::BAD_REQUEST, text), false);
        }
        Err(_) => {
            let text = format!("The request body did not arrive within {BODY_TIMEOUT:?}.");
            return response(
                routes::general_error(StatusCode::REQUEST_TIMEOUT, &text),
                false,
            );
        }
    };
    let req = Req {
        method: &parts.method,
        path: &path,
        headers: &parts.headers,
        body: &body,
        peer,
    };
    response(routes::route(&bmc, &req), head)
}

enum BodyError {
    TooLarge,
    Broken,
}

/// The body, up to [`MAX_BODY`]. Past that, up to [`MAX_DRAINED`] more is
/// read and dropped before the refusal, so a client still sending gets the
/// 413 rather than a broken pipe.
async fn read_body(mut body: Incoming) -> Result<Bytes, BodyError> {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen > MAX_BODY + MAX_DRAINED {
            return Err(BodyError::TooLarge);
        }
        if seen <= MAX_BODY {
            kept.extend_from_slice(&data);
        }
    }
    if seen > MAX_BODY {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(kept))
}

/// The reply as HTTP, with bmcweb's usual headers.
pub fn response(reply: Reply, head: bool) -> Response<Body> {
    let body = match (&reply.body, head) {
        (Some(json), false) => Bytes::from(json.to_string()),
        _ => Bytes::new(),
    };
    let mut builder = Response::builder()
        .status(reply.status)
        .header("OData-Version", "4.0")
        .header("Cache-Control", "no-store, max-age=0")
        .header(
            "Strict-Transport-Security",
            "max-age=31536000; includeSubdomains",
        );
    if reply.body.is_some() {
        builder = builder.header("Content-Type", "application/json; charset=utf-8");
    }
    for (name, value) in reply.headers {
        builder = builder.header(name, value);
    }
    builder.body(Full::new(body)).unwrap_or_else(|e| {
        // Only a bad header value gets here; none of ours is.
        tracing::error!("building a Redfish response: {e}");
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}
