//! Request heads, targets, ranges, validators and dates, without sockets.

use super::*;
use proptest::prelude::*;

fn head(text: &str) -> Head {
    parse_head(text.as_bytes(), 16 * 1024).unwrap().unwrap()
}

#[test]
fn dates_format_and_parse_known_values() {
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(http_date(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
    assert_eq!(http_date(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
    for form in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(
            parse_http_date(form.as_bytes()),
            Some(784_111_777),
            "{form}"
        );
    }
    for bad in [
        "",
        "yesterday",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 CET",
        "Sun, 06 Nov 1994 08:49 GMT",
    ] {
        assert_eq!(parse_http_date(bad.as_bytes()), None, "{bad}");
    }
    for secs in [
        0,
        1,
        86_399,
        86_400,
        951_868_799,
        1_700_000_000,
        253_402_300_799,
    ] {
        assert_eq!(parse_http_date(http_date(secs).as_bytes()), Some(secs));
    }
}

#[test]
fn ranges() {
    use ByteRange::*;
    let r = |v: &str, size| parse_range(v.as_bytes(), size);
    assert_eq!(r("bytes=0-99", 1000), Part { start: 0, end: 99 });
    assert_eq!(
        r("bytes=100-", 1000),
        Part {
            start: 100,
            end: 999
        }
    );
    assert_eq!(
        r("bytes=-100", 1000),
        Part {
            start: 900,
            end: 999
        }
    );
    assert_eq!(r("bytes=-5000", 1000), Part { start: 0, end: 999 });
    assert_eq!(
        r("bytes=900-5000", 1000),
        Part {
            start: 900,
            end: 999
        }
    );
    assert_eq!(r("BYTES = 1-1", 10), Full, "no spaces around =");
    assert_eq!(r("Bytes=1-1", 10), Part { start: 1, end: 1 });
    assert_eq!(r(" bytes=5-5 , ", 10), Part { start: 5, end: 5 });
    assert_eq!(
        r("bytes=999-999", 1000),
        Part {
            start: 999,
            end: 999
        }
    );
    assert_eq!(r("bytes=1000-", 1000), Unsatisfiable);
    assert_eq!(r("bytes=1000-2000", 1000), Unsatisfiable);
    assert_eq!(r("bytes=-0", 1000), Unsatisfiable);
    assert_eq!(r("bytes=0-", 0), Unsatisfiable);
    assert_eq!(r("bytes=-1", 0), Unsatisfiable);
    assert_eq!(r("bytes=99999999999999999999999-", 10), Unsatisfiable);
    assert_eq!(
        r("bytes=0-99999999999999999999999", 10),
        Part { start: 0, end: 9 }
    );
    for full in [
        "bytes=5-1",
        "bytes=0-1,5-6",
        "items=0-1",
        "bytes=",
        "bytes=-",
        "bytes=a-b",
        "bytes=1",
        "bytes=+1-2",
        "bytes=1--2",
        "",
    ] {
        assert_eq!(r(full, 1000), Full, "{full}");
    }
}

#[test]
fn targets() {
    use Target::*;
    let file = |s: &str| File(s.as_bytes().to_vec());
    assert_eq!(classify("/kernel"), file("/kernel"));
    assert_eq!(classify("/a%20b?x=1#f"), file("/a b"));
    assert_eq!(classify("http://host:80/x/y"), file("/x/y"));
    assert_eq!(classify("HTTP://host"), file("/"));
    assert_eq!(classify("*"), Bad);
    assert_eq!(classify("kernel"), Bad);
    for refused in [
        "/../secret",
        "/%2e%2e/secret",
        "/%2E%2E/secret",
        "/%2e%2e%2fsecret",
        "/..%2fsecret",
        "/..%2Fsecret",
        "/a/%2e%2e/%2e%2e/secret",
        "/a/../b",
        "/a%5c..%5csecret",
        "/a\\b",
        "/a%00b",
        "/%v1/../x",
    ] {
        assert_eq!(classify(refused), NotFound, "{refused}");
    }
    let api = |p: &str, q: Option<&str>| Api {
        path: p.into(),
        query: q.map(Into::into),
    };
    assert_eq!(classify("/v1"), api("/v1", None));
    assert_eq!(classify("/v1/x?y=1"), api("/v1/x", Some("y=1")));
    assert_eq!(classify("//./v1//a/"), api("/v1/a", None));
    assert_eq!(classify("/%76%31/a"), api("/v1/a", None));
    assert_eq!(classify("/v1%ff"), File(b"/v1\xff".to_vec()));
    assert_eq!(classify("/v1/%ff"), NotFound, "API paths are UTF-8");
    assert_eq!(classify("/v10/a"), file("/v10/a"));
}

#[test]
fn request_heads() {
    let h = head("GET /k HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\n\r\nrest");
    assert_eq!(
        (h.method.as_str(), h.target.as_str(), h.len),
        ("GET", "/k", 56)
    );
    assert!(!h.keep_alive());
    assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive());
    assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive());
    assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
    assert!(head("POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expects_continue());
    assert_eq!(
        head("GET / HTTP/1.1\r\nhost: a\r\n\r\n").header("HOST"),
        Some(&b"a"[..])
    );

    let cl = |extra: &str| head(&format!("POST / HTTP/1.1\r\n{extra}\r\n")).content_length();
    assert_eq!(cl(""), Ok(0));
    assert_eq!(cl("Content-Length: 12\r\n"), Ok(12));
    assert_eq!(cl("Content-Length: 12\r\nContent-Length: 12\r\n"), Ok(12));
    assert_eq!(cl("Content-Length: 12, 12\r\n"), Ok(12));
    assert_eq!(
        cl("Content-Length: 12\r\nContent-Length: 13\r\n"),
        Err(Reject::Bad)
    );
    assert_eq!(cl("Content-Length: -1\r\n"), Err(Reject::Bad));
    assert_eq!(cl("Content-Length: +1\r\n"), Err(Reject::Bad));
    assert_eq!(cl("Content-Length: \r\n"), Err(Reject::Bad));
    assert_eq!(
        cl("Content-Length: 99999999999999999999999\r\n"),
        Err(Reject::Bad)
    );
    assert_eq!(
        cl("Transfer-Encoding: chunked\r\n"),
        Err(Reject::NotImplemented)
    );

    // Incomplete, too large, too many headers, not HTTP.
    assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n", 1024), Ok(None));
    assert_eq!(parse_head(b"", 1024), Ok(None));
    assert_eq!(parse_head(&[b'a'; 100], 64), Err(Reject::TooLarge));
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(100));
    assert_eq!(parse_head(long.as_bytes(), 64), Err(Reject::TooLarge));
    let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(65));
    assert_eq!(parse_head(many.as_bytes(), 1 << 20), Err(Reject::TooLarge));
    for bad in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(parse_head(bad, 1024), Err(Reject::Bad), "{bad:?}");
    }
}

