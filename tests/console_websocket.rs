//! The websocket console against Python's `websockets` server playing
//! bmcweb's `/console0` over TLS (tests/support/ws_console.py): all 256
//! byte values both ways in bmcweb-sized binary messages, the login's
//! headers reaching the server (X-Auth-Token, or a session cookie with the
//! XSRF token as the subprotocol), a 401 ending the console, reconnection
//! after a close frame or a dropped connection, pings answered, and an
//! untrusted certificate refused.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use petitlab::console_link::reconnect::{LinkError, LinkOptions};
use petitlab::console_link::websocket::{self, Login, WebsocketConsole};
use petitlab::console_link::{Console, ConsoleEvent, ConsoleInput};
use support::ws_peer::{COOKIE, TOKEN, WsConsolePeer, XSRF};

const BANNER: &[u8] = b"Press ~. to exit console\r\n";
const WAIT: Duration = Duration::from_secs(10);

fn options() -> LinkOptions {
    LinkOptions {
        reconnect: true,
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        connect_timeout: Duration::from_secs(5),
    }
}

/// A login giving fixed headers, counting its calls.
fn login(headers: &[(&str, &str)], calls: Arc<AtomicUsize>) -> Login {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(move || {
        calls.fetch_add(1, Ordering::SeqCst);
        let headers = headers.clone();
        Box::pin(async move { Ok(headers) })
    })
}

fn start(peer: &WsConsolePeer, login: Login) -> Console {
    websocket::spawn(
        WebsocketConsole {
            url: peer.url(),
            tls: peer.client_config(),
            login,
            node: "node9".into(),
        },
        options(),
    )
}

async fn next(console: &mut Console, peer: &WsConsolePeer) -> ConsoleEvent {
    match tokio::time::timeout(WAIT, console.events.recv()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the console's events ended"),
        Err(_) => panic!(
            "no console event within {WAIT:?}; server said {:?}; stderr:\n{}",
            peer.seen(),
            peer.stderr_text()
        ),
    }
}

async fn expect_output(console: &mut Console, peer: &WsConsolePeer, expected: &[u8]) {
    let mut got = Vec::new();
    while got.len() < expected.len() {
        match next(console, peer).await {
            ConsoleEvent::Data(bytes) => got.extend_from_slice(&bytes),
            other => panic!(
                "expected {} more bytes, got {other:?}",
                expected.len() - got.len()
            ),
        }
    }
    assert!(
        got == expected,
        "output differs:\n got {got:?}\nwant {expected:?}"
    );
}

async fn expect_connected_with_banner(console: &mut Console, peer: &WsConsolePeer) {
    assert_eq!(next(console, peer).await, ConsoleEvent::Connected);
    expect_output(console, peer, BANNER).await;
}

async fn expect_closed(console: &mut Console, peer: &WsConsolePeer) -> (String, usize) {
    let mut reconnections = 0;
    loop {
        match next(console, peer).await {
            ConsoleEvent::Closed { reason } => return (reason, reconnections),
            ConsoleEvent::Reconnecting { .. } => reconnections += 1,
            other => panic!("expected the console to end, got {other:?}"),
        }
    }
}

async fn send(console: &Console, bytes: &[u8]) {
    console
        .input
        .send(ConsoleInput::Data(bytes.to_vec()))
        .await
        .unwrap();
}

fn all_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 256) as u8).collect()
}

