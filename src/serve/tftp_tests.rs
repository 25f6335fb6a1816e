//! The server against petitlab's own client, and against a raw socket for
//! the protocol corners (duplicate ACKs, partial window ACKs, timeouts).

use super::*;
use crate::serve::tftp_client::{ClientOptions, TftpError, fetch};
use crate::serve::tftp_packet::{ERR_FILE_NOT_FOUND, Request};
use std::sync::Mutex;

pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) root: PathBuf,
    pub(super) handle: TftpHandle,
    log: Arc<Mutex<Vec<TransferRecord>>>,
}

pub(super) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

pub(super) fn start(options: TftpOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(dir.path().join("secret"), b"outside").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link-out")).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let options = TftpOptions {
        log: Some(Arc::new(move |r: &TransferRecord| {
            sink.lock().unwrap().push(r.clone())
        })),
        ..options
    };
    let server = TftpServer::bind("127.0.0.1:0".parse().unwrap(), root.clone(), options).unwrap();
    Fixture {
        _dir: dir,
        root,
        handle: server.spawn(),
        log,
    }
}

impl Fixture {
    /// The log once it has `n` records (the server logs a transfer after
    /// the client's last ACK, so a moment after the client returns).
    pub(super) async fn log_of(&self, n: usize) -> Vec<TransferRecord> {
        for _ in 0..200 {
            let log = self.log.lock().unwrap().clone();
            if log.len() >= n {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fewer than {n} log records: {:?}", self.log.lock().unwrap());
    }
}

fn opts(blksize: Option<u16>, windowsize: Option<u16>) -> ClientOptions {
    ClientOptions {
        blksize,
        windowsize,
        tsize: true,
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn sizes_blksizes_and_windows_round_trip() {
    let f = start(TftpOptions::default());
    let addr = f.handle.local_addr();
    for len in [0, 1, 511, 512, 513, 1024, 1428 * 3, 8192 * 5 + 1, 100_000] {
        let data = pattern(len);
        std::fs::write(f.root.join("sub/f"), &data).unwrap();
        for (b, w) in [
            (None, None),
            (Some(1428), None),
            (Some(8192), Some(4)),
            (Some(512), Some(16)),
            (Some(65464), Some(3)),
        ] {
            let got = fetch(addr, "/sub/f", opts(b, w)).await.unwrap();
            assert!(got == data, "len {len} blksize {b:?} windowsize {w:?}");
        }
    }
    let log = f.log_of(9 * 5).await;
    let last = log.last().unwrap();
    assert_eq!(last.outcome, Outcome::Sent);
    assert_eq!(last.bytes, 100_000);
    assert_eq!(
        last.options,
        vec![
            ("blksize".to_string(), "65464".to_string()),
            ("tsize".to_string(), "100000".to_string()),
            ("windowsize".to_string(), "3".to_string()),
        ]
    );
    assert!(
        last.to_string()
            .contains("RRQ \"/sub/f\" octet blksize=65464")
    );
    drop(log);
    f.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn block_numbers_roll_over_after_65535() {
    let f = start(TftpOptions::default());
    // blksize 8: 70 000 blocks, past 65535 → 0 without a huge file.
    let data = pattern(8 * 70_000 + 3);
    std::fs::write(f.root.join("big"), &data).unwrap();
    for w in [None, Some(64)] {
        let got = fetch(f.handle.local_addr(), "big", opts(Some(8), w))
            .await
            .unwrap();
        assert!(got == data, "windowsize {w:?}");
    }
}

#[tokio::test]
async fn netascii_converts_line_ends() {
    let f = start(TftpOptions::default());
    let text = b"kernel /vmlinux\nappend console=hvc0\r\nlone\rcr\n".repeat(50);
    std::fs::write(f.root.join("cfg"), &text).unwrap();
    let raw = fetch(f.handle.local_addr(), "cfg", ClientOptions::default())
        .await
        .unwrap();
    assert_eq!(raw, text, "octet is untouched");
    let mut wire = Vec::new();
    packet::netascii_encode(&text, &mut wire);
    let mut o = opts(Some(100), Some(2));
    o.mode = Mode::NetAscii;
    o.tsize = false;
    assert_eq!(
        fetch(f.handle.local_addr(), "cfg", o).await.unwrap(),
        text,
        "netascii decodes back"
    );
    let log = f.log_of(2).await;
    assert_eq!(log[1].bytes, wire.len() as u64);
}

#[tokio::test]
async fn refusals_reveal_nothing_outside_the_root() {
    let f = start(TftpOptions::default());
    std::fs::write(f.root.join("ok"), b"fine").unwrap();
    let addr = f.handle.local_addr();
    let err = |path: &'static str| async move {
        match fetch(addr, path, ClientOptions::default()).await {
            Err(TftpError::Server { code, message }) => (code, message),
            other => panic!("{path}: {other:?}"),
        }
    };
    // `../secret` exists, `../nothing` does not: the same answer.
    assert_eq!(err("../secret").await, err("../nothing").await);
    assert_eq!(err("sub/../../secret").await.0, ERR_ACCESS_VIOLATION);
    assert_eq!(err("..\\secret").await.0, ERR_ACCESS_VIOLATION);
    // Symlinks out and absolute paths look like missing files.
    assert_eq!(err("link-out").await, err("missing").await);
    assert_eq!(err("/etc/passwd").await, err("missing").await);
    assert_eq!(err("missing").await.0, ERR_FILE_NOT_FOUND);
    assert_eq!(err("sub").await.0, ERR_FILE_NOT_FOUND, "a directory");
    for (_, message) in [err("../secret").await, err("link-out").await] {
        assert!(!message.contains("secret") && !message.contains('/'));
    }
    assert_eq!(
        fetch(addr, "ok", ClientOptions::default()).await.unwrap(),
        b"fine"
    );
}

/// A raw client socket for protocol corners.
pub(super) async fn raw(addr: SocketAddr, request: &[u8]) -> (UdpSocket, SocketAddr, Vec<u8>) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(request, addr).await.unwrap();
    let mut buf = vec![0; 70000];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf.truncate(n);
    (s, from, buf)
}

pub(super) async fn recv(s: &UdpSocket, within: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0; 70000];
    let (n, _) = tokio::time::timeout(within, s.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    buf.truncate(n);
    Some(buf)
}

pub(super) fn rrq(name: &str, options: &[(&str, &str)]) -> Vec<u8> {
    Packet::Rrq(Request {
        filename: name.as_bytes().to_vec(),
        mode: Mode::Octet,
        options: options
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    })
    .to_bytes()
}

#[tokio::test]
async fn writes_and_malformed_requests_are_answered_noise_is_dropped() {
    let f = start(TftpOptions::default());
    let addr = f.handle.local_addr();
    let wrq = b"\0\x02upload\0octet\0";
    let (_, _, reply) = raw(addr, wrq).await;
    assert_eq!(
        Packet::decode(&reply).unwrap(),
        Packet::Error {
            code: ERR_ACCESS_VIOLATION,
            message: "read-only server".into()
        }
    );
    for bad in [&b"\0\x01name-without-end"[..], b"\0\x01f\0mail\0"] {
        let (_, _, reply) = raw(addr, bad).await;
        assert!(
            matches!(
                Packet::decode(&reply),
                Ok(Packet::Error {
                    code: ERR_ILLEGAL_OPERATION,
                    ..
                })
            ),
            "{reply:?}"
        );
    }
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for noise in [&b"\0\x04\0\x01"[..], b"x", b"\0\x09zz"] {
        s.send_to(noise, addr).await.unwrap();
    }
    assert_eq!(recv(&s, Duration::from_millis(200)).await, None);
    let stats = f.handle.stats();
    assert_eq!(stats.malformed, 2);
    assert_eq!(stats.dropped, 3);
    assert_eq!(stats.requests, 1);
    assert!(f.log.lock().unwrap()[0].write);
}

#[tokio::test]
async fn options_are_negotiated_and_bad_values_ignored() {
    let f = start(TftpOptions {
        max_windowsize: 8,
        ..TftpOptions::default()
    });
    std::fs::write(f.root.join("f"), pattern(3000)).unwrap();
    let addr = f.handle.local_addr();
    let oack = |reply: &[u8]| match Packet::decode(reply).unwrap() {
        Packet::Oack { options } => options,
        other => panic!("{other:?}"),
    };
    let (_, _, reply) = raw(
        addr,
        &rrq(
            "f",
            &[
                ("BlkSize", "100000"),
                ("tsize", "0"),
                ("timeout", "3"),
                ("windowsize", "100"),
                ("rollover", "0"),
            ],
        ),
    )
    .await;
    let granted = oack(&reply);
    assert_eq!(
        granted,
        [
            ("blksize", "65464"),
            ("tsize", "3000"),
            ("timeout", "3"),
            ("windowsize", "8")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // Bad values are ignored: no option left, so DATA 1 comes at once.
    let (_, _, reply) = raw(
        addr,
        &rrq(
            "f",
            &[
                ("blksize", "7"),
                ("timeout", "0"),
                ("windowsize", "0"),
                ("tsize", "x"),
                ("unknown", "1"),
            ],
        ),
    )
    .await;
    assert_eq!(&reply[..4], &packet::data_header(1));
    assert_eq!(reply.len(), 4 + 512);
}

#[tokio::test]
async fn duplicate_acks_do_not_double_the_traffic() {
    let f = start(TftpOptions {
        timeout: Duration::from_secs(5),
        ..TftpOptions::default()
    });
    std::fs::write(f.root.join("f"), pattern(512 * 4 + 10)).unwrap();
    let (s, server, first) = raw(f.handle.local_addr(), &rrq("f", &[])).await;
    assert_eq!(&first[..4], &packet::data_header(1));
    s.send_to(&packet::ack(1), server).await.unwrap();
    let second = recv(&s, Duration::from_secs(1)).await.unwrap();
    assert_eq!(&second[..4], &packet::data_header(2));
    // The ACK of block 1 again (a late duplicate): no DATA 2 again.
    s.send_to(&packet::ack(1), server).await.unwrap();
    s.send_to(&packet::ack(0), server).await.unwrap();
    assert_eq!(recv(&s, Duration::from_millis(300)).await, None);
    for k in 2..=5u16 {
        s.send_to(&packet::ack(k), server).await.unwrap();
        s.send_to(&packet::ack(k), server).await.unwrap();
        if k < 5 {
            let d = recv(&s, Duration::from_secs(1)).await.unwrap();
            assert_eq!(&d[..4], &packet::data_header(k + 1));
        }
    }
    assert_eq!(recv(&s, Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn a_partial_window_ack_resends_from_there() {
    let f = start(TftpOptions::default());
    let data = pattern(100 * 10 + 5);
    std::fs::write(f.root.join("f"), &data).unwrap();
    let (s, server, reply) = raw(
        f.handle.local_addr(),
        &rrq("f", &[("blksize", "100"), ("windowsize", "4")]),
    )
    .await;
    assert!(matches!(Packet::decode(&reply), Ok(Packet::Oack { .. })));
    s.send_to(&packet::ack(0), server).await.unwrap();
    let mut blocks = Vec::new();
    for _ in 0..4 {
        let d = recv(&s, Duration::from_secs(1)).await.unwrap();
        blocks.push(u16::from_be_bytes([d[2], d[3]]));
    }
    assert_eq!(blocks, [1, 2, 3, 4]);
    // "Lost" 3 and 4: ACK 2, and the next window starts at 3.
    s.send_to(&packet::ack(2), server).await.unwrap();
    let mut blocks = Vec::new();
    for _ in 0..4 {
        let d = recv(&s, Duration::from_secs(1)).await.unwrap();
        blocks.push(u16::from_be_bytes([d[2], d[3]]));
    }
    assert_eq!(blocks, [3, 4, 5, 6]);
    // A late ACK of 2 again changes nothing.
    s.send_to(&packet::ack(2), server).await.unwrap();
    assert_eq!(recv(&s, Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn retransmits_then_gives_up_and_logs_it() {
    let f = start(TftpOptions {
        timeout: Duration::from_millis(100),
        retries: 2,
        ..TftpOptions::default()
    });
    std::fs::write(f.root.join("f"), pattern(600)).unwrap();
    let (s, _, first) = raw(f.handle.local_addr(), &rrq("f", &[])).await;
    // Sent again `retries` times, then silence.
    for _ in 0..2 {
        assert_eq!(recv(&s, Duration::from_secs(1)).await, Some(first.clone()));
    }
    assert_eq!(recv(&s, Duration::from_millis(400)).await, None);
    let log = f.log_of(1).await;
    assert_eq!(log[0].outcome, Outcome::TimedOut);
}

#[tokio::test]
async fn client_error_ends_the_transfer() {
    let f = start(TftpOptions::default());
    std::fs::write(f.root.join("f"), pattern(5000)).unwrap();
    let (s, server, _) = raw(f.handle.local_addr(), &rrq("f", &[("blksize", "1000")])).await;
    s.send_to(&packet::error(8, "no thanks"), server)
        .await
        .unwrap();
    let log = f.log_of(1).await;
    assert_eq!(
        log[0].outcome,
        Outcome::ClientError {
            code: 8,
            message: "no thanks".into()
        }
    );
}

#[tokio::test]
async fn a_closed_client_port_ends_the_transfer_at_the_first_resend() {
    // The transfer socket waits for reads only; the ICMP port unreachable
    // answering its first resend must still wake it (as EPOLLERR).
    let f = start(TftpOptions {
        timeout: Duration::from_millis(100),
        retries: 50,
        ..TftpOptions::default()
    });
    std::fs::write(f.root.join("f"), pattern(600)).unwrap();
    let started = std::time::Instant::now();
    let (s, _, _) = raw(f.handle.local_addr(), &rrq("f", &[])).await;
    drop(s);
    let log = f.log_of(1).await;
    assert_eq!(
        log[0].outcome,
        Outcome::ClientError {
            code: 0,
            message: "client port closed".into()
        }
    );
    // Well before the 5.1 s that 50 resends would take.
    assert!(started.elapsed() < Duration::from_secs(2), "{log:?}");
}

#[tokio::test]
async fn concurrent_transfers_each_get_their_bytes() {
    // All from one address: more than its default cap.
    let f = start(TftpOptions {
        max_transfers_per_client: 16,
        ..TftpOptions::default()
    });
    let addr = f.handle.local_addr();
    let mut tasks = Vec::new();
    for i in 0..16usize {
        let data = pattern(20_000 + i * 777);
        std::fs::write(f.root.join(format!("f{i}")), &data).unwrap();
        tasks.push(tokio::spawn(async move {
            let w = if i % 2 == 0 { Some(8) } else { None };
            let got = fetch(addr, &format!("f{i}"), opts(Some(512), w))
                .await
                .unwrap();
            assert!(got == data, "f{i}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn bind_errors_name_the_address_and_shutdown_frees_the_port() {
    let f = start(TftpOptions::default());
    let addr = f.handle.local_addr();
    let e = TftpServer::bind(addr, f.root.clone(), TftpOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    f.handle.shutdown().await.unwrap();
    TftpServer::bind(addr, f.root.clone(), TftpOptions::default()).unwrap();
}

/// A relay between one client and the server that drops datagrams at
/// random (seeded, `percent` of them each way). The client sees the relay
/// as the server.
async fn lossy_relay(server: SocketAddr, percent: u64, seed: u64) -> SocketAddr {
    let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = front.local_addr().unwrap();
    let mut state = seed | 1;
    let mut lose = move || {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % 100 < percent
    };
    tokio::spawn(async move {
        let (mut client, mut upstream) = (None, server);
        let (mut a, mut b) = (vec![0; 70000], vec![0; 70000]);
        loop {
            tokio::select! {
                Ok((n, from)) = front.recv_from(&mut a) => {
                    client = Some(from);
                    if !lose() {
                        let _ = back.send_to(&a[..n], upstream).await;
                    }
                }
                Ok((n, from)) = back.recv_from(&mut b) => {
                    upstream = from;
                    if let Some(c) = client && !lose() {
                        let _ = front.send_to(&b[..n], c).await;
                    }
                }
            }
        }
    });
    addr
}

#[tokio::test]
async fn lost_packets_are_sent_again() {
    let timeout = Duration::from_millis(30);
    let f = start(TftpOptions {
        timeout,
        retries: 20,
        ..TftpOptions::default()
    });
    let data = pattern(1000 * 100 + 17);
    std::fs::write(f.root.join("f"), &data).unwrap();
    for (percent, w) in [
        (10, None),
        (20, None),
        (10, Some(8)),
        (20, Some(16)),
        (5, Some(64)),
    ] {
        let relay = lossy_relay(f.handle.local_addr(), percent, 0x9e37_79b9_7f4a_7c15).await;
        let mut o = opts(Some(1000), w);
        o.timeout = timeout;
        o.retries = 20;
        let got = match fetch(relay, "f", o).await {
            Ok(got) => got,
            Err(e) => panic!(
                "{percent}% lost, windowsize {w:?}: {e}; {:#?}",
                f.log.lock().unwrap()
            ),
        };
        assert!(got == data, "{percent}% lost, windowsize {w:?}");
    }
}
