//! The host console through bmcweb's websocket (`wss://bmc/console0`).
//!
//! What bmcweb does (include/obmc_console.hpp, http/websocket.hpp):
//! - `/console0` is the default host console (newer builds also serve
//!   `/console/<id>`); it relays the obmc-console socket both ways.
//! - Host output goes out as **binary** messages of at most 4096 bytes (one
//!   socket read each). Every message received, text or binary, is written
//!   to the console raw: no framing, no subprotocol of its own, no break.
//!   Its read buffer holds 128 KiB, so input goes in 4096-byte messages.
//! - The upgrade request is authenticated like any bmcweb request: an
//!   `X-Auth-Token` header (a Redfish session's token), or the session
//!   cookie, in which case `Sec-WebSocket-Protocol` must carry the session's
//!   XSRF token (bmcweb echoes whatever protocol was offered). The user
//!   needs the OpenBMCHostConsole privilege (ConfigureManager or
//!   ConfigureComponents on older builds). A refused upgrade is an HTTP 401
//!   or 403, which ends the console here: retrying will not fix it.
//! - When the console socket fails bmcweb sends a close frame; that (or any
//!   lost connection) is retried.
//!
//! TLS is ours (tokio-rustls) with ALPN pinned to http/1.1: a websocket
//! upgrade needs HTTP/1.1 and bmcweb also speaks h2.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Bytes, Message};

use super::Console;
use super::reconnect::{self, Connector, Link, LinkError, LinkOptions};

/// Input goes in messages no larger than this (bmcweb's own output size).
const MAX_SEND: usize = 4096;
/// Largest message or frame accepted from the BMC (it sends 4 KiB).
const MAX_MESSAGE: usize = 256 * 1024;
const MAX_FRAME: usize = 64 * 1024;
/// A connection quiet this long is pinged; no answer within
/// [`PONG_WAIT`] and it is declared lost.
const PING_AFTER: Duration = Duration::from_secs(20);
const PONG_WAIT: Duration = Duration::from_secs(10);

/// Logs in (per connection) and gives the headers the upgrade request
/// carries, e.g. `X-Auth-Token`, or `Cookie` plus `Sec-WebSocket-Protocol`.
pub type Login =
    Arc<dyn Fn() -> BoxFuture<'static, Result<Vec<(String, String)>, LinkError>> + Send + Sync>;

/// How to reach one node's console through bmcweb.
#[derive(Clone)]
pub struct WebsocketConsole {
    /// `wss://host:port/console0`.
    pub url: String,
    pub tls: Arc<rustls::ClientConfig>,
    pub login: Login,
    /// The node's name, for messages.
    pub node: String,
}

impl fmt::Debug for WebsocketConsole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebsocketConsole")
            .field("url", &shown_url(&self.url))
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Runs the node's websocket console until it is closed or refused for good.
pub fn spawn(console: WebsocketConsole, options: LinkOptions) -> Console {
    reconnect::spawn(console, options)
}

/// Where to connect, from the URL.
struct Target {
    host: String,
    port: u16,
    /// scheme://host:port/path, without credentials or query, for messages.
    shown: String,
}

fn target(url: &str) -> Result<Target, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    if uri.scheme_str() != Some("wss") {
        return Err("only wss:// URLs are supported (bmcweb serves the console over TLS)".into());
    }
    let host = uri
        .host()
        .ok_or("the URL names no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let shown = shown_url(url);
    Ok(Target { host, port, shown })
}

/// The URL without user info or query (either may hold a credential).
fn shown_url(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) => {
            let host = uri.host().unwrap_or("?");
            let port = uri.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{host}{port}{}",
                uri.scheme_str().unwrap_or("?"),
                uri.path()
            )
        }
        Err(_) => "<unparsable URL>".into(),
    }
}

impl WebsocketConsole {
    fn fatal(&self, what: impl fmt::Display) -> LinkError {
        LinkError::fatal(format!("node {}: {what}", self.node))
    }

    fn transient(&self, what: impl fmt::Display) -> LinkError {
        LinkError::transient(format!("node {}: {what}", self.node))
    }

    fn request(
        &self,
        headers: Vec<(String, String)>,
    ) -> Result<tungstenite::handshake::client::Request, LinkError> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| self.fatal(format!("console URL {}: {e}", shown_url(&self.url))))?;
        for (name, value) in headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| self.fatal(format!("login gave an invalid header name {name:?}")))?;
            // The value is a credential: never in a message or a log.
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                self.fatal(format!("login gave an invalid value for header {name}"))
            })?;
            value.set_sensitive(true);
            request.headers_mut().append(header, value);
        }
        Ok(request)
    }
}

impl Connector for WebsocketConsole {
    type Link = WsLink;

