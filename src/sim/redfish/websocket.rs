//! bmcweb's `/console0`: the host console over a websocket on the HTTPS
//! port. The host's serial output goes out as binary frames; what the
//! client sends (binary or text) goes to the serial input as bytes.
//! Authenticated like any Redfish request, or with a session token as the
//! subprotocol (as bmcweb's web UI does).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role, WebSocketConfig};

use super::super::SerialInput;
use super::Bmc;
use super::http::{Body, response};
use super::routes::{self, Reply};
use super::sessions::{Caller, authenticate};

/// bmcweb's console clients at once, as SerialConsole reports.
pub const MAX_CLIENTS: usize = 15;
/// How often a quiet client is pinged; after three silent intervals it is
/// dropped.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Frames a console client sends are keystrokes and pastes.
const MAX_MESSAGE: usize = 64 * 1024;

fn has_token(headers: &HeaderMap, name: hyper::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Answers the upgrade request (101, or an error) and, on success, starts
/// relaying once hyper hands over the connection.
pub fn upgrade(bmc: Arc<Bmc>, mut req: Request<Incoming>) -> Response<Body> {
    let headers = req.headers();
    let Some(caller) = authenticate(
        headers,
        &bmc.credentials,
        &bmc.sessions,
        true,
        Instant::now(),
    ) else {
        return response(routes::unauthorized(), false);
    };
    let key = headers
        .get(SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec());
    let is_upgrade = req.method() == Method::GET
        && has_token(headers, CONNECTION, "upgrade")
        && has_token(headers, UPGRADE, "websocket")
        && headers
            .get(SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13");
    let (true, Some(key)) = (is_upgrade, key) else {
        let text =
            "/console0 is a websocket: GET with Upgrade: websocket and Sec-WebSocket-Version: 13.";
        return response(routes::bad_request("GeneralError", text, &[]), false);
    };
    let Ok(permit) = bmc.websockets.clone().try_acquire_owned() else {
        let text = format!("/console0 already has {MAX_CLIENTS} clients.");
        let reply = routes::general_error(StatusCode::SERVICE_UNAVAILABLE, &text);
        return response(reply, false);
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_bmc = bmc.clone();
    bmc.spawn(async move {
        let _permit = permit;
        match on_upgrade.await {
            Ok(upgraded) => relay(task_bmc, TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!(node = %task_bmc.name, "/console0 upgrade failed: {e}"),
        }
    });
    let mut reply = Reply {
        status: StatusCode::SWITCHING_PROTOCOLS,
        headers: vec![
            ("Upgrade", "websocket".into()),
            ("Connection", "Upgrade".into()),
            ("Sec-WebSocket-Accept", derive_accept_key(&key)),
        ],
        body: None,
    };
    if let Caller::WebsocketToken(protocol) = caller {
        reply.headers.push(("Sec-WebSocket-Protocol", protocol));
    }
    response(reply, true)
}

/// Host output → binary frames; frames → serial input; until either side
/// closes.
async fn relay<S>(bmc: Arc<Bmc>, io: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    let (mut sink, mut stream) = ws.split();
    let mut output = bmc.serial.output();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    let mut last_heard = Instant::now();
    tracing::info!(node = %bmc.name, "/console0 opened");
    loop {
        tokio::select! {
            _ = ping.tick() => {
                // A peer gone without a word would hold its slot forever.
                if last_heard.elapsed() > PING_INTERVAL * 3
                    || sink.send(Message::Ping(Default::default())).await.is_err()
                {
                    break;
                }
            }
            chunk = output.recv() => match chunk {
                Ok(bytes) => {
                    if sink.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                // Output lost while this client was slow: go on.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            message = stream.next() => match message.inspect(|_| last_heard = Instant::now()) {
                Some(Ok(Message::Binary(bytes))) => {
                    bmc.serial.deliver(SerialInput::Data(bytes.to_vec()));
                }
                Some(Ok(Message::Text(text))) => {
                    bmc.serial.deliver(SerialInput::Data(text.as_bytes().to_vec()));
                }
                // Pings are answered by tungstenite itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
        }
    }
    let _ = sink.close().await;
    tracing::info!(node = %bmc.name, "/console0 closed");
}