#[test]
fn validators() {
    let etag = "\"10-5f\"";
    assert!(etag_listed(b"\"10-5f\"", etag));
    assert!(etag_listed(b"W/\"10-5f\"", etag));
    assert!(etag_listed(b"\"x\", \"10-5f\"", etag));
    assert!(etag_listed(b"*", etag));
    assert!(!etag_listed(b"\"10-5e\"", etag));
    assert!(!etag_listed(b"10-5f", etag));
}

proptest! {
    #[test]
    fn random_bytes_never_panic_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(Some(h)) = parse_head(&bytes, 256) {
            let _ = (h.keep_alive(), h.expects_continue(), h.content_length());
            let _ = classify(&h.target);
            if let Some(r) = h.header("range") {
                let _ = parse_range(r, 1000);
            }
        }
        let _ = parse_range(&bytes, 1000);
        let _ = parse_http_date(&bytes);
        let _ = etag_listed(&bytes, "\"1-2\"");
    }

    #[test]
    fn random_heads_never_panic(
        method in "[A-Z]{1,8}",
        target in "[ -~]{0,40}",
        headers in proptest::collection::vec(("[a-zA-Z-]{1,12}", "[ -~]{0,30}"), 0..8),
    ) {
        let mut text = format!("{method} {target} HTTP/1.1\r\n");
        for (n, v) in &headers {
            text.push_str(&format!("{n}: {v}\r\n"));
        }
        text.push_str("\r\n");
        if let Ok(Some(h)) = parse_head(text.as_bytes(), 16 * 1024) {
            let _ = (h.keep_alive(), h.content_length(), classify(&h.target));
            for (_, v) in &h.headers {
                let _ = (parse_range(v, 10), parse_http_date(v), etag_listed(v, "\"a\""));
            }
        }
    }

    #[test]
    fn satisfiable_ranges_stay_inside_the_file(a in 0u64..2000, b in 0u64..2000, size in 0u64..1500) {
        if let ByteRange::Part { start, end } = parse_range(format!("bytes={a}-{b}").as_bytes(), size) {
            prop_assert!(start <= end && end < size);
        }
        if let ByteRange::Part { start, end } = parse_range(format!("bytes=-{b}").as_bytes(), size) {
            prop_assert!(start <= end && end == size - 1);
        }
    }
}