    async fn connect(&mut self) -> Result<WsLink, LinkError> {
        let target = target(&self.url)
            .map_err(|e| self.fatal(format!("console URL {}: {e}", shown_url(&self.url))))?;
        let headers = (self.login)().await.map_err(|e| LinkError {
            message: format!(
                "node {}: logging in for the console: {}",
                self.node, e.message
            ),
            fatal: e.fatal,
        })?;
        let request = self.request(headers)?;
        let server_name = ServerName::try_from(target.host.clone())
            .map_err(|e| self.fatal(format!("console URL {}: {e}", target.shown)))?;

        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| self.transient(format!("connecting to {}: {e}", target.shown)))?;
        let _ = tcp.set_nodelay(true);
        let mut tls = (*self.tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = TlsConnector::from(Arc::new(tls))
            .connect(server_name, tcp)
            .await
            .map_err(|e| {
                if is_certificate_error(&e) {
                    self.fatal(format!("TLS certificate of {} refused: {e}", target.shown))
                } else {
                    self.transient(format!("TLS with {}: {e}", target.shown))
                }
            })?;

        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_FRAME));
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, tls, Some(config))
                .await
                .map_err(|e| match e {
                    tungstenite::Error::Http(response) => {
                        let status = response.status();
                        let what = format!(
                            "the BMC refused the console websocket {}: HTTP {status}",
                            target.shown
                        );
                        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                            self.fatal(format!(
                        "{what} (wrong session token, or the user lacks the host console privilege)"
                    ))
                        } else {
                            self.transient(what)
                        }
                    }
                    e => self.transient(format!("websocket handshake with {}: {e}", target.shown)),
                })?;
        Ok(WsLink::new(ws, PING_AFTER, PONG_WAIT))
    }
}

fn is_certificate_error(e: &io::Error) -> bool {
    matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(_))
    )
}

/// One open console websocket (over TLS; any stream in tests).
pub struct WsLink<S = TlsStream<TcpStream>> {
    ws: WebSocketStream<S>,
    last_heard: Instant,
    /// A ping is out, unanswered.
    pinged: bool,
    ping_after: Duration,
    pong_wait: Duration,
}

impl<S> WsLink<S> {
    fn new(ws: WebSocketStream<S>, ping_after: Duration, pong_wait: Duration) -> WsLink<S> {
        WsLink {
            ws,
            last_heard: Instant::now(),
            pinged: false,
            ping_after,
            pong_wait,
        }
    }
}

impl<S> Link for WsLink<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn read(&mut self) -> io::Result<Option<Vec<u8>>> {
        // Cancel-safe: the stream keeps partial frames, and the ping state
        // lives here, not in the future.
        loop {
            let deadline = self.last_heard
                + if self.pinged {
                    self.ping_after + self.pong_wait
                } else {
                    self.ping_after
                };
            tokio::select! {
                message = self.ws.next() => {
                    self.last_heard = Instant::now();
                    self.pinged = false;
                    match message {
                        None | Some(Err(tungstenite::Error::ConnectionClosed)) => return Ok(None),
                        Some(Err(e)) => return Err(io::Error::other(e)),
                        Some(Ok(Message::Binary(bytes))) => return Ok(Some(bytes.to_vec())),
                        Some(Ok(Message::Text(text))) => return Ok(Some(text.as_bytes().to_vec())),
                        Some(Ok(Message::Close(frame))) => {
                            // Send tungstenite's queued reply: a polite end.
                            let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.flush()).await;
                            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, closed_by_bmc(frame)));
                        }
                        // Pings are answered by tungstenite itself.
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if self.pinged {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no answer to a websocket ping within {:?}", self.pong_wait),
                        ));
                    }
                    self.pinged = true;
                    self.ws
                        .send(Message::Ping(Bytes::from_static(b"petitlab")))
                        .await
                        .map_err(io::Error::other)?;
                }
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        for chunk in bytes.chunks(MAX_SEND) {
            self.ws
                .feed(Message::Binary(Bytes::copy_from_slice(chunk)))
                .await
                .map_err(io::Error::other)?;
        }
        self.ws.flush().await.map_err(io::Error::other)
    }

    async fn send_break(&mut self) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "bmcweb's console websocket has no way to send a break",
        ))
    }

    async fn close(mut self) {
        if self.ws.close(None).await.is_ok() {
            // Wait for the BMC's close in reply (bounded by the caller).
            while let Some(Ok(_)) = self.ws.next().await {}
        }
    }
}

