use super::*;
use proptest::prelude::*;

const FILE: &str = concat!(
    r#"{"version": 2, "width": 80, "height": 24, "timestamp": 1796432523, "title": "n1 console"}"#,
    "\n",
    r#"[0.0001, "o", "Petitboot\r\nline "]"#,
    "\n",
    r#"[1.5, "i", "typed"]"#,
    "\n",
    r#"[2.25, "o", "two\r\n\u001b[1mthree\r\n"]"#,
    "\n",
);

#[test]
fn parses_header_and_events() {
    let cast = parse(FILE.as_bytes()).unwrap();
    assert_eq!(cast.timestamp, 1_796_432_523);
    assert_eq!(cast.skipped, 0);
    assert_eq!(cast.events.len(), 3);
    assert_eq!(
        cast.events[2],
        Event {
            time: 2.25,
            kind: "o".into(),
            data: "two\r\n\x1b[1mthree\r\n".into()
        }
    );
}

#[test]
fn renders_output_only() {
    let cast = parse(FILE.as_bytes()).unwrap();
    assert_eq!(
        render(&cast, false),
        "Petitboot\r\nline two\r\n\x1b[1mthree\r\n"
    );
}

#[test]
fn renders_each_line_with_the_time_of_its_first_character() {
    let cast = parse(FILE.as_bytes()).unwrap();
    assert_eq!(
        render(&cast, true),
        "2026-12-05T01:02:03.000Z Petitboot\r\n\
         2026-12-05T01:02:03.000Z line two\r\n\
         2026-12-05T01:02:05.250Z \x1b[1mthree\r\n"
    );
}

#[test]
fn a_torn_last_line_and_garbage_are_skipped() {
    let mut bytes = FILE.as_bytes().to_vec();
    bytes.extend_from_slice(b"\xff\xfe not json\n");
    bytes.extend_from_slice(br#"[3.0, "o", "after garbage\n"]"#);
    bytes.extend_from_slice(b"\n[4.0, \"o\", \"tor");
    let cast = parse(&bytes).unwrap();
    assert_eq!(cast.skipped, 2);
    assert!(render(&cast, false).ends_with("three\r\nafter garbage\n"));
}

#[test]
fn a_file_without_header_is_an_error() {
    assert_eq!(parse(b""), Err(CastError::NoHeader));
    assert_eq!(parse(b"[0.1, \"o\", \"x\"]\n"), Err(CastError::NoHeader));
    assert_eq!(parse(b"{\"version\": 1}\n"), Err(CastError::NoHeader));
    assert_eq!(parse(b"plain text log\n"), Err(CastError::NoHeader));
}

#[test]
fn written_lines_read_back() {
    let mut file = header_line(1_796_432_523, "n \"1\" console");
    file.push_str(&event_line(0.123_456_7, "a\u{0}b\u{7f}é\n"));
    let cast = parse(file.as_bytes()).unwrap();
    assert_eq!(cast.timestamp, 1_796_432_523);
    assert_eq!(cast.events[0].time, 0.123_457);
    assert_eq!(cast.events[0].data, "a\u{0}b\u{7f}é\n");
    let header: serde_json::Value = serde_json::from_str(file.lines().next().unwrap()).unwrap();
    assert_eq!(header["title"], "n \"1\" console");
    assert_eq!(header["width"], 80);
    assert_eq!(header["height"], 24);
}

#[test]
fn incremental_text_waits_for_whole_lines_and_follows_new_headers() {
    let mut text = Text::new(true);
    let mut out = String::new();
    let (head, tail) = FILE.as_bytes().split_at(FILE.len() - 10);
    text.feed(head, &mut out);
    assert_eq!(
        out,
        "2026-12-05T01:02:03.000Z Petitboot\r\n2026-12-05T01:02:03.000Z line "
    );
    text.feed(tail, &mut out);
    assert!(
        out.ends_with("2026-12-05T01:02:05.250Z \x1b[1mthree\r\n"),
        "{out:?}"
    );
    // A rotated file's header: times count from it.
    out.clear();
    text.feed(
        b"{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":0}\n[1.0,\"o\",\"x\\n\"]\ngarbage\n",
        &mut out,
    );
    assert_eq!(out, "1970-01-01T00:00:01.000Z x\n");
    assert_eq!(text.skipped(), 1);
    // A last line without its newline: decoded at the end if whole.
    text.feed(b"[2.0,\"o\",\"y\"]", &mut out);
    assert_eq!(out, "1970-01-01T00:00:01.000Z x\n");
    text.end_of_file(&mut out);
    assert_eq!(
        out,
        "1970-01-01T00:00:01.000Z x\n1970-01-01T00:00:02.000Z y"
    );
}

proptest! {
    /// serde_json's escaping, byte for byte.
    #[test]
    fn escaped_len_matches_serde_json(c in any::<char>()) {
        let json = serde_json::to_string(&c.to_string()).unwrap();
        prop_assert_eq!(escaped_len(c), json.len() - 2);
    }

    /// Fed in any chunks, the incremental text is the whole render.
    #[test]
    fn incremental_equals_whole(cut in 0..FILE.len(), timestamps: bool) {
        let mut text = Text::new(timestamps);
        let mut out = String::new();
        text.feed(&FILE.as_bytes()[..cut], &mut out);
        text.feed(&FILE.as_bytes()[cut..], &mut out);
        text.end_of_file(&mut out);
        prop_assert_eq!(out, render(&parse(FILE.as_bytes()).unwrap(), timestamps));
    }
}
