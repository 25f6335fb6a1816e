use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;

/// A one-connection server: reads the request (head and, if announced, the
/// body), answers `reply` and closes. Returns the URL and the request seen.
async fn serve_once(reply: Vec<u8>) -> (String, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/some/file", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&seen).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if seen.len() >= end + 4 + len {
                    break;
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        stream.write_all(&reply).await.unwrap();
        stream.shutdown().await.unwrap();
        String::from_utf8(seen).unwrap()
    });
    (url, task)
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn get_streams_a_body_of_exactly_content_length() {
    let body = vec![7u8; 200_000];
    let mut reply =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    reply.extend_from_slice(&body);
    let (url, server) = serve_once(reply).await;
    let mut response = get(&url, T).await.unwrap();
    assert_eq!(
        (response.status, response.content_length),
        (200, Some(200_000))
    );
    let mut got = Vec::new();
    let mut pieces = 0;
    while let Some(piece) = response.chunk().await.unwrap() {
        got.extend_from_slice(piece);
        pieces += 1;
    }
    assert_eq!(got, body);
    assert!(pieces > 1, "streamed in pieces, not at once");
    let request = server.await.unwrap();
    assert!(
        request.starts_with("GET /some/file HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.contains("\r\nHost: 127.0.0.1:"), "{request}");
    assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
}

#[tokio::test]
async fn a_body_shorter_than_content_length_is_an_error() {
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten!!".to_vec();
    let (url, _server) = serve_once(reply).await;
    let response = get(&url, T).await.unwrap();
    match response.drain().await {
        Err(HttpError::Short { got, expected }) => assert_eq!((got, expected), (10, 100)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bytes_beyond_content_length_are_not_part_of_the_body() {
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello and more".to_vec();
    let (url, _server) = serve_once(reply).await;
    let body = get(&url, T).await.unwrap().read_to_end(1024).await.unwrap();
    assert_eq!(body, b"hello");
}

#[tokio::test]
async fn a_404_keeps_the_servers_status_line() {
    let reply = b"HTTP/1.0 404 File not found\r\nContent-Length: 3\r\n\r\nno\n".to_vec();
    let (url, _server) = serve_once(reply).await;
    let response = get(&url, T).await.unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(response.status_line(), "HTTP/1.0 404 File not found");
}

#[tokio::test]
async fn early_close_and_garbage_are_errors_not_panics() {
    for (reply, want) in [
        (&b""[..], "before the response head ended"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Le",
            "before the response head ended",
        ),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "bad response"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "Content-Length",
        ),
    ] {
        let (url, _server) = serve_once(reply.to_vec()).await;
        let err = get(&url, T).await.unwrap_err().to_string();
        assert!(err.contains(want), "{reply:?}: {err}");
    }
    // No Content-Length: the body runs to the close.
    let (url, _server) = serve_once(b"HTTP/1.0 200 OK\r\n\r\nall of it".to_vec()).await;
    let body = get(&url, T).await.unwrap().read_to_end(100).await.unwrap();
    assert_eq!(body, b"all of it");
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused() {
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n".to_vec();
    let (url, _server) = serve_once(reply).await;
    let err = get(&url, T).await.unwrap().read_to_end(1000).await;
    assert!(
        matches!(err, Err(HttpError::TooLarge { limit: 1000 })),
        "{err:?}"
    );
    // Unannounced length: refused once the cap is passed.
    let mut reply = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    reply.extend_from_slice(&[b'x'; 3000]);
    let (url, _server) = serve_once(reply).await;
    let err = get(&url, T).await.unwrap().read_to_end(1000).await;
    assert!(matches!(err, Err(HttpError::TooLarge { .. })), "{err:?}");
}

#[tokio::test]
async fn post_sends_headers_and_body() {
    let (url, server) =
        serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok=1\n".to_vec()).await;
    let headers = [("X-Petitlab-Token", "abc123")];
    let response = post(&url, &headers, b"node=n1\n", T).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.read_to_end(100).await.unwrap(), b"ok=1\n");
    let request = server.await.unwrap();
    assert!(
        request.starts_with("POST /some/file HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains("\r\nX-Petitlab-Token: abc123\r\n"),
        "{request}"
    );
    assert!(
        request.ends_with("Content-Length: 8\r\n\r\nnode=n1\n"),
        "{request}"
    );
    let bad = post(&url, &[("X", "a\r\nInjected: 1")], b"", T).await;
    assert!(matches!(bad, Err(HttpError::BadRequest(_))), "{bad:?}");
}

#[tokio::test]
async fn silence_and_refusal_time_out_or_fail_quickly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let conn = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(conn);
    });
    let err = get(&url, Duration::from_millis(100)).await.unwrap_err();
    assert!(matches!(err, HttpError::Timeout(_)), "{err:?}");
    hold.abort();
    // Nothing listens there any more.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", gone.local_addr().unwrap());
    drop(gone);
    let err = get(&url, T).await.unwrap_err();
    assert!(matches!(err, HttpError::Connect { .. }), "{err:?}");
}

#[test]
fn urls_parse_or_are_refused() {
    let u = HttpUrl::parse("http://10.77.0.1:8080/a/config").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path.as_str()),
        ("10.77.0.1", 8080, "/a/config")
    );
    let u = HttpUrl::parse("http://[::1]/x?y=1").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path.as_str()),
        ("::1", 80, "/x?y=1")
    );
    assert_eq!(u.host_header(), "[::1]");
    let u = HttpUrl::parse("http://host").unwrap();
    assert_eq!(u.path, "/");
    for bad in [
        "https://h/x",
        "tftp://h/x",
        "http://",
        "http://h:99999/",
        "http://h:0/",
        "http://h/a b",
        "http://u@h/",
        "http://[::1/",
    ] {
        assert!(HttpUrl::parse(bad).is_err(), "{bad}");
    }
}