/// Why the BMC closed, safe to show (its reason is its text, escaped).
fn closed_by_bmc(frame: Option<CloseFrame>) -> String {
    match frame {
        None => "the BMC closed the websocket".into(),
        Some(frame) => {
            let reason: String = frame.reason.as_str().chars().take(123).collect();
            format!(
                "the BMC closed the websocket (code {}, {:?})",
                u16::from(frame.code),
                reason
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ring without post-quantum key exchange is fine for a config that
    // never connects.
    #[allow(deprecated)]
    fn no_roots() -> Arc<rustls::ClientConfig> {
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        )
    }

    #[test]
    fn urls_are_checked_and_shown_without_credentials() {
        let t = target("wss://bmc1.lab:8443/console0").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("bmc1.lab", 8443));
        assert_eq!(t.shown, "wss://bmc1.lab:8443/console0");
        let t = target("wss://[fe80::1]/console0").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fe80::1", 443));
        assert!(matches!(target("ws://bmc1/console0"), Err(e) if e.contains("wss://")));
        assert!(target("not a url").is_err());
        assert_eq!(
            shown_url("wss://root:0penBmc@bmc1:443/console0?token=abc"),
            "wss://bmc1:443/console0"
        );
    }

    #[test]
    fn debug_shows_neither_credentials_nor_login() {
        let console = WebsocketConsole {
            url: "wss://root:pw@bmc1/console0".into(),
            tls: no_roots(),
            login: Arc::new(|| Box::pin(async { Ok(vec![]) })),
            node: "n1".into(),
        };
        let shown = format!("{console:?}");
        assert!(!shown.contains("pw"), "{shown}");
        assert!(shown.contains("n1"), "{shown}");
    }

    #[test]
    fn header_values_are_marked_sensitive_and_bad_ones_refused() {
        let console = WebsocketConsole {
            url: "wss://bmc1/console0".into(),
            tls: no_roots(),
            login: Arc::new(|| Box::pin(async { Ok(vec![]) })),
            node: "n1".into(),
        };
        let request = console
            .request(vec![("X-Auth-Token".into(), "tok3n".into())])
            .unwrap();
        let value = request.headers().get("x-auth-token").unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value, "tok3n");
        let err = console
            .request(vec![("X-Auth-Token".into(), "bad\nsecret".into())])
            .unwrap_err();
        assert!(err.fatal);
        assert!(!err.message.contains("secret"), "{}", err.message);
        assert!(err.message.contains("X-Auth-Token"), "{}", err.message);
    }

    const QUIET: Duration = Duration::from_millis(100);

    /// A link over an in-memory pipe, and the server's end.
    async fn pair() -> (
        WsLink<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        use tokio_tungstenite::tungstenite::protocol::Role;
        let (a, b) = tokio::io::duplex(64 * 1024);
        let client = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
        let server = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
        (WsLink::new(client, QUIET, QUIET), server)
    }

    #[tokio::test]
    async fn a_silent_peer_is_pinged_then_declared_lost() {
        let (mut link, _server) = pair().await;
        let started = Instant::now();
        // The server never reads, so never answers the ping.
        let err = link.read().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        let waited = started.elapsed();
        assert!(waited >= QUIET * 2 && waited < QUIET * 10, "{waited:?}");
    }

    #[tokio::test]
    async fn an_answering_peer_keeps_the_link_through_quiet_spells() {
        let (mut link, mut server) = pair().await;
        let peer = tokio::spawn(async move {
            let mut pings = 0;
            // Reading answers pings (tungstenite queues and sends pongs).
            while let Some(Ok(message)) = server.next().await {
                if let Message::Ping(_) = message {
                    pings += 1;
                    if pings == 5 {
                        server
                            .send(Message::Binary(Bytes::from_static(b"late")))
                            .await
                            .unwrap();
                    }
                }
            }
            pings
        });
        // Five quiet spells answered, then the host speaks.
        assert_eq!(link.read().await.unwrap(), Some(b"late".to_vec()));
        link.close().await;
        assert_eq!(peer.await.unwrap(), 5);
    }

    #[tokio::test]
    async fn a_close_frame_is_an_error_naming_it_and_input_is_chunked() {
        let (mut link, mut server) = pair().await;
        link.write(&vec![7u8; 9000]).await.unwrap();
        let mut sizes = Vec::new();
        for _ in 0..3 {
            match server.next().await.unwrap().unwrap() {
                Message::Binary(bytes) => sizes.push(bytes.len()),
                other => panic!("expected binary, got {other:?}"),
            }
        }
        assert_eq!(sizes, [4096, 4096, 808]);
        server
            .close(Some(CloseFrame {
                code: tungstenite::protocol::frame::coding::CloseCode::Error,
                reason: "Error connecting to host port".into(),
            }))
            .await
            .unwrap();
        let err = link.read().await.unwrap_err();
        assert!(err.to_string().contains("1011"), "{err}");
        // The reply went out: the server sees the close completed.
        assert!(matches!(
            server.next().await,
            Some(Ok(Message::Close(_))) | None
        ));
    }

    #[test]
    fn close_reasons_are_escaped() {
        let frame = CloseFrame {
            code: tungstenite::protocol::frame::coding::CloseCode::Away,
            reason: "bye\x1b[2J".into(),
        };
        let shown = closed_by_bmc(Some(frame));
        assert!(!shown.contains('\x1b'), "{shown}");
        assert!(shown.contains("1001"), "{shown}");
    }
}
