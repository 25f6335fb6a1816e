//! The server against clients that hold transfers open, negotiate long
//! timeouts, or name files that cannot be opened.

use super::tests::{pattern, raw, rrq, start};
use super::*;
use crate::serve::tftp_client::{ClientOptions, TftpError, fetch};
use crate::serve::tftp_packet::ERR_FILE_NOT_FOUND;

fn oack(reply: &[u8]) -> Vec<(String, String)> {
    match Packet::decode(reply).unwrap() {
        Packet::Oack { options } => options,
        other => panic!("not an OACK: {other:?}"),
    }
}

#[tokio::test]
async fn a_timeout_above_the_bound_is_left_out_of_the_oack() {
    let f = start(TftpOptions::default());
    std::fs::write(f.root.join("f"), pattern(3000)).unwrap();
    let addr = f.handle.local_addr();
    let long = [("timeout", "255"), ("blksize", "1024")];
    let (_, _, reply) = raw(addr, &rrq("f", &long)).await;
    assert_eq!(oack(&reply), [("blksize".to_string(), "1024".to_string())]);
    let (_, _, reply) = raw(addr, &rrq("f", &[("timeout", "5")])).await;
    assert_eq!(oack(&reply), [("timeout".to_string(), "5".to_string())]);

    let f = start(TftpOptions {
        max_timeout: Duration::from_secs(2),
        ..TftpOptions::default()
    });
    std::fs::write(f.root.join("f"), pattern(3000)).unwrap();
    let (_, _, reply) = raw(f.handle.local_addr(), &rrq("f", &[("timeout", "3")])).await;
    // No option left to grant: DATA 1 at once.
    assert_eq!(&reply[..4], &packet::data_header(1));
}

/// An RRQ from a fresh socket on `ip`, and its first answer and its port.
async fn rrq_from(ip: &str, server: SocketAddr) -> (UdpSocket, SocketAddr, Vec<u8>) {
    let s = UdpSocket::bind((ip.parse::<std::net::IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    s.send_to(&rrq("f", &[]), server).await.unwrap();
    let mut buf = vec![0; 2000];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    buf.truncate(n);
    (s, from, buf)
}

fn busy(reply: &[u8]) -> String {
    match Packet::decode(reply).unwrap() {
        Packet::Error { code: 0, message } => message,
        other => panic!("not a busy ERROR: {other:?}"),
    }
}

#[tokio::test]
async fn transfers_are_capped_per_client_address_and_in_all() {
    let f = start(TftpOptions {
        max_transfers: 3,
        max_transfers_per_client: 2,
        timeout: Duration::from_secs(3),
        ..TftpOptions::default()
    });
    std::fs::write(f.root.join("f"), pattern(2000)).unwrap();
    let server = f.handle.local_addr();
    // Two transfers from 127.0.0.1, never acknowledged, hold their slots.
    let (a1, a1_port, first) = rrq_from("127.0.0.1", server).await;
    assert_eq!(&first[..4], &packet::data_header(1));
    let (_a2, _, first) = rrq_from("127.0.0.1", server).await;
    assert_eq!(&first[..4], &packet::data_header(1));
    // A third from the same address is refused from the listening port.
    let (_, from, reply) = rrq_from("127.0.0.1", server).await;
    assert_eq!(from, server);
    assert!(busy(&reply).contains("your address"), "{reply:?}");
    // Another address still gets one; then the total is reached.
    let (_b1, _, first) = rrq_from("127.0.0.2", server).await;
    assert_eq!(&first[..4], &packet::data_header(1));
    let (_, from, reply) = rrq_from("127.0.0.2", server).await;
    assert_eq!(from, server);
    assert_eq!(busy(&reply), "server busy, try again later");
    assert_eq!(f.handle.stats().busy, 2);
    // A transfer that ends gives its slot back.
    a1.send_to(&packet::error(0, "bye"), a1_port).await.unwrap();
    let log = f.log_of(3).await;
    assert!(
        log.iter()
            .any(|r| matches!(r.outcome, Outcome::ClientError { .. })),
        "{log:?}"
    );
    let (_, _, first) = rrq_from("127.0.0.2", server).await;
    assert_eq!(&first[..4], &packet::data_header(1));
    let refused: Vec<_> = log
        .iter()
        .filter(|r| matches!(&r.outcome, Outcome::Refused { code: 0, message } if message.starts_with("server busy")))
        .collect();
    assert_eq!(refused.len(), 2, "{log:?}");
}

#[tokio::test]
async fn an_open_error_is_logged_as_one_and_the_client_told_little() {
    let f = start(TftpOptions::default());
    // A socket in the root: opening it fails with ENXIO, which is neither
    // "not found" nor "access denied".
    let _listener = std::os::unix::net::UnixListener::bind(f.root.join("sock")).unwrap();
    let addr = f.handle.local_addr();
    let quick = ClientOptions {
        timeout: Duration::from_millis(500),
        retries: 2,
        ..ClientOptions::default()
    };
    match fetch(addr, "sock", quick.clone()).await {
        Err(TftpError::Server { code, message }) => {
            assert_eq!((code, message.as_str()), (0, "server error"));
        }
        other => panic!("{other:?}"),
    }
    let log = f.log_of(1).await;
    match &log[0].outcome {
        Outcome::Failed(e) => assert!(
            e.contains("opening the file") && e.contains("os error 6"),
            "{e}"
        ),
        other => panic!("logged as {other:?}, not as the I/O error it is"),
    }
    // A FIFO is no file to send, and must not hold a thread open.
    let fifo = f.root.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    match fetch(addr, "fifo", quick).await {
        Err(TftpError::Server { code, .. }) => assert_eq!(code, ERR_FILE_NOT_FOUND),
        other => panic!("{other:?}"),
    }
}
