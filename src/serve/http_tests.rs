//! The server over real sockets on 127.0.0.1, driven by raw requests.

use std::path::Path;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

struct Lab {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("v1")).unwrap();
    std::fs::write(root.join("a.txt"), b"hello").unwrap();
    std::fs::write(root.join("v1/x"), b"never served").unwrap();
    Lab { _dir: dir, root }
}

async fn start(root: &Path, options: HttpOptions) -> HttpHandle {
    let listen = "127.0.0.1:0".parse().unwrap();
    let server = HttpServer::bind(listen, root.to_path_buf(), options)
        .await
        .unwrap();
    server.spawn()
}

/// One parsed response: status, headers (lower-case names), body.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits `bytes` into responses; `bodiless[i]` marks answers to HEAD.
fn responses(mut bytes: &[u8], bodiless: &[bool]) -> Vec<Response> {
    let mut out = Vec::new();
    for &no_body in bodiless {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(len) = r.parse(bytes).unwrap() else {
            panic!(
                "incomplete response in {:?}",
                String::from_utf8_lossy(bytes)
            );
        };
        let headers: Vec<(String, String)> = (r.headers.iter())
            .map(|h| {
                let value = String::from_utf8(h.value.to_vec()).unwrap();
                (h.name.to_ascii_lowercase(), value)
            })
            .collect();
        let status = r.code.unwrap();
        let length: usize = match headers.iter().find(|(n, _)| n == "content-length") {
            Some((_, v)) if !no_body && status != 304 => v.parse().unwrap(),
            _ => 0,
        };
        out.push(Response {
            status,
            headers,
            body: bytes[len..len + length].to_vec(),
        });
        bytes = &bytes[len + length..];
    }
    assert!(
        bytes.is_empty(),
        "left over: {:?}",
        String::from_utf8_lossy(bytes)
    );
    out
}

/// Sends `request` and reads until the server closes.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let read = stream.read_to_end(&mut out);
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the server closes")
        .unwrap();
    out
}