#[tokio::test]
async fn bytes_both_ways_with_the_token_header() {
    let mut peer = WsConsolePeer::start(Duration::from_secs(20)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut console = start(&peer, login(&[("X-Auth-Token", TOKEN)], calls.clone()));
    expect_connected_with_banner(&mut console, &peer).await;
    peer.expect("open 1").await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Every byte value four times over: one binary message, echoed.
    let payload = all_bytes(1024);
    send(&console, &payload).await;
    expect_output(&mut console, &peer, &payload).await;
    assert_eq!(peer.expect("message ").await, "message 1024 binary");

    // A long paste goes in bmcweb-sized (4096-byte) binary messages.
    let paste = all_bytes(10_000);
    send(&console, &paste).await;
    expect_output(&mut console, &peer, &paste).await;
    for size in [4096, 4096, 1808] {
        assert_eq!(
            peer.expect("message ").await,
            format!("message {size} binary")
        );
    }

    // `~.` is just bytes here too; a break is not available and harmless.
    send(&console, b"\r~.\r\n").await;
    expect_output(&mut console, &peer, b"\r~.\r\n").await;
    console.input.send(ConsoleInput::Break).await.unwrap();
    send(&console, b"ok").await;
    expect_output(&mut console, &peer, b"ok").await;

    console.input.send(ConsoleInput::Close).await.unwrap();
    let (reason, _) = expect_closed(&mut console, &peer).await;
    assert_eq!(reason, "closed");
    peer.expect("closed").await;
}

#[tokio::test]
async fn a_session_cookie_with_its_xsrf_token_as_subprotocol() {
    let mut peer = WsConsolePeer::start(Duration::from_secs(20)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let cookie = format!("SESSION={COOKIE}");
    let mut console = start(
        &peer,
        login(
            &[("Cookie", &cookie), ("Sec-WebSocket-Protocol", XSRF)],
            calls.clone(),
        ),
    );
    expect_connected_with_banner(&mut console, &peer).await;
    peer.expect("open 1").await;
    send(&console, &all_bytes(256)).await;
    expect_output(&mut console, &peer, &all_bytes(256)).await;

    // The cookie without the right XSRF token: refused like bmcweb does.
    let mut refused = start(
        &peer,
        login(
            &[("Cookie", &cookie), ("Sec-WebSocket-Protocol", "wrong")],
            calls,
        ),
    );
    let (reason, reconnections) = expect_closed(&mut refused, &peer).await;
    assert_eq!(reconnections, 0, "{reason}");
    assert!(reason.contains("401"), "{reason}");
}

#[tokio::test]
async fn a_401_at_the_handshake_ends_the_console() {
    let mut peer = WsConsolePeer::start(Duration::from_secs(20)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let wrong = "expired-token-123";
    let mut console = start(&peer, login(&[("X-Auth-Token", wrong)], calls.clone()));
    let (reason, reconnections) = expect_closed(&mut console, &peer).await;
    assert_eq!(reconnections, 0, "a refused login is not retried: {reason}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    for part in ["node9", "401", &peer.url()] {
        assert!(reason.contains(part), "{part:?} missing from: {reason}");
    }
    assert!(!reason.contains(wrong), "{reason}");
    peer.expect("refused 401").await;

    // A login that fails says why and ends the console if it says so.
    let failing: Login =
        Arc::new(|| Box::pin(async { Err(LinkError::fatal("Redfish login refused: HTTP 401")) }));
    let mut console = start(&peer, failing);
    let (reason, _) = expect_closed(&mut console, &peer).await;
    assert!(
        reason.contains("node9") && reason.contains("Redfish login refused"),
        "{reason}"
    );
}

#[tokio::test]
async fn reconnects_after_a_close_frame_and_a_dropped_connection() {
    let mut peer = WsConsolePeer::start(Duration::from_secs(20)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut console = start(&peer, login(&[("X-Auth-Token", TOKEN)], calls.clone()));
    expect_connected_with_banner(&mut console, &peer).await;
    peer.expect("open 1").await;

    // bmcweb closes the websocket when the console socket fails.
    peer.command("close").await;
    let ConsoleEvent::Reconnecting { reason, .. } = next(&mut console, &peer).await else {
        panic!("expected a reconnection after the close frame");
    };
    assert!(
        reason.contains("1011") && reason.contains("Error connecting to host port"),
        "{reason}"
    );
    expect_connected_with_banner(&mut console, &peer).await;
    peer.expect("open 1").await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "a new login per connection"
    );
    send(&console, &all_bytes(512)).await;
    expect_output(&mut console, &peer, &all_bytes(512)).await;

    // The connection drops without a close frame.
    peer.command("abort").await;
    let ConsoleEvent::Reconnecting { .. } = next(&mut console, &peer).await else {
        panic!("expected a reconnection after the dropped connection");
    };
    expect_connected_with_banner(&mut console, &peer).await;
    send(&console, b"back").await;
    expect_output(&mut console, &peer, b"back").await;
}

#[tokio::test]
async fn pings_are_answered_and_the_console_stays_up() {
    // The server pings every 200 ms and drops a peer that leaves one
    // unanswered for 1 s.
    let mut peer = WsConsolePeer::start(Duration::from_millis(200)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut console = start(&peer, login(&[("X-Auth-Token", TOKEN)], calls));
    expect_connected_with_banner(&mut console, &peer).await;
    peer.expect("open 1").await;
    let quiet = tokio::time::timeout(Duration::from_millis(2500), console.events.recv()).await;
    assert!(
        quiet.is_err(),
        "expected no event while idle, got {quiet:?}"
    );
    send(&console, b"still there").await;
    expect_output(&mut console, &peer, b"still there").await;
    assert!(
        !peer.seen().iter().any(|line| line == "closed"),
        "{:?}",
        peer.seen()
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let peer = WsConsolePeer::start(Duration::from_secs(20)).await;
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(other.cert.der().clone()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut console = websocket::spawn(
        WebsocketConsole {
            url: peer.url(),
            tls: support::ws_peer::client_config(roots),
            login: login(&[("X-Auth-Token", TOKEN)], calls),
            node: "node9".into(),
        },
        options(),
    );
    let (reason, reconnections) = expect_closed(&mut console, &peer).await;
    assert_eq!(reconnections, 0, "{reason}");
    assert!(
        reason.contains("certificate") && reason.contains(&peer.url()),
        "{reason}"
    );
    assert!(
        !peer.seen().iter().any(|line| line.starts_with("open")),
        "{:?}",
        peer.seen()
    );
}