#[tokio::test]
async fn pipelined_requests_answer_in_order() {
    let lab = lab();
    let server = start(&lab.root, HttpOptions::default()).await;
    let request = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n\
        HEAD /a.txt HTTP/1.1\r\nHost: x\r\n\r\n\
        GET /missing HTTP/1.1\r\nHost: x\r\n\r\n\
        POST /a.txt HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
        GET /a.txt HTTP/1.1\r\nRange: bytes=1-2\r\nConnection: close\r\n\r\n";
    let out = exchange(server.local_addr(), request).await;
    let r = responses(&out, &[false, true, false, false, false]);
    assert_eq!((r[0].status, r[0].body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(
        r[0].header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(r[1].status, 200);
    assert_eq!(r[1].header("content-length"), Some("5"));
    assert_eq!(r[2].status, 404);
    assert_eq!(r[3].status, 405);
    assert_eq!(r[3].header("allow"), Some("GET, HEAD"));
    assert_eq!((r[4].status, r[4].body.as_slice()), (206, &b"el"[..]));
    assert_eq!(r[4].header("content-range"), Some("bytes 1-2/5"));
    assert_eq!(r[4].header("connection"), Some("close"));
    assert_eq!(server.shutdown(Duration::from_secs(1)).await, 0);
}

#[tokio::test]
async fn validators_and_conditions() {
    let lab = lab();
    let server = start(&lab.root, HttpOptions::default()).await;
    let addr = server.local_addr();
    let get = |extra: &str| format!("GET /a.txt HTTP/1.1\r\n{extra}Connection: close\r\n\r\n");
    let first = responses(&exchange(addr, get("").as_bytes()).await, &[false]).remove(0);
    let etag = first.header("etag").unwrap().to_owned();
    let modified = first.header("last-modified").unwrap().to_owned();
    assert_eq!(first.header("accept-ranges"), Some("bytes"));

    let status = |text: String| async move {
        responses(&exchange(addr, text.as_bytes()).await, &[false])[0].status
    };
    assert_eq!(
        status(get(&format!("If-None-Match: {etag}\r\n"))).await,
        304
    );
    assert_eq!(status(get("If-None-Match: \"other\"\r\n")).await, 200);
    assert_eq!(
        status(get(&format!("If-Modified-Since: {modified}\r\n"))).await,
        304
    );
    let old = "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
    assert_eq!(status(get(old)).await, 200);
    let both = format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {modified}\r\n");
    assert_eq!(status(get(&both)).await, 200, "If-None-Match wins");
    let range = "Range: bytes=0-0\r\n";
    assert_eq!(
        status(get(&format!("{range}If-Range: {etag}\r\n"))).await,
        206
    );
    assert_eq!(
        status(get(&format!("{range}If-Range: \"old\"\r\n"))).await,
        200
    );
    assert_eq!(
        status(get(&format!("{range}If-Range: {modified}\r\n"))).await,
        206
    );
    assert_eq!(status(get("Range: bytes=5-\r\n")).await, 416);
    let r = responses(
        &exchange(addr, get("Range: bytes=9-\r\n").as_bytes()).await,
        &[false],
    );
    assert_eq!(r[0].header("content-range"), Some("bytes */5"));
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn bad_requests_are_refused_and_closed() {
    let lab = lab();
    let options = HttpOptions {
        max_header_bytes: 1024,
        max_body_bytes: 10,
        ..HttpOptions::default()
    };
    let server = start(&lab.root, options).await;
    let addr = server.local_addr();
    let status =
        |text: Vec<u8>| async move { responses(&exchange(addr, &text).await, &[false])[0].status };
    assert_eq!(status(b"\x16\x03\x01 not http\r\n\r\n".to_vec()).await, 400);
    assert_eq!(status(b"GET kernel HTTP/1.1\r\n\r\n".to_vec()).await, 400);
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(2000));
    assert_eq!(status(big.into_bytes()).await, 431);
    let chunked = b"POST /v1/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(status(chunked.to_vec()).await, 501);
    let long = b"POST /v1/x HTTP/1.1\r\nContent-Length: 11\r\n\r\n01234567890";
    assert_eq!(status(long.to_vec()).await, 413);
    let two = b"POST /v1/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(status(two.to_vec()).await, 400);
    // HTTP/1.0 without keep-alive: answered, then closed.
    let old = exchange(addr, b"GET /a.txt HTTP/1.0\r\n\r\n").await;
    assert_eq!(responses(&old, &[false])[0].status, 200);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn slow_clients_are_dropped() {
    let lab = lab();
    let options = HttpOptions {
        header_timeout: Duration::from_millis(300),
        ..HttpOptions::default()
    };
    let server = start(&lab.root, options).await;
    let addr = server.local_addr();
    // A head trickling in: 408 at the head's deadline, then closed.
    let started = std::time::Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /a.txt HTTP/1.1\r\nX-Slow: ")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if stream.write_all(b"z").await.is_err() {
                break;
            }
        }
        let _ = stream.read_to_end(&mut out).await;
    })
    .await
    .expect("the slow client is dropped");
    assert!(
        out.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // An idle connection: closed without a word.
    let out = exchange(addr, b"").await;
    assert!(out.is_empty());
    server.shutdown(Duration::from_secs(1)).await;
}

struct Echo;

impl ApiHandler for Echo {
    fn handle(&self, request: &ApiRequest) -> ApiResponse {
        ApiResponse::json(
            201,
            &serde_json::json!({
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "body": String::from_utf8_lossy(&request.body),
                "token": request.header("authorization").map(|v| String::from_utf8_lossy(v).into_owned()),
                "node": request.node,
            }),
        )
    }
}

#[tokio::test]
async fn api_requests_reach_the_handler_and_are_logged_without_secrets() {
    let lab = lab();
    let records = Arc::new(Mutex::new(Vec::new()));
    let sink = records.clone();
    let options = HttpOptions {
        api: Some(Arc::new(Echo)),
        access_log: Some(Arc::new(move |r: &AccessRecord| {
            sink.lock().unwrap().push(r.clone())
        })),
        node_resolver: Some(Arc::new(|ip: IpAddr| {
            ip.is_loopback().then(|| "node-7".to_owned())
        })),
        ..HttpOptions::default()
    };
    let server = start(&lab.root, options).await;
    let request = b"POST /v1/./deploy//done?x=1 HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\
        Expect: 100-continue\r\nContent-Length: 7\r\n\r\n{\"a\":1}\
        GET /v1/x HTTP/1.1\r\nConnection: close\r\n\r\n";
    let out = exchange(server.local_addr(), request).await;
    let out = out
        .strip_prefix(&b"HTTP/1.1 100 Continue\r\n\r\n"[..])
        .unwrap_or(&out);
    let r = responses(out, &[false, false]);
    assert_eq!(r[0].status, 201);
    let echoed: serde_json::Value = serde_json::from_slice(&r[0].body).unwrap();
    assert_eq!(
        echoed,
        serde_json::json!({"method": "POST", "path": "/v1/deploy/done", "query": "x=1",
            "body": "{\"a\":1}", "token": "Bearer s3cret", "node": "node-7"})
    );
    let listed: serde_json::Value = serde_json::from_slice(&r[1].body).unwrap();
    assert_eq!(
        listed["path"], "/v1/x",
        "the file root/v1/x is never served"
    );
    server.shutdown(Duration::from_secs(1)).await;

    let records = records.lock().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].method, "POST");
    assert_eq!(records[0].path, "/v1/./deploy//done");
    assert_eq!(records[0].node.as_deref(), Some("node-7"));
    assert_eq!(
        (records[1].status, records[1].bytes),
        (201, r[1].body.len() as u64)
    );
    let line = records[0].to_string();
    assert!(
        line.contains("node-7 \"POST /v1/./deploy//done\" 201"),
        "{line}"
    );
    assert!(!format!("{records:?}").contains("s3cret"));
}

/// A connection from `ip` (any 127/8 address is loopback).
async fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(ip.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test]
async fn one_address_gets_so_many_connections_and_no_more() {
    let lab = lab();
    let records = Arc::new(Mutex::new(Vec::<AccessRecord>::new()));
    let sink = records.clone();
    let options = HttpOptions {
        max_connections_per_client: 2,
        access_log: Some(Arc::new(move |r: &AccessRecord| {
            sink.lock().unwrap().push(r.clone())
        })),
        ..HttpOptions::default()
    };
    let server = start(&lab.root, options).await;
    let addr = server.local_addr();
    // Two idle connections from 127.0.0.3 hold its share...
    let held = [
        connect_from("127.0.0.3", addr).await,
        connect_from("127.0.0.3", addr).await,
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so a third gets 503 and is closed without a request.
    let mut third = connect_from("127.0.0.3", addr).await;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), third.read_to_end(&mut out))
        .await
        .expect("closed at once")
        .unwrap();
    let response = &responses(&out, &[false])[0];
    assert_eq!(response.status, 503);
    assert!(response.header("retry-after").is_some(), "{response:?}");
    // Another address is served, and so is 127.0.0.3 once one closes.
    let mut other = connect_from("127.0.0.4", addr).await;
    other
        .write_all(b"GET /a.txt HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    other.read_to_end(&mut out).await.unwrap();
    assert_eq!(responses(&out, &[false])[0].status, 200);
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = connect_from("127.0.0.3", addr).await;
    again
        .write_all(b"GET /a.txt HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    again.read_to_end(&mut out).await.unwrap();
    assert_eq!(responses(&out, &[false])[0].status, 200);
    let logged: Vec<String> = records
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert!(
        logged[0].starts_with("127.0.0.3:") && logged[0].contains("\"- -\" 503"),
        "{logged:?}"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn connection_limit_queues_the_rest() {
    let lab = lab();
    let options = HttpOptions {
        max_connections: 1,
        ..HttpOptions::default()
    };
    let server = start(&lab.root, options).await;
    let addr = server.local_addr();
    let mut first = TcpStream::connect(addr).await.unwrap();
    first
        .write_all(b"GET /a.txt HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(first.read(&mut buf).await.unwrap() > 0);
    // The second connection is accepted by the kernel but not served...
    let second = tokio::spawn(exchange(addr, b"GET /a.txt HTTP/1.0\r\n\r\n"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished());
    // ...until the first one ends.
    drop(first);
    let out = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(responses(&out, &[false])[0].status, 200);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_aborts_stuck_transfers() {
    let lab = lab();
    std::fs::write(lab.root.join("big"), vec![7u8; 64 << 20]).unwrap();
    let server = start(&lab.root, HttpOptions::default()).await;
    let addr = server.local_addr();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /a.txt HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(idle.read(&mut buf).await.unwrap() > 0);
    // A reader that never reads: its transfer cannot finish.
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    stuck.write_all(b"GET /big HTTP/1.1\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    assert_eq!(server.shutdown(Duration::from_millis(300)).await, 1);
    assert!(started.elapsed() < Duration::from_secs(2));
    let n = tokio::time::timeout(Duration::from_secs(1), idle.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0))), "the idle connection is closed");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn shutdown_lets_transfers_in_progress_finish() {
    let lab = lab();
    std::fs::write(lab.root.join("big"), vec![7u8; 8 << 20]).unwrap();
    let server = start(&lab.root, HttpOptions::default()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.read_to_end(&mut out).await.unwrap();
        out
    });
    assert_eq!(server.shutdown(Duration::from_secs(5)).await, 0);
    let out = reader.await.unwrap();
    let body_start = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(out.len() - body_start, 8 << 20);
}

#[tokio::test]
async fn bind_errors_name_the_address_and_root() {
    let lab = lab();
    let taken = start(&lab.root, HttpOptions::default()).await;
    let addr = taken.local_addr();
    let err = HttpServer::bind(addr, lab.root.clone(), HttpOptions::default())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    let missing = lab.root.join("nope");
    let listen = "127.0.0.1:0".parse().unwrap();
    let err = HttpServer::bind(listen, missing, HttpOptions::default())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn a_file_that_is_there_but_cannot_be_opened_is_not_a_404() {
    use super::file::unreadable_status;
    let errno = |e| io::Error::from_raw_os_error(e);
    assert_eq!(unreadable_status(&errno(libc::EACCES)), 403);
    assert_eq!(unreadable_status(&errno(libc::EMFILE)), 503, "retry later");
    assert_eq!(unreadable_status(&errno(libc::ENFILE)), 503, "retry later");
    assert_eq!(unreadable_status(&errno(libc::EIO)), 500);
}
